"""Backtest a policy: recorded exchanges through the live decision path, on recorded time.

Exchanges are sorted by timestamp (stable, so ties keep file order) and each one
goes through :meth:`Engine.decide` with the request only, then
:meth:`Engine.complete` with the full exchange, exactly as the proxy does. The
clock is the recorded ``ts``, so budgets and online state evolve as they would
have. Output: ``decisions.csv`` (one row per exchange) and ``accounts.csv``
(one row per account, with the ``final_risk`` and ``final_verdict`` decided on everything the account
sent: on the same traffic, batch detection's verdict). With a resistance profile, ``decisions.csv`` also has what
each exchange would have been served with (:data:`RESISTANCE_HEADER`: antidistillation strength, watermark key id,
trace defence; empty for refused exchanges).
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distillguard.gateway.actions import Flow
from distillguard.gateway.engine import Decision, Engine
from distillguard.gateway.records import RESPONSE_COLUMNS
from distillguard.gateway.resistance import Resistance
from distillguard.ingest import FORMATS, expand_paths
from distillguard.model import COLUMNS, FieldError, flatten, format_ts
from distillguard.resist.profile import ResistanceProfile

DECISION_HEADER = ("id", "account_id", "ts", "action", "reasons", "risk", "tier", "enforced", "limited", "status",
                   "campaign_id")
RESISTANCE_HEADER = ("antidistillation", "watermark_key", "reasoning")  # with a resistance profile
ACCOUNT_HEADER = ("account_id", "exchanges", "allow", "perturb", "throttle", "block", "limited", "refused",
                  "max_risk", "first_restricted", "final_tier", "final_risk", "final_verdict")
PRIME_ROWS = 50_000  # exchanges whose signals are derived in one vectorised pass
_RESPONSE_DEFAULTS = {"response_chars": 0, "reasoning_chars": 0, "n_tool_calls": 0}


def request_view(row: dict[str, Any]) -> dict[str, Any]:
    """The row as the proxy has it before the upstream answers."""
    view = dict(row)
    for name in RESPONSE_COLUMNS:  # blanked for the pre-call decision, as the live proxy sees it
        view[name] = _RESPONSE_DEFAULTS.get(name)
    return view


@dataclass
class AccountSummary:
    exchanges: int = 0
    actions: dict[str, int] = field(default_factory=lambda: {"allow": 0, "perturb": 0, "throttle": 0, "block": 0})
    limited: int = 0
    refused: int = 0
    max_risk: float = 0.0
    first_restricted: int | None = None  # 1-based request number of the first throttle or block
    final_tier: str = ""

    def add(self, decision: Decision) -> None:
        self.exchanges += 1
        self.actions[decision.action] = self.actions.get(decision.action, 0) + 1
        self.limited += decision.limited
        self.refused += decision.status is not None
        self.max_risk = max(self.max_risk, decision.risk)
        if self.first_restricted is None and decision.action in ("throttle", "block"):
            self.first_restricted = self.exchanges
        self.final_tier = decision.tier


@dataclass
class ReplayReport:
    exchanges: int = 0
    bad_lines: int = 0
    errors: list[str] = field(default_factory=list)
    accounts: dict[str, AccountSummary] = field(default_factory=dict)
    # with a resistance profile: exchanges served with antidistillation, a watermark, a trace defence
    resistance: dict[str, int] = field(default_factory=dict)


def load_rows(paths: Sequence[str | Path], report: ReplayReport) -> list[tuple]:
    """Validated rows of canonical logs; bad lines are counted and located (file:line: field: reason)."""
    rows = []
    for line in FORMATS["canonical"]().read(expand_paths(paths)):
        try:
            if line.error is not None:
                field_name, _, reason = line.error.partition(": ")
                raise FieldError(field_name, reason) if reason else FieldError("<record>", line.error)
            rows.append(flatten(line.record))
        except FieldError as exc:
            report.bad_lines += 1
            if len(report.errors) < 20:
                report.errors.append(f"{line.source}:{line.line}: {exc.field}: {exc.reason}")
    ts_index = COLUMNS.index("ts")
    rows.sort(key=lambda r: r[ts_index])
    return rows


class PeriodicDetection:
    """Batch detection run alongside the replayed gateway, as a deployment runs it on the gateway's spool.

    Every ``every_ms`` of recorded time, the exchanges replayed so far are added to a scratch store and
    ``distillguard detect`` runs on it; the gateway then scores with that run's evidence (coordination found by
    attribution included) and baselines, exactly as ``gateway --detections`` does with a periodic batch job.
    Only the past is used: a run at time t sees exchanges before t.
    """

    def __init__(self, every_ms: int, work: Path, accounts: Path | None = None, model: Any = None,
                 decisions: Any = None) -> None:
        from distillguard.signals import SIGNALS
        from distillguard.store import Store

        self.every_ms = every_ms
        self.work = Path(work)
        self.store = Store.open(self.work / "store")
        self.derive = SIGNALS
        self.model = model
        self.decisions = decisions
        self.runs = 0
        self._pending: list[tuple] = []
        self._next: int | None = None
        if accounts is not None:
            from distillguard.ingest.pipeline import ingest

            ingest([], self.store, accounts=accounts)

    def add(self, values: tuple, ts_ms: int) -> Path | None:
        """Record a replayed exchange; returns a new detections directory when a run is due."""
        if self._next is None:
            self._next = ts_ms + self.every_ms
        ran = None
        if ts_ms >= self._next and self._pending:
            ran = self.run()
            while self._next <= ts_ms:
                self._next += self.every_ms
        self._pending.append(values)
        return ran

    def run(self) -> Path:
        from distillguard.model import rows_to_table
        from distillguard.pipeline import run_detection

        self.store.write_exchanges([rows_to_table(self._pending)], derive=self.derive)
        self._pending = []
        self.runs += 1
        out = self.work / f"detect-{self.runs:04d}"
        run_detection(self.store, out, model=self.model, decisions=self.decisions)
        return out


def _served(resistance: Resistance, engine: Engine, decision: Decision, report: ReplayReport) -> tuple:
    """The resistance columns of one decision (empty when it is refused), counted in ``report``."""
    if decision.enforced and decision.status is not None:
        return "", "", ""
    flow = Flow(request={})
    resistance.prepare(decision, flow)
    action = engine.action_for(decision)
    record: dict[str, Any] = {}
    directive = resistance.on_request(decision, {}, {}, record, action.reasoning(decision, flow))
    reasoning = record["resistance"]["reasoning"]
    for name, on in (("antidistillation", directive.antidistillation > 0),
                     ("watermark", directive.watermark_key is not None), ("reasoning", reasoning != "keep")):
        report.resistance[name] = report.resistance.get(name, 0) + on
    return f"{directive.antidistillation:g}", directive.watermark_key or "", reasoning


async def replay(paths: Sequence[str | Path], engine: Engine, out: str | Path,
                 on_progress: Callable[[int], None] | None = None,
                 detect: PeriodicDetection | None = None, resistance: ResistanceProfile | None = None) -> ReplayReport:
    report = ReplayReport()
    rows = load_rows(paths, report)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    served = Resistance(resistance, engine.policy) if resistance is not None else None
    with open(out / "decisions.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(DECISION_HEADER + (RESISTANCE_HEADER if served is not None else ()))
        for i, values in enumerate(rows, 1):
            if (i - 1) % PRIME_ROWS == 0:
                engine.scorer.prime(rows[i - 1:i - 1 + PRIME_ROWS])
            row = dict(zip(COLUMNS, values, strict=True))
            if detect is not None:
                ran = detect.add(values, row["ts"])
                if ran is not None:
                    engine.scorer.use_detections(ran)
            decision = await engine.decide(row["id"], row["account_id"], row["org_id"], request_view(row), row["ts"])
            await engine.complete(decision, row)
            writer.writerow((decision.id, decision.account_id, format_ts(decision.ts_ms), decision.action,
                             "; ".join(decision.reasons), decision.risk, decision.tier, int(decision.enforced),
                             int(decision.limited), decision.status or "", decision.campaign_id or "")
                            + (_served(served, engine, decision, report) if served is not None else ()))
            report.accounts.setdefault(decision.account_id, AccountSummary()).add(decision)
            report.exchanges += 1
            if on_progress and i % 1000 == 0:
                on_progress(i)
    engine.scorer.finish()
    last_ms = int(rows[-1][COLUMNS.index("ts")]) if rows else 0
    with open(out / "accounts.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(ACCOUNT_HEADER)
        for account, s in sorted(report.accounts.items()):
            end = engine.scorer.final(account, last_ms)
            writer.writerow((account, s.exchanges, s.actions["allow"], s.actions["perturb"], s.actions["throttle"],
                             s.actions["block"], s.limited, s.refused, round(s.max_risk, 4),
                             s.first_restricted or "", s.final_tier, "" if end is None else end.risk,
                             "" if end is None else end.verdict))
    return report
