"""The structural trace rewrite at the gateway, for chat completions, streamed or not.

``reasoning: restructure`` in a resistance profile tier: the reasoning trace (``reasoning_content`` /
``reasoning``) is rewritten by :func:`distillguard.resist.text.restructure_trace` (self-talk removed, the
conclusion first); the answer (``content``, tool calls) is never touched. Streams: reasoning deltas are held back
(the rewrite needs the whole trace) and the rewritten trace is sent as one reasoning delta just before the first
answer delta (or the choice's ``finish_reason``, or the end of the stream); every other event passes unchanged.
A client therefore sees the reasoning arrive at once instead of token by token, at the moment it would have
finished.

Same shape as ``distillguard.gateway.perturb``'s ``perturb_response`` / ``StreamPerturber`` (``feed``/``close``)
so the gateway's ``Degrade`` action can use it when a tier asks for ``restructure``.
"""

from __future__ import annotations

from typing import Any

import orjson

from distillguard.gateway.sse import EventSplitter, data_of
from distillguard.resist.text import restructure_trace

REASONING_KEYS = ("reasoning_content", "reasoning")


def restructure_message(message: dict[str, Any]) -> bool:
    changed = False
    for key in REASONING_KEYS:
        value = message.get(key)
        if isinstance(value, str) and value:
            message[key] = restructure_trace(value)
            changed = True
    return changed


def restructure_response(body: dict[str, Any]) -> bool:
    """Rewrite the reasoning of every choice of a non-streaming chat completion in place; True if any."""
    changed = False
    for choice in body.get("choices") or []:
        if isinstance(choice, dict) and isinstance(choice.get("message"), dict):
            changed |= restructure_message(choice["message"])
    return changed


class StreamRestructurer:
    """SSE rewriter for chat-completion streams: reasoning held back per choice, released rewritten."""

    def __init__(self) -> None:
        self.splitter = EventSplitter()
        self.held: dict[int, dict[str, list[str]]] = {}  # choice index -> reasoning key -> deltas
        self.template: dict[str, Any] | None = None  # id/object/created/model of the stream, for our own event

    def feed(self, chunk: bytes) -> bytes:
        return b"".join(self._event(event) for event in self.splitter.feed(chunk))

    def close(self) -> bytes:
        rest = self.splitter.rest()
        out = self._event(rest) if rest.strip() else b""
        return out + self._flush_all()  # a stream that ended without [DONE] or an answer: the trace last

    def _flush(self, index: int) -> bytes:
        held = self.held.pop(index, None)
        if not held:
            return b""
        delta = {key: restructure_trace("".join(parts)) for key, parts in held.items()}
        event = {**(self.template or {"object": "chat.completion.chunk"}),
                 "choices": [{"index": index, "delta": delta, "finish_reason": None}]}
        return b"data: " + orjson.dumps(event) + b"\n\n"

    def _flush_all(self) -> bytes:
        return b"".join(self._flush(i) for i in sorted(self.held))

    def _event(self, event: bytes) -> bytes:
        data = data_of(event)
        if data is None:
            return event + b"\n\n"
        if data == b"[DONE]":
            return self._flush_all() + event + b"\n\n"
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            return event + b"\n\n"
        if not isinstance(obj, dict) or not isinstance(obj.get("choices"), list):
            return event + b"\n\n"
        if self.template is None:
            self.template = {k: obj[k] for k in ("id", "object", "created", "model", "system_fingerprint")
                             if k in obj}
        before = b""
        emptied = 0
        for choice in obj["choices"]:
            if not isinstance(choice, dict):
                continue
            index = choice.get("index", 0) if isinstance(choice.get("index", 0), int) else 0
            delta: dict[str, Any] = choice["delta"] if isinstance(choice.get("delta"), dict) else {}
            took = False
            for key in REASONING_KEYS:
                value = delta.get(key)
                if isinstance(value, str):
                    self.held.setdefault(index, {}).setdefault(key, []).append(value)
                    del delta[key]
                    took = True
            answer = any(delta.get(k) for k in ("content", "tool_calls", "function_call", "refusal"))
            if answer or choice.get("finish_reason") is not None:
                before += self._flush(index)
            if took and not answer and not delta and choice.get("finish_reason") is None \
                    and not choice.get("logprobs"):
                emptied += 1
        if emptied and emptied == len(obj["choices"]) and not obj.get("usage"):
            return before  # the event only carried reasoning: held back
        return before + b"data: " + orjson.dumps(obj) + b"\n\n"
