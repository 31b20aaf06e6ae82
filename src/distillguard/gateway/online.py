"""Online per-account evidence with the batch definitions: ``SIGNALS`` per exchange, ``AccountState`` per
account, the batch detectors per account, against the batch run's baselines.

Exchanges are folded in micro-batches: the signal code is vectorised (a 1-row
derive costs ~2 ms, a 128-row batch ~50 us a row), so a batch is flushed when it
fills or its oldest exchange is ``max_lag_ms`` old (on the exchange clock, so
replay behaves exactly like the proxy); decisions see state at most that stale.

Each due account's features (:func:`~distillguard.features.state.features_many`, the batch
``features_from_stats``) are scored by batch detection's own detectors (``Model.record``) against the
deployment's baselines from the last ``detect`` run (``context.json``; the shipped priors before there is
one). The result is :class:`~distillguard.gateway.scoring.Online` evidence: family points, the exchanges
behind them and the reasons; the proxy's :class:`~distillguard.gateway.scoring.FusedScorer` joins it with
batch evidence and intel and calls :func:`distillguard.decide.decide`, the one decision stage. Volume
gates, thresholds and the two-family rule therefore live in ``decide`` alone.
An account is re-scored at ``RESCORE_AT`` exchanges early on (a new account is judged
quickly), then every ``RESCORE_EVERY``; all accounts due in one fold are scored in one
vectorised call, so scoring cost stays flat under load.
State is kept serialised (``AccountState.to_bytes``, lossless: features from it equal
the live state's bit for bit), under 1 KiB per account.

With ``background=True`` (the live proxy) the folding and scoring run in a worker
process (:class:`ScorerProcess`) with this same code, inline; the proxy only ships
completed rows and reads published evidence. Replay folds inline, deterministically.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import select
import subprocess
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import orjson
import xxhash

from distillguard.decide import DEFAULT_POLICY, DecisionPolicy, decide, flagged
from distillguard.detect.baselines import Baselines
from distillguard.detect.evidence import coordination_eligible
from distillguard.features.compute import Context
from distillguard.features.state import AccountState, features_many
from distillguard.gateway.scoring import NO_ONLINE, BaseOnlineEvidence, Online
from distillguard.model import COLUMNS, format_ts, rows_to_table
from distillguard.signals import SIGNALS

log = logging.getLogger("distillguard.gateway")
EvidenceFn = Callable[[list[dict[str, float]]], list[Online]]
RESCORE_EVERY = 16
RESCORE_AT = (4, 6, 8, 12, 16, 20, 24, 32)  # early rescoring points (exchanges folded), then every RESCORE_EVERY
LINK_POINTS = 2.0  # a payment fingerprint shared with a flagged account: one family's worth, never alone


class EvidenceScorer:
    """Batch detection's detectors on online features, many accounts per call (one vectorised pass)."""

    def __init__(self, model: Any = None, policy: DecisionPolicy | None = None) -> None:
        if model is None:
            from distillguard.detect.model import Model

            model = Model.load()
        self.model = model
        self.policy = policy or model.policy

    def set_baselines(self, baselines: Baselines) -> None:
        self.model = self.model.with_baselines(baselines)

    def many(self, features: list[dict[str, float]]) -> list[Online]:
        if not features:
            return []
        columns = {name: np.array([f[name] for f in features]) for name in features[0]}
        evidence = self.model.evidence(columns)
        record = self.model.record(columns, evidence)
        items = {name: finding.points for name, finding in evidence.findings.items()}
        eligible = coordination_eligible(record.families, items)
        out = []
        for i in range(len(features)):
            families = {name: round(float(points[i]), 6) for name, points in record.families.items()
                        if points[i] > 0}
            reasons = tuple(f"online: {words}" for _, words in record.explain(i)) if families else ()
            out.append(Online(float(record.n[i]), families, reasons, eligible=bool(eligible[i])))
        return out

    def flags(self, evidence: Online) -> bool:
        """Whether online evidence alone restricts the account (its payment-linked peers become suspect)."""
        if not evidence.families:
            return False
        record_families = {k: np.array([v]) for k, v in evidence.families.items()}
        from distillguard.decide import Record

        d = decide(Record(np.array([evidence.n]), record_families), self.policy, explain=False)
        return flagged(d.verdicts[0])

    def __call__(self, features: list[dict[str, float]]) -> list[Online]:
        return self.many(features)


