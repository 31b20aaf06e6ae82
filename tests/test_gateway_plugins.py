"""Gateway plug points: actions and state backends registered by name, each kind with its conformance check that
every implementation passes (built-ins, a real Redis, and third-party examples registered here)."""

from __future__ import annotations

import dataclasses
import os
import shutil
import socket
import subprocess
import time

import pytest

from distillguard.errors import DistillguardError
from distillguard.gateway.actions import (
    Action,
    ActionError,
    Flow,
    action_class,
    check_action,
    register_action,
    registered_actions,
)
from distillguard.gateway.engine import Decision, Engine
from distillguard.gateway.policy import PolicyError, load_policy, parse_policy
from distillguard.gateway.registry import ConformanceError, RegistryError
from distillguard.gateway.scoring import FixedScorer
from distillguard.gateway.state import (
    BaseState,
    MemoryState,
    RedisState,
    StateBackend,
    StateConfigError,
    check_state_backend,
    open_state,
    register_state_backend,
    state_backends,
    unregister_state_backend,
)
from distillguard.gateway.throttle import Rate, charge, gcra

_NO_REDIS = shutil.which("redis-server") is None and not os.environ.get("DISTILLGUARD_REQUIRE_REDIS")


# ---- third-party examples ------------------------------------------------------------------------------------
class CapTokens(Action):
    """Like allow, with completions capped at 64 tokens (the docs' example)."""

    def apply(self, decision: Decision, flow: Flow) -> None:
        super().apply(decision, flow)
        if decision.enforced and flow.response is None and flow.refusal is None \
                and (flow.request.get("max_tokens") or 1 << 30) > 64:
            flow.request["max_tokens"] = 64
            flow.changes.append("max_tokens capped at 64")


class DictState(BaseState):
    """A third-party backend: budgets and blobs in one dict shared by every instance (a toy 'shared' store)."""

    shared = True
    store: dict[str, object] = {}

    async def limit(self, key: str, now_ms: float, rate: Rate, cost: float = 1.0) -> tuple[bool, float]:
        allowed, tat, retry = gcra(self.store.get("b:" + key), now_ms, rate, cost)  # type: ignore[arg-type]
        if allowed:
            self.store["b:" + key] = tat
        return allowed, retry

    async def charge(self, key: str, now_ms: float, rate: Rate, cost: float) -> None:
        self.store["b:" + key] = charge(self.store.get("b:" + key), now_ms, rate, cost)  # type: ignore[arg-type]

    async def get_blob(self, key: str) -> bytes | None:
        return self.store.get("s:" + key)  # type: ignore[return-value]

    async def put_blob(self, key: str, value: bytes) -> None:
        self.store["s:" + key] = value


@pytest.fixture
def cap_tokens():
    register_action("cap-tokens")(CapTokens)
    yield CapTokens
    from distillguard.gateway.actions import ACTIONS

    ACTIONS.unregister("cap-tokens")


@pytest.fixture
def dict_state():
    register_state_backend("dict")(DictState)
    yield DictState
    unregister_state_backend("dict")


# ---- actions -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["allow", "throttle", "perturb", "block"])
def test_built_in_actions_are_registered_and_conform(name):
    cls = action_class(name)
    assert cls is not None and cls.name == name
    check_action(cls)


def test_every_registered_action_conforms(cap_tokens):
    assert {"allow", "throttle", "perturb", "block", "cap-tokens"} <= set(registered_actions())
    for name in registered_actions():
        check_action(action_class(name))


def test_a_third_party_action_from_the_policy_by_name(cap_tokens):
    text = ("mode: enforce\ntiers:\n  - {name: ok, verdict: allow, action: allow}\n"
            "  - {name: watch, verdict: watch, action: cap-tokens}\n"
            "  - {name: slow, verdict: throttle, action: throttle, requests_per_minute: 60}\n"
            "  - {name: stop, verdict: block, action: block}\n")
    policy = parse_policy(text, "p.yaml")
    engine = Engine(policy, FixedScorer({"w": 0.5}, policy=policy.decide))
    import asyncio

    decision = asyncio.run(engine.decide("e1", "w", None, {}, 0))
    assert decision.action == "cap-tokens" and decision.tier == "watch" and decision.status is None
    flow = Flow(request={"model": "m", "messages": [], "max_tokens": 1000})
    engine.action_for(decision).apply(decision, flow)
    assert flow.request["max_tokens"] == 64 and flow.changes == ["max_tokens capped at 64"]
    # shadow: the action is not asked, nothing changes
    shadow = Engine(dataclasses.replace(policy, mode="shadow"), FixedScorer({"w": 0.5}, policy=policy.decide))
    decision = asyncio.run(shadow.decide("e2", "w", None, {}, 0))
    flow = Flow(request={"model": "m", "messages": [], "max_tokens": 1000})
    shadow.action_for(decision).apply(decision, flow)
    assert flow.request["max_tokens"] == 1000 and not flow.changes


