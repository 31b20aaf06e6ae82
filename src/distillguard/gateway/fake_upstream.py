"""A tiny OpenAI-compatible model server for tests, benchmarks and demos (no model, canned answers).

Answers ``/v1/chat/completions`` (JSON or SSE, with a ``reasoning_content``
trace and usage), ``/v1/responses`` (a ``Response`` with a reasoning item and a
message, or its event stream: the event shapes of the OpenAI Responses API,
checked against the ``openai`` SDK's types in the tests; stored responses can be
read back at ``/v1/responses/{id}``), ``/v1/models``, ``/v1/embeddings`` and a
small in-memory ``/v1/files``. ``FAKE_UPSTREAM_DELAY_MS`` adds a fixed think time
so latency measurements have something realistic to sit on.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
from typing import Any
from urllib.parse import parse_qs

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


SUMMARY = [part for part in re.split(r"(?<=\. )", REASONING) if part]


def response(model: str, response_id: str = "resp_fake", status: str = "completed") -> dict[str, Any]:
    """A Responses API ``Response``: one reasoning item (summary and raw reasoning text), then the message."""
    done = status == "completed"
    return {
        "id": response_id, "object": "response", "created_at": 1_770_000_000, "status": status, "model": model,
        "error": None, "incomplete_details": None, "instructions": None, "metadata": {},
        "parallel_tool_calls": True, "temperature": 1.0, "top_p": 1.0, "tool_choice": "auto", "tools": [],
        "max_output_tokens": None, "previous_response_id": None, "reasoning": {"effort": "medium", "summary": "auto"},
        "text": {"format": {"type": "text"}}, "truncation": "disabled", "user": None,
        "output": [
            {"id": "rs_fake", "type": "reasoning", "status": "completed",
             "summary": [{"type": "summary_text", "text": REASONING}],
             "content": [{"type": "reasoning_text", "text": REASONING}]},
            {"id": "msg_fake", "type": "message", "role": "assistant", "status": "completed",
             "content": [{"type": "output_text", "text": ANSWER, "annotations": [], "logprobs": []}]},
        ] if done else [],
        "usage": {"input_tokens": 12, "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
                  "output_tokens": 30,
                  "output_tokens_details": {"reasoning_tokens": 24}, "total_tokens": 42} if done else None,
    }


def response_events(model: str, response_id: str = "resp_fake") -> list[dict[str, Any]]:
    """The event stream of :func:`response`, in the order the OpenAI API sends it."""
    full = response(model, response_id)
    reasoning, message = full["output"]
    pending = response(model, response_id, "in_progress")
    events: list[dict[str, Any]] = [{"type": "response.created", "response": pending},
                                    {"type": "response.in_progress", "response": pending},
                                    {"type": "response.output_item.added", "output_index": 0,
                                     "item": {**reasoning, "status": "in_progress", "summary": [], "content": []}},
                                    {"type": "response.reasoning_summary_part.added", "item_id": "rs_fake",
                                     "output_index": 0, "summary_index": 0, "part": {"type": "summary_text",
                                                                                    "text": ""}}]
    events += [{"type": "response.reasoning_summary_text.delta", "item_id": "rs_fake", "output_index": 0,
                "summary_index": 0, "delta": part} for part in SUMMARY]
    events += [{"type": "response.reasoning_summary_text.done", "item_id": "rs_fake", "output_index": 0,
                "summary_index": 0, "text": REASONING},
               {"type": "response.reasoning_summary_part.done", "item_id": "rs_fake", "output_index": 0,
                "summary_index": 0, "part": {"type": "summary_text", "text": REASONING}}]
    events += [{"type": "response.reasoning_text.delta", "item_id": "rs_fake", "output_index": 0,
                "content_index": 0, "delta": part} for part in SUMMARY]
    events += [{"type": "response.reasoning_text.done", "item_id": "rs_fake", "output_index": 0, "content_index": 0,
                "text": REASONING},
               {"type": "response.output_item.done", "output_index": 0, "item": reasoning},
               {"type": "response.output_item.added", "output_index": 1,
                "item": {**message, "status": "in_progress", "content": []}},
               {"type": "response.content_part.added", "item_id": "msg_fake", "output_index": 1, "content_index": 0,
                "part": {"type": "output_text", "text": "", "annotations": [], "logprobs": []}}]
    events += [{"type": "response.output_text.delta", "item_id": "msg_fake", "output_index": 1, "content_index": 0,
                "delta": word, "logprobs": []} for word in re.split(r"(?<= )", ANSWER)]
    events += [{"type": "response.output_text.done", "item_id": "msg_fake", "output_index": 1, "content_index": 0,
                "text": ANSWER, "logprobs": []},
               {"type": "response.content_part.done", "item_id": "msg_fake", "output_index": 1, "content_index": 0,
                "part": message["content"][0]},
               {"type": "response.output_item.done", "output_index": 1, "item": message},
               {"type": "response.completed", "response": full}]
    for number, event in enumerate(events):
        event["sequence_number"] = number
    return events


def response_stream(model: str, response_id: str = "resp_fake") -> list[bytes]:
    return [b"event: " + e["type"].encode() + b"\ndata: " + orjson.dumps(e) + b"\n\n"
            for e in response_events(model, response_id)]


_FILES: dict[str, dict[str, Any]] = {}  # id -> file object (+ "_content"), at most _MAX_FILES
_MAX_FILES = 64
_RESPONSES: dict[str, dict[str, Any]] = {}  # stored responses, at most _MAX_FILES
_ids = itertools.count(1)


async def read_body(receive: Any) -> bytes:
    """The whole request body of an ASGI HTTP request (a test upstream: unbounded)."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
        return
    body = await read_body(receive)
    path, method = scope["path"], scope["method"]
    if path == "/v1/models":
        await _json(send, 200, {"object": "list", "data": [{"id": "fake-1", "object": "model"}]})
        return
    if path == "/v1/responses" and method == "POST":
        await _responses(send, orjson.loads(body))
        return
    if path.startswith("/v1/responses/") and method == "GET":
        stored = _RESPONSES.get(path.split("/")[3])
        await _json(send, 200 if stored else 404, stored or _not_found(path))
        return
    if path == "/v1/embeddings" and method == "POST":
        request = orjson.loads(body)
        inputs = request["input"] if isinstance(request["input"], list) else [request["input"]]
        await _json(send, 200, {"object": "list", "model": request.get("model", "fake-embed"), "data": [
            {"object": "embedding", "index": i, "embedding": [0.1, 0.2, 0.3]} for i in range(len(inputs))],
            "usage": {"prompt_tokens": len(inputs), "total_tokens": len(inputs)}})
        return
    if path.startswith("/v1/files"):
        await _files(scope, send, body)
        return
    if path != "/v1/chat/completions":
        await _json(send, 404, _not_found(path))
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


