"""The latest online evidence per account, kept compactly: what decisions need, in ~100 bytes an account.

Per account the store keeps one ``bytes``: the exchanges behind the evidence, whether cross-account evidence may
count, and each family's points (float64, exact) in the order the scorer gave them, plus the index of its
reasons in a table shared by all accounts (accounts with the same findings share one tuple; its strings are
interned, so the same sentence is kept once). Read back, an entry is the very :class:`Online` that was stored
(equal field by field), so decisions do not change; only the memory per account does (about a third of a
live :class:`Online` with its dict of families). Evidence the codec does not cover (a family it does not know,
cross-account points) is kept as the object itself.
"""

from __future__ import annotations

import struct
import sys
from collections.abc import Iterator, MutableMapping

from distillguard.detect.evidence import FAMILIES
from distillguard.gateway.scoring import Online

MAX_SHARED = 100_000  # reasons tuples kept before the table is compacted (at least; it doubles with live ones)
RECENT = 1024  # accounts whose decoded evidence is kept for their next request (a bounded cache, not per account)
_HEAD = struct.Struct("<dBBI")  # exchanges (n), eligible, number of families, reasons index
_NAMES = tuple(FAMILIES)
_FAMILY_ID = {name: i for i, name in enumerate(_NAMES)}
_POINTS = [struct.Struct(f"<{k}d") for k in range(len(_NAMES) + 1)]


class EvidenceStore(MutableMapping[str, Online]):
    """``account -> Online`` as a mapping, stored packed (see the module docstring)."""

    def __init__(self) -> None:
        self._kept: dict[str, bytes | Online] = {}
        self._reasons: list[tuple[str, ...]] = []  # reasons index -> tuple
        self._ids: dict[tuple[str, ...], int] = {}  # tuple -> reasons index
        self._compact_at = MAX_SHARED
        self._recent: dict[str, tuple[bytes, Online]] = {}  # account -> (entry, decoded): busy accounts decode once

    # ---- mapping -------------------------------------------------------------------------------------------
    def __getitem__(self, account: str) -> Online:
        return self._read(account, self._kept[account])

    def get(self, account: str, default: Online | None = None) -> Online | None:  # type: ignore[override]
        kept = self._kept.get(account)
        return default if kept is None else self._read(account, kept)

    def _read(self, account: str, kept: bytes | Online) -> Online:
        if isinstance(kept, Online):
            return kept
        recent = self._recent.get(account)
        if recent is not None and recent[0] is kept:  # the same entry (a new one is a new bytes object)
            return recent[1]
        evidence = self._unpack(kept)
        if len(self._recent) >= RECENT:
            self._recent.clear()
        self._recent[account] = (kept, evidence)
        return evidence

    def __setitem__(self, account: str, evidence: Online) -> None:
        self._kept[account] = self._pack(evidence)

    def __delitem__(self, account: str) -> None:
        del self._kept[account]

    def discard(self, account: str) -> None:
        """Forget ``account`` if kept (``pop`` without decoding what it drops)."""
        self._kept.pop(account, None)

    def __iter__(self) -> Iterator[str]:
        return iter(self._kept)

    def __len__(self) -> int:
        return len(self._kept)

    def __contains__(self, account: object) -> bool:
        return account in self._kept

    def __repr__(self) -> str:
        return f"EvidenceStore({len(self._kept)} accounts, {len(self._reasons)} reasons tuples)"

    # ---- codec ---------------------------------------------------------------------------------------------
    def _pack(self, e: Online) -> bytes | Online:
        ids = [_FAMILY_ID.get(name, -1) for name in e.families]
        if e.coordination or e.coordination_reason or -1 in ids or not all(isinstance(r, str) for r in e.reasons):
            return e  # outside the codec: kept as is
        return (_HEAD.pack(float(e.n), bool(e.eligible), len(ids), self._reason_id(e.reasons))
                + bytes(ids) + _POINTS[len(ids)].pack(*map(float, e.families.values())))

    def _unpack(self, blob: bytes) -> Online:
        n, eligible, k, rid = _HEAD.unpack_from(blob)
        start = _HEAD.size + k
        values = _POINTS[k].unpack_from(blob, start)
        families = {_NAMES[i]: v for i, v in zip(blob[_HEAD.size:start], values, strict=True)}
        return Online(n, families, self._reasons[rid], eligible=bool(eligible))

    def _reason_id(self, reasons: tuple[str, ...]) -> int:
        rid = self._ids.get(reasons)
        if rid is None:
            if len(self._reasons) >= self._compact_at:
                self._compact()
            reasons = tuple(sys.intern(r) for r in reasons)  # the same sentence once, whatever tuple holds it
            rid = self._ids[reasons] = len(self._reasons)
            self._reasons.append(reasons)
        return rid

    def _compact(self) -> None:
        """Drop reasons no account uses any more (evidence is replaced as accounts are rescored) and renumber."""
        old, self._reasons, self._ids = self._reasons, [], {}
        for account, kept in self._kept.items():
            if isinstance(kept, bytes):
                n, eligible, k, rid = _HEAD.unpack_from(kept)
                reasons = old[rid]
                new = self._ids.get(reasons)
                if new is None:
                    new = self._ids[reasons] = len(self._reasons)
                    self._reasons.append(reasons)
                self._kept[account] = _HEAD.pack(n, eligible, k, new) + kept[_HEAD.size:]
        self._compact_at = max(MAX_SHARED, 2 * len(self._reasons))


__all__ = ["MAX_SHARED", "EvidenceStore"]
