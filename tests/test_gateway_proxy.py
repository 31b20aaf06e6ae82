"""The proxy end to end, in process: fake upstream via httpx ASGITransport, real decision path."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import httpx
import orjson
import pytest

from distillguard.gateway import fake_upstream
from distillguard.gateway.app import Gateway
from distillguard.gateway.audit import AuditLog, read_audit
from distillguard.gateway.engine import AccountInfo, Engine
from distillguard.gateway.policy import load_policy
from distillguard.gateway.scoring import FixedScorer
from distillguard.gateway.spool import Spool
from distillguard.store import Store

KEYS = {"k-good": "good", "k-bad": "bad", "k-sus": "sus", "k-watch": "watch", "k-org": "orgacct"}
RISKS = {"bad": 0.95, "sus": 0.7, "watch": 0.5, "orgacct": 0.99}
BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "logprobs": True}


def _policy(**over):
    return dataclasses.replace(load_policy(), mode="enforce", **over)


def _gateway(tmp_path: Path, policy=None, scorer=None, transport=None, spool: bool = False) -> Gateway:
    engine = Engine(policy or _policy(), scorer or FixedScorer(RISKS),
                    accounts={"orgacct": AccountInfo(org_id="acme", verified=True)},
                    audit=AuditLog(tmp_path / "audit.jsonl", fsync_ms=0))
    return Gateway("http://upstream", engine, keys=KEYS,
                   spool=Spool(Store.open(tmp_path / "store")) if spool else None,
                   transport=transport or httpx.ASGITransport(app=fake_upstream.app))


async def _post(gw: Gateway, key: str | None, body=BODY, **kw) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=gw), base_url="http://gw") as client:
        if isinstance(body, bytes):
            return await client.post("/v1/chat/completions", content=body, headers=headers, **kw)
        return await client.post("/v1/chat/completions", json=body, headers=headers, **kw)


async def test_allowed_account_gets_upstream_bytes_untouched(tmp_path):
    gw = _gateway(tmp_path)
    resp = await _post(gw, "k-good")
    assert resp.status_code == 200
    assert resp.json() == fake_upstream.completion("m")  # reasoning and logprobs intact
    entry = read_audit(tmp_path / "audit.jsonl")[-1]
    assert entry["account_id"] == "good" and entry["action"] == "allow" and entry["enforced"]


async def test_block_is_403_in_openai_format_and_audited(tmp_path):
    gw = _gateway(tmp_path)
    resp = await _post(gw, "k-bad")
    assert resp.status_code == 403
    error = resp.json()["error"]
    assert error["type"] == "permission_error" and error["code"] == "account_blocked"
    entry = read_audit(tmp_path / "audit.jsonl")[-1]
    assert entry["action"] == "block" and entry["status"] == 403
    assert any("fixed risk 0.95" in r for r in entry["reasons"])


async def test_throttle_is_429_with_retry_after_once_budget_is_spent(tmp_path):
    gw = _gateway(tmp_path)
    statuses = [(await _post(gw, "k-sus")).status_code for _ in range(8)]
    assert statuses[0] == 200 and statuses[-1] == 429  # suspect tier: 10/min, 30 s burst = 5 at once
    resp = await _post(gw, "k-sus")
    assert resp.status_code == 429 and int(resp.headers["retry-after"]) >= 1
    assert resp.json()["error"]["code"] == "rate_limit_exceeded"
    # throttle tier also perturbs: the requests that passed lost their reasoning
    good = await _post(gw, "k-good")
    assert good.status_code == 200


async def test_perturb_withholds_reasoning_non_streaming(tmp_path):
    resp = await _post(_gateway(tmp_path), "k-watch")
    message = resp.json()["choices"][0]
    assert resp.status_code == 200
    assert message["message"]["content"] == fake_upstream.ANSWER
    assert "reasoning_content" not in message["message"] and "logprobs" not in message


async def test_perturb_summarises_reasoning_in_streams_chunk_by_chunk(tmp_path):
    policy = _policy()
    policy = dataclasses.replace(policy, perturb=dataclasses.replace(policy.perturb, reasoning="summarise",
                                                                     summary_chars=20))
    gw = _gateway(tmp_path, policy=policy)
    resp = await _post(gw, "k-watch", body={**BODY, "stream": True})
    events = [orjson.loads(line[6:]) for line in resp.text.split("\n\n") if line.startswith("data: {")]
    reasoning = "".join(e["choices"][0]["delta"].get("reasoning_content", "") for e in events)
    content = "".join(e["choices"][0]["delta"].get("content") or "" for e in events)
    assert len(reasoning) <= 20 and reasoning == fake_upstream.REASONING[:len(reasoning)]
    assert content.strip() == fake_upstream.ANSWER
    assert resp.text.rstrip().endswith("data: [DONE]")


async def test_stream_passes_through_unchanged_for_legitimate_users(tmp_path):
    resp = await _post(_gateway(tmp_path), "k-good", body={**BODY, "stream": True})
    assert resp.content == b"".join(fake_upstream.chunks("m"))


async def test_shadow_mode_decides_and_logs_but_does_not_act(tmp_path):
    gw = _gateway(tmp_path, policy=dataclasses.replace(load_policy(), mode="shadow"))
    resp = await _post(gw, "k-bad")
    assert resp.status_code == 200 and "reasoning_content" in resp.json()["choices"][0]["message"]
    entry = read_audit(tmp_path / "audit.jsonl")[-1]
    assert entry["action"] == "block" and entry["enforced"] is False and entry["status"] is None


async def test_verified_organisation_is_exempt_only_when_the_policy_says_so(tmp_path):
    assert (await _post(_gateway(tmp_path), "k-org")).status_code == 403  # fraud rings get verified too
    resp = await _post(_gateway(tmp_path, policy=_policy(exempt_verified=True)), "k-org")
    assert resp.status_code == 200
    assert read_audit(tmp_path / "audit.jsonl")[-1]["tier"] == "exempt"


@pytest.mark.parametrize(("key", "body", "status", "code"), [
    (None, BODY, 401, "missing_api_key"),
    ("k-nope", BODY, 401, "invalid_api_key"),
    ("k-good", b"{not json", 400, "invalid_json"),
    ("k-good", b"[1, 2]", 400, "invalid_json"),
    ("k-good", {"model": "m", "messages": "hello"}, 400, "invalid_json"),
    ("k-good", {"model": "m", "messages": [{"role": "user", "content": "x" * 5000}]}, 413, "request_too_large"),
])
async def test_bad_requests_get_openai_errors(tmp_path, key, body, status, code):
    gw = _gateway(tmp_path, policy=_policy(max_body_bytes=4096))
    resp = await _post(gw, key, body=body)
    assert resp.status_code == status
    assert resp.json()["error"]["code"] == code


async def test_field_errors_name_the_field(tmp_path):
    resp = await _post(_gateway(tmp_path), "k-good", body={"model": 3, "messages": []})
    assert resp.status_code == 400 and resp.json()["error"]["param"] == "request.model"


async def test_unknown_route_and_method(tmp_path):
    gw = _gateway(tmp_path)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=gw), base_url="http://gw") as client:
        assert (await client.get("/v1/nothing")).status_code == 404
        assert (await client.get("/v1/chat/completions")).status_code == 405
        models = await client.get("/v1/models", headers={"authorization": "Bearer k-good"})
        assert models.status_code == 200 and models.json()["data"][0]["id"] == "fake-1"


class _Slow(httpx.AsyncBaseTransport):
    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)


class _Down(httpx.AsyncBaseTransport):
    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)


async def test_upstream_timeout_and_outage(tmp_path):
    assert (await _post(_gateway(tmp_path, transport=_Slow()), "k-good")).status_code == 504
    resp = await _post(_gateway(tmp_path, transport=_Down()), "k-good")
    assert resp.status_code == 502 and resp.json()["error"]["code"] == "upstream_unreachable"


class _Broken(FixedScorer):
    def score(self, account_id, exchange_row, now_ms):
        raise RuntimeError("model not loaded")


async def test_scorer_failure_follows_fail_mode(tmp_path):
    assert (await _post(_gateway(tmp_path, scorer=_Broken()), "k-bad")).status_code == 200
    resp = await _post(_gateway(tmp_path, policy=_policy(fail="closed"), scorer=_Broken()), "k-good")
    assert resp.status_code == 503 and resp.json()["error"]["type"] == "service_unavailable"
    assert "fail-closed" in read_audit(tmp_path / "audit.jsonl")[-1]["reasons"]


async def test_exchanges_reach_the_store_and_online_state(tmp_path):
    scorer = FixedScorer(RISKS)
    gw = _gateway(tmp_path, scorer=scorer, spool=True)
    for key in ("k-good", "k-bad", "k-watch"):
        await _post(gw, key)
    await _post(gw, "k-good", body={**BODY, "stream": True})
    await asyncio.sleep(0)
    assert await gw.flush() == 4
    con = Store.open(tmp_path / "store").connect()
    rows = con.execute("SELECT account_id, status, reasoning_chars, completion_tokens, stream FROM exchanges "
                       "ORDER BY account_id, stream").fetchall()
    assert rows == [("bad", 403, 0, None, False), ("good", 200, len(fake_upstream.REASONING), 30, False),
                    ("good", 200, len(fake_upstream.REASONING), 30, True),
                    ("watch", 200, len(fake_upstream.REASONING), 30, False)]
    assert scorer.observed == 4
    await gw.shutdown()


def test_spool_survives_a_kill(tmp_path):
    store = Store.open(tmp_path / "store")
    spool = Spool(store)
    spool.append({"id": "x1", "ts": "2026-03-01T00:00:00Z", "account_id": "a", "client": {"ip": "127.0.0.1"}})
    # no close(): a new process finds the spooled exchange and ingests it
    assert Spool(store).flush() == 1
    assert store.count() == 1
