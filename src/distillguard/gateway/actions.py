"""Actions: what a policy tier does to its accounts' exchanges, registered by name.

A tier's ``action:`` in the policy names a registered :class:`Action` class; the engine builds one object per
tier (:meth:`Action.from_policy`) and asks it, for every enforced decision of that tier, what the decision does
(:meth:`Action.decide`: refuse with a status, perturb the outputs, or neither). Like httpx transports, the
proxy, the ASGI middleware and the LiteLLM hook then drive one method, :meth:`Action.apply`, called once before
the request goes upstream (``flow.response is None``) and once on the response.

Built in: ``allow``, ``throttle`` (the tier's budgets; over budget: 429), ``perturb`` (output defences) and
``block`` (403). A new action::

    from distillguard.gateway.actions import Action, Flow, register_action

    @register_action("cap-tokens")
    class CapTokens(Action):
        \"\"\"Like allow, with completions capped at 64 tokens.\"\"\"

        def apply(self, decision, flow):
            super().apply(decision, flow)  # refusals and output defences, as every action does
            if decision.enforced and flow.response is None and flow.refusal is None \\
                    and (flow.request.get("max_tokens") or 1 << 30) > 64:
                flow.request["max_tokens"] = 64
                flow.changes.append("max_tokens capped at 64")

then ``action: cap-tokens`` in a tier. :func:`check_action` is the conformance check every action passes.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Self, TypeVar

from distillguard.errors import DistillguardError
from distillguard.gateway.perturb import (
    ResponsesStreamPerturber,
    StreamPerturber,
    perturb_request,
    perturb_response,
    perturb_responses_request,
    perturb_responses_response,
)
from distillguard.gateway.policy import Perturb, Policy, Tier
from distillguard.gateway.registry import ConformanceError, Registry

if TYPE_CHECKING:
    from distillguard.gateway.engine import Decision


class ActionError(DistillguardError, ValueError):
    """A tier names an action nothing is registered under."""


@dataclass
class Flow:
    request: dict[str, Any]
    response: dict[str, Any] | None = None
    stream: StreamPerturber | ResponsesStreamPerturber | None = None  # set when a stream must be rewritten
    refusal: tuple[int, bytes, dict[str, str]] | None = None  # (status, OpenAI error body, headers)
    changes: list[str] = field(default_factory=list)
    api: str = "chat"  # chat (chat.completions bodies) | responses (Responses API bodies)
    # the trace defence this exchange gets whatever the tier says (a resistance profile's, set before the request
    # is applied): replaces the tier's reasoning mode when the decision perturbs, and applies alone when it does not
    reasoning: str | None = None


class Action:
    """The base of every action: refuses decisions that carry a status, applies output defences to perturbed ones.

    Subclasses set ``budgets`` and override :meth:`decide` (what an enforced decision of the tier does) and/or
    :meth:`apply` (what happens to the exchange), calling ``super()`` so refusals and output defences stay.
    """

    name: ClassVar[str] = ""  # set by @register_action
    budgets: ClassVar[bool] = True  # the tier's request and token budgets are checked (a 429 when over)

    def __init__(self, perturb: Perturb | None = None) -> None:
        self.perturb = perturb if perturb is not None else Perturb()  # the policy's output defences

    @classmethod
    def from_policy(cls, tier: Tier | None, policy: Policy) -> Self:
        """The action of ``tier`` (None: the engine's neutral action, for decisions no tier made)."""
        return cls(policy.perturb_for(tier))

    def decide(self, decision: Decision, tier: Tier) -> None:
        """Complete an enforced decision of ``tier``: ``decision.status`` (the gateway refuses with it) and
        ``decision.perturb`` (output defences); budgets were checked already (``decision.limited``)."""
        if decision.limited:
            decision.status = 429
        decision.perturb = tier.perturb

    def apply(self, decision: Decision, flow: Flow) -> None:
        """Act on one exchange: before it goes upstream (``flow.response is None``), then on the response."""
        if not decision.enforced:
            return
        if decision.status is not None:
            if flow.response is None:
                flow.refusal = decision.error()
            return
        p = self.defences(decision, flow.reasoning)
        if p is not None:
            degrade(p, flow)

    def defences(self, decision: Decision, reasoning: str | None = None) -> Perturb | None:
        """The output defences :meth:`apply` gives an exchange of ``decision`` (None: none, its bytes untouched).

        ``reasoning`` (:attr:`Flow.reasoning`) overrides the trace defence: with a perturbing decision it replaces
        the tier's mode, without one it applies alone (nothing else of the request or the answer changes)."""
        if not decision.enforced or decision.status is not None:
            return None
        if decision.perturb:
            if reasoning is None or reasoning == self.perturb.reasoning:
                return self.perturb
            return dataclasses.replace(self.perturb, reasoning=reasoning)
        if reasoning is None or reasoning == "keep":
            return None
        return reasoning_only(reasoning, self.perturb.summary_chars)

    def reasoning(self, decision: Decision, flow: Flow) -> str:
        """The trace defence this exchange gets: keep | withhold | summarise | restructure."""
        p = self.defences(decision, flow.reasoning)
        return p.reasoning if p is not None else "keep"


def reasoning_only(mode: str, summary_chars: int = 160) -> Perturb:
    """Output defences that rewrite the reasoning trace and nothing else (log-probabilities, ``n`` and token caps
    left as the client asked)."""
    return Perturb(reasoning=mode, summary_chars=summary_chars, strip_logprobs=False, max_n=1 << 62,
                   max_tokens_cap=None)


def degrade(p: Perturb, flow: Flow) -> None:
    """Output defences: on the request (logprobs, n, max tokens), its stream, and the response (reasoning)."""
    responses = flow.api == "responses"
    if flow.response is None:
        flow.changes.extend((perturb_responses_request if responses else perturb_request)(flow.request, p))
        if flow.request.get("stream") is True:
            flow.stream = ResponsesStreamPerturber(p) if responses else StreamPerturber(p)
    elif responses:
        perturb_responses_response(flow.response, p)
    else:
        perturb_response(flow.response, p)


A = TypeVar("A", bound=type[Action])
ACTIONS: Registry[type[Action]] = Registry("gateway action", "distillguard.actions")


def register_action(name: str) -> Callable[[A], A]:
    """Class decorator: ``action: NAME`` in a policy tier builds this class (``from_policy``)."""

    def decorate(cls: A) -> A:
        if not (isinstance(cls, type) and issubclass(cls, Action)):
            raise ActionError(f"action {name!r}: {cls!r} is not a subclass of distillguard.gateway.actions.Action")
        ACTIONS.register(name)(cls)
        if "name" not in vars(cls):
            cls.name = name
        return cls

    return decorate


def action_class(name: str) -> type[Action] | None:
    """The action registered as ``name`` (installed plug-ins included), or None."""
    return ACTIONS.get(name)


def registered_actions() -> tuple[str, ...]:
    return ACTIONS.names()


def build_action(tier: Tier, policy: Policy) -> Action:
    """The action object of one tier, by its ``action`` name."""
    cls = action_class(tier.action)
    if cls is None:
        raise ActionError(f"{policy.source}: tier {tier.name!r}: action: must be one of "
                          f"{', '.join(registered_actions())}; got {tier.action!r}")
    return cls.from_policy(tier, policy)


@register_action("allow")
class Allow(Action):
    """Let requests through (within the tier's budgets, when it sets any)."""


@register_action("throttle")
class Throttle(Action):
    """The tier's request and token budgets: over budget, a 429 with Retry-After."""


@register_action("perturb")
class Degrade(Action):
    """Output defences on every exchange: logprobs stripped, ``n`` and tokens capped, reasoning withheld."""

    def decide(self, decision: Decision, tier: Tier) -> None:
        super().decide(decision, tier)
        decision.perturb = True


@register_action("block")
class Block(Action):
    """Refuse every request (403); no budgets to count."""

    budgets = False

    def decide(self, decision: Decision, tier: Tier) -> None:
        super().decide(decision, tier)
        decision.status = 403


# ---- conformance ---------------------------------------------------------------------------------------------
_CHAT_REQUEST = {"model": "m", "messages": [{"role": "user", "content": "explain"}], "logprobs": True,
                 "top_logprobs": 5, "n": 3, "max_tokens": 100}
_CHAT_RESPONSE = {"id": "c1", "object": "chat.completion", "choices": [
    {"index": 0, "finish_reason": "stop", "logprobs": {"content": []},
     "message": {"role": "assistant", "content": "answer", "reasoning_content": "SECRET-TRACE"}}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 5}}
_CHAT_STREAM = (b'data: {"choices":[{"index":0,"delta":{"reasoning_content":"SECRET-TRACE"}}]}\n\n'
                b'data: {"choices":[{"index":0,"delta":{"content":"answer"}}]}\n\ndata: [DONE]\n\n')
_RESPONSES_REQUEST = {"model": "m", "input": "explain", "top_logprobs": 5, "max_output_tokens": 100,
                      "include": ["reasoning.encrypted_content"]}
_RESPONSES_RESPONSE = {"id": "r1", "object": "response", "status": "completed", "output": [
    {"type": "reasoning", "id": "rs1", "summary": [{"type": "summary_text", "text": "SECRET-TRACE"}]},
    {"type": "message", "id": "m1", "role": "assistant",
     "content": [{"type": "output_text", "text": "answer", "logprobs": [{"token": "a"}]}]}]}
_RESPONSES_STREAM = (
    b'event: response.output_item.added\ndata: {"type":"response.output_item.added","sequence_number":0,'
    b'"output_index":0,"item":{"type":"reasoning","id":"rs1","summary":[]}}\n\n'
    b'event: response.reasoning_summary_text.delta\ndata: {"type":"response.reasoning_summary_text.delta",'
    b'"sequence_number":1,"output_index":0,"summary_index":0,"delta":"SECRET-TRACE"}\n\n'
    b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","sequence_number":2,'
    b'"output_index":1,"content_index":0,"delta":"answer"}\n\n')
_SAMPLES: dict[str, tuple[dict[str, Any], dict[str, Any], bytes]] = {
    "chat": (_CHAT_REQUEST, _CHAT_RESPONSE, _CHAT_STREAM),
    "responses": (_RESPONSES_REQUEST, _RESPONSES_RESPONSE, _RESPONSES_STREAM)}


def check_action(cls: type[Action], policy: Policy | None = None) -> None:
    """The conformance check every registered action passes (like scikit-learn's ``check_estimator``).

    Raises :class:`~distillguard.gateway.registry.ConformanceError` naming the broken rule:

    * it is an :class:`Action` registered under its ``name``, built by ``from_policy`` for a tier that names it;
    * :meth:`~Action.decide` changes only ``status`` (an HTTP error status or None) and ``perturb``, and never lets
      a decision over budget through;
    * :meth:`~Action.apply` leaves a shadow (not enforced) decision's exchange untouched, answers a decision with
      a status with that status before anything goes upstream, and applies the policy's output defences
      (logprobs, ``n``, reasoning in JSON and streamed answers, chat and Responses API) when the decision says
      ``perturb``.
    """
    from distillguard.gateway.engine import Decision
    from distillguard.gateway.policy import load_policy

    label = getattr(cls, "__qualname__", repr(cls))
    _require(isinstance(cls, type) and issubclass(cls, Action), f"{label}: not a subclass of Action")
    _require(isinstance(cls.name, str) and bool(cls.name) and action_class(cls.name) is cls,
             f"{label}: not registered under its name {cls.name!r} (use @register_action)")
    _require(isinstance(cls.budgets, bool), f"{label}.budgets: a bool")
    base = policy or load_policy()
    policy = dataclasses.replace(base, mode="enforce", perturb=Perturb())
    tier = dataclasses.replace(policy.tiers[-1], action=cls.name, shadow=None)
    action = cls.from_policy(tier, policy)
    _require(isinstance(action, cls), f"{label}.from_policy: returns an instance of {label}")

    def decision(**changes: Any) -> Decision:
        return dataclasses.replace(Decision("conformance-1", "acct-1", 1_000, cls.name, tier.name, 0.9,
                                            ["evidence"]), **changes)

    # decide: only status and perturb change; over budget is refused
    for limited in (False, True):
        d = decision(limited=limited, retry_after_s=2.0 if limited else 0.0)
        before = _fields(d)
        action.decide(d, tier)
        after = _fields(d)
        changed = {k for k in before if before[k] != after[k]} - {"status", "perturb"}
        _require(not changed, f"{label}.decide: changes only status and perturb (changed {sorted(changed)})")
        _require(d.status is None or (isinstance(d.status, int) and 400 <= d.status < 600),
                 f"{label}.decide: status is None or an HTTP error status (got {d.status!r})")
        _require(isinstance(d.perturb, bool), f"{label}.decide: perturb is a bool")
        if limited:
            _require(d.status is not None, f"{label}.decide: a decision over budget is refused (status set)")
    for api, (request, response, stream) in _SAMPLES.items():
        for streamed in (False, True):
            where = f"{label}.apply ({api}{', stream' if streamed else ''})"
            sent = {**copy.deepcopy(request), **({"stream": True} if streamed else {})}
            # shadow: nothing happens to the exchange
            flow = _run(action, decision(enforced=False, reasons=["evidence", "shadow: not enforced"]), api,
                        copy.deepcopy(sent), response)
            _require(flow.request == sent and flow.response == response and flow.refusal is None
                     and flow.stream is None and not flow.changes,
                     f"{where}: a shadow decision's exchange is left untouched")
            # a status: refused before upstream, with that status
            refused = decision(status=503)
            flow = Flow(request=copy.deepcopy(sent), api=api)
            action.apply(refused, flow)
            _require(flow.refusal is not None and flow.refusal[0] == 503,
                     f"{where}: a decision with status 503 is refused with 503 before going upstream")
            # perturb: the policy's output defences, on the request, its stream and the response
            flow = _run(action, decision(perturb=True), api, copy.deepcopy(sent), response)
            if api == "chat":
                _require("logprobs" not in flow.request and "top_logprobs" not in flow.request
                         and flow.request.get("n", 1) <= 1, f"{where}: perturb strips logprobs and caps n")
                _require(flow.response is not None and "reasoning_content" not in str(flow.response)
                         and "logprobs" not in flow.response["choices"][0],
                         f"{where}: perturb withholds the response's reasoning and logprobs")
            else:
                _require("top_logprobs" not in flow.request and not flow.request.get("include"),
                         f"{where}: perturb strips top_logprobs and encrypted reasoning")
                _require(flow.response is not None and "SECRET-TRACE" not in str(flow.response),
                         f"{where}: perturb withholds the response's reasoning items")
            if streamed:
                _require(flow.stream is not None, f"{where}: perturb rewrites the stream")
                assert flow.stream is not None
                out = flow.stream.feed(stream) + flow.stream.close()
                _require(b"SECRET-TRACE" not in out and b"answer" in out,
                         f"{where}: the perturbed stream keeps the answer and withholds the reasoning")


def _fields(decision: Decision) -> dict[str, Any]:
    return {f.name: copy.copy(getattr(decision, f.name)) for f in dataclasses.fields(decision)}


def _run(action: Action, decision: Decision, api: str, request: dict[str, Any],
         response: dict[str, Any]) -> Flow:
    flow = Flow(request=request, api=api)
    action.apply(decision, flow)
    flow.response = copy.deepcopy(response)
    action.apply(decision, flow)
    return flow


def _require(ok: bool, rule: str) -> None:
    if not ok:
        raise ConformanceError(rule)


__all__ = ["ACTIONS", "Action", "ActionError", "Allow", "Block", "Degrade", "Flow", "Throttle", "action_class",
           "build_action", "check_action", "degrade", "reasoning_only", "register_action", "registered_actions"]
