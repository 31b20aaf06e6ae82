"""The resistance profile wired into the real gateway: the openai SDK over real sockets -> gateway -> fake upstream.

The upstream here records what it receives (headers and body) and is leaky on purpose: it echoes the directive it
got back in its response headers, so a test can show that nothing of it reaches the client. The profile, keys and
policy are the worked example under ``examples/resistance/``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import uvicorn
from click.testing import CliRunner

openai = pytest.importorskip("openai")

from conftest import free_port, start_server  # noqa: E402
from distillguard.cli import main  # noqa: E402
from distillguard.gateway import fake_upstream  # noqa: E402
from distillguard.gateway.app import Gateway  # noqa: E402
from distillguard.gateway.audit import AuditLog  # noqa: E402
from distillguard.gateway.engine import Engine  # noqa: E402
from distillguard.gateway.perturb import SUMMARY_MARK  # noqa: E402
from distillguard.gateway.policy import load_policy  # noqa: E402
from distillguard.gateway.scoring import FixedScorer  # noqa: E402
from distillguard.gateway.server import uvicorn_config  # noqa: E402
from distillguard.gateway.spool import Spool  # noqa: E402
from distillguard.resist.directive import HEADER, VLLM_XARGS, XARG_KEY, EngineDirective  # noqa: E402
from distillguard.resist.profile import load_profile  # noqa: E402
from distillguard.resist.text import CONCLUSION_LABEL, restructure_trace  # noqa: E402
from distillguard.store import Store  # noqa: E402

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "resistance"
SECRET = b"directive-secret"
KEYS = {"sk-good": "good", "sk-watch": "watch", "sk-sus": "sus", "sk-bad": "bad"}
RISKS = {"watch": 0.5, "sus": 0.7, "bad": 0.95}  # verdicts watch, throttle, block
FORGED = "v=1;ad=0;wm=-"  # a client trying to switch the engine's defences off
RESTRUCTURED = restructure_trace(fake_upstream.REASONING)


@pytest.fixture
def secrets_env(monkeypatch):
    monkeypatch.setenv("DG_WM_2026_01", "11" * 32)
    monkeypatch.setenv("DG_WM_2026_03", "22" * 32)
    monkeypatch.setenv("DG_RESIST_SECRET", SECRET.decode())


class RecordingUpstream:
    """The fake upstream, recording each request (path, headers, JSON body) and echoing a directive header."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], Any]] = []

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await fake_upstream.app(scope, receive, send)
            return
        body = await fake_upstream.read_body(receive)
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        self.requests.append((scope["path"], headers, orjson.loads(body) if body else None))
        sent = False

        async def replayed() -> dict:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def leaky(message: dict) -> None:
            if message["type"] == "http.response.start" and HEADER in headers:
                message = {**message, "headers": [*message["headers"], (HEADER.encode(), headers[HEADER].encode())]}
            await send(message)

        await fake_upstream.app(scope, replayed, leaky)

    def last(self) -> tuple[str, dict[str, str], Any]:
        return self.requests[-1]


@dataclasses.dataclass
class Stack:
    url: str
    gateway: Gateway
    upstream: RecordingUpstream
    store: Path

    def client(self, key: str) -> Any:
        return openai.AsyncOpenAI(api_key=key, base_url=self.url + "/v1", max_retries=0, timeout=10)


async def _stack(tmp_path: Path, policy: Any, profile: Any) -> AsyncIterator[Stack]:
    up_port, gw_port = free_port(), free_port()
    recording = RecordingUpstream()
    upstream, up_task = await start_server(uvicorn.Config(recording, host="127.0.0.1", port=up_port, log_level="error",
                                                    lifespan="off"))
    engine = Engine(policy, FixedScorer(RISKS), audit=AuditLog(tmp_path / "audit.jsonl", fsync_ms=0))
    gw = Gateway(f"http://127.0.0.1:{up_port}", engine, keys=KEYS, spool=Spool(Store.open(tmp_path / "store")),
                 flush_every_s=0, resistance=profile)
    gateway, gw_task = await start_server(uvicorn_config(gw, "127.0.0.1", gw_port, log_level="error", lifespan="off"))
    try:
        yield Stack(f"http://127.0.0.1:{gw_port}", gw, recording, tmp_path / "store")
    finally:
        gateway.should_exit = upstream.should_exit = True
        await asyncio.wait_for(gw_task, 10)
        await gw.shutdown()
        await asyncio.wait_for(up_task, 10)


