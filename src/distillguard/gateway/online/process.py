"""The proxy's side of the online-scoring worker process: rows out on a pipe, evidence back (IPC)."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import select
import subprocess
import time
from typing import TYPE_CHECKING, Any

import orjson
import xxhash

from distillguard.gateway.online.shedding import FOLD_FIRST, SAMPLE_EVERY, SHED_MODES
from distillguard.gateway.scoring import Online
from distillguard.model import format_ts

if TYPE_CHECKING:
    from distillguard.gateway.audit import AuditLog
    from distillguard.gateway.online.features import OnlineFeatures

log = logging.getLogger("distillguard.gateway")
MAX_BACKLOG_BYTES = 64 << 20  # rows buffered for a worker that cannot keep up; beyond this dropped (and audited)
BUFFER_SHED_BYTES = 16 << 20  # beyond this (shed mode sample) the proxy samples unflagged accounts' rows itself
SEND_ROWS, SEND_WAIT_S = 32, 0.02  # rows go to the worker in groups: one write(2) and one wake-up per group
POLL_EVERY_S = 0.005
PUMP_EVERY_S = 0.05  # the gateway hands buffered rows on at least this often, traffic or not

# columns the proxy does not ship to the worker (set to None): online signals and features never read the raw
# request/response bodies (tests/test_gateway_online_load.py checks that folding gives the same evidence)
NOT_SHIPPED = ("request_json", "response_json", "extra_json")
_BLANK = dict.fromkeys(NOT_SHIPPED)


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
        stdin = self.process.stdin
        assert stdin is not None  # stdin=PIPE
        stdin.write(pickle.dumps(config))
        stdin.close()
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
        self.audit: AuditLog | None = None  # the gateway's: shedding and dropping are audited
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
                self.owner.publish({a: Online(n, families, tuple(why), eligible=bool(eligible))
                                    for a, (n, families, why, eligible) in message[1].items()})
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
