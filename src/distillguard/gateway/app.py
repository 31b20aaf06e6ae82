"""The OpenAI-compatible reverse proxy: a plain ASGI app (no framework routing on the hot path).

Per request: authenticate the key -> account, parse and validate the body into a
canonical exchange row, decide (:class:`~distillguard.gateway.engine.Engine`),
refuse or forward upstream (streams pass through chunk by chunk), apply output
defences where the decision says so, then record the exchange (spool -> store)
and fold it into the account's online state. Malformed input gets an
OpenAI-format error; nothing a client sends can crash the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

import httpx
import orjson
import xxhash

from distillguard.gateway import errors
from distillguard.gateway.actions import Flow, actions_for
from distillguard.gateway.engine import Decision, Engine
from distillguard.gateway.spool import Spool
from distillguard.gateway.sse import StreamRecorder
from distillguard.gateway.upstream import (
    HttpxUpstream,
    PooledUpstream,
    Response,
    UnsafeRequest,
    Upstream,
    UpstreamError,
    UpstreamTimeout,
    check_header,
)
from distillguard.model import COLUMNS, FieldError, flatten, format_ts

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

log = logging.getLogger("distillguard.gateway")
CHAT = "/v1/chat/completions"
MODELS = "/v1/models"
_JSON = [(b"content-type", b"application/json")]
MAX_MODEL_ID = 256  # longest model id accepted in GET /v1/models/{id}
MAX_ACCEPT = 1024  # longest Accept header forwarded upstream
# one segment of a model id ("gpt-4o", "ft:gpt-4o-mini:org::id", "meta-llama/Llama-3.1-8B"): unreserved + ":@+=,"
_MODEL_SEGMENT = re.compile(r"[A-Za-z0-9._~:@+=,-]+")
_ACCEPT = re.compile(r"[\t\x20-\x7e]*")  # no CR, LF, NUL or other control byte, no non-ASCII


class _Reject(Exception):
    def __init__(self, spec: tuple[int, str, str], message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.type, self.code = spec
        self.param = param


def key_id(api_key: str) -> str:
    """A stable, non-reversible id for a key: raw keys never reach logs or the store."""
    return "key-" + xxhash.xxh3_64_hexdigest(api_key.encode())


class Gateway:
    def __init__(self, upstream: str, engine: Engine, *, keys: dict[str, str] | None = None,
                 spool: Spool | None = None, upstream_api_key: str | None = None,
                 transport: httpx.AsyncBaseTransport | None = None, trust_forwarded: bool = False,
                 flush_every_s: float = 5.0) -> None:
        self.upstream = upstream.rstrip("/")
        self.engine = engine
        self.policy = engine.policy
        self.keys = keys
        self.spool = spool
        if upstream_api_key:
            try:
                check_header("authorization", f"Bearer {upstream_api_key}")
            except UnsafeRequest:
                raise ValueError("the upstream API key has a control byte or non-ASCII character") from None
        self.upstream_api_key = upstream_api_key
        self.transport = transport
        self.trust_forwarded = trust_forwarded
        self.flush_every_s = flush_every_s
        self._client: Upstream | None = None
        self._flusher: asyncio.Task | None = None
        self._background: set[asyncio.Task] = set()
        self._completions: list[tuple[Decision, dict[str, Any]]] = []
        self._id_prefix = "gw-" + uuid.uuid4().hex[:16]
        self._id_count = 0

    # ---- lifecycle -------------------------------------------------------
    @property
    def client(self) -> Upstream:
        """The upstream client: pooled raw HTTP/1.1, or httpx over ``transport`` (tests, in-process apps)."""
        if self._client is None:
            timeout = self.policy.upstream_timeout_s
            self._client = (HttpxUpstream(self.upstream, timeout, self.transport) if self.transport is not None
                            else PooledUpstream(self.upstream, timeout))
        return self._client

    async def startup(self) -> None:
        if self.spool is not None and self.flush_every_s > 0:
            if self.spool.can_use_worker:
                await asyncio.to_thread(self.spool.start_worker)
            self._flusher = asyncio.create_task(self._flush_loop())
        # what exists now (modules, policy, keys) lives as long as the process: full collections skip it
        gc.collect()
        gc.freeze()

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self.flush_every_s)
            await self.flush()

    async def flush(self) -> int:
        """Move spooled exchanges into the store without blocking the event loop."""
        if self.spool is None:
            return 0
        self.spool.rotate()
        try:
            if self.spool.can_use_worker:  # a child process: ingest never holds this process's GIL
                return await asyncio.wrap_future(self.spool.ingest_in_worker())
            return await asyncio.to_thread(self.spool.ingest_ready)
        except Exception:  # noqa: BLE001 - files stay in the spool and are retried next time
            return 0

    async def shutdown(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        while self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
        if self.spool is not None:
            await asyncio.to_thread(self.spool.close)
        if self.engine.audit is not None:
            self.engine.audit.close()
        close_scorer = getattr(self.engine.scorer, "close", None)
        if close_scorer is not None:
            await asyncio.to_thread(close_scorer)
        await self.engine.state.close()

    # ---- ASGI ------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        started = False

        async def tracked(message: dict[str, Any]) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self._route(scope, receive, tracked)
        except Exception as exc:  # noqa: BLE001 - a bug must cost one request, never the process
            log.exception("request failed: %s %s", scope.get("method"), scope.get("path"))
            if not started:
                await _send_error(send, 500, errors.error_body(f"Internal gateway error: {type(exc).__name__}",
                                                               "server_error", "internal_error"))

    async def _route(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            path, method = scope["path"], scope["method"]
            if path == CHAT:
                if method != "POST":
                    raise _Reject(errors.METHOD, f"{method} is not allowed on {CHAT}; use POST")
                await self._chat(scope, receive, send)
            elif path == MODELS or path.startswith(MODELS + "/"):
                if method != "GET":
                    raise _Reject(errors.METHOD, f"{method} is not allowed on {path}; use GET")
                self._account(scope)
                await self._models(scope, send)
            else:
                raise _Reject(errors.NOT_FOUND, f"Unknown request URL: {method} {path}")
        except _Reject as exc:
            await _send_error(send, exc.status, errors.error_body(str(exc), exc.type, exc.code, exc.param))

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.startup()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # ---- pieces ----------------------------------------------------------
    def _account(self, scope: Scope) -> tuple[str, str]:
        auth = _header(scope, b"authorization")
        if not auth or not auth.lower().startswith("bearer ") or not auth[7:].strip():
            raise _Reject(errors.NO_KEY, "You didn't provide an API key. Send it as 'Authorization: Bearer KEY'.")
        api_key = auth[7:].strip()
        if self.keys is None:
            return key_id(api_key), key_id(api_key)
        account = self.keys.get(api_key)
        if account is None:
            if self.policy.unknown_keys == "allow":
                return key_id(api_key), key_id(api_key)
            raise _Reject(errors.BAD_KEY, "Incorrect API key provided.")
        return account, key_id(api_key)

    async def _body(self, scope: Scope, receive: Receive) -> bytes:
        limit = self.policy.max_body_bytes
        declared = _header(scope, b"content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise _Reject(errors.TOO_LARGE, f"Request body of {declared} bytes exceeds the {limit}-byte limit.")
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Reject(errors.BAD_JSON, "Client disconnected before sending the body.")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise _Reject(errors.TOO_LARGE, f"Request body exceeds the {limit}-byte limit.")
            chunks.append(chunk)
            if not message.get("more_body"):
                return b"".join(chunks)

    def _client_ip(self, scope: Scope) -> str:
        if self.trust_forwarded:
            forwarded = _header(scope, b"x-forwarded-for")
            if forwarded:
                return forwarded.split(",")[0].strip()
        client = scope.get("client")
        return client[0] if client else "0.0.0.0"

    def _upstream_headers(self, scope: Scope) -> dict[str, str]:
        """The headers sent upstream: ours, plus the client's Accept only when it is plain printable ASCII."""
        headers = {"content-type": "application/json"}
        accept = _header(scope, b"accept")
        if accept:
            if len(accept) > MAX_ACCEPT or not _ACCEPT.fullmatch(accept):
                raise _Reject(errors.BAD_HEADER, f"The Accept header must be at most {MAX_ACCEPT} printable "
                                                 "ASCII characters.")
            headers["accept"] = accept
        if self.upstream_api_key:
            headers["authorization"] = f"Bearer {self.upstream_api_key}"
        return headers

    async def _models(self, scope: Scope, send: Send) -> None:
        path, headers = models_path(scope["path"]), self._upstream_headers(scope)
        resp = await self._upstream("GET", path, None, headers)
        body = await _read_body(resp)
        await _send_full(send, resp.status, body, resp.content_type)

    async def _chat(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        now_ms = int(time.time() * 1000)
        account, api_key_id = self._account(scope)
        headers = self._upstream_headers(scope)  # refused before the decision, like any malformed request
        raw = await self._body(scope, receive)
        try:
            request = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise _Reject(errors.BAD_JSON, f"We could not parse the JSON body of your request: {exc}") from None
        if not isinstance(request, dict):
            raise _Reject(errors.BAD_JSON, "The request body must be a JSON object.")
        info = self.engine.accounts.get(account)
        self._id_count += 1
        record = new_record(account, api_key_id, self._client_ip(scope), _header(scope, b"user-agent"), request,
                            now_ms, info.org_id if info is not None else None,
                            exchange_id=f"{self._id_prefix}{self._id_count:x}")
        try:
            row = record_row(record)
        except FieldError as exc:
            raise _Reject(errors.BAD_JSON, f"Invalid request: {exc.reason}", param=exc.field) from None
        decision = await self.engine.decide(record["id"], account, record.get("org_id"), row, now_ms)
        flow = Flow(request=request)
        actions = actions_for(decision, self.policy.perturb)
        for action in actions:
            action.apply(decision, flow)
        if flow.refusal is not None:
            status, body, headers = flow.refusal
            await _send_full(send, status, body, "application/json", headers)
            self._record(record, decision, None, status, started, row)
            return
        content = orjson.dumps(request) if flow.changes else raw
        if flow.changes:
            row = None  # the request was edited in place: the stored exchange has the edited one
        url = CHAT
        try:
            if request.get("stream") is True:
                response, status = await self._stream(url, content, headers, flow, send)
            else:
                response, status = await self._forward(url, content, headers, flow, actions, decision, send)
        except _Reject as exc:
            await _send_error(send, exc.status, errors.error_body(str(exc), exc.type, exc.code))
            self._record(record, decision, None, exc.status, started, row)
            return
        self._record(record, decision, response, status, started, row)

    async def _forward(self, url: str, content: bytes, headers: dict[str, str], flow: Flow, actions: list,
                       decision: Decision, send: Send) -> tuple[dict | None, int]:
        resp = await self._upstream("POST", url, content, headers)
        body = await _read_body(resp)
        response: dict | None = None
        try:
            parsed = orjson.loads(body)
            response = parsed if isinstance(parsed, dict) else None
        except orjson.JSONDecodeError:
            pass
        out = body
        if response is not None and decision.perturb and resp.status == 200:
            delivered = orjson.loads(body)
            flow.response = delivered
            for action in actions:
                action.apply(decision, flow)
            out = orjson.dumps(delivered)
        await _send_full(send, resp.status, out, resp.content_type)
        return response, resp.status

    async def _stream(self, url: str, content: bytes, headers: dict[str, str], flow: Flow,
                      send: Send) -> tuple[dict | None, int]:
        resp = await self._upstream("POST", url, content, headers)
        recorder = StreamRecorder()
        try:
            await send({"type": "http.response.start", "status": resp.status,
                        "headers": [(b"content-type", resp.content_type.encode()), (b"cache-control", b"no-cache")]})
            try:
                async for chunk in resp.stream():
                    out = flow.stream.feed(chunk) if flow.stream is not None else chunk
                    if out:
                        await send({"type": "http.response.body", "body": out, "more_body": True})
                    recorder.feed(chunk)
                tail = flow.stream.close() if flow.stream is not None else b""
            except UpstreamError:
                tail = b""  # upstream died mid-stream: end what the client has
            await send({"type": "http.response.body", "body": tail, "more_body": False})
        finally:
            await resp.aclose()
        return (recorder.response() if resp.status == 200 else None), resp.status

    async def _upstream(self, method: str, url: str, content: bytes | None, headers: dict[str, str]) -> Response:
        try:
            return await self.client.send(method, url, content, headers)
        except UpstreamError as exc:
            raise _reject_upstream(exc) from None

    def _record(self, record: dict[str, Any], decision: Decision, response: dict | None, status: int,
                started: float, request_row: dict[str, Any] | None = None) -> None:
        """Spool the exchange and fold it into online state, after the client has its answer."""
        row = finish_record(record, decision, response, status, started, request_row)
        if self.spool is not None:
            self.spool.append(record)
        try:
            if self.engine.complete_now(decision, row):  # in-process state: no task, no await
                return
        except Exception:  # noqa: BLE001 - online state must never fail a request already served
            log.exception("completing exchange %s failed", decision.id)
            return
        # one task completes every exchange finished in this loop iteration, not a task per request
        self._completions.append((decision, row))
        if len(self._completions) == 1:
            task = asyncio.ensure_future(self._complete_batch())
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _complete_batch(self) -> None:
        batch, self._completions = self._completions, []
        for decision, row in batch:
            try:
                await self.engine.complete(decision, row)
            except Exception:  # noqa: BLE001 - online state must never fail a request already served
                log.exception("completing exchange %s failed", decision.id)

def new_record(account: str, api_key_id: str | None, ip: str, user_agent: str | None, request: dict[str, Any],
               now_ms: int, org_id: str | None = None, exchange_id: str | None = None) -> dict[str, Any]:
    """The canonical exchange for a request (the response is added by :func:`finish_record`).

    Ids are unique per gateway process start (random prefix + counter: no ``uuid4`` syscall per request).
    """
    record: dict[str, Any] = {"id": exchange_id or "gw-" + uuid.uuid4().hex, "ts": format_ts(now_ms),
                              "account_id": account, "api_key_id": api_key_id,
                              "client": {"ip": ip, "user_agent": user_agent}, "endpoint": CHAT, "request": request}
    if org_id:
        record["org_id"] = org_id
    return record


def record_row(record: dict[str, Any]) -> dict[str, Any]:
    """The canonical record as a row dict (raises :class:`FieldError` on an invalid request)."""
    return dict(zip(COLUMNS, flatten(record), strict=True))


def finish_record(record: dict[str, Any], decision: Decision, response: dict | None, status: int,
                  started: float, request_row: dict[str, Any] | None = None) -> dict[str, Any]:
    """Complete the record with the upstream answer and the decision; returns its row.

    With ``request_row`` (the row the decision was made on) only the response side is flattened
    again (same ``flatten``, on the record without its request), saving a full flatten per exchange.
    """
    record["response"] = response
    record["status"] = status
    record["latency_ms"] = int((time.perf_counter() - started) * 1000)
    record["gateway"] = {"action": decision.action, "tier": decision.tier, "enforced": decision.enforced}
    try:
        if request_row is None:
            return record_row(record)
        row = dict(request_row)
        row.update(zip(_AFTER, _after(flatten({**record, "request": None})), strict=True))
        return row
    except FieldError:
        record["response"] = None  # an upstream answer we cannot parse is not the client's fault
        return record_row(record)


# columns the response (and the decision, under extra_json) fill in: the rest is the request's
_AFTER = ("response_text", "reasoning_text", "response_chars", "reasoning_chars", "n_tool_calls", "finish_reason",
          "prompt_tokens", "completion_tokens", "reasoning_tokens", "status", "latency_ms", "response_json",
          "extra_json")
_AFTER_INDEX = [COLUMNS.index(c) for c in _AFTER]


def _after(values: tuple) -> list:
    return [values[i] for i in _AFTER_INDEX]


async def _read_body(resp: Any) -> bytes:
    """The whole upstream body, always releasing the connection; upstream failures become OpenAI errors."""
    try:
        return await resp.read()
    except UpstreamError as exc:
        raise _reject_upstream(exc) from None
    finally:
        await resp.aclose()


def models_path(path: str) -> str:
    """The upstream path for ``GET /v1/models[/ID]``: an allow-listed model id, re-encoded; else a 400 or 414.

    ``path`` is the client's *decoded* path, so ``%0d%0a``, ``%00``, ``%20`` and ``%2e%2e`` arrive here as the
    bytes they encode and are refused like raw ones: nothing but the id grammar reaches the upstream request line.
    """
    if path == MODELS:
        return MODELS
    model_id = path[len(MODELS) + 1:]
    if len(model_id) > MAX_MODEL_ID:
        raise _Reject(errors.URI_TOO_LONG, f"Model ids are at most {MAX_MODEL_ID} characters.")
    segments = model_id.split("/")
    if any(s in (".", "..") or _MODEL_SEGMENT.fullmatch(s) is None for s in segments):
        raise _Reject(errors.BAD_PATH, "Invalid model id: use letters, digits, '.', '_', '~', ':', '@', '+', '=', "
                                       "',', '-' and '/' between non-empty parts other than '.' and '..'.")
    return MODELS + "/" + "/".join(quote(s, safe=":@+=,~") for s in segments)


def _reject_upstream(exc: UpstreamError) -> _Reject:
    if isinstance(exc, UnsafeRequest):
        return _Reject(errors.UNSAFE, f"The request cannot be forwarded: {exc}")
    if isinstance(exc, UpstreamTimeout):
        return _Reject(errors.UPSTREAM_TIMEOUT, "The upstream model server timed out.")
    return _Reject(errors.UPSTREAM_DOWN, f"The upstream model server is unreachable: {exc}")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


async def _send_full(send: Send, status: int, body: bytes, content_type: str,
                     extra: dict[str, str] | None = None) -> None:
    headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]
    headers.extend((k.encode(), v.encode()) for k, v in (extra or {}).items())
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _send_error(send: Send, status: int, body: bytes) -> None:
    await _send_full(send, status, body, "application/json")