def _not_found(path: str) -> dict[str, Any]:
    return {"error": {"message": f"not found: {path}", "type": "invalid_request_error", "param": None,
                      "code": "not_found"}}


async def _responses(send: Any, request: dict[str, Any]) -> None:
    if _DELAY_S:
        await asyncio.sleep(_DELAY_S)
    model = request.get("model", "fake-1")
    response_id = f"resp_fake{next(_ids)}"
    if request.get("store", True):
        if len(_RESPONSES) >= _MAX_FILES:
            _RESPONSES.pop(next(iter(_RESPONSES)))
        _RESPONSES[response_id] = response(model, response_id)
    if request.get("stream"):
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream; charset=utf-8")]})
        for chunk in response_stream(model, response_id):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    await _json(send, 200, response(model, response_id))


def _multipart_file(scope: dict[str, Any], body: bytes) -> tuple[str, bytes, str]:
    """(filename, content, purpose) of a multipart/form-data upload (just enough of RFC 7578 for the SDKs)."""
    ctype = next((v.decode() for k, v in scope["headers"] if k == b"content-type"), "")
    boundary = ctype.split("boundary=", 1)[1].strip('"').encode()
    filename, content, purpose = "upload", b"", ""
    for part in body.split(b"--" + boundary)[1:-1]:
        head, _, data = part.partition(b"\r\n\r\n")
        data = data[:-2]  # the CRLF before the next boundary
        match = re.search(rb'name="([^"]+)"(?:; filename="([^"]*)")?', head)
        if match and match[1] == b"file":
            filename, content = (match[2] or b"upload").decode(), data
        elif match and match[1] == b"purpose":
            purpose = data.decode()
    return filename, content, purpose


async def _files(scope: dict[str, Any], send: Any, body: bytes) -> None:
    parts, method = scope["path"].split("/")[3:], scope["method"]
    if not parts and method == "POST":
        filename, content, purpose = _multipart_file(scope, body)
        file_id = f"file-fake{next(_ids)}"
        if len(_FILES) >= _MAX_FILES:
            _FILES.pop(next(iter(_FILES)))
        _FILES[file_id] = {"id": file_id, "object": "file", "bytes": len(content), "created_at": 1_770_000_000,
                           "filename": filename, "purpose": purpose or "batch", "status": "processed",
                           "_content": content}
        await _json(send, 200, {k: v for k, v in _FILES[file_id].items() if k != "_content"})
        return
    if not parts and method == "GET":
        query = parse_qs(scope.get("query_string", b"").decode())
        files = [{k: v for k, v in f.items() if k != "_content"} for f in _FILES.values()
                 if not query.get("purpose") or f["purpose"] == query["purpose"][0]]
        await _json(send, 200, {"object": "list", "data": files, "has_more": False})
        return
    file = _FILES.get(parts[0]) if parts else None
    if file is None:
        await _json(send, 404, _not_found(scope["path"]))
    elif len(parts) == 2 and parts[1] == "content" and method == "GET":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/octet-stream")]})
        await send({"type": "http.response.body", "body": file["_content"]})
    elif method == "DELETE":
        _FILES.pop(parts[0], None)
        await _json(send, 200, {"id": parts[0], "object": "file", "deleted": True})
    else:
        await _json(send, 200, {k: v for k, v in file.items() if k != "_content"})


async def _json(send: Any, status: int, obj: Any) -> None:
    body = orjson.dumps(obj)
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
