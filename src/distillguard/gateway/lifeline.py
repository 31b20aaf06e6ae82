"""The gateway's child processes die with it, even when it is killed with ``kill -9``.

The gateway starts an online scorer, a spool ingest worker (a few hundred MB each) and an audit fsync helper.
``kill -9`` gives it no chance to stop them, so each child looks after itself:

* on Linux it asks the kernel for a signal when its parent dies (``prctl(PR_SET_PDEATHSIG)``; the parent is
  the gateway's main thread, which starts every child: the signal follows the *thread* that forked);
* everywhere, a watchdog thread waits for the gateway process to end (a pidfd on Linux 5.3+, else polling
  ``getppid()`` and ``kill(pid, 0)``) and ends the child.

Either alone would do on Linux; together they also cover a parent that died before the child asked.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import signal
import sys
import threading
import time

_PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = signal.SIGKILL) -> bool:
    """Ask the kernel to send ``sig`` to this process when its parent thread dies (Linux); whether it could."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def watch_parent(parent: int, interval_s: float = 0.5, exit_code: int = 1) -> None:
    """End this process (``os._exit``, no cleanup) once process ``parent`` has ended: a daemon thread."""
    if os.getppid() != parent:  # the parent died before we could ask anything
        os._exit(exit_code)
    fd = None
    with contextlib.suppress(AttributeError, OSError):
        fd = os.pidfd_open(parent)  # readable once the process has ended (a zombie included)

    def wait() -> None:
        if fd is not None:
            select.select([fd], [], [])
            os._exit(exit_code)
        while True:
            time.sleep(interval_s)
            if os.getppid() != parent:
                os._exit(exit_code)
            try:
                os.kill(parent, 0)
            except ProcessLookupError:
                os._exit(exit_code)
            except PermissionError:
                pass

    threading.Thread(target=wait, name="distillguard-lifeline", daemon=True).start()


def tie_to_parent(parent: int, sig: int = signal.SIGKILL) -> None:
    """Both: the kernel's parent-death signal and the watchdog (call first thing in a child)."""
    die_with_parent(sig)
    watch_parent(parent)
