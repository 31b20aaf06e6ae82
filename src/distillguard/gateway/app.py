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

By concern: this module routes and proxies; :mod:`.admission` authenticates and decides (and audits refusals),
:mod:`.records` records (spool, online state), :mod:`.paths` holds the request grammar and :mod:`.asgi` what every
ASGI entry point shares (the middleware and the LiteLLM hook use it too).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from typing import TYPE_CHECKING, Any

import httpx
import orjson

from distillguard.gateway import errors
from distillguard.gateway.actions import Action, Flow
from distillguard.gateway.admission import Admission, InFlight
from distillguard.gateway.asgi import (
    CHAT,
    HEALTH,
    METRICS,
    MODELS,
    RESPONSES,
    Receive,
    Reject,
    Scope,
    Send,
    header,
    key_id,
    printable,
    send_error,
    send_full,
    send_reject,
)
from distillguard.gateway.engine import Decision, Engine
from distillguard.gateway.metrics import Metrics
from distillguard.gateway.paths import (
    MAX_ERROR_BODY,
    PASS_THROUGH,
    accept,
    api_path,
    api_query,
    content_type,
    models_path,
    upstream_error_body,
)
from distillguard.gateway.perturb import (
    ResponsesStreamPerturber,
    StreamPerturber,
    perturb_request,
    perturb_response,
    perturb_responses_response,
)
from distillguard.gateway.policy import Perturb
from distillguard.gateway.records import Recorder, finish_record, new_record, record_row
from distillguard.gateway.resistance import Resistance, upstream_body
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
from distillguard.model import FieldError
from distillguard.resist.directive import VLLM_XARGS, strip_client_directive

if TYPE_CHECKING:
    from distillguard.gateway.online import ScorerProcess
    from distillguard.gateway.server import ConnectionGuard
    from distillguard.gateway.spool import Spool
    from distillguard.resist.profile import ResistanceProfile

log = logging.getLogger("distillguard.gateway")


