"""Online per-account behaviour with the batch definitions: ``SIGNALS`` per exchange, ``AccountState`` per account.

Exchanges are folded in micro-batches: the signal code is vectorised (a 1-row
derive costs ~2 ms, a 128-row batch ~50 us a row), so a batch is flushed when it
fills or its oldest exchange is ``max_lag_ms`` old (on the exchange clock, so
replay behaves exactly like the proxy); decisions see state at most that stale.

Scoring is batch detection's own fused model (``distillguard.detect.Model``: supervised
trees, rules, distribution test, calibrated fusion) applied to ``AccountState.features()``.
An account is re-scored at ``RESCORE_AT`` exchanges early on (a new account is judged
quickly), then every ``RESCORE_EVERY``; all accounts due in one fold are scored in one
vectorised ``Model.components`` call (10-25 ms for 150 trees whatever the row count), on
the worker thread in the proxy, so scoring cost stays flat under load and off the event
loop. Below ``MIN_EXCHANGES`` the risk is capped under throttle and below
``MIN_EXCHANGES_BLOCK`` under block: a handful of requests is not evidence enough to
restrict a customer, a few dozen not enough to cut one off.
State is kept serialised (``AccountState.to_bytes``): under 1 KiB per account. The
serialised sums are float32, and the shipped trees split at data values (e.g.
``mean_log_max_tokens <= 13.000176099`` = log2(8193), a constant ``max_tokens=8192``),
so float32 rounding alone can send a benign account down the wrong branch; the
``hot`` most recently active accounts therefore also keep their live (float64)
state, which is what is scored.

With ``background=True`` (the live proxy) batches are folded by a worker thread so
a flush never stalls the event loop; replay folds them inline, deterministically.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np

from distillguard.decide import BLOCK, THROTTLE, WATCH
from distillguard.detect.base import Detector
from distillguard.detect.rules import RULES, RulesDetector
from distillguard.features.compute import Context
from distillguard.features.state import AccountState
from distillguard.model import COLUMNS, rows_to_table
from distillguard.signals import SIGNALS

log = logging.getLogger("distillguard.gateway")
RiskFn = Callable[[dict[str, float]], tuple[float, tuple[str, ...]]]
RESCORE_EVERY = 16
RESCORE_AT = (4, 8, 12, 16, 20, 24, 32)  # early rescoring points (exchanges folded), then every RESCORE_EVERY
MIN_EXCHANGES = 8  # below this the online model may watch an account, not restrict it
MIN_EXCHANGES_BLOCK = 32  # below this it may throttle, not block (a blocked customer cannot show it was wrong)
_BELOW_THROTTLE = round(THROTTLE - 0.01, 4)
_BELOW_BLOCK = round(BLOCK - 0.01, 4)


def detector_risk(detector: Detector | None = None) -> RiskFn:
    """Risk of one account's features from a batch detector (the interpretable rules by default)."""
    detector = detector or RulesDetector()

    def risk(features: dict[str, float]) -> tuple[float, tuple[str, ...]]:
        columns = {name: np.array([value]) for name, value in features.items()}
        value = float(detector.score(columns)[0])
        if value <= 0:
            return 0.0, ()
        return value, tuple(f"online: {why}" for _, why in detector.explain(columns, 0))

    return risk


class ModelRisk:
    """Batch detection's fused model on online features: many accounts per call (one vectorised pass)."""

    def __init__(self, model: Any = None, min_exchanges: int = MIN_EXCHANGES,
                 min_exchanges_block: int = MIN_EXCHANGES_BLOCK) -> None:
        if model is None:
            from distillguard.detect.model import Model

            model = Model.load()
        self.model = model
        self.min_exchanges = min_exchanges
        self.min_exchanges_block = min_exchanges_block

    def many(self, features: list[dict[str, float]]) -> list[tuple[float, tuple[str, ...]]]:
        if not features:
            return []
        columns = {name: np.array([f[name] for f in features]) for name in features[0]}
        parts = self.model.components(columns)
        risk = self.model.fuse(parts)
        fired = self.model.rules.fired(columns)
        out = []
        for i, f in enumerate(features):
            value = float(risk[i])
            n = float(np.expm1(f.get("log_n", 0.0)))
            reasons = [f"online model risk {value:.2f}"]
            if value >= WATCH:
                reasons += [f"online: {rule.says(columns, i)}" for rule, hit in zip(RULES, fired[i], strict=True)
                            if hit]
            if n < self.min_exchanges - 0.5 and value >= THROTTLE:
                value = _BELOW_THROTTLE
                reasons.append(f"under {self.min_exchanges} exchanges: capped at {value:.2f}")
            elif n < self.min_exchanges_block - 0.5 and value >= BLOCK:
                value = _BELOW_BLOCK
                reasons.append(f"under {self.min_exchanges_block} exchanges: capped at {value:.2f}")
            out.append((round(value, 4), tuple(reasons)))
        return out

    def __call__(self, features: dict[str, float]) -> tuple[float, tuple[str, ...]]:
        return self.many([features])[0]


