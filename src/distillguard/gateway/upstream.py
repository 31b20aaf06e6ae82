"""Clients for the upstream model server.

:class:`PooledUpstream` is a small HTTP/1.1 keep-alive client on asyncio streams:
the proxy's hot path. (httpx/httpcore scan their whole connection pool on every
request and probe for an async library by importing, which costs milliseconds
per request at 1,000 requests/s; this client costs tens of microseconds.)
:class:`HttpxUpstream` wraps any httpx transport, e.g. an in-process ASGI app in tests.

Security (a pooled connection carries every account's traffic, with the provider's key):

* Nothing reaches the request line or a header unvalidated: the method is a token, the
  target is visible ASCII with no dot segments (raw or percent-encoded), header names are
  tokens and values hold no CR, LF, NUL or other control byte; the framing headers
  (host, content-length, transfer-encoding, connection) are this client's alone.
  Anything else raises :class:`UnsafeRequest` and nothing is sent.
* Responses are framed strictly: one ``content-length`` or ``transfer-encoding: chunked``
  (never both, never repeated), chunk sizes and terminators checked, trailers read to the
  end, no body for HEAD/204/304, 1xx interim answers skipped (101 refused). A response
  that breaks any rule is an :class:`UpstreamError` and its connection is closed.
* A connection goes back to the pool only when its response was read fully and exactly,
  nothing more was buffered behind it, the upstream neither closed it nor answered early
  (before the whole request was written), and nothing arrived on it while idle. Anything
  else closes it, so no byte of one response can be handed to the next request.
"""

from __future__ import annotations

import asyncio
import functools
import re
import ssl
from collections.abc import AsyncIterator
from typing import Protocol
from urllib.parse import unquote, urlsplit

import httpx

from distillguard.errors import DistillguardError

PREFETCH_BYTES = 1 << 20  # bodies up to this size are read with the head (larger ones stream)
READ_BYTES = 1 << 16  # larger bodies and chunks are read (and handed on) in pieces of at most this size
MAX_TARGET = 8192  # longest request target sent upstream
MAX_INTERIM = 4  # 1xx interim responses skipped before the final one
MAX_TRAILERS = 32

_METHOD = re.compile(r"[A-Z]{1,16}")
_TARGET = re.compile(r"/[!-~]*")  # origin-form, visible ASCII: no space, CR, LF, NUL, DEL or non-ASCII
_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 token
_VALUE = re.compile(r"[\t\x20-\x7e]*")  # field value: HTAB, SP and visible ASCII only
_FRAMING = frozenset({"host", "content-length", "transfer-encoding", "connection", "te", "upgrade", "trailer",
                      "keep-alive", "expect"})
# a whole response head, checked in one match: status line, then fields with no obs-fold, no space before ':',
# and no CR, LF, NUL or other control byte inside a line
_HEAD = re.compile(rb"HTTP/1\.([01]) ([0-9]{3})(?: [\t\x20-\x7e\x80-\xff]*)?"
                   rb"(?:\r\n[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[\t\x20-\x7e\x80-\xff]*)*\r\n\r\n")
_FIELD = re.compile(rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+):([\t\x20-\x7e\x80-\xff]*)")
# the fields framing depends on, found in a head _HEAD has already checked (so no line holds a bare CR or LF)
_FRAMING_FIELDS = re.compile(rb"\r\n(content-length|transfer-encoding|connection|content-type):([^\r]*)", re.I)
_DIGITS = re.compile(rb"[0-9]{1,18}")
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,15})[ \t]*(?:;[\t\x20-\x7e\x80-\xff]*)?\r\n")


class UpstreamError(DistillguardError):
    """The upstream could not be reached or broke the protocol (502)."""


class UpstreamTimeout(UpstreamError):
    """The upstream did not answer in time (504)."""


class UnsafeRequest(UpstreamError):
    """A method, target or header that cannot be sent safely; nothing was sent (400)."""


class Response(Protocol):
    status: int
    content_type: str

    async def read(self) -> bytes: ...

    def stream(self) -> AsyncIterator[bytes]: ...

    async def aclose(self) -> None: ...