def _policy_without_tier_reasoning() -> Any:
    """The example policy with its tiers' own trace defences removed (perturb.reasoning: withhold for all), so
    what the tests see of restructure and summarise comes from the profile."""
    policy = load_policy(EXAMPLE / "policy.yaml")
    return dataclasses.replace(policy, tiers=tuple(dataclasses.replace(t, reasoning=None) for t in policy.tiers))


@pytest.fixture
async def stack(tmp_path, secrets_env) -> AsyncIterator[Stack]:
    async for s in _stack(tmp_path, _policy_without_tier_reasoning(), load_profile(EXAMPLE / "resistance.yaml")):
        yield s


@pytest.fixture
async def shadow_stack(tmp_path, secrets_env) -> AsyncIterator[Stack]:
    policy = dataclasses.replace(_policy_without_tier_reasoning(), mode="shadow")
    async for s in _stack(tmp_path, policy, load_profile(EXAMPLE / "resistance.yaml")):
        yield s


@pytest.fixture
async def no_profile_stack(tmp_path) -> AsyncIterator[Stack]:
    async for s in _stack(tmp_path, load_policy(EXAMPLE / "policy.yaml"), None):
        yield s


def _spooled(stack: Stack) -> dict[str, dict]:
    path = stack.store / "gateway-spool" / "current.jsonl"
    return {r["id"]: r for r in map(json.loads, path.read_text().splitlines())}


def _no_directive(raw: Any, body: bytes) -> None:
    """Nothing of the directive reaches the client: no header, nothing in the body."""
    assert HEADER not in {k.lower() for k in raw.headers}
    for needle in (b"distillguard_resist", b"vllm_xargs", b"sig=", b"acme-2026", b"proxy=default"):
        assert needle not in body, needle


# ---- the engine directive ----------------------------------------------------------------------------------
@pytest.mark.parametrize(("key", "tier", "strength"), [("sk-good", "default", 0.0), ("sk-watch", "watch", 0.01),
                                                       ("sk-sus", "suspect", 0.02)])
async def test_directive_goes_upstream_signed_and_the_clients_own_is_removed(stack, key, tier, strength):
    raw = await stack.client(key).chat.completions.with_raw_response.create(
        model="fake-1", messages=[{"role": "user", "content": "what is 6*7?"}],
        extra_headers={"X-DistillGuard-Resist": FORGED},
        extra_body={VLLM_XARGS: {XARG_KEY: FORGED, "top_k_hint": 3}})
    path, headers, body = stack.upstream.last()
    assert path == "/v1/chat/completions"
    expected = EngineDirective(antidistillation=strength, proxy="default" if strength else None,
                               watermark_key="acme-2026-03", tier=tier)
    # header and vllm_xargs (transport: both), signed with the profile's secret: the engine can trust them
    assert EngineDirective.decode(headers[HEADER], SECRET) == expected
    assert body[VLLM_XARGS] == {XARG_KEY: headers[HEADER], "top_k_hint": 3}  # the client's other xargs kept
    assert FORGED not in json.dumps(headers) and FORGED not in json.dumps(body)
    _no_directive(raw, await raw.http_response.aread())
    assert raw.parse().choices[0].message.content == fake_upstream.ANSWER
    # the stored exchange: the client's request as sent, and what it was served with
    stored = _spooled(stack)[raw.headers["x-request-id"]]
    assert stored["request"][VLLM_XARGS] == {XARG_KEY: FORGED, "top_k_hint": 3}
    assert stored["resistance"] == {
        "profile": "acme-default", "profile_version": 1, "watermark_key": "acme-2026-03",
        "antidistillation": strength, "tier": tier,
        "reasoning": {"default": "keep", "watch": "restructure", "suspect": "summarise"}[tier]}


async def test_blocked_accounts_reach_no_engine_and_get_no_record(stack):
    with pytest.raises(openai.PermissionDeniedError) as info:
        await stack.client("sk-bad").chat.completions.create(model="fake-1", messages=[{"role": "user",
                                                                                        "content": "hi"}])
    assert stack.upstream.requests == []
    assert "resistance" not in _spooled(stack)[info.value.response.headers["x-request-id"]]


