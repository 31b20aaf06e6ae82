"""Shared state for several gateway replicas, against a real redis-server on 127.0.0.1."""

from __future__ import annotations

import dataclasses
import os
import shutil
import socket
import subprocess
import time

import pytest

from distillguard.gateway.engine import Engine
from distillguard.gateway.policy import load_policy
from distillguard.gateway.scoring import FixedScorer
from distillguard.gateway.state import RedisState
from distillguard.gateway.throttle import Rate

# CI sets DISTILLGUARD_REQUIRE_REDIS=1 so a missing server fails rather than skips
_NO_REDIS = shutil.which("redis-server") is None and not os.environ.get("DISTILLGUARD_REQUIRE_REDIS")
pytestmark = pytest.mark.skipif(_NO_REDIS, reason="redis-server not installed (.ci/run installs it)")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def redis_url():
    port = _free_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no"], stdout=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def test_two_replicas_share_one_budget(redis_url):
    a, b = RedisState(redis_url, prefix="t1:"), RedisState(redis_url, prefix="t1:")
    rate = Rate(per_minute=60, burst_s=3)
    results = [await (a if i % 2 else b).limit("acct", 1_000_000.0, rate) for i in range(6)]
    assert [ok for ok, _ in results] == [True, True, True, False, False, False]
    assert results[-1][1] == pytest.approx(1000.0)
    await b.charge("tok", 1_000_000.0, Rate(6000, 1), 500)
    ok, retry = await a.limit("tok", 1_000_000.0, Rate(6000, 1), cost=0)
    assert not ok and retry == pytest.approx(4000.0)
    await a.close()
    await b.close()


async def test_risk_seen_by_one_replica_reaches_the_other(redis_url):
    policy = dataclasses.replace(load_policy(), mode="enforce")
    seen = Engine(policy, FixedScorer({"acct": 0.95}), state=RedisState(redis_url, prefix="t2:"))
    other = Engine(policy, FixedScorer(), state=RedisState(redis_url, prefix="t2:"))
    assert (await seen.decide("e1", "acct", None, {}, 0)).action == "block"
    decision = await other.decide("e2", "acct", None, {}, 0)
    assert decision.action == "block" and "risk shared by another replica" in decision.reasons


async def test_redis_down_follows_fail_mode():
    dead = f"redis://127.0.0.1:{_free_port()}/0"
    scorer = FixedScorer({"acct": 0.7})
    open_ = Engine(dataclasses.replace(load_policy(), mode="enforce"), scorer, state=RedisState(dead))
    decision = await open_.decide("e1", "acct", None, {}, 0)
    assert decision.action == "allow" and decision.status is None and "fail-open" in decision.reasons
    closed = Engine(dataclasses.replace(load_policy(), mode="enforce", fail="closed"), scorer, state=RedisState(dead))
    assert (await closed.decide("e2", "acct", None, {}, 0)).status == 503
