"""A LiteLLM proxy guardrail: refuse in the pre-call hook, perturb in the post-call hooks (JSON and streams).

``config.yaml`` of a LiteLLM proxy (tested against a real ``litellm --config`` run)::

    guardrails:
      - guardrail_name: distillguard
        litellm_params:
          guardrail: distillguard.gateway.litellm_hook.DistillGuardGuardrail
          mode: [pre_call, post_call]
          default_on: true        # required: LiteLLM runs a guardrail only on requests that name it otherwise
          policy: /etc/distillguard/policy.yaml    # optional; else DISTILLGUARD_POLICY, else the shipped default
          detections: /var/lib/distillguard/detect # optional; else DISTILLGUARD_DETECTIONS
          audit: /var/log/distillguard/audit.jsonl # optional; else DISTILLGUARD_AUDIT
          state: memory                            # optional; else DISTILLGUARD_STATE (memory | redis://...)

LiteLLM is optional (the ``litellm`` extra): without it the class derives from a stand-in, so it imports and
tests anywhere.

What runs where: chat completions (``acompletion``) and the Responses API (``aresponses``) are decided before the
call, perturbed after it (``async_post_call_success_hook`` for JSON answers,
``async_post_call_streaming_iterator_hook`` for streams: reasoning deltas and reasoning events are removed before
LiteLLM serialises them for the client) and recorded into the account's online state; any other call type
(embeddings, files, batches, ...) is decided and audited, so a blocked account is refused there too.

LiteLLM's ``data`` is not the client's request: the proxy adds ``secret_fields`` (the raw
request headers, ``Authorization`` included), ``proxy_server_request`` (headers again),
``metadata`` (key details), ``litellm_logging_obj`` (a live object) and more, release by
release. The engine, the store and the audit log see only :func:`engine_request`: the
OpenAI request fields, by allow-list, copied as plain JSON.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from collections import OrderedDict
from collections.abc import AsyncGenerator
from enum import Enum
from typing import Any

import orjson
from fastapi import HTTPException

from distillguard.gateway.actions import Flow
from distillguard.gateway.asgi import CHAT, RESPONSES, key_id
from distillguard.gateway.audit import AuditLog
from distillguard.gateway.config import build_scorer
from distillguard.gateway.engine import Decision, Engine
from distillguard.gateway.perturb import summarise
from distillguard.gateway.policy import Perturb, load_policy
from distillguard.gateway.records import finish_record, new_record, record_row
from distillguard.gateway.state import open_state
from distillguard.model import FieldError

log = logging.getLogger("distillguard.gateway")

# The OpenAI chat-completions request parameters: all the engine and the store ever see of LiteLLM's ``data``.
REQUEST_FIELDS = frozenset({
    "model", "messages", "tools", "tool_choice", "functions", "function_call", "parallel_tool_calls", "stream",
    "stream_options", "temperature", "top_p", "n", "max_tokens", "max_completion_tokens", "stop",
    "presence_penalty", "frequency_penalty", "logit_bias", "logprobs", "top_logprobs", "response_format", "seed",
    "reasoning_effort", "verbosity", "modalities", "audio", "prediction", "service_tier", "web_search_options",
})
# The Responses API request parameters (``aresponses``).
RESPONSES_FIELDS = frozenset({
    "model", "input", "instructions", "tools", "tool_choice", "parallel_tool_calls", "stream", "temperature",
    "top_p", "max_output_tokens", "max_tool_calls", "reasoning", "include", "text", "truncation", "top_logprobs",
    "previous_response_id", "store", "background", "service_tier", "prompt_cache_key",
})
CHAT_CALLS = frozenset({"completion", "acompletion"})
RESPONSES_CALLS = frozenset({"responses", "aresponses"})
MAX_PENDING = 100_000  # decided requests awaiting their post-call hook (a hook LiteLLM never calls must not leak)
_REASONING_ATTRS = ("reasoning_content", "thinking_blocks", "reasoning_items", "reasoning")
_SETTINGS = {"policy": "DISTILLGUARD_POLICY", "detections": "DISTILLGUARD_DETECTIONS",
             "state": "DISTILLGUARD_STATE", "audit": "DISTILLGUARD_AUDIT"}

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

    The key fallback is :func:`~distillguard.gateway.asgi.key_id` of LiteLLM's ``token`` (already a hash of the
    key in LiteLLM, hashed again here so that a raw key in ``token`` could never become a stored account id).
    """
    metadata = getattr(user_api_key_dict, "metadata", None) or {}
    for value in (metadata.get("account_id"), getattr(user_api_key_dict, "user_id", None),
                  getattr(user_api_key_dict, "team_id", None)):
        if value:
            return str(value)
    token = getattr(user_api_key_dict, "token", None)
    return key_id(str(token)) if token else "anonymous"


