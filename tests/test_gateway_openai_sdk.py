"""The gateway in front of the fake upstream, driven by the real ``openai`` SDK over real sockets on 127.0.0.1.

The Responses API (JSON and its event stream, perturbation dropping reasoning items and reasoning events), the
other endpoints passed through (embeddings, file upload/list/content/delete), blocking, request ids that match
the audit log, and the recorded exchanges. The fake upstream's Responses shapes are checked against the SDK's
own types first, so the gateway is tested against the real event shapes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import typing
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import uvicorn

openai = pytest.importorskip("openai")

from openai.types.responses import Response, ResponseStreamEvent  # noqa: E402

from conftest import free_port, start_server  # noqa: E402
from distillguard.gateway import fake_upstream  # noqa: E402
from distillguard.gateway.app import Gateway  # noqa: E402
from distillguard.gateway.audit import AuditLog, read_audit  # noqa: E402
from distillguard.gateway.engine import Engine  # noqa: E402
from distillguard.gateway.policy import load_policy  # noqa: E402
from distillguard.gateway.scoring import FixedScorer  # noqa: E402
from distillguard.gateway.server import uvicorn_config  # noqa: E402
from distillguard.gateway.spool import Spool  # noqa: E402
from distillguard.store import Store  # noqa: E402

KEYS = {"sk-good": "good", "sk-watch": "watch", "sk-bad": "bad"}
RISKS = {"watch": 0.5, "bad": 0.95}  # watch verdict -> the perturbing tier; block
EVENT_TYPES = {cls.model_fields["type"].annotation.__args__[0]: cls
               for cls in typing.get_args(typing.get_args(ResponseStreamEvent)[0])}


@dataclasses.dataclass
class Stack:
    url: str
    gateway: Gateway
    audit: Path

    def client(self, key: str) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(api_key=key, base_url=self.url + "/v1", max_retries=0, timeout=10)

    def audit_by_id(self) -> dict[str, dict]:
        return {entry["id"]: entry for entry in read_audit(self.audit)}


@pytest.fixture
async def stack(tmp_path) -> AsyncIterator[Stack]:
    up_port, gw_port = free_port(), free_port()
    upstream, up_task = await start_server(uvicorn.Config(fake_upstream.app, host="127.0.0.1", port=up_port,
                                                    log_level="error", lifespan="off"))
    policy = dataclasses.replace(load_policy(), mode="enforce")
    engine = Engine(policy, FixedScorer(RISKS), audit=AuditLog(tmp_path / "audit.jsonl", fsync_ms=0))
    gw = Gateway(f"http://127.0.0.1:{up_port}", engine, keys=KEYS, spool=Spool(Store.open(tmp_path / "store")),
                 flush_every_s=0)
    gateway, gw_task = await start_server(uvicorn_config(gw, "127.0.0.1", gw_port, log_level="error", lifespan="off"))
    try:
        yield Stack(f"http://127.0.0.1:{gw_port}", gw, tmp_path / "audit.jsonl")
    finally:
        gateway.should_exit = upstream.should_exit = True
        await asyncio.wait_for(gw_task, 10)
        await gw.shutdown()
        await asyncio.wait_for(up_task, 10)


def test_the_fake_upstream_speaks_the_sdk_types():
    response = Response.model_validate(fake_upstream.response("m"))
    assert [item.type for item in response.output] == ["reasoning", "message"]
    assert response.output_text == fake_upstream.ANSWER
    kinds = []
    for event in fake_upstream.response_events("m"):
        kinds.append(EVENT_TYPES[event["type"]].model_validate(event).type)  # every field as the SDK declares it
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert {"response.reasoning_summary_text.delta", "response.reasoning_text.delta",
            "response.output_text.delta"} <= set(kinds)


async def test_responses_api_json_blocked_perturbed_and_audited(stack):
    raw = await stack.client("sk-good").responses.with_raw_response.create(model="fake-1", input="what is 6*7?")
    good = raw.parse()
    assert [item.type for item in good.output] == ["reasoning", "message"]
    assert good.output[0].summary[0].text == fake_upstream.REASONING and good.output_text == fake_upstream.ANSWER

    watched = await stack.client("sk-watch").responses.create(model="fake-1", input="what is 6*7?",
                                                               include=["reasoning.encrypted_content"])
    assert [item.type for item in watched.output] == ["message"] and watched.output_text == fake_upstream.ANSWER

    with pytest.raises(openai.PermissionDeniedError) as info:
        await stack.client("sk-bad").responses.create(model="fake-1", input="what is 6*7?")
    assert info.value.code == "account_blocked"

    audit = stack.audit_by_id()
    entry = audit[raw.headers["x-request-id"]]  # the response's request id is its audit entry's id
    assert entry["account_id"] == "good" and entry["action"] == "allow" and entry["endpoint"] == "/v1/responses"
    assert audit[info.value.response.headers["x-request-id"]]["action"] == "block"
    assert [e["perturb"] for e in audit.values() if e["account_id"] == "watch"] == [True]


async def test_responses_stream_perturbed_account_gets_no_reasoning_events(stack):
    good_types = []
    async with stack.client("sk-good").responses.stream(model="fake-1", input="what is 6*7?") as stream:
        async for event in stream:
            good_types.append(event.type)
        final = await stream.get_final_response()
    assert "response.reasoning_summary_text.delta" in good_types and "response.reasoning_text.delta" in good_types
    assert [item.type for item in final.output] == ["reasoning", "message"]

    events = []
    async with stack.client("sk-watch").responses.stream(model="fake-1", input="what is 6*7?") as stream:
        async for event in stream:  # the SDK indexes its snapshot by output_index: renumbering must be right
            events.append(event)
        final = await stream.get_final_response()
    kinds = [e.type for e in events]
    assert not [k for k in kinds if "reasoning" in k]
    assert not [e for e in events if getattr(e, "item", None) is not None and e.item.type == "reasoning"]
    assert {getattr(e, "output_index", 0) for e in events} == {0}  # the message is now the first output item
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert [item.type for item in final.output] == ["message"] and final.output_text == fake_upstream.ANSWER
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == fake_upstream.ANSWER

    raw_stream = await stack.client("sk-watch").responses.create(model="fake-1", input="hi", stream=True)
    async for event in raw_stream:  # the plain iterator parses every event with the SDK's types
        assert "reasoning" not in event.type

    await asyncio.sleep(0)
    stack.gateway.spool.flush()
    rows = Store.open(stack.gateway.spool.store.root).connect().execute(
        "SELECT account_id, endpoint, response_text, reasoning_chars, stream FROM exchanges ORDER BY account_id"
    ).fetchall()
    # the store keeps the upstream's full answer (what the account was sent is in the audit log)
    assert ("watch", "/v1/responses", fake_upstream.ANSWER, len(fake_upstream.REASONING) * 2 + 1, True) in rows
    assert all(r[1] == "/v1/responses" for r in rows) and len(rows) == 3


async def test_stored_response_read_back_is_perturbed_too(stack):
    created = await stack.client("sk-good").responses.create(model="fake-1", input="hi")
    again = await stack.client("sk-good").responses.retrieve(created.id)
    assert [item.type for item in again.output] == ["reasoning", "message"]
    hidden = await stack.client("sk-watch").responses.retrieve(created.id)
    assert [item.type for item in hidden.output] == ["message"]
    entry = [e for e in read_audit(stack.audit) if e["account_id"] == "watch"][-1]
    assert entry["endpoint"] == "/v1/responses/{id}" and entry["perturb"] is True


async def test_other_endpoints_pass_through_decided_and_audited(stack, tmp_path):
    client = stack.client("sk-good")
    embedded = await client.embeddings.create(model="fake-embed", input=["a", "b"])
    assert len(embedded.data) == 2 and embedded.data[1].embedding == [0.1, 0.2, 0.3]

    upload = tmp_path / "batch.jsonl"
    upload.write_bytes(b'{"custom_id": "1", "method": "POST", "url": "/v1/chat/completions", "body": {}}\n')
    created = await client.files.create(file=upload, purpose="batch")
    assert created.filename == "batch.jsonl" and created.bytes == upload.stat().st_size
    listed = await client.files.list(purpose="batch")
    assert created.id in [f.id for f in listed.data]
    content = await client.files.content(created.id)
    assert content.read() == upload.read_bytes()
    assert (await client.files.delete(created.id)).deleted

    with pytest.raises(openai.PermissionDeniedError):
        await stack.client("sk-bad").files.list()
    with pytest.raises(openai.PermissionDeniedError):
        await stack.client("sk-bad").embeddings.create(model="fake-embed", input="x")
    with pytest.raises(openai.AuthenticationError):
        await stack.client("sk-stolen-guess").embeddings.create(model="fake-embed", input="x")

    entries = read_audit(stack.audit)
    routes = [(e["account_id"], e["endpoint"], e["action"]) for e in entries]
    assert routes[:5] == [("good", "/v1/embeddings", "allow"), ("good", "/v1/files", "allow"),
                          ("good", "/v1/files", "allow"), ("good", "/v1/files/{id}/content", "allow"),
                          ("good", "/v1/files/{id}", "allow")]
    assert routes[5:7] == [("bad", "/v1/files", "block"), ("bad", "/v1/embeddings", "block")]
    refused = entries[7]
    assert refused["action"] == "refuse" and refused["status"] == 401 and refused["code"] == "invalid_api_key"
    assert refused["api_key_id"].startswith("key-") and "sk-stolen-guess" not in stack.audit.read_text()
    # pass-through exchanges are not generations: nothing of them is stored or folded into online state
    stack.gateway.spool.flush()
    assert stack.gateway.spool.store.count() == 0


async def test_chat_through_the_sdk_stream_and_json(stack):
    good = await stack.client("sk-good").chat.completions.create(
        model="fake-1", messages=[{"role": "user", "content": "hi"}])
    assert good.choices[0].message.content == fake_upstream.ANSWER
    watched = await stack.client("sk-watch").chat.completions.create(
        model="fake-1", messages=[{"role": "user", "content": "hi"}])
    assert getattr(watched.choices[0].message, "reasoning_content", None) is None
    chunks = [c async for c in await stack.client("sk-watch").chat.completions.create(
        model="fake-1", messages=[{"role": "user", "content": "hi"}], stream=True)]
    assert all(getattr(c.choices[0].delta, "reasoning_content", None) is None for c in chunks if c.choices)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == fake_upstream.ANSWER
