"""The online-scoring worker process: the same :class:`OnlineFeatures`, inline, fed from the proxy's pipe; it
schedules the folds (micro-batches, larger ones when catching up) and sheds load by :mod:`.shedding`."""

from __future__ import annotations

import logging
import os
import select
import time
from typing import Any

import orjson

from distillguard.decide import DecisionPolicy
from distillguard.features.compute import Context
from distillguard.gateway.online.features import OnlineFeatures
from distillguard.gateway.online.process import idle_priority
from distillguard.gateway.online.shedding import PROTECT_POINTS, SHED_START_MS, SHED_STOP_MS, _Shedder
from distillguard.gateway.scoring import Online

log = logging.getLogger("distillguard.gateway")
WORKER_BATCH_ROWS, WORKER_WAIT_S = 512, 0.25  # a worker folds this many rows, or what it has after this long
WORKER_MAX_BATCH_ROWS = 4096  # ... or up to this many when more input is already waiting (catching up)
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
    pending_since = 0.0  # when the oldest row not yet folded was read

    def write(message: Any) -> None:
        os.write(out_fd, orjson.dumps(message) + b"\n")  # blocking: only the worker waits

    def scored(results: dict[str, Online]) -> None:
        for account, e in results.items():
            if e.families and max(e.families.values()) >= PROTECT_POINTS:
                evidence.add(account)
            else:
                evidence.discard(account)
        write(["scored", {a: [e.n, e.families, list(e.reasons), e.eligible] for a, e in results.items()}])

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
