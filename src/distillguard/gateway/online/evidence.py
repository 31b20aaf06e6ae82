"""Online evidence from online features: batch detection's own detectors, many accounts per vectorised call."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from distillguard.decide import DecisionPolicy, decide, flagged
from distillguard.detect.baselines import Baselines
from distillguard.detect.evidence import coordination_eligible
from distillguard.gateway.scoring import Online

EvidenceFn = Callable[[list[dict[str, float]]], list[Online]]


class EvidenceScorer:
    """Batch detection's detectors on online features, many accounts per call (one vectorised pass)."""

    def __init__(self, model: Any = None, policy: DecisionPolicy | None = None) -> None:
        if model is None:
            from distillguard.detect.model import Model

            model = Model.load()
        self.model = model
        self.policy = policy or model.policy

    def set_baselines(self, baselines: Baselines) -> None:
        self.model = self.model.with_baselines(baselines)

    def many(self, features: list[dict[str, float]]) -> list[Online]:
        if not features:
            return []
        columns = {name: np.array([f[name] for f in features]) for name in features[0]}
        evidence = self.model.evidence(columns)
        record = self.model.record(columns, evidence)
        items = {name: finding.points for name, finding in evidence.findings.items()}
        eligible = coordination_eligible(record.families, items)
        out = []
        for i in range(len(features)):
            families = {name: round(float(points[i]), 6) for name, points in record.families.items()
                        if points[i] > 0}
            reasons = tuple(f"online: {words}" for _, words in record.explain(i)) if families else ()
            out.append(Online(float(record.n[i]), families, reasons, eligible=bool(eligible[i])))
        return out

    def flags(self, evidence: Online) -> bool:
        """Whether online evidence alone restricts the account (its payment-linked peers become suspect)."""
        if not evidence.families:
            return False
        record_families = {k: np.array([v]) for k, v in evidence.families.items()}
        from distillguard.decide import Record

        d = decide(Record(np.array([evidence.n]), record_families), self.policy, explain=False)
        return flagged(d.verdicts[0])

    def __call__(self, features: list[dict[str, float]]) -> list[Online]:
        return self.many(features)
