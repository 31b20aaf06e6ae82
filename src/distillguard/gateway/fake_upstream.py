"""A tiny OpenAI-compatible model server for tests, benchmarks and demos (no model, canned answers).

Answers ``/v1/chat/completions`` (JSON or SSE, with a ``reasoning_content``
trace and usage) and ``/v1/models``. ``FAKE_UPSTREAM_DELAY_MS`` adds a fixed
think time so latency measurements have something realistic to sit on.
"""

from __future__ import annotations

import asyncio
import os
import re
from typing import Any

import orjson

REASONING = ("First, restate the problem. Next, consider each case in turn. Then check the edge cases. "
             "So the answer is 42.")
ANSWER = "The answer is 42."
_DELAY_S = float(os.environ.get("FAKE_UPSTREAM_DELAY_MS", "0")) / 1000.0


def completion(model: str) -> dict[str, Any]:
    return {"id": "chatcmpl-fake", "object": "chat.completion", "created": 1_770_000_000, "model": model,
            "choices": [{"index": 0, "finish_reason": "stop", "logprobs": {"content": []},
                         "message": {"role": "assistant", "content": ANSWER, "reasoning_content": REASONING}}],
            "usage": {"prompt_tokens": 12, "completion_tokens": 30, "total_tokens": 42,
                      "completion_tokens_details": {"reasoning_tokens": 24}}}


def chunks(model: str) -> list[bytes]:
    """SSE events: reasoning deltas, content deltas, a usage chunk, then ``[DONE]``."""
    base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1_770_000_000, "model": model}
    out = []
    for part in re.split(r"(?<=\. )", REASONING):
        out.append({**base, "choices": [{"index": 0, "delta": {"reasoning_content": part}, "finish_reason": None}]})
    for word in re.split(r"(?<= )", ANSWER):
        out.append({**base, "choices": [{"index": 0, "delta": {"content": word}, "finish_reason": None}]})
    out.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 12, "completion_tokens": 30, "total_tokens": 42}})
    return [b"data: " + orjson.dumps(c) + b"\n\n" for c in out] + [b"data: [DONE]\n\n"]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if scope["path"] == "/v1/models":
        await _json(send, 200, {"object": "list", "data": [{"id": "fake-1", "object": "model"}]})
        return
    if scope["path"] != "/v1/chat/completions":
        await _json(send, 404, {"error": {"message": "not found", "type": "invalid_request_error"}})
        return
    request = orjson.loads(body)
    if _DELAY_S:
        await asyncio.sleep(_DELAY_S)
    model = request.get("model", "fake-1")
    if request.get("stream"):
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream")]})
        for chunk in chunks(model):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    await _json(send, 200, completion(model))


async def _json(send: Any, status: int, obj: Any) -> None:
    body = orjson.dumps(obj)
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
