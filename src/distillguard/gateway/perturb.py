"""Output defences for suspected accounts: what a distiller wants most is withheld or degraded.

Reasoning traces are withheld, cut to a short summary or restructured (self-talk removed, the conclusion stated
first: :func:`distillguard.resist.text.restructure_trace`; the answer is never touched), log-probabilities are
stripped and fan-out (``n``) capped. Only accounts the policy marks for perturbation (or a resistance profile gives
a trace defence) pass through here; everyone else's bytes are forwarded untouched.
"""

from __future__ import annotations

from typing import Any

import orjson

from distillguard.gateway.policy import Perturb
from distillguard.gateway.sse import EventSplitter, data_of
from distillguard.resist.gateway_text import StreamRestructurer
from distillguard.resist.text import restructure_trace

_REASONING_KEYS = ("reasoning_content", "reasoning")
SUMMARY_MARK = " [reasoning summarised]"


def perturb_request(body: dict[str, Any], p: Perturb) -> list[str]:
    """Edit the request in place; returns what was changed (for the audit log)."""
    changed = []
    if p.strip_logprobs:
        for key in ("logprobs", "top_logprobs"):
            if body.pop(key, None) is not None:
                changed.append(f"dropped {key}")
    n = body.get("n")
    if isinstance(n, int) and n > p.max_n:
        body["n"] = p.max_n
        changed.append(f"n {n}->{p.max_n}")
    if p.max_tokens_cap:
        for key in ("max_completion_tokens", "max_tokens"):
            value = body.get(key)
            if isinstance(value, int) and value > p.max_tokens_cap:
                body[key] = p.max_tokens_cap
                changed.append(f"{key} {value}->{p.max_tokens_cap}")
    return changed


