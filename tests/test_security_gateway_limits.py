"""Security: slow-loris and connection exhaustion against the served gateway and TAXII hub.

Real sockets against servers started here on 127.0.0.1, with short deadlines so each test is bounded
(a few seconds). Both uvicorn HTTP protocols are covered (httptools, the default, and h11).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import orjson
import pytest
import uvicorn
from click.testing import CliRunner

from conftest import free_port, start_server
from distillguard.cli import main

FAST = {"header_timeout_s": 0.5, "body_timeout_s": 0.5}
MARGIN = 1.0  # deadline + sweep tick + scheduling on a loaded 2-core machine


async def _app(scope, receive, send) -> None:
    """Reads the body, answers its length; /slow streams for 1.2 s (longer than every read deadline)."""
    if scope["type"] != "http":
        return
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        size += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    if scope["path"] == "/slow":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        for _ in range(6):
            await asyncio.sleep(0.2)
            await send({"type": "http.response.body", "body": b"tick\n", "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    body = orjson.dumps({"received": size})
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


@contextlib.asynccontextmanager
async def _served(http: str = "httptools", **limits) -> AsyncIterator[tuple[int, object]]:
    from distillguard.gateway.server import ServerLimits, uvicorn_config

    port = free_port()
    config = uvicorn_config(_app, "127.0.0.1", port, ServerLimits(**{**FAST, **limits}), http=http,
                            lifespan="off", log_level="critical")
    server, task = await start_server(config)
    try:
        yield port, config.guard
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


async def _loris(port: int, first: bytes, drip: bytes, every: float = 0.1, limit: float = 4.0
                 ) -> tuple[float | None, bytes]:
    """Send ``first``, then ``drip`` every ``every`` s; (seconds until the server closed, or None; what it sent)."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    received = b""
    try:
        if first:
            writer.write(first)
        while loop.time() - started < limit:
            try:
                chunk = await asyncio.wait_for(reader.read(65536), every)
            except TimeoutError:
                if drip:
                    writer.write(drip)
                continue
            if not chunk:
                return loop.time() - started, received
            received += chunk
    except ConnectionError:
        return loop.time() - started, received
    finally:
        writer.close()
    return None, received


async def _get(port: int, path: str = "/", body: bytes = b"") -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    method = "POST" if body else "GET"
    writer.write(f"{method} {path} HTTP/1.1\r\nhost: x\r\ncontent-length: {len(body)}\r\nconnection: close\r\n\r\n"
                 .encode() + body)
    try:
        return await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()


HEAD_START = b"GET / HTTP/1.1\r\nhost: x\r\n"


