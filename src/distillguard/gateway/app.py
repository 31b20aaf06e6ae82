"""The OpenAI-compatible reverse proxy: a plain ASGI app (no framework routing on the hot path).

Per request: authenticate the key -> account, parse and validate the body into a
canonical exchange row, decide (:class:`~distillguard.gateway.engine.Engine`),
refuse or forward upstream (streams pass through event by event), apply output
defences where the decision says so, then record the exchange (spool -> store)
and fold it into the account's online state. Malformed input gets an
OpenAI-format error; nothing a client sends can crash the process.

Routes: ``POST /v1/chat/completions`` and ``POST /v1/responses`` (decided, perturbed, recorded, scored online),
``GET /v1/models[/ID]``, the rest of the OpenAI API under ``/v1/`` by an allow-list of families
(:data:`PASS_THROUGH`: decided and audited, not recorded), ``GET /healthz`` and ``GET /metrics``. Every
response carries ``x-request-id``, the ``id`` of its audit entry.
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
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, urlencode

import httpx
import orjson
import xxhash

from distillguard.gateway import errors
from distillguard.gateway.actions import Action, Flow
from distillguard.gateway.engine import Decision, Engine
from distillguard.gateway.metrics import Metrics
from distillguard.gateway.perturb import (
    ResponsesStreamPerturber,
    StreamPerturber,
    perturb_request,
    perturb_response,
    perturb_responses_response,
)
from distillguard.gateway.sse import EventFramer, ResponsesRecorder, StreamRecorder, chat_error_event
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

if TYPE_CHECKING:
    from distillguard.gateway.online import ScorerProcess
    from distillguard.gateway.server import ConnectionGuard
    from distillguard.gateway.spool import Spool

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

log = logging.getLogger("distillguard.gateway")
CHAT = "/v1/chat/completions"
RESPONSES = "/v1/responses"
MODELS = "/v1/models"
HEALTH = "/healthz"
METRICS = "/metrics"
_JSON = [(b"content-type", b"application/json")]
MAX_MODEL_ID = 256  # longest model id accepted in GET /v1/models/{id}
MAX_ACCEPT = 1024  # longest Accept header forwarded upstream
MAX_PATH = 1024  # longest pass-through path
MAX_SEGMENTS = 8  # path segments after /v1/
MAX_QUERY = 2048  # longest query string (pass-through only)
MAX_QUERY_FIELDS = 32
MAX_CONTENT_TYPE = 256
MAX_ERROR_BODY = 1 << 20  # an upstream error body read to wrap it
# one segment of a model id ("gpt-4o", "ft:gpt-4o-mini:org::id", "meta-llama/Llama-3.1-8B"): unreserved + ":@+=,"
_MODEL_SEGMENT = re.compile(r"[A-Za-z0-9._~:@+=,-]+")
_ACCEPT = re.compile(r"[\t\x20-\x7e]*")  # no CR, LF, NUL or other control byte, no non-ASCII
_QUERY_KEY = re.compile(r"[A-Za-z0-9_.\[\]-]{1,64}")
_QUERY_VALUE = re.compile(r"[\x20-\x7e]{0,512}")
_TAGS = re.compile(r"<[^>]{0,2000}>")
_SPACES = re.compile(r"\s+")

# The rest of the OpenAI API, by first path segment after /v1/: the methods forwarded. Anything else is a 404.
PASS_THROUGH: dict[str, frozenset[str]] = {
    "embeddings": frozenset({"POST"}),
    "completions": frozenset({"POST"}),  # legacy text completions
    "moderations": frozenset({"POST"}),
    "images": frozenset({"POST"}),
    "audio": frozenset({"POST"}),
    "files": frozenset({"GET", "POST", "DELETE"}),
    "uploads": frozenset({"POST"}),
    "batches": frozenset({"GET", "POST"}),
    "fine_tuning": frozenset({"GET", "POST", "DELETE"}),
    "vector_stores": frozenset({"GET", "POST", "DELETE"}),
    "conversations": frozenset({"GET", "POST", "DELETE"}),
    "responses": frozenset({"GET", "POST", "DELETE"}),  # /v1/responses/{id}[/input_items|/cancel]
    "chat": frozenset({"GET", "POST", "DELETE"}),  # stored completions: /v1/chat/completions/{id}[/messages]
}
# path segments that name an operation rather than an object; any other segment is an id in the audited route
_ROUTE_WORDS = frozenset({
    "completions", "content", "cancel", "input_items", "messages", "parts", "complete", "jobs", "checkpoints",
    "events", "files", "file_batches", "generations", "edits", "variations", "speech", "transcriptions",
    "translations", "search", "items", "permissions", "pause", "resume", "alpha", "graders", "run", "validate",
    "compact", "input_tokens",
})


class _Reject(Exception):
    def __init__(self, spec: tuple[int, str, str], message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.type, self.code = spec
        self.param = param


def key_id(api_key: str) -> str:
    """A stable, non-reversible id for a key: raw keys never reach logs or the store."""
    return "key-" + xxhash.xxh3_64_hexdigest(api_key.encode())


class _Request:
    """What the gateway knows about one request as it goes (for the audit of a refusal, metrics, the id)."""

    __slots__ = ("id", "method", "path", "route", "account", "api_key_id", "decided", "status")

    def __init__(self, request_id: str, method: str, path: str) -> None:
        self.id, self.method, self.path = request_id, method, path
        self.route = "other"
        self.account: str | None = None
        self.api_key_id: str | None = None
        self.decided = False  # a decision was audited: later failures are the exchange's, not refusals
        self.status = 0


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
        self._pump: asyncio.Task | None = None
        self._background: set[asyncio.Task] = set()
        self._completions: list[tuple[Decision, dict[str, Any]]] = []
        self._id_prefix = "gw-" + uuid.uuid4().hex[:16]
        self._id_count = 0
        self.metrics = Metrics()
        worker = self.scorer_process
        if worker is not None:
            if engine.annotate is None:
                engine.annotate = worker.shed_note  # shed exchanges are named in the account's decisions
            worker.audit = engine.audit
            self.metrics.gauge("distillguard_online_scorer_up", "1 while the online scorer process runs.",
                               lambda: 0 if worker.dead else 1)
            self.metrics.gauge("distillguard_online_backlog_bytes",
                               "Rows buffered in the proxy for the online scorer.", lambda: len(worker._out))
            self.metrics.gauge("distillguard_online_exchanges_total",
                               "Exchanges handed to online scoring, by outcome (sent to the scorer, folded by it, "
                               "shed by the load policy in the scorer or, its buffer too large, in the proxy, "
                               "dropped with a full buffer).",
                               lambda: {("sent",): worker.sent, ("folded",): worker.folded,
                                        ("shed",): worker.shed_total - worker.shed_proxy,
                                        ("shed_in_proxy",): worker.shed_proxy, ("dropped",): worker.dropped},
                               ("outcome",), "counter")
            self.metrics.gauge("distillguard_online_lag_seconds", "Age of the rows the online scorer read last.",
                               lambda: worker.lag_ms / 1000.0)
            self.metrics.gauge("distillguard_online_shedding", "1 while online scoring sheds load.",
                               lambda: 1 if worker.shedding else 0)

    @property
    def scorer_process(self) -> ScorerProcess | None:
        """The online scorer's worker process handle, when online scoring runs in one."""
        return self.engine.scorer.worker

    def attach_guard(self, guard: ConnectionGuard) -> None:
        """Called by :func:`distillguard.gateway.server.uvicorn_config`: connection metrics, and requests the
        HTTP layer refuses (malformed, head or URL too large) audited and counted like the app's own."""
        self.metrics.gauge("distillguard_connections_open", "Open client connections.", lambda: len(guard.connections))
        self.metrics.gauge("distillguard_connections_closed_total",
                           "Client connections closed by the server limits, by reason.",
                           lambda: {("over_limit",): guard.refused, ("read_deadline",): guard.expired}, ("reason",),
                           "counter")
        guard.listener = self._http_refused

    def _http_refused(self, status: int, code: str, client: str | None) -> str:
        """A request the HTTP layer answered itself: counted, audited; returns the id its answer carries."""
        self.metrics.http_errors.inc(str(status))
        request_id = self._new_id()
        with contextlib.suppress(Exception):
            self.engine.refused(request_id, int(time.time() * 1000), status, code,
                                f"malformed or oversized HTTP request ({code})", client_ip=client)
        return request_id

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
                # started from this (the main) thread: the worker's parent-death signal is tied to the thread
                # that started it, and a pool thread may exit before the gateway does
                await asyncio.wrap_future(self.spool.ingest_in_worker())
            self._flusher = asyncio.create_task(self._flush_loop())
        if self.scorer_process is not None:
            self._pump = asyncio.create_task(self._pump_loop())
        # what exists now (modules, policy, keys) lives as long as the process: full collections skip it
        gc.collect()
        gc.freeze()

    async def _pump_loop(self) -> None:
        """Rows for the online scorer leave the buffer when traffic pauses too (else they wait for a request)."""
        from distillguard.gateway.online import PUMP_EVERY_S

        worker = self.scorer_process
        while True:
            await asyncio.sleep(PUMP_EVERY_S)
            try:
                worker.pump()
            except Exception:  # noqa: BLE001 - the next request's poll() reports a dead scorer
                log.exception("online scorer pump failed")

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
        for task in (self._pump, self._flusher):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._pump = self._flusher = None
        while self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
        if self.spool is not None:
            await asyncio.to_thread(self.spool.close)
        await asyncio.to_thread(self.engine.scorer.close)
        if self.engine.audit is not None:
            self.engine.audit.close()
        await self.engine.state.close()

    # ---- ASGI ------------------------------------------------------------
    def _new_id(self) -> str:
        self._id_count += 1
        return f"{self._id_prefix}{self._id_count:x}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        started = time.perf_counter()
        req = _Request(self._new_id(), scope["method"], scope["path"])
        request_id = (b"x-request-id", req.id.encode())

        async def tracked(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                req.status = message["status"]
                message = {**message, "headers": [*message.get("headers", ()), request_id]}
            await send(message)

        try:
            await self._route(scope, receive, tracked, req)
        except Exception as exc:  # noqa: BLE001 - a bug must cost one request, never the process
            log.exception("request failed: %s %s", scope.get("method"), scope.get("path"))
            if not req.status:
                await _send_error(tracked, 500, errors.error_body(f"Internal gateway error: {type(exc).__name__}",
                                                                  "server_error", "internal_error"))
        finally:
            self.metrics.requests.inc(req.route, req.status)
            self.metrics.duration.observe(req.route, time.perf_counter() - started)

    async def _route(self, scope: Scope, receive: Receive, send: Send, req: _Request) -> None:
        try:
            path, method = req.path, req.method
            if path in (CHAT, RESPONSES):
                req.route = "chat" if path == CHAT else "responses"
                if method != "POST":
                    raise _Reject(errors.METHOD, f"{method} is not allowed on {path}; use POST")
                await self._generate(scope, receive, send, req, "chat" if path == CHAT else "responses")
            elif path == MODELS or path.startswith(MODELS + "/"):
                req.route = "models"
                if method != "GET":
                    raise _Reject(errors.METHOD, f"{method} is not allowed on {MODELS}; use GET")
                self._account(scope, req)
                await self._models(scope, send)
            elif path in (HEALTH, METRICS):
                req.route = path[1:]
                if method != "GET":
                    raise _Reject(errors.METHOD, f"{method} is not allowed on {path}; use GET")
                await (self._health(send) if path == HEALTH else _send_full(
                    send, 200, self.metrics.render(), "text/plain; version=0.0.4; charset=utf-8"))
            elif path.startswith("/v1/") and path.split("/", 3)[2] in PASS_THROUGH:
                req.route = "passthrough"
                await self._pass_through(scope, receive, send, req)
            else:
                raise _Reject(errors.NOT_FOUND, f"Unknown request URL: {method} {_printable(path, 200)}")
        except _Reject as exc:
            self._refusal(req, exc, scope)
            await _send_error(send, exc.status, errors.error_body(str(exc), exc.type, exc.code, exc.param))

    def _refusal(self, req: _Request, exc: _Reject, scope: Scope) -> None:
        """Count a refusal; one made before any decision is audited too (with the key's id, never the key)."""
        self.metrics.refused.inc(str(exc.status), exc.code)
        if req.decided:
            return
        try:
            self.engine.refused(req.id, int(time.time() * 1000), exc.status, exc.code, str(exc),
                                account_id=req.account, api_key_id=req.api_key_id, client_ip=self._client_ip(scope),
                                method=_printable(req.method, 16), endpoint=_printable(req.path, 200))
        except Exception:  # noqa: BLE001 - the refusal is answered whatever happens to its audit line
            log.exception("auditing refused request %s failed", req.id)

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
    def _account(self, scope: Scope, req: _Request | None = None) -> tuple[str, str]:
        auth = _header(scope, b"authorization")
        if not auth or not auth.lower().startswith("bearer ") or not auth[7:].strip():
            raise _Reject(errors.NO_KEY, "You didn't provide an API key. Send it as 'Authorization: Bearer KEY'.")
        api_key = auth[7:].strip()
        kid = key_id(api_key)
        if req is not None:
            req.api_key_id = kid
        if self.keys is None:
            account = kid
        else:
            account = self.keys.get(api_key)
            if account is None:
                if self.policy.unknown_keys != "allow":
                    raise _Reject(errors.BAD_KEY, "Incorrect API key provided.")
                account = kid
        if req is not None:
            req.account = account
        return account, kid

    async def _health(self, send: Send) -> None:
        """Liveness and whether decisions have all they need: 503 only when requests would be refused anyway."""
        worker = self.scorer_process
        scorer = "off" if worker is None else ("down" if worker.dead else "up")
        shedding = worker is not None and worker.shedding
        status = "ok" if scorer != "down" and not shedding else "degraded"
        code = 503 if scorer == "down" and self.policy.fail == "closed" and self.policy.mode != "shadow" else 200
        body = orjson.dumps({"status": status, "online_scorer": scorer, "online_shedding": shedding,
                             "mode": self.policy.mode, "fail": self.policy.fail})
        await _send_full(send, code, body, "application/json")

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

    def _upstream_headers(self, scope: Scope, content_type: str = "application/json") -> dict[str, str]:
        """The headers sent upstream: ours, plus the client's Accept only when it is plain printable ASCII."""
        headers = {"content-type": content_type}
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
        await self._send_upstream(send, resp.status, body, resp.content_type)

    async def _parse(self, scope: Scope, receive: Receive) -> tuple[bytes, dict[str, Any]]:
        raw = await self._body(scope, receive)
        try:
            request = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise _Reject(errors.BAD_JSON, f"We could not parse the JSON body of your request: {exc}") from None
        if not isinstance(request, dict):
            raise _Reject(errors.BAD_JSON, "The request body must be a JSON object.")
        return raw, request

    async def _generate(self, scope: Scope, receive: Receive, send: Send, req: _Request, api: str) -> None:
        """A chat completion or a Responses API request: decided, forwarded, perturbed, recorded, scored."""
        started = time.perf_counter()
        now_ms = int(time.time() * 1000)
        account, api_key_id = self._account(scope, req)
        headers = self._upstream_headers(scope)  # refused before the decision, like any malformed request
        raw, request = await self._parse(scope, receive)
        endpoint = CHAT if api == "chat" else RESPONSES
        info = self.engine.accounts.get(account)
        record = new_record(account, api_key_id, self._client_ip(scope), _header(scope, b"user-agent"), request,
                            now_ms, info.org_id if info is not None else None, exchange_id=req.id, endpoint=endpoint)
        try:
            row = record_row(record)
        except FieldError as exc:
            raise _Reject(errors.BAD_JSON, f"Invalid request: {exc.reason}", param=exc.field) from None
        decision = await self.engine.decide(req.id, account, record.get("org_id"), row, now_ms)
        req.decided = True
        self.metrics.decisions.inc(decision.action, decision.enforced)
        flow = Flow(request=request, api=api)
        action = self.engine.action_for(decision)
        action.apply(decision, flow)
        if flow.refusal is not None:
            status, body, refusal_headers = flow.refusal
            await _send_full(send, status, body, "application/json", refusal_headers)
            self._record(record, decision, None, status, started, row)
            return
        content = orjson.dumps(request) if flow.changes else raw
        if flow.changes:
            row = None  # the request was edited in place: the stored exchange has the edited one
        note = None
        try:
            resp = await self._upstream("POST", endpoint, content, headers)
            if resp.status == 200 and resp.content_type.startswith("text/event-stream"):
                response, status, note = await self._stream(resp, flow, api, send)
            else:
                response, status = await self._buffered(resp, flow, action, decision, send)
        except _Reject as exc:
            self._refusal(req, exc, scope)
            await _send_error(send, exc.status, errors.error_body(str(exc), exc.type, exc.code))
            self._record(record, decision, None, exc.status, started, row)
            return
        self._record(record, decision, response, status, started, row, note)

    async def _buffered(self, resp: Response, flow: Flow, action: Action, decision: Decision,
                        send: Send) -> tuple[dict | None, int]:
        """A whole (non-streamed) upstream answer: perturbed when the decision says so, errors in OpenAI format."""
        body = await _read_body(resp, MAX_ERROR_BODY if resp.status >= 400 else None)
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
            action.apply(decision, flow)
            out = orjson.dumps(delivered)
        await self._send_upstream(send, resp.status, out, resp.content_type)
        return response, resp.status

    async def _stream(self, resp: Response, flow: Flow, api: str, send: Send) -> tuple[dict | None, int, str | None]:
        """Forward an SSE stream event by event (whole events only); a stream the upstream cuts ends with an error
        event (chat: ``data: {"error": ...}`` then ``[DONE]``; Responses: ``error`` then ``response.failed``)."""
        recorder = StreamRecorder() if api == "chat" else ResponsesRecorder()
        framer = EventFramer() if flow.stream is None else None
        note = None
        try:
            await send({"type": "http.response.start", "status": resp.status,
                        "headers": [(b"content-type", resp.content_type.encode()), (b"cache-control", b"no-cache")]})
            try:
                async for chunk in resp.stream():
                    recorder.feed(chunk)
                    out = flow.stream.feed(chunk) if flow.stream is not None else framer.feed(chunk)
                    if out:
                        await send({"type": "http.response.body", "body": out, "more_body": True})
                tail = flow.stream.close() if flow.stream is not None else framer.close()
            except UpstreamError as exc:  # upstream died mid-stream: say so, in the stream's own format
                timeout = isinstance(exc, UpstreamTimeout)
                code = "upstream_timeout" if timeout else "upstream_stream_interrupted"
                message = ("The upstream model server timed out mid-stream." if timeout
                           else "The upstream model server ended the stream early.")
                self.metrics.upstream_errors.inc("stream_cut")
                note = f"{code}: {exc}"
                tail = (chat_error_event(message, code) if isinstance(recorder, StreamRecorder)
                        else recorder.error_events(message, code, recorder.sequence + 1))
                if flow.stream is not None:
                    flow.stream.splitter.rest()  # the half event the upstream left is not the client's
                    tail = flow.stream.feed(tail)
            await send({"type": "http.response.body", "body": tail, "more_body": False})
        finally:
            await resp.aclose()
        return recorder.response(), resp.status, note

    async def _send_upstream(self, send: Send, status: int, body: bytes, content_type: str) -> None:
        """An upstream answer to the client; an error the upstream did not put in OpenAI format is wrapped."""
        if status >= 400:
            wrapped = upstream_error_body(status, body, content_type)
            if wrapped is not None:
                body, content_type = wrapped, "application/json"
            self.metrics.upstream_errors.inc(f"http_{status // 100}xx")
        await _send_full(send, status, body, content_type)

    async def _upstream(self, method: str, url: str, content: bytes | None, headers: dict[str, str]) -> Response:
        try:
            return await self.client.send(method, url, content, headers)
        except UpstreamError as exc:
            self.metrics.upstream_errors.inc("unsafe" if isinstance(exc, UnsafeRequest)
                                             else "timeout" if isinstance(exc, UpstreamTimeout) else "unreachable")
            raise _reject_upstream(exc) from None

    # ---- the rest of the API: decided, audited, forwarded ----------------
    async def _pass_through(self, scope: Scope, receive: Receive, send: Send, req: _Request) -> None:
        """Any other OpenAI endpoint of :data:`PASS_THROUGH`: the path and query re-encoded from a strict grammar,
        the body bounded, the request decided and audited (blocked and throttled accounts are refused here too);
        not recorded in the store nor folded into online state (those hold generations)."""
        path, route = api_path(req.path)
        family = route.split("/", 3)[2]
        if req.method not in PASS_THROUGH[family]:
            raise _Reject(errors.METHOD, f"{req.method} is not allowed on {route}")
        query = api_query(scope.get("query_string", b""))
        account, api_key_id = self._account(scope, req)
        content_type = "application/json"
        body: bytes | None = None
        request: dict[str, Any] | None = None
        raw = await self._body(scope, receive)
        if req.method == "POST":
            content_type = _content_type(scope)
            if content_type.split(";", 1)[0].strip().lower() == "application/json":
                try:
                    request = orjson.loads(raw) if raw else {}
                except orjson.JSONDecodeError as exc:
                    raise _Reject(errors.BAD_JSON, f"We could not parse the JSON body of your request: {exc}") \
                        from None
                if not isinstance(request, dict):
                    raise _Reject(errors.BAD_JSON, "The request body must be a JSON object.")
            body = raw
        headers = self._upstream_headers(scope, content_type)
        now_ms = int(time.time() * 1000)
        model = request.get("model") if request is not None else None
        info = self.engine.accounts.get(account)
        record = new_record(account, api_key_id, self._client_ip(scope), _header(scope, b"user-agent"),
                            {"model": model} if isinstance(model, str) else {}, now_ms,
                            info.org_id if info is not None else None, exchange_id=req.id, endpoint=route)
        decision = await self.engine.decide(req.id, account, record.get("org_id"), record_row(record), now_ms)
        req.decided = True
        self.metrics.decisions.inc(decision.action, decision.enforced)
        if decision.status is not None:
            status, error, refusal_headers = decision.error()
            await _send_full(send, status, error, "application/json", refusal_headers)
            return
        if decision.perturb and family == "completions" and request is not None \
                and perturb_request(request, self.policy.perturb):
            body = orjson.dumps(request)
        try:
            resp = await self._upstream(req.method, path + query, body, headers)
            await self._relay(resp, send, family if decision.perturb else None)
        except _Reject as exc:
            self._refusal(req, exc, scope)
            await _send_error(send, exc.status, errors.error_body(str(exc), exc.type, exc.code))

    async def _relay(self, resp: Response, send: Send, perturb_family: str | None) -> None:
        """A pass-through answer: errors wrapped, stored responses and completions of perturbed accounts perturbed
        (a stored Response holds reasoning items too), everything else streamed through as it comes."""
        p = self.policy.perturb
        ctype = resp.content_type
        if resp.status >= 400 or (perturb_family in ("responses", "chat") and resp.status == 200
                                  and not ctype.startswith("text/event-stream")):
            body = await _read_body(resp, MAX_ERROR_BODY if resp.status >= 400 else None)
            if resp.status == 200:
                with contextlib.suppress(orjson.JSONDecodeError):
                    obj = orjson.loads(body)
                    if isinstance(obj, dict):
                        (perturb_responses_response if perturb_family == "responses" else perturb_response)(obj, p)
                        body = orjson.dumps(obj)
            await self._send_upstream(send, resp.status, body, ctype)
            return
        rewrite = None
        if perturb_family in ("responses", "chat") and ctype.startswith("text/event-stream"):
            rewrite = ResponsesStreamPerturber(p) if perturb_family == "responses" else StreamPerturber(p)
        try:
            await send({"type": "http.response.start", "status": resp.status,
                        "headers": [(b"content-type", ctype.encode())]})
            try:
                async for chunk in resp.stream():
                    out = rewrite.feed(chunk) if rewrite is not None else chunk
                    if out:
                        await send({"type": "http.response.body", "body": out, "more_body": True})
            except UpstreamError:
                # cut short: the response is left unfinished, so the server closes the connection without the
                # last chunk and the client sees a truncated body as an error, never as a complete one
                self.metrics.upstream_errors.inc("stream_cut")
                return
            tail = rewrite.close() if rewrite is not None else b""
            await send({"type": "http.response.body", "body": tail, "more_body": False})
        finally:
            await resp.aclose()

    # ---- recording -------------------------------------------------------
    def _record(self, record: dict[str, Any], decision: Decision, response: dict | None, status: int,
                started: float, request_row: dict[str, Any] | None = None, note: str | None = None) -> None:
        """Spool the exchange and fold it into online state, after the client has its answer."""
        row = finish_record(record, decision, response, status, started, request_row, note)
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
               now_ms: int, org_id: str | None = None, exchange_id: str | None = None,
               endpoint: str = CHAT) -> dict[str, Any]:
    """The canonical exchange for a request (the response is added by :func:`finish_record`).

    Ids are unique per gateway process start (random prefix + counter: no ``uuid4`` syscall per request).
    """
    record: dict[str, Any] = {"id": exchange_id or "gw-" + uuid.uuid4().hex, "ts": format_ts(now_ms),
                              "account_id": account, "api_key_id": api_key_id,
                              "client": {"ip": ip, "user_agent": user_agent}, "endpoint": endpoint, "request": request}
    if org_id:
        record["org_id"] = org_id
    return record


