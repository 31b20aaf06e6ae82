"""Online per-account behaviour with the batch definitions: ``SIGNALS`` per exchange, ``AccountState`` per account.

Exchanges are folded in micro-batches: the signal code is vectorised (a 1-row
derive costs ~2 ms, a 128-row batch ~50 us a row), so a batch is flushed when it
fills or its oldest exchange is ``max_lag_ms`` old (on the exchange clock, so
replay behaves exactly like the proxy); decisions see state at most that stale.

Scoring is batch detection's own fused model (``distillguard.detect.Model``: supervised
trees, rules, distribution test, calibrated fusion) applied to the accounts' features
(:func:`~distillguard.features.state.features_many`, the batch ``features_from_stats``).
An account is re-scored at ``RESCORE_AT`` exchanges early on (a new account is judged
quickly), then every ``RESCORE_EVERY``; all accounts due in one fold are scored in one
vectorised ``Model.components`` call (10-25 ms for 150 trees whatever the row count), so
scoring cost stays flat under load. Below ``MIN_EXCHANGES`` the risk is capped under
throttle and below ``MIN_EXCHANGES_BLOCK`` under block: a handful of requests is not
evidence enough to restrict a customer, a few dozen not enough to cut one off.
State is kept serialised (``AccountState.to_bytes``, lossless: features from it equal
the live state's bit for bit), under 1 KiB per account.

With ``background=True`` (the live proxy) the folding and scoring run in a worker
process (:class:`ScorerProcess`) with this same code, inline; the proxy only ships
completed rows and reads published risks. Replay folds inline, deterministically.
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

from distillguard.decide import BLOCK, THROTTLE, WATCH
from distillguard.detect.base import Detector
from distillguard.detect.rules import RULES, RulesDetector
from distillguard.features.compute import Context
from distillguard.features.state import AccountState, features_many
from distillguard.model import COLUMNS, rows_to_table
from distillguard.signals import SIGNALS

log = logging.getLogger("distillguard.gateway")
RiskFn = Callable[[dict[str, float]], tuple[float, tuple[str, ...]]]
RESCORE_EVERY = 16
RESCORE_AT = (4, 6, 8, 12, 16, 20, 24, 32)  # early rescoring points (exchanges folded), then every RESCORE_EVERY
MIN_EXCHANGES = 8  # below this the online model may watch an account, not restrict it
# ... unless a strong rule fired (its own count gates already passed, e.g. two verbatim-trace demands): low-and-slow
# accounts send a handful of requests each, and 8 would let most of them go unrestricted
MIN_EXCHANGES_STRONG = 4
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
                 min_exchanges_block: int = MIN_EXCHANGES_BLOCK, min_exchanges_strong: int = MIN_EXCHANGES_STRONG
                 ) -> None:
        if model is None:
            from distillguard.detect.model import Model

            model = Model.load()
        self.model = model
        self.min_exchanges = min_exchanges
        self.min_exchanges_block = min_exchanges_block
        self.min_exchanges_strong = min_exchanges_strong

    def many(self, features: list[dict[str, float]]) -> list[tuple[float, tuple[str, ...]]]:
        if not features:
            return []
        columns = {name: np.array([f[name] for f in features]) for name in features[0]}
        parts = self.model.components(columns)
        risk = self.model.fuse(parts)
        fired = self.model.rules.fired(columns)
        floor = parts.get("floor")
        out = []
        for i, f in enumerate(features):
            value = float(risk[i])
            n = float(np.expm1(f.get("log_n", 0.0)))
            reasons = [_model_reason(value)]
            if value >= WATCH:
                reasons += [f"online: {rule.says(columns, i)}" for rule, hit in zip(RULES, fired[i], strict=True)
                            if hit]
            least = self.min_exchanges_strong if floor is not None and floor[i] > 0 else self.min_exchanges
            if n < least - 0.5 and value >= THROTTLE:
                value = _BELOW_THROTTLE
                reasons.append(f"under {least} exchanges: capped at {value:.2f}")
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
    """Online scoring: exchanges folded into :class:`AccountState` and scored, inline or in a worker process.

    Inline (``background=False``: replay, tests, embedded use) ``observe`` folds a batch
    synchronously when it is due, on the exchange clock, so a replay is deterministic.
    With ``background=True`` (the live proxy) the very same class runs inline in a child
    process (:class:`ScorerProcess`, idle CPU priority): the request path only writes the
    completed row to a pipe and reads the latest published risks, so signal derivation,
    feature folding and model scoring never hold the proxy's GIL.
    """

    def __init__(self, risk_fn: RiskFn | None = None, context: Context | None = None,
                 accounts: dict[str, dict[str, Any]] | None = None, batch_rows: int = 128,
                 max_lag_ms: int = 1000, background: bool = False, model: Any = None,
                 keep_risks: bool = True) -> None:
        """``risk_fn`` scores accounts' features (default: the shipped detection model, see :class:`ModelRisk`)."""
        self.links = Links()
        self.context = context or Context()
        self.accounts = accounts or {}
        self.batch_rows = batch_rows
        self.max_lag_ms = max_lag_ms
        self.blobs: dict[str, bytes] = {}  # the serialised AccountState per account: all that is kept of it
        # latest online risk per account: the bare number when its only reason is the model risk (most accounts)
        self.risks: dict[str, float | tuple[float, tuple[str, ...]]] = {}
        self.keep_risks = keep_risks  # a worker process only publishes them to the proxy
        self._shared: dict[Any, Any] = {}  # one copy of each reason string and reasons tuple
        self._pending: list[dict[str, Any]] = []
        self.on_scored: Callable[[dict[str, tuple[float, tuple[str, ...]]]], None] | None = None
        self._primed: dict[str, dict[str, Any]] = {}
        self.worker: ScorerProcess | None = None
        if background:
            self.risk_fn = risk_fn  # built in the worker: the proxy never loads the model
            self.worker = ScorerProcess(self, risk_fn, model)
        else:
            self.risk_fn = risk_fn or ModelRisk(model)

    def observe(self, exchange_row: dict[str, Any]) -> None:
        if self.worker is not None:
            self.worker.send(exchange_row)
            return
        pending = self._pending
        pending.append(exchange_row)
        if len(pending) >= self.batch_rows or exchange_row["ts"] - pending[0]["ts"] >= self.max_lag_ms:
            self.flush()

    def risk(self, account_id: str, now_ms: int) -> tuple[float, tuple[str, ...]]:
        if self.worker is not None:
            self.worker.poll()  # apply what the worker published (raises if it died: the fail mode applies)
        else:
            pending = self._pending
            if pending and now_ms - pending[0]["ts"] >= self.max_lag_ms:
                self.flush()
        own = self.risks.get(account_id, _NO_RISK)
        if own.__class__ is float:
            own = (own, (_model_reason(own),))
        linked = self.links.risk(account_id, self.accounts.get(account_id))
        return linked if linked[0] > own[0] else own

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
        many = getattr(self.risk_fn, "many", None)
        results = many(features) if many is not None else [self.risk_fn(f) for f in features]
        self.publish(dict(zip(due, results, strict=True)))

    def _compact(self, result: tuple[float, tuple[str, ...]]) -> float | tuple[float, tuple[str, ...]]:
        """The bare risk when its reason is just the model risk; else reasons shared between accounts.

        Reasons repeat across accounts (the same rules, caps, rounded numbers): one copy of each
        string and tuple (up to ``MAX_SHARED``) keeps a flagged account's entry ~100 B, not ~600 B.
        """
        risk, reasons = result
        if len(reasons) == 1 and reasons[0] == _model_reason(risk):
            return risk
        shared = self._shared
        if len(shared) < MAX_SHARED:
            reasons = shared.setdefault(reasons, tuple(shared.setdefault(r, r) for r in reasons))
        return risk, reasons

    def publish(self, results: dict[str, tuple[float, tuple[str, ...]]]) -> None:
        """New risks: kept for decisions, accounts at throttle or above flag their payment-linked peers."""
        for account, result in results.items():
            if self.keep_risks:
                self.risks[account] = self._compact(result)
            if result[0] >= THROTTLE:
                self.links.flag(account, self.accounts.get(account))
        if self.on_scored is not None:
            self.on_scored(results)