LINK_RISK = THROTTLE  # cross-account evidence alone throttles, never blocks


class Links:
    """Cheap cross-account evidence: accounts tied to already-flagged accounts or known campaigns.

    Sources: accounts flagged by batch detection (``--detections``: verdict throttle or
    block, campaign membership), campaigns' payment fingerprints (``campaigns.json``),
    and accounts the online model itself put at throttle or above. An account that
    shares a payment fingerprint with one of them gets ``LINK_RISK``: enough to
    throttle, never to block (a card shared inside a company team).

    Not used: campaigns' template fingerprints (the ``tpl`` signal). Replaying
    ``simulate --scale small --seed 11`` days 15-28 with detections of days 1-14, 10
    benign coding agents matched a hydra campaign's templates on 3-4 of their first
    requests (agentic harvesting imitates coding agents), so a template is no
    account link; shared intel compares keyed MinHash over whole prompts instead.
    """

    def __init__(self) -> None:
        self.payments: dict[str, set[str]] = {}  # payment fingerprint -> flagged accounts using it
        self.payment_campaigns: dict[str, str] = {}  # payment fingerprint -> campaign id (from campaigns.json)
        self.flagged: set[str] = set()

    def seed(self, detections: Any) -> None:
        """Flagged accounts and campaign identifiers from batch detection (accounts.csv + campaigns.json)."""
        import orjson

        from distillguard.decide import flagged as is_flagged

        batch = detections
        campaigns = batch.path.parent / "campaigns.json"
        for account, entry in batch.entries.items():
            if is_flagged(entry.verdict) or entry.campaign_id:
                self.flagged.add(account)
        if campaigns.exists():
            try:
                doc = orjson.loads(campaigns.read_bytes())
            except orjson.JSONDecodeError:
                log.warning("%s: not JSON, campaign identifiers not loaded", campaigns)
                return
            for camp in doc.get("campaigns", []):
                cid = str(camp.get("id", "campaign"))
                for fp in (camp.get("identifiers") or {}).get("payment_fps", []):
                    self.payment_campaigns[str(fp)] = cid

    def flag(self, account: str, record: dict[str, Any] | None) -> None:
        self.flagged.add(account)
        payment = (record or {}).get("payment_fp")
        if payment:
            self.payments.setdefault(str(payment), set()).add(account)

    def risk(self, account: str, record: dict[str, Any] | None) -> tuple[float, tuple[str, ...]]:
        reasons = []
        payment = (record or {}).get("payment_fp")
        if payment:
            payment = str(payment)
            others = self.payments.get(payment, set()) - {account}
            if others:
                reasons.append(f"linked: shares a payment fingerprint with {len(others)} flagged account(s) "
                               f"({min(others)})")
            elif payment in self.payment_campaigns:
                reasons.append(f"linked: payment fingerprint of {self.payment_campaigns[payment]}")
        if not reasons:
            return 0.0, ()
        return LINK_RISK, (*reasons, f"cross-account evidence only: at most {LINK_RISK:.2f}")


