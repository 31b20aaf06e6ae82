"""Output defences for suspected accounts: what a distiller wants most is withheld or degraded.

Reasoning traces are withheld or cut to a short summary, log-probabilities are
stripped and fan-out (``n``) capped. Only accounts the policy marks for
perturbation pass through here; everyone else's bytes are forwarded untouched.
"""

from __future__ import annotations

from typing import Any

import orjson

from distillguard.gateway.policy import Perturb
from distillguard.gateway.sse import EventSplitter, data_of

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
    """Rewrites SSE events one at a time: reasoning deltas are dropped, or kept until the summary budget."""

    def __init__(self, p: Perturb) -> None:
        self.p = p
        self.splitter = EventSplitter()
        self.reasoning_sent = 0

    def feed(self, chunk: bytes) -> bytes:
        return b"".join(self._event(event) for event in self.splitter.feed(chunk))

    def close(self) -> bytes:
        rest = self.splitter.rest()
        return self._event(rest) if rest.strip() else b""

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
            if self.p.reasoning == "keep":
                continue
            if room <= 0:
                del delta[key]
            else:
                delta[key] = value[:room]
                self.reasoning_sent += len(delta[key])
