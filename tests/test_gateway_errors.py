"""Gateway errors over real sockets: refusals audited (with a key id, never the key), malformed HTTP answered in
OpenAI's JSON error format, upstream HTML/empty errors wrapped, streams the upstream cuts ended with an error
event, shadow mode never enforcing its failure mode, ``/healthz``, ``/metrics`` and ``x-request-id``."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import orjson
import pytest
import uvicorn

from conftest import free_port, start_server
from distillguard.gateway import fake_upstream
from distillguard.gateway.app import Gateway
from distillguard.gateway.audit import AuditLog, read_audit
from distillguard.gateway.engine import Engine
from distillguard.gateway.policy import load_policy
from distillguard.gateway.scoring import FixedScorer
from distillguard.gateway.server import ServerLimits, uvicorn_config

KEYS = {"sk-good": "good", "sk-watch": "watch"}
CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


Script = Callable[[bytes, asyncio.StreamWriter], "asyncio.Future | None"]


class ScriptedUpstream:
    """A raw HTTP/1.1 upstream: ``script(request_line, writer)`` writes whatever bytes a test wants, even a cut."""

    def __init__(self, script) -> None:
        self.script = script

    async def __aenter__(self) -> ScriptedUpstream:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), 0)
            await reader.readexactly(length)
            await self.script(head.split(b"\r\n")[0], writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            if not writer.transport.is_closing():
                writer.close()


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def cut_stream(events: list[bytes], partial: bytes) -> Callable:
    """SSE events, then half an event, then the connection dies (no terminating chunk)."""

    async def script(line: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
        for event in events:
            writer.write(_chunk(event))
        writer.write(_chunk(partial))
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.transport.abort()

    return script


def answer(status: int, content_type: str, body: bytes) -> Callable:
    async def script(line: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(f"HTTP/1.1 {status} X\r\ncontent-type: {content_type}\r\ncontent-length: {len(body)}\r\n\r\n"
                     .encode() + body)
        await writer.drain()

    return script


@dataclasses.dataclass
class Served:
    url: str
    port: int
    gateway: Gateway
    audit: Path

    def entries(self) -> list[dict]:
        return read_audit(self.audit)


@pytest.fixture
def serve(tmp_path) -> Callable:
    """``async with serve(upstream_url, policy=..., scorer=..., http=...) as served``: the gateway on a real socket."""

    @contextlib_asynccontextmanager
    async def run(upstream: str, policy=None, scorer=None, http: str = "auto") -> AsyncIterator[Served]:
        port = free_port()
        engine = Engine(policy or dataclasses.replace(load_policy(), mode="enforce"), scorer or FixedScorer(
            {"watch": 0.5}), audit=AuditLog(tmp_path / "audit.jsonl", fsync_ms=0))
        gw = Gateway(upstream, engine, keys=KEYS)
        server, task = await start_server(uvicorn_config(gw, "127.0.0.1", port, ServerLimits(), http=http,
                                                   log_level="critical", lifespan="off"))
        try:
            yield Served(f"http://127.0.0.1:{port}", port, gw, tmp_path / "audit.jsonl")
        finally:
            server.should_exit = True
            await asyncio.wait_for(task, 10)
            await gw.shutdown()

    return run


def contextlib_asynccontextmanager(f):
    import contextlib

    return contextlib.asynccontextmanager(f)


@pytest.fixture
async def fake() -> AsyncIterator[str]:
    port = free_port()
    server, task = await start_server(uvicorn.Config(fake_upstream.app, host="127.0.0.1", port=port, log_level="error",
                                               lifespan="off"))
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await asyncio.wait_for(task, 10)


async def _raw(port: int, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    try:
        return await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()


def _split(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


# ---- refusals are audited -----------------------------------------------------------------------------------------
async def test_refused_requests_are_audited_with_their_request_id_and_no_secret(serve, fake):
    async with serve(fake) as served, httpx.AsyncClient(base_url=served.url, timeout=5) as client:
        cases = [
            await client.post("/v1/chat/completions", json=CHAT),  # 401 missing key
            await client.post("/v1/chat/completions", json=CHAT, headers={"authorization": "Bearer sk-GUESS-1"}),
            await client.post("/v1/chat/completions", json=CHAT, headers={"authorization": "Bearer sk-GUESS-1"}),
            await client.post("/v1/chat/completions", content=b"{nope", headers={"authorization": "Bearer sk-good"}),
            await client.post("/v1/chat/completions", content=b"x" * (5 << 20),
                              headers={"authorization": "Bearer sk-good"}),
            await client.get("/v1/admin/secret", headers={"authorization": "Bearer sk-good"}),
            await client.get("/v1/chat/completions", headers={"authorization": "Bearer sk-good"}),
        ]
        assert [r.status_code for r in cases] == [401, 401, 401, 400, 413, 404, 405]
        audit = {e["id"]: e for e in served.entries()}
    for resp in cases:
        entry = audit[resp.headers["x-request-id"]]  # every refusal has its own audit line, same id
        assert entry["action"] == "refuse" and entry["status"] == resp.status_code
        assert entry["code"] == resp.json()["error"]["code"]
        assert entry["client_ip"] == "127.0.0.1"
    stuffing = [audit[r.headers["x-request-id"]] for r in cases[1:3]]
    assert stuffing[0]["api_key_id"] == stuffing[1]["api_key_id"] and stuffing[0]["api_key_id"].startswith("key-")
    assert stuffing[0]["account_id"] is None  # an unknown key has no account
    assert audit[cases[3].headers["x-request-id"]]["account_id"] == "good"
    assert audit[cases[5].headers["x-request-id"]]["endpoint"] == "/v1/admin/secret"
    assert "sk-GUESS-1" not in served.audit.read_text() and "sk-good" not in served.audit.read_text()


# ---- the HTTP layer answers in JSON -------------------------------------------------------------------------------
@pytest.mark.parametrize("http", ["httptools", "h11"])
async def test_malformed_http_and_oversized_urls_get_openai_json_errors(serve, fake, http):
    async with serve(fake, http=http) as served:
        garbage = _split(await _raw(served.port, b"GET /v1/models HTTP/1.1\r\nbad header line\r\n\r\n"))
        long_url = _split(await _raw(served.port, b"GET /v1/models/" + b"a" * 9000 + b" HTTP/1.1\r\nhost: x\r\n\r\n"))
        entries = served.entries()
    for (status, headers, body), want, code in ((garbage, 400, "invalid_http"), (long_url, 414, "uri_too_long")):
        assert status == want and headers["content-type"] == "application/json"
        error = orjson.loads(body)["error"]
        assert error["code"] == code and error["type"] == "invalid_request_error" and error["message"]
        entry = next(e for e in entries if e["id"] == headers["x-request-id"])
        assert entry["action"] == "refuse" and entry["status"] == want and entry["code"] == code
    metrics = served.gateway.metrics.render().decode()
    assert 'distillguard_http_errors_total{status="400"} 1' in metrics
    assert 'distillguard_http_errors_total{status="414"} 1' in metrics


# ---- upstream errors ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("status", "ctype", "body", "snippet"), [
    (502, "text/html", b"<html><body><h1>502 Bad Gateway</h1><hr>nginx</body></html>", "502 Bad Gateway nginx"),
    (500, "application/json", b"", "(empty body)"),
    (429, "text/plain", b"slow down", "slow down"),
    (503, "application/json", b'{"detail": "overloaded"}', '{"detail": "overloaded"}'),
])
async def test_upstream_errors_that_are_not_openai_json_are_wrapped(serve, status, ctype, body, snippet):
    async with ScriptedUpstream(answer(status, ctype, body)) as up, serve(up.url) as served, \
            httpx.AsyncClient(base_url=served.url, timeout=5) as client:
        for payload in (CHAT, {**CHAT, "stream": True}):
            resp = await client.post("/v1/chat/completions", json=payload, headers={"authorization": "Bearer sk-good"})
            assert resp.status_code == status and resp.headers["content-type"] == "application/json"
            error = resp.json()["error"]
            assert error["code"] == f"upstream_http_{status}" and snippet in error["message"]
            assert f"HTTP {status}" in error["message"]
        models = await client.get("/v1/models", headers={"authorization": "Bearer sk-good"})
        assert models.status_code == status and models.json()["error"]["code"] == f"upstream_http_{status}"


async def test_an_upstream_openai_error_passes_through_untouched(serve):
    body = b'{"error": {"message": "context too long", "type": "invalid_request_error", "param": null, "code": "x"}}'
    async with ScriptedUpstream(answer(400, "application/json", body)) as up, serve(up.url) as served, \
            httpx.AsyncClient(base_url=served.url, timeout=5) as client:
        resp = await client.post("/v1/chat/completions", json=CHAT, headers={"authorization": "Bearer sk-good"})
    assert resp.status_code == 400 and resp.content == body


# ---- streams the upstream cuts ------------------------------------------------------------------------------------
@pytest.mark.parametrize("key", ["sk-good", "sk-watch"])
async def test_a_cut_chat_stream_ends_with_an_error_event_the_sdk_raises(serve, key):
    openai = pytest.importorskip("openai")
    events = fake_upstream.chunks("m")[:6]  # four reasoning deltas, two content deltas
    async with ScriptedUpstream(cut_stream(events, b'data: {"id": "HALF-EVENT')) as up, \
            serve(up.url) as served:
        async with httpx.AsyncClient(base_url=served.url, timeout=5) as client:
            resp = await client.post("/v1/chat/completions", json={**CHAT, "stream": True},
                                     headers={"authorization": f"Bearer {key}"})
        assert resp.status_code == 200
        blocks = resp.text.split("\n\n")
        assert blocks[-1] == "" and blocks[-2] == "data: [DONE]"
        error = orjson.loads(blocks[-3][len("data: "):])["error"]
        assert error["code"] == "upstream_stream_interrupted" and error["type"] == "upstream_error"
        assert "HALF-EVENT" not in resp.text  # the half event the upstream left never reaches the client
        if key == "sk-good":
            assert resp.content.startswith(b"".join(events))  # legitimate accounts: the upstream's bytes
        else:
            assert "reasoning_content" not in resp.text

        sdk = openai.AsyncOpenAI(api_key=key, base_url=served.url + "/v1", max_retries=0)
        stream = await sdk.chat.completions.create(model="m", messages=CHAT["messages"], stream=True)
        got = []
        with pytest.raises(openai.APIError) as info:
            async for chunk in stream:
                got.append(chunk)
        assert "ended the stream early" in info.value.message and len(got) == 6
        metrics = served.gateway.metrics.render().decode()
    assert 'distillguard_upstream_errors_total{kind="stream_cut"} 2' in metrics


@pytest.mark.parametrize("key", ["sk-good", "sk-watch"])
async def test_a_cut_responses_stream_ends_with_error_and_response_failed(serve, key):
    openai = pytest.importorskip("openai")
    events = fake_upstream.response_stream("m")[:8]  # created .. reasoning summary deltas
    async with ScriptedUpstream(cut_stream(events, b"event: response.reasoning_summary_text.delta\ndata: {")) as up, \
            serve(up.url) as served:
        sdk = openai.AsyncOpenAI(api_key=key, base_url=served.url + "/v1", max_retries=0)
        received = [event async for event in await sdk.responses.create(model="m", input="hi", stream=True)]
    kinds = [e.type for e in received]
    assert kinds[-2:] == ["error", "response.failed"]
    assert received[-2].code == "upstream_stream_interrupted"
    assert received[-1].response.status == "failed" and received[-1].response.error.code == "server_error"
    assert [e.sequence_number for e in received] == list(range(len(received)))
    if key == "sk-watch":
        assert not [k for k in kinds if "reasoning" in k]


# ---- shadow mode never enforces -----------------------------------------------------------------------------------
class _Broken(FixedScorer):
    def score(self, account_id, exchange_row, now_ms):
        raise RuntimeError("online scorer process exited")


async def test_shadow_mode_with_fail_closed_does_not_enforce(serve, fake):
    shadow = dataclasses.replace(load_policy(), mode="shadow", fail="closed")
    async with serve(fake, policy=shadow, scorer=_Broken()) as served, \
            httpx.AsyncClient(base_url=served.url, timeout=5) as client:
        resp = await client.post("/v1/chat/completions", json=CHAT, headers={"authorization": "Bearer sk-good"})
        entry = served.entries()[-1]
    assert resp.status_code == 200 and resp.json()["choices"][0]["message"]["content"] == fake_upstream.ANSWER
    assert entry["tier"] == "fail-closed" and entry["enforced"] is False and entry["status"] is None
    assert "shadow: not enforced" in entry["reasons"]


# ---- health, metrics, request ids ---------------------------------------------------------------------------------
async def test_healthz_metrics_and_a_request_id_on_every_response(serve, fake):
    parser = pytest.importorskip("prometheus_client.parser")
    async with serve(fake) as served, httpx.AsyncClient(base_url=served.url, timeout=5) as client:
        health = await client.get("/healthz")
        assert health.status_code == 200 and health.json()["status"] == "ok"
        for _ in range(3):
            await client.post("/v1/chat/completions", json=CHAT, headers={"authorization": "Bearer sk-good"})
        await client.post("/v1/chat/completions", json=CHAT, headers={"authorization": "Bearer sk-watch"})
        await client.post("/v1/chat/completions", json=CHAT)
        await client.get("/nowhere")
        metrics = await client.get("/metrics")
        ids = [r.headers["x-request-id"] for r in (health, metrics)]
        assert metrics.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert len(set(ids)) == 2 and all(i.startswith("gw-") for i in ids)
    families = {f.name: f for f in parser.text_string_to_metric_families(metrics.text)}  # the reference parser
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families.values() for s in f.samples}
    assert samples[("distillguard_requests_total", (("route", "chat"), ("status", "200")))] == 4
    assert samples[("distillguard_requests_total", (("route", "chat"), ("status", "401")))] == 1
    assert samples[("distillguard_requests_total", (("route", "other"), ("status", "404")))] == 1
    assert samples[("distillguard_decisions_total", (("action", "allow"), ("enforced", "True")))] == 3
    assert samples[("distillguard_decisions_total", (("action", "perturb"), ("enforced", "True")))] == 1
    assert samples[("distillguard_refused_total", (("code", "missing_api_key"), ("status", "401")))] == 1
    assert samples[("distillguard_request_duration_seconds_count", (("route", "chat"),))] == 5
    assert families["distillguard_request_duration_seconds"].type == "histogram"
    assert samples[("distillguard_connections_open", ())] >= 1
