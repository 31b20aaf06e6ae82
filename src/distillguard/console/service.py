"""What the console does when an analyst decides: record, audit, export, push; and the case workflow.

A decision (confirm-block, confirm-throttle, dismiss, undo) on an account or on every member of a campaign is

1. appended to the console's decisions log with one audit entry per account, in one transaction;
2. exported as the JSON Lines file ``distillguard detect --decisions`` and ``distillguard gateway --decisions``
   read (rewritten atomically after every change, the latest line per account winning);
3. pushed to running gateways: ``put_blob("analyst:<account_id>", json)`` on their shared state (Redis), read
   there by :class:`distillguard.gateway.analyst.SharedDecisions`; the decisions in force are re-pushed every
   ``repush_s`` (the shared state's blobs expire after an hour).

A dismissal is also a labelled example (benign), a confirmation an attack: :func:`distillguard.cases.labels`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

from distillguard.cases.criteria import CaseFacts, EscalationPolicy, Result, evaluate
from distillguard.cases.model import Case, CaseError, check_change, fold, merge_events, next_id
from distillguard.console.auth import User
from distillguard.console.data import ConsoleData
from distillguard.console.db import ConsoleDB, now_iso
from distillguard.decide import DEFAULT_POLICY, DecisionPolicy
from distillguard.decide.analyst import ACTIONS, AnalystDecision, latest

log = logging.getLogger(__name__)
DECISION_ACTIONS = ACTIONS  # confirm-block, confirm-throttle, dismiss, undo


class Console:
    def __init__(self, db: ConsoleDB, data: ConsoleData, *, decisions_out: Path, state: Any = None,
                 escalation: EscalationPolicy, policy: DecisionPolicy = DEFAULT_POLICY,
                 packages_dir: Path | None = None, repush_s: float = 600.0) -> None:
        self.db, self.data = db, data
        self.decisions_out = Path(decisions_out)
        self.state = state
        self.escalation = escalation
        self.policy = policy
        self.packages_dir = Path(packages_dir) if packages_dir else self.decisions_out.parent / "packages"
        self.repush_s = repush_s
        self._log: list[AnalystDecision] = []
        self._by_account: dict[str, list[AnalystDecision]] = defaultdict(list)
        for body in db.decisions():
            self._remember(AnalystDecision.from_json(body, "console decisions log"))
        self.in_force = latest(self._log)
        self._export()
        self.push_errors = 0
        self._task: asyncio.Task | None = None

    def _remember(self, d: AnalystDecision) -> None:
        self._log.append(d)
        self._by_account[d.account_id].append(d)

    # ---- decisions ------------------------------------------------------
    def evidence_snapshot(self, account_id: str, points: dict[str, float] | None = None
                          ) -> tuple[float, frozenset[str]]:
        """The evidence an analyst saw: total weighted points and the families at or above the floor."""
        if points is None:
            points = self.data.points_of([account_id]).get(account_id, {})
        p = self.policy
        total = sum(p.weight(f) * v for f, v in points.items())
        families = frozenset(f for f, v in points.items() if p.weight(f) * v >= p.family_floor)
        return round(total, 3), families

    def members(self, campaign_id: str) -> list[str]:
        camp = self.data.campaigns.get(campaign_id)
        if camp is None:
            raise KeyError(campaign_id)
        return list(camp["accounts"])

    async def decide(self, user: User, account_ids: list[str], action: str, note: str, *, campaign_id: str = "",
                     case_id: str = "", ip: str = "") -> list[AnalystDecision]:
        if action not in DECISION_ACTIONS:
            raise ValueError(f"action: expected one of {', '.join(DECISION_ACTIONS)}")
        if not note.strip():
            raise ValueError("note: say why (it goes into the audit log)")
        at = now_iso()
        made, bodies, audits = [], [], []
        seen = await asyncio.to_thread(self.data.points_of, list(account_ids))
        for account in account_ids:
            points, families = self.evidence_snapshot(account, seen.get(account, {}))
            d = AnalystDecision(account, action, points, families, user.name, at, note.strip(), case_id)
            body = {**d.to_json(), "campaign_id": campaign_id}
            made.append(d)
            bodies.append(body)
            audits.append((user.name, user.role, f"decision:{action}", f"account:{account}", note.strip(),
                           {"points": points, "families": sorted(families), "campaign_id": campaign_id,
                            "case_id": case_id}, ip))
        if campaign_id:
            audits.append((user.name, user.role, f"decision:{action}", f"campaign:{campaign_id}", note.strip(),
                           {"accounts": len(account_ids)}, ip))
        await asyncio.to_thread(self.db.add_decisions, bodies, audits)
        for d in made:
            self._remember(d)
        self.in_force = latest(self._log)
        await asyncio.to_thread(self._export)
        await self.push(made)
        return made

    def _export(self) -> None:
        """Rewrite the JSON Lines decisions file atomically (every decision, in order: the latest line wins)."""
        import orjson

        self.decisions_out.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.decisions_out.with_name(self.decisions_out.name + ".tmp")
        with open(tmp, "wb") as handle:
            for d in self._log:
                handle.write(orjson.dumps(d.to_json()) + b"\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.decisions_out)

    async def push(self, decisions: list[AnalystDecision]) -> int:
        """Write decisions to the gateways' shared state; failures are counted and retried by the re-push."""
        if self.state is None:
            return 0
        from distillguard.gateway.analyst import push

        done = 0
        for d in decisions:
            try:
                await push(self.state, d)
                done += 1
            except Exception as exc:  # noqa: BLE001 - the decision is recorded; the re-push loop retries
                self.push_errors += 1
                log.warning("push of %s to the shared state failed: %s", d.account_id, exc)
        return done

    async def repush_forever(self) -> None:
        while True:
            await asyncio.sleep(self.repush_s)
            await self.push(list(self.in_force.values()))

    def start(self) -> None:
        if self.state is not None and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self.repush_forever())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.state is not None:
            with contextlib.suppress(Exception):
                await self.state.close()

    def history(self, account_id: str) -> list[AnalystDecision]:
        return list(self._by_account.get(account_id, []))

    def confirmed_by(self, account_id: str) -> set[str]:
        """Analysts whose confirmation of the account is in force (since its last undo or dismissal)."""
        names: set[str] = set()
        for d in self._by_account.get(account_id, []):
            if d.action.startswith("confirm"):
                names.add(d.analyst)
            else:
                names.clear()
        return names

    def campaign_status(self, campaign_id: str) -> dict[str, int]:
        counts: dict[str, int] = defaultdict(int)
        for a in self.data.campaigns.get(campaign_id, {}).get("accounts", []):
            d = self.in_force.get(a)
            counts[d.action if d else "undecided"] += 1
        return dict(counts)

    # ---- cases ----------------------------------------------------------
    def cases(self) -> dict[str, Case]:
        return fold(self.db.case_events())

    def change_case(self, user: User, case_id: str, kind: str, body: dict[str, Any], why: str, ip: str = "") -> str:
        """Append one case event (and its audit entry); ``open`` with an empty id picks the next id."""
        cases = self.cases()
        if kind == "open" and not case_id:
            case_id = next_id(cases)
        check_change(cases, case_id, kind, body)
        self.db.add_case_events([(case_id, user.name, kind, why, body)],
                                [(user.name, user.role, f"case:{kind}", f"case:{case_id}", why, body, ip)])
        return case_id

    def merge_cases(self, user: User, source: str, target: str, why: str, ip: str = "") -> None:
        if not why.strip():
            raise CaseError("say why the cases are merged")
        events = merge_events(self.cases(), source, target, user.name, why)
        self.db.add_case_events(events, [
            (user.name, user.role, "case:merge", f"case:{source}", why, {"into": target}, ip),
            (user.name, user.role, "case:absorb", f"case:{target}", why, {"from": source}, ip)])

    def case_accounts(self, case: Case) -> list[str]:
        accounts = set(case.accounts)
        for c in case.campaigns:
            accounts.update(self.data.campaigns.get(c, {}).get("accounts", []))
        return sorted(accounts)

    def facts(self, case: Case) -> CaseFacts:
        facts = CaseFacts()
        accounts = self.case_accounts(case)
        facts.accounts = len(accounts)
        facts.campaigns = len(case.campaigns)
        for a in accounts:
            facts.confirmed_by |= self.confirmed_by(a)
        covered: set[str] = set()
        weighted: dict[str, float] = defaultdict(float)
        for cid in case.campaigns:
            camp = self.data.campaigns.get(cid)
            if camp is None:
                continue
            covered.update(camp["accounts"])
            facts.exchanges += int(camp.get("exchanges") or 0)
            for cap, share in (camp.get("capabilities") or {}).items():
                weighted[cap] += share * int(camp.get("exchanges") or 0)
            facts.models |= set(camp.get("models") or {})
            facts.corroborating_members |= set(self.data.campaign_intel(cid)["members"])
        loose = [a for a in case.accounts if a not in covered]
        for a in loose:
            row = self.data.account(a)
            if row is None:
                continue
            facts.exchanges += int(row.get("exchanges") or 0)
            facts.models |= {m["model"] for m in row["models"]}
            from distillguard.console.data import _INTEL

            facts.corroborating_members |= set(_INTEL.findall(str(row.get("signals") or "")))
        if facts.exchanges:
            facts.capabilities = {k: v / facts.exchanges for k, v in weighted.items()}
        return facts

    def criteria(self, case: Case) -> tuple[bool, list[Result]]:
        return evaluate(self.escalation, self.facts(case))
