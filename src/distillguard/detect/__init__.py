"""Detectors: evidence families measured against the deployment's baselines, decided by ``decide``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from distillguard.decide import Decisions, Record, decide
from distillguard.decide.analyst import AnalystDecision
from distillguard.decide.analyst import columns as analyst_columns
from distillguard.detect.base import DETECTORS, Detector, Features, build, check_detector, register
from distillguard.detect.baselines import Baselines
from distillguard.detect.detectors import DEFAULT_DETECTORS, FamilyDetector
from distillguard.detect.evidence import FAMILIES, FAMILY_CAP, Evidence
from distillguard.detect.model import Model


@dataclass
class Scores:
    """Per-account detection output, aligned with the feature table's rows."""

    account_ids: np.ndarray
    risk: np.ndarray
    verdicts: list[str]
    reasons: list[list[str]]
    components: dict[str, np.ndarray] = field(default_factory=dict)  # family points, "own" risk, intel

    def __len__(self) -> int:
        return len(self.account_ids)


def intel_columns(account_ids: np.ndarray, intel: Any) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Intel matches (a table or rows with account_id, intel_score, intel_reasons, corroborated) per account."""
    score = np.zeros(len(account_ids))
    corroborated = np.zeros(len(account_ids), dtype=bool)
    reasons = [""] * len(account_ids)
    if intel is None:
        return score, corroborated, reasons
    rows = intel.to_pylist() if hasattr(intel, "to_pylist") else list(intel)
    index = {a: i for i, a in enumerate(account_ids)}
    for row in rows:
        i = index.get(row.get("account_id"))
        if i is None:
            continue
        score[i] = max(score[i], float(row.get("intel_score") or 0.0))
        corroborated[i] |= bool(row.get("corroborated"))
        text = row.get("intel_reasons") or ""
        reasons[i] = "; ".join(text) if isinstance(text, list) else str(text)
    return np.clip(score, 0, 1), corroborated, reasons


@dataclass(frozen=True)
class GroupEvidence:
    """Evidence an account has as a member of a campaign, in one of the own families (``family``): points per
    account (aligned with the scored accounts) and the words for each account that has some."""

    family: str
    points: np.ndarray
    words: list[str]

    def apply(self, record: Record) -> None:
        """Add the points to the family (within its cap) and the words to the account's reasons; nothing when the
        model does not run that family's detector."""
        if self.family not in record.families:
            return
        cap = FAMILY_CAP.get(self.family, float("inf"))
        record.families[self.family] = np.minimum(record.families[self.family] + self.points, cap)
        inner = record.explain
        points, words = self.points, self.words

        def explain(i: int) -> list[tuple[float, str]]:
            found = inner(i) if inner is not None else []
            if points[i] > 0:
                found = sorted([*found, (float(points[i]), words[i])], key=lambda x: -x[0])[:4]
            return found

        record.explain = explain


def score_accounts(account_ids: np.ndarray, features: Features, model: Model | None = None, intel: Any = None, *,
                   coordination: np.ndarray | None = None, coordination_reasons: list[str] | None = None,
                   decisions: Mapping[str, AnalystDecision] | None = None, explain: bool = True,
                   fit: bool = True, group: GroupEvidence | None = None) -> Scores:
    """Risk, verdict and reasons for every account (evidence -> :func:`distillguard.decide.decide`).

    With ``fit`` (batch detection) the model's baselines are measured on these same accounts, i.e. on the
    deployment; ``fit=False`` scores against the baselines the model already holds (gateway, prefixes).
    ``group`` adds what attribution found about the campaign an account belongs to to one of its own families.
    """
    model = model or Model.load()
    if fit:
        model = model.with_baselines(Baselines.fit(features))
    evidence = model.evidence(features)
    record = model.record(features, evidence)
    if group is not None:
        group.apply(record)
    record.coordination = coordination
    record.coordination_reasons = coordination_reasons
    if intel is not None:
        record.intel_score, record.intel_corroborated, record.intel_reasons = intel_columns(account_ids, intel)
    if decisions:
        record.analyst, record.analyst_points, record.analyst_families = analyst_columns(account_ids, decisions)
    decided: Decisions = decide(record, model.policy, explain=explain)
    components = dict(record.families)
    components.update({f"item:{name}": finding.points for name, finding in evidence.findings.items()})
    components["own"] = decided.own
    components["points"] = decided.points
    if record.intel_score is not None:
        components["intel"] = record.intel_score
    return Scores(np.asarray(account_ids, dtype=object), decided.risk, decided.verdicts, decided.reasons,
                  components)


__all__ = ["DEFAULT_DETECTORS", "DETECTORS", "FAMILIES", "Baselines", "Detector", "Evidence", "FamilyDetector",
           "GroupEvidence", "Model", "Record", "Scores", "build", "check_detector", "intel_columns", "register",
           "score_accounts"]