class Links:
    """Cheap cross-account evidence: accounts tied to already-flagged accounts or known campaigns.

    Sources: accounts flagged by batch detection (``--detections``: verdict throttle or
    block, campaign membership) and accounts the online evidence alone would restrict. An account
    that shares a payment fingerprint with one of them gets ``LINK_POINTS`` of coordination evidence,
    if it may get cross-account evidence at all (batch attribution's rule,
    ``detect.evidence.coordination_eligible``): as much as one family, so it restricts only together
    with evidence of another family (a card shared inside a company team is not enough).

    Not used: campaigns' template fingerprints (the ``tpl`` signal). Agentic harvesting imitates coding
    agents, so a template is no account link; shared intel compares keyed MinHash over whole prompts instead.
    """

    def __init__(self) -> None:
        self.payments: dict[str, set[str]] = {}  # payment fingerprint -> flagged accounts using it
        self.flagged: set[str] = set()

    def seed(self, batch: Any, accounts: dict[str, dict[str, Any]]) -> None:
        """Accounts batch detection restricts or put in a campaign (accounts.csv)."""
        for account, entry in batch.entries.items():
            if flagged(entry.verdict) or entry.campaign_id:
                self.flag(account, accounts.get(account))

    def flag(self, account: str, record: dict[str, Any] | None) -> None:
        self.flagged.add(account)
        payment = (record or {}).get("payment_fp")
        if payment:
            self.payments.setdefault(str(payment), set()).add(account)

    def evidence(self, account: str, record: dict[str, Any] | None) -> tuple[float, str]:
        payment = (record or {}).get("payment_fp")
        if not payment:
            return 0.0, ""
        payment = str(payment)
        others = self.payments.get(payment, set()) - {account}
        if others:
            return LINK_POINTS, (f"linked: shares a payment fingerprint with {len(others)} flagged account(s) "
                                 f"({min(others)})")
        return 0.0, ""


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
        self.latest: dict[str, Online] = {}  # latest online evidence per account (accounts with any)
        self.counts: dict[str, float] = {}  # exchanges folded per account whose evidence is empty
        self.keep_evidence = keep_evidence  # a worker process only publishes it to the proxy
        self._shared: dict[Any, Any] = {}  # one copy of each reasons tuple
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

    def refresh(self, context: dict[str, Any] | None, batch: Any = None) -> None:
        """New baselines (a batch run's ``context.json``) and flagged accounts from batch detection."""
        if context is not None:
            self.context = Context.from_json(context)
            if self.worker is not None:
                self.worker.send_control(["context", context])
            else:
                self.scorer.set_baselines(Baselines.from_json(self.context.baselines))
        if batch is not None:
            self.links.seed(batch, self.accounts)

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
        own = self.latest.get(account_id, NO_ONLINE)
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
        self.publish(dict(zip(accounts, self.scorer.many(features_many(states, self.context)), strict=True)))

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
        self.publish(dict(zip(due, self.scorer.many(features), strict=True)))

    def publish(self, results: dict[str, Online]) -> None:
        """New evidence: kept for decisions; accounts it alone would restrict flag their payment-linked peers."""
        for account, evidence in results.items():
            if self.keep_evidence:
                if evidence.families:
                    shared = self._shared
                    if len(shared) < MAX_SHARED:
                        evidence = Online(evidence.n, evidence.families,
                                          shared.setdefault(evidence.reasons, evidence.reasons),
                                          eligible=evidence.eligible)
                    self.latest[account] = evidence
                else:
                    self.latest.pop(account, None)
            if self.scorer is not None and self.scorer.flags(evidence):
                self.links.flag(account, self.accounts.get(account))
        if self.on_scored is not None:
            self.on_scored(results)


