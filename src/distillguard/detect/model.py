"""The shipped detector bundle: rules + distribution test + supervised trees + calibrated fusion.

Fusion is a logistic regression over the three detector outputs, fitted on
out-of-fold scores so it is calibrated on data the trees did not see; the risk in [0, 1]
is its output, raised to the strong-rule floor (``rules.FLOOR``) where a campaign-agnostic
harvesting rule fires. The bundle is one gzipped JSON file (no pickle), versioned.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from distillguard.detect.base import Features, rows
from distillguard.detect.distribution import DistributionDetector
from distillguard.detect.rules import RULES, RulesDetector
from distillguard.detect.supervised import SupervisedDetector
from distillguard.features.compute import FEATURE_NAMES

ARTIFACT_FORMAT = 1
DEFAULT_ARTIFACT = "detector-v1.json.gz"


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def fusion_inputs(supervised: np.ndarray, rules: np.ndarray, distribution: np.ndarray) -> np.ndarray:
    return np.column_stack([_logit(supervised), rules, distribution])


@dataclass
class Model:
    supervised: SupervisedDetector
    distribution: DistributionDetector
    rules: RulesDetector = field(default_factory=RulesDetector)
    coef: np.ndarray = field(default_factory=lambda: np.array([1.0, 0.0, 0.0]))
    intercept: float = 0.0
    meta: dict[str, Any] = field(default_factory=dict)

    def components(self, features: Features) -> dict[str, np.ndarray]:
        if not rows(features):
            empty = np.zeros(0)
            return {"supervised": empty, "rules": empty, "distribution": empty, "floor": empty}
        fired = self.rules.fired(features)
        return {"supervised": self.supervised.score(features), "rules": self.rules.score(features, fired),
                "distribution": self.distribution.score(features), "floor": self.rules.floor(features, fired)}

    def fuse(self, parts: dict[str, np.ndarray]) -> np.ndarray:
        """Calibrated fusion, never below the strong-rule floor (``parts['floor']``, 0 when absent)."""
        z = fusion_inputs(parts["supervised"], parts["rules"], parts["distribution"]) @ self.coef + self.intercept
        risk = 1.0 / (1.0 + np.exp(-z))
        floor = parts.get("floor")
        return risk if floor is None else np.maximum(risk, floor)

    def risk(self, features: Features) -> np.ndarray:
        return self.fuse(self.components(features))

    # ---- persistence ------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {"format": ARTIFACT_FORMAT, "features": list(FEATURE_NAMES), "rules": [r.name for r in RULES],
                "supervised": self.supervised.to_json(), "distribution": self.distribution.to_json(),
                "fusion": {"coef": self.coef.tolist(), "intercept": self.intercept}, "meta": self.meta}

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(gzip.compress(orjson.dumps(self.to_json(), option=orjson.OPT_SERIALIZE_NUMPY), 9))

    @classmethod
    def load(cls, path: Path | None = None) -> Model:
        """Load an artifact (the one shipped in ``distillguard/data/models`` by default)."""
        if path is None:
            raw = resources.files("distillguard").joinpath("data", "models", DEFAULT_ARTIFACT).read_bytes()
        else:
            raw = Path(path).read_bytes()
        try:
            data = orjson.loads(gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw)
        except (OSError, orjson.JSONDecodeError) as exc:
            raise ValueError(f"{path or DEFAULT_ARTIFACT}: not a detector artifact ({exc})") from None
        if data.get("format") != ARTIFACT_FORMAT:
            raise ValueError(f"{path or DEFAULT_ARTIFACT}: unsupported artifact format {data.get('format')}")
        if tuple(data["features"]) != FEATURE_NAMES:
            raise ValueError(f"{path or DEFAULT_ARTIFACT}: trained on other features; retrain with "
                             "`distillguard train`")
        return cls(SupervisedDetector.from_json(data["supervised"]),
                   DistributionDetector.from_json(data["distribution"]), RulesDetector(),
                   np.asarray(data["fusion"]["coef"], dtype=np.float64), float(data["fusion"]["intercept"]),
                   data.get("meta", {}))
