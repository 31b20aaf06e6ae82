"""Turn a rendered request and reply into OpenAI-shaped response bodies, usage and latency.

Shared by every population so token accounting, ``finish_reason`` and latency follow one
consistent model: a detector can trust that ``completion_tokens`` tracks the text it sees.

Token rule (documented in docs/simulator.md): a text of ``c`` characters and ``b`` UTF-8 bytes counts
``b // 4 + (b - c) // 8`` tokens, i.e. ~4 characters a token for ASCII (English, code), ~1 token a
character for CJK and ~0.6 for Cyrillic or Greek; an image part counts 85 tokens, each message 4, each
tool schema 60 and each tool call 24.
"""

from __future__ import annotations

import random
from collections.abc import Iterable

from distillguard.simulate.config import Model

ERRORS = (429, 429, 429, 500, 400, 503)
LOGPROB_ENTRIES = 16  # token entries of a logprobs answer kept in the log (the rest is cut, as logs cut it)


_KNOWN: dict[str, int] = {}  # token counts of corpus turns, which recur in every session's history


def _count(text: str) -> int:
    if text.isascii():
        return len(text) // 4
    b = len(text.encode())
    return b // 4 + (b - len(text)) // 8


def tokens(text: str) -> int:
    """Tokens of ``text`` by the rule in the module docstring."""
    n = _KNOWN.get(text)
    return _count(text) if n is None else n


def known(texts: Iterable[str]) -> None:
    """Count these texts once (the corpus's turns), so later counts are a lookup."""
    for text in texts:
        _KNOWN[text] = _count(text)


def chars_for(text: str, n_tokens: int) -> int:
    """How many leading characters of ``text`` make about ``n_tokens`` tokens."""
    if text.isascii():
        return n_tokens * 4
    return max(1, int(len(text) * n_tokens / max(tokens(text), 1)))


def prompt_tokens(request: dict) -> int:
    n = 0
    for message in request["messages"]:
        content = message.get("content")
        if content.__class__ is str:
            n += tokens(content)
        elif content:
            for part in content:
                n += tokens(part["text"]) if part["type"] == "text" else 85
    tools = request.get("tools")
    return n + 4 * len(request["messages"]) + (60 * len(tools) if tools else 0)


def _logprobs(r: random.Random, content: str, top: int) -> dict:
    words = content.split(None, LOGPROB_ENTRIES)[:LOGPROB_ENTRIES] or [content]
    rnd, n = r.random, len(words)
    entries = []
    for w in words:
        entry: dict = {"token": w, "logprob": -int(rnd() * rnd() * 40_000) / 10_000, "bytes": None}
        if top:
            entry["top_logprobs"] = [{"token": words[int(rnd() * n)], "logprob": -int(5_000 + rnd() * 80_000) / 10_000,
                                      "bytes": None} for _ in range(top)]
        entries.append(entry)
    return {"content": entries}


def complete(request: dict, model: Model, created: int, rid: str, r: random.Random, content: str | None,
             reasoning: str | None = None, tool_calls: list | None = None,
             alternatives: list[str] | None = None) -> tuple[dict, int]:
    """The ``chat.completion`` body for ``request`` and a latency in ms that grows with output tokens.

    Text past the request's token cap is cut and the choice ends with ``length``. ``alternatives`` are the
    other choices of an ``n > 1`` request; ``logprobs``/``top_logprobs`` in the request add log
    probabilities (the log keeps the first choice's first :data:`LOGPROB_ENTRIES` token entries).
    """
    ptok = prompt_tokens(request)
    cap = request.get("max_completion_tokens") or request.get("max_tokens") or model.max_output
    want_lp = request.get("logprobs")
    top = request.get("top_logprobs") or 0 if want_lp else 0
    rtok = tokens(reasoning) if reasoning else 0
    if rtok >= cap:
        reasoning = reasoning[: chars_for(reasoning, cap)] if reasoning else reasoning
        rtok = cap
    choices = []
    ctok_all = rtok
    for i, text in enumerate([content, *(alternatives or ())]):
        ctok = (tokens(text) if text else 0) + (24 * len(tool_calls) if tool_calls and i == 0 else 0) + 1
        finish = "tool_calls" if tool_calls and i == 0 else "stop"
        if ctok + rtok > cap:
            ctok, finish = max(cap - rtok, 1), "length"
            if text:
                text = text[: chars_for(text, ctok)]
        message: dict = {"role": "assistant", "content": text}
        if reasoning and i == 0:
            message["reasoning_content"] = reasoning
        if tool_calls and i == 0:
            message["tool_calls"] = tool_calls
        choice: dict = {"index": i, "message": message, "finish_reason": finish}
        if want_lp:
            choice["logprobs"] = _logprobs(r, text, top) if text and i == 0 else None
        choices.append(choice)
        ctok_all += ctok
    body = {
        "id": "chatcmpl-" + rid,
        "object": "chat.completion",
        "created": created,
        "model": model.snapshot,
        "choices": choices,
        "usage": {"prompt_tokens": ptok, "completion_tokens": ctok_all, "total_tokens": ptok + ctok_all,
                  "completion_tokens_details": {"reasoning_tokens": rtok}},
    }
    latency = 180 + ptok // 40 + int((ctok_all - rtok * (len(choices) > 1)) * (9 + 8 * r.random())) \
        + int(r.random() * 400)
    return body, latency