MAX_SHARED = 100_000
MAX_BACKLOG_BYTES = 64 << 20  # rows buffered for a worker that cannot keep up; beyond this dropped (and audited)
BUFFER_SHED_BYTES = 16 << 20  # beyond this (shed mode sample) the proxy samples unflagged accounts' rows itself
SEND_ROWS, SEND_WAIT_S = 32, 0.02  # rows go to the worker in groups: one write(2) and one wake-up per group
POLL_EVERY_S = 0.005
PUMP_EVERY_S = 0.05  # the gateway hands buffered rows on at least this often, traffic or not


class ScorerProcess:
    """The proxy's side of the online-scoring worker process.

    Rows go to the worker on a non-blocking pipe, ``SEND_ROWS`` or ``SEND_WAIT_S`` worth at a time
    (checked on each send and each decision: one ``write(2)`` and one wake-up of the worker per
    group, not per row), each line ``R<TAB>account<TAB>queued-at ms<TAB>protected<TAB>row JSON``
    with the row's request/response bodies left out (:data:`NOT_SHIPPED`: online signals and
    features never read them). The worker folds them in micro-batches (``WORKER_BATCH_ROWS`` or
    ``WORKER_WAIT_S``, whichever first; up to ``WORKER_MAX_BATCH_ROWS`` when more input is already
    waiting: each account's state is deserialised once per batch, so larger batches cost less per row)
    and sends back the evidence it computed, which :meth:`poll` applies before decisions (one
    non-blocking ``read(2)`` at most every ``POLL_EVERY_S``). The worker runs at idle CPU priority
    (``SCHED_IDLE``), so it only uses CPU the event loop leaves.

    **Load shedding** (``shed`` mode ``sample``, the default): when the worker is more than
    ``SHED_START_MS`` behind (the age of the rows it reads), it stops folding every exchange of
    accounts that show nothing: an account's first ``FOLD_FIRST`` exchanges are always folded (every
    account reaches the early rescoring points), and so is every exchange of an account with an online
    evidence family of ``PROTECT_POINTS`` or more, or flagged by batch detection or a link (*protected*:
    the flags are checked here, the evidence in the worker); beyond that one
    exchange in ``SAMPLE_EVERY`` is folded and the rest are counted per account, not folded. It stops
    below ``SHED_STOP_MS``. When the worker gets no CPU at all (the proxy saturates a shared core) rows pile up
    here: beyond ``BUFFER_SHED_BYTES`` the proxy samples the rows of unflagged accounts itself, one in
    ``SAMPLE_EVERY`` by exchange id, before serialising them. Shedding starts and stops are audit events, and
    every later decision on an account with unfolded exchanges names how many (:meth:`shed_note`). Mode ``off``
    never samples.
    Either way, rows beyond ``MAX_BACKLOG_BYTES`` buffered here are dropped, counted per account and
    audited the same way. If the worker dies, :meth:`poll` raises and the policy's ``fail`` mode decides.
    """

    def __init__(self, owner: OnlineFeatures, model: Any) -> None:
        import pickle
        import sys

        # a plain child interpreter (not multiprocessing): it never re-imports the proxy's __main__
        rx_child, out_fd = os.pipe()
        in_fd, tx_child = os.pipe()
        config = {"scorer": owner.scorer, "model": model, "context": owner.context.to_json(),
                  "accounts": owner.accounts, "batch_rows": owner.batch_rows, "max_lag_ms": owner.max_lag_ms,
                  "policy": owner.policy.to_json()}
        self.process = subprocess.Popen(
            [sys.executable, "-c", "from distillguard.gateway.online import worker_entry; worker_entry()",
             str(rx_child), str(tx_child), str(os.getpid())], stdin=subprocess.PIPE, pass_fds=(rx_child, tx_child))
        idle_priority(self.process.pid)
        os.close(rx_child)
        os.close(tx_child)
        self.process.stdin.write(pickle.dumps(config))
        self.process.stdin.close()
        self.owner = owner
        self._out_fd, self._in_fd = out_fd, in_fd
        os.set_blocking(self._out_fd, False)
        os.set_blocking(self._in_fd, False)
        with contextlib.suppress(OSError, AttributeError):  # room for ~1 s of rows at 1,000/s
            fcntl.fcntl(self._out_fd, fcntl.F_SETPIPE_SZ, 1 << 20)
        self._out = bytearray()
        self._rows = 0  # rows in _out not yet handed to the pipe
        self._oldest = 0.0  # when the oldest of them was buffered
        self._next_read = 0.0  # poll() reads the results pipe at most every POLL_EVERY_S
        self._in = b""
        self._flushed = 0
        self.sent = 0  # rows handed to the worker
        self.dropped = 0  # rows dropped here (buffer full)
        self.dropped_by_account: dict[str, int] = {}
        self.shed_total = 0  # rows not folded by the load policy (in the worker, or here: ``shed_proxy``)
        self.shed_proxy = 0  # rows sampled out here, never shipped, when the buffer itself grows too large
        self.buffer_sampling = False
        self.shed_by_account: dict[str, int] = {}
        self.folded = 0  # rows the worker folded
        self.lag_ms = 0  # age of the rows the worker read last
        self.shedding = False
        self.shed_mode = "sample"
        self.audit: Any = None  # the gateway's AuditLog: shedding and dropping are audited
        self.dead = False

    def set_shed(self, mode: str, start_ms: float | None = None, stop_ms: float | None = None) -> None:
        """Load shedding ``sample`` (default) or ``off``; thresholds in milliseconds behind (tests, tuning)."""
        if mode not in SHED_MODES:
            raise ValueError(f"online shed mode: expected {' or '.join(SHED_MODES)}, got {mode!r}")
        self.shed_mode = mode
        self.send_control(["shed", mode, start_ms, stop_ms])

    def send(self, row: dict[str, Any]) -> None:
        if self.dead:
            return
        account = row["account_id"]
        protected = account in self.owner.links.flagged  # batch verdict, campaign, payment link, online flags
        if len(self._out) > BUFFER_SHED_BYTES and self.shed_mode == "sample":
            # the worker gets no CPU at all (the proxy saturates the core): sample here, before shipping
            if not protected and xxhash.xxh3_64_intdigest(row["id"].encode()) % SAMPLE_EVERY:
                self._shed_here(account)
                return
        elif self.buffer_sampling and len(self._out) < BUFFER_SHED_BYTES // 4:
            self.buffer_sampling = False
            self._audit_event("online_buffer_sampling_stop", "online scoring buffer below "
                              f"{BUFFER_SHED_BYTES >> 22} MiB: every exchange shipped to the scorer again")
        line = b"".join((b"R\t", orjson.dumps(account), b"\t%d\t%d\t" % (time.time() * 1000, protected),
                         orjson.dumps({**row, **_BLANK}), b"\n"))
        if len(self._out) + len(line) > MAX_BACKLOG_BYTES:
            self._drop(account)
            return
        if not self._out:
            self._oldest = time.monotonic()
        self._out += line
        self._rows += 1
        self.sent += 1
        if self._rows >= SEND_ROWS or time.monotonic() - self._oldest >= SEND_WAIT_S:
            self._drain()

    def _shed_here(self, account: str) -> None:
        self.shed_proxy += 1
        self.shed_total += 1
        self.shed_by_account[account] = self.shed_by_account.get(account, 0) + 1
        if not self.buffer_sampling:
            self.buffer_sampling = True
            log.warning("online scorer buffer over %d MiB: sampling exchanges before shipping them",
                        BUFFER_SHED_BYTES >> 20)
            self._audit_event("online_buffer_sampling_start", f"online scoring buffer over {BUFFER_SHED_BYTES >> 20} "
                              f"MiB: exchanges of unflagged accounts sampled 1 in {SAMPLE_EVERY} before shipping")

    def _drop(self, account: str) -> None:
        self.dropped += 1
        self.dropped_by_account[account] = self.dropped_by_account.get(account, 0) + 1
        if self.dropped & (self.dropped - 1) == 0:  # 1, 2, 4, 8, ...: logged and audited, not flooding either
            log.warning("online scorer behind: %d exchanges dropped (buffer of %d MiB full)", self.dropped,
                        MAX_BACKLOG_BYTES >> 20)
            self._audit_event("online_dropped", f"online scoring buffer full: {self.dropped} exchanges dropped "
                                                f"so far (counted per account, named in its decisions)")

    def _audit_event(self, event: str, why: str) -> None:
        if self.audit is None:
            return
        with contextlib.suppress(Exception):
            self.audit.write({"id": f"online-{event}-{time.time_ns()}", "account_id": None,
                              "ts": format_ts(int(time.time() * 1000)), "action": event, "event": event,
                              "reasons": [why], "lag_ms": self.lag_ms, "mode": self.shed_mode, "sent": self.sent,
                              "folded": self.folded, "shed": self.shed_total, "shed_in_proxy": self.shed_proxy,
                              "dropped": self.dropped})

    def shed_note(self, account: str) -> str | None:
        """The reason to add to the account's decisions once some of its exchanges went unfolded under load."""
        shed = self.shed_by_account.get(account, 0)
        dropped = self.dropped_by_account.get(account, 0)
        if not shed and not dropped:
            return None
        return (f"online scoring under load: {shed + dropped} of this account's exchanges not folded "
                f"({shed} shed by sampling, {dropped} dropped)")

    def send_control(self, message: list[Any]) -> None:
        """A control message (new baselines) for the worker, in order with the rows already sent."""
        if self.dead:
            return
        self._out += orjson.dumps(message) + b"\n"
        self._drain()

    def _drain(self) -> None:
        out = self._out
        self._rows = 0
        while out:
            try:
                written = os.write(self._out_fd, out)
            except BlockingIOError:
                return
            except OSError:  # the worker is gone
                self._died()
                return
            del out[:written]

    def pump(self) -> None:
        """Hand buffered rows on and apply published results now (the gateway calls this every ``PUMP_EVERY_S``, so
        rows do not wait in the buffer for the next request when traffic pauses)."""
        if self.dead:
            return
        if self._out:
            self._drain()
        try:
            data = os.read(self._in_fd, 1 << 20)
        except BlockingIOError:
            return
        except OSError:
            self._died()
            return
        if not data:
            self._died()
            return
        self._receive(data)

    def poll(self) -> None:
        """Apply the evidence the worker has published since the last call; raises if the worker died."""
        if self.dead:
            raise RuntimeError("online scorer process exited")
        now = time.monotonic()
        if now < self._next_read:  # results arrive a few times a second: not a read(2) per request
            return
        self._next_read = now + POLL_EVERY_S
        if self._out and (self._rows >= SEND_ROWS or now - self._oldest >= SEND_WAIT_S):
            self._drain()
        try:
            data = os.read(self._in_fd, 1 << 20)
        except BlockingIOError:
            return
        if not data:
            self._died()
            raise RuntimeError("online scorer process exited")
        self._receive(data)

    def _receive(self, data: bytes) -> None:
        lines = (self._in + data).split(b"\n")
        self._in = lines.pop()
        for line in lines:
            message = orjson.loads(line)
            kind = message[0]
            if kind == "scored":
                self.owner.publish({a: Online(n, families, tuple(why)) for a, (n, families, why)
                                    in message[1].items()})
            elif kind == "load":
                self._load(message[1])
            elif kind == "flushed":
                self._flushed += 1

    def _load(self, load: dict[str, Any]) -> None:
        """The worker's progress: rows folded, lag, rows shed per account, shedding started or stopped."""
        self.folded, self.lag_ms = load["folded"], load["lag_ms"]
        shed = self.shed_by_account
        for account, n in load.get("shed", {}).items():
            shed[account] = shed.get(account, 0) + n
            self.shed_total += n
        if load["shedding"] != self.shedding:
            self.shedding = load["shedding"]
            if self.shedding:
                log.warning("online scorer %.1f s behind: shedding load (mode %s)", self.lag_ms / 1000,
                            self.shed_mode)
            self._audit_event("online_shedding_start" if self.shedding else "online_shedding_stop",
                              f"online scorer {self.lag_ms / 1000:.1f} s behind: "
                              + ("exchanges of accounts without evidence sampled 1 in "
                                 f"{SAMPLE_EVERY} after their first {FOLD_FIRST}" if self.shedding
                                 else "every exchange folded again"))

    def flush(self, timeout_s: float = 60.0) -> None:
        """Have the worker fold everything sent so far; returns once its results are applied."""
        if self.dead:
            raise RuntimeError("online scorer process exited")
        self._out += b'"flush"\n'
        target = self._flushed + 1
        deadline = time.monotonic() + timeout_s
        while self._flushed < target:
            self._drain()
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("online scorer did not answer")
            readable, _, _ = select.select([self._in_fd], [self._out_fd] if self._out else [], [], left)
            if readable:
                data = os.read(self._in_fd, 1 << 20)
                if not data:
                    self._died()
                    raise RuntimeError("online scorer process exited")
                self._receive(data)

    def _died(self) -> None:
        if not self.dead:
            self.dead = True
            log.error("online scorer process exited (code %s): online risk unavailable", self.process.poll())

    def close(self, timeout_s: float = 30.0) -> None:
        """End of input: the worker folds the rest, publishes it and exits."""
        if self._out_fd < 0:
            return
        if self.process.poll() is None:
            with contextlib.suppress(RuntimeError, TimeoutError):
                self.flush(timeout_s)
        os.close(self._out_fd)  # EOF: the worker exits
        self._out_fd = -1
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._in_fd)


