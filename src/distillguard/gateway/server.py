"""Serving an ASGI app (the gateway, the TAXII hub) with uvicorn, plus the read limits uvicorn lacks.

uvicorn bounds the idle time between requests (``timeout_keep_alive``, cancelled by any byte) and, under
h11 only, the size of a request head. It has no deadline for reading a head or a body, no head-size bound
under httptools (its default parser), and no per-client connection limit: slow-loris clients hold
connections, and file descriptors, for as long as they trickle bytes. :class:`ConnectionGuard` adds those
limits to a subclass of uvicorn's own HTTP protocol (httptools, or h11):

* a request head must be complete within ``header_timeout_s`` of the connection opening, or of the first
  byte of a later request on it (keep-alive), and within ``max_head_bytes``; else 408 (or 400) and close;
* a request body must be complete within ``body_timeout_s`` of its head; else the connection is closed
  (the app sees a disconnect);
* at most ``max_connections`` open connections, ``max_connections_per_client`` from one client address;
  a connection beyond them is answered 503 or 429 at once and closed;
* a request target (URL) of at most ``max_url_bytes``, else 414.

Whatever the HTTP layer refuses itself (a malformed request, a head or URL too large, a head too slow) is
answered in the OpenAI error format (``{"error": {...}}``, JSON) rather than uvicorn's plain-text 400, and
reported to the app's ``listener`` (the gateway audits and counts it, and the answer carries its request id).

A request pipelined behind one still being answered is timed from when that answer is complete. The
deadlines are checked by one timer per server every ``tick`` seconds, not a timer per request.
Behind a reverse proxy every connection comes from the proxy's address: raise (or set 0 to turn off)
``max_connections_per_client`` there, and let the proxy limit its clients.
"""

from __future__ import annotations

import asyncio
import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, cast, runtime_checkable

import orjson

IDLE, HEAD, BODY = 0, 1, 2


