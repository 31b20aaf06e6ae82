"""Refitting the decision weights on labelled accounts (``distillguard train``).

Detection needs no labels: every detector measures the deployment against its own baselines. What labels
(a simulation's ground truth, or an analyst's confirmed and dismissed accounts) can add is how much each
evidence *family* should weigh: a logistic regression with non-negative weights over the family points
(more evidence never lowers risk), folded into the :class:`~distillguard.decide.DecisionPolicy` of the
artifact. The thresholds, the two-family rule and the caps stay as they are, so a refit cannot make one
family decide alone.

A simulation directory (``distillguard simulate --out DIR``) is ingested once into ``DIR/_store`` and reused.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from distillguard.decide import COORDINATION, DecisionPolicy
from distillguard.detect.base import Features
from distillguard.detect.baselines import Baselines
from distillguard.detect.model import Model
from distillguard.features import FeatureTable, account_features, attach_signals
from distillguard.signals import SIGNALS
from distillguard.store import Store


@dataclass
class Labelled:
    """One simulation's accounts with ground truth, aligned with ``table`` rows."""

    source: Path
    table: FeatureTable
    label: np.ndarray  # 1 attack, 0 benign
    campaign: np.ndarray  # campaign id ('' for benign)
    kind: np.ndarray  # benign population or attack campaign type
    store: Store


def read_labels(path: Path) -> dict[str, tuple[int, str, str]]:
    """labels.csv -> account_id -> (label, campaign, population); errors name file, line and field."""
    out: dict[str, tuple[int, str, str]] = {}
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = {"account_id", "label"} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path}:1: header lacks field(s) {', '.join(sorted(missing))}")
        for line, row in enumerate(reader, 2):
            if row["label"] not in ("benign", "attack"):
                raise ValueError(f"{path}:{line}: field 'label': expected benign|attack, got {row['label']!r}")
            out[row["account_id"]] = (int(row["label"] == "attack"), row.get("campaign") or "",
                                      row.get("population") or "")
    return out


def open_simulation(simdir: Path) -> Store:
    """The store of a simulation directory, ingesting it on first use."""
    from distillguard.ingest.pipeline import ingest

    simdir = Path(simdir)
    if not (simdir / "labels.csv").exists():
        raise ValueError(f"{simdir}: not a simulation directory (no labels.csv)")
    root = simdir / "_store"
    if (root / ".complete").exists():
        return Store.open(root)
    import shutil

    shutil.rmtree(root, ignore_errors=True)
    store = Store.open(root)
    accounts = simdir / "accounts.jsonl"
    ingest([simdir / "exchanges"], store, accounts=accounts if accounts.exists() else None)
    (root / ".complete").touch()
    return store


def load_simulation(simdir: Path, until_ms: int | None = None) -> Labelled:
    store = open_simulation(simdir)
    con = store.connect()
    attach_signals(con, store, store.derived(SIGNALS))
    table = account_features(con, until_ms=until_ms)
    labels = read_labels(Path(simdir) / "labels.csv")
    truth = [labels.get(a, (0, "", "unknown")) for a in table.account_ids]
    return Labelled(Path(simdir), table, np.array([t[0] for t in truth]), np.array([t[1] for t in truth], dtype=object),
                    np.array([t[2] for t in truth], dtype=object), store)


def concat(features: list[Features]) -> Features:
    return {k: np.concatenate([f[k] for f in features]) for k in features[0]}


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1e-2) -> tuple[np.ndarray, float]:
    """Logistic regression with non-negative weights (balanced classes): more evidence never lowers risk."""
    from scipy.optimize import minimize

    pos = max(float(y.mean()), 1e-9)
    sample = np.where(y == 1, 0.5 / pos, 0.5 / max(1.0 - pos, 1e-9))

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        z = x @ w[:-1] + w[-1]
        p = 1.0 / (1.0 + np.exp(-z))
        eps = 1e-9
        value = -np.mean(sample * (y * np.log(p + eps) + (1 - y) * np.log(1 - p + eps))) + l2 * np.sum(w[:-1] ** 2)
        g = sample * (p - y)
        grad = np.append(x.T @ g / len(y) + 2 * l2 * w[:-1], g.mean())
        return value, grad

    start = np.append(np.full(x.shape[1], 0.5), 0.0)
    bounds = [(0.0, None)] * x.shape[1] + [(None, None)]
    result = minimize(loss, start, jac=True, method="L-BFGS-B", bounds=bounds)
    return result.x[:-1].astype(float), float(result.x[-1])


def policy_from_fit(policy: DecisionPolicy, names: list[str], coef: np.ndarray, intercept: float) -> DecisionPolicy:
    """Fitted family weights, scaled so the fitted model and the policy cross throttle at the same evidence.

    The fit is ``risk = sigmoid(intercept + coef . points)``; it reaches the throttle threshold where
    ``coef . points = logit(throttle) - intercept``, and the policy where ``sum(weight * points) = throttle_points``.
    """
    import math

    crossing = math.log(policy.throttle / (1 - policy.throttle)) - intercept
    scale = policy.throttle_points / crossing if crossing > 0 else 1.0
    return replace(policy, weights={name: round(float(w) * scale, 4) for name, w in zip(names, coef, strict=True)})


def train(simdirs: list[Path], out: Path, *, exclude_types: tuple[str, ...] = ()) -> Model:
    """Refit the decision weights on simulation directories (optionally without some types) and save."""
    data = [load_simulation(d) for d in simdirs]
    model = fit_labelled(data, exclude_types=exclude_types)
    model.save(Path(out))
    return model


def fit_labelled(data: list[Labelled], *, exclude_types: tuple[str, ...] = ()) -> Model:
    """Each simulation is its own deployment (own baselines); the weights are fitted on all of them."""
    keep = [~np.isin(d.kind, list(exclude_types)) | (d.label == 0) for d in data]
    base = Model.load()
    xs, ys, names = [], [], None
    for d, m in zip(data, keep, strict=True):
        feats = {k: v[m] for k, v in d.table.features.items()}
        record = base.with_baselines(Baselines.fit(feats)).record(feats)
        names = [n for n in record.families if n != COORDINATION]
        xs.append(np.column_stack([record.families[n] for n in names]))
        ys.append(d.label[m])
    x, y = np.concatenate(xs), np.concatenate(ys)
    if len(np.unique(y)) < 2:
        raise ValueError("training data needs both attack and benign accounts")
    coef, intercept = fit_logistic(x, y)
    model = Model(base.detectors, policy_from_fit(base.policy, names or [], coef, intercept), Baselines(),
                  dict(base.meta))
    model.meta.update({"trained": datetime.now(UTC).isoformat(timespec="seconds"), "accounts": int(len(y)),
                       "attack_accounts": int(y.sum()), "trained_on": [d.source.name for d in data],
                       "excluded_types": list(exclude_types)})
    return model