def record_row(record: dict[str, Any]) -> dict[str, Any]:
    """The canonical record as a row dict (raises :class:`FieldError` on an invalid request)."""
    return dict(zip(COLUMNS, flatten(record), strict=True))


def finish_record(record: dict[str, Any], decision: Decision, response: dict | None, status: int,
                  started: float, request_row: dict[str, Any] | None = None, note: str | None = None
                  ) -> dict[str, Any]:
    """Complete the record with the upstream answer and the decision; returns its row.

    With ``request_row`` (the row the decision was made on) only the response side is flattened
    again (same ``flatten``, on the record without its request), saving a full flatten per exchange.
    """
    record["response"] = response
    record["status"] = status
    record["latency_ms"] = int((time.perf_counter() - started) * 1000)
    record["gateway"] = {"action": decision.action, "tier": decision.tier, "enforced": decision.enforced}
    if note:
        record["gateway"]["error"] = note  # e.g. the upstream cut the stream
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


async def _read_body(resp: Any, limit: int | None = None) -> bytes:
    """The whole upstream body (at most ``limit`` bytes of it), always releasing the connection; upstream failures
    become OpenAI errors."""
    try:
        if limit is None:
            return await resp.read()
        chunks, size = [], 0
        async for chunk in resp.stream():
            chunks.append(chunk)
            size += len(chunk)
            if size >= limit:
                break
        return b"".join(chunks)[:limit]
    except UpstreamError as exc:
        raise _reject_upstream(exc) from None
    finally:
        await resp.aclose()


