"""Append-only audit log of every decision, one JSON line each.

Each line is handed to the kernel with one ``write(2)`` on an ``O_APPEND`` file
*before* the decision takes effect, so killing the process (even ``kill -9``)
loses nothing: the data is already in the page cache. ``fsync`` (against power
loss) is group-committed: ``fsync_ms=0`` syncs on every decision, otherwise a
background thread syncs at most every ``fsync_ms`` milliseconds.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import orjson


class AuditLog:
    def __init__(self, path: str | Path, fsync_ms: float = 50.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        self._fsync_ms = fsync_ms
        self._dirty = threading.Event()
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None
        if fsync_ms > 0:
            self._thread = threading.Thread(target=self._syncer, name="audit-fsync", daemon=True)
            self._thread.start()

    def write(self, entry: dict[str, Any]) -> None:
        """Append one decision; returns once the line is in the kernel (and on disk when ``fsync_ms=0``)."""
        os.write(self._fd, orjson.dumps(entry) + b"\n")
        if self._fsync_ms <= 0:
            os.fsync(self._fd)
        elif not self._dirty.is_set():  # Event.set takes a lock and notifies: once per commit window is enough
            self._dirty.set()

    def _syncer(self) -> None:
        while not self._closed.is_set():
            if self._dirty.wait(0.5):
                self._dirty.clear()
                os.fsync(self._fd)
                self._closed.wait(self._fsync_ms / 1000.0)

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        self._dirty.set()
        if self._thread is not None:
            self._thread.join()
        os.fsync(self._fd)
        os.close(self._fd)


def read_audit(path: str | Path) -> list[dict[str, Any]]:
    """All complete entries (a torn last line from a crash mid-write is skipped)."""
    out = []
    with open(path, "rb") as handle:
        for raw in handle:
            if raw.endswith(b"\n"):
                out.append(orjson.loads(raw))
    return out
