"""How many cores this process may use (one definition for the stages that size their own worker pools)."""

from __future__ import annotations

import os


def usable_cpus() -> int:
    """The cores in this process's affinity mask (a container's or ``taskset``'s limit), at least 1."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1