@dataclass(frozen=True)
class ServerLimits:
    header_timeout_s: float = 10.0  # whole request head, from connection open / first byte of a request
    body_timeout_s: float = 60.0  # whole request body, from the end of its head
    keep_alive_s: float = 5.0  # idle time between requests on a connection (uvicorn's timeout_keep_alive)
    max_head_bytes: int = 64 * 1024  # request line + headers
    max_url_bytes: int = 8 * 1024  # request target
    max_connections: int = 4096  # open connections in all (0: no limit)
    max_connections_per_client: int = 128  # open connections from one client IP (0: no limit)

    def __post_init__(self) -> None:
        for name in ("header_timeout_s", "body_timeout_s", "keep_alive_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name}: expected a positive number of seconds, got {value!r}")
        if self.max_head_bytes < 1024:
            raise ValueError(f"max_head_bytes: expected at least 1024, got {self.max_head_bytes!r}")
        if self.max_url_bytes < 256:
            raise ValueError(f"max_url_bytes: expected at least 256, got {self.max_url_bytes!r}")
        for name in ("max_connections", "max_connections_per_client"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: expected 0 (no limit) or more, got {getattr(self, name)!r}")


def _reply(status: int, reason: str, message: str, code: str, request_id: str | None = None) -> bytes:
    """A complete ``connection: close`` response with an OpenAI-format error body."""
    body = orjson.dumps({"error": {"message": message, "type": "invalid_request_error" if status < 500
                                   else "service_unavailable", "param": None, "code": code}})
    rid = f"x-request-id: {request_id}\r\n" if request_id else ""
    return (f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
            f"{rid}connection: close\r\n\r\n").encode() + body


# what the HTTP layer answers itself, by cause: (status, reason phrase, message, code)
_REFUSALS = {
    "invalid_http": (400, "Bad Request", "Invalid HTTP request received.", "invalid_http"),
    "url_too_long": (414, "URI Too Long", "The request URL is too long.", "uri_too_long"),
    "head_too_large": (431, "Request Header Fields Too Large", "The request head is too large.",
                       "request_header_too_large"),
}


TOO_MANY_FROM_CLIENT = _reply(429, "Too Many Requests", "Too many open connections from this address.",
                              "too_many_connections")
TOO_MANY = _reply(503, "Service Unavailable", "The server has too many open connections; retry later.",
                  "too_many_connections")
HEAD_TIMEOUT = _reply(408, "Request Timeout", "The request head was not received in time.", "request_timeout")
HEAD_TOO_LARGE = _reply(431, "Request Header Fields Too Large", "The request head is too large.",
                        "request_header_too_large")


class _HeadTooLarge(Exception):
    """Raised from a parser callback: the parser stops and the answer is :attr:`cause` (431 or 414)."""

    def __init__(self, message: str, cause: str = "head_too_large") -> None:
        super().__init__(message)
        self.cause = cause


class ConnectionGuard:
    """Per-server connection limits and read deadlines; :meth:`protocol` is the class to give uvicorn."""

    def __init__(self, limits: ServerLimits | None = None) -> None:
        self.limits = limits or ServerLimits()
        self.connections: set[Any] = set()
        self.per_client: dict[str, int] = {}
        self.tick = max(0.05, min(1.0, self.limits.header_timeout_s / 5, self.limits.body_timeout_s / 5))
        self.refused = 0  # connections refused over a limit
        self.expired = 0  # connections closed past a read deadline
        self.malformed = 0  # requests refused by the HTTP layer (malformed, head or URL too large)
        # (status, code, client address) -> request id: the app's hook for requests refused here
        self.listener: Callable[[int, str, str | None], str | None] | None = None
        self._timer: asyncio.TimerHandle | None = None

    def protocol(self, http: str = "auto") -> type[asyncio.Protocol]:
        """uvicorn's ``httptools`` (the default when installed) or ``h11`` protocol, guarded by this object."""
        protocols = _protocols()
        if http == "auto":
            http = "httptools" if "httptools" in protocols else "h11"
        if http not in protocols:
            raise ValueError(f"http: expected auto, {' or '.join(protocols)}, got {http!r}")
        base = protocols[http]
        return type(base.__name__, (base,), {"_guard": self})

    # ---- bookkeeping (called by the protocols) -----------------------------
    def admit(self, conn: Any) -> bytes | None:
        """Register a new connection; returns the refusal to send when it is over a limit."""
        limits = self.limits
        self.connections.add(conn)
        client = conn._g_client
        if client is not None:
            self.per_client[client] = self.per_client.get(client, 0) + 1
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.tick, self._sweep)
        if limits.max_connections and len(self.connections) > limits.max_connections:
            self.refused += 1
            return TOO_MANY
        if limits.max_connections_per_client and client is not None \
                and self.per_client[client] > limits.max_connections_per_client:
            self.refused += 1
            return TOO_MANY_FROM_CLIENT
        return None

    def refusal(self, cause: str, client: str | None) -> bytes:
        """The JSON answer to a request refused by the HTTP layer, after telling the listener."""
        self.malformed += 1
        status, reason, message, code = _REFUSALS[cause]
        request_id = None
        if self.listener is not None:
            try:
                request_id = self.listener(status, code, client)
            except Exception:  # noqa: BLE001 - the answer goes out whatever the listener does
                request_id = None
        return _reply(status, reason, message, code, request_id)

    def release(self, conn: Any) -> None:
        if conn not in self.connections:
            return
        self.connections.discard(conn)
        client = conn._g_client
        if client is not None:
            left = self.per_client.get(client, 1) - 1
            if left > 0:
                self.per_client[client] = left
            else:
                self.per_client.pop(client, None)

    def _sweep(self) -> None:
        now = asyncio.get_running_loop().time()
        for conn in list(self.connections):
            deadline = conn._g_deadline
            if deadline is not None and now >= deadline:
                self.expired += 1
                conn._g_expire()
        self._timer = (asyncio.get_running_loop().call_later(self.tick, self._sweep) if self.connections
                       else None)


