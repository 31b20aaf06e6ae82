"""Detectors (rules, distribution test, supervised trees) fused into a calibrated risk, verdict and reasons."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from distillguard.decide import WATCH, verdict
from distillguard.detect.base import Detector, Features
from distillguard.detect.distribution import DistributionDetector
from distillguard.detect.model import Model, fusion_inputs
from distillguard.detect.rules import RULES, RulesDetector
from distillguard.detect.supervised import SupervisedDetector

MAX_REASONS = 4
INTEL_WEIGHT = 0.9  # a full-strength, corroborated intel match alone reaches block (noisy-OR with our evidence)


@dataclass
class Scores:
    """Per-account detection output, aligned with the feature table's rows."""

    account_ids: np.ndarray
    risk: np.ndarray
    verdicts: list[str]
    reasons: list[list[str]]
    components: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.account_ids)


def _intel_columns(account_ids: np.ndarray, intel) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Intel matches (table or mapping rows with account_id, intel_score, intel_reasons, corroborated)."""
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


def score_accounts(account_ids: np.ndarray, features: Features, model: Model | None = None,
                   intel=None, *, explain: bool = True) -> Scores:
    """Risk, verdict and top reasons for every account.

    Intel enters as one more piece of evidence (noisy-OR). An account is corroborated
    when our own detectors already watch it or the intel says several members saw it;
    otherwise intel alone can throttle but never block (see :mod:`distillguard.decide`).
    ``explain=False`` skips the reasons (evaluation replays score many prefixes).
    """
    model = model or Model.load()
    parts = model.components(features)
    own = model.fuse(parts) if len(account_ids) else np.zeros(0)
    intel_score, intel_corroborated, intel_reasons = _intel_columns(account_ids, intel)
    risk = 1.0 - (1.0 - own) * (1.0 - INTEL_WEIGHT * intel_score)
    corroborated = (own >= WATCH) | intel_corroborated
    verdicts = [verdict(float(r), corroborated=bool(c)) for r, c in zip(risk, corroborated, strict=True)]
    fired = model.rules.fired(features)
    reasons: list[list[str]] = []
    for i in range(len(account_ids) if explain else 0):
        found = [(rule.weight, rule.says(features, i)) for rule, hit in zip(RULES, fired[i], strict=True) if hit]
        if risk[i] >= WATCH:
            found += model.distribution.explain(features, i)
            found += model.supervised.explain(features, i)
        if intel_score[i] > 0:
            found.append((INTEL_WEIGHT * intel_score[i], f"shared intel: {intel_reasons[i] or 'indicator match'}"))
        reasons.append([text for _, text in sorted(found, key=lambda x: -x[0])[:MAX_REASONS]])
    parts = dict(parts, own=own, intel=intel_score)
    return Scores(np.asarray(account_ids, dtype=object), risk, verdicts, reasons, parts)


__all__ = ["Detector", "DistributionDetector", "Model", "RulesDetector", "Scores", "SupervisedDetector",
           "fusion_inputs", "score_accounts"]