# columns the proxy does not ship to the worker (set to None): online signals and features never read the raw
# request/response bodies (tests/test_gateway_online_load.py checks that folding gives the same evidence)
NOT_SHIPPED = ("request_json", "response_json", "extra_json")
_BLANK = dict.fromkeys(NOT_SHIPPED)
WORKER_BATCH_ROWS, WORKER_WAIT_S = 512, 0.25  # a worker folds this many rows, or what it has after this long
WORKER_MAX_BATCH_ROWS = 4096  # ... or up to this many when more input is already waiting (catching up)
SHED_MODES = ("sample", "off")
SHED_START_MS, SHED_STOP_MS = 3000.0, 500.0  # shedding starts this far behind, stops below the other
FOLD_FIRST, SAMPLE_EVERY = 32, 8  # while shedding: every account's first exchanges, then 1 in SAMPLE_EVERY
# an account with an online evidence family this strong is never shed (ordinary traffic shows weak points in a
# family or two, e.g. session 0.58 for single-turn API use; harvesting shows 2-3 points in several)
PROTECT_POINTS = 1.0
REPORT_EVERY_S = 1.0  # the worker reports its progress at least this often while it has work


def worker_entry() -> None:
    """``python -c 'from distillguard.gateway.online import worker_entry; worker_entry()' RX_FD TX_FD PARENT``,
    configuration pickled on stdin (written by :class:`ScorerProcess`, the parent). It dies with the parent,
    even a ``kill -9``'d one (:mod:`distillguard.gateway.lifeline`)."""
    import pickle
    import sys

    from distillguard.gateway.lifeline import tie_to_parent

    if len(sys.argv) > 3:
        tie_to_parent(int(sys.argv[3]))
    config = pickle.loads(sys.stdin.buffer.read())
    _worker_main(int(sys.argv[1]), int(sys.argv[2]), config)


