"""Gateway exchanges on their way to the store, via a JSON Lines spool that survives a crash.

Each completed exchange is appended to ``current.jsonl`` with one ``write(2)``;
``flush`` rotates the file and ingests the rotated files with the ordinary
ingest pipeline (dedupe on id makes a repeated ingest after a crash harmless),
so batch detection sees gateway traffic with no extra step.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from typing import Any

import orjson

from distillguard.ingest import ingest
from distillguard.store import Store
from distillguard.store.store import Derive


class Spool:
    def __init__(self, store: Store, derive: Derive | None = None) -> None:
        self.store = store
        self.derive = derive
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
            ready = sorted(self.dir.glob("ready-*.jsonl"))
            if not ready:
                return 0
            report = ingest(ready, self.store, fmt="canonical", derive=self.derive)
            for path in ready:
                path.unlink()
            return report.ingested

    def flush(self) -> int:
        self.rotate()
        return self.ingest_ready()

    def close(self) -> int:
        stored = self.flush()
        os.close(self._fd)
        return stored
