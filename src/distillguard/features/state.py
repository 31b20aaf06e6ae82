"""Online per-account state for the gateway: the batch statistics, updated one request at a time.

Distinct counts use a K-minimum-values sketch (exact below ``KMV_K`` distinct
values, ~1/sqrt(K) relative error above) so the state stays under 1 KiB serialised.
Requests are expected in time order, as a gateway sees them.
"""

from __future__ import annotations

import math
import struct
from bisect import insort
from datetime import datetime
from typing import Any

import numpy as np
import xxhash

from distillguard.features.compute import Context, features_from_stats
from distillguard.features.stats import (
    DISTINCTS,
    EMB_DIM,
    GAP_BINS,
    STAT_NAMES,
    SUMS,
    distinct_values,
    embed,
    gap_bin,
)
from distillguard.model import TIERS
from distillguard.model.exchange import parse_ts

KMV_K = 16
_FORMAT = 1
_ADDITIVE = tuple(n for n in STAT_NAMES if n not in ("first_ts", "last_ts") and not n.startswith("d_"))
_MAX_MODELS = 6


def _epoch_ms(value: Any) -> int:
    if isinstance(value, datetime):
        return int(value.timestamp() * 1000)
    if isinstance(value, str):
        return parse_ts(value)
    return int(value)


class Kmv:
    """K smallest distinct 32-bit hashes: a mergeable distinct-count sketch."""

    __slots__ = ("values",)

    def __init__(self, values: list[int] | None = None) -> None:
        self.values = values or []

    def add(self, item: str | None) -> None:
        if item is None:
            return
        h = xxhash.xxh32_intdigest(item.encode())
        values = self.values
        if h in values or (len(values) >= KMV_K and h >= values[-1]):
            return
        insort(values, h)
        if len(values) > KMV_K:
            values.pop()

    def estimate(self) -> float:
        if len(self.values) < KMV_K:
            return float(len(self.values))
        return (KMV_K - 1) / ((self.values[-1] + 1) / 2**32)


