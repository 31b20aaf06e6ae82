"""Security: the LiteLLM guardrail never hands a credential (or a LiteLLM object) to the engine, store or audit log.

Runs against the real LiteLLM package (the ``litellm`` extra, in the test extra too): ``data`` is built the
way LiteLLM's proxy builds it before the pre-call hook (``litellm.utils.function_setup`` for the logging
object, ``SecretFields`` with the raw headers, the proxy's metadata and request copies).
"""

from __future__ import annotations

import dataclasses
import os
from datetime import datetime

import orjson
import pytest
from fastapi import HTTPException

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no model-cost download at import
litellm = pytest.importorskip("litellm")

from litellm.proxy._types import UserAPIKeyAuth  # noqa: E402
from litellm.types.proxy.litellm_pre_call_utils import SecretFields  # noqa: E402
from litellm.types.utils import Message  # noqa: E402

from distillguard.gateway.audit import AuditLog, read_audit  # noqa: E402
from distillguard.gateway.engine import Engine  # noqa: E402
from distillguard.gateway.litellm_hook import DistillGuardGuardrail  # noqa: E402
from distillguard.gateway.policy import load_policy  # noqa: E402
from distillguard.gateway.scoring import FixedScorer  # noqa: E402

SECRET = "sk-live-0123456789abcdef-TOPSECRET"
PROVIDER_SECRET = "sk-ant-provider-credential-TOPSECRET"


def _proxy_data(messages: list) -> dict:
    """``data`` as LiteLLM's proxy hands it to ``async_pre_call_hook`` for a chat completion."""
    headers = {"authorization": f"Bearer {SECRET}", "x-api-key": SECRET, "content-type": "application/json",
               "user-agent": "openai-python/1.0"}
    body = {"model": "m", "messages": messages, "max_tokens": 64, "temperature": 0.2, "user": "end-user-7"}
    logging_obj, data = litellm.utils.function_setup(original_function="acompletion",
                                                     rules_obj=litellm.utils.Rules(), start_time=datetime.now(),
                                                     **dict(body, litellm_call_id="call-1"))
    data.update({
        "secret_fields": SecretFields(raw_headers=headers,
                                      user_provider_credentials={"anthropic": {"api_key": PROVIDER_SECRET}}),
        "proxy_server_request": {"url": "http://proxy/v1/chat/completions", "method": "POST", "headers": headers,
                                 "body": body},
        "metadata": {"user_api_key": "hashed", "headers": headers,
                     "user_api_key_auth": UserAPIKeyAuth(api_key=SECRET)},
        "headers": headers,
        "api_key": SECRET,  # LiteLLM copies an x-api-key header here
        "litellm_logging_obj": logging_obj,
        "some_future_litellm_field": {"token": SECRET},
    })
    return data


def _engine(tmp_path, risks: dict[str, float]) -> tuple[Engine, list]:
    seen: list = []
    engine = Engine(dataclasses.replace(load_policy(), mode="enforce"), FixedScorer(risks),
                    audit=AuditLog(tmp_path / "audit.jsonl", fsync_ms=0))
    decide, complete = engine.decide, engine.complete

    async def recording_decide(*args):
        seen.append(("decide", args))
        return await decide(*args)

    async def recording_complete(decision, row):
        seen.append(("complete", row))
        return await complete(decision, row)

    engine.decide, engine.complete = recording_decide, recording_complete
    return engine, seen


async def test_no_secret_reaches_the_engine_the_store_or_the_audit_log(tmp_path):
    engine, seen = _engine(tmp_path, {"watch": 0.5})
    hook = DistillGuardGuardrail(engine=engine, guardrail_name="distillguard")
    assert isinstance(hook, litellm.integrations.custom_guardrail.CustomGuardrail)
    messages = [Message(role="system", content="be brief"), {"role": "user", "content": "what is 6*7?"}]
    for user in (UserAPIKeyAuth(api_key=SECRET, user_id="watch"), UserAPIKeyAuth(api_key=SECRET)):
        data = _proxy_data(messages)
        out = await hook.async_pre_call_hook(user, None, data, "acompletion")
        assert out is data and out["secret_fields"]["raw_headers"]["authorization"] == f"Bearer {SECRET}"  # untouched
        response = litellm.ModelResponse(model="m", choices=[{"index": 0, "finish_reason": "stop", "message": {
            "role": "assistant", "content": "42", "reasoning_content": "six sevens"}}])
        await hook.async_post_call_success_hook(out, user, response)
    engine.audit.close()

    decide_rows = [args[3] for kind, args in seen if kind == "decide"]
    complete_rows = [row for kind, row in seen if kind == "complete"]
    assert len(decide_rows) == len(complete_rows) == 2
    for row in decide_rows + complete_rows:  # what the engine scores, and what a store would keep
        request = orjson.loads(row["request_json"])
        assert set(request) == {"model", "messages", "max_tokens", "temperature"}
        assert request["messages"][0]["role"] == "system" and request["messages"][0]["content"] == "be brief"
        assert row["user_text"] == "what is 6*7?" and row["max_tokens"] == 64
    everything = orjson.dumps([decide_rows, complete_rows, [args for kind, args in seen if kind == "decide"]],
                              default=str).decode()
    audit = (tmp_path / "audit.jsonl").read_text()
    for secret in (SECRET, PROVIDER_SECRET, UserAPIKeyAuth(api_key=SECRET).token):
        assert secret not in everything and secret not in audit
    assert "raw_headers" not in everything and "litellm_logging_obj" not in everything
    accounts = [entry["account_id"] for entry in read_audit(tmp_path / "audit.jsonl")]
    assert accounts[0] == "watch" and accounts[1].startswith("key-")  # the key fallback is an id, not the key
    assert complete_rows[0]["response_text"] == "42"


async def test_requests_the_engine_cannot_store_are_refused_truthfully(tmp_path):
    engine, seen = _engine(tmp_path, {})
    hook = DistillGuardGuardrail(engine=engine, guardrail_name="distillguard")
    user = UserAPIKeyAuth(api_key=SECRET, user_id="a")
    with pytest.raises(HTTPException) as info:  # an object in the messages: not "nested too deeply"
        await hook.async_pre_call_hook(user, None, _proxy_data([{"role": "user", "content": object()}]),
                                       "acompletion")
    assert info.value.status_code == 400 and "not JSON serializable" in info.value.detail["message"]
    with pytest.raises(HTTPException) as info:
        await hook.async_pre_call_hook(user, None, _proxy_data(["not a message"]), "acompletion")
    assert info.value.status_code == 400 and info.value.detail["param"] == "request.messages[0]"
    assert seen == []
    engine.audit.close()
