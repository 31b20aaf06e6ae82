"""Turn a rendered request and reply into OpenAI-shaped response bodies, usage and latency.

Shared by every population so token accounting, ``finish_reason`` and latency follow one
consistent model: a detector can trust that ``completion_tokens`` tracks the text it sees.
"""

from __future__ import annotations

import random

from distillguard.simulate.config import Model

ERRORS = (429, 429, 429, 500, 400, 503)


def prompt_tokens(request: dict) -> int:
    chars = 0
    for message in request["messages"]:
        content = message.get("content")
        if content.__class__ is str:
            chars += len(content)
        elif content:
            for part in content:
                chars += len(part["text"]) if part["type"] == "text" else 340  # an image ~ 85 tokens
    tools = request.get("tools")
    return chars // 4 + 4 * len(request["messages"]) + (60 * len(tools) if tools else 0)


def complete(request: dict, model: Model, created: int, rid: str, r: random.Random, content: str | None,
             reasoning: str | None = None, tool_calls: list | None = None) -> tuple[dict, int]:
    """The ``chat.completion`` body for ``request`` and a latency in ms that grows with output tokens."""
    ptok = prompt_tokens(request)
    rtok = len(reasoning) // 4 if reasoning else 0
    ctok = rtok + (len(content) // 4 if content else 0) + (24 * len(tool_calls) if tool_calls else 0) + 1
    cap = request.get("max_completion_tokens") or request.get("max_tokens") or model.max_output
    finish = "tool_calls" if tool_calls else "stop"
    if ctok > cap:
        ctok, finish = cap, "length"
    message: dict = {"role": "assistant", "content": content}
    if reasoning:
        message["reasoning_content"] = reasoning
    if tool_calls:
        message["tool_calls"] = tool_calls
    body = {
        "id": "chatcmpl-" + rid,
        "object": "chat.completion",
        "created": created,
        "model": model.snapshot,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {"prompt_tokens": ptok, "completion_tokens": ctok, "total_tokens": ptok + ctok,
                  "completion_tokens_details": {"reasoning_tokens": rtok}},
    }
    latency = 180 + ptok // 40 + int(ctok * (9 + 8 * r.random())) + int(r.random() * 400)
    return body, latency