class Gateway:
    def __init__(self, upstream: str, engine: Engine, *, keys: dict[str, str] | None = None,
                 spool: Spool | None = None, upstream_api_key: str | None = None,
                 transport: httpx.AsyncBaseTransport | None = None, trust_forwarded: bool = False,
                 flush_every_s: float = 5.0, resistance: ResistanceProfile | None = None) -> None:
        self.upstream = upstream.rstrip("/")
        self.engine = engine
        self.policy = engine.policy
        # the distillation-resistance profile: trace defence, engine directive, record (gateway/resistance.py)
        self.resistance = Resistance(resistance, self.policy) if resistance is not None else None
        if upstream_api_key:
            try:
                check_header("authorization", f"Bearer {upstream_api_key}")
            except UnsafeRequest:
                raise ValueError("the upstream API key has a control byte or non-ASCII character") from None
        self.upstream_api_key = upstream_api_key
        self.transport = transport
        self._client: Upstream | None = None
        self._pump: asyncio.Task | None = None
        self.metrics = Metrics()
        self.admission = Admission(engine, self.metrics, keys, trust_forwarded)  # who asks, what the policy says
        self.recorder = Recorder(engine, spool, flush_every_s)  # the store and online state, after the answer
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
        guard.listener = self.admission.http_refused

    @property
    def spool(self) -> Spool | None:
        return self.recorder.spool

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
        await self.recorder.start()
        if self.scorer_process is not None:
            self._pump = asyncio.create_task(self._pump_loop())
        # what exists now (modules, policy, keys) lives as long as the process: full collections skip it
        gc.collect()
        gc.freeze()

    async def _pump_loop(self) -> None:
        """Rows for the online scorer leave the buffer when traffic pauses too (else they wait for a request)."""
        from distillguard.gateway.online import PUMP_EVERY_S

        worker = self.scorer_process
        assert worker is not None  # started only with a worker
        while True:
            await asyncio.sleep(PUMP_EVERY_S)
            try:
                worker.pump()
            except Exception:  # noqa: BLE001 - the next request's poll() reports a dead scorer
                log.exception("online scorer pump failed")

    async def flush(self) -> int:
        """Move spooled exchanges into the store without blocking the event loop."""
        return await self.recorder.flush()

    async def shutdown(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump
        self._pump = None
        await self.recorder.stop_flushing()
        await self.recorder.drain()
        if self._client is not None:
            await self._client.aclose()
        await self.recorder.close()
        await asyncio.to_thread(self.engine.scorer.close)
        if self.engine.audit is not None:
            self.engine.audit.close()
        await self.engine.state.close()

    # ---- ASGI ------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        started = time.perf_counter()
        req = InFlight(self.admission.new_id(), scope["method"], scope["path"])
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
                await send_error(tracked, 500, errors.error_body(f"Internal gateway error: {type(exc).__name__}",
                                                                 "server_error", "internal_error"))
        finally:
            self.metrics.requests.inc(req.route, req.status)
            self.metrics.duration.observe(req.route, time.perf_counter() - started)

    async def _route(self, scope: Scope, receive: Receive, send: Send, req: InFlight) -> None:
        try:
            path, method = req.path, req.method
            if path in (CHAT, RESPONSES):
                req.route = "chat" if path == CHAT else "responses"
                if method != "POST":
                    raise Reject(errors.METHOD, f"{method} is not allowed on {path}; use POST")
                await self._generate(scope, receive, send, req, "chat" if path == CHAT else "responses")
            elif path == MODELS or path.startswith(MODELS + "/"):
                req.route = "models"
                if method != "GET":
                    raise Reject(errors.METHOD, f"{method} is not allowed on {MODELS}; use GET")
                self.admission.account(scope, req)
                await self._models(scope, send)
            elif path in (HEALTH, METRICS):
                req.route = path[1:]
                if method != "GET":
                    raise Reject(errors.METHOD, f"{method} is not allowed on {path}; use GET")
                await (self._health(send) if path == HEALTH else send_full(
                    send, 200, self.metrics.render(), "text/plain; version=0.0.4; charset=utf-8"))
            elif path.startswith("/v1/") and path.split("/", 3)[2] in PASS_THROUGH:
                req.route = "passthrough"
                await self._pass_through(scope, receive, send, req)
            else:
                raise Reject(errors.NOT_FOUND, f"Unknown request URL: {method} {printable(path, 200)}")
        except Reject as exc:
            self.admission.refusal(req, exc, scope)
            await send_reject(send, exc)

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
    async def _health(self, send: Send) -> None:
        """Liveness and whether decisions have all they need: 503 only when requests would be refused anyway."""
        worker = self.scorer_process
        scorer = "off" if worker is None else ("down" if worker.dead else "up")
        shedding = worker is not None and worker.shedding
        status = "ok" if scorer != "down" and not shedding else "degraded"
        code = 503 if scorer == "down" and self.policy.fail == "closed" and self.policy.mode != "shadow" else 200
        body = orjson.dumps({"status": status, "online_scorer": scorer, "online_shedding": shedding,
                             "mode": self.policy.mode, "fail": self.policy.fail})
        await send_full(send, code, body, "application/json")

    async def _body(self, scope: Scope, receive: Receive) -> bytes:
        limit = self.policy.max_body_bytes
        declared = header(scope, b"content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise Reject(errors.TOO_LARGE, f"Request body of {declared} bytes exceeds the {limit}-byte limit.")
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise Reject(errors.BAD_JSON, "Client disconnected before sending the body.")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise Reject(errors.TOO_LARGE, f"Request body exceeds the {limit}-byte limit.")
            chunks.append(chunk)
            if not message.get("more_body"):
                return b"".join(chunks)

    def _upstream_headers(self, scope: Scope, content_type: str = "application/json") -> dict[str, str]:
        """The headers sent upstream: ours, plus the client's Accept only when it is plain printable ASCII."""
        headers = {"content-type": content_type}
        accepted = accept(scope)
        if accepted:
            headers["accept"] = accepted
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
            raise Reject(errors.BAD_JSON, f"We could not parse the JSON body of your request: {exc}") from None
        if not isinstance(request, dict):
            raise Reject(errors.BAD_JSON, "The request body must be a JSON object.")
        return raw, request

    async def _generate(self, scope: Scope, receive: Receive, send: Send, req: InFlight, api: str) -> None:
        """A chat completion or a Responses API request: decided, forwarded, perturbed, recorded, scored."""
        started = time.perf_counter()
        now_ms = int(time.time() * 1000)
        account, api_key_id = self.admission.account(scope, req)
        headers = self._upstream_headers(scope)  # refused before the decision, like any malformed request
        raw, request = await self._parse(scope, receive)
        endpoint = CHAT if api == "chat" else RESPONSES
        info = self.engine.accounts.get(account)
        record = new_record(account, api_key_id, self.admission.client_ip(scope), header(scope, b"user-agent"),
                            request, now_ms, info.org_id if info is not None else None, exchange_id=req.id,
                            endpoint=endpoint)
        try:
            row = record_row(record)
        except FieldError as exc:
            raise Reject(errors.BAD_JSON, f"Invalid request: {exc.reason}", param=exc.field) from None
        decision = await self.admission.decide(req, account, record.get("org_id"), row, now_ms)
        flow = Flow(request=request, api=api)
        action = self.engine.action_for(decision)
        if self.resistance is not None:
            self.resistance.prepare(decision, flow)  # the profile's trace defence for the verdict
        action.apply(decision, flow)
        if flow.refusal is not None:
            status, body, refusal_headers = flow.refusal
            await send_full(send, status, body, "application/json", refusal_headers)
            self.recorder.record(record, decision, None, status, started, row)
            return
        # the engine directive goes upstream only (a copy of the request; a client's own directive removed), the
        # record gets the profile's "resistance" object
        sent, directed = upstream_body(request, headers, self.resistance, decision, action, flow, record)
        content = orjson.dumps(sent) if flow.changes or directed else raw
        # the request was edited in place: the stored exchange has the edited one (flattened again)
        request_row = None if flow.changes else row
        note = None
        try:
            resp = await self._upstream("POST", endpoint, content, headers)
            if resp.status == 200 and resp.content_type.startswith("text/event-stream"):
                response, status, note = await self._stream(resp, flow, api, send)
            else:
                response, status = await self._buffered(resp, flow, action, decision, send)
        except Reject as exc:
            self.admission.refusal(req, exc, scope)
            await send_reject(send, exc, param=False)
            self.recorder.record(record, decision, None, exc.status, started, request_row)
            return
        self.recorder.record(record, decision, response, status, started, request_row, note)

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
        if response is not None and resp.status == 200 and action.defences(decision, flow.reasoning) is not None:
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
        rewrite = flow.stream if flow.stream is not None else EventFramer()  # whole events, rewritten or not
        note = None
        try:
            await send({"type": "http.response.start", "status": resp.status,
                        "headers": [(b"content-type", resp.content_type.encode()), (b"cache-control", b"no-cache")]})
            try:
                async for chunk in resp.stream():
                    recorder.feed(chunk)
                    out = rewrite.feed(chunk)
                    if out:
                        await send({"type": "http.response.body", "body": out, "more_body": True})
                tail = rewrite.close()
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
        await send_full(send, status, body, content_type)

    async def _upstream(self, method: str, url: str, content: bytes | None, headers: dict[str, str]) -> Response:
        try:
            return await self.client.send(method, url, content, headers)
        except UpstreamError as exc:
            self.metrics.upstream_errors.inc("unsafe" if isinstance(exc, UnsafeRequest)
                                             else "timeout" if isinstance(exc, UpstreamTimeout) else "unreachable")
            raise _reject_upstream(exc) from None

    # ---- the rest of the API: decided, audited, forwarded ----------------
    async def _pass_through(self, scope: Scope, receive: Receive, send: Send, req: InFlight) -> None:
        """Any other OpenAI endpoint of :data:`PASS_THROUGH`: the path and query re-encoded from a strict grammar,
        the body bounded, the request decided and audited (blocked and throttled accounts are refused here too);
        not recorded in the store nor folded into online state (those hold generations)."""
        path, route = api_path(req.path)
        family = route.split("/", 3)[2]
        if req.method not in PASS_THROUGH[family]:
            raise Reject(errors.METHOD, f"{req.method} is not allowed on {route}")
        query = api_query(scope.get("query_string", b""))
        account, api_key_id = self.admission.account(scope, req)
        ctype = "application/json"
        body: bytes | None = None
        request: dict[str, Any] | None = None
        raw = await self._body(scope, receive)
        if req.method == "POST":
            ctype = content_type(scope)
            if ctype.split(";", 1)[0].strip().lower() == "application/json":
                try:
                    request = orjson.loads(raw) if raw else {}
                except orjson.JSONDecodeError as exc:
                    raise Reject(errors.BAD_JSON, f"We could not parse the JSON body of your request: {exc}") \
                        from None
                if not isinstance(request, dict):
                    raise Reject(errors.BAD_JSON, "The request body must be a JSON object.")
            body = raw
        headers = self._upstream_headers(scope, ctype)
        now_ms = int(time.time() * 1000)
        model = request.get("model") if request is not None else None
        info = self.engine.accounts.get(account)
        record = new_record(account, api_key_id, self.admission.client_ip(scope), header(scope, b"user-agent"),
                            {"model": model} if isinstance(model, str) else {}, now_ms,
                            info.org_id if info is not None else None, exchange_id=req.id, endpoint=route)
        decision = await self.admission.decide(req, account, record.get("org_id"), record_row(record), now_ms)
        if decision.status is not None:
            status, error, refusal_headers = decision.error()
            await send_full(send, status, error, "application/json", refusal_headers)
            return
        action = self.engine.action_for(decision)
        override = self.resistance.reasoning(decision) if self.resistance is not None else None
        p = action.defences(decision, override)  # the output defences chat and Responses exchanges would get
        if request is not None:  # not recorded: edited in place
            edited = strip_client_directive(request)  # a directive is the gateway's to send, never the client's
            if p is not None and family == "completions":
                edited |= bool(perturb_request(request, p))
            if family == "completions" and self.resistance is not None:  # legacy completions are generations too
                before = request.get(VLLM_XARGS)
                self.resistance.on_request(decision, request, headers)
                edited |= request.get(VLLM_XARGS) != before
            if edited:
                body = orjson.dumps(request)
        try:
            resp = await self._upstream(req.method, path + query, body, headers)
            await self._relay(resp, send, family if p is not None else None, p)
        except Reject as exc:
            self.admission.refusal(req, exc, scope)
            await send_reject(send, exc, param=False)

    async def _relay(self, resp: Response, send: Send, perturb_family: str | None, p: Perturb | None = None) -> None:
        """A pass-through answer: errors wrapped, stored responses and completions of perturbed accounts perturbed
        (a stored Response holds reasoning items too), everything else streamed through as it comes."""
        p = p if p is not None else self.policy.perturb
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


def _reject_upstream(exc: UpstreamError) -> Reject:
    if isinstance(exc, UnsafeRequest):
        return Reject(errors.UNSAFE, f"The request cannot be forwarded: {exc}")
    if isinstance(exc, UpstreamTimeout):
        return Reject(errors.UPSTREAM_TIMEOUT, "The upstream model server timed out.")
    return Reject(errors.UPSTREAM_DOWN, f"The upstream model server is unreachable: {exc}")


__all__ = ["CHAT", "MODELS", "PASS_THROUGH", "RESPONSES", "Gateway", "api_path", "api_query", "finish_record",
           "key_id", "models_path", "new_record", "record_row", "upstream_error_body"]