class AccountState:
    """Mergeable statistics of one account, updated per request; ``features()`` as in batch."""

    def __init__(self, account: dict[str, Any] | None = None) -> None:
        self.sums = dict.fromkeys(_ADDITIVE, 0.0)
        self.first_ts = self.last_ts = -1
        self.day = -1
        self.day_count = 0.0
        self.sketches = {name: Kmv() for name in DISTINCTS}
        self.models: dict[str, tuple[float, float]] = {}
        account = account or {}
        created = account.get("created_at")
        self.account = {
            "tier": account.get("tier"), "verified": account.get("verified"),
            "created_ms": None if created is None else _epoch_ms(created),
            "payment_fp": account.get("payment_fp"), "email_domain": account.get("email_domain"),
        }

    def update(self, exchange_row: dict[str, Any], signals_row: dict[str, Any]) -> None:
        """Fold one request (a row of the exchange schema and its signals row) into the state."""
        e, s = exchange_row, signals_row
        t = _epoch_ms(e["ts"])
        sums = self.sums
        for q in SUMS:
            sums[q.name] += q.py(e, s)
        sums[f"hour_{(t // 3_600_000) % 24}"] += 1
        if self.last_ts >= 0:
            gap = (t - self.last_ts) / 1000.0
            sums["gap_n"] += 1
            sums["gap_sum"] += gap
            sums["gap_sumsq"] += gap * gap
            lg = math.log1p(gap)
            sums["lgap_sum"] += lg
            sums["lgap_sumsq"] += lg * lg
            sums[f"gap_{gap_bin(gap)}"] += 1
        for j, v in enumerate(embed(e, s)):
            sums[f"emb_{j}"] += float(v)
        day = t // 86_400_000
        if day != self.day:
            self.day, self.day_count = day, 0.0
            sums["days"] += 1
        self.day_count += 1
        sums["max_day"] = max(sums["max_day"], self.day_count)
        self.first_ts = t if self.first_ts < 0 else min(self.first_ts, t)
        self.last_ts = max(self.last_ts, t)
        for name, value in distinct_values(e, s).items():
            self.sketches[name].add(value)
        model = e.get("model") or ""
        count, first = self.models.get(model, (0.0, float(t)))
        if model in self.models or len(self.models) < _MAX_MODELS:
            self.models[model] = (count + 1, min(first, float(t)))

    def stats(self) -> dict[str, np.ndarray]:
        """The statistics as 1-row columns, in the batch layout."""
        out: dict[str, np.ndarray] = {name: np.array([value]) for name, value in self.sums.items()}
        out["first_ts"] = np.array([float(self.first_ts)])
        out["last_ts"] = np.array([float(self.last_ts)])
        for name, sketch in self.sketches.items():
            out[f"d_{name}"] = np.array([sketch.estimate()])
        models = np.empty(1, dtype=object)
        models[0] = dict(self.models)
        out["models"] = models
        return out

    def features(self, context: Context | None = None) -> dict[str, float]:
        a = self.account
        accounts = {"tier": np.array([a["tier"]], dtype=object),
                    "verified": np.array([np.nan if a["verified"] is None else float(a["verified"])]),
                    "created_ms": np.array([np.nan if a["created_ms"] is None else float(a["created_ms"])]),
                    "payment_fp": np.array([a["payment_fp"]], dtype=object),
                    "email_domain": np.array([a["email_domain"]], dtype=object)}
        cols = features_from_stats(self.stats(), accounts, context or Context())
        return {name: float(values[0]) for name, values in cols.items()}

    # ---- serialisation -----------------------------------------------------
    def to_bytes(self) -> bytes:
        a = self.account
        parts = [struct.pack("<B", _FORMAT),
                 struct.pack(f"<{len(_ADDITIVE)}f", *(self.sums[n] for n in _ADDITIVE)),
                 struct.pack("<qqqf", self.first_ts, self.last_ts, self.day, self.day_count)]
        for name in DISTINCTS:
            values = self.sketches[name].values
            parts.append(struct.pack(f"<B{len(values)}I", len(values), *values))
        parts.append(struct.pack("<B", len(self.models)))
        for model, (count, first) in self.models.items():
            parts.append(_pack_str(model) + struct.pack("<fq", count, int(first)))
        tier = TIERS.index(a["tier"]) if a["tier"] in TIERS else 255
        verified = 255 if a["verified"] is None else int(bool(a["verified"]))
        created = -1 if a["created_ms"] is None else a["created_ms"]
        parts.append(struct.pack("<BBq", tier, verified, created))
        parts.append(_pack_str(a["payment_fp"]) + _pack_str(a["email_domain"]))
        return b"".join(parts)

    @classmethod
    def from_bytes(cls, data: bytes) -> AccountState:
        state = cls()
        view = memoryview(data)
        if view[0] != _FORMAT:
            raise ValueError(f"unsupported AccountState format {view[0]}")
        pos = 1
        values = struct.unpack_from(f"<{len(_ADDITIVE)}f", view, pos)
        pos += 4 * len(_ADDITIVE)
        state.sums = {n: float(v) for n, v in zip(_ADDITIVE, values, strict=True)}
        state.first_ts, state.last_ts, state.day, state.day_count = struct.unpack_from("<qqqf", view, pos)
        pos += 28
        for name in DISTINCTS:
            (k,) = struct.unpack_from("<B", view, pos)
            state.sketches[name] = Kmv(list(struct.unpack_from(f"<{k}I", view, pos + 1)))
            pos += 1 + 4 * k
        (n_models,) = struct.unpack_from("<B", view, pos)
        pos += 1
        for _ in range(n_models):
            model, pos = _unpack_str(view, pos)
            count, first = struct.unpack_from("<fq", view, pos)
            pos += 12
            state.models[model or ""] = (float(count), float(first))
        tier, verified, created = struct.unpack_from("<BBq", view, pos)
        pos += 10
        payment, pos = _unpack_str(view, pos)
        domain, pos = _unpack_str(view, pos)
        state.account = {"tier": TIERS[tier] if tier < len(TIERS) else None,
                         "verified": None if verified == 255 else bool(verified),
                         "created_ms": None if created < 0 else created, "payment_fp": payment,
                         "email_domain": domain}
        return state


def _pack_str(value: str | None) -> bytes:
    if value is None:
        return b"\xff"
    raw = value.encode()[:254]
    return struct.pack("<B", len(raw)) + raw


def _unpack_str(view: memoryview, pos: int) -> tuple[str | None, int]:
    length = view[pos]
    if length == 255:
        return None, pos + 1
    return bytes(view[pos + 1:pos + 1 + length]).decode(errors="replace"), pos + 1 + length


__all__ = ["AccountState", "Kmv", "KMV_K", "EMB_DIM", "GAP_BINS"]