def test_unknown_action_is_a_located_policy_error():
    text = "tiers:\n  - {name: a, verdict: allow, action: allow}\n  - {name: b, verdict: watch, action: tarpitt}\n"
    with pytest.raises(PolicyError, match=r"^p.yaml:3: tiers\[1\].action: must be one of allow, block, perturb, "
                                          r"throttle \(registered actions\); got 'tarpitt'") as caught:
        parse_policy(text, "p.yaml")
    assert isinstance(caught.value, DistillguardError) and isinstance(caught.value, ValueError)
    # a policy built in code with an unknown action fails when the engine builds its actions
    policy = load_policy()
    broken = dataclasses.replace(policy, tiers=(dataclasses.replace(policy.tiers[0], action="tarpitt"),
                                                *policy.tiers[1:]))
    with pytest.raises(ActionError, match="action: must be one of .*got 'tarpitt'"):
        Engine(broken, FixedScorer())


def test_action_registry_refuses_duplicates_and_non_actions():
    with pytest.raises(RegistryError, match="'block' is already registered"):
        register_action("block")(type("Other", (Action,), {}))
    with pytest.raises(ActionError, match="not a subclass"):
        register_action("not-an-action")(object)  # type: ignore[arg-type]


def test_check_action_names_the_broken_rule():
    from distillguard.gateway.actions import ACTIONS

    class Forgetful(Action):
        """Overrides apply without super(): refusals and output defences are lost."""

        def apply(self, decision: Decision, flow: Flow) -> None:
            return None

    class Leaky(Action):
        """Rewrites the request even for shadow decisions."""

        def apply(self, decision: Decision, flow: Flow) -> None:
            super().apply(decision, flow)
            flow.request["user"] = "tagged"

    class Lenient(Action):
        """Lets decisions over budget through."""

        def decide(self, decision: Decision, tier) -> None:
            decision.perturb = tier.perturb

    with pytest.raises(ConformanceError, match="not registered"):
        check_action(Forgetful)
    cases = {"forgetful": (Forgetful, "refused with 503"), "leaky": (Leaky, "shadow decision's exchange is left"),
             "lenient": (Lenient, "over budget is refused")}
    try:
        for name, (cls, rule) in cases.items():
            register_action(name)(cls)
            with pytest.raises(ConformanceError, match=rule):
                check_action(cls)
    finally:
        for name in cases:
            ACTIONS.unregister(name)


# ---- state backends ------------------------------------------------------------------------------------------
def test_memory_backend_conforms():
    check_state_backend(MemoryState)
    check_state_backend(lambda: open_state("memory"))
    check_state_backend(lambda: open_state("memory://"))


def test_a_third_party_backend_by_url_scheme(dict_state):
    assert state_backends()["dict"] is DictState
    backend = open_state("dict://anything")
    assert isinstance(backend, DictState) and isinstance(backend, StateBackend)
    check_state_backend(lambda: open_state("dict://x"))


def test_unknown_state_is_an_error_naming_the_schemes():
    for spec in ("postgres://db", "redis", "", "mem"):
        with pytest.raises(StateConfigError, match=r"--state: expected 'memory' or a URL with a registered scheme "
                                                   r"\(.*redis://.*\), got") as caught:
            open_state(spec)
        assert isinstance(caught.value, ValueError) and isinstance(caught.value, DistillguardError)
    assert isinstance(open_state("redis://127.0.0.1:1/0"), RedisState)


def test_check_state_backend_names_the_broken_rule():
    class Stringly(MemoryState):
        async def get_blob(self, key: str) -> bytes | None:
            value = await super().get_blob(key)
            return value.decode("latin-1") if value is not None else None  # type: ignore[return-value]

    class Boastful(MemoryState):
        shared = True  # claims replicas share it, but every instance has its own dicts

    class Generous(MemoryState):
        async def limit(self, key: str, now_ms: float, rate: Rate, cost: float = 1.0) -> tuple[bool, float]:
            return True, 0.0

    for cls, rule in ((Stringly, "returns the bytes last put, as bytes"),
                      (Boastful, "shared, but a second replica does not see"), (Generous, "GCRA gives")):
        with pytest.raises(ConformanceError, match=rule):
            check_state_backend(cls)


@pytest.mark.skipif(_NO_REDIS, reason="redis-server not installed (.ci/run installs it)")
def test_redis_backend_conforms():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no"], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)
        url = f"redis://127.0.0.1:{port}/0"
        check_state_backend(lambda: RedisState(url, prefix="conformance:"))
        check_state_backend(lambda: open_state(url))
        check_state_backend(lambda: open_state(url))  # keys are unique per run: checks repeat on one server
    finally:
        proc.terminate()
        proc.wait(timeout=10)
