"""What the gateway knows about an account when a request arrives, decided by :mod:`distillguard.decide`.

Three sources of evidence meet here, and :func:`distillguard.decide.decide` (the same function batch
detection calls) turns them into one :class:`Score`:

* the latest batch detection run (``detect``'s ``accounts.csv``: each evidence family's points, the
  cross-account coordination points attribution found and campaign membership; ``context.json``: the
  deployment's baselines), reloaded when the files change;
* online evidence: per-account state updated on every exchange with the batch feature code and scored by
  the same detectors against the same baselines (:mod:`distillguard.gateway.online`);
* shared intel matched per request (:mod:`distillguard.gateway.intel`).

Per family the larger of the batch and the online points counts (the online state may have seen less
than batch, after a restart, or more, since the batch run), so on the same traffic the gateway decides
exactly what batch detection decided.
"""

from __future__ import annotations

import contextlib
import csv
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import orjson

from distillguard.decide import COORDINATION, DEFAULT_POLICY, DecisionPolicy, Record, decide
from distillguard.decide.analyst import AnalystDecision, load_decisions
from distillguard.detect.evidence import FAMILIES
from distillguard.intel.match import NO_INTEL, IntelScore

if TYPE_CHECKING:
    from distillguard.gateway.online import ScorerProcess


@dataclass(frozen=True)
class Score:
    risk: float
    reasons: tuple[str, ...] = ()
    campaign_id: str | None = None
    verdict: str = "allow"


@dataclass(frozen=True, slots=True)
class Online:
    """An account's online evidence: exchanges folded, family points, and the reasons behind them."""

    n: float
    families: dict[str, float]
    reasons: tuple[str, ...] = ()
    coordination: float = 0.0  # cross-account evidence the gateway found itself (payment links)
    coordination_reason: str = ""
    eligible: bool = False  # may cross-account evidence count for it (detect.evidence.coordination_eligible)


NO_ONLINE = Online(0.0, {})


class Scorer(Protocol):
    """The decision path's only view of detection; tests and benchmarks plug in fixed scorers.

    :class:`BaseScorer` gives everything but :meth:`score` and :meth:`observe` a default.
    """

    def score(self, account_id: str, exchange_row: dict[str, Any], now_ms: int) -> Score: ...

    def observe(self, exchange_row: dict[str, Any]) -> None:
        """Fold a completed exchange into the account's online state."""
        ...

    async def prefetch(self, account_id: str) -> None:
        """Before :meth:`score`: read what the scorer keeps on async state (analysts' shared decisions)."""
        ...

    def final(self, account_id: str, now_ms: int) -> Score | None:
        """The decision on everything seen so far, folding no request (the end of a replay); None: not known."""
        ...

    def finish(self) -> None:
        """Score every account's final online state now (a replay's last exchanges may be unscored)."""
        ...

    def prime(self, rows: list[tuple]) -> None:
        """Pre-compute per-exchange signals for the rows of a replay chunk about to be observed."""
        ...

    def use_detections(self, detections: str | Path) -> None:
        """Score with another detect run's output from now on (a periodic batch job's latest run)."""
        ...

    def close(self) -> None:
        """Release what the scorer holds (online scoring's worker process)."""
        ...

    @property
    def worker(self) -> ScorerProcess | None:
        """Online scoring's worker process, when it runs in one (the gateway pumps it and reports on it)."""
        ...


class BaseScorer:
    """No-op defaults for the optional parts of :class:`Scorer`."""

    async def prefetch(self, account_id: str) -> None:
        return None

    def final(self, account_id: str, now_ms: int) -> Score | None:
        return None

    def finish(self) -> None:
        return None

    def prime(self, rows: list[tuple]) -> None:
        return None

    def use_detections(self, detections: str | Path) -> None:
        raise NotImplementedError(f"{type(self).__name__} does not read detect runs")

    def close(self) -> None:
        return None

    @property
    def worker(self) -> ScorerProcess | None:
        return None