def engine_request(data: dict, fields: frozenset[str] = REQUEST_FIELDS) -> dict[str, Any]:
    """The client's request inside LiteLLM's ``data``: the ``fields`` only, as plain JSON.

    An allow-list, not a deny-list, so a key LiteLLM adds in a later release (credentials, objects) stays out.
    Values are deep copies (the hook may edit ``data``, and LiteLLM goes on using it). A field that is not
    JSON (an object LiteLLM put there) is left out; ``messages`` or ``input`` that are not JSON are refused (400).
    """
    request: dict[str, Any] = {}
    for key, value in data.items():
        if key not in fields or value is None:
            continue
        try:
            request[key] = orjson.loads(orjson.dumps(value, default=_plain))
        except (TypeError, orjson.JSONEncodeError) as exc:
            if key in ("messages", "input"):
                raise HTTPException(status_code=400, detail={
                    "message": f"Invalid request: {key} cannot be read as JSON: {exc}",
                    "type": "invalid_request_error", "param": key, "code": "invalid_json"}) from None
    return request


def _plain(value: Any) -> Any:
    """orjson ``default``: pydantic models (LiteLLM's message types) as their JSON data, anything else refused."""
    dump = getattr(value, "model_dump", None)
    if callable(dump) and not isinstance(value, type):
        return dump(mode="json")
    raise TypeError(f"Type is not JSON serializable: {type(value).__name__}")


def _engine_from_settings(settings: dict[str, Any]) -> Engine:
    """An engine from the guardrail's ``litellm_params`` (``policy``, ``detections``, ``state``, ``audit``), each
    falling back to its ``DISTILLGUARD_*`` environment variable."""
    value = {name: settings.get(name) or os.environ.get(env) for name, env in _SETTINGS.items()}
    policy = load_policy(value["policy"])
    return Engine(policy, build_scorer(policy, value["detections"]), state=open_state(value["state"] or "memory"),
                  audit=AuditLog(value["audit"]) if value["audit"] else None)


class _Pending:
    __slots__ = ("decision", "record", "started", "api")

    def __init__(self, decision: Decision, record: dict[str, Any], started: float, api: str) -> None:
        self.decision, self.record, self.started, self.api = decision, record, started, api