class _Guarded:
    """The guard's per-connection state machine, mixed into a uvicorn HTTP protocol."""

    _guard: ConnectionGuard
    _g_phase = IDLE
    _g_deadline: float | None = None
    _g_head_bytes = 0
    _g_client: str | None = None
    _g_cause = "invalid_http"  # why the next 400 is sent (set before a parser callback refuses a request)
    transport: asyncio.Transport
    client: tuple[str, int] | None
    loop: asyncio.AbstractEventLoop

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._g_client = self.client[0] if self.client else None
        refusal = self._guard.admit(self)
        if refusal is not None:
            stream = cast(asyncio.Transport, transport)  # uvicorn's HTTP protocols run on stream transports
            stream.write(refusal)
            stream.close()
            return
        self._g_set(HEAD)  # the first head is due from the moment the connection opens

    def connection_lost(self, exc: Exception | None) -> None:
        self._guard.release(self)
        self._g_deadline = None
        super().connection_lost(exc)  # type: ignore[misc]

    def data_received(self, data: bytes) -> None:
        if self.transport.is_closing():
            return
        if self._g_phase == IDLE:
            self._g_set(HEAD)  # any byte starts the next head's clock (stray CRLFs too)
        super().data_received(data)  # type: ignore[misc]
        self._g_after_data()
        if self._g_phase == HEAD:
            self._g_head_bytes += len(data)
            if self._g_head_bytes > self._guard.limits.max_head_bytes and not self.transport.is_closing():
                self.transport.write(self._guard.refusal("head_too_large", self._g_client))
                self.transport.close()

    def send_400_response(self, msg: str) -> None:
        """uvicorn's plain-text 400 for a request it cannot parse, in the OpenAI JSON error format instead."""
        if self.transport.is_closing():
            return
        self.transport.write(self._guard.refusal(self._g_cause, self._g_client))
        self.transport.close()

    def on_response_complete(self) -> None:
        super().on_response_complete()  # type: ignore[misc]
        self._g_answered()
        self._g_after_data()
        if self._g_phase != IDLE and self._g_deadline is None and not self._g_earlier_pending():
            self._g_arm()  # a request pipelined behind the one just answered: its clock starts now

    # ---- state -------------------------------------------------------------
    def _g_after_data(self) -> None:
        """Follow the parser's state where it has no callbacks (h11)."""

    def _g_answered(self) -> None:
        """A response is complete."""

    def _g_pending(self) -> int:
        """Requests whose head was read and whose response is not complete."""
        raise NotImplementedError

    def _g_earlier_pending(self) -> bool:
        """Another request is being answered before the one being read: its read is not timed yet."""
        return self._g_pending() - (1 if self._g_phase == BODY else 0) > 0

    def _g_set(self, phase: int) -> None:
        if phase == self._g_phase:
            return
        self._g_phase = phase
        self._g_head_bytes = 0
        self._g_deadline = None
        if phase != IDLE and not self._g_earlier_pending():
            self._g_arm()

    def _g_arm(self) -> None:
        limits = self._guard.limits
        timeout = limits.header_timeout_s if self._g_phase == HEAD else limits.body_timeout_s
        self._g_deadline = self.loop.time() + timeout

    def _g_expire(self) -> None:
        self._g_deadline = None
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if self._g_phase == HEAD and self._g_pending() == 0:  # nothing else is being answered: say why
            transport.write(HEAD_TIMEOUT)
        transport.close()


