"""The interface every detector shares (scikit-learn-like) and the column helpers they use."""

from __future__ import annotations

from typing import Protocol

import numpy as np

Features = dict[str, np.ndarray]  # feature name -> column, rows aligned across columns


class Detector(Protocol):
    name: str

    def fit(self, features: Features, labels: np.ndarray | None = None) -> Detector:
        ...

    def score(self, features: Features) -> np.ndarray:
        """One score per account in [0, 1]; higher is more suspicious."""
        ...

    def explain(self, features: Features, index: int) -> list[tuple[float, str]]:
        """(weight, reason in analyst words) for account ``index``, strongest first."""
        ...


def rows(features: Features) -> int:
    return len(next(iter(features.values()))) if features else 0


def column(features: Features, name: str) -> np.ndarray:
    return np.nan_to_num(np.asarray(features[name], dtype=np.float64), nan=0.0)
