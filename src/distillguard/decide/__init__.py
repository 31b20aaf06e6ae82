"""The one place evidence becomes risk, verdict and reasons (batch detection and the gateway alike).

Input: an :class:`Record` per account (vectorised over many): the points of each evidence family measured
by the detectors against the deployment's baselines (:mod:`distillguard.detect.evidence`), the
cross-account *coordination* points attribution found, shared-intel matches, and the exchanges behind it.
Output: :class:`Decisions` (risk in [0, 1], verdict, reasons in words).

How (every number is a field of :class:`DecisionPolicy`, overridable in the gateway policy file):

1. ``S = sum(weight_f * points_f)`` over families, coordination included; risk is a Weibull curve of
   ``S`` (0 without evidence, rising to 1) through two anchors: ``S = throttle_points`` gives the throttle
   threshold and ``S = block_points`` the block threshold.
2. *No single trait decides*: unless at least ``min_families`` families carry ``family_floor`` points or
   more, the risk stays below throttle (the account can be watched, not restricted).
3. *Volume and association*: below ``min_exchanges`` requests an account may be watched, not restricted; below
   ``min_exchanges_block`` it may be throttled, not blocked (a blocked customer cannot show it was wrong). An
   account is blocked only when its own evidence, without the cross-account coordination points, would
   restrict it: association with a campaign can throttle an account, never cut it off alone.
4. *Shared intel* joins by noisy-OR (``intel_weight``). Intel that only one sharing member reported (not
   corroborated by several members) may raise the risk up to ``intel_max_risk`` and no further, whatever
   the local evidence: ``risk = max(own, min(fused, intel_max_risk))``. One member can slow an account down,
   never get it blocked.
5. *Analyst decisions* come last: a confirmed account is held at least at the confirmed verdict; a dismissed
   one (a false positive) stays below throttle while its evidence stays within ``dismiss_margin`` points of
   what the analyst saw and gains no new family: it is exempt from re-flagging on the same evidence, not
   forever.

``allow < watch <= watch < throttle <= throttle < block <= block``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

VERDICTS = ("allow", "watch", "throttle", "block")
WATCH = 0.3
THROTTLE = 0.6
BLOCK = 0.85
COORDINATION = "coordination"


@dataclass(frozen=True)
class DecisionPolicy:
    watch: float = WATCH
    throttle: float = THROTTLE
    block: float = BLOCK
    # evidence total that reaches the throttle threshold: more than one account's heavy use can explain (a power
    # user who always asks for the longest answer: outputs at the limit and length demands, ~5 points)
    throttle_points: float = 6.0
    block_points: float = 9.0  # ... and the block threshold
    weights: Mapping[str, float] = field(default_factory=dict)  # family -> weight (1.0 when absent)
    min_families: int = 2
    family_floor: float = 1.0
    min_exchanges: int = 4
    min_exchanges_block: int = 32
    intel_weight: float = 0.9
    intel_max_risk: float = 0.6
    coordination_cap: float = 5.0
    dismiss_margin: float = 2.0  # evidence points an account dismissed by an analyst may gain before it is re-judged

    def __post_init__(self) -> None:
        if not 0 < self.watch < self.throttle < self.block <= 1:
            raise ValueError(f"thresholds must satisfy 0 < watch < throttle < block <= 1, got {self.watch}, "
                             f"{self.throttle}, {self.block}")
        if not self.block_points > self.throttle_points > 0:
            raise ValueError("block_points must exceed throttle_points, both positive")
        if not 0 < self.intel_max_risk <= 1:
            raise ValueError(f"intel_max_risk must be in (0, 1], got {self.intel_max_risk}")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None, where: str = "policy") -> DecisionPolicy:
        """From a policy file's ``decide:`` section; unknown keys and bad values name the offending field."""
        data = dict(data or {})
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"{where}: decide: unknown field(s) {', '.join(sorted(unknown))}")
        try:
            for name, value in data.items():
                if name == "weights":
                    data[name] = {str(k): float(v) for k, v in dict(value).items()}
                elif name in ("min_families", "min_exchanges", "min_exchanges_block"):
                    data[name] = int(value)
                else:
                    data[name] = float(value)
            return cls(**data)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{where}: decide: {exc}") from None

    def to_json(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["weights"] = dict(self.weights)
        return out

    def weight(self, family: str) -> float:
        return float(self.weights.get(family, 1.0))

    def risk_of_points(self, total: np.ndarray) -> np.ndarray:
        """``1 - exp(-(S / scale) ** shape)``: 0 for no evidence, through both anchor points."""
        at_throttle, at_block = -math.log(1 - self.throttle), -math.log(1 - self.block)
        shape = math.log(at_block / at_throttle) / math.log(self.block_points / self.throttle_points)
        scale = self.throttle_points / at_throttle ** (1 / shape)
        points = np.maximum(np.asarray(total, dtype=np.float64), 0.0)
        return np.round(1.0 - np.exp(-((points / scale) ** shape)), 9)  # the anchors land exactly on thresholds


DEFAULT_POLICY = DecisionPolicy()


@dataclass
class Record:
    """Evidence of many accounts, aligned by row: what :func:`decide` needs and nothing else."""

    n: np.ndarray  # exchanges seen
    families: dict[str, np.ndarray]  # family -> points (already capped by the detectors)
    explain: Callable[[int], list[tuple[float, str]]] | None = None  # (points, words) per account, strongest first
    coordination: np.ndarray | None = None  # cross-account points from attribution
    coordination_reasons: list[str] | None = None
    intel_score: np.ndarray | None = None  # in [0, 1]
    intel_corroborated: np.ndarray | None = None  # reported by several members
    intel_reasons: list[str] | None = None
    # analyst decisions: "" (none), "confirm-block", "confirm-throttle" or "dismiss", with the evidence points and
    # the families carrying >= family_floor points when the analyst decided (see distillguard.cases)
    analyst: np.ndarray | None = None
    analyst_points: np.ndarray | None = None
    analyst_families: list[frozenset[str]] | None = None

    def __len__(self) -> int:
        return len(self.n)


@dataclass
class Decisions:
    risk: np.ndarray
    verdicts: list[str]
    reasons: list[list[str]]
    points: np.ndarray  # total evidence points (before caps)
    own: np.ndarray  # risk from the account's own and cross-account evidence, before intel


def verdict(risk: float, *, policy: DecisionPolicy = DEFAULT_POLICY) -> str:
    """The verdict of a final ``risk`` (corroboration and caps are already part of the risk)."""
    if risk >= policy.block:
        return "block"
    if risk >= policy.throttle:
        return "throttle"
    if risk >= policy.watch:
        return "watch"
    return "allow"


def flagged(verdict_name: str) -> bool:
    """Whether a verdict restricts the account (throttle or block): what "flagged" means in evaluation."""
    return verdict_name in ("throttle", "block")


def decide(record: Record, policy: DecisionPolicy = DEFAULT_POLICY, *, explain: bool = True,
           reasons_from: float | None = None) -> Decisions:
    """Risk, verdict and reasons of every account in ``record``.

    Reasons are written for accounts at ``reasons_from`` (default: the watch threshold) or above; ``explain``
    False skips them (evaluation replays decide many prefixes).
    """
    m = len(record)
    families = dict(record.families)
    coordination = record.coordination if record.coordination is not None else np.zeros(m)
    families[COORDINATION] = np.minimum(coordination, policy.coordination_cap)
    total = np.zeros(m)
    own_points = np.zeros(m)
    strong = np.zeros(m, dtype=np.int64)
    for name, points in families.items():
        weighted = policy.weight(name) * np.asarray(points, dtype=np.float64)
        total += weighted
        if name != COORDINATION:
            own_points += weighted
        strong += weighted >= policy.family_floor
    risk = policy.risk_of_points(total)
    below_throttle = round(policy.throttle - 0.01, 4)
    below_block = round(policy.block - 0.01, 4)
    one_family = (strong < policy.min_families) & (risk >= policy.throttle)
    risk = np.where(one_family, below_throttle, risk)
    few = (record.n < policy.min_exchanges - 0.5) & (risk >= policy.throttle)
    risk = np.where(few, below_throttle, risk)
    some = (record.n < policy.min_exchanges_block - 0.5) & (risk >= policy.block)
    risk = np.where(some, below_block, risk)
    associated = (own_points < policy.throttle_points) & (risk >= policy.block)
    risk = np.where(associated, below_block, risk)
    own = risk.copy()

    intel_capped = np.zeros(m, dtype=bool)
    if record.intel_score is not None:
        score = np.clip(np.asarray(record.intel_score, dtype=np.float64), 0.0, 1.0)
        fused = 1.0 - (1.0 - own) * (1.0 - policy.intel_weight * score)
        corroborated = (np.asarray(record.intel_corroborated, dtype=bool) if record.intel_corroborated is not None
                        else np.zeros(m, dtype=bool))
        single = np.maximum(own, np.minimum(fused, policy.intel_max_risk))
        intel_capped = ~corroborated & (fused > single + 1e-9)
        risk = np.where(corroborated, fused, single)

    analyst_note = [""] * m
    if record.analyst is not None:
        risk, analyst_note = _analyst(record, policy, risk, total, families)

    verdicts = [verdict(float(r), policy=policy) for r in risk]
    reasons: list[list[str]] = [[] for _ in range(m)]
    if explain:
        start = policy.watch if reasons_from is None else reasons_from
        for i in np.flatnonzero((risk >= start) | np.array([bool(a) for a in analyst_note], dtype=bool)):
            reasons[i] = _reasons(record, policy, int(i), families, bool(one_family[i]), bool(few[i]),
                                  bool(some[i]), bool(intel_capped[i]), bool(associated[i]))
            if analyst_note[i]:
                reasons[i].append(analyst_note[i])
    return Decisions(risk, verdicts, reasons, total, own)


def _analyst(record: Record, policy: DecisionPolicy, risk: np.ndarray, total: np.ndarray,
             families: dict[str, np.ndarray]) -> tuple[np.ndarray, list[str]]:
    """Apply analysts' decisions: confirmed accounts held at their verdict, dismissed ones exempt on the same
    evidence (re-judged when it grows by ``dismiss_margin`` points or a new family reaches ``family_floor``)."""
    assert record.analyst is not None  # the caller applies analysts' decisions only when there are some
    risk = risk.copy()
    notes = [""] * len(risk)
    seen = record.analyst_points if record.analyst_points is not None else np.zeros(len(risk))
    for i, action in enumerate(record.analyst):
        if not action:
            continue
        if action == "confirm-block":
            risk[i] = max(risk[i], policy.block)
            notes[i] = "confirmed by an analyst: block"
        elif action == "confirm-throttle":
            risk[i] = max(risk[i], policy.throttle)
            notes[i] = "confirmed by an analyst: throttle"
        elif action == "dismiss":
            strong_now = {f for f, p in families.items() if p[i] * policy.weight(f) >= policy.family_floor}
            before = record.analyst_families[i] if record.analyst_families is not None else frozenset()
            new = strong_now - set(before)
            if total[i] <= seen[i] + policy.dismiss_margin and not new:
                if risk[i] >= policy.throttle:
                    risk[i] = round(policy.throttle - 0.01, 4)
                notes[i] = "dismissed by an analyst as a false positive: held below throttle on the same evidence"
            else:
                grew = f"new evidence: {', '.join(sorted(new))}" if new else \
                    f"evidence grew from {seen[i]:.1f} to {total[i]:.1f} points"
                notes[i] = f"dismissed by an analyst earlier; re-judged ({grew})"
        else:
            raise ValueError(f"unknown analyst decision {action!r}")
    return risk, notes


def _reasons(record: Record, policy: DecisionPolicy, i: int, families: dict[str, np.ndarray], one_family: bool,
             few: bool, some: bool, intel_capped: bool, associated: bool = False) -> list[str]:
    out: list[str] = []
    if record.explain is not None:
        out += [words for _, words in record.explain(i)]
    if families[COORDINATION][i] > 0 and record.coordination_reasons is not None and record.coordination_reasons[i]:
        out.append(record.coordination_reasons[i])
    if record.intel_score is not None and record.intel_score[i] > 0:
        text = record.intel_reasons[i] if record.intel_reasons is not None else ""
        out.append(f"shared intel: {text or 'indicator match'}")
    if one_family:
        out.append("evidence from one family only: held below throttle")
    if few:
        out.append(f"under {policy.min_exchanges} requests: held below throttle")
    if some:
        out.append(f"under {policy.min_exchanges_block} requests: held below block")
    if intel_capped:
        out.append(f"intel from a single member: capped at {policy.intel_max_risk:.2f}")
    if associated:
        out.append("blocked only on its own evidence: held below block")
    return list(dict.fromkeys(out))  # no reason twice


__all__ = ["BLOCK", "COORDINATION", "DEFAULT_POLICY", "THROTTLE", "VERDICTS", "WATCH", "DecisionPolicy",
           "Decisions", "Record", "decide", "flagged", "verdict"]
