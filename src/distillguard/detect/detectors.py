"""The registered detectors: one per evidence family (:mod:`distillguard.detect.evidence`).

Each fits the deployment's baselines (:class:`~distillguard.detect.baselines.Baselines`) on the accounts it
is given, scores its family's items against them and explains them in words. The default bundle
(:data:`DEFAULT_DETECTORS`) is every family; a configuration can name a subset or add a detector of its own
registered with :func:`distillguard.detect.base.register`.
"""

from __future__ import annotations

import numpy as np

from distillguard.detect.base import Detector, Features, register, rows
from distillguard.detect.baselines import Baselines
from distillguard.detect.evidence import FAMILIES, FAMILY_CAP, ITEMS, Finding, Item


class FamilyDetector:
    """Evidence of one family: its items' points, capped, against baselines fitted on the deployment."""

    def __init__(self, family: str, baselines: Baselines | None = None) -> None:
        if family not in FAMILIES:
            raise ValueError(f"unknown evidence family {family!r} (known: {', '.join(FAMILIES)})")
        self.name = family
        self.items: tuple[Item, ...] = tuple(item for item in ITEMS if item.family == family)
        self.cap = FAMILY_CAP[family]
        self.baselines = baselines or Baselines()

    def fit(self, features: Features, labels: np.ndarray | None = None) -> FamilyDetector:
        self.baselines = Baselines.fit(features)
        return self

    def findings(self, features: Features) -> dict[str, Finding]:
        return {item.name: item.measure(features, self.baselines) for item in self.items}

    def score(self, features: Features) -> np.ndarray:
        if not rows(features):
            return np.zeros(0)
        total = np.zeros(rows(features))
        for finding in self.findings(features).values():
            total += finding.points
        return np.minimum(total, self.cap)

    def explain(self, features: Features, index: int) -> list[tuple[float, str]]:
        one = {k: np.asarray(v)[index:index + 1] for k, v in features.items()}
        out = []
        for item, finding in zip(self.items, self.findings(one).values(), strict=True):
            if finding.points[0] > 0:
                out.append((min(float(finding.points[0]), self.cap), item.says(finding, one, 0)))
        return sorted(out, key=lambda x: -x[0])


for _family in FAMILIES:
    register(_family)(lambda baselines=None, _f=_family: FamilyDetector(_f, baselines))

DEFAULT_DETECTORS: tuple[str, ...] = tuple(FAMILIES)

__all__ = ["DEFAULT_DETECTORS", "Detector", "FamilyDetector"]
