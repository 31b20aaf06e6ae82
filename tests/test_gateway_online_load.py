"""Online scoring under load: the real scorer process sheds by its explicit policy, never silently.

Shedding (forced here by a zero threshold instead of a flood) folds every account's first exchanges, every
exchange of protected accounts (online evidence, flagged by batch detection or a link) and one in
``SAMPLE_EVERY`` of the rest; what it does not fold is counted per account, the start is an audit event and
the account's later decisions name it. Rows dropped with a full buffer are counted and audited the same way.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import os
import signal
import time

import httpx
import pytest

from distillguard.gateway import fake_upstream, online
from distillguard.gateway.app import Gateway, finish_record, new_record, record_row
from distillguard.gateway.audit import AuditLog, read_audit
from distillguard.gateway.config import build_scorer
from distillguard.gateway.engine import Decision, Engine
from distillguard.gateway.online import FOLD_FIRST, NOT_SHIPPED, SAMPLE_EVERY, OnlineFeatures
from distillguard.gateway.policy import load_policy

BODY = {"model": "fake-1", "messages": [{"role": "user", "content": "what is 6*7?"}]}


def _row(i: int, account: str, ts: int | None = None) -> dict:
    record = new_record(account, "key-x", "127.0.0.1", "bench", {
        "model": "fake-1", "max_tokens": 512, "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": f"Question {i}: what is {i} times {i % 97}? Explain step by step."}]},
        ts or 1_772_000_000_000 + 997 * i, exchange_id=f"x{account}{i}")
    request_row = record_row(record)
    decision = Decision(record["id"], account, 0, "allow", "default", 0.0)
    return finish_record(record, decision, fake_upstream.completion("fake-1"), 200, time.perf_counter(), request_row)


def test_rows_without_their_bodies_fold_to_the_same_state_and_evidence():
    """The proxy ships rows without request/response JSON: online signals and features must not need them."""
    rows = [_row(i, f"acct-{i % 7}") for i in range(300)]
    full, compact = OnlineFeatures(), OnlineFeatures()
    for row in rows:
        full.observe(row)
        compact.observe({**row, **dict.fromkeys(NOT_SHIPPED)})
    full.rescore_all()
    compact.rescore_all()
    assert full.blobs == compact.blobs and full.blobs
    assert full.latest == compact.latest


@pytest.fixture
def gateway(tmp_path):
    policy = dataclasses.replace(load_policy(), mode="enforce")
    scorer = build_scorer(policy, background=True)  # the real scorer process, as `distillguard gateway` runs it
    engine = Engine(policy, scorer, audit=AuditLog(tmp_path / "audit.jsonl", fsync_ms=0))
    gw = Gateway("http://upstream", engine, keys={"sk-heavy": "heavy", "sk-new": "new", "sk-vip": "flagged"},
                 transport=httpx.ASGITransport(app=fake_upstream.app))
    yield gw, scorer.online.worker, tmp_path / "audit.jsonl"
    scorer.close()


async def _post(gw: Gateway, key: str, n: int) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=gw), base_url="http://gw") as client:
        for _ in range(n):
            assert (await client.post("/v1/chat/completions", json=BODY,
                                      headers={"authorization": f"Bearer {key}"})).status_code == 200


async def test_the_scorer_sheds_by_policy_counts_per_account_and_audits(gateway):
    gw, worker, audit = gateway
    worker.set_shed("sample", start_ms=-1.0, stop_ms=-1e12)  # behind from the first row on, for this test
    gw.engine.scorer.online.links.flag("flagged", None)  # flagged by batch detection: never shed
    await _post(gw, "sk-heavy", 100)
    await _post(gw, "sk-new", 10)
    await _post(gw, "sk-vip", 60)
    worker.flush()
    kept = FOLD_FIRST + math.ceil((100 - FOLD_FIRST) / SAMPLE_EVERY)
    assert worker.sent == 170 and worker.folded == kept + 10 + 60
    assert worker.shed_by_account == {"heavy": 100 - kept} and worker.shed_total == 100 - kept
    assert worker.shedding

    await _post(gw, "sk-heavy", 1)  # the next decision on the account says what online scoring missed
    entries = read_audit(audit)
    note = f"online scoring under load: {100 - kept} of this account's exchanges not folded ({100 - kept} shed"
    assert any(note in reason for reason in entries[-1]["reasons"]) and entries[-1]["account_id"] == "heavy"
    assert not any("online scoring under load" in r for e in entries if e["account_id"] != "heavy"
                   for r in e["reasons"])
    started = [e for e in entries if e.get("event") == "online_shedding_start"]
    assert len(started) == 1 and started[0]["mode"] == "sample"
    metrics = gw.metrics.render().decode()
    assert f'distillguard_online_exchanges_total{{outcome="shed"}} {100 - kept}' in metrics
    assert "distillguard_online_shedding 1" in metrics

    worker.set_shed("off")  # never sample: everything is folded again
    await _post(gw, "sk-heavy", 16)
    worker.flush()
    # the one request in between was the heavy account's 101st exchange: sampled out too
    assert worker.shed_total == 100 - kept + 1 and worker.folded == kept + 10 + 60 + 16
    assert [e.get("event") for e in read_audit(audit) if e.get("event")][-1] == "online_shedding_stop"


async def test_rows_dropped_with_a_full_buffer_are_counted_per_account_and_audited(gateway, monkeypatch):
    gw, worker, audit = gateway
    worker.set_shed("off")  # only the buffer limit applies
    monkeypatch.setattr(online.process, "MAX_BACKLOG_BYTES", 16 << 10)  # 16 KiB: a stopped worker fills it at once
    os.kill(worker.process.pid, signal.SIGSTOP)
    try:
        for i in range(1500):  # as the proxy hands completed exchanges over; the pipe itself holds 1 MiB first
            worker.send(_row(i, "heavy"))
    finally:
        os.kill(worker.process.pid, signal.SIGCONT)
    assert worker.dropped > 0 and worker.dropped_by_account == {"heavy": worker.dropped}
    await _post(gw, "sk-heavy", 1)
    entries = read_audit(audit)
    assert f"{worker.dropped} dropped)" in " ".join(entries[-1]["reasons"])
    assert any(e.get("event") == "online_dropped" for e in entries)
    worker.flush()
    assert worker.folded == worker.sent and worker.sent + worker.dropped == 1501  # the rest was all folded


async def test_rows_reach_the_scorer_when_traffic_pauses(gateway):
    """Rows buffered for the scorer leave on the gateway's pump, not with the next request (before: they waited)."""
    gw, worker, _ = gateway
    await gw.startup()
    try:
        await _post(gw, "sk-heavy", 5)  # fewer than a send group, all within its 20 ms
        deadline = time.monotonic() + 20
        while worker.folded < 5 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)  # no request, no flush(): only the pump moves rows and results
        assert worker.folded == 5 and not worker._out
    finally:
        await gw.shutdown()


