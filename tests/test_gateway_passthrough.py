"""Pass-through endpoints never forward unvalidated bytes: the path and query string are re-encoded from a strict
grammar (as /v1/models ids are), headers are the gateway's own, bodies are bounded, and every request is decided
and audited. The upstream is a real socket on 127.0.0.1 that records every byte it receives."""

from __future__ import annotations

import asyncio
import dataclasses

import orjson
import pytest

from distillguard.gateway.app import Gateway
from distillguard.gateway.audit import AuditLog, read_audit
from distillguard.gateway.engine import Engine
from distillguard.gateway.policy import load_policy
from distillguard.gateway.scoring import FixedScorer

KEYS = {"sk-1": "acct-1", "sk-bad": "bad"}


class Recorder:
    """A raw upstream: records what arrives, answers every request with its request line as JSON."""

    def __init__(self) -> None:
        self.received = bytearray()
        self.lines: list[bytes] = []

    async def __aenter__(self) -> Recorder:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.received += head
                length = next((int(x.split(b":")[1]) for x in head.split(b"\r\n")
                               if x.lower().startswith(b"content-length:")), 0)
                body = await reader.readexactly(length)
                self.received += body
                line = head.split(b"\r\n")[0]
                self.lines.append(line)
                out = orjson.dumps({"line": line.decode("latin-1"), "head": head.decode("latin-1"),
                                    "body": body.decode("latin-1")})
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
                             + str(len(out)).encode() + b"\r\n\r\n" + out)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


async def _call(app: Gateway, method: str, path: str, query: bytes = b"", headers: dict[str, str] | None = None,
                body: bytes = b"") -> tuple[int, dict | None, dict[bytes, bytes]]:
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "path": path,
             "raw_path": path.encode("utf-8", "surrogateescape"), "query_string": query, "root_path": "",
             "scheme": "http", "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 8080),
             "headers": [(k.encode(), v.encode("latin-1"))
                         for k, v in {"authorization": "Bearer sk-1", **(headers or {})}.items()]}
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    await app(scope, receive, send)
    payload = b"".join(m.get("body", b"") for m in sent[1:])
    return sent[0]["status"], (orjson.loads(payload) if payload else None), dict(sent[0]["headers"])


def _gateway(url: str, tmp_path, max_body: int = 4096) -> Gateway:
    policy = dataclasses.replace(load_policy(), mode="enforce", max_body_bytes=max_body)
    engine = Engine(policy, FixedScorer({"bad": 0.95}), audit=AuditLog(tmp_path / "audit.jsonl", fsync_ms=0))
    return Gateway(url, engine, keys=KEYS)


BAD = [
    ("/v1/files/x HTTP/1.1\r\nhost: x\r\n\r\nGET /v1/files/SMUGGLED", b"", 400),
    ("/v1/files/x\r\nx-injected: 1", b"", 400),
    ("/v1/files/x\x00", b"", 400),
    ("/v1/files/a b", b"", 400),
    ("/v1/files/../../admin", b"", 400),
    ("/v1/files/%2e%2e/admin", b"", 400),  # decoded once by the server: a '%' left in the path is refused
    ("/v1/files/./x", b"", 400),
    ("/v1/files//x", b"", 400),
    ("/v1/files/", b"", 400),
    ("/v1/files/\u00e9", b"", 400),
    ("/v1/files/" + "/".join("a" * 9), b"", 400),  # more than 8 parts
    ("/v1/files/" + "a" * 1100, b"", 414),
    ("/v1/files", b"purpose=batch\r\nx-injected: 1", 400),
    ("/v1/files", b"purpose=%0d%0ax-injected:%201", 400),
    ("/v1/files", b"purpose=%00", 400),
    ("/v1/files", b"purpose=%C3%A9", 400),  # non-ASCII once decoded
    ("/v1/files", b"a b=c", 400),
    ("/v1/files", b"&&&", 400),
    ("/v1/files", b"x=" + b"a" * 3000, 414),
    ("/v1/files", b"&".join(b"k%d=v" % i for i in range(40)), 400),
    ("/v1/nothing/here", b"", 404),
]


