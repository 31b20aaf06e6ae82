"""Server-sent events from an OpenAI-compatible stream: split, record, and rebuild as one response.

The proxy forwards each upstream chunk as soon as it arrives; this module only
*watches* the bytes (to record the exchange) unless an account's responses are
perturbed, in which case events are rewritten one at a time.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson


class EventSplitter:
    """Incremental splitter: feed bytes, get complete ``data:`` payloads (events end with a blank line)."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> Iterator[bytes]:
        self._buffer += chunk
        while True:
            end = self._buffer.find(b"\n\n")
            if end < 0:
                return
            event, self._buffer = self._buffer[:end], self._buffer[end + 2:]
            yield event

    def rest(self) -> bytes:
        rest, self._buffer = self._buffer, b""
        return rest


def data_of(event: bytes) -> bytes | None:
    """The ``data:`` payload of one event (multi-line data joined), or None."""
    parts = [line[5:].lstrip(b" ") for line in event.replace(b"\r\n", b"\n").split(b"\n") if line.startswith(b"data:")]
    return b"\n".join(parts) if parts else None


class StreamRecorder:
    """Accumulates chunk deltas into the non-streaming response shape the canonical record stores."""

    def __init__(self) -> None:
        self.splitter = EventSplitter()
        self.content: list[str] = []
        self.reasoning: list[str] = []
        self.tool_calls: dict[int, dict[str, Any]] = {}
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] | None = None
        self.meta: dict[str, Any] = {}

    def feed(self, chunk: bytes) -> None:
        for event in self.splitter.feed(chunk):
            self.observe(data_of(event))

    def observe(self, data: bytes | None) -> None:
        if not data or data == b"[DONE]":
            return
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            return
        if not isinstance(obj, dict):
            return
        for key in ("id", "model", "created"):
            if key in obj and key not in self.meta:
                self.meta[key] = obj[key]
        if isinstance(obj.get("usage"), dict):
            self.usage = obj["usage"]
        choices = obj.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            return
        choice = choices[0]
        delta = choice.get("delta") or {}
        if isinstance(delta, dict):
            if isinstance(delta.get("content"), str):
                self.content.append(delta["content"])
            reasoning = delta.get("reasoning_content") or delta.get("reasoning")
            if isinstance(reasoning, str):
                self.reasoning.append(reasoning)
            for call in delta.get("tool_calls") or []:
                if isinstance(call, dict):
                    slot = self.tool_calls.setdefault(int(call.get("index", 0) or 0), {"type": "function"})
                    if call.get("id"):
                        slot["id"] = call["id"]
        if isinstance(choice.get("finish_reason"), str):
            self.finish_reason = choice["finish_reason"]

    def response(self) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": "".join(self.content)}
        if self.reasoning:
            message["reasoning_content"] = "".join(self.reasoning)
        if self.tool_calls:
            message["tool_calls"] = [self.tool_calls[i] for i in sorted(self.tool_calls)]
        out: dict[str, Any] = {**self.meta, "object": "chat.completion",
                               "choices": [{"index": 0, "message": message, "finish_reason": self.finish_reason}]}
        if self.usage is not None:
            out["usage"] = self.usage
        return out