def upstream_error_body(status: int, body: bytes, content_type: str) -> bytes | None:
    """An OpenAI-format error for an upstream error answer that is not one (HTML, plain text, empty, JSON of
    another shape); None when it already is ``{"error": {...}}``. The status is kept by the caller."""
    if "json" in content_type.lower():
        with contextlib.suppress(orjson.JSONDecodeError):
            parsed = orjson.loads(body)
            if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
                return None
    text = _SPACES.sub(" ", _TAGS.sub(" ", body[:4096].decode("utf-8", "replace"))).strip()
    message = f"The upstream model server answered HTTP {status}" + (f": {text[:300]}" if text else " (empty body)")
    type_, code = ("upstream_error", f"upstream_http_{status}") if status >= 500 else \
        ("invalid_request_error", f"upstream_http_{status}")
    return errors.error_body(message, type_, code)


def api_path(path: str) -> tuple[str, str]:
    """``(upstream path, audited route)`` for a pass-through path; a 400 or 414 outside the grammar.

    ``path`` is the client's *decoded* path: every segment after ``/v1/`` must be non-empty unreserved characters
    (no ``%``, no space or control byte, no ``.``/``..``), so the path sent upstream is re-encoded from checked
    parts and nothing else. The route names ids ``{id}`` (``/v1/files/{id}/content``), for the audit log.
    """
    if len(path) > MAX_PATH:
        raise _Reject(errors.URI_TOO_LONG, f"Request paths are at most {MAX_PATH} characters.")
    segments = path[len("/v1/"):].split("/")
    if len(segments) > MAX_SEGMENTS or any(s in (".", "..") or _MODEL_SEGMENT.fullmatch(s) is None
                                           for s in segments):
        raise _Reject(errors.BAD_PATH, "Invalid request path: use letters, digits, '.', '_', '~', ':', '@', '+', '=', "
                                       f"',', '-' in at most {MAX_SEGMENTS} non-empty parts other than '.' and '..'.")
    route = "/v1/" + "/".join(s if i == 0 or s in _ROUTE_WORDS else "{id}" for i, s in enumerate(segments))
    return "/v1/" + "/".join(quote(s, safe=":@+=,~") for s in segments), route