class DistillGuardGuardrail(_Base):
    def __init__(self, engine: Engine | None = None, **kwargs: Any) -> None:
        settings = {name: kwargs.pop(name, None) for name in _SETTINGS}
        super().__init__(**kwargs)
        self.engine = engine or _engine_from_settings(settings)
        self._pending: OrderedDict[str, _Pending] = OrderedDict()
        self._tasks: set[asyncio.Task] = set()

    # ---- before the call ---------------------------------------------------
    async def async_pre_call_hook(self, user_api_key_dict: Any, cache: Any, data: dict, call_type: str) -> dict:
        call = str(getattr(call_type, "value", call_type))
        api = "chat" if call in CHAT_CALLS else "responses" if call in RESPONSES_CALLS else None
        account = account_of(user_api_key_dict)
        token = getattr(user_api_key_dict, "token", None)
        started, now_ms = time.perf_counter(), int(time.time() * 1000)
        if api is None:  # another endpoint: decided and audited (a blocked account is blocked everywhere)
            model = data.get("model")
            request = {"model": model} if isinstance(model, str) else {}
            endpoint = f"litellm:{call}"
        else:
            endpoint = CHAT if api == "chat" else RESPONSES
            try:
                request = engine_request(data, REQUEST_FIELDS if api == "chat" else RESPONSES_FIELDS)
            except HTTPException as exc:
                self._refused(account, token, now_ms, endpoint, exc)
                raise
        record = new_record(account, key_id(str(token)) if token else None, "0.0.0.0", None, request, now_ms,
                            endpoint=endpoint)
        try:
            row = record_row(record)
        except FieldError as exc:
            refusal = HTTPException(status_code=400, detail={
                "message": f"Invalid request: {exc.reason}", "type": "invalid_request_error", "param": exc.field,
                "code": "invalid_json"})
            self._refused(account, token, now_ms, endpoint, refusal)
            raise refusal from None
        decision = await self.engine.decide(record["id"], account, None, row, now_ms)
        flow = Flow(request=data, api=api or "chat")
        if api is not None or decision.status is not None:  # other endpoints: refusals only, never edits
            self.engine.action_for(decision).apply(decision, flow)
        if flow.refusal is not None:
            status, body, _ = flow.refusal
            if api is not None:
                await self.engine.complete(decision, finish_record(record, decision, None, status, started))
            raise HTTPException(status_code=status, detail=orjson.loads(body)["error"])
        if api is not None:
            self._pending[record["id"]] = _Pending(decision, record, started, api)
            while len(self._pending) > MAX_PENDING:  # post-call hooks that never came: the oldest go
                self._pending.popitem(last=False)
            data.setdefault("metadata", {})["distillguard_id"] = record["id"]
        return data

    def _refused(self, account: str, token: Any, now_ms: int, endpoint: str, exc: HTTPException) -> None:
        """Audit a request refused before any decision (a key id, never the key), as the gateway does."""
        detail = exc.detail if isinstance(exc.detail, dict) else {"message": str(exc.detail)}
        try:
            self.engine.refused(new_record(account, None, "0.0.0.0", None, {}, now_ms)["id"], now_ms,
                                exc.status_code, detail.get("code"), str(detail.get("message", "")),
                                account_id=account, api_key_id=key_id(str(token)) if token else None,
                                endpoint=endpoint)
        except Exception:  # noqa: BLE001 - the refusal stands whatever happens to its audit line
            log.exception("auditing a refused LiteLLM request failed")

    def _take(self, data: Any) -> _Pending | None:
        metadata = (data.get("metadata") if isinstance(data, dict) else None) or {}
        request_id = metadata.get("distillguard_id") if isinstance(metadata, dict) else None
        return self._pending.pop(request_id, None) if isinstance(request_id, str) else None

    async def _complete(self, pending: _Pending, response: dict | None, status: int, note: str | None = None) -> None:
        """Fold the exchange into online state and charge its tokens."""
        decision = pending.decision
        try:
            row = finish_record(pending.record, decision, response, status, pending.started, note=note)
            await self.engine.complete(decision, row)
        except Exception:  # noqa: BLE001 - online state must never fail a request already served
            log.exception("completing exchange %s failed", decision.id)

    # ---- after the call: JSON answers --------------------------------------
    async def async_post_call_success_hook(self, data: dict, user_api_key_dict: Any, response: Any) -> Any:
        pending = self._take(data)
        if pending is None:
            return response
        body = _dump(response)
        if pending.decision.perturb:
            _perturb_answer(response, self.engine.policy.perturb, pending.api)
        await self._complete(pending, body, 200)
        return response

    async def async_post_call_failure_hook(self, request_data: dict, original_exception: Exception,
                                           user_api_key_dict: Any, traceback_str: str | None = None) -> Any:
        pending = self._take(request_data)
        if pending is not None:
            status = getattr(original_exception, "status_code", None)
            await self._complete(pending, None, status if isinstance(status, int) else 500,
                                 f"upstream call failed: {type(original_exception).__name__}")
        return None

    # ---- after the call: streams -------------------------------------------
    async def async_post_call_streaming_iterator_hook(self, user_api_key_dict: Any, response: Any,
                                                      request_data: dict) -> AsyncGenerator[Any, None]:
        """Every chunk (chat) or event (Responses) of a stream, before LiteLLM serialises it for the client:
        recorded, and for a perturbed account rewritten (reasoning removed or cut to the summary budget)."""
        pending = self._take(request_data)
        if pending is None:
            async for item in response:
                yield item
            return
        p = self.engine.policy.perturb
        watch = _ChatStream(p) if pending.api == "chat" else _ResponsesStream(p)
        note = None
        try:
            async for item in response:
                watch.observe(item)
                if pending.decision.perturb and not watch.rewrite(item):
                    continue
                yield item
        except Exception as exc:
            note = f"stream failed: {type(exc).__name__}"
            raise
        finally:  # also when the client goes away (GeneratorExit): completed in a task, no await here
            task = asyncio.ensure_future(self._complete(pending, watch.response(), 200, note))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)