def summarise(text: str, limit: int) -> str:
    """The first sentences of a trace up to ``limit`` characters: enough to read, too little to train on."""
    if len(text) <= limit:
        return text + SUMMARY_MARK
    cut = text[:limit]
    stop = max(cut.rfind(". "), cut.rfind("\n"))
    return (cut[: stop + 1] if stop > limit // 3 else cut).rstrip() + SUMMARY_MARK


def _message(message: dict[str, Any], p: Perturb) -> None:
    for key in _REASONING_KEYS:
        value = message.get(key)
        if not isinstance(value, str):
            continue
        if p.reasoning == "withhold":
            del message[key]
        elif p.reasoning == "summarise":
            message[key] = summarise(value, p.summary_chars)
        elif p.reasoning == "restructure":
            message[key] = restructure_trace(value)


def perturb_response(body: dict[str, Any], p: Perturb) -> None:
    """Edit a non-streaming chat completion in place."""
    for choice in body.get("choices") or []:
        if not isinstance(choice, dict):
            continue
        if isinstance(choice.get("message"), dict):
            _message(choice["message"], p)
        if p.strip_logprobs:
            choice.pop("logprobs", None)


class StreamPerturber:
    """Rewrites SSE events one at a time: reasoning deltas are dropped, or kept until the summary budget.

    ``restructure``: the events (log-probabilities stripped) go on through a
    :class:`~distillguard.resist.gateway_text.StreamRestructurer`, which holds the reasoning deltas back and sends
    the rewritten trace as one delta just before the answer starts (or the choice finishes, or the stream ends).
    """

    def __init__(self, p: Perturb) -> None:
        self.p = p
        self.splitter = EventSplitter()
        self.reasoning_sent = 0
        self.restructurer = StreamRestructurer() if p.reasoning == "restructure" else None

    def feed(self, chunk: bytes) -> bytes:
        out = b"".join(self._event(event) for event in self.splitter.feed(chunk))
        return self.restructurer.feed(out) if self.restructurer is not None else out

    def close(self) -> bytes:
        rest = self.splitter.rest()
        out = self._event(rest) if rest.strip() else b""
        if self.restructurer is not None:
            return self.restructurer.feed(out) + self.restructurer.close()
        return out

    def _event(self, event: bytes) -> bytes:
        data = data_of(event)
        if data is None or data == b"[DONE]":
            return event + b"\n\n"
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            return event + b"\n\n"
        for choice in obj.get("choices") or [] if isinstance(obj, dict) else []:
            if not isinstance(choice, dict):
                continue
            delta = choice.get("delta")
            if isinstance(delta, dict):
                self._delta(delta)
            if self.p.strip_logprobs:
                choice.pop("logprobs", None)
        return b"data: " + orjson.dumps(obj) + b"\n\n"

    def _delta(self, delta: dict[str, Any]) -> None:
        for key in _REASONING_KEYS:
            value = delta.get(key)
            if not isinstance(value, str):
                continue
            room = self.p.summary_chars - self.reasoning_sent if self.p.reasoning == "summarise" else 0
            if self.p.reasoning in ("keep", "restructure"):  # restructure: the StreamRestructurer's job
                continue
            if room <= 0:
                del delta[key]
            else:
                delta[key] = value[:room]
                self.reasoning_sent += len(delta[key])


# ---- the Responses API (/v1/responses) ------------------------------------------------------------------------
_RESPONSES_INCLUDE_DROPPED = ("reasoning.encrypted_content", "message.output_text.logprobs")


def perturb_responses_request(body: dict[str, Any], p: Perturb) -> list[str]:
    """Edit a Responses API request in place: no log-probabilities, no encrypted reasoning, capped output."""
    changed = []
    if p.strip_logprobs and body.pop("top_logprobs", None) is not None:
        changed.append("dropped top_logprobs")
    include = body.get("include")
    if isinstance(include, list):
        drop = {x for x, on in zip(_RESPONSES_INCLUDE_DROPPED, (p.reasoning != "keep", p.strip_logprobs),
                                   strict=True) if on}
        kept = [x for x in include if x not in drop]
        if len(kept) != len(include):
            body["include"] = kept
            changed.append("include narrowed")
    value = body.get("max_output_tokens")
    if p.max_tokens_cap and isinstance(value, int) and value > p.max_tokens_cap:
        body["max_output_tokens"] = p.max_tokens_cap
        changed.append(f"max_output_tokens {value}->{p.max_tokens_cap}")
    return changed


def _summary_item(item: dict[str, Any], text: str) -> None:
    """A reasoning item reduced to one summary part holding ``text`` (no raw reasoning, no encrypted content)."""
    item["summary"] = [{"type": "summary_text", "text": text}] if text else []
    item.pop("content", None)
    item.pop("encrypted_content", None)


def _reasoning_summary(item: dict[str, Any]) -> str:
    parts = item.get("summary")
    if not isinstance(parts, list):
        parts = []
    return "".join(part["text"] for part in parts if isinstance(part, dict) and isinstance(part.get("text"), str))


def _strip_output_logprobs(item: dict[str, Any]) -> None:
    for part in item.get("content") or [] if isinstance(item.get("content"), list) else []:
        if isinstance(part, dict) and part.get("logprobs"):
            part["logprobs"] = []


def _restructure_item(item: dict[str, Any]) -> None:
    """A reasoning item with every summary and reasoning-text part restructured (no encrypted content)."""
    for key in ("summary", "content"):
        parts = item.get(key)
        for part in parts if isinstance(parts, list) else []:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                part["text"] = restructure_trace(part["text"])
    item.pop("encrypted_content", None)


def perturb_responses_response(body: dict[str, Any], p: Perturb) -> None:
    """Edit a Responses API ``Response`` in place: reasoning items removed (or cut to a summary, or restructured),
    logprobs stripped."""
    output = body.get("output")
    if not isinstance(output, list):
        return
    kept = []
    budget = p.summary_chars
    for item in output:
        if not isinstance(item, dict):
            kept.append(item)
            continue
        if item.get("type") == "reasoning" and p.reasoning != "keep":
            if p.reasoning == "withhold":
                continue
            if p.reasoning == "restructure":
                _restructure_item(item)
                kept.append(item)
                continue
            text = _reasoning_summary(item)
            cut = summarise(text, budget) if text and budget > 0 else ""
            budget -= len(cut)
            _summary_item(item, cut)
        elif item.get("type") == "message" and p.strip_logprobs:
            _strip_output_logprobs(item)
        kept.append(item)
    body["output"] = kept


_REASONING_EVENTS = ("response.reasoning_summary_part.", "response.reasoning_summary_text.",
                     "response.reasoning_text.")
_RESPONSE_EVENTS = frozenset({"response.created", "response.queued", "response.in_progress", "response.completed",
                              "response.incomplete", "response.failed"})
_RESPONSE_ENDS = frozenset({"response.completed", "response.incomplete", "response.failed"})
# restructure mode: the delta events held back, and the .done event of each (-> the delta type it releases)
_RESTRUCTURED_DELTAS = frozenset({"response.reasoning_summary_text.delta", "response.reasoning_text.delta"})
_RESTRUCTURED_DONE = {"response.reasoning_summary_text.done": "response.reasoning_summary_text.delta",
                      "response.reasoning_text.done": "response.reasoning_text.delta"}


class ResponsesStreamPerturber:
    """Rewrites a Responses API event stream one event at a time.

    ``withhold``: reasoning output items and every event about them are dropped, the later items' ``output_index``
    renumbered (the SDKs index their snapshot by it) and ``sequence_number`` kept contiguous; the ``response``
    objects of lifecycle events lose their reasoning items. ``summarise``: summary deltas are cut to the summary
    budget, raw reasoning text (``response.reasoning_text.*``) and encrypted content dropped. ``restructure``: the
    deltas of each summary part and reasoning text are held back and sent as one delta carrying the restructured
    text just before their ``.done`` event (or the item's ``output_item.done``, the response's end, the stream's
    end); ``.done`` events, parts, items and lifecycle responses carry the same restructured text, and
    ``sequence_number`` stays contiguous. Log-probabilities are emptied when the policy strips them.
    """

    def __init__(self, p: Perturb) -> None:
        self.p = p
        self.splitter = EventSplitter()
        self.dropped: list[int] = []  # upstream output indices of withheld items, ascending
        self.reasoning: set[int] = set()  # upstream output indices of reasoning items (summarise, restructure)
        self.sent: dict[tuple[int, int], str] = {}  # (output_index, summary_index) -> summary text sent
        # restructure: (output_index, delta event type, summary/content index) -> (first delta event, deltas)
        self.held: dict[tuple[int, str, int], tuple[dict[str, Any], list[str]]] = {}
        self.before: list[dict[str, Any]] = []  # events to send before the one being rewritten
        self.budget = p.summary_chars
        self.sequence = 0

    def feed(self, chunk: bytes) -> bytes:
        return b"".join(self._event(event) for event in self.splitter.feed(chunk))

    def close(self) -> bytes:
        rest = self.splitter.rest()
        out = self._event(rest) if rest.strip() else b""
        self._release_all()  # a stream that ended without its .done events: the held reasoning last
        return out + self._emit_before()

    def _index(self, index: int) -> int:
        return index - sum(1 for d in self.dropped if d < index)

    def _event(self, event: bytes) -> bytes:
        data = data_of(event)
        if data is None or data == b"[DONE]":
            return event + b"\n\n"
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            return event + b"\n\n"
        if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
            return event + b"\n\n"
        keep = self._rewrite(obj)
        out = self._emit_before()
        return out + self._emit(obj) if keep else out

    def _emit(self, obj: dict[str, Any]) -> bytes:
        if "sequence_number" in obj:
            obj["sequence_number"] = self.sequence
            self.sequence += 1
        return b"event: " + obj["type"].encode() + b"\ndata: " + orjson.dumps(obj) + b"\n\n"

    def _emit_before(self) -> bytes:
        if not self.before:
            return b""
        events, self.before = self.before, []
        return b"".join(self._emit(obj) for obj in events)

    def _rewrite(self, obj: dict[str, Any]) -> bool:
        """Edit one event in place; False: drop it."""
        kind, p = obj["type"], self.p
        if kind in _RESPONSE_EVENTS:
            if kind in _RESPONSE_ENDS:
                self._release_all()
            if isinstance(obj.get("response"), dict):
                self._response(obj["response"])
            return True
        index = obj.get("output_index")
        item = obj.get("item")
        if kind == "response.output_item.added" and isinstance(item, dict) and isinstance(index, int) \
                and item.get("type") == "reasoning" and p.reasoning != "keep":
            if p.reasoning == "withhold":
                self.dropped.append(index)
                return False
            self.reasoning.add(index)
        if isinstance(index, int):
            if index in self.dropped:
                return False
            if index in self.reasoning:
                if p.reasoning == "restructure":
                    return self._restructure(obj, kind, index)
                return self._summarise(obj, kind, index)
            obj["output_index"] = self._index(index)
        if p.strip_logprobs:
            if "logprobs" in obj and kind.startswith("response.output_text."):
                obj["logprobs"] = []
            if isinstance(item, dict) and item.get("type") == "message":
                _strip_output_logprobs(item)
            part = obj.get("part")
            if isinstance(part, dict) and part.get("logprobs"):
                part["logprobs"] = []
        return True

    def _summarise(self, obj: dict[str, Any], kind: str, index: int) -> bool:
        """Summarise mode, an event about a reasoning item: summary text up to the budget, nothing else."""
        obj["output_index"] = self._index(index)
        if kind.startswith("response.reasoning_text.") or kind.startswith("response.content_part."):
            return False  # raw reasoning text
        key = (index, obj.get("summary_index", 0) if isinstance(obj.get("summary_index"), int) else 0)
        if kind == "response.reasoning_summary_text.delta":
            delta = obj.get("delta")
            if not isinstance(delta, str):
                delta = ""
            room = max(0, self.budget)
            if room <= 0:
                return False
            obj["delta"] = delta[:room]
            self.budget -= len(obj["delta"])
            self.sent[key] = self.sent.get(key, "") + obj["delta"]
            return True
        if kind == "response.reasoning_summary_text.done":
            obj["text"] = self.sent.get(key, "")
        elif kind.startswith("response.reasoning_summary_part.") and isinstance(obj.get("part"), dict):
            obj["part"]["text"] = self.sent.get(key, "")
        elif kind.startswith("response.output_item.") and isinstance(obj.get("item"), dict):
            text = "".join(v for (i, _), v in sorted(self.sent.items()) if i == index)
            _summary_item(obj["item"], text)
        return True

    def _restructure(self, obj: dict[str, Any], kind: str, index: int) -> bool:
        """Restructure mode, an event about a reasoning item: deltas held back, released restructured as one delta
        before their ``.done``; every full text restructured."""
        obj["output_index"] = self._index(index)
        slot_key = "summary_index" if kind.startswith("response.reasoning_summary") else "content_index"
        value = obj.get(slot_key)
        slot = value if isinstance(value, int) else 0
        if kind in _RESTRUCTURED_DELTAS:
            delta = obj.get("delta")
            held = self.held.setdefault((index, kind, slot), (obj, []))
            held[1].append(delta if isinstance(delta, str) else "")
            return False
        if kind in _RESTRUCTURED_DONE:
            text = obj.get("text")
            self._release((index, _RESTRUCTURED_DONE[kind], slot), text if isinstance(text, str) else None)
            if isinstance(text, str):
                obj["text"] = restructure_trace(text)
            return True
        if kind == "response.output_item.done":
            for key in [k for k in self.held if k[0] == index]:
                self._release(key)
        part = obj.get("part")
        if isinstance(part, dict) and isinstance(part.get("text"), str):
            part["text"] = restructure_trace(part["text"])
        item = obj.get("item")
        if isinstance(item, dict) and item.get("type") == "reasoning":
            _restructure_item(item)
        return True

    def _release(self, key: tuple[int, str, int], text: str | None = None) -> None:
        """The held deltas of one text as one delta (restructured ``text``, default: the deltas joined)."""
        held = self.held.pop(key, None)
        if held is None:
            return
        event, parts = held
        event["delta"] = restructure_trace("".join(parts) if text is None else text)
        self.before.append(event)

    def _release_all(self) -> None:
        for key in sorted(self.held):
            self._release(key)

    def _response(self, response: dict[str, Any]) -> None:
        output = response.get("output")
        if not isinstance(output, list):
            return
        kept = []
        for i, item in enumerate(output):
            if isinstance(item, dict) and item.get("type") == "reasoning" and self.p.reasoning != "keep":
                if self.p.reasoning == "withhold":
                    continue
                if self.p.reasoning == "restructure":
                    _restructure_item(item)
                else:
                    _summary_item(item, "".join(v for (j, _), v in sorted(self.sent.items()) if j == i))
            elif isinstance(item, dict) and item.get("type") == "message" and self.p.strip_logprobs:
                _strip_output_logprobs(item)
            kept.append(item)
        response["output"] = kept
