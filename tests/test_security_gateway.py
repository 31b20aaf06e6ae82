"""Security: request smuggling through the gateway and response desync on pooled upstream connections.

No client-controlled byte may reach the upstream request line or a header unvalidated, and no byte of
one upstream response may be handed to another request (another account) on a reused connection.
Every upstream here is a real server on 127.0.0.1; the raw one answers exactly the bytes a test scripts.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import orjson
import pytest
import uvicorn

from conftest import free_port, start_server
from distillguard.gateway import fake_upstream
from distillguard.gateway.app import Gateway
from distillguard.gateway.engine import Engine
from distillguard.gateway.policy import load_policy
from distillguard.gateway.scoring import FixedScorer
from distillguard.gateway.upstream import PooledUpstream, UpstreamError

KEYS = {"sk-test-1": "acct-1", "sk-test-2": "acct-2"}


# ---- a scripted raw HTTP/1.1 upstream ------------------------------------------------------------------------
@dataclass
class Seen:
    conn: int
    line: bytes
    head: bytes
    body: bytes

    @property
    def marker(self) -> str:
        try:
            return orjson.loads(self.body)["m"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return ""


def ok(body: bytes, status: bytes = b"200 OK", extra: bytes = b"") -> bytes:
    return (b"HTTP/1.1 " + status + b"\r\ncontent-type: application/json\r\ncontent-length: "
            + str(len(body)).encode() + b"\r\n" + extra + b"\r\n" + body)


def echo(seen: Seen) -> bytes:
    return ok(orjson.dumps({"echo": seen.marker, "line": seen.line.decode("latin-1")}))


Script = Callable[[Seen], "bytes | list[bytes | float]"]


class RawUpstream:
    """Reads requests (content-length bodies), records them, answers what ``script`` returns (floats: sleeps)."""

    def __init__(self, script: Script = echo) -> None:
        self.script = script
        self.seen: list[Seen] = []
        self.received = bytearray()
        self._ids = itertools.count(1)
        self._writers: set[asyncio.StreamWriter] = set()

    async def __aenter__(self) -> RawUpstream:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0, limit=1 << 22)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
        for writer in self._writers:
            writer.close()
        await asyncio.wait_for(self.server.wait_closed(), 5)

    @property
    def connections(self) -> int:
        return len({s.conn for s in self.seen})

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = next(self._ids)
        self._writers.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.received += head
                lines = head[:-4].split(b"\r\n")
                length = 0
                for line in lines[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length" and value.strip().isdigit():
                        length = int(value)
                early = lines[0].startswith(b"POST /early ")
                body = b"" if early else await reader.readexactly(length)
                self.received += body
                seen = Seen(conn, lines[0], head, body)
                self.seen.append(seen)
                out = self.script(seen)
                for piece in out if isinstance(out, list) else [out]:
                    if isinstance(piece, float):
                        await asyncio.sleep(piece)
                    else:
                        writer.write(piece)
                        await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            writer.close()


async def _exchange(client: PooledUpstream, marker: str, path: str = "/echo", method: str = "POST"
                    ) -> tuple[int, bytes]:
    resp = await client.send(method, path, None if method == "HEAD" else orjson.dumps({"m": marker}),
                             {"content-type": "application/json"})
    try:
        return resp.status, await resp.read()
    finally:
        await resp.aclose()


# ---- the upstream client: framing surprises close the connection ----------------------------------------------
def _evil(kind: str) -> Script:
    """An upstream that answers request "alpha" with a framing surprise, and everything else with an echo."""

    def script(seen: Seen) -> bytes | list[bytes | float]:
        if seen.marker != "alpha" and not seen.line.startswith(b"HEAD"):
            return echo(seen)
        mine = orjson.dumps({"echo": "alpha"})
        leak = ok(orjson.dumps({"echo": "LEAK-of-alpha"}))
        if kind == "extra-response":  # a second, unrequested response right behind the first
            return ok(mine) + leak
        if kind == "unsolicited":  # a response on the idle connection, after the first was read
            return [ok(mine), 0.05, leak]
        if kind == "conflicting-content-length":
            return (b"HTTP/1.1 200 OK\r\ncontent-length: " + str(len(mine)).encode() + b"\r\ncontent-length: 2\r\n\r\n"
                    + mine + leak)
        if kind == "duplicate-content-length":
            n = str(len(mine)).encode()
            return b"HTTP/1.1 200 OK\r\ncontent-length: " + n + b"\r\ncontent-length: " + n + b"\r\n\r\n" + mine
        if kind == "content-length-and-chunked":
            chunked = hex(len(mine))[2:].encode() + b"\r\n" + mine + b"\r\n0\r\n\r\n"
            return (b"HTTP/1.1 200 OK\r\ncontent-length: " + str(len(chunked) - 5).encode()
                    + b"\r\ntransfer-encoding: chunked\r\n\r\n" + chunked)
        if kind == "bad-chunk-terminator":
            return (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n" + hex(len(mine))[2:].encode() + b"\r\n"
                    + mine + b"XX0\r\n\r\n" + leak)
        if kind == "space-before-colon":
            return (b"HTTP/1.1 200 OK\r\ncontent-length : " + str(len(mine)).encode() + b"\r\n\r\n" + mine + leak)
        if kind == "chunked-with-trailers":  # legal: read to the end, and the connection stays clean
            return (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n" + hex(len(mine))[2:].encode() + b"\r\n"
                    + mine + b"\r\n0\r\nx-checksum: 1\r\nx-more: 2\r\n\r\n")
        if kind == "interim-100":  # a 1xx before the final answer must be skipped, never taken as the answer
            return b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </x>\r\n\r\n" + ok(mine)
        if kind == "switching-protocols":
            return b"HTTP/1.1 101 Switching Protocols\r\nupgrade: x\r\nconnection: upgrade\r\n\r\n" + leak
        if kind == "head":  # a HEAD answer announces a length but has no body
            return b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 40\r\n\r\n"
        raise AssertionError(kind)

    return script


CASES = {  # kind -> what request "alpha" gets: its own answer, or an error (502)
    "extra-response": "alpha",
    "unsolicited": "alpha",
    "conflicting-content-length": "error",
    "duplicate-content-length": "error",
    "content-length-and-chunked": "error",
    "bad-chunk-terminator": "error",
    "space-before-colon": "error",
    "chunked-with-trailers": "alpha",
    "interim-100": "alpha",
    "switching-protocols": "error",
}


@pytest.mark.parametrize("kind", list(CASES))
async def test_framing_surprise_never_reaches_the_next_request(kind):
    async with RawUpstream(_evil(kind)) as upstream:
        client = PooledUpstream(upstream.url, timeout_s=2)
        try:
            if CASES[kind] == "error":
                with pytest.raises(UpstreamError):
                    await _exchange(client, "alpha")
            else:
                status, body = await _exchange(client, "alpha")
                assert status == 200 and orjson.loads(body)["echo"] == "alpha"
            await asyncio.sleep(0.2)  # let anything unsolicited arrive on the pooled connection
            for marker in ("bravo", "charlie"):  # another account's requests get their own answers only
                status, body = await _exchange(client, marker)
                assert status == 200 and orjson.loads(body)["echo"] == marker, body
        finally:
            await client.aclose()
    if kind == "chunked-with-trailers":
        assert upstream.connections == 1  # read exactly to its end: safe to reuse
    else:
        assert upstream.connections >= 2  # the connection that surprised us was closed, not reused


async def test_head_response_has_no_body_and_the_connection_stays_in_step():
    async with RawUpstream(_evil("head")) as upstream:
        client = PooledUpstream(upstream.url, timeout_s=2)
        try:
            assert await _exchange(client, "", method="HEAD") == (200, b"")
            status, body = await _exchange(client, "bravo")
            assert status == 200 and orjson.loads(body)["echo"] == "bravo"
        finally:
            await client.aclose()


async def test_answer_before_the_request_was_written_closes_the_connection():
    """An upstream that answers while our body is still in the socket buffers would read the rest as requests."""

    def script(seen: Seen) -> bytes:
        if seen.line.startswith(b"POST /early "):
            return ok(orjson.dumps({"echo": "early"}), b"413 Payload Too Large")
        return echo(seen)  # (the rest of the big body is parsed as garbage "requests" by this naive server)

    async with RawUpstream(script) as upstream:
        client = PooledUpstream(upstream.url, timeout_s=5)
        try:
            resp = await client.send("POST", "/early", b'{"m": "' + b"x" * (24 << 20) + b'"}', {})
            assert resp.status == 413
            await resp.read()
            await resp.aclose()
            assert not client._idle  # never pooled: the upstream may still be reading our body as a new request
            status, body = await _exchange(client, "bravo")
            assert status == 200 and orjson.loads(body)["echo"] == "bravo"
        finally:
            await client.aclose()


BAD_TARGETS = [
    "/v1/models/x HTTP/1.1\r\nhost: x\r\n\r\nGET /v1/models/SMUGGLED",
    "/v1/models/x\r\n",
    "/v1/models/x\ny",
    "/v1/models/x\x00y",
    "/v1/models/x y",
    "/v1/models/../../admin/secret",
    "/v1/models/%2e%2e/%2E%2e/admin/secret",
    "/v1/models/./x",
    "/v1/models/\u00e9",
    "/v1/models/" + "a" * 9000,
    "v1/models",
]


@pytest.mark.parametrize("target", BAD_TARGETS, ids=range(len(BAD_TARGETS)))
async def test_upstream_client_refuses_unsafe_targets_and_sends_nothing(target):
    async with RawUpstream() as upstream:
        client = PooledUpstream(upstream.url, timeout_s=2)
        with pytest.raises(UpstreamError):
            await client.send("GET", target, None, {})
        await client.aclose()
        await asyncio.sleep(0.05)
    assert upstream.received == b""


@pytest.mark.parametrize("name,value", [
    ("accept", "application/json\r\nx-injected: 1"),
    ("accept", "a\nb"),
    ("accept", "a\rb"),
    ("accept", "a\x00b"),
    ("accept", "a\x7fb"),
    ("x-bad name", "v"),
    ("x-bad:name", "v"),
    ("transfer-encoding", "chunked"),
    ("content-length", "0"),
    ("host", "elsewhere"),
])
async def test_upstream_client_refuses_unsafe_headers_and_sends_nothing(name, value):
    async with RawUpstream() as upstream:
        client = PooledUpstream(upstream.url, timeout_s=2)
        with pytest.raises(UpstreamError):
            await client.send("POST", "/echo", b"{}", {name: value})
        with pytest.raises(UpstreamError):
            await client.send("GET\r\nX", "/echo", None, {})
        await client.aclose()
        await asyncio.sleep(0.05)
    assert upstream.received == b""


# ---- the gateway: the client's path and headers -----------------------------------------------------------------
async def _call(app: Gateway, method: str, path: str, headers: dict[str, str] | None = None,
                body: bytes = b"") -> tuple[int, dict | None]:
    """One request straight into the ASGI app, with ``path`` exactly as a server hands it over (decoded)."""
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "path": path,
             "raw_path": path.encode("utf-8", "surrogateescape"), "query_string": b"", "root_path": "",
             "scheme": "http", "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 8080),
             "headers": [(k.encode(), v.encode("latin-1")) for k, v in (headers or {}).items()]}
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    await app(scope, receive, send)
    payload = b"".join(m.get("body", b"") for m in sent[1:])
    return sent[0]["status"], (orjson.loads(payload) if payload else None)


def _gateway(url: str) -> Gateway:
    return Gateway(url, Engine(load_policy(), FixedScorer()), keys=KEYS)


SMUGGLE = "/v1/models/x HTTP/1.1\r\nhost: x\r\n\r\nGET /v1/models/SMUGGLED"


@pytest.mark.parametrize("path,status", [
    (SMUGGLE, 400),
    ("/v1/models/x\r\nx-injected: 1", 400),
    ("/v1/models/x\x00", 400),
    ("/v1/models/x y", 400),
    ("/v1/models/../../admin/secret", 400),  # raw dot segments
    ("/v1/models/../../../v1/models", 400),
    ("/v1/models/%2e%2e/admin", 400),  # '%252e%252e' from the client: decoded once, a '%' is refused
    ("/v1/models/a/./b", 400),
    ("/v1/models//x", 400),
    ("/v1/models/", 400),
    ("/v1/models/x?y", 400),
    ("/v1/models/x#y", 400),
    ("/v1/models/\u00e9", 400),
    ("/v1/models/" + "a" * 257, 414),  # overlong
    ("/v1/models/" + "a/" * 5000 + "a", 414),
])
async def test_gateway_refuses_model_paths_outside_the_grammar(path, status):
    async with RawUpstream() as upstream:
        gw = _gateway(upstream.url)
        got, body = await _call(gw, "GET", path, {"authorization": "Bearer sk-test-1"})
        await gw.client.aclose()
        await asyncio.sleep(0.05)
    assert got == status and body["error"]["type"] == "invalid_request_error"
    assert upstream.received == b""  # nothing at all reached the upstream


@pytest.mark.parametrize("model_id", ["gpt-4o", "meta-llama/Llama-3.1-8B-Instruct", "ft:gpt-4o-mini:org::abc1",
                                      "qwen2.5:7b", "m@v1+x=y,z~"])
async def test_gateway_forwards_valid_model_ids_exactly(model_id):
    async with RawUpstream() as upstream:
        gw = _gateway(upstream.url)
        status, body = await _call(gw, "GET", f"/v1/models/{model_id}", {"authorization": "Bearer sk-test-1"})
        status_list, _ = await _call(gw, "GET", "/v1/models", {"authorization": "Bearer sk-test-1"})
        await gw.client.aclose()
    assert status == 200 and body["line"] == f"GET /v1/models/{model_id} HTTP/1.1"
    assert status_list == 200 and [s.line for s in upstream.seen][-1] == b"GET /v1/models HTTP/1.1"


@pytest.mark.parametrize("accept", ["application/json\r\nx-injected: 1", "text/event-stream\x00", "a\nb",
                                    "\u00e9", "a" * 2000])
async def test_gateway_never_forwards_unsafe_client_headers(accept):
    async with RawUpstream() as upstream:
        gw = _gateway(upstream.url)
        chat = orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
        for method, path, body in (("GET", "/v1/models", b""), ("POST", "/v1/chat/completions", chat)):
            status, err = await _call(gw, method, path, {"authorization": "Bearer sk-test-1", "accept": accept},
                                      body)
            assert status == 400 and err["error"]["code"] == "invalid_header"
        status, _ = await _call(gw, "POST", "/v1/chat/completions",
                                {"authorization": "Bearer sk-test-1", "accept": "text/event-stream"}, chat)
        await gw.client.aclose()
    assert status == 200
    assert len(upstream.seen) == 1 and b"accept: text/event-stream\r\n" in upstream.seen[0].head


def test_gateway_refuses_an_upstream_key_that_would_split_headers():
    with pytest.raises(ValueError, match="upstream API key"):
        Gateway("http://127.0.0.1:1", Engine(load_policy(), FixedScorer()), upstream_api_key="sk\r\nx-evil: 1")


# ---- end to end: two accounts, a real gateway and a real upstream -------------------------------------------
async def _echo_app(scope, receive, send) -> None:
    """An OpenAI-ish upstream that answers each request with what it was asked (path, last user message)."""
    if scope["type"] != "http":
        return
    body = await fake_upstream.read_body(receive)
    content = scope["path"]
    if body:
        content = orjson.loads(body)["messages"][-1]["content"]
    out = orjson.dumps({"id": "x", "object": "chat.completion", "model": "m", "path": scope["path"],
                        "choices": [{"index": 0, "finish_reason": "stop",
                                     "message": {"role": "assistant", "content": content}}]})
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(out)).encode())]})
    await send({"type": "http.response.body", "body": out})


async def _serve(app, port: int) -> tuple[uvicorn.Server, asyncio.Task]:
    return await start_server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", lifespan="off"))


async def _raw_get(port: int, target: str, key: str) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {target} HTTP/1.1\r\nhost: gw\r\nauthorization: Bearer {key}\r\nconnection: close\r\n\r\n"
                 .encode())
    try:
        return await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()


async def test_no_response_crosses_accounts_through_a_smuggled_request():
    """The issue's reproduction: account 1 smuggles a request; account 2 must get its own completion, not that."""
    seen_paths: list[str] = []

    async def upstream_app(scope, receive, send):
        if scope["type"] == "http":
            seen_paths.append(scope["path"])
        await _echo_app(scope, receive, send)

    up_port, gw_port = free_port(), free_port()
    upstream, up_task = await _serve(upstream_app, up_port)
    gw = Gateway(f"http://127.0.0.1:{up_port}", Engine(load_policy(), FixedScorer()), keys=KEYS)
    gateway, gw_task = await _serve(gw, gw_port)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw_port}", timeout=5) as victim:
            for round_ in range(3):
                attack = await _raw_get(gw_port, "/v1/models/x%20HTTP/1.1%0d%0ahost:%20x%0d%0a%0d%0a"
                                        "GET%20/v1/models/SMUGGLED", "sk-test-1")
                resp = await victim.post("/v1/chat/completions", headers={"authorization": "Bearer sk-test-2"},
                                         json={"model": "m", "messages": [{"role": "user",
                                                                           "content": f"victim {round_}"}]})
                # account 2 gets its own completion, never the answer to what account 1 smuggled
                assert resp.status_code == 200, resp.text
                assert resp.json()["path"] == "/v1/chat/completions", resp.text
                assert resp.json()["choices"][0]["message"]["content"] == f"victim {round_}"
                assert attack.startswith(b"HTTP/1.1 400 ") and b"SMUGGLED" not in attack.split(b"\r\n\r\n", 1)[1]
                for dots in ("/v1/models/%2e%2e/%2e%2e/admin/secret", "/v1/models/..%2f..%2fadmin"):
                    assert (await _raw_get(gw_port, dots, "sk-test-1")).startswith(b"HTTP/1.1 400 ")
    finally:
        gateway.should_exit = upstream.should_exit = True
        await asyncio.wait_for(gw_task, 10)
        await gw.shutdown()
        await asyncio.wait_for(up_task, 10)
    assert seen_paths == ["/v1/chat/completions"] * 3  # nothing smuggled, nothing outside /v1 reached upstream


