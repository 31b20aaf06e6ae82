"""A LiteLLM proxy guardrail: refuse in the pre-call hook, perturb in the post-call hook.

``config.yaml`` of a LiteLLM proxy::

    guardrails:
      - guardrail_name: distillguard
        litellm_params:
          guardrail: distillguard.gateway.litellm_hook.DistillGuardGuardrail
          mode: [pre_call, post_call]

or, as a callback, a module of yours with ``handler = DistillGuardGuardrail()`` named in
``litellm_settings: {callbacks: yourmodule.handler}``.
Settings come from ``DISTILLGUARD_POLICY``, ``DISTILLGUARD_DETECTIONS``,
``DISTILLGUARD_STATE`` and ``DISTILLGUARD_AUDIT``. LiteLLM is optional (the ``litellm``
extra): without it the class derives from a stand-in, so it imports and tests anywhere.

LiteLLM's ``data`` is not the client's request: the proxy adds ``secret_fields`` (the raw
request headers, ``Authorization`` included), ``proxy_server_request`` (headers again),
``metadata`` (key details), ``litellm_logging_obj`` (a live object) and more, release by
release. The engine, the store and the audit log see only :func:`engine_request`: the
OpenAI chat request fields, by allow-list, copied as plain JSON.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import orjson
from fastapi import HTTPException

from distillguard.gateway.actions import Flow, actions_for
from distillguard.gateway.app import finish_record, key_id, new_record, record_row
from distillguard.gateway.audit import AuditLog
from distillguard.gateway.config import build_scorer
from distillguard.gateway.engine import Decision, Engine
from distillguard.gateway.perturb import summarise
from distillguard.gateway.policy import load_policy
from distillguard.gateway.state import open_state
from distillguard.model import FieldError

# The OpenAI chat-completions request parameters: all the engine and the store ever see of LiteLLM's ``data``.
REQUEST_FIELDS = frozenset({
    "model", "messages", "tools", "tool_choice", "functions", "function_call", "parallel_tool_calls", "stream",
    "stream_options", "temperature", "top_p", "n", "max_tokens", "max_completion_tokens", "stop",
    "presence_penalty", "frequency_penalty", "logit_bias", "logprobs", "top_logprobs", "response_format", "seed",
    "reasoning_effort", "verbosity", "modalities", "audio", "prediction", "service_tier", "web_search_options",
})

if "litellm" not in sys.modules:  # imported outside a LiteLLM proxy: no model-cost download at import time
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
try:  # pragma: no cover - exercised only where litellm is installed
    from litellm.integrations.custom_guardrail import CustomGuardrail as _Base
except ImportError:

    class _Base:  # type: ignore[no-redef]
        """Stand-in for ``litellm.integrations.custom_guardrail.CustomGuardrail``."""

        def __init__(self, **kwargs: Any) -> None:
            self.optional_params = kwargs


def account_of(user_api_key_dict: Any) -> str:
    """The account behind a LiteLLM virtual key: metadata.account_id, else user, team, then an id of the key.

    The key fallback is :func:`~distillguard.gateway.app.key_id` of LiteLLM's ``token`` (already a hash of the
    key in LiteLLM, hashed again here so that a raw key in ``token`` could never become a stored account id).
    """
    metadata = getattr(user_api_key_dict, "metadata", None) or {}
    for value in (metadata.get("account_id"), getattr(user_api_key_dict, "user_id", None),
                  getattr(user_api_key_dict, "team_id", None)):
        if value:
            return str(value)
    token = getattr(user_api_key_dict, "token", None)
    return key_id(str(token)) if token else "anonymous"


def engine_request(data: dict) -> dict[str, Any]:
    """The client's chat request inside LiteLLM's ``data``: the :data:`REQUEST_FIELDS` only, as plain JSON.

    An allow-list, not a deny-list, so a key LiteLLM adds in a later release (credentials, objects) stays out.
    Values are deep copies (the hook may edit ``data``, and LiteLLM goes on using it). A field that is not
    JSON (an object LiteLLM put there) is left out; ``messages`` that are not JSON are refused (400).
    """
    request: dict[str, Any] = {}
    for key, value in data.items():
        if key not in REQUEST_FIELDS or value is None:
            continue
        try:
            request[key] = orjson.loads(orjson.dumps(value, default=_plain))
        except (TypeError, orjson.JSONEncodeError) as exc:
            if key == "messages":
                raise HTTPException(status_code=400, detail={
                    "message": f"Invalid request: messages cannot be read as JSON: {exc}",
                    "type": "invalid_request_error", "param": "messages", "code": "invalid_json"}) from None
    return request


def _plain(value: Any) -> Any:
    """orjson ``default``: pydantic models (LiteLLM's message types) as their JSON data, anything else refused."""
    dump = getattr(value, "model_dump", None)
    if callable(dump) and not isinstance(value, type):
        return dump(mode="json")
    raise TypeError(f"Type is not JSON serializable: {type(value).__name__}")


def _engine_from_env() -> Engine:
    policy = load_policy(os.environ.get("DISTILLGUARD_POLICY"))
    audit = os.environ.get("DISTILLGUARD_AUDIT")
    return Engine(policy, build_scorer(policy, os.environ.get("DISTILLGUARD_DETECTIONS")),
                  state=open_state(os.environ.get("DISTILLGUARD_STATE", "memory")),
                  audit=AuditLog(audit) if audit else None)


class DistillGuardGuardrail(_Base):
    def __init__(self, engine: Engine | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.engine = engine or _engine_from_env()
        self._pending: dict[str, tuple[Decision, dict[str, Any], float]] = {}

    async def async_pre_call_hook(self, user_api_key_dict: Any, cache: Any, data: dict, call_type: str) -> dict:
        if call_type not in ("completion", "acompletion"):
            return data
        account = account_of(user_api_key_dict)
        token = getattr(user_api_key_dict, "token", None)
        started, now_ms = time.perf_counter(), int(time.time() * 1000)
        record = new_record(account, key_id(str(token)) if token else None, "0.0.0.0", None, engine_request(data),
                            now_ms)
        try:
            row = record_row(record)
        except FieldError as exc:
            raise HTTPException(status_code=400, detail={
                "message": f"Invalid request: {exc.reason}", "type": "invalid_request_error", "param": exc.field,
                "code": "invalid_json"}) from None
        decision = await self.engine.decide(record["id"], account, None, row, now_ms)
        flow = Flow(request=data)
        for action in actions_for(decision, self.engine.policy.perturb):
            action.apply(decision, flow)
        if flow.refusal is not None:
            status, body, _ = flow.refusal
            await self.engine.complete(decision, finish_record(record, decision, None, status, started))
            raise HTTPException(status_code=status, detail=orjson.loads(body)["error"])
        self._pending[record["id"]] = (decision, record, started)
        data.setdefault("metadata", {})["distillguard_id"] = record["id"]
        return data

    async def async_post_call_success_hook(self, data: dict, user_api_key_dict: Any, response: Any) -> Any:
        pending = self._pending.pop((data.get("metadata") or {}).get("distillguard_id", ""), None)
        if pending is None:
            return response
        decision, record, started = pending
        body = response.model_dump() if hasattr(response, "model_dump") else response
        if decision.perturb:
            _perturb_model_response(response, self.engine.policy.perturb)
        await self.engine.complete(decision, finish_record(record, decision, body if isinstance(body, dict) else None,
                                                           200, started))
        return response


def _perturb_model_response(response: Any, p: Any) -> None:
    """Withhold or summarise reasoning on a LiteLLM ``ModelResponse`` (attribute access) or a dict."""
    for choice in _get(response, "choices") or []:
        message = _get(choice, "message")
        if message is None:
            continue
        for key in ("reasoning_content", "thinking_blocks"):
            value = _get(message, key)
            if value is None or p.reasoning == "keep":
                continue
            new = summarise(value, p.summary_chars) if p.reasoning == "summarise" and isinstance(value, str) else None
            if isinstance(message, dict):
                message[key] = new
            else:
                setattr(message, key, new)


def _get(obj: Any, key: str) -> Any:
    return obj.get(key) if isinstance(obj, dict) else getattr(obj, key, None)