async def test_streams_and_responses_carry_the_directive_too(stack):
    stream = await stack.client("sk-watch").chat.completions.create(
        model="fake-1", messages=[{"role": "user", "content": "hi"}], stream=True,
        extra_headers={"X-DistillGuard-Resist": FORGED})
    async for _ in stream:
        pass
    assert EngineDirective.decode(stack.upstream.last()[1][HEADER], SECRET).antidistillation == 0.01
    raw = await stack.client("sk-sus").responses.with_raw_response.create(
        model="fake-1", input="hi", extra_body={VLLM_XARGS: {XARG_KEY: FORGED}})
    path, headers, body = stack.upstream.last()
    assert path == "/v1/responses"
    assert EngineDirective.decode(body[VLLM_XARGS][XARG_KEY], SECRET).tier == "suspect"
    _no_directive(raw, await raw.http_response.aread())


async def test_legacy_completions_pass_through_get_the_directive_never_the_clients(stack):
    import httpx

    async with httpx.AsyncClient(base_url=stack.url) as client:
        response = await client.post("/v1/completions", headers={"authorization": "Bearer sk-watch",
                                                                 "x-distillguard-resist": FORGED},
                                     json={"model": "fake-1", "prompt": "2+2=", VLLM_XARGS: {XARG_KEY: FORGED}})
    path, headers, body = stack.upstream.last()
    assert path == "/v1/completions"
    assert EngineDirective.decode(headers[HEADER], SECRET).antidistillation == 0.01
    assert body[VLLM_XARGS] == {XARG_KEY: headers[HEADER]}
    assert HEADER not in response.headers  # the (leaky) upstream echoed it; the gateway does not forward it


async def test_shadow_mode_keeps_only_the_watermark(shadow_stack):
    raw = await shadow_stack.client("sk-sus").chat.completions.with_raw_response.create(
        model="fake-1", messages=[{"role": "user", "content": "hi"}])
    message = raw.parse().choices[0].message
    assert message.reasoning_content == fake_upstream.REASONING  # no trace defence in shadow mode
    _, headers, _ = shadow_stack.upstream.last()
    assert EngineDirective.decode(headers[HEADER], SECRET) == EngineDirective(watermark_key="acme-2026-03",
                                                                              tier="suspect")
    record = _spooled(shadow_stack)[raw.headers["x-request-id"]]["resistance"]
    assert (record["antidistillation"], record["reasoning"], record["watermark_key"]) == (0.0, "keep",
                                                                                          "acme-2026-03")


async def test_without_a_profile_no_directive_and_a_clients_is_still_removed(no_profile_stack):
    await no_profile_stack.client("sk-watch").chat.completions.create(
        model="fake-1", messages=[{"role": "user", "content": "hi"}],
        extra_headers={"X-DistillGuard-Resist": FORGED}, extra_body={VLLM_XARGS: {XARG_KEY: FORGED, "x": 1}})
    _, headers, body = no_profile_stack.upstream.last()
    assert HEADER not in headers and body[VLLM_XARGS] == {"x": 1}


# ---- the trace defence ---------------------------------------------------------------------------------------
async def test_restructure_chat_json_and_stream_answer_intact(stack):
    message = (await stack.client("sk-watch").chat.completions.create(
        model="fake-1", messages=[{"role": "user", "content": "hi"}])).choices[0].message
    assert message.content == fake_upstream.ANSWER
    assert message.reasoning_content == RESTRUCTURED != fake_upstream.REASONING
    assert RESTRUCTURED.startswith(CONCLUSION_LABEL + "So the answer is 42.")

    kinds, reasoning, content = [], [], []
    stream = await stack.client("sk-watch").chat.completions.create(
        model="fake-1", messages=[{"role": "user", "content": "hi"}], stream=True)
    async for chunk in stream:
        for choice in chunk.choices:
            r = getattr(choice.delta, "reasoning_content", None)
            if r:
                reasoning.append(r)
                kinds.append("r")
            if choice.delta.content:
                content.append(choice.delta.content)
                kinds.append("c")
    assert reasoning == [RESTRUCTURED]  # one delta, rewritten, before the answer
    assert kinds.index("r") < kinds.index("c")
    assert "".join(content) == fake_upstream.ANSWER


