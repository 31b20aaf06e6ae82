"""What the gateway knows about an account when a request arrives: one :class:`Score`.

Two sources are fused: the latest batch detection run (risk and campaign
membership from ``detect``'s ``accounts.csv``, reloaded when it changes; indicators
imported from the sharing hub reach the gateway through it, already matched
against local traffic) and online behaviour (per-account state updated on every
exchange with the batch feature code, see :mod:`distillguard.gateway.online`).
The corroboration rule holds: where detect's verdict stopped short of ``block``
although the risk is that high (evidence from shared intel alone), the risk is
capped at the policy's ``intel_max_risk``, so it can throttle but never block.
"""

from __future__ import annotations

import contextlib
import csv
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from distillguard.decide import BLOCK, WATCH

INTEL_WEIGHT = 0.9  # as batch detection (distillguard.detect.INTEL_WEIGHT): noisy-OR with our own evidence


@dataclass(frozen=True)
class Score:
    risk: float
    reasons: tuple[str, ...] = ()
    campaign_id: str | None = None


class Scorer(Protocol):
    """The decision path's only view of detection; tests and benchmarks plug in fixed scorers."""

    def score(self, account_id: str, exchange_row: dict[str, Any], now_ms: int) -> Score: ...

    def observe(self, exchange_row: dict[str, Any]) -> None:
        """Fold a completed exchange into the account's online state."""
        ...


class OnlineRisk(Protocol):
    """Online per-account behaviour (implemented with the batch feature code in :mod:`.online`)."""

    def observe(self, exchange_row: dict[str, Any]) -> None: ...

    def risk(self, account_id: str, now_ms: int) -> tuple[float, tuple[str, ...]]: ...


@dataclass(frozen=True)
class BatchEntry:
    risk: float
    verdict: str
    campaign_id: str | None
    signals: str


class BatchRisk:
    """``accounts.csv`` from the latest ``distillguard detect`` run, reloaded when the file changes."""

    def __init__(self, detections: str | Path, check_every_s: float = 2.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        path = Path(detections)
        self.path = path / "accounts.csv" if path.is_dir() or not path.suffix else path
        self.check_every_s = check_every_s
        self._clock = clock
        self._mtime: float | None = None
        self._next_check = 0.0
        self.entries: dict[str, BatchEntry] = {}
        self.reload()

    def reload(self) -> None:
        """Read the file; a half-written or malformed file keeps the previous entries (and says why)."""
        try:
            mtime = os.stat(self.path).st_mtime
        except FileNotFoundError:
            return
        if mtime == self._mtime:
            return
        entries: dict[str, BatchEntry] = {}
        with open(self.path, newline="") as handle:
            reader = csv.DictReader(handle)
            missing = {"account_id", "risk"} - set(reader.fieldnames or ())
            if missing:
                raise ValueError(f"{self.path}:1: header: missing column(s) {', '.join(sorted(missing))}")
            for number, row in enumerate(reader, 2):
                try:
                    risk = float(row["risk"])
                except (TypeError, ValueError):
                    raise ValueError(f"{self.path}:{number}: risk: not a number: {row['risk']!r}") from None
                entries[row["account_id"]] = BatchEntry(risk, row.get("verdict") or "",
                                                        row.get("campaign_id") or None, row.get("signals") or "")
        self.entries = entries
        self._mtime = mtime

    def get(self, account_id: str) -> BatchEntry | None:
        now = self._clock()
        if now >= self._next_check:
            self._next_check = now + self.check_every_s
            with contextlib.suppress(OSError, ValueError):  # keep serving the last good detections
                self.reload()
        return self.entries.get(account_id)


class RequestIntelRisk(Protocol):
    """Shared indicators matched per request (implemented in :mod:`.intel`)."""

    def score(self, account_id: str, row: dict[str, Any]) -> tuple[float, tuple[str, ...], bool]: ...


class FusedScorer:
    """Max-fusion of batch and online risk, plus per-request intel (noisy-OR), with the reasons."""

    def __init__(self, batch: BatchRisk | None = None, online: OnlineRisk | None = None,
                 intel_max_risk: float = 0.6, intel: RequestIntelRisk | None = None) -> None:
        self.batch, self.online = batch, online
        self.intel_max_risk = intel_max_risk
        self.intel = intel
        links = getattr(online, "links", None)
        if links is not None and batch is not None:
            links.seed(batch)
            for account in links.flagged:  # batch-flagged accounts' payment fingerprints link their peers
                links.flag(account, online.accounts.get(account))

    def score(self, account_id: str, exchange_row: dict[str, Any], now_ms: int) -> Score:
        risk, reasons, campaign = 0.0, [], None
        if self.batch is not None:
            entry = self.batch.get(account_id)
            if entry is not None:
                risk = entry.risk
                campaign = entry.campaign_id
                reasons.append(f"batch risk {entry.risk:.2f}" + (f" ({entry.signals})" if entry.signals else ""))
                if entry.verdict and entry.verdict != "block" and risk >= BLOCK:
                    risk = min(risk, self.intel_max_risk)
                    reasons.append(f"uncorroborated ({entry.verdict}): capped at {risk:.2f}")
                if campaign:
                    reasons.append(f"member of {campaign}")
        if self.online is not None:
            online_risk, online_reasons = self.online.risk(account_id, now_ms)
            if online_risk > 0:
                reasons.extend(online_reasons)
                risk = max(risk, online_risk)
        if self.intel is not None:
            intel_score, intel_reasons, corroborated = self.intel.score(account_id, exchange_row)
            if intel_score > 0:
                own = risk
                fused = 1.0 - (1.0 - own) * (1.0 - INTEL_WEIGHT * intel_score)
                reasons.extend(intel_reasons)
                if not corroborated and own < WATCH:  # one member's word, nothing local: throttle at most
                    capped = min(fused, max(own, self.intel_max_risk))
                    if capped < fused:
                        reasons.append(f"intel uncorroborated: capped at {capped:.2f}")
                    fused = capped
                risk = max(risk, fused)
        return Score(round(risk, 4), tuple(reasons), campaign)

    def observe(self, exchange_row: dict[str, Any]) -> None:
        if self.online is not None:
            self.online.observe(exchange_row)

    def close(self) -> None:
        """Stop online scoring's worker process, if it has one."""
        close = getattr(self.online, "close", None)
        if close is not None:
            close()

    def prime(self, rows: list[tuple]) -> None:
        """Pre-compute per-exchange signals for a replay chunk (see :meth:`OnlineFeatures.prime`)."""
        if self.online is not None and hasattr(self.online, "prime"):
            self.online.prime(rows)


class FixedScorer:
    """Constant risk per account: for tests, benchmarks, and a gateway with no detection yet."""

    def __init__(self, risks: dict[str, float] | None = None, default: float = 0.0) -> None:
        self.risks = risks or {}
        self.default = default
        self.observed = 0

    def score(self, account_id: str, exchange_row: dict[str, Any], now_ms: int) -> Score:
        risk = self.risks.get(account_id, self.default)
        return Score(risk, (f"fixed risk {risk:.2f}",) if risk else ())

    def observe(self, exchange_row: dict[str, Any]) -> None:
        self.observed += 1