@pytest.mark.parametrize(("path", "query", "status"), BAD, ids=range(len(BAD)))
async def test_paths_and_queries_outside_the_grammar_never_reach_the_upstream(tmp_path, path, query, status):
    async with Recorder() as upstream:
        gw = _gateway(upstream.url, tmp_path)
        got, body, headers = await _call(gw, "GET", path, query)
        await gw.shutdown()
        await asyncio.sleep(0.05)
    assert got == status and body["error"]["type"] == "invalid_request_error"
    assert upstream.received == b""  # not one byte
    entry = read_audit(tmp_path / "audit.jsonl")[-1]  # refused before any decision, and audited
    assert entry["action"] == "refuse" and entry["status"] == status
    assert entry["id"] == headers[b"x-request-id"].decode()
    assert "\r" not in entry["endpoint"] and "\n" not in entry["endpoint"] and "\x00" not in entry["endpoint"]


@pytest.mark.parametrize(("path", "query", "line"), [
    ("/v1/files", b"purpose=batch&limit=2", "GET /v1/files?purpose=batch&limit=2 HTTP/1.1"),
    ("/v1/files", b"after=file-abc&order=desc", "GET /v1/files?after=file-abc&order=desc HTTP/1.1"),
    ("/v1/batches", b"q=a+b&x=%2F", "GET /v1/batches?q=a%20b&x=%2F HTTP/1.1"),  # decoded, then re-encoded
    ("/v1/files/file-abc123/content", b"", "GET /v1/files/file-abc123/content HTTP/1.1"),
    ("/v1/fine_tuning/jobs/ftjob-1/events", b"limit=10", "GET /v1/fine_tuning/jobs/ftjob-1/events?limit=10 HTTP/1.1"),
])
async def test_valid_requests_are_forwarded_re_encoded(tmp_path, path, query, line):
    async with Recorder() as upstream:
        gw = _gateway(upstream.url, tmp_path)
        status, body, _ = await _call(gw, "GET", path, query, {"accept": "application/json",
                                                               "x-forwarded-host": "evil", "openai-organization": "o"})
        await gw.shutdown()
    assert status == 200 and body["line"] == line
    head = body["head"].lower()
    assert "x-forwarded-host" not in head and "openai-organization" not in head and "sk-1" not in head
    entry = read_audit(tmp_path / "audit.jsonl")[-1]
    assert entry["action"] == "allow" and entry["account_id"] == "acct-1"


async def test_bodies_are_bounded_methods_checked_and_blocked_accounts_refused(tmp_path):
    async with Recorder() as upstream:
        gw = _gateway(upstream.url, tmp_path, max_body=1000)
        too_big = await _call(gw, "POST", "/v1/embeddings", body=b'{"input": "' + b"x" * 2000 + b'"}')
        not_json = await _call(gw, "POST", "/v1/embeddings", body=b"{nope")
        wrong = await _call(gw, "DELETE", "/v1/embeddings")
        bad_type = await _call(gw, "POST", "/v1/files", headers={"content-type": "multipart/form-data\r\nx: 1"})
        blocked = await _call(gw, "POST", "/v1/embeddings", headers={"authorization": "Bearer sk-bad"},
                              body=b'{"model": "e", "input": "x"}')
        ok = await _call(gw, "POST", "/v1/embeddings", body=b'{"model": "e", "input": "x"}')
        upload = await _call(gw, "POST", "/v1/files", headers={"content-type": "multipart/form-data; boundary=b"},
                             body=b"--b\r\ncontent-disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n--b--\r\n")
        await gw.shutdown()
    assert [r[0] for r in (too_big, not_json, wrong, bad_type, blocked)] == [413, 400, 405, 400, 403]
    assert upstream.lines == [b"POST /v1/embeddings HTTP/1.1", b"POST /v1/files HTTP/1.1"]
    assert ok[0] == 200 and ok[1]["body"] == '{"model": "e", "input": "x"}'
    assert "content-type: multipart/form-data; boundary=b" in upload[1]["head"]
    actions = [(e["action"], e.get("endpoint")) for e in read_audit(tmp_path / "audit.jsonl")]
    assert actions == [("refuse", "/v1/embeddings"), ("refuse", "/v1/embeddings"), ("refuse", "/v1/embeddings"),
                       ("refuse", "/v1/files"), ("block", "/v1/embeddings"), ("allow", "/v1/embeddings"),
                       ("allow", "/v1/files")]