def api_query(raw: bytes) -> str:
    """A pass-through query string, parsed strictly and re-encoded (``?k=v&...``, or ``""``); else a 400 or 414."""
    if not raw:
        return ""
    if len(raw) > MAX_QUERY:
        raise _Reject(errors.URI_TOO_LONG, f"Query strings are at most {MAX_QUERY} bytes.")
    try:
        pairs = parse_qsl(raw.decode("ascii"), keep_blank_values=True, strict_parsing=True,
                          max_num_fields=MAX_QUERY_FIELDS)
    except (UnicodeDecodeError, ValueError):
        raise _Reject(errors.BAD_PATH, "Invalid query string.") from None
    for key, value in pairs:
        if not _QUERY_KEY.fullmatch(key) or not _QUERY_VALUE.fullmatch(value):
            raise _Reject(errors.BAD_PATH, "Invalid query string: keys are letters, digits, '_', '.', '-', '[', ']'; "
                                           "values printable ASCII.")
    return "?" + urlencode(pairs, quote_via=quote, safe="")


def _content_type(scope: Scope) -> str:
    value = _header(scope, b"content-type") or "application/json"
    if len(value) > MAX_CONTENT_TYPE or not _ACCEPT.fullmatch(value):
        raise _Reject(errors.BAD_HEADER, f"The Content-Type header must be at most {MAX_CONTENT_TYPE} printable ASCII "
                                         "characters.")
    return value


def _printable(text: str, limit: int) -> str:
    """``text`` safe for a log line: control and non-ASCII characters escaped, at most ``limit`` characters."""
    out = text if text.isascii() and text.isprintable() else text.encode("unicode_escape").decode("ascii")
    return out[:limit]


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
