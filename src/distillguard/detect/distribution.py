"""Distribution test: MMD between an account's requests and benign reference traffic.

Each request is mapped to random Fourier features of its descriptor (see
``features.stats.DESCRIPTOR``), so an account's kernel mean embedding is just the
mean of those features, which batch and gateway already keep as sums. Benign
traffic is not one distribution (app backends, campuses, coding agents differ),
so the reference is a handful of benign cluster means; the statistic is the squared
MMD to the nearest one, less its small-sample bias (~1/n), scaled by the benign
99th percentile so 1.0 means "as unusual as the rarest 1% of benign accounts".
"""

from __future__ import annotations

from typing import Any

import numpy as np

from distillguard.detect.base import Features, column
from distillguard.features.stats import EMB_DIM

EMB_NAMES = tuple(f"emb_{j}" for j in range(EMB_DIM))
CLUSTERS = 8


def _kmeans(x: np.ndarray, weights: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    k = min(k, len(x))
    centers = x[rng.choice(len(x), size=k, replace=False)]
    for _ in range(30):
        assign = np.argmin(((x[:, None, :] - centers[None]) ** 2).sum(-1), axis=1)
        for c in range(k):
            m = assign == c
            if m.any():
                centers[c] = np.average(x[m], axis=0, weights=weights[m])
    return centers


class DistributionDetector:
    name = "distribution"

    def __init__(self, centers: np.ndarray | None = None, scale: float = 1.0) -> None:
        self.centers = centers
        self.scale = scale

    def statistic(self, features: Features) -> np.ndarray:
        x = np.column_stack([column(features, n) for n in EMB_NAMES])
        n = np.maximum(np.expm1(column(features, "log_n")), 1.0)
        d2 = ((x[:, None, :] - self.centers[None]) ** 2).sum(-1).min(axis=1)
        return np.maximum(d2 - 1.0 / n, 0.0)

    def fit(self, features: Features, labels: np.ndarray | None = None) -> DistributionDetector:
        """Reference = benign accounts (all accounts when unlabelled), weighted by sqrt(volume)."""
        benign = np.ones(len(features["log_n"]), dtype=bool) if labels is None else np.asarray(labels) == 0
        x = np.column_stack([column(features, n)[benign] for n in EMB_NAMES])
        weights = np.sqrt(np.expm1(column(features, "log_n")[benign]) + 1)
        self.centers = _kmeans(x, weights, CLUSTERS)
        self.scale = 1.0
        stat = self.statistic({k: v[benign] for k, v in features.items()})
        self.scale = float(max(np.quantile(stat, 0.99), 1e-4))
        return self

    def score(self, features: Features) -> np.ndarray:
        """Squared MMD in units of the benign 99th percentile, squashed to [0, 1)."""
        z = self.statistic(features) / self.scale
        return z / (1.0 + z)

    def explain(self, features: Features, index: int) -> list[tuple[float, str]]:
        z = float(self.statistic({k: v[index:index + 1] for k, v in features.items()})[0] / self.scale)
        if z < 1.0:
            return []
        return [(min(z / 10, 0.5), f"request mix unlike benign reference traffic (MMD {z:.1f}x the benign 99th "
                                   f"percentile)")]

    def to_json(self) -> dict[str, Any]:
        return {"centers": self.centers.tolist(), "scale": self.scale}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DistributionDetector:
        return cls(np.asarray(data["centers"], dtype=np.float64), float(data["scale"]))