_NO_RISK: tuple[float, tuple[str, ...]] = (0.0, ())
MAX_SHARED = 100_000


def _model_reason(risk: float) -> str:
    return f"online model risk {risk:.2f}"
MAX_BACKLOG_BYTES = 64 << 20  # rows buffered for a worker that cannot keep up; beyond this they are dropped
SEND_ROWS, SEND_WAIT_S = 32, 0.02  # rows go to the worker in groups: one write(2) and one wake-up per group
POLL_EVERY_S = 0.005


class ScorerProcess:
    """The proxy's side of the online-scoring worker process.

    Rows go to the worker as JSON lines on a non-blocking pipe, ``SEND_ROWS`` or ``SEND_WAIT_S``
    worth at a time (checked on each send and each decision: one ``write(2)`` and one wake-up
    of the worker per group, not per row); the worker folds them in micro-batches
    (``WORKER_BATCH_ROWS`` or ``WORKER_WAIT_S``, whichever first: each account's state is
    deserialised once per batch, so larger batches cost less per row) and sends
    back the risks it computed, which :meth:`poll` applies before decisions (one
    non-blocking ``read(2)`` at most every ``POLL_EVERY_S``). The worker runs at idle CPU
    priority (``SCHED_IDLE``), so it only uses CPU the event loop leaves; if it cannot keep up its input is buffered
    here (up to ``MAX_BACKLOG_BYTES``, then dropped and logged). If it dies, :meth:`poll`
    raises and the policy's ``fail`` mode decides.
    """

    def __init__(self, owner: OnlineFeatures, risk_fn: RiskFn | None, model: Any) -> None:
        import pickle
        import sys

        # a plain child interpreter (not multiprocessing): it never re-imports the proxy's __main__
        rx_child, out_fd = os.pipe()
        in_fd, tx_child = os.pipe()
        config = {"risk_fn": risk_fn, "model": model, "context": owner.context.to_json(),
                  "accounts": owner.accounts, "batch_rows": owner.batch_rows, "max_lag_ms": owner.max_lag_ms}
        self.process = subprocess.Popen(
            [sys.executable, "-c", "from distillguard.gateway.online import worker_entry; worker_entry()",
             str(rx_child), str(tx_child)], stdin=subprocess.PIPE, pass_fds=(rx_child, tx_child))
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
        self.dropped = 0
        self.dead = False

    def send(self, row: dict[str, Any]) -> None:
        if self.dead:
            return
        line = orjson.dumps(row) + b"\n"
        if len(self._out) + len(line) > MAX_BACKLOG_BYTES:
            self.dropped += 1
            if self.dropped & (self.dropped - 1) == 0:  # 1, 2, 4, 8, ...: logged, not flooding the log
                log.warning("online scorer behind: %d exchanges not folded", self.dropped)
            return
        if not self._out:
            self._oldest = time.monotonic()
        self._out += line
        self._rows += 1
        if self._rows >= SEND_ROWS or time.monotonic() - self._oldest >= SEND_WAIT_S:
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

    def poll(self) -> None:
        """Apply the risks the worker has published since the last call; raises if the worker died."""
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
            if message[0] == "scored":
                self.owner.publish({a: (r, tuple(why)) for a, (r, why) in message[1].items()})
            elif message[0] == "flushed":
                self._flushed += 1

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


