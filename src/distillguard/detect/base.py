"""The interface every detector shares (scikit-learn-like), its registry and its conformance check.

A detector turns account features into *evidence points* (>= 0, higher is more suspicious) and says why:

* ``fit(features, labels=None) -> self``: learn what is usual from the deployment's own accounts (labels are
  optional: detectors that can use analyst or simulator labels may, none needs them);
* ``score(features) -> points`` (one float per account);
* ``explain(features, i) -> [(points, words)]``, strongest first, none worth more than the score.

Detectors are registered by name (:func:`register`) and built from configuration by name
(:func:`build`); :func:`check_detector` is the conformance test every registered detector passes, like
scikit-learn's ``check_estimator``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar, runtime_checkable

import numpy as np

Features = dict[str, np.ndarray]  # feature name -> column, rows aligned across columns


@runtime_checkable
class Detector(Protocol):
    name: str

    def fit(self, features: Features, labels: np.ndarray | None = None) -> Detector:
        ...

    def score(self, features: Features) -> np.ndarray:
        """Evidence points per account (>= 0); higher is more suspicious."""
        ...

    def explain(self, features: Features, index: int) -> list[tuple[float, str]]:
        """(points, reason in analyst words) for account ``index``, strongest first."""
        ...


def rows(features: Features) -> int:
    return len(next(iter(features.values()))) if features else 0


def column(features: Features, name: str) -> np.ndarray:
    return np.nan_to_num(np.asarray(features[name], dtype=np.float64), nan=0.0)


DETECTORS: dict[str, Callable[..., Detector]] = {}
D = TypeVar("D")


def register(name: str) -> Callable[[D], D]:
    """Class or factory decorator: make a detector buildable by ``name``."""

    def wrap(factory: D) -> D:
        if name in DETECTORS:
            raise ValueError(f"detector {name!r} is already registered")
        DETECTORS[name] = factory  # type: ignore[assignment]
        return factory

    return wrap


def build(name: str, **options: Any) -> Detector:
    """A registered detector by name (``options`` go to its constructor)."""
    try:
        factory = DETECTORS[name]
    except KeyError:
        known = ", ".join(sorted(DETECTORS)) or "none"
        raise ValueError(f"unknown detector {name!r} (registered: {known})") from None
    return factory(**options)


def check_detector(detector: Detector, features: Features) -> None:
    """Raise AssertionError if ``detector`` breaks the shared contract on ``features`` (>= 2 accounts)."""
    assert isinstance(detector.name, str) and detector.name, "a detector has a non-empty name"
    assert detector.fit(features) is detector, "fit returns the detector itself"
    n = rows(features)
    points = np.asarray(detector.score(features))
    assert points.shape == (n,), f"score returns one value per account, got shape {points.shape}"
    assert np.all(np.isfinite(points)) and np.all(points >= 0), "points are finite and non-negative"
    assert np.array_equal(points, np.asarray(detector.score(features))), "score is deterministic"
    one = {k: v[:1] for k, v in features.items()}
    assert np.allclose(np.asarray(detector.score(one)), points[:1]), "an account scores alike alone or in a batch"
    empty = {k: v[:0] for k, v in features.items()}
    assert np.asarray(detector.score(empty)).shape == (0,), "no accounts, no scores"
    for i in range(min(n, 50)):
        found = detector.explain(features, i)
        assert all(isinstance(w, str) and w and p > 0 for p, w in found), "reasons are (points > 0, words)"
        assert all(p <= points[i] + 1e-6 for p, _ in found), "no reason is worth more than the score"
        assert (points[i] > 0) == bool(found), "an account with points is explained, one without is not"
        assert [p for p, _ in found] == sorted((p for p, _ in found), reverse=True), "strongest reason first"
