"""The pooled HTTP/1.1 upstream client against a real uvicorn server on 127.0.0.1."""

from __future__ import annotations

import asyncio

import httpx
import orjson
import pytest
import uvicorn

from conftest import free_port
from distillguard.gateway import fake_upstream
from distillguard.gateway.app import Gateway
from distillguard.gateway.engine import Engine
from distillguard.gateway.policy import load_policy
from distillguard.gateway.scoring import FixedScorer
from distillguard.gateway.upstream import PooledUpstream, UpstreamError


@pytest.fixture
async def upstream_url():
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(fake_upstream.app, host="127.0.0.1", port=port, log_level="error",
                                           lifespan="off"))
    task = asyncio.create_task(server.serve())
    for _ in range(200):
        if server.started:
            break
        await asyncio.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await asyncio.wait_for(task, 10)


async def test_pooled_client_reuses_connections_and_decodes_chunked(upstream_url):
    client = PooledUpstream(upstream_url, timeout_s=5)
    body = orjson.dumps({"model": "m", "messages": []})
    for _ in range(3):
        resp = await client.send("POST", "/v1/chat/completions", body, {"content-type": "application/json"})
        assert resp.status == 200 and orjson.loads(await resp.read()) == fake_upstream.completion("m")
        await resp.aclose()
    assert len(client._idle) == 1  # one keep-alive connection served all three
    resp = await client.send("POST", "/v1/chat/completions", orjson.dumps({"model": "m", "stream": True}), {})
    assert resp.content_type.startswith("text/event-stream")
    assert await resp.read() == b"".join(fake_upstream.chunks("m"))
    await resp.aclose()
    await client.aclose()


async def test_gateway_over_real_sockets_and_refused_upstream(upstream_url):
    engine = Engine(load_policy(), FixedScorer())
    for url, status in ((upstream_url, 200), (f"http://127.0.0.1:{free_port()}", 502)):
        gw = Gateway(url, engine, keys={"k": "a"})
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=gw), base_url="http://gw") as client:
            resp = await client.post("/v1/chat/completions", json={"model": "m", "messages": [], "stream": True},
                                     headers={"authorization": "Bearer k"})
        assert resp.status_code == status
        if status == 200:
            assert resp.content == b"".join(fake_upstream.chunks("m"))
        await gw.client.aclose()


async def test_bad_upstream_url_is_rejected():
    with pytest.raises(ValueError, match="http"):
        PooledUpstream("ftp://example")
    with pytest.raises(UpstreamError):
        await PooledUpstream(f"http://127.0.0.1:{free_port()}", connect_timeout_s=1).send("GET", "/v1/models", None, {})
