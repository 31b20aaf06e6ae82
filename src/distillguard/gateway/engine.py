"""The decision path shared by the live proxy, the integrations and ``gateway replay``.

``decide`` runs before the request goes upstream (exemptions, score, tier,
budgets, audit); ``complete`` runs once the exchange is known (online state,
token charges). Replay calls exactly these two methods with recorded timestamps,
so a backtest exercises the same code the proxy does.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from distillguard.decide import verdict
from distillguard.gateway import errors
from distillguard.gateway.actions import Action, build_action
from distillguard.gateway.audit import AuditLog
from distillguard.gateway.policy import Policy, Tier
from distillguard.gateway.scoring import Score, Scorer
from distillguard.gateway.state import MemoryState, StateBackend, StateError
from distillguard.gateway.throttle import Rate
from distillguard.model import format_ts


@dataclass
class AccountInfo:
    org_id: str | None = None
    verified: bool = False
    record: dict[str, Any] = field(default_factory=dict)  # the account record, for online features


@dataclass
class Decision:
    id: str
    account_id: str
    ts_ms: int
    action: str  # allow | throttle | perturb | block: what the policy decided for this account now
    tier: str
    risk: float
    reasons: list[str] = field(default_factory=list)
    enforced: bool = True  # False in shadow mode: logged, not acted on
    limited: bool = False  # over a rate or token budget
    retry_after_s: float = 0.0
    campaign_id: str | None = None
    status: int | None = None  # the error status the gateway answers with itself, when enforced
    perturb: bool = False  # responses get output defences
    endpoint: str | None = None  # the API route decided on (e.g. /v1/chat/completions, /v1/files/{id})
    # the action of the tier that made the decision (None: exemption, failure mode), see Engine.action_for
    handler: Action | None = field(default=None, repr=False, compare=False)

    def audit_entry(self) -> dict[str, Any]:
        entry = {"id": self.id, "account_id": self.account_id, "ts": format_ts(self.ts_ms), "action": self.action,
                 "tier": self.tier, "risk": self.risk, "reasons": self.reasons, "enforced": self.enforced,
                 "limited": self.limited, "retry_after_s": self.retry_after_s, "campaign_id": self.campaign_id,
                 "status": self.status, "perturb": self.perturb}
        if self.endpoint is not None:
            entry["endpoint"] = self.endpoint
        return entry

    def error(self) -> tuple[int, bytes, dict[str, str]]:
        """The OpenAI-format refusal for an enforced block, throttle or fail-closed decision."""
        headers: dict[str, str] = {}
        if self.status == 429:
            _, type_, code = errors.THROTTLED
            message = f"Rate limit reached for this account. Retry after {self.retry_after_s:g} s."
            headers["retry-after"] = str(max(1, int(self.retry_after_s + 0.999)))
        elif self.status == 503:
            _, type_, code = errors.UNAVAILABLE
            message = "The service is temporarily unavailable. Please retry."
            headers["retry-after"] = "1"
        else:
            _, type_, code = errors.BLOCKED
            message = "This account is not permitted to use this API. Contact support if you think this is a mistake."
        return self.status or 403, errors.error_body(message, type_, code), headers


class Engine:
    def __init__(self, policy: Policy, scorer: Scorer, state: StateBackend | None = None,
                 accounts: dict[str, AccountInfo] | None = None, audit: AuditLog | None = None) -> None:
        self.policy = policy
        self.scorer = scorer
        self.state: StateBackend = state if state is not None else MemoryState()
        self.accounts = accounts or {}
        self.audit = audit
        self._tiers = {t.name: t for t in policy.tiers}
        # each tier's action, built by name from the registry; decisions no tier made get the neutral one
        self._actions: dict[str, Action] = {t.name: build_action(t, policy) for t in policy.tiers}
        self._neutral = Action.from_policy(None, policy)
        # notes about an account that belong in its decisions' reasons (e.g. online scoring shed under load)
        self.annotate: Callable[[str], str | None] | None = None

    def exemption(self, account_id: str, org_id: str | None) -> str | None:
        p = self.policy
        info = self.accounts.get(account_id)
        org = org_id or (info.org_id if info else None)
        if account_id in p.allow_accounts:
            return f"allowlisted account {account_id}"
        if org is not None and org in p.allow_orgs:
            return f"allowlisted organisation {org}"
        if p.exempt_verified and info is not None and info.verified:
            return "verified organisation" + (f" {org}" if org else "")
        return None

    async def decide(self, exchange_id: str, account_id: str, org_id: str | None, row: dict[str, Any],
                     now_ms: int) -> Decision:
        """Decide for one request and append the decision to the audit log before it takes effect."""
        decision = await self._decide(exchange_id, account_id, org_id, row, now_ms)
        endpoint = row.get("endpoint")
        if isinstance(endpoint, str):
            decision.endpoint = endpoint
        if self.annotate is not None:
            note = self.annotate(account_id)
            if note:
                decision.reasons.append(note)
        if self.audit is not None:
            self.audit.write(decision.audit_entry())
        return decision

    def refused(self, request_id: str, now_ms: int, status: int, code: str | None, message: str, *,
                account_id: str | None = None, api_key_id: str | None = None, client_ip: str | None = None,
                method: str | None = None, endpoint: str | None = None) -> None:
        """Audit a request the gateway refused before any decision (bad key, malformed body, unknown route...).

        Key stuffing and probing show in the audit log this way; the key appears only as its id (a hash).
        """
        if self.audit is None:
            return
        self.audit.write({"id": request_id, "account_id": account_id, "ts": format_ts(now_ms), "action": "refuse",
                          "tier": None, "risk": None, "reasons": [message[:300]], "enforced": True,
                          "status": status, "code": code, "api_key_id": api_key_id, "client_ip": client_ip,
                          "method": method, "endpoint": endpoint})

    async def _decide(self, exchange_id: str, account_id: str, org_id: str | None, row: dict[str, Any],
                      now_ms: int) -> Decision:
        exempt = self.exemption(account_id, org_id)
        if exempt is not None:
            return Decision(exchange_id, account_id, now_ms, "allow", "exempt", 0.0, [exempt])
        await self.scorer.prefetch(account_id)
        try:
            score = self.scorer.score(account_id, row, now_ms)
        except Exception as exc:  # noqa: BLE001 - any scorer failure is handled by the fail mode
            return self._failed(exchange_id, account_id, now_ms, f"scorer error: {exc}")
        try:
            score = await self._share(account_id, score)
            tier = self.policy.tier_for(score.verdict)
            action = self._actions[tier.name]
            decision = Decision(exchange_id, account_id, now_ms, tier.action, tier.name, score.risk,
                                [*score.reasons, f"verdict {score.verdict}: tier {tier.name}"],
                                enforced=not self.policy.is_shadow(tier), campaign_id=score.campaign_id,
                                handler=action)
            if action.budgets:
                await self._budgets(decision, tier, now_ms)
        except StateError as exc:
            return self._failed(exchange_id, account_id, now_ms, str(exc))
        if decision.enforced:
            action.decide(decision, tier)  # the tier's action says what the decision does: refuse, perturb
        else:
            decision.reasons.append("shadow: not enforced")
        return decision

    def action_for(self, decision: Decision) -> Action:
        """The action that applies ``decision`` to its exchange (:meth:`Action.apply`): its tier's when enforced,
        else the neutral one (shadow decisions touch nothing; exemptions and failure modes are no tier's)."""
        if not decision.enforced or decision.handler is None:
            return self._neutral
        return decision.handler

    async def _share(self, account_id: str, score: Score) -> Score:
        """With a shared backend, replicas exchange risk: each takes the highest any of them has seen."""
        if not self.state.shared:
            return score
        blob = await self.state.get_blob("risk:" + account_id)
        if blob is not None:
            shared = orjson.loads(blob)
            if shared["risk"] > score.risk:
                return Score(shared["risk"], (*shared["reasons"], "risk shared by another replica"),
                             shared.get("campaign_id"), verdict(shared["risk"], policy=self.policy.decide))
            if shared["risk"] == score.risk:
                return score
        if score.risk > 0:
            await self.state.put_blob("risk:" + account_id, orjson.dumps(
                {"risk": score.risk, "reasons": score.reasons, "campaign_id": score.campaign_id}))
        return score

    async def _budgets(self, decision: Decision, tier: Tier, now_ms: int) -> None:
        if tier.requests_per_minute:
            ok, retry_ms = await self.state.limit(decision.account_id + ":r", now_ms,
                                                  Rate(tier.requests_per_minute, tier.burst))
            if not ok:
                decision.limited = True
                decision.retry_after_s = round(retry_ms / 1000.0, 3)
                decision.reasons.append(f"over {tier.requests_per_minute:g} requests/min")
        if tier.tokens_per_minute and not decision.limited:
            ok, retry_ms = await self.state.limit(decision.account_id + ":t", now_ms,
                                                  Rate(tier.tokens_per_minute, tier.burst), cost=0)
            if not ok:
                decision.limited = True
                decision.retry_after_s = round(retry_ms / 1000.0, 3)
                decision.reasons.append(f"over {tier.tokens_per_minute:g} tokens/min")

    def _failed(self, exchange_id: str, account_id: str, now_ms: int, why: str) -> Decision:
        if self.policy.fail == "open":
            return Decision(exchange_id, account_id, now_ms, "allow", "fail-open", 0.0, [why, "fail-open"])
        if self.policy.mode == "shadow":  # shadow mode never enforces, not even its failure mode
            return Decision(exchange_id, account_id, now_ms, "block", "fail-closed", 1.0,
                            [why, "fail-closed", "shadow: not enforced"], enforced=False)
        return Decision(exchange_id, account_id, now_ms, "block", "fail-closed", 1.0, [why, "fail-closed"],
                        status=503)

    async def complete(self, decision: Decision, row: dict[str, Any]) -> None:
        """After the exchange: fold it into online state and charge the tokens it used."""
        charge = self._observe(decision, row)
        if charge is not None:
            with contextlib.suppress(StateError):
                await self.state.charge(*charge)

    def complete_now(self, decision: Decision, row: dict[str, Any]) -> bool:
        """:meth:`complete` without awaiting, when the state backend is in-process; False: await ``complete``.

        Saves the proxy a task per exchange; same effect, same order as :meth:`complete`.
        """
        if not self.state.synchronous:
            return False
        charge = self._observe(decision, row)
        if charge is not None:
            self.state.charge_sync(*charge)
        return True

    def _observe(self, decision: Decision, row: dict[str, Any]) -> tuple[str, int, Rate, int] | None:
        """Online state += the exchange; returns the token charge to make, if any."""
        # scoring state must never fail a request already served
        with contextlib.suppress(Exception):
            self.scorer.observe(row)
        tier = self._tiers.get(decision.tier)
        if tier is None or not tier.tokens_per_minute:
            return None
        tokens = (row.get("prompt_tokens") or 0) + (row.get("completion_tokens") or 0)
        if not tokens:
            return None
        return decision.account_id + ":t", decision.ts_ms, Rate(tier.tokens_per_minute, tier.burst), tokens
