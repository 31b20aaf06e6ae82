"""Clients for the upstream model server.

:class:`PooledUpstream` is a small HTTP/1.1 keep-alive client on asyncio streams:
the proxy's hot path. (httpx/httpcore scan their whole connection pool on every
request and probe for an async library by importing, which costs milliseconds
per request at 1,000 requests/s; this client costs tens of microseconds.)
:class:`HttpxUpstream` wraps any httpx transport, e.g. an in-process ASGI app in tests.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from typing import Protocol
from urllib.parse import urlsplit

import httpx

PREFETCH_BYTES = 1 << 20  # bodies up to this size are read with the head (larger ones stream)


class UpstreamError(Exception):
    """The upstream could not be reached or broke the protocol (502)."""


class UpstreamTimeout(UpstreamError):
    """The upstream did not answer in time (504)."""


class Response(Protocol):
    status: int
    content_type: str

    async def read(self) -> bytes: ...

    def stream(self) -> AsyncIterator[bytes]: ...

    async def aclose(self) -> None: ...


class Upstream(Protocol):
    async def send(self, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> Response: ...

    async def aclose(self) -> None: ...


class _Conn:
    __slots__ = ("reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer


class _PooledResponse:
    def __init__(self, pool: PooledUpstream, conn: _Conn, status: int, headers: dict[bytes, bytes]) -> None:
        self._pool, self._conn = pool, conn
        self.status = status
        self.content_type = headers.get(b"content-type", b"application/json").decode("latin-1")
        self._chunked = b"chunked" in headers.get(b"transfer-encoding", b"").lower()
        length = headers.get(b"content-length")
        self._length = int(length) if length is not None else None
        self._reusable = headers.get(b"connection", b"").lower() != b"close" and (self._chunked or length is not None)
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
        reader, timeout = self._conn.reader, self._pool.timeout_s
        try:
            if self._chunked:
                while True:
                    size_line = await asyncio.wait_for(reader.readuntil(b"\r\n"), timeout)
                    size = int(size_line.split(b";", 1)[0], 16)
                    if size == 0:
                        await asyncio.wait_for(reader.readuntil(b"\r\n"), timeout)  # no trailers expected
                        break
                    chunk = await asyncio.wait_for(reader.readexactly(size + 2), timeout)
                    yield chunk[:-2]
            elif self._length is not None:
                if self._length:
                    yield await asyncio.wait_for(reader.readexactly(self._length), timeout)
            else:
                while chunk := await asyncio.wait_for(reader.read(65536), timeout):
                    yield chunk
            self._done = True
        except TimeoutError:
            raise UpstreamTimeout("upstream timed out mid-response") from None
        except (OSError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            raise UpstreamError(f"upstream broke the response: {exc}") from None

    async def aclose(self) -> None:
        if self._conn is None:
            return
        conn, self._conn = self._conn, None
        if self._done and self._reusable and len(self._pool._idle) < self._pool.max_idle:
            self._pool._idle.append(conn)
        else:
            conn.writer.close()


class PooledUpstream:
    def __init__(self, base_url: str, timeout_s: float = 300.0, connect_timeout_s: float = 10.0,
                 max_idle: int = 256) -> None:
        url = urlsplit(base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"--upstream: expected an http(s):// URL, got {base_url!r}")
        self.host = url.hostname
        self.port = url.port or (443 if url.scheme == "https" else 80)
        self.ssl = ssl.create_default_context() if url.scheme == "https" else None
        self.prefix = url.path.rstrip("/")
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

    def _request(self, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> bytes:
        lines = [f"{method} {self.prefix}{path} HTTP/1.1".encode(), b"host: " + self.host_header]
        lines.extend(f"{k}: {v}".encode("latin-1") for k, v in headers.items())
        lines.append(b"content-length: " + str(len(body or b"")).encode())
        return b"\r\n".join(lines) + b"\r\n\r\n" + (body or b"")

    async def send(self, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> _PooledResponse:
        """Send, then read the head and, when its length is known and small, the body too.

        One ``asyncio.timeout`` covers both reads: a timer per request, not one per read.
        """
        data = self._request(method, path, body, headers)
        for attempt in range(2):  # a pooled connection the server closed meanwhile is retried once, fresh
            reused = bool(self._idle) and attempt == 0
            conn = self._idle.pop() if reused else await self._connect()
            resp = None
            try:
                conn.writer.write(data)
                async with asyncio.timeout(self.timeout_s):
                    head = await conn.reader.readuntil(b"\r\n\r\n")
                    resp = self._parse(conn, head)
                    length = resp._length
                    if length is not None and not resp._chunked and length <= PREFETCH_BYTES:
                        resp._body = await conn.reader.readexactly(length) if length else b""
                        resp._done = True
            except TimeoutError:
                conn.writer.close()
                raise UpstreamTimeout("upstream timed out" if resp is None else "upstream timed out mid-response"
                                      ) from None
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
                conn.writer.close()
                if resp is not None:  # the upstream answered, then broke: never send the request twice
                    raise UpstreamError(f"upstream broke the response: {exc}") from None
                if reused:
                    continue
                raise UpstreamError(f"upstream closed the connection: {exc}") from None
            return resp
        raise UpstreamError("upstream closed the connection")

    def _parse(self, conn: _Conn, head: bytes) -> _PooledResponse:
        lines = head[:-4].split(b"\r\n")
        try:
            status = int(lines[0].split(b" ", 2)[1])
        except (IndexError, ValueError):
            conn.writer.close()
            raise UpstreamError(f"bad status line from upstream: {lines[0][:80]!r}") from None
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        return _PooledResponse(self, conn, status, headers)

    async def aclose(self) -> None:
        while self._idle:
            self._idle.pop().writer.close()


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
        request = self.client.build_request(method, path, content=body, headers=headers)
        try:
            return _HttpxResponse(await self.client.send(request, stream=True))
        except httpx.TimeoutException:
            raise UpstreamTimeout("upstream timed out") from None
        except httpx.HTTPError as exc:
            raise UpstreamError(f"upstream unreachable: {exc}") from None

    async def aclose(self) -> None:
        await self.client.aclose()
