"""The ASGI middleware in a FastAPI app, and the LiteLLM guardrail (importable without litellm)."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import httpx
import orjson
import pytest
from fastapi import FastAPI, HTTPException
from fastapi.responses import StreamingResponse

from distillguard.gateway import fake_upstream
from distillguard.gateway.engine import Engine
from distillguard.gateway.litellm_hook import DistillGuardGuardrail
from distillguard.gateway.middleware import DistillGuardMiddleware, bearer_account
from distillguard.gateway.policy import load_policy
from distillguard.gateway.scoring import FixedScorer

RISKS = {"bad": 0.95, "watch": 0.5}
BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def _engine() -> tuple[Engine, FixedScorer]:
    scorer = FixedScorer(RISKS)
    return Engine(dataclasses.replace(load_policy(), mode="enforce"), scorer), scorer


def _app(engine: Engine) -> FastAPI:
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat(body: dict):
        if body.get("stream"):
            return StreamingResponse(iter(fake_upstream.chunks("m")), media_type="text/event-stream")
        return fake_upstream.completion("m")

    app.add_middleware(DistillGuardMiddleware, engine=engine,
                       account=bearer_account({"k-good": "good", "k-bad": "bad", "k-watch": "watch"}))
    return app


async def _post(app, key, body=BODY):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app") as client:
        return await client.post("/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}"})


async def test_middleware_blocks_perturbs_and_leaves_others_alone():
    engine, scorer = _engine()
    app = _app(engine)
    assert (await _post(app, "k-good")).json() == fake_upstream.completion("m")
    blocked = await _post(app, "k-bad")
    assert blocked.status_code == 403 and blocked.json()["error"]["code"] == "account_blocked"
    perturbed = await _post(app, "k-watch")
    assert perturbed.status_code == 200
    assert "reasoning_content" not in perturbed.json()["choices"][0]["message"]
    assert int(perturbed.headers["content-length"]) == len(perturbed.content)
    stream = await _post(app, "k-watch", {**BODY, "stream": True})
    assert "reasoning_content" not in stream.text and "answer" in stream.text
    assert scorer.observed == 4


class _Choice:
    def __init__(self) -> None:
        self.message = SimpleNamespace(content="42", reasoning_content="long hidden chain", thinking_blocks=None)


class _ModelResponse:
    def __init__(self) -> None:
        self.choices = [_Choice()]

    def model_dump(self) -> dict:
        return {"choices": [{"message": {"role": "assistant", "content": "42",
                                         "reasoning_content": "long hidden chain"}, "finish_reason": "stop"}]}


async def test_litellm_guardrail_rejects_pre_call_and_perturbs_post_call():
    engine, scorer = _engine()
    hook = DistillGuardGuardrail(engine=engine, guardrail_name="distillguard")
    with pytest.raises(HTTPException) as info:
        await hook.async_pre_call_hook(SimpleNamespace(user_id="bad", metadata={}), None, dict(BODY), "completion")
    assert info.value.status_code == 403 and info.value.detail["code"] == "account_blocked"

    data = await hook.async_pre_call_hook(SimpleNamespace(user_id=None, metadata={"account_id": "watch"}), None,
                                          dict(BODY), "completion")
    response = await hook.async_post_call_success_hook(data, None, _ModelResponse())
    assert response.choices[0].message.reasoning_content is None and response.choices[0].message.content == "42"

    data = await hook.async_pre_call_hook(SimpleNamespace(user_id="good", metadata={}), None, dict(BODY), "completion")
    response = await hook.async_post_call_success_hook(data, None, _ModelResponse())
    assert response.choices[0].message.reasoning_content == "long hidden chain"
    assert scorer.observed == 3


async def test_middleware_perturbs_responses_api_json_and_streams():
    engine, scorer = _engine()
    app = FastAPI()

    @app.post("/v1/responses")
    async def responses(body: dict):
        if body.get("stream"):
            return StreamingResponse(iter(fake_upstream.response_stream("m")), media_type="text/event-stream")
        return fake_upstream.response("m")

    app.add_middleware(DistillGuardMiddleware, engine=engine,
                       account=bearer_account({"k-good": "good", "k-bad": "bad", "k-watch": "watch"}))

    async def post(key, body):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app") as client:
            return await client.post("/v1/responses", json=body, headers={"authorization": f"Bearer {key}"})

    request = {"model": "m", "input": "hi"}
    assert [i["type"] for i in (await post("k-good", request)).json()["output"]] == ["reasoning", "message"]
    assert [i["type"] for i in (await post("k-watch", request)).json()["output"]] == ["message"]
    assert (await post("k-bad", request)).status_code == 403
    stream = await post("k-watch", {**request, "stream": True})
    events = [orjson.loads(b[b.index("data: ") + 6:]) for b in stream.text.split("\n\n") if "data: " in b]
    assert events and not [e for e in events if "reasoning" in e["type"]]
    assert not [e for e in events if (e.get("item") or {}).get("type") == "reasoning"]
    assert [i["type"] for i in events[-1]["response"]["output"]] == ["message"]
    assert {e.get("output_index", 0) for e in events} == {0}
    assert scorer.observed == 4


async def test_litellm_guardrail_audits_requests_it_refuses_before_deciding(tmp_path):
    from distillguard.gateway.audit import AuditLog, read_audit

    engine = Engine(dataclasses.replace(load_policy(), mode="enforce"), FixedScorer(RISKS),
                    audit=AuditLog(tmp_path / "audit.jsonl", fsync_ms=0))
    hook = DistillGuardGuardrail(engine=engine, guardrail_name="distillguard")
    user = SimpleNamespace(user_id="good", metadata={}, token="sk-secret-token")
    with pytest.raises(HTTPException) as info:
        await hook.async_pre_call_hook(user, None, {"model": "m", "messages": "not a list"}, "acompletion")
    assert info.value.status_code == 400
    entry = read_audit(tmp_path / "audit.jsonl")[-1]
    assert entry["action"] == "refuse" and entry["status"] == 400 and entry["account_id"] == "good"
    assert entry["endpoint"] == "/v1/chat/completions" and entry["api_key_id"].startswith("key-")
    assert "sk-secret-token" not in (tmp_path / "audit.jsonl").read_text()
