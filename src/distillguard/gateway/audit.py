"""Append-only audit log of every decision, one JSON line each.

Each line is handed to the kernel with one ``write(2)`` on an ``O_APPEND`` file
*before* the decision takes effect, so killing the process (even ``kill -9``)
loses nothing: the data is already in the page cache. ``fsync`` (against power
loss) is group-committed: ``fsync_ms=0`` syncs on every decision, otherwise a
small syncer *process* fsyncs the file whenever it has grown, at most every
``fsync_ms`` milliseconds (``fsync`` flushes the file, whichever descriptor wrote
it). A process, not a thread: a thread's wake-ups take the proxy's GIL, and each
hand-over waits for the scheduler, which on a busy core adds to the tail latency.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson


class AuditLog:
    def __init__(self, path: str | Path, fsync_ms: float = 50.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        self._fsync_ms = fsync_ms
        self._syncer: subprocess.Popen | None = None
        if fsync_ms > 0:
            self._syncer = subprocess.Popen(
                [sys.executable, "-c", "from distillguard.gateway.audit import syncer_main; syncer_main()",
                 str(self.path), str(fsync_ms), str(os.getpid())], stdin=subprocess.DEVNULL)

    def write(self, entry: dict[str, Any]) -> None:
        """Append one decision; returns once the line is in the kernel (and on disk when ``fsync_ms=0``)."""
        os.write(self._fd, orjson.dumps(entry) + b"\n")
        if self._fsync_ms <= 0:
            os.fsync(self._fd)

    def close(self) -> None:
        if self._fd < 0:
            return
        if self._syncer is not None:
            self._syncer.terminate()
            self._syncer.wait()
            self._syncer = None
        os.fsync(self._fd)
        os.close(self._fd)
        self._fd = -1


def syncer_main() -> None:
    """``python -c '...syncer_main()' PATH FSYNC_MS PARENT_PID``: fsync PATH when it grew, until the parent is gone."""
    path, period, parent = sys.argv[1], float(sys.argv[2]) / 1000.0, int(sys.argv[3])
    from distillguard.gateway.lifeline import die_with_parent

    def stop(signum: int, frame: object) -> None:
        raise SystemExit(0)  # through ``finally``: one last fsync

    signal.signal(signal.SIGTERM, stop)
    die_with_parent(signal.SIGTERM)  # a kill -9'd proxy: the kernel tells us (the loop below checks too)
    if os.getppid() != parent:
        return
    fd = os.open(path, os.O_RDONLY)
    synced = -1
    try:
        while True:
            size = os.fstat(fd).st_size
            if size != synced:
                os.fsync(fd)
                synced = size
            if os.getppid() != parent:  # the proxy died (even kill -9): one last sync above, then stop
                return
            time.sleep(period)
    except KeyboardInterrupt:
        return
    finally:
        os.fsync(fd)
        os.close(fd)


def read_audit(path: str | Path) -> list[dict[str, Any]]:
    """All complete entries (a torn last line from a crash mid-write is skipped)."""
    out = []
    with open(path, "rb") as handle:
        for raw in handle:
            if raw.endswith(b"\n"):
                out.append(orjson.loads(raw))
    return out
