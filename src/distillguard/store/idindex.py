"""A compact set of 64-bit id hashes for dedupe at 16M+ exchanges.

A Python ``set`` of 16M ids costs over a gigabyte; this keeps sorted ``uint64``
runs (8 bytes per id) merged geometrically like an LSM tree, so a membership
test is a few binary searches and memory stays at 8 bytes per stored exchange.
A 64-bit collision (p ~ 1e-5 at 16M ids) would count a new exchange as a
duplicate; it is counted, never silently lost.
"""

from __future__ import annotations

import numpy as np


class IdIndex:
    def __init__(self) -> None:
        self._runs: list[np.ndarray] = []

    def __len__(self) -> int:
        return sum(len(run) for run in self._runs)

    def contains(self, hashes: np.ndarray) -> np.ndarray:
        found = np.zeros(len(hashes), dtype=bool)
        for run in self._runs:
            pos = np.searchsorted(run, hashes)
            pos[pos == len(run)] = 0
            found |= run[pos] == hashes if len(run) else False
        return found

    def add(self, hashes: np.ndarray) -> None:
        run = np.unique(np.asarray(hashes, dtype=np.uint64))
        if len(run) == 0:
            return
        self._runs.append(run)
        # merge while the newest run is at least half the size of the one before it
        while len(self._runs) > 1 and len(self._runs[-1]) * 2 >= len(self._runs[-2]):
            top = self._runs.pop()
            self._runs[-1] = np.union1d(self._runs[-1], top)

    def claim(self, hashes: np.ndarray) -> np.ndarray:
        """Mark ``hashes`` as stored; return a mask of those that were new (first occurrence only)."""
        hashes = np.asarray(hashes, dtype=np.uint64)
        new = ~self.contains(hashes)
        _, first = np.unique(hashes, return_index=True)
        first_mask = np.zeros(len(hashes), dtype=bool)
        first_mask[first] = True
        keep = new & first_mask
        self.add(hashes[keep])
        return keep
