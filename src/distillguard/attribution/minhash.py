"""MinHash signatures of integer sets, vectorised over all accounts at once.

Synchrony compares the sets of minutes accounts are active in, proxy pools the sets of
networks they call from. At the public scale that is ~10M (account, minute) elements;
hashing them 64 times in numpy with a per-account ``minimum.reduceat`` takes seconds,
where the same cross join in SQL materialised 640M rows. (datasketch's ``MinHash``
hashes one set at a time in Python, which is the cost we avoid.)
"""

from __future__ import annotations

import numpy as np

BANDS, ROWS = 16, 4
PERMS = BANDS * ROWS
_rng = np.random.default_rng(20260223)
_XOR = _rng.integers(0, 2**63, PERMS, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
_MUL = _rng.integers(0, 2**63, PERMS, dtype=np.uint64) * np.uint64(2) + np.uint64(1)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: spreads arbitrary integers over all 64 bits."""
    z = x.astype(np.uint64)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def signatures(owner: np.ndarray, element: np.ndarray, n_owners: int, min_size: int) -> tuple[np.ndarray, np.ndarray]:
    """``(sig, has)``: a ``(n_owners, PERMS)`` signature per owner index, and whether the owner has one.

    ``owner`` (indices in ``[0, n_owners)``) and ``element`` are parallel arrays of one set
    element each, duplicates allowed. Owners with fewer than ``min_size`` distinct elements get none.
    """
    sig = np.full((n_owners, PERMS), np.iinfo(np.uint64).max, dtype=np.uint64)
    has = np.zeros(n_owners, dtype=bool)
    if len(owner) == 0:
        return sig, has
    order = np.lexsort((element, owner))
    owner, element = owner[order], element[order]
    fresh = np.ones(len(owner), dtype=bool)
    fresh[1:] = (owner[1:] != owner[:-1]) | (element[1:] != element[:-1])
    owner, element = owner[fresh], element[fresh]
    starts = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
    sizes = np.diff(np.r_[starts, len(owner)])
    keep = sizes >= min_size
    ids = owner[starts]
    base = _mix(element)
    with np.errstate(over="ignore"):
        for j in range(PERMS):
            z = (base ^ _XOR[j]) * _MUL[j]
            sig[ids[keep], j] = np.minimum.reduceat(z ^ (z >> np.uint64(29)), starts)[keep]
    has[ids[keep]] = True
    return sig, has


def band_keys(sig: np.ndarray, bands: int = BANDS, rows: int = ROWS) -> np.ndarray:
    """``(n, bands)`` LSH keys: owners agreeing on all ``rows`` values of a band share that band's key.

    ``bands * rows`` must be :data:`PERMS`. A pair of Jaccard ``J`` shares at least one key with probability
    ``1 - (1 - J**rows)**bands``: 16 x 4 proposes mostly pairs above ~0.5, 32 x 2 those above ~0.2.
    """
    if bands * rows != PERMS:
        raise ValueError(f"bands x rows must be {PERMS}, got {bands} x {rows}")
    view = sig.reshape(len(sig), bands, rows)
    key = np.zeros((len(sig), bands), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for r in range(rows):
            key = key * np.uint64(0x100000001B3) ^ view[:, :, r]
    return _mix(key)


def jaccard(sig: np.ndarray, a: np.ndarray, b: np.ndarray, chunk: int = 1 << 18) -> np.ndarray:
    """Estimated Jaccard similarity of owner pairs ``(a[i], b[i])``: the share of equal signature values."""
    out = np.empty(len(a), dtype=np.float64)
    for lo in range(0, len(a), chunk):
        hi = lo + chunk
        out[lo:hi] = (sig[a[lo:hi]] == sig[b[lo:hi]]).mean(axis=1)
    return out
