"""Actions: what a decision does to one exchange.

Like httpx transports, every action has one method, ``apply(decision, flow)``,
called once before the request goes upstream (``flow.response is None``) and
once on the response; the proxy, the ASGI middleware and the LiteLLM hook all
drive the same actions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from distillguard.gateway.engine import Decision
from distillguard.gateway.perturb import (
    ResponsesStreamPerturber,
    StreamPerturber,
    perturb_request,
    perturb_response,
    perturb_responses_request,
    perturb_responses_response,
)
from distillguard.gateway.policy import Perturb


@dataclass
class Flow:
    request: dict[str, Any]
    response: dict[str, Any] | None = None
    stream: StreamPerturber | ResponsesStreamPerturber | None = None  # set when a stream must be rewritten
    refusal: tuple[int, bytes, dict[str, str]] | None = None  # (status, OpenAI error body, headers)
    changes: list[str] = field(default_factory=list)
    api: str = "chat"  # chat (chat.completions bodies) | responses (Responses API bodies)


class Action(Protocol):
    def apply(self, decision: Decision, flow: Flow) -> None: ...


class Allow:
    def apply(self, decision: Decision, flow: Flow) -> None:
        return None


class Refuse:
    """Block (403), throttle over budget (429 with Retry-After), or fail closed (503)."""

    def apply(self, decision: Decision, flow: Flow) -> None:
        if flow.response is None:
            flow.refusal = decision.error()


class Degrade:
    """Perturb: output defences on the request (logprobs, n, max tokens) and on the response (reasoning)."""

    def __init__(self, p: Perturb) -> None:
        self.p = p

    def apply(self, decision: Decision, flow: Flow) -> None:
        responses = flow.api == "responses"
        if flow.response is None:
            flow.changes.extend((perturb_responses_request if responses else perturb_request)(flow.request, self.p))
            if flow.request.get("stream") is True:
                flow.stream = ResponsesStreamPerturber(self.p) if responses else StreamPerturber(self.p)
        elif responses:
            perturb_responses_response(flow.response, self.p)
        else:
            perturb_response(flow.response, self.p)


ALLOW = Allow()
REFUSE = Refuse()


def actions_for(decision: Decision, p: Perturb) -> list[Action]:
    """The actions an (enforced) decision takes; shadow decisions take none."""
    if decision.status is not None:
        return [REFUSE]
    if decision.perturb:
        return [Degrade(p)]
    return [ALLOW]