class Upstream(Protocol):
    async def send(self, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> Response: ...

    async def aclose(self) -> None: ...


def check_target(target: str) -> None:
    """Raise :class:`UnsafeRequest` unless ``target`` is a safe origin-form request target."""
    if len(target) > MAX_TARGET:
        raise UnsafeRequest(f"request target longer than {MAX_TARGET} characters")
    if not _TARGET.fullmatch(target):
        raise UnsafeRequest("request target must be '/' then visible ASCII (no space or control bytes)")
    if "/." not in target and "%" not in target:  # no dot segment can hide in it (the common case)
        return
    path = target.split("?", 1)[0]
    if any(unquote(segment) in (".", "..") for segment in path.split("/")):
        raise UnsafeRequest("request target has a '.' or '..' segment")


@functools.lru_cache(maxsize=1024)
def check_header(name: str, value: str) -> None:
    """Raise :class:`UnsafeRequest` unless ``name: value`` can be written as one header line (safe pairs cached)."""
    if not _NAME.fullmatch(name):
        raise UnsafeRequest(f"header name {name[:40]!r} is not a token")
    if name.lower() in _FRAMING:
        raise UnsafeRequest(f"header {name!r} is set by the upstream client itself")
    if not _VALUE.fullmatch(value):
        raise UnsafeRequest(f"header {name!r} has a control byte (CR, LF, NUL, ...) or non-ASCII in its value")


def _buffered(reader: asyncio.StreamReader) -> int:
    """Bytes received but not yet read (asyncio has no public way to ask)."""
    return len(reader._buffer)  # type: ignore[attr-defined]  # private, but the only way to know


class _Conn:
    __slots__ = ("reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    def clean(self) -> bool:
        """Nothing unread, no EOF or error, still open: the only state a connection may be pooled or reused in."""
        reader = self.reader
        return (not _buffered(reader) and not reader.at_eof() and reader.exception() is None
                and not self.writer.transport.is_closing())

    def close(self) -> None:
        self.writer.close()


class _Stale(Exception):
    """A reused connection was closed by the upstream before any response byte: retry once on a fresh one."""


class _PooledResponse:
    def __init__(self, pool: PooledUpstream, conn: _Conn, status: int, content_type: str, length: int | None,
                 chunked: bool, reusable: bool) -> None:
        self._pool = pool
        self._conn: _Conn | None = conn  # None once released (back to the pool, or closed)
        self.status = status
        self.content_type = content_type
        self._length, self._chunked, self._reusable = length, chunked, reusable
        self._done = False
        self._body: bytes | None = None

    async def read(self) -> bytes:
        if self._body is not None:  # read with the head, under the same timeout (the common case)
            return self._body
        return b"".join([chunk async for chunk in self.stream()])

    async def stream(self) -> AsyncIterator[bytes]:
        if self._body is not None:
            if self._body:
                yield self._body
            return
        if self._conn is None or self._done:
            raise UpstreamError("the response was already read or closed")
        reader, timeout = self._conn.reader, self._pool.timeout_s
        try:
            if self._chunked:
                async for piece in _chunks(reader, timeout):
                    yield piece
            elif self._length is not None:
                remaining = self._length
                while remaining:
                    piece = await asyncio.wait_for(reader.read(min(remaining, READ_BYTES)), timeout)
                    if not piece:
                        raise UpstreamError(f"upstream closed the connection {remaining} bytes short of its body")
                    remaining -= len(piece)
                    yield piece
            else:  # no length, not chunked: the body ends when the upstream closes (never reused)
                while piece := await asyncio.wait_for(reader.read(READ_BYTES), timeout):
                    yield piece
            self._done = True
        except TimeoutError:
            self._discard()
            raise UpstreamTimeout("upstream timed out mid-response") from None
        except UpstreamError:
            self._discard()
            raise
        except (OSError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            self._discard()
            raise UpstreamError(f"upstream broke the response: {exc}") from None

    def _discard(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def aclose(self) -> None:
        if self._conn is None:
            return
        conn, self._conn = self._conn, None
        if self._done and self._reusable and conn.clean() and len(self._pool._idle) < self._pool.max_idle:
            self._pool._idle.append(conn)
        else:  # unread body, bytes beyond the response, EOF, or a framing surprise: never handed on
            conn.close()


async def _chunks(reader: asyncio.StreamReader, timeout: float) -> AsyncIterator[bytes]:
    """The data of a chunked body, read exactly: size lines, CRLF after each chunk, trailers to the blank line."""
    while True:
        line = await asyncio.wait_for(reader.readuntil(b"\r\n"), timeout)
        match = _CHUNK_SIZE.fullmatch(line)
        if match is None:
            raise UpstreamError(f"bad chunk size line from upstream: {line[:40]!r}")
        size = int(match[1], 16)
        if size == 0:
            break
        if size <= READ_BYTES:
            data = await asyncio.wait_for(reader.readexactly(size + 2), timeout)
            if data[-2:] != b"\r\n":
                raise UpstreamError("chunk data not followed by CRLF")
            yield data[:-2]
            continue
        while size:
            piece = await asyncio.wait_for(reader.read(min(size, READ_BYTES)), timeout)
            if not piece:
                raise UpstreamError("upstream closed the connection mid-chunk")
            size -= len(piece)
            yield piece
        if await asyncio.wait_for(reader.readexactly(2), timeout) != b"\r\n":
            raise UpstreamError("chunk data not followed by CRLF")
    for _ in range(MAX_TRAILERS + 1):
        line = await asyncio.wait_for(reader.readuntil(b"\r\n"), timeout)
        if line == b"\r\n":
            return
        if _FIELD.fullmatch(line[:-2]) is None:
            raise UpstreamError(f"bad trailer line from upstream: {line[:40]!r}")
    raise UpstreamError(f"more than {MAX_TRAILERS} trailer fields")


def _parse_head(head: bytes) -> tuple[int, bool, list[tuple[bytes, bytes]]]:
    """Status, whether HTTP/1.1, and the framing fields (lower-cased names) of a response head; strict."""
    match = _HEAD.fullmatch(head)
    if match is None:
        line = next((x for x in head.split(b"\r\n") if not _FIELD.fullmatch(x)), head)
        raise UpstreamError(f"malformed response head from upstream, at {line[:80]!r}")
    return int(match[2]), match[1] == b"1", _FRAMING_FIELDS.findall(head)


def _framing(method: str, status: int, http11: bool, fields: list[tuple[bytes, bytes]]
             ) -> tuple[int | None, bool, bool, str]:
    """(content length or None, chunked, reusable, content type); an ambiguous framing raises UpstreamError."""
    lengths: list[bytes] = []
    codings: list[bytes] = []
    tokens: set[bytes] = set()
    content_type: str | None = None
    for name, value in fields:
        name, value = name.lower(), value.strip(b" \t")
        if name == b"content-length":
            lengths.append(value)
        elif name == b"content-type":
            content_type = content_type or value.decode("latin-1")
        elif name == b"transfer-encoding":
            codings.append(value)
        else:
            tokens.update(t.strip().lower() for t in value.split(b","))
    content_type = content_type or "application/json"
    if lengths and codings:
        raise UpstreamError("upstream sent both content-length and transfer-encoding")
    if len(lengths) > 1:
        raise UpstreamError("upstream sent more than one content-length")
    if lengths and _DIGITS.fullmatch(lengths[0]) is None:
        raise UpstreamError(f"bad content-length from upstream: {lengths[0][:40]!r}")
    if codings and (len(codings) > 1 or codings[0].lower() != b"chunked" or not http11):
        raise UpstreamError(f"unsupported transfer-encoding from upstream: {b', '.join(codings)[:40]!r}")
    reusable = http11 and b"close" not in tokens
    if method == "HEAD" or status in (204, 304):  # never a body, whatever the headers say
        if codings or (status == 204 and lengths and int(lengths[0])):
            reusable = False
        return 0, False, reusable, content_type
    if codings:
        return None, True, reusable, content_type
    if lengths:
        return int(lengths[0]), False, reusable, content_type
    return None, False, False, content_type  # delimited by close


class PooledUpstream:
    def __init__(self, base_url: str, timeout_s: float = 300.0, connect_timeout_s: float = 10.0,
                 max_idle: int = 256) -> None:
        url = urlsplit(base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"--upstream: expected an http(s):// URL, got {base_url!r}")
        if url.query or url.fragment or not _VALUE.fullmatch(url.netloc) or " " in url.netloc:
            raise ValueError(f"--upstream: expected scheme://host[:port][/path], got {base_url!r}")
        self.host = url.hostname
        self.port = url.port or (443 if url.scheme == "https" else 80)
        self.ssl = ssl.create_default_context() if url.scheme == "https" else None
        self.prefix = url.path.rstrip("/")
        if self.prefix:
            try:
                check_target(self.prefix)
            except UnsafeRequest as exc:
                raise ValueError(f"--upstream: bad path {self.prefix!r}: {exc}") from None
        self.host_header = url.netloc.encode()
        self.timeout_s, self.connect_timeout_s = timeout_s, connect_timeout_s
        self.max_idle = max_idle
        self._idle: list[_Conn] = []

    async def _connect(self) -> _Conn:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port, ssl=self.ssl, limit=1 << 20), self.connect_timeout_s)
        except TimeoutError:
            raise UpstreamTimeout(f"connecting to {self.host}:{self.port} timed out") from None
        except OSError as exc:
            raise UpstreamError(f"cannot connect to {self.host}:{self.port}: {exc.strerror or exc}") from None
        return _Conn(reader, writer)

    def _take_idle(self) -> _Conn | None:
        """A pooled connection that is still clean; one that received bytes while idle (unsolicited) is closed."""
        while self._idle:
            conn = self._idle.pop()
            if conn.clean():
                return conn
            conn.close()
        return None

    def _request(self, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> bytes:
        """The request bytes; raises :class:`UnsafeRequest` (nothing sent) for anything that could split them."""
        if not _METHOD.fullmatch(method):
            raise UnsafeRequest(f"bad method {method[:20]!r}")
        target = self.prefix + path
        check_target(target)
        lines = [f"{method} {target} HTTP/1.1".encode(), b"host: " + self.host_header]
        for name, value in headers.items():
            check_header(name, value)
            lines.append(f"{name}: {value}".encode())
        lines.append(b"content-length: " + str(len(body or b"")).encode())
        return b"\r\n".join(lines) + b"\r\n\r\n" + (body or b"")

    async def send(self, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> _PooledResponse:
        """Send, then read the head and, when its length is known and small, the body too.

        One ``asyncio.timeout`` covers both reads: a timer per request, not one per read.
        """
        data = self._request(method, path, body, headers)
        for attempt in range(2):  # a pooled connection the server closed meanwhile is retried once, fresh
            conn = self._take_idle() if attempt == 0 else None
            reused = conn is not None
            if conn is None:
                conn = await self._connect()
            try:
                return await self._exchange(conn, method, data)
            except _Stale:
                conn.close()
                if reused:
                    continue
                raise UpstreamError("upstream closed the connection before answering") from None
            except BaseException:  # errors, timeouts and cancellation: a half-used connection is never reused
                conn.close()
                raise
        raise UpstreamError("upstream closed the connection")  # pragma: no cover - the loop always returns

    async def _exchange(self, conn: _Conn, method: str, data: bytes) -> _PooledResponse:
        reader = conn.reader
        resp: _PooledResponse | None = None
        answered = False
        try:
            conn.writer.write(data)
            async with asyncio.timeout(self.timeout_s):
                interim = 0
                while True:
                    head = await reader.readuntil(b"\r\n\r\n")
                    answered = True
                    status, http11, fields = _parse_head(head)
                    if status >= 200:
                        break
                    if status == 101 or status < 100:  # never asked to switch protocols
                        raise UpstreamError(f"unexpected {status} response from upstream")
                    interim += 1  # 100/102/103: skipped (RFC 9110 15.2), and the connection is not reused
                    if interim > MAX_INTERIM:
                        raise UpstreamError(f"more than {MAX_INTERIM} interim (1xx) responses from upstream")
                length, chunked, reusable, content_type = _framing(method, status, http11, fields)
                # an interim answer, or an answer before the whole request was written: don't trust what follows
                early = conn.writer.transport.get_write_buffer_size() > 0
                resp = _PooledResponse(self, conn, status, content_type, length, chunked,
                                       reusable and not interim and not early)
                if length is not None and not chunked and length <= PREFETCH_BYTES:
                    resp._body = await reader.readexactly(length) if length else b""
                    resp._done = True
        except TimeoutError:
            raise UpstreamTimeout("upstream timed out" if resp is None else "upstream timed out mid-response"
                                  ) from None
        except asyncio.IncompleteReadError as exc:
            if not answered and not exc.partial:
                raise _Stale from None
            raise UpstreamError(f"upstream broke the response: {exc}") from None
        except (ConnectionResetError, BrokenPipeError) as exc:
            if not answered:
                raise _Stale from None
            raise UpstreamError(f"upstream broke the response: {exc}") from None
        except (OSError, asyncio.LimitOverrunError) as exc:
            raise UpstreamError(f"upstream broke the response: {exc}") from None
        return resp

    async def aclose(self) -> None:
        while self._idle:
            self._idle.pop().close()
class _HttpxResponse:
    def __init__(self, resp: httpx.Response) -> None:
        self._resp = resp
        self.status = resp.status_code
        self.content_type = resp.headers.get("content-type", "application/json")

    async def read(self) -> bytes:
        return b"".join([chunk async for chunk in self.stream()])

    async def stream(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._resp.aiter_raw():
                yield chunk
        except httpx.TimeoutException:
            raise UpstreamTimeout("upstream timed out mid-response") from None
        except httpx.HTTPError as exc:
            raise UpstreamError(str(exc)) from None

    async def aclose(self) -> None:
        await self._resp.aclose()


class HttpxUpstream:
    def __init__(self, base_url: str, timeout_s: float = 300.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.client = httpx.AsyncClient(base_url=base_url, transport=transport,
                                        timeout=httpx.Timeout(timeout_s, connect=min(10.0, timeout_s)))

    async def send(self, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> _HttpxResponse:
        check_target(path)  # httpx would resolve '..' segments itself, and send what they point to
        for name, value in headers.items():
            check_header(name, value)
        request = self.client.build_request(method, path, content=body, headers=headers)
        try:
            return _HttpxResponse(await self.client.send(request, stream=True))
        except httpx.TimeoutException:
            raise UpstreamTimeout("upstream timed out") from None
        except httpx.HTTPError as exc:
            raise UpstreamError(f"upstream unreachable: {exc}") from None

    async def aclose(self) -> None:
        await self.client.aclose()
