"""Plain ASGI middleware: distillguard inside an existing FastAPI/Starlette app that serves chat completions.

Usage::

    app = FastAPI()
    engine = Engine(load_policy("policy.yaml"), build_scorer(policy))
    app.add_middleware(DistillGuardMiddleware, engine=engine, account=lambda scope: scope["state"]["account"])

Requests to ``paths`` (chat completions and the Responses API by default) are decided
before the app sees them (refusals are answered here, in OpenAI format); responses of
perturbed accounts are rewritten on the way out, streamed or not (Responses: reasoning
items and events removed). Everything else passes through untouched.

With ``resistance=load_profile("resistance.yaml")`` the app (the model server, e.g. vLLM's own ASGI app) gets the
engine directive of :mod:`distillguard.resist.directive` (``X-DistillGuard-Resist`` header and/or
``vllm_xargs``, as the profile's transport says) and the profile's trace defence applies (see
:mod:`distillguard.gateway.resistance`). A client's own ``X-DistillGuard-Resist`` header is removed from every
request, and its ``vllm_xargs`` directive from the decided ones.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import orjson

from distillguard.gateway import errors
from distillguard.gateway.actions import Action, Flow
from distillguard.gateway.asgi import CHAT, RESPONSES, header, key_id, send_full
from distillguard.gateway.engine import Decision, Engine
from distillguard.gateway.records import finish_record, new_record, record_row
from distillguard.gateway.resistance import Resistance, upstream_body
from distillguard.gateway.sse import ResponsesRecorder, StreamRecorder
from distillguard.model import FieldError
from distillguard.resist.directive import HEADER
from distillguard.resist.profile import ResistanceProfile

AccountOf = Callable[[dict[str, Any]], str | None]


def bearer_account(keys: dict[str, str] | None = None) -> AccountOf:
    """Account from ``Authorization: Bearer KEY`` via ``keys`` (or the key's hash when ``keys`` is None)."""

    def account(scope: dict[str, Any]) -> str | None:
        auth = header(scope, b"authorization") or ""
        key = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
        if not key:
            return None
        return keys.get(key) if keys is not None else key_id(key)

    return account


class DistillGuardMiddleware:
    def __init__(self, app: Any, engine: Engine, account: AccountOf | None = None,
                 paths: tuple[str, ...] = (CHAT, RESPONSES), resistance: ResistanceProfile | None = None) -> None:
        self.app = app
        self.engine = engine
        self.account = account or bearer_account()
        self.paths = paths
        self.resistance = Resistance(resistance, engine.policy) if resistance is not None else None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and any(k == _HEADER for k, _ in scope.get("headers") or ()):
            # the directive is ours to send: a client's never reaches the app
            scope = {**scope, "headers": [(k, v) for k, v in scope["headers"] if k != _HEADER]}
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        account = self.account(scope)
        if account is None:  # unauthenticated: the app's own auth answers
            await self.app(scope, receive, send)
            return
        started, now_ms = time.perf_counter(), int(time.time() * 1000)
        limit, size = self.engine.policy.max_body_bytes, 0
        chunks = []
        while True:  # buffered to decide on it, so bounded like the gateway's own bodies
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                _, type_, code = errors.TOO_LARGE
                await send_full(send, 413, errors.error_body(f"Request body exceeds the {limit}-byte limit.", type_,
                                                              code), "application/json")
                return
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        raw = b"".join(chunks)
        api = "responses" if scope["path"].rstrip("/").endswith("/responses") else "chat"
        try:
            request = orjson.loads(raw)
            record = new_record(account, None, (scope.get("client") or ("0.0.0.0",))[0],
                                header(scope, b"user-agent"), request, now_ms,
                                endpoint=RESPONSES if api == "responses" else CHAT)
            row = record_row(record)
        except (orjson.JSONDecodeError, FieldError, AttributeError, TypeError):
            await self.app(scope, _replay(raw, receive), send)  # malformed: let the app produce its own error
            return
        decision = await self.engine.decide(record["id"], account, None, row, now_ms)
        flow = Flow(request=request, api=api)
        action = self.engine.action_for(decision)
        if self.resistance is not None:
            self.resistance.prepare(decision, flow)
        action.apply(decision, flow)
        if flow.refusal is not None:
            status, body, headers = flow.refusal
            await send_full(send, status, body, "application/json", headers)
            await self.engine.complete(decision, finish_record(record, decision, None, status, started))
            return
        directive: dict[str, str] = {}
        sent, directed = upstream_body(request, directive, self.resistance, decision, action, flow, record)
        body = orjson.dumps(sent) if flow.changes or directed else raw
        if directive:
            scope = {**scope, "headers": [*scope.get("headers", ()),
                                          *((k.encode(), v.encode()) for k, v in directive.items())]}
        defended = action.defences(decision, flow.reasoning) is not None
        out = _Capture(send, flow, defended, action, decision)
        await self.app(scope, _replay(body, receive), out.send)
        response = out.recorder.response() if out.streaming else out.parsed()
        await self.engine.complete(decision, finish_record(record, decision, response, out.status, started))


_HEADER = HEADER.encode()


def _replay(body: bytes, receive: Callable[[], Any]) -> Callable[[], Any]:
    """The (possibly rewritten) body once, then the client's own messages (a real disconnect)."""
    sent = False

    async def replayed() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


class _Capture:
    """Watches (and, for perturbed accounts, rewrites) the app's response."""

    def __init__(self, send: Any, flow: Flow, perturb: bool, action: Action, decision: Decision) -> None:
        self._send, self.flow, self.perturb, self.action, self.decision = send, flow, perturb, action, decision
        self.status = 200
        self.streaming = False
        self.recorder = StreamRecorder() if flow.api == "chat" else ResponsesRecorder()
        self.body: list[bytes] = []
        self._start: dict[str, Any] | None = None

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            ctype = dict(message.get("headers") or []).get(b"content-type", b"")
            self.streaming = ctype.startswith(b"text/event-stream")
            if self.perturb and not self.streaming:
                self._start = message  # held until the body is rewritten (its length changes)
                return
            if self.perturb:
                message = {**message, "headers": [(k, v) for k, v in message["headers"] if k != b"content-length"]}
            await self._send(message)
            return
        chunk = message.get("body", b"")
        more = message.get("more_body", False)
        if self.streaming:
            self.recorder.feed(chunk)
            if self.perturb and self.flow.stream is not None:
                chunk = self.flow.stream.feed(chunk) + (b"" if more else self.flow.stream.close())
            await self._send({**message, "body": chunk})
            return
        self.body.append(chunk)
        if not self.perturb:
            await self._send(message)
        elif not more:
            await self._send_perturbed()

    async def _send_perturbed(self) -> None:
        raw = b"".join(self.body)
        try:
            delivered = orjson.loads(raw)
            if isinstance(delivered, dict) and self.status == 200:
                self.flow.response = delivered
                self.action.apply(self.decision, self.flow)
                raw = orjson.dumps(delivered)
        except orjson.JSONDecodeError:
            pass
        headers = [(k, v) for k, v in (self._start or {}).get("headers", []) if k != b"content-length"]
        await self._send({"type": "http.response.start", "status": self.status,
                          "headers": [*headers, (b"content-length", str(len(raw)).encode())]})
        await self._send({"type": "http.response.body", "body": raw})

    def parsed(self) -> dict | None:
        try:
            value = orjson.loads(b"".join(self.body))
        except orjson.JSONDecodeError:
            return None
        return value if isinstance(value, dict) else None