class OnlineEvidence(Protocol):
    """Online per-account evidence (implemented with the batch feature and detector code in :mod:`.online`).

    :class:`BaseOnlineEvidence` gives everything but :meth:`observe` and :meth:`evidence` a default.
    """

    worker: ScorerProcess | None  # the worker process folding and scoring, when not inline

    def observe(self, exchange_row: dict[str, Any]) -> None: ...

    def evidence(self, account_id: str, now_ms: int) -> Online: ...

    def refresh(self, context: dict[str, Any] | None, batch: BatchRisk | None = None) -> None:
        """New baselines (a batch run's ``context.json``) and flagged accounts from batch detection."""
        ...

    def rescore_all(self) -> None:
        """Score every account's current state now (end of a replay)."""
        ...

    def prime(self, rows: list[tuple]) -> None: ...

    def close(self) -> None: ...


class BaseOnlineEvidence:
    """No-op defaults for the optional parts of :class:`OnlineEvidence`."""

    worker: ScorerProcess | None = None

    def refresh(self, context: dict[str, Any] | None, batch: BatchRisk | None = None) -> None:
        return None

    def rescore_all(self) -> None:
        return None

    def prime(self, rows: list[tuple]) -> None:
        return None

    def close(self) -> None:
        return None


class RequestIntelRisk(Protocol):
    """Shared indicators matched per request (implemented in :mod:`.intel`)."""

    def score(self, account_id: str, row: dict[str, Any]) -> IntelScore: ...

    def current(self, account_id: str) -> IntelScore:
        """What is known for the account now, matching no request (the end of a replay)."""
        ...


class AnalystSource(Protocol):
    """Analysts' decisions in force (``--decisions`` file, or pushed by the console through shared state)."""

    def __call__(self, account_id: str) -> AnalystDecision | None: ...

    async def fetch(self, account_id: str) -> AnalystDecision | None:
        """Read the account's decision now where reading is async (the next ``__call__`` sees it)."""
        ...


@dataclass(frozen=True)
class BatchEntry:
    risk: float
    verdict: str
    campaign_id: str | None
    signals: str
    n: float = 0.0
    families: dict[str, float] = field(default_factory=dict)
    coordination: float = 0.0


def _float(row: dict[str, str], name: str, path: Path, number: int) -> float:
    value = row.get(name)
    if value in (None, ""):
        return 0.0
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"{path}:{number}: {name}: not a number: {value!r}") from None


class BatchRisk:
    """``accounts.csv`` (and ``context.json``) of the latest ``distillguard detect`` run, reloaded on change."""

    def __init__(self, detections: str | Path, check_every_s: float = 2.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        path = Path(detections)
        self.path = path / "accounts.csv" if path.is_dir() or not path.suffix else path
        self.context_path = self.path.parent / "context.json"
        self.check_every_s = check_every_s
        self._clock = clock
        self._mtime: float | None = None
        self._context_mtime: float | None = None
        self._next_check = 0.0
        self.entries: dict[str, BatchEntry] = {}
        self.context: dict[str, Any] | None = None
        self.version = 0  # bumped on every successful reload
        self.reload()

    def reload(self) -> None:
        """Read the files; a half-written or malformed file keeps the previous entries (and says why)."""
        self._reload_context()
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
                risk = _float(row, "risk", self.path, number)
                families = {f: _float(row, f"points_{f}", self.path, number) for f in FAMILIES
                            if f"points_{f}" in row}
                entries[row["account_id"]] = BatchEntry(
                    risk, row.get("verdict") or "", row.get("campaign_id") or None, row.get("signals") or "",
                    _float(row, "exchanges", self.path, number), families,
                    _float(row, f"points_{COORDINATION}", self.path, number))
        self.entries = entries
        self._mtime = mtime
        self.version += 1

    def _reload_context(self) -> None:
        try:
            mtime = os.stat(self.context_path).st_mtime
        except FileNotFoundError:
            return
        if mtime == self._context_mtime:
            return
        try:
            context = orjson.loads(self.context_path.read_bytes())
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"{self.context_path}: not JSON ({exc})") from None
        self.context = context
        self._context_mtime = mtime
        self.version += 1

    def get(self, account_id: str) -> BatchEntry | None:
        now = self._clock()
        if now >= self._next_check:
            self._next_check = now + self.check_every_s
            with contextlib.suppress(OSError, ValueError):  # keep serving the last good detections
                self.reload()
        return self.entries.get(account_id)