@functools.cache
def _protocols() -> dict[str, type]:
    """The guarded subclasses of uvicorn's HTTP protocols (built on first use: the CLI imports this module)."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class LimitedConnection(h11.Connection):
        """h11 bounds only an *incomplete* head (max_incomplete_event_size): a complete one is measured here."""

        max_head_bytes = 0
        max_url_bytes = 0
        cause = "invalid_http"

        def next_event(self) -> Any:
            event = super().next_event()
            if type(event) is h11.Request:
                size = len(event.method) + len(event.target) + sum(len(n) + len(v) + 4
                                                                   for n, v in event.headers.raw_items())
                if len(event.target) > self.max_url_bytes:
                    self.cause = "url_too_long"
                    raise h11.RemoteProtocolError(f"request target of {len(event.target)} bytes",
                                                  error_status_hint=414)
                if size > self.max_head_bytes:  # refused (431) and closed, before the app sees it
                    self.cause = "head_too_large"
                    raise h11.RemoteProtocolError(f"request head of {size} bytes", error_status_hint=431)
            return event

    class GuardedH11(_Guarded, H11Protocol):
        """h11 has no callbacks: the phase follows its state after each read (it reads one request at a time)."""

        conn: LimitedConnection

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            limit = self._guard.limits.max_head_bytes
            self.conn = LimitedConnection(h11.SERVER, max_incomplete_event_size=limit)
            self.conn.max_head_bytes = limit
            self.conn.max_url_bytes = self._guard.limits.max_url_bytes

        def send_400_response(self, msg: str) -> None:
            self._g_cause = self.conn.cause
            super().send_400_response(msg)

        def _g_pending(self) -> int:
            cycle = self.cycle
            return 1 if cycle is not None and not cycle.response_complete else 0

        def _g_after_data(self) -> None:
            their = self.conn.their_state
            if their is h11.IDLE:
                self._g_set(HEAD if self._g_phase == HEAD or self.conn.trailing_data[0] else IDLE)
            else:  # SEND_BODY: reading a body; DONE and after: nothing more is read for now
                self._g_set(BODY if their is h11.SEND_BODY else IDLE)

    protocols: dict[str, type] = {"h11": GuardedH11}
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:  # pragma: no cover - httptools is a dependency
        return protocols

    class GuardedHttpTools(_Guarded, HttpToolsProtocol):
        """httptools reports each step through callbacks: the phase follows them."""

        _g_outstanding = 0  # heads read whose response is not complete (httptools reads ahead: pipelining)

        def _g_pending(self) -> int:
            return self._g_outstanding

        def _g_answered(self) -> None:
            self._g_outstanding = max(0, self._g_outstanding - 1)

        def on_message_begin(self) -> None:
            self._g_set(HEAD)
            self._g_cause = "invalid_http"
            super().on_message_begin()

        def on_url(self, url: bytes) -> None:
            super().on_url(url)
            if len(self.url) > self._guard.limits.max_url_bytes:
                self._g_cause = "url_too_long"
                raise _HeadTooLarge(f"request target of {len(self.url)}+ bytes", "url_too_long")

        def on_headers_complete(self) -> None:
            size = len(self.url) + sum(len(n) + len(v) + 4 for n, v in self.headers)
            if size > self._guard.limits.max_head_bytes:
                self._g_cause = "head_too_large"
                raise _HeadTooLarge(f"request head of {size} bytes")  # httptools stops; answered 431
            self._g_outstanding += 1
            self._g_set(BODY)
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            self._g_set(IDLE)
            super().on_message_complete()

    protocols["httptools"] = GuardedHttpTools
    return protocols


@runtime_checkable
class GuardAware(Protocol):
    """An app told about the :class:`ConnectionGuard` serving it (the gateway: metrics, audited refusals)."""

    def attach_guard(self, guard: ConnectionGuard) -> None: ...


def uvicorn_config(app: Any, host: str, port: int, limits: ServerLimits | None = None, http: str = "auto",
                   **kwargs: Any) -> Any:
    """A ``uvicorn.Config`` serving ``app`` with :class:`ConnectionGuard` limits (websockets off)."""
    import uvicorn

    limits = limits or ServerLimits()
    guard = ConnectionGuard(limits)
    kwargs.setdefault("log_level", "warning")
    config = uvicorn.Config(app, host=host, port=port, http=guard.protocol(http), ws="none",
                            timeout_keep_alive=limits.keep_alive_s,  # type: ignore[arg-type]
                            h11_max_incomplete_event_size=limits.max_head_bytes, **kwargs)
    config.guard = guard  # type: ignore[attr-defined]
    if isinstance(app, GuardAware):  # the app counts (and audits) what the HTTP layer refuses
        app.attach_guard(guard)
    return config


def run(app: Any, host: str, port: int, limits: ServerLimits | None = None, **kwargs: Any) -> None:
    """Serve ``app`` until interrupted (what ``distillguard gateway`` and ``distillguard intel serve`` run)."""
    import uvicorn

    uvicorn.Server(uvicorn_config(app, host, port, limits, **kwargs)).run()
