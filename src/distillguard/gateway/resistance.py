"""A distillation-resistance profile in the request path (``distillguard gateway --resistance FILE``).

After the decision and the tier's action, before the body goes upstream:

* the trace defence: the profile's ``reasoning`` for the decision's verdict (``withhold | summarise |
  restructure``) becomes the exchange's :attr:`~distillguard.gateway.actions.Flow.reasoning`; ``keep`` leaves the
  policy's own (``perturb.reasoning``, or the tier's ``reasoning``) in place, so a profile adds trace defences and
  never removes the policy's;
* the engine directive (:mod:`distillguard.resist.directive`): ``X-DistillGuard-Resist`` on the upstream headers
  and/or ``vllm_xargs.distillguard_resist`` in the upstream body, as the profile's ``engine.transport`` says, put on
  a shallow copy of the request so the stored exchange keeps the client's request; a directive the client put in
  its own ``vllm_xargs`` is removed first (with or without a profile: :func:`upstream_body`);
* the record: ``record["resistance"] = {profile, profile_version, watermark_key, antidistillation, reasoning,
  tier}``, with the trace defence the exchange really gets.

Shadow decisions (``enforced`` False) get neither antidistillation nor a trace rewrite; the watermark, invisible
and provider-wide, stays as the profile configures it. Decisions no tier made (exemptions, failure modes) are
treated as the ``allow`` verdict.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from distillguard.resist.directive import STORE_FIELD, VLLM_XARGS, EngineDirective, strip_client_directive
from distillguard.resist.profile import ResistanceProfile

if TYPE_CHECKING:
    from distillguard.gateway.actions import Action, Flow
    from distillguard.gateway.engine import Decision
    from distillguard.gateway.policy import Policy


class Resistance:
    """A loaded :class:`~distillguard.resist.profile.ResistanceProfile`, applied per decision."""

    def __init__(self, profile: ResistanceProfile, policy: Policy) -> None:
        self.profile = profile
        self._verdicts = {tier.name: tier.verdict for tier in policy.tiers}

    def verdict(self, decision: Decision) -> str:
        """The verdict behind a decision: its tier's (tiers are one per verdict); ``allow`` for exemptions and
        failure modes."""
        return self._verdicts.get(decision.tier, "allow")

    def reasoning(self, decision: Decision) -> str | None:
        """The trace defence the profile gives this decision, None when it leaves it to the policy."""
        mode = self.profile.reasoning(self.verdict(decision), decision.enforced)
        return None if mode == "keep" else mode

    def prepare(self, decision: Decision, flow: Flow) -> None:
        """Before the action applies the decision: the profile's trace defence onto the flow."""
        flow.reasoning = self.reasoning(decision)

    def on_request(self, decision: Decision, body: dict[str, Any], headers: dict[str, str],
                   record: dict[str, Any] | None = None, reasoning: str | None = None) -> EngineDirective:
        """The directive onto the upstream ``body`` and ``headers`` (a client's own directive removed), the
        ``resistance`` object onto ``record``; ``reasoning``: the trace defence the exchange really gets."""
        directive = self.profile.on_request(self.verdict(decision), decision.tier, body, headers, record,
                                            enforced=decision.enforced)
        if record is not None and reasoning is not None:
            record[STORE_FIELD]["reasoning"] = reasoning
        return directive


def upstream_body(request: dict[str, Any], headers: dict[str, str], resistance: Resistance | None,
                  decision: Decision, action: Action, flow: Flow, record: dict[str, Any] | None = None
                  ) -> tuple[dict[str, Any], bool]:
    """``(body to send upstream, whether it differs from request)``: the request with the profile's directive
    and without a directive the client sent itself. ``request`` (what the store keeps) is never changed."""
    if resistance is None:
        if VLLM_XARGS not in request:
            return request, False
        sent = dict(request)
        return sent, strip_client_directive(sent)
    sent = dict(request)  # shallow: the directive code replaces top-level fields only
    resistance.on_request(decision, sent, headers, record, action.reasoning(decision, flow))
    return sent, sent.get(VLLM_XARGS) != request.get(VLLM_XARGS)


__all__ = ["Resistance", "upstream_body"]