# ---- the ASGI middleware buffers a body to decide on it: bounded like the gateway's -------------------------
async def test_middleware_bounds_the_body_it_buffers():
    import dataclasses

    from distillguard.gateway.middleware import DistillGuardMiddleware, bearer_account

    reached: list[int] = []

    async def app(scope, receive, send):
        reached.append(1)

    engine = Engine(dataclasses.replace(load_policy(), max_body_bytes=1000), FixedScorer())
    guarded = DistillGuardMiddleware(app, engine=engine, account=bearer_account(KEYS))
    chunks = [b"x" * 600] * 5  # 3000 bytes in 600-byte messages: refused after the second
    pulled: list[int] = []

    async def receive() -> dict:
        pulled.append(1)
        return {"type": "http.request", "body": chunks[len(pulled) - 1], "more_body": len(pulled) < len(chunks)}

    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions", "query_string": b"",
             "headers": [(b"authorization", b"Bearer sk-test-1")], "client": ("127.0.0.1", 1)}
    await guarded(scope, receive, send)
    assert sent[0]["status"] == 413 and orjson.loads(sent[1]["body"])["error"]["code"] == "request_too_large"
    assert len(pulled) == 2 and reached == []


def test_unstorable_request_values_are_reported_truthfully():
    """Only real depth is "nested too deeply"; an object or a 70-bit integer says what it is."""
    from distillguard.gateway.app import new_record, record_row
    from distillguard.model import FieldError

    def reason(request: dict) -> str:
        with pytest.raises(FieldError) as info:
            record_row(new_record("a", None, "127.0.0.1", None, request, 1_770_000_000_000))
        return info.value.reason

    assert "not JSON serializable: object" in reason({"messages": [], "litellm_logging_obj": object()})
    assert "64-bit" in reason({"messages": [], "seed": 2 ** 70})
    deep: list = []
    for _ in range(300):
        deep = [deep]
    assert "nested too deeply" in reason({"messages": [], "x": deep})