_ALLOW = Score(0.0)


class FusedScorer(BaseScorer):
    """Batch, online and intel evidence per account, decided by :func:`distillguard.decide.decide`."""

    def __init__(self, batch: BatchRisk | None = None, online: OnlineEvidence | None = None,
                 policy: DecisionPolicy = DEFAULT_POLICY, intel: RequestIntelRisk | None = None,
                 analyst: AnalystSource | None = None) -> None:
        self.batch, self.online = batch, online
        self.policy = policy
        self.intel = intel
        self.analyst = analyst  # an analyst's decision in force for an account (console, --decisions)
        self._cache: dict[str, tuple[Any, Score]] = {}
        self._context_version = -1
        self._sync_online()

    def use_detections(self, detections: str | Path) -> None:
        """Score with another detect run's output from now on (a periodic batch job's latest run)."""
        self.batch = BatchRisk(detections)
        self._context_version = -1
        self._cache.clear()
        self._sync_online()

    def _sync_online(self) -> None:
        """Hand the online scorer the batch run's baselines and flagged accounts, when they change."""
        if self.batch is None or self.online is None or self.batch.version == self._context_version:
            return
        self._context_version = self.batch.version
        self.online.refresh(self.batch.context, self.batch)

    @property
    def worker(self) -> ScorerProcess | None:
        return self.online.worker if self.online is not None else None

    async def prefetch(self, account_id: str) -> None:
        if self.analyst is not None:  # an analyst's decision on a shared backend counts from the very next request
            await self.analyst.fetch(account_id)

    def score(self, account_id: str, exchange_row: dict[str, Any], now_ms: int) -> Score:
        entry = self.batch.get(account_id) if self.batch is not None else None
        if self.batch is not None and self.batch.version != self._context_version:
            self._sync_online()
        online = self.online.evidence(account_id, now_ms) if self.online is not None else NO_ONLINE
        intel = self.intel.score(account_id, exchange_row) if self.intel is not None else NO_INTEL
        decision = self.analyst(account_id) if self.analyst is not None else None
        if entry is None and not online.families and not online.coordination and not intel.score and decision is None:
            return _ALLOW
        key = (entry, online, intel.score, intel.corroborated, decision)
        cached = self._cache.get(account_id)
        if cached is not None and cached[0] == key:
            return cached[1]
        score = self._decide(entry, online, intel, decision)
        if len(self._cache) > 1_000_000:
            self._cache.clear()
        self._cache[account_id] = (key, score)
        return score

    def _decide(self, entry: BatchEntry | None, online: Online, intel: IntelScore,
                decision: AnalystDecision | None = None) -> Score:
        batch_families = entry.families if entry is not None else {}
        families = {f: np.array([max(batch_families.get(f, 0.0), online.families.get(f, 0.0))])
                    for f in set(batch_families) | set(online.families)}
        coordination = max(entry.coordination if entry is not None else 0.0, online.coordination)
        reasons: list[str] = list(online.reasons)
        if entry is not None and entry.signals:
            reasons += [r.strip() for r in entry.signals.split(";") if r.strip()]
        coordination_reason = ""
        if coordination > 0:
            if entry is not None and entry.coordination >= online.coordination and entry.campaign_id:
                coordination_reason = f"member of {entry.campaign_id} (batch detection)"
            else:
                coordination_reason = online.coordination_reason
        record = Record(
            n=np.array([max(entry.n if entry is not None else 0.0, online.n)]), families=families,
            explain=lambda i: [(1.0, r) for r in reasons],
            coordination=np.array([coordination]), coordination_reasons=[coordination_reason],
            intel_score=np.array([intel.score]) if intel.score else None,
            intel_corroborated=np.array([intel.corroborated]) if intel.score else None,
            intel_reasons=["; ".join(intel.reasons)] if intel.score else None)
        if decision is not None:
            record.analyst = np.array([decision.action], dtype=object)
            record.analyst_points = np.array([decision.points])
            record.analyst_families = [decision.families]
        d = decide(record, self.policy, reasons_from=0.0)
        campaign = entry.campaign_id if entry is not None else None
        return Score(round(float(d.risk[0]), 4), tuple(d.reasons[0]), campaign, d.verdicts[0])

    def observe(self, exchange_row: dict[str, Any]) -> None:
        if self.online is not None:
            self.online.observe(exchange_row)

    def final(self, account_id: str, now_ms: int) -> Score:
        """The decision on everything seen so far, folding no request (the end of a replay)."""
        entry = self.batch.get(account_id) if self.batch is not None else None
        online = self.online.evidence(account_id, now_ms) if self.online is not None else NO_ONLINE
        intel = self.intel.current(account_id) if self.intel is not None else NO_INTEL
        decision = self.analyst(account_id) if self.analyst is not None else None
        if entry is None and not online.families and not online.coordination and not intel.score and decision is None:
            return _ALLOW
        return self._decide(entry, online, intel, decision)

    def finish(self) -> None:
        """Score every account's final online state now (a replay's last exchanges may be unscored)."""
        if self.online is not None:
            self.online.rescore_all()

    def close(self) -> None:
        """Stop online scoring's worker process, if it has one."""
        if self.online is not None:
            self.online.close()

    def prime(self, rows: list[tuple]) -> None:
        """Pre-compute per-exchange signals for a replay chunk (see :meth:`OnlineFeatures.prime`)."""
        if self.online is not None:
            self.online.prime(rows)