@pytest.mark.parametrize("http", ["httptools", "h11"])
async def test_slow_heads_silent_connections_and_slow_bodies_are_cut(http):
    async with _served(http) as (port, guard):
        results = await asyncio.gather(
            _loris(port, HEAD_START, b"x-a: b\r\n"),  # a head that never ends
            _loris(port, b"", b""),  # a connection that never says anything
            _loris(port, b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 100000\r\n\r\nab", b"x"),  # slow body
            _loris(port, b"GET /", b"a"),  # a request line one byte at a time
        )
        for elapsed, _ in results:
            assert elapsed is not None and elapsed < FAST["header_timeout_s"] + MARGIN, results
        for _, received in (results[0], results[1], results[3]):
            assert received.startswith(b"HTTP/1.1 408 "), received
        assert (await _get(port)).endswith(b'{"received":0}')  # still serving
        assert guard.expired >= 4


@pytest.mark.parametrize("http", ["httptools", "h11"])
async def test_keep_alive_trickle_is_cut(http):
    """Any byte cancels uvicorn's keep-alive timer: stray CRLFs after a response must not hold the connection."""
    async with _served(http, keep_alive_s=30.0) as (port, _):
        loop = asyncio.get_running_loop()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 200 ")
        await reader.readuntil(b"}")
        started = loop.time()
        closed = None
        while loop.time() - started < 4:
            writer.write(b"\r\n")
            try:
                if not await asyncio.wait_for(reader.read(65536), 0.1):
                    closed = loop.time() - started
                    break
            except TimeoutError:
                continue
            except ConnectionError:
                closed = loop.time() - started
                break
        writer.close()
        assert closed is not None and closed < FAST["header_timeout_s"] + MARGIN


@pytest.mark.parametrize("http", ["httptools", "h11"])
async def test_oversized_heads_are_refused(http):
    async with _served(http, max_head_bytes=8192) as (port, _):
        big_line = b"x-big: " + b"a" * 1000 + b"\r\n"
        # fast: 40 KB of headers well inside the deadline, in pieces, and in one piece
        elapsed, received = await _loris(port, HEAD_START, big_line, every=0.001)
        assert elapsed is not None and elapsed < 1.0 and received.startswith(b"HTTP/1.1 4"), received
        elapsed, received = await _loris(port, HEAD_START + big_line * 40 + b"\r\n", b"", every=0.05)
        assert elapsed is not None and elapsed < 1.0 and received.startswith(b"HTTP/1.1 4"), received


async def test_connections_per_client_and_in_all_are_bounded():
    async with _served(max_connections_per_client=4, max_connections=1000) as (port, guard):
        results = await asyncio.gather(*[_loris(port, HEAD_START, b"x-a: b\r\n") for _ in range(12)])
        refused = [r for r in results if r[1].startswith(b"HTTP/1.1 429 ")]
        timed_out = [r for r in results if r[1].startswith(b"HTTP/1.1 408 ")]
        assert len(refused) == 8 and len(timed_out) == 4, results
        assert all(elapsed < 0.5 for elapsed, _ in refused)  # refused at once, not after a deadline
        assert b"too_many_connections" in refused[0][1]
        assert b'"received":0' in await _get(port)  # the limit is on open connections: afterwards, served again
        await asyncio.sleep(0.1)
        assert guard.per_client == {} and not guard.connections  # every connection was released
    async with _served(max_connections_per_client=0, max_connections=3) as (port, guard):
        results = await asyncio.gather(*[_loris(port, b"", b"") for _ in range(5)])
        assert sorted(r[1][:13] for r in results) == [b"HTTP/1.1 408 "] * 3 + [b"HTTP/1.1 503 "] * 2


@pytest.mark.parametrize("http", ["httptools", "h11"])
async def test_ordinary_clients_are_not_affected(http):
    """Long responses, keep-alive reuse, bodies in pieces within the deadline, pipelining behind a slow answer."""
    async with _served(http) as (port, _):
        slow = await _get(port, "/slow")  # 1.2 s of answer: longer than any read deadline
        assert slow.count(b"tick\n") == 6 and slow.endswith(b"0\r\n\r\n"), slow
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for i in range(3):  # one connection, three requests, idle gaps shorter than keep-alive
                body = b"x" * (1000 * (i + 1))
                writer.write(f"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: {len(body)}\r\n\r\n".encode())
                for k in range(0, len(body), 500):  # the body in pieces, inside the body deadline
                    writer.write(body[k:k + 500])
                    await asyncio.sleep(0.02)
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
                assert head.startswith(b"HTTP/1.1 200 ")
                assert await reader.readuntil(b"}") == orjson.dumps({"received": len(body)})
                await asyncio.sleep(0.2)
            # pipelined: a second request queued behind a 1.2 s answer is not cut by the head deadline
            writer.write(b"GET /slow HTTP/1.1\r\nhost: x\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            rest = await asyncio.wait_for(reader.read(-1), 5)
            assert rest.count(b"HTTP/1.1 200 ") == 2 and rest.endswith(b'{"received":0}'), rest
        finally:
            writer.close()


async def test_three_hundred_slow_loris_connections_are_all_closed_quickly():
    """The issue's probe: 300 slow connections from one address; none may stay open past the head deadline."""
    async with _served(max_connections_per_client=64) as (port, guard):
        results = await asyncio.gather(*[_loris(port, HEAD_START, b"x-a: b\r\n", every=0.25) for _ in range(300)])
        assert all(elapsed is not None and elapsed < FAST["header_timeout_s"] + MARGIN + 0.5
                   for elapsed, _ in results)
        assert sum(r[1].startswith(b"HTTP/1.1 429 ") for r in results) == 300 - 64
        await asyncio.sleep(0.1)
        assert not guard.connections


# ---- the commands: `distillguard gateway` and `distillguard intel serve` serve with these limits ---------------
LIMIT_ARGS = ["--header-timeout", "0.5", "--body-timeout", "0.5", "--max-connections-per-client", "3"]


def _captured_config(monkeypatch: pytest.MonkeyPatch, args: list[str]) -> uvicorn.Config:
    """Run the command with ``uvicorn.Server.run`` replaced: the config it would serve with."""
    captured: list[uvicorn.Config] = []
    monkeypatch.setattr(uvicorn.Server, "run", lambda self, *a, **k: captured.append(self.config))
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert len(captured) == 1
    return captured[0]


async def _check_served_config(config: uvicorn.Config) -> None:
    port = free_port()
    config.host, config.port, config.lifespan, config.log_level = "127.0.0.1", port, "off", "critical"
    server, task = await start_server(config)
    try:
        results = await asyncio.gather(*[_loris(port, HEAD_START, b"x-a: b\r\n") for _ in range(5)])
        assert sorted(r[1][:13] for r in results) == [b"HTTP/1.1 408 "] * 3 + [b"HTTP/1.1 429 "] * 2, results
        assert all(elapsed is not None and elapsed < 0.5 + MARGIN for elapsed, _ in results)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


async def test_gateway_command_serves_with_read_deadlines_and_connection_limits(tmp_path, monkeypatch):
    config = _captured_config(monkeypatch, [
        "gateway", "--upstream", "http://127.0.0.1:9", "--store", str(tmp_path / "store"),
        "--audit", str(tmp_path / "audit.jsonl"), "--fsync-ms", "0", "--no-online", "--port", "1", *LIMIT_ARGS])
    try:
        await _check_served_config(config)
    finally:
        await config.app.shutdown()


async def test_hub_command_serves_with_read_deadlines_and_connection_limits(tmp_path, monkeypatch):
    from distillguard.intel.hub.config import hash_password
    from distillguard.intel.signing import generate_key, public_pem

    doc = {"database": str(tmp_path / "hub.sqlite"),
           "members": {"p1": {"password_hash": hash_password("pw", iterations=1000),
                              "public_key": public_pem(generate_key().public_key()).decode(), "groups": ["g"]}},
           "collections": [{"id": "9a1b2c3d-0000-4000-8000-000000000001", "title": "g", "group": "g"}]}
    (tmp_path / "hub.json").write_bytes(orjson.dumps(doc))
    config = _captured_config(monkeypatch, ["intel", "serve", "--config", str(tmp_path / "hub.json"), "--port", "1",
                                            *LIMIT_ARGS])
    await _check_served_config(config)


def test_bad_limits_are_usage_errors(tmp_path):
    result = CliRunner().invoke(main, ["gateway", "--upstream", "http://127.0.0.1:9", "--header-timeout", "0",
                                       "--store", str(tmp_path / "s"), "--audit", str(tmp_path / "a")])
    assert result.exit_code == 2 and "header_timeout_s" in result.output