def _dump(response: Any) -> dict | None:
    body = response.model_dump() if hasattr(response, "model_dump") else response
    return body if isinstance(body, dict) else None


def _get(obj: Any, key: str) -> Any:
    value = obj.get(key) if isinstance(obj, dict) else getattr(obj, key, None)
    return value.value if isinstance(value, Enum) else value  # LiteLLM's event types are str enums


def _drop(obj: Any, key: str) -> None:
    """Remove ``key`` from a dict or a LiteLLM/pydantic object (so it is not serialised at all)."""
    if isinstance(obj, dict):
        obj.pop(key, None)
        return
    if getattr(obj, key, None) is None:
        return
    if hasattr(type(obj), "model_fields"):  # pydantic (LiteLLM's types): deleted fields are not serialised
        try:
            delattr(obj, key)
            return
        except (AttributeError, TypeError):
            pass
    setattr(obj, key, None)


def _set(obj: Any, key: str, value: Any) -> None:
    if isinstance(obj, dict):
        obj[key] = value
    else:
        setattr(obj, key, value)


def _scrub(message: Any, p: Perturb, budget: list[int] | None = None) -> None:
    """Reasoning off a chat message or delta: withheld, or (``summarise``) a string cut to the budget."""
    if p.reasoning == "keep":
        return
    for key in _REASONING_ATTRS:
        value = _get(message, key)
        if value is None:
            continue
        if p.reasoning == "summarise" and isinstance(value, str) and key == "reasoning_content":
            if budget is None:
                _set(message, key, summarise(value, p.summary_chars))
            elif budget[0] > 0:
                _set(message, key, value[:budget[0]])
                budget[0] -= len(value[:budget[0]])
            else:
                _drop(message, key)
        else:
            _drop(message, key)
    fields = _get(message, "provider_specific_fields")
    if isinstance(fields, dict):
        for key in _REASONING_ATTRS:
            fields.pop(key, None)


def _perturb_answer(response: Any, p: Perturb, api: str) -> None:
    """A LiteLLM ``ModelResponse`` (attribute access) or dict: reasoning withheld or summarised, logprobs gone;
    a Responses API answer loses its reasoning items."""
    if api == "responses":
        output = _get(response, "output")
        if isinstance(output, list) and p.reasoning != "keep":
            _set(response, "output", [item for item in output if _get(item, "type") != "reasoning"])
        return
    for choice in _get(response, "choices") or []:
        message = _get(choice, "message")
        if message is not None:
            _scrub(message, p)
        if p.strip_logprobs and _get(choice, "logprobs") is not None:
            _drop(choice, "logprobs")