async def test_a_scorer_with_no_cpu_left_is_sampled_before_shipping(gateway, monkeypatch):
    """A worker that gets no CPU at all (stopped here; a saturated shared core in production): past
    BUFFER_SHED_BYTES the proxy samples unflagged accounts' rows itself, counted and audited, instead of filling
    the buffer towards drops."""
    gw, worker, audit = gateway
    worker.set_shed("sample", start_ms=1e12)  # the worker itself never sheds here
    gw.engine.scorer.online.links.flag("flagged", None)
    monkeypatch.setattr(online.process, "BUFFER_SHED_BYTES", 64 << 10)
    os.kill(worker.process.pid, signal.SIGSTOP)
    try:
        for i in range(3000):
            worker.send(_row(i, "heavy"))
            if i % 10 == 0:
                worker.send(_row(i, "flagged"))
    finally:
        os.kill(worker.process.pid, signal.SIGCONT)
    assert worker.shed_proxy > 1000 and worker.dropped == 0
    assert worker.shed_by_account == {"heavy": worker.shed_proxy}  # flagged accounts are never sampled
    assert worker.buffer_sampling
    assert [e["event"] for e in read_audit(audit) if e.get("event")] == ["online_buffer_sampling_start"]
    worker.flush()
    assert worker.folded == worker.sent == 3300 - worker.shed_proxy
    assert "shed_in_proxy" in gw.metrics.render().decode()


def test_the_scorer_process_publishes_the_same_evidence_as_inline_scoring():
    """What the live proxy's scorer process sends back carries what inline scoring keeps: the coordination
    eligibility included (without it, payment-link evidence never counted in the live proxy)."""
    rows = []
    for i in range(120):
        row = _row(i, f"acct-{i % 3}")
        if row["account_id"] == "acct-0":  # harvests long outputs: eligible for cross-account evidence
            row = {**row, "completion_tokens": 6000, "max_tokens": 8192}
        rows.append(row)
    inline = OnlineFeatures()
    for row in rows:
        inline.observe(row)
    inline.rescore_all()
    scorer = build_scorer(load_policy(), background=True)  # the real scorer process, as the live proxy runs it
    try:
        for row in rows:
            scorer.online.observe(row)
        scorer.online.worker.flush()
        assert inline.latest.get("acct-0").eligible and not inline.latest.get("acct-1").eligible
        for account in ("acct-0", "acct-1", "acct-2"):  # (the worker rescores on its own schedule: n may lag)
            live, kept = scorer.online.latest.get(account), inline.latest.get(account)
            assert live is not None and live.eligible == kept.eligible, account
            assert set(live.families) == set(kept.families), account
    finally:
        scorer.close()
