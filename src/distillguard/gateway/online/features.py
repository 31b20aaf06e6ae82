"""Online features, batched: exchanges folded into per-account state in micro-batches and scored when due.

See :mod:`distillguard.gateway.online` for the whole picture.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from distillguard.decide import DEFAULT_POLICY, DecisionPolicy
from distillguard.detect.baselines import Baselines
from distillguard.features.compute import Context
from distillguard.features.state import AccountState, features_many
from distillguard.gateway.online.evidence import EvidenceScorer
from distillguard.gateway.online.links import Links
from distillguard.gateway.online.process import ScorerProcess
from distillguard.gateway.online.store import EvidenceStore
from distillguard.gateway.scoring import NO_ONLINE, BaseOnlineEvidence, BatchRisk, Online
from distillguard.model import COLUMNS, rows_to_table
from distillguard.signals import SIGNALS

log = logging.getLogger("distillguard.gateway")
RESCORE_EVERY = 16
RESCORE_AT = (4, 6, 8, 12, 16, 20, 24, 32)  # early rescoring points (exchanges folded), then every RESCORE_EVERY


class OnlineFeatures(BaseOnlineEvidence):
    """Online evidence: exchanges folded into :class:`AccountState` and scored, inline or in a worker process.

    Inline (``background=False``: replay, tests, embedded use) ``observe`` folds a batch
    synchronously when it is due, on the exchange clock, so a replay is deterministic.
    With ``background=True`` (the live proxy) the very same class runs inline in a child
    process (:class:`ScorerProcess`, idle CPU priority): the request path only writes the
    completed row to a pipe and reads the latest published evidence, so signal derivation,
    feature folding and scoring never hold the proxy's GIL.
    """

    def __init__(self, scorer: EvidenceScorer | None = None, context: Context | None = None,
                 accounts: dict[str, dict[str, Any]] | None = None, batch_rows: int = 128,
                 max_lag_ms: int = 1000, background: bool = False, model: Any = None,
                 keep_evidence: bool = True, policy: DecisionPolicy | None = None) -> None:
        """``scorer`` scores accounts' features (default: the shipped detectors, see :class:`EvidenceScorer`)."""
        self.links = Links()
        self.context = context or Context()
        self.accounts = accounts or {}
        self.batch_rows = batch_rows
        self.max_lag_ms = max_lag_ms
        self.blobs: dict[str, bytes] = {}  # the serialised AccountState per account: all that is kept of it
        self.latest = EvidenceStore()  # latest online evidence per account (accounts with any), packed
        self.keep_evidence = keep_evidence  # a worker process only publishes it to the proxy
        self._pending: list[dict[str, Any]] = []
        self.on_scored: Callable[[dict[str, Online]], None] | None = None
        self._primed: dict[str, dict[str, Any]] = {}
        self.worker: ScorerProcess | None = None
        self.policy = policy or DEFAULT_POLICY
        if background:
            self.scorer = scorer  # built in the worker: the proxy never loads the model
            self.worker = ScorerProcess(self, model)
        else:
            self.scorer = scorer or EvidenceScorer(model, policy)
            self.scorer.set_baselines(Baselines.from_json(self.context.baselines))

    def refresh(self, context: dict[str, Any] | None, batch: BatchRisk | None = None) -> None:
        """New baselines (a batch run's ``context.json``) and flagged accounts from batch detection."""
        if context is not None:
            self.context = Context.from_json(context)
            if self.worker is not None:
                self.worker.send_control(["context", context])
            else:
                self._inline().set_baselines(Baselines.from_json(self.context.baselines))
        if batch is not None:
            self.links.seed(batch, self.accounts)

    def _inline(self) -> EvidenceScorer:
        """The scorer, when this object folds and scores itself (not in the proxy of a worker process)."""
        if self.scorer is None:
            raise RuntimeError("online scoring runs in its worker process: no scorer in the proxy")
        return self.scorer

    def observe(self, exchange_row: dict[str, Any]) -> None:
        if self.worker is not None:
            self.worker.send(exchange_row)
            return
        pending = self._pending
        pending.append(exchange_row)
        if len(pending) >= self.batch_rows or exchange_row["ts"] - pending[0]["ts"] >= self.max_lag_ms:
            self.flush()

    def evidence(self, account_id: str, now_ms: int) -> Online:
        if self.worker is not None:
            self.worker.poll()  # apply what the worker published (raises if it died: the fail mode applies)
        else:
            pending = self._pending
            if pending and now_ms - pending[0]["ts"] >= self.max_lag_ms:
                self.flush()
        own = self.latest.get(account_id) or NO_ONLINE
        if not own.eligible:
            return own
        points, why = self.links.evidence(account_id, self.accounts.get(account_id))
        if points:
            return Online(own.n, own.families, own.reasons, points, why, own.eligible)
        return own

    def prime(self, rows: list[tuple]) -> None:
        """Derive the signals of exchanges about to be observed in one vectorised pass (replay).

        Signals are a pure function of each exchange, so values are identical to
        deriving them batch by batch; only the cost differs (~2 ms for a 1-row batch).
        """
        table = SIGNALS.derive(rows_to_table(rows))
        self._primed.update(zip(table.column("id").to_pylist(), table.to_pylist(), strict=True))

    def state(self, account_id: str) -> AccountState | None:
        """The account's state (inline mode; a worker process keeps its own)."""
        self.flush()
        blob = self.blobs.get(account_id)
        return AccountState.from_bytes(blob) if blob is not None else None

    def flush(self) -> None:
        """Fold everything observed so far (with a worker: and wait until it has published the results)."""
        if self.worker is not None:
            self.worker.flush()
            return
        rows, self._pending = self._pending, []
        if rows:
            self._fold(rows)

    def rescore_all(self) -> None:
        """Score every account's current state now (end of a replay: its final evidence)."""
        self.flush()
        if self.worker is not None or not self.blobs:
            return
        accounts = sorted(self.blobs)
        states = [AccountState.from_bytes(self.blobs[a]) for a in accounts]
        self.publish(dict(zip(accounts, self._inline().many(features_many(states, self.context)), strict=True)))

    def close(self) -> None:
        """Stop the worker process, if any, after it has folded what it was sent."""
        if self.worker is not None:
            self.worker.close()

    def _fold(self, rows: list[dict[str, Any]]) -> None:
        primed = self._primed
        if primed and all(r["id"] in primed for r in rows):
            signals = [primed.pop(r["id"]) for r in rows]
        else:
            signals = SIGNALS.derive(rows_to_table([tuple(r[c] for c in COLUMNS) for r in rows])).to_pylist()
        states: dict[str, tuple[AccountState, int]] = {}  # account -> (state, exchanges before this batch)
        order = sorted(range(len(rows)), key=lambda i: rows[i]["ts"])  # completion order is not arrival order
        for i in order:
            row, sig = rows[i], signals[i]
            account = row["account_id"]
            entry = states.get(account)
            if entry is None:
                blob = self.blobs.get(account)
                state = (AccountState.from_bytes(blob) if blob is not None
                         else AccountState(self.accounts.get(account)))
                entry = states[account] = (state, int(state.sums["n"]))
            state = entry[0]
            if row["ts"] < state.last_ts:  # a long stream finished after later requests: fold it at the last time
                row = {**row, "ts": state.last_ts}
            try:
                state.update(row, sig)
            except (ValueError, TypeError, KeyError):
                log.exception("online features: cannot fold exchange %s", row.get("id"))
        due: list[str] = []
        for account, (state, before) in states.items():
            self.blobs[account] = state.to_bytes()
            if _due(before, int(state.sums["n"])):
                due.append(account)
        if not due:
            return
        features = features_many([states[a][0] for a in due], self.context)
        self.publish(dict(zip(due, self._inline().many(features), strict=True)))

    def publish(self, results: dict[str, Online]) -> None:
        """New evidence: kept for decisions; accounts it alone would restrict flag their payment-linked peers."""
        for account, evidence in results.items():
            if self.keep_evidence:
                if evidence.families:
                    self.latest[account] = evidence
                else:
                    self.latest.discard(account)
            if self.scorer is not None and self.scorer.flags(evidence):
                self.links.flag(account, self.accounts.get(account))
        if self.on_scored is not None:
            self.on_scored(results)


def _due(before: int, after: int) -> bool:
    """Whether a rescoring point (``RESCORE_AT``, then every ``RESCORE_EVERY`` exchanges) lies in (before, after]."""
    if after // RESCORE_EVERY > before // RESCORE_EVERY:
        return True
    return any(before < point <= after for point in RESCORE_AT)