class _Shedder:
    """The worker's load-shedding rule (see :class:`ScorerProcess`): fold or count each row as it is read.

    Rows are counted per account only during a shedding episode (memory only under load): each account's
    first ``FOLD_FIRST`` exchanges of an episode are folded, then one in ``SAMPLE_EVERY``.
    """

    def __init__(self) -> None:
        self.mode = "sample"
        self.start_ms, self.stop_ms = SHED_START_MS, SHED_STOP_MS
        self.active = False
        self.lag_ms = 0
        self.ready_ms = int(time.time() * 1000)  # set again once the worker has loaded the model
        self.seen: dict[str, int] = {}  # rows read per account in this episode (capped: small ints, no objects)
        self.shed: dict[str, int] = {}  # rows not folded per account since the last report

    def set_active(self, active: bool) -> None:
        self.active = active
        if not active:
            self.seen.clear()

    def fold(self, account: str, queued_ms: int, protected: bool, now_ms: int) -> bool:
        # how long the row waited for this worker: rows queued while it was starting count from when it was ready
        lag = self.lag_ms = now_ms - max(queued_ms, self.ready_ms)
        if self.active and lag < self.stop_ms:
            self.set_active(False)
        elif not self.active and lag > self.start_ms and self.mode == "sample":
            self.set_active(True)
        if not self.active or protected:
            return True
        seen = self.seen.get(account, 0)
        self.seen[account] = seen + 1 if seen < FOLD_FIRST else FOLD_FIRST + (seen - FOLD_FIRST + 1) % SAMPLE_EVERY
        if seen < FOLD_FIRST or seen == FOLD_FIRST:
            return True
        self.shed[account] = self.shed.get(account, 0) + 1
        return False


