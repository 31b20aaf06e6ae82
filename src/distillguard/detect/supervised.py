"""Supervised detector: gradient-boosted trees trained on simulator ground truth.

Trained with scikit-learn's HistGradientBoostingClassifier, shipped as plain JSON
(the trees' split arrays, not a pickle) and evaluated here with numpy, so loading
the artifact never executes code and does not depend on scikit-learn internals.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from distillguard.detect.base import Features
from distillguard.features.compute import FEATURE_NAMES

# readable names for the features most often behind a supervised verdict
FEATURE_WORDS: dict[str, str] = {
    "cot_share": "share of chain-of-thought prompts", "coerce_share": "share of reasoning-trace demands",
    "rubric_share": "share of grading requests", "cap_coverage": "breadth of capability coverage",
    "cap_entropy": "evenness of capability coverage", "log_ip": "number of IP addresses",
    "ip_per_req": "IP addresses per request", "log_prefix": "number of network prefixes",
    "new_model_speed": "speed of moving to the new model", "new_model_share": "share of traffic on the new model",
    "gap_cv": "regularity of request timing", "hour_entropy": "flatness of the daily profile",
    "single_turn_share": "share of single-turn requests", "hit_cap_share": "share of outputs hitting the limit",
    "big_budget_share": "share of long output budgets", "tpl_ratio": "prompt template variety",
    "params_ratio": "sampling-parameter variety", "age_days": "account age at first use",
    "log_payment_shared": "accounts sharing the payment card", "n_scripts": "number of writing systems",
    "log_n": "request volume", "peer_log_n": "volume versus its tier", "log_rate": "request rate",
    "probe_share": "share of refusal probes", "tool_share": "share of tool-use requests",
}


def _export_tree(nodes: np.ndarray) -> dict[str, list]:
    return {"feature": nodes["feature_idx"].astype(int).tolist(),
            "threshold": [float(t) for t in nodes["num_threshold"]],
            "missing_left": nodes["missing_go_to_left"].astype(int).tolist(),
            "left": nodes["left"].astype(int).tolist(), "right": nodes["right"].astype(int).tolist(),
            "leaf": nodes["is_leaf"].astype(int).tolist(), "value": [float(v) for v in nodes["value"]]}


class SupervisedDetector:
    name = "supervised"

    def __init__(self, names: tuple[str, ...] = FEATURE_NAMES, trees: list[dict[str, np.ndarray]] | None = None,
                 baseline: float = 0.0, reference: dict[str, tuple[float, float]] | None = None,
                 importance: dict[str, float] | None = None) -> None:
        self.names = names
        self.trees = trees or []
        self.baseline = baseline
        self.reference = reference or {}  # feature -> (benign median, benign spread) for explanations
        self.importance = importance or {}

    def _matrix(self, features: Features) -> np.ndarray:
        return np.column_stack([np.asarray(features[n], dtype=np.float64) for n in self.names])

    def fit(self, features: Features, labels: np.ndarray | None = None, seed: int = 0) -> SupervisedDetector:
        from sklearn.ensemble import HistGradientBoostingClassifier

        if labels is None:
            raise ValueError("the supervised detector needs labels")
        x, y = self._matrix(features), np.asarray(labels).astype(int)
        model = HistGradientBoostingClassifier(max_iter=150, learning_rate=0.08, max_leaf_nodes=15,
                                               min_samples_leaf=10, l2_regularization=1.0, random_state=seed)
        model.fit(x, y)
        self.baseline = float(np.ravel(model._baseline_prediction)[0])
        self.trees = []
        gain = np.zeros(len(self.names))
        for (predictor,) in model._predictors:
            nodes = predictor.nodes
            self.trees.append({k: np.asarray(v) for k, v in _export_tree(nodes).items()})
            split = ~nodes["is_leaf"].astype(bool)
            np.add.at(gain, nodes["feature_idx"][split], nodes["gain"][split])
        total = gain.sum() or 1.0
        self.importance = {n: float(g / total) for n, g in zip(self.names, gain, strict=True) if g > 0}
        benign = x[y == 0]
        self.reference = {}
        for j, n in enumerate(self.names):
            col = benign[:, j][np.isfinite(benign[:, j])]
            if len(col):
                lo, med, hi = np.quantile(col, [0.05, 0.5, 0.95])
                self.reference[n] = (float(med), float(max(hi - lo, 1e-6)))
        return self

    def raw(self, features: Features) -> np.ndarray:
        """Log-odds: baseline plus the leaf value of every tree."""
        x = self._matrix(features)
        out = np.full(len(x), self.baseline)
        rows = np.arange(len(x))
        for t in self.trees:
            node = np.zeros(len(x), dtype=np.int64)
            active = ~t["leaf"][node].astype(bool)
            while active.any():
                idx = node[active]
                v = x[rows[active], t["feature"][idx]]
                go_left = np.where(np.isnan(v), t["missing_left"][idx].astype(bool), v <= t["threshold"][idx])
                node[active] = np.where(go_left, t["left"][idx], t["right"][idx])
                active = ~t["leaf"][node].astype(bool)
            out += t["value"][node]
        return out

    def score(self, features: Features) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-self.raw(features)))

    def explain(self, features: Features, index: int) -> list[tuple[float, str]]:
        """Important features where this account sits far outside the benign range."""
        out = []
        for name, weight in sorted(self.importance.items(), key=lambda kv: -kv[1])[:12]:
            if name not in self.reference or name.startswith(("emb_", "peer_")):
                continue
            value = float(features[name][index])
            median, spread = self.reference[name]
            if not np.isfinite(value) or abs(value - median) <= spread:
                continue
            words = FEATURE_WORDS.get(name, name.replace("_", " "))
            direction = "unusually high" if value > median else "unusually low"
            out.append((weight * min(abs(value - median) / spread, 3.0), f"{direction} {words}"))
        return sorted(out, key=lambda kv: -kv[0])[:3]

    def to_json(self) -> dict[str, Any]:
        return {"names": list(self.names), "baseline": self.baseline,
                "trees": [{k: v.tolist() for k, v in t.items()} for t in self.trees],
                "reference": {k: list(v) for k, v in self.reference.items()}, "importance": self.importance}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SupervisedDetector:
        trees = [{k: np.asarray(v, dtype=np.float64 if k in ("threshold", "value") else np.int64)
                  for k, v in t.items()} for t in data["trees"]]
        return cls(tuple(data["names"]), trees, float(data["baseline"]),
                   {k: (float(v[0]), float(v[1])) for k, v in data["reference"].items()}, data["importance"])