async def test_a_profile_tier_summarises_where_it_says_so(stack):
    message = (await stack.client("sk-sus").chat.completions.create(
        model="fake-1", messages=[{"role": "user", "content": "hi"}])).choices[0].message
    assert message.content == fake_upstream.ANSWER and message.reasoning_content.endswith(SUMMARY_MARK)


async def test_restructure_responses_json_and_stream_answer_intact(stack):
    response = await stack.client("sk-watch").responses.create(model="fake-1", input="hi")
    assert [item.type for item in response.output] == ["reasoning", "message"]
    item = response.output[0]
    assert item.summary[0].text == RESTRUCTURED and item.content[0].text == RESTRUCTURED
    assert response.output_text == fake_upstream.ANSWER

    events = []
    async with stack.client("sk-watch").responses.stream(model="fake-1", input="hi") as stream:
        async for event in stream:  # every event parsed with the SDK's types
            events.append(event)
        final = await stream.get_final_response()
    kinds = [e.type for e in events]
    summary = [e.delta for e in events if e.type == "response.reasoning_summary_text.delta"]
    raw_text = [e.delta for e in events if e.type == "response.reasoning_text.delta"]
    assert summary == [RESTRUCTURED] and raw_text == [RESTRUCTURED]  # held back, sent as one delta each
    assert kinds.index("response.reasoning_summary_text.delta") + 1 == kinds.index(
        "response.reasoning_summary_text.done")
    assert {e.text for e in events if e.type.endswith("reasoning_summary_text.done")} == {RESTRUCTURED}
    assert {e.text for e in events if e.type.endswith("reasoning_text.done")} == {RESTRUCTURED}
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == fake_upstream.ANSWER
    assert final.output[0].summary[0].text == RESTRUCTURED and final.output_text == fake_upstream.ANSWER
    assert fake_upstream.REASONING not in "".join(e.model_dump_json(warnings=False) for e in events)


async def test_policy_tier_reasoning_restructure_without_a_profile(no_profile_stack):
    message = (await no_profile_stack.client("sk-watch").chat.completions.create(
        model="fake-1", messages=[{"role": "user", "content": "hi"}])).choices[0].message
    assert message.reasoning_content == RESTRUCTURED and message.content == fake_upstream.ANSWER
    response = await no_profile_stack.client("sk-watch").responses.create(model="fake-1", input="hi")
    assert response.output[0].summary[0].text == RESTRUCTURED
    good = (await no_profile_stack.client("sk-good").chat.completions.create(
        model="fake-1", messages=[{"role": "user", "content": "hi"}])).choices[0].message
    assert good.reasoning_content == fake_upstream.REASONING  # allowed accounts' bytes untouched


async def test_stored_response_read_back_gets_the_same_trace_defence(stack):
    created = await stack.client("sk-good").responses.create(model="fake-1", input="hi")
    read = await stack.client("sk-watch").responses.retrieve(created.id)
    assert read.output[0].summary[0].text == RESTRUCTURED and read.output_text == fake_upstream.ANSWER