WORKER_BATCH_ROWS, WORKER_WAIT_S = 512, 0.25  # a worker folds this many rows, or what it has after this long


def worker_entry() -> None:
    """``python -c 'from distillguard.gateway.online import worker_entry; worker_entry()' RX_FD TX_FD``,
    configuration pickled on stdin (written by :class:`ScorerProcess`, the parent)."""
    import pickle
    import sys

    config = pickle.loads(sys.stdin.buffer.read())
    _worker_main(int(sys.argv[1]), int(sys.argv[2]), config)


def _worker_main(in_fd: int, out_fd: int, config: dict[str, Any]) -> None:
    """The scorer process: the same :class:`OnlineFeatures`, inline, fed from the pipe."""
    idle_priority(os.getpid())  # again, for threads started by imports before the parent set it
    online = OnlineFeatures(risk_fn=config["risk_fn"], model=config["model"], accounts=config["accounts"],
                            context=Context.from_json(config["context"]),
                            batch_rows=max(config["batch_rows"], WORKER_BATCH_ROWS),
                            max_lag_ms=max(config["max_lag_ms"], int(WORKER_WAIT_S * 1000)), keep_risks=False)

    def write(message: Any) -> None:
        os.write(out_fd, orjson.dumps(message) + b"\n")  # blocking: only the worker waits

    online.on_scored = lambda results: write(["scored", results])
    buffer = b""
    pending_since: float | None = None
    while True:
        wait = None if pending_since is None else max(0.0, pending_since + WORKER_WAIT_S - time.monotonic())
        readable, _, _ = select.select([in_fd], [], [], wait)
        if not readable:
            online.flush()
            pending_since = None
            continue
        data = os.read(in_fd, 1 << 20)
        if not data:  # the proxy closed the pipe: fold the rest and exit
            online.flush()
            return
        lines = (buffer + data).split(b"\n")
        buffer = lines.pop()
        for line in lines:
            if line == b'"flush"':
                online.flush()
                pending_since = None
                write(["flushed"])
                continue
            try:
                online.observe(orjson.loads(line))
            except Exception:  # noqa: BLE001 - one bad row must not stop online scoring
                log.exception("online scorer: exchange(s) not folded")
        pending_since = (pending_since or time.monotonic()) if online._pending else None


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
