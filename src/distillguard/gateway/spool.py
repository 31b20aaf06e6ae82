"""Gateway exchanges on their way to the store, via a JSON Lines spool that survives a crash.

Each completed exchange is appended to ``current.jsonl`` with one ``write(2)``;
``flush`` rotates the file and ingests the rotated files with the ordinary
ingest pipeline (dedupe on id makes a repeated ingest after a crash harmless),
so batch detection sees gateway traffic with no extra step.

The live proxy ingests in a child process (:meth:`Spool.ingest_in_worker`, one
long-lived worker at idle CPU priority, ``SCHED_IDLE``, that owns the store's dedupe
index): deriving signals and writing Parquet hold the GIL for hundreds of milliseconds,
which in a thread of the proxy stalls the event loop and shows up in every request's
tail latency; at normal priority on the proxy's core it delays the event loop too.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import threading
import time
import uuid
from typing import Any

import orjson

from distillguard.ingest import ingest
from distillguard.store import Store
from distillguard.store.store import Derive

_worker_store: Store | None = None
_worker_derive: Derive | None = None


def _worker_init(root: str, with_signals: bool, parent: int | None = None) -> None:
    global _worker_store, _worker_derive
    from distillguard.gateway.lifeline import tie_to_parent
    from distillguard.gateway.online import idle_priority

    if parent is not None:  # dies with the gateway, even a kill -9'd one (then the resource tracker follows)
        tie_to_parent(parent)

    idle_priority(os.getpid())  # background work: it only gets CPU the proxy's event loop leaves
    _worker_store = Store.open(root)
    if with_signals:
        from distillguard.signals import SIGNALS

        _worker_derive = SIGNALS


def _worker_ingest(spool_dir: str) -> int:
    if _worker_store is None:
        raise RuntimeError("spool worker not initialised")
    return _ingest_files(spool_dir, _worker_store, _worker_derive)


def _ingest_files(spool_dir: str | os.PathLike[str], store: Store, derive: Derive | None) -> int:
    from pathlib import Path

    ready = sorted(Path(spool_dir).glob("ready-*.jsonl"))
    if not ready:
        return 0
    report = ingest(ready, store, fmt="canonical", derive=derive)
    for path in ready:
        path.unlink()
    return report.ingested


class Spool:
    def __init__(self, store: Store, derive: Derive | None = None) -> None:
        self.store = store
        self.derive = derive
        self._executor: concurrent.futures.ProcessPoolExecutor | None = None
        self.dir = store.root / "gateway-spool"
        self.dir.mkdir(parents=True, exist_ok=True)
        self._ingest_lock = threading.Lock()
        self._rotate()  # anything left by a killed process becomes ready to ingest
        self.pending = 0

    def _open(self) -> int:
        return os.open(self.dir / "current.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)

    def _rotate(self) -> None:
        current = self.dir / "current.jsonl"
        if current.exists() and current.stat().st_size:
            os.replace(current, self.dir / f"ready-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}.jsonl")
        self._fd = self._open()

    def append(self, record: dict[str, Any]) -> None:
        os.write(self._fd, orjson.dumps(record) + b"\n")
        self.pending += 1

    def rotate(self) -> None:
        """Close the current file and start a new one (call from the thread that appends)."""
        if self.pending:
            os.close(self._fd)
            self._rotate()
            self.pending = 0

    def ingest_ready(self) -> int:
        """Ingest every rotated file into the store; returns the exchanges stored. Safe in a worker thread."""
        with self._ingest_lock:
            return _ingest_files(self.dir, self.store, self.derive)

    @property
    def can_use_worker(self) -> bool:
        """A worker process can rebuild ``derive`` only when it is the standard signal set (or none)."""
        if self.derive is None:
            return True
        try:
            from distillguard.signals import SIGNALS
        except ImportError:
            return False
        return self.derive is SIGNALS

    def start_worker(self) -> None:
        """Start the ingest worker now (imports take a second of CPU), not on the first flush under load."""
        self.ingest_in_worker().result()

    def ingest_in_worker(self) -> concurrent.futures.Future:
        """Ingest every rotated file in the worker process (started on first use); a future of the count.

        Only one ingest runs at a time (one worker); the worker owns the store's dedupe index from then
        on, so this process must not also ingest while the worker lives (``close`` stops it first).
        """
        if self._executor is None:
            self._executor = concurrent.futures.ProcessPoolExecutor(
                1, mp_context=multiprocessing.get_context("spawn"), initializer=_worker_init,
                initargs=(str(self.store.root), self.derive is not None, os.getpid()))
        return self._executor.submit(_worker_ingest, str(self.dir))

    def flush(self) -> int:
        self.rotate()
        return self.ingest_ready()

    def close(self) -> int:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
            self.store._ids = None  # the worker wrote exchanges this process's index has not seen
        stored = self.flush()
        os.close(self._fd)
        return stored