def _worker_main(in_fd: int, out_fd: int, config: dict[str, Any]) -> None:
    """The scorer process: the same :class:`OnlineFeatures`, inline, fed from the pipe; it decides when to fold
    (micro-batches, larger ones when catching up) and what to shed under load."""
    idle_priority(os.getpid())  # again, for threads started by imports before the parent set it
    online = OnlineFeatures(scorer=config["scorer"], model=config["model"], accounts=config["accounts"],
                            context=Context.from_json(config["context"]),
                            batch_rows=WORKER_MAX_BATCH_ROWS, keep_evidence=False,
                            max_lag_ms=max(config["max_lag_ms"], int(WORKER_WAIT_S * 1000)),  # the exchange clock
                            policy=DecisionPolicy.from_mapping(config["policy"]))
    wait_s = WORKER_WAIT_S
    min_batch = max(config["batch_rows"], WORKER_BATCH_ROWS)
    shedder = _Shedder()  # created after the model loaded: its ready time is now
    evidence: set[str] = set()  # accounts with an evidence family at PROTECT_POINTS or more: never shed
    folded = 0
    last_report = 0.0

    def write(message: Any) -> None:
        os.write(out_fd, orjson.dumps(message) + b"\n")  # blocking: only the worker waits

    def scored(results: dict[str, Online]) -> None:
        for account, e in results.items():
            if e.families and max(e.families.values()) >= PROTECT_POINTS:
                evidence.add(account)
            else:
                evidence.discard(account)
        write(["scored", {a: [e.n, e.families, list(e.reasons)] for a, e in results.items()}])

    def report() -> None:
        nonlocal last_report
        last_report = time.monotonic()
        shed, shedder.shed = shedder.shed, {}
        write(["load", {"folded": folded, "lag_ms": shedder.lag_ms, "shedding": shedder.active, "shed": shed}])

    def fold() -> None:
        online.flush()
        report()

    def observe(row: dict[str, Any]) -> None:
        nonlocal folded, pending_since
        if not online._pending:
            pending_since = time.monotonic()
        online.observe(row)  # folds by itself when a batch spans max_lag_ms of exchange time, as inline
        folded += 1

    online.on_scored = scored
    buffer = b""
    pending_since = 0.0
    was_active = False
    while True:
        pending = len(online._pending)
        wait = None if not pending else max(0.0, pending_since + wait_s - time.monotonic())
        readable, _, _ = select.select([in_fd], [], [], wait)
        if readable:
            data = os.read(in_fd, 1 << 20)
            if not data:  # the proxy closed the pipe: fold the rest and exit
                fold()
                return
            lines = (buffer + data).split(b"\n")
            buffer = lines.pop()
            now_ms = int(time.time() * 1000)
            for line in lines:
                try:
                    if line.startswith(b"R\t"):
                        _, account, queued, protected, body = line.split(b"\t", 4)
                        account_id = orjson.loads(account)
                        if account_id in evidence or account_id in online.links.flagged:
                            protected = b"1"
                        if shedder.fold(account_id, int(queued), protected == b"1", now_ms):
                            observe(orjson.loads(body))
                    elif line == b'"flush"':
                        fold()
                        write(["flushed"])
                    elif line.startswith(b"["):
                        message = orjson.loads(line)
                        if message[0] == "context":
                            fold()  # evidence so far was scored against the old baselines
                            online.refresh(message[1])
                        elif message[0] == "shed":
                            shedder.mode = message[1]
                            shedder.start_ms = SHED_START_MS if message[2] is None else message[2]
                            shedder.stop_ms = SHED_STOP_MS if message[3] is None else message[3]
                            shedder.set_active(shedder.active and shedder.mode == "sample")
                    elif line:
                        observe(orjson.loads(line))  # a bare row (no queue time, never shed)
                except Exception:  # noqa: BLE001 - one bad row must not stop online scoring
                    log.exception("online scorer: exchange(s) not folded")
            if shedder.active != was_active:  # tell the proxy at once (it audits the change)
                was_active = shedder.active
                report()
            pending = len(online._pending)
            more = bool(select.select([in_fd], [], [], 0)[0])
            if pending < WORKER_MAX_BATCH_ROWS and more and time.monotonic() - pending_since < wait_s:
                continue  # catching up: read on, fold a larger batch (each account's state once)
            if pending >= min_batch or (pending and time.monotonic() - pending_since >= wait_s):
                fold()
            elif shedder.shed and time.monotonic() - last_report >= REPORT_EVERY_S:
                report()
        elif pending:
            fold()


def idle_priority(pid: int) -> None:
    """Every thread of ``pid`` to ``SCHED_IDLE`` (run only when the CPU is otherwise idle; else nice 19).

    Background work of the proxy (online scoring, spool ingest) must never delay the event loop,
    even when pinned to the same core: a waking normal task preempts an idle-policy one at once.
    """
    try:
        tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        tids = [pid]
    for tid in tids:
        try:
            os.sched_setscheduler(tid, os.SCHED_IDLE, os.sched_param(0))
        except (AttributeError, OSError):
            with contextlib.suppress(AttributeError, OSError):
                os.setpriority(os.PRIO_PROCESS, tid, 19)


def _due(before: int, after: int) -> bool:
    """Whether a rescoring point (``RESCORE_AT``, then every ``RESCORE_EVERY`` exchanges) lies in (before, after]."""
    if after // RESCORE_EVERY > before // RESCORE_EVERY:
        return True
    return any(before < point <= after for point in RESCORE_AT)
