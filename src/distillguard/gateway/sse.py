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


def event_boundary(data: bytes) -> int:
    """Index just past the last complete event in ``data`` (a blank line ends an event: LF LF, CRLF CRLF, CR CR)."""
    best = 0
    for sep in (b"\n\n", b"\r\n\r\n", b"\r\r"):
        i = data.rfind(sep)
        if i >= 0 and i + len(sep) > best:
            best = i + len(sep)
    return best


class EventFramer:
    """Hands on whole events only, bytes untouched, so a stream cut mid-event never leaves half an event with the
    client (the gateway then ends the stream with an error event of its own)."""

    def __init__(self) -> None:
        self.rest = b""

    def feed(self, chunk: bytes) -> bytes:
        data = self.rest + chunk if self.rest else chunk
        cut = event_boundary(data)
        self.rest = data[cut:]
        return data[:cut] if cut < len(data) else data

    def close(self) -> bytes:
        """The upstream ended its body cleanly: whatever it sent last goes out as it is."""
        rest, self.rest = self.rest, b""
        return rest


def chat_error_event(message: str, code: str, type_: str = "upstream_error") -> bytes:
    """An error in a chat-completions stream, as the OpenAI API sends one (the SDKs raise ``APIError`` on it)."""
    body = orjson.dumps({"error": {"message": message, "type": type_, "param": None, "code": code}})
    return b"data: " + body + b"\n\ndata: [DONE]\n\n"


class ResponsesRecorder:
    """Keeps what a Responses API stream says about its response: the last ``response`` object of a lifecycle
    event (``response.completed`` carries the whole response), and text and reasoning deltas for a stream that
    ends before it."""

    def __init__(self) -> None:
        self.splitter = EventSplitter()
        self.last: dict[str, Any] | None = None  # the latest response object (created, in_progress, completed...)
        self.final = False  # a terminal event (completed, incomplete, failed) was seen
        self.text: list[str] = []
        self.reasoning: list[str] = []
        self.sequence = -1  # the highest sequence_number seen

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
        if isinstance(obj.get("sequence_number"), int):
            self.sequence = max(self.sequence, obj["sequence_number"])
        kind = obj.get("type")
        if isinstance(obj.get("response"), dict) and isinstance(kind, str) and kind.startswith("response."):
            self.last = obj["response"]
            self.final = kind in ("response.completed", "response.incomplete", "response.failed")
        elif kind == "response.output_text.delta" and isinstance(obj.get("delta"), str):
            self.text.append(obj["delta"])
        elif kind in ("response.reasoning_summary_text.delta", "response.reasoning_text.delta") \
                and isinstance(obj.get("delta"), str):
            self.reasoning.append(obj["delta"])

    def response(self) -> dict[str, Any] | None:
        """The response as stored: the terminal event's, else one rebuilt from the deltas (status incomplete)."""
        if self.final and self.last is not None:
            return self.last
        if self.last is None and not self.text and not self.reasoning:
            return None
        out: dict[str, Any] = dict(self.last or {"object": "response"})
        output: list[dict[str, Any]] = []
        if self.reasoning:
            output.append({"type": "reasoning", "summary": [{"type": "summary_text", "text": "".join(self.reasoning)}]})
        if self.text:
            output.append({"type": "message", "role": "assistant",
                           "content": [{"type": "output_text", "text": "".join(self.text), "annotations": []}]})
        out["output"] = output
        out["status"] = "incomplete"
        return out

    def error_events(self, message: str, code: str, next_sequence: int) -> bytes:
        """An ``error`` event, then ``response.failed`` (when the response object is known): how a Responses
        stream that the gateway cannot finish ends. ``next_sequence`` is the first sequence number to use."""
        error = {"type": "error", "code": code, "message": message, "param": None, "sequence_number": next_sequence}
        out = b"event: error\ndata: " + orjson.dumps(error) + b"\n\n"
        if self.last is not None:
            failed = {**self.last, "status": "failed", "error": {"code": "server_error", "message": message}}
            event = {"type": "response.failed", "response": failed, "sequence_number": next_sequence + 1}
            out += b"event: response.failed\ndata: " + orjson.dumps(event) + b"\n\n"
        return out