class _ChatStream:
    """Chat chunks (``ModelResponseStream``): accumulated for the record, reasoning deltas rewritten."""

    def __init__(self, p: Perturb) -> None:
        self.p = p
        self.budget = [p.summary_chars]
        self.content: list[str] = []
        self.reasoning: list[str] = []
        self.finish: str | None = None
        self.usage: dict | None = None
        self.meta: dict[str, Any] = {}

    def observe(self, chunk: Any) -> None:
        for key in ("id", "model", "created"):
            if key not in self.meta and _get(chunk, key) is not None:
                self.meta[key] = _get(chunk, key)
        usage = _get(chunk, "usage")
        if usage is not None:
            self.usage = usage.model_dump() if hasattr(usage, "model_dump") else usage
        choices = _get(chunk, "choices") or []
        if not choices:
            return
        delta = _get(choices[0], "delta")
        if delta is not None:
            if isinstance(_get(delta, "content"), str):
                self.content.append(_get(delta, "content"))
            reasoning = _get(delta, "reasoning_content")
            if isinstance(reasoning, str):
                self.reasoning.append(reasoning)
        if isinstance(_get(choices[0], "finish_reason"), str):
            self.finish = _get(choices[0], "finish_reason")

    def rewrite(self, chunk: Any) -> bool:
        for choice in _get(chunk, "choices") or []:
            delta = _get(choice, "delta")
            if delta is not None:
                _scrub(delta, self.p, self.budget)
            if self.p.strip_logprobs and _get(choice, "logprobs") is not None:
                _drop(choice, "logprobs")
        return True

    def response(self) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": "".join(self.content)}
        if self.reasoning:
            message["reasoning_content"] = "".join(self.reasoning)
        out = {**self.meta, "object": "chat.completion",
               "choices": [{"index": 0, "message": message, "finish_reason": self.finish}]}
        if isinstance(self.usage, dict):
            out["usage"] = self.usage
        return out


class _ResponsesStream:
    """Responses API events: the final response kept for the record; for a perturbed account reasoning items and
    every event about them dropped, later ``output_index`` values and ``sequence_number`` renumbered."""

    def __init__(self, p: Perturb) -> None:
        self.p = p
        self.dropped: list[int] = []
        self.final: dict | None = None
        self.text: list[str] = []
        self.sequence = 0

    def observe(self, event: Any) -> None:
        kind = str(_get(event, "type") or "")
        if kind in ("response.completed", "response.incomplete", "response.failed"):
            self.final = _dump(_get(event, "response"))
        elif kind == "response.output_text.delta" and isinstance(_get(event, "delta"), str):
            self.text.append(_get(event, "delta"))

    def rewrite(self, event: Any) -> bool:
        if self.p.reasoning == "keep":
            return True
        kind = str(_get(event, "type") or "")
        index = _get(event, "output_index")
        item = _get(event, "item")
        if kind == "response.output_item.added" and isinstance(index, int) and _get(item, "type") == "reasoning":
            self.dropped.append(index)
            return False
        if isinstance(index, int):
            if index in self.dropped or "reasoning" in kind:
                return False
            _set(event, "output_index", index - sum(1 for d in self.dropped if d < index))
        elif "reasoning" in kind:
            return False
        response = _get(event, "response")
        if response is not None:
            _perturb_answer(response, self.p, "responses")
        if _get(event, "sequence_number") is not None:
            _set(event, "sequence_number", self.sequence)
            self.sequence += 1
        return True

    def response(self) -> dict[str, Any] | None:
        if self.final is not None:
            return self.final
        if not self.text:
            return None
        return {"object": "response", "status": "incomplete", "output": [
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "".join(self.text)}]}]}
