"""Worker processes that die with the ingest that started them.

``kill -9`` of an ingest gives its children no chance to be told. Without help they would live on: each
worker holds the write end of its own task queue (so it never sees end of file) and the forkserver's
keep-alive pipe (so the forkserver never sees its last client go), ~600 MB between them. So:

* on Linux the kernel sends SIGKILL to a worker when its parent (the forkserver) dies, and to the
  forkserver when the ingest dies (``prctl(PR_SET_PDEATHSIG)``; the forkserver sets it when it imports
  :mod:`distillguard.ingest._forkserver_lifeline`, which only the forkserver preloads);
* everywhere, a watchdog thread in each worker waits for the ingest process to end (a pidfd on Linux,
  polling elsewhere) and exits; once the workers are gone the forkserver sees its last client leave and
  exits by itself, and then multiprocessing's resource tracker.
"""

from __future__ import annotations

import ctypes
import os
import select
import signal
import sys
import threading
import time

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> bool:
    """Ask the kernel to SIGKILL this process when its parent dies (Linux); whether it could."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def watch(pid: int, interval: float = 0.5) -> None:
    """Exit this process (at once, without cleanup) when process ``pid`` ends: a daemon thread."""
    try:
        fd = os.pidfd_open(pid)  # Linux 5.3+: readable once the process has ended (a zombie included)
    except ProcessLookupError:
        os._exit(1)  # already gone
    except (AttributeError, OSError):
        fd = None

    def wait() -> None:
        if fd is not None:
            select.select([fd], [], [])
            os._exit(1)
        parent = os.getppid()
        while True:
            time.sleep(interval)
            if os.getppid() != parent:  # our parent (the forkserver) has gone
                os._exit(1)
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                os._exit(1)
            except PermissionError:
                pass

    threading.Thread(target=wait, name="distillguard-lifeline", daemon=True).start()