# ---- the store: gateway -> spool -> ingest -> provenance served ----------------------------------------------
async def test_round_trip_gateway_spool_ingest_provenance_served(stack, tmp_path):
    ids = {}
    for key, prompt in (("sk-good", "first question"), ("sk-watch", "second question"),
                        ("sk-sus", "third question")):
        raw = await stack.client(key).chat.completions.with_raw_response.create(
            model="fake-1", messages=[{"role": "user", "content": prompt}])
        ids[KEYS[key]] = raw.headers["x-request-id"]
    await asyncio.sleep(0)
    assert await stack.gateway.flush() == 3
    con = Store.open(stack.store).connect()
    stored = dict(con.execute(
        "SELECT id, json_extract_string(extra_json, '$.resistance.reasoning') FROM exchanges").fetchall())
    assert stored == {ids["good"]: "keep", ids["watch"]: "restructure", ids["sus"]: "summarise"}

    out = tmp_path / "served.jsonl"
    result = CliRunner().invoke(main, ["provenance", "served", "--store", str(stack.store), "--key", "acme-2026-03",
                                       "--out", str(out)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert {r["exchange_id"] for r in rows} == set(ids.values())
    watched = next(r for r in rows if r["account_id"] == "watch")
    assert watched["prompt"] == "second question"
    assert watched["completion"] == fake_upstream.REASONING + fake_upstream.ANSWER  # what the engine generated
    result = CliRunner().invoke(main, ["provenance", "served", "--store", str(stack.store), "--key", "acme-2026-03",
                                       "--account", "sus", "--out", str(out)])
    assert result.exit_code == 0 and [json.loads(x)["exchange_id"] for x in out.read_text().splitlines()] == [
        ids["sus"]]
    result = CliRunner().invoke(main, ["provenance", "served", "--store", str(stack.store), "--key", "acme-2026-01",
                                       "--out", str(out)])
    assert result.exit_code == 0 and out.read_text() == ""  # the retired key marked none of this traffic


# ---- a profile adds trace defences, never removes the policy's -----------------------------------------------
def test_a_profile_keep_leaves_the_policys_trace_defence(tmp_path):
    from distillguard.gateway.actions import Flow
    from distillguard.gateway.engine import Decision
    from distillguard.gateway.resistance import Resistance
    from distillguard.resist.profile import parse_profile

    policy = _policy_without_tier_reasoning()  # perturb.reasoning: withhold
    profile = parse_profile("distillguard_resistance: 1\ntiers:\n  throttle: {reasoning: keep}\n"
                            "  allow: {reasoning: restructure}\n", "r.yaml")
    resistance = Resistance(profile, policy)
    engine = Engine(policy, FixedScorer())
    for tier, perturb, expected in (("suspect", True, "withhold"), ("default", False, "restructure"),
                                    ("exempt", False, "restructure")):  # exempt: the allow verdict's
        decision = Decision("x", "a", 0, "allow", tier, 0.0, perturb=perturb,
                            handler=engine._actions.get(tier))
        flow = Flow(request={"model": "m", "messages": []})
        resistance.prepare(decision, flow)
        action = engine.action_for(decision)
        assert action.reasoning(decision, flow) == expected
        record: dict = {}
        resistance.on_request(decision, dict(flow.request), {}, record, action.reasoning(decision, flow))
        assert record["resistance"]["reasoning"] == expected
    # text only where the decision does not perturb: log-probabilities and n stay as the client asked
    decision = Decision("x", "a", 0, "allow", "default", 0.0, handler=engine._actions["default"])
    flow = Flow(request={"model": "m", "messages": [], "logprobs": True, "n": 3})
    resistance.prepare(decision, flow)
    engine.action_for(decision).apply(decision, flow)
    assert flow.request["logprobs"] is True and flow.request["n"] == 3 and flow.changes == []
    flow.response = fake_upstream.completion("m")
    engine.action_for(decision).apply(decision, flow)
    choice = flow.response["choices"][0]
    assert choice["message"]["reasoning_content"] == RESTRUCTURED and "logprobs" in choice


# ---- configuration: CLI, replay, middleware ------------------------------------------------------------------
@pytest.mark.parametrize(("edit", "message"), [
    (("antidistillation: 0.01", "antidistillation: -1"), "tiers.watch.antidistillation: expected a number >= 0"),
    (("reasoning: restructure", "reasoning: scramble"), "tiers.watch.reasoning: must be one of"),
    (("key: acme-2026-03", "key: acme-2099-01"), "watermark.key: "),
])
def test_gateway_cli_refuses_a_bad_profile_with_its_location(tmp_path, secrets_env, edit, message):
    for name in ("keys.yaml", "policy.yaml"):
        (tmp_path / name).write_text((EXAMPLE / name).read_text())
    text = (EXAMPLE / "resistance.yaml").read_text()
    line = text[:text.index(edit[0])].count("\n") + 1
    (tmp_path / "r.yaml").write_text(text.replace(*edit))
    for args in (["gateway", "--upstream", "http://127.0.0.1:9", "--resistance", str(tmp_path / "r.yaml"),
                  "--store", str(tmp_path / "st"), "--audit", str(tmp_path / "a.jsonl")],
                 ["gateway", "replay", str(tmp_path / "keys.yaml"), "--out", str(tmp_path / "o"),
                  "--resistance", str(tmp_path / "r.yaml")]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 1, result.output
        assert f"{tmp_path / 'r.yaml'}:{line}: {message}" in " ".join(result.output.split())
        assert "Traceback" not in result.output and not isinstance(result.exception, ValueError)


def test_gateway_cli_names_a_missing_secret(tmp_path, monkeypatch, secrets_env):
    monkeypatch.delenv("DG_RESIST_SECRET")
    result = CliRunner().invoke(main, ["gateway", "--upstream", "http://127.0.0.1:9", "--resistance",
                                       str(EXAMPLE / "resistance.yaml"), "--store", str(tmp_path / "st")])
    assert result.exit_code == 1
    assert "resistance.yaml:17: engine.secret_env: environment variable DG_RESIST_SECRET is not set" in " ".join(
        result.output.split())
    monkeypatch.delenv("DG_WM_2026_01")
    result = CliRunner().invoke(main, ["gateway", "--upstream", "http://127.0.0.1:9", "--resistance",
                                       str(EXAMPLE / "resistance.yaml"), "--store", str(tmp_path / "st")])
    assert result.exit_code == 1 and "DG_WM_2026_01 is not set" in " ".join(result.output.split())


def test_replay_says_what_each_exchange_would_be_served_with(tmp_path, secrets_env):
    from conftest import make_record

    records = [make_record(i, account="acct_a" if i % 2 else "acct_b") for i in range(6)]
    (tmp_path / "log.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    result = CliRunner().invoke(main, ["gateway", "replay", str(tmp_path / "log.jsonl"), "--policy",
                                       str(EXAMPLE / "policy.yaml"), "--resistance", str(EXAMPLE / "resistance.yaml"),
                                       "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    import csv

    with open(tmp_path / "out" / "decisions.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 6
    assert all((r["tier"], r["antidistillation"], r["watermark_key"], r["reasoning"]) == (
        "default", "0", "acme-2026-03", "keep") for r in rows)  # new accounts: allowed, watermarked (apply_to: all)
    assert "6 watermarked" in result.output
    # without a profile the file keeps its usual columns
    result = CliRunner().invoke(main, ["gateway", "replay", str(tmp_path / "log.jsonl"), "--out",
                                       str(tmp_path / "plain")])
    assert result.exit_code == 0
    assert (tmp_path / "plain" / "decisions.csv").read_text().splitlines()[0].endswith("status,campaign_id")


async def test_asgi_middleware_gives_the_model_app_the_directive_and_the_trace_defence(secrets_env):
    import httpx

    from distillguard.gateway.middleware import DistillGuardMiddleware, bearer_account

    recording = RecordingUpstream()
    engine = Engine(_policy_without_tier_reasoning(), FixedScorer(RISKS))
    app = DistillGuardMiddleware(recording, engine=engine, account=bearer_account(KEYS),
                                 resistance=load_profile(EXAMPLE / "resistance.yaml"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app") as client:
        response = await client.post("/v1/chat/completions", headers={"authorization": "Bearer sk-watch",
                                                                      "x-distillguard-resist": FORGED},
                                     json={"model": "m", "messages": [{"role": "user", "content": "hi"}],
                                           VLLM_XARGS: {XARG_KEY: FORGED}})
        _, headers, body = recording.last()
        assert EngineDirective.decode(headers[HEADER], SECRET).antidistillation == 0.01
        assert body[VLLM_XARGS] == {XARG_KEY: headers[HEADER]}
        message = response.json()["choices"][0]["message"]
        assert message["reasoning_content"] == RESTRUCTURED and message["content"] == fake_upstream.ANSWER
        # a route the middleware does not decide: the client's directive header still never reaches the app
        await client.get("/v1/models", headers={"authorization": "Bearer sk-good", "x-distillguard-resist": FORGED})
        assert HEADER not in recording.last()[1]


# ---- the rewriters on their own ------------------------------------------------------------------------------
def _sse_objects(raw: bytes) -> list[dict]:
    return [orjson.loads(line[6:]) for line in raw.split(b"\n") if line.startswith(b"data: {")]


def test_responses_stream_restructure_in_any_chunking():
    from distillguard.gateway.perturb import ResponsesStreamPerturber
    from distillguard.gateway.policy import Perturb

    stream = b"".join(fake_upstream.response_stream("m"))
    outputs = set()
    for size in (1, 7, 100, len(stream)):
        r = ResponsesStreamPerturber(Perturb(reasoning="restructure", strip_logprobs=True))
        outputs.add(b"".join(r.feed(stream[i:i + size]) for i in range(0, len(stream), size)) + r.close())
    assert len(outputs) == 1
    events = _sse_objects(outputs.pop())
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    deltas = [e for e in events if e["type"] in ("response.reasoning_summary_text.delta",
                                                 "response.reasoning_text.delta")]
    assert [e["delta"] for e in deltas] == [RESTRUCTURED, RESTRUCTURED]
    assert deltas[0]["item_id"] == "rs_fake" and deltas[0]["output_index"] == 0
    final = events[-1]["response"]
    assert final["output"][0]["summary"][0]["text"] == RESTRUCTURED
    assert final["output"][1]["content"][0]["text"] == fake_upstream.ANSWER


def test_responses_stream_cut_before_done_releases_the_trace_at_the_end():
    from distillguard.gateway.perturb import ResponsesStreamPerturber
    from distillguard.gateway.policy import Perturb

    events = fake_upstream.response_stream("m")
    cut = [e for e in events if b"reasoning_summary_text.done" not in e and b"reasoning_text" not in e
           and b"output_item.done" not in e and b"response.completed" not in e]
    r = ResponsesStreamPerturber(Perturb(reasoning="restructure"))
    out = _sse_objects(b"".join(r.feed(e) for e in cut) + r.close())
    assert [e["delta"] for e in out if e["type"] == "response.reasoning_summary_text.delta"] == [RESTRUCTURED]


def test_chat_stream_restructure_through_the_stream_perturber():
    from distillguard.gateway.perturb import StreamPerturber
    from distillguard.gateway.policy import Perturb

    stream = b"".join(fake_upstream.chunks("m"))
    for size in (1, 50, len(stream)):
        r = StreamPerturber(Perturb(reasoning="restructure"))
        out = _sse_objects(b"".join(r.feed(stream[i:i + size]) for i in range(0, len(stream), size)) + r.close())
        reasoning = [c["choices"][0]["delta"]["reasoning_content"] for c in out
                     if c["choices"] and c["choices"][0]["delta"].get("reasoning_content")]
        assert reasoning == [RESTRUCTURED]
        assert "".join(c["choices"][0]["delta"].get("content") or "" for c in out) == fake_upstream.ANSWER


def test_policy_tier_reasoning_is_checked_and_located():
    from distillguard.gateway.policy import PolicyError, parse_policy

    text = (EXAMPLE / "policy.yaml").read_text()
    policy = parse_policy(text, "p.yaml")
    assert {t.name: t.reasoning for t in policy.tiers} == {"block": None, "suspect": "summarise",
                                                          "watch": "restructure", "default": None}
    assert policy.perturb_for(policy.tiers[2]).reasoning == "restructure"
    assert policy.perturb_for(policy.tiers[3]) is policy.perturb
    line = text[:text.index("reasoning: restructure")].count("\n") + 1
    with pytest.raises(PolicyError, match=r"p.yaml:\d+: tiers\[2\].reasoning: must be one of keep, withhold, "
                                          r"summarise, restructure; got 'scramble'") as info:
        parse_policy(text.replace("reasoning: restructure", "reasoning: scramble"), "p.yaml")
    assert (info.value.field, info.value.line) == ("tiers[2].reasoning", line)
    assert parse_policy(text.split("\nperturb: {")[0] + "\nperturb: {reasoning: restructure}\n",
                        "p.yaml").perturb.reasoning == "restructure"


async def test_litellm_guardrail_applies_restructure_as_withhold():
    """The LiteLLM hook is not wired for restructure: the trace is removed there, never passed on unchanged."""
    from types import SimpleNamespace

    from distillguard.gateway.litellm_hook import DistillGuardGuardrail
    from distillguard.gateway.policy import Perturb

    policy = dataclasses.replace(_policy_without_tier_reasoning(), perturb=Perturb(reasoning="restructure"))
    hook = DistillGuardGuardrail(engine=Engine(policy, FixedScorer(RISKS)), guardrail_name="distillguard")
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    data = await hook.async_pre_call_hook(SimpleNamespace(user_id="watch", metadata={}), None, dict(body),
                                          "acompletion")
    response = await hook.async_post_call_success_hook(data, None, fake_upstream.completion("m"))
    assert "reasoning_content" not in response["choices"][0]["message"]
    assert response["choices"][0]["message"]["content"] == fake_upstream.ANSWER