class OnlineFeatures:
    def __init__(self, risk_fn: RiskFn | None = None, context: Context | None = None,
                 accounts: dict[str, dict[str, Any]] | None = None, batch_rows: int = 128,
                 max_lag_ms: int = 1000, background: bool = False, model: Any = None, hot: int = 8192) -> None:
        """``risk_fn`` scores one account's features (default: the shipped detection model, see :class:`ModelRisk`)."""
        self.risk_fn = risk_fn or ModelRisk(model)
        self.links = Links()
        self.context = context or Context()
        self.accounts = accounts or {}
        self.batch_rows = batch_rows
        self.max_lag_ms = max_lag_ms
        self.blobs: dict[str, bytes] = {}
        self.hot = hot
        self._live: OrderedDict[str, AccountState] = OrderedDict()  # float64 state of recently active accounts
        self.counts: dict[str, int] = {}  # exchanges folded per account (drives the rescoring schedule)
        self.risks: dict[str, tuple[float, tuple[str, ...]]] = {}
        self._pending: list[dict[str, Any]] = []
        self.on_scored: Callable[[dict[str, tuple[float, tuple[str, ...]]]], None] | None = None
        self._primed: dict[str, dict[str, Any]] = {}
        self._swap = threading.Lock()
        self._fold_lock = threading.Lock()
        self._wake: threading.Event | None = None
        if background:
            self._wake = threading.Event()
            threading.Thread(target=self._worker, name="online-features", daemon=True).start()

    def observe(self, exchange_row: dict[str, Any]) -> None:
        with self._swap:
            pending = self._pending
            pending.append(exchange_row)
        if len(pending) >= self.batch_rows or exchange_row["ts"] - pending[0]["ts"] >= self.max_lag_ms:
            self._due_flush()

    def risk(self, account_id: str, now_ms: int) -> tuple[float, tuple[str, ...]]:
        pending = self._pending
        if pending and now_ms - pending[0]["ts"] >= self.max_lag_ms:
            self._due_flush()
        own = self.risks.get(account_id, (0.0, ()))
        linked = self.links.risk(account_id, self.accounts.get(account_id))
        return linked if linked[0] > own[0] else own

    def prime(self, rows: list[tuple]) -> None:
        """Derive the signals of exchanges about to be observed in one vectorised pass (replay).

        Signals are a pure function of each exchange, so values are identical to
        deriving them batch by batch; only the cost differs (~2 ms for a 1-row batch).
        """
        table = SIGNALS.derive(rows_to_table(rows))
        self._primed.update(zip(table.column("id").to_pylist(), table.to_pylist(), strict=True))

    def _due_flush(self) -> None:
        if self._wake is not None:
            self._wake.set()
        else:
            self.flush()

    def _worker(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            try:
                self.flush()
            except Exception:  # noqa: BLE001 - the worker must outlive one bad batch
                log.exception("online features: batch dropped")

    def state(self, account_id: str) -> AccountState | None:
        self.flush()
        blob = self.blobs.get(account_id)
        return AccountState.from_bytes(blob) if blob is not None else None

    def flush(self) -> None:
        with self._fold_lock:  # one fold at a time, in arrival order
            with self._swap:  # held only to swap the list: observe() never waits for a fold
                rows, self._pending = self._pending, []
            if rows:
                self._fold(rows)

    def _fold(self, rows: list[dict[str, Any]]) -> None:
        primed = self._primed
        if primed and all(r["id"] in primed for r in rows):
            signals = [primed.pop(r["id"]) for r in rows]
        else:
            signals = SIGNALS.derive(rows_to_table([tuple(r[c] for c in COLUMNS) for r in rows])).to_pylist()
        states: dict[str, AccountState] = {}
        added: dict[str, int] = {}
        order = sorted(range(len(rows)), key=lambda i: rows[i]["ts"])  # completion order is not arrival order
        for i in order:
            row, sig = rows[i], signals[i]
            account = row["account_id"]
            state = states.get(account)
            if state is None:
                state = self._live.pop(account, None)
                if state is None:
                    blob = self.blobs.get(account)
                    state = (AccountState.from_bytes(blob) if blob is not None
                             else AccountState(self.accounts.get(account)))
                states[account] = state
            if row["ts"] < state.last_ts:  # a long stream finished after later requests: fold it at the last time
                row = {**row, "ts": state.last_ts}
            try:
                state.update(row, sig)
            except (ValueError, TypeError, KeyError):
                log.exception("online features: cannot fold exchange %s", row.get("id"))
                continue
            added[account] = added.get(account, 0) + 1
        due: list[str] = []
        for account, state in states.items():
            before = self.counts.get(account, 0)
            after = self.counts[account] = before + added.get(account, 0)
            self.blobs[account] = state.to_bytes()
            if self.hot > 0:
                self._live[account] = state
            if _due(before, after):
                due.append(account)
        while len(self._live) > self.hot:
            self._live.popitem(last=False)
        if not due:
            return
        features = [states[a].features(self.context) for a in due]
        many = getattr(self.risk_fn, "many", None)
        results = many(features) if many is not None else [self.risk_fn(f) for f in features]
        for account, result in zip(due, results, strict=True):
            self.risks[account] = result
            if result[0] >= THROTTLE:
                self.links.flag(account, self.accounts.get(account))
        if self.on_scored is not None:
            self.on_scored(dict(zip(due, results, strict=True)))


def _due(before: int, after: int) -> bool:
    """Whether a rescoring point (``RESCORE_AT``, then every ``RESCORE_EVERY`` exchanges) lies in (before, after]."""
    if after // RESCORE_EVERY > before // RESCORE_EVERY:
        return True
    return any(before < point <= after for point in RESCORE_AT)