class DecisionsFile:
    """Analysts' decisions from a JSON Lines file (``--decisions``), reloaded when it changes."""

    def __init__(self, path: str | Path, check_every_s: float = 2.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.path = Path(path)
        self.check_every_s = check_every_s
        self._clock = clock
        self._mtime: float | None = None
        self._next = 0.0
        self.decisions: dict[str, AnalystDecision] = {}
        self.reload()

    def reload(self) -> None:
        mtime = os.stat(self.path).st_mtime
        if mtime != self._mtime:
            self.decisions = load_decisions(self.path)
            self._mtime = mtime

    def __call__(self, account_id: str) -> AnalystDecision | None:
        now = self._clock()
        if now >= self._next:
            self._next = now + self.check_every_s
            with contextlib.suppress(OSError, ValueError):  # keep the last good decisions
                self.reload()
        return self.decisions.get(account_id)

    async def fetch(self, account_id: str) -> AnalystDecision | None:
        """The file is read on change by :meth:`__call__`: nothing async to read."""
        return self.decisions.get(account_id)


class FixedScorer(BaseScorer):
    """Constant risk per account: for tests, benchmarks, and a gateway with no detection yet."""

    def __init__(self, risks: dict[str, float] | None = None, default: float = 0.0,
                 policy: DecisionPolicy = DEFAULT_POLICY) -> None:
        self.risks = risks or {}
        self.default = default
        self.policy = policy
        self.observed = 0

    def score(self, account_id: str, exchange_row: dict[str, Any], now_ms: int) -> Score:
        from distillguard.decide import verdict

        risk = self.risks.get(account_id, self.default)
        return Score(risk, (f"fixed risk {risk:.2f}",) if risk else (), None, verdict(risk, policy=self.policy))

    def observe(self, exchange_row: dict[str, Any]) -> None:
        self.observed += 1
