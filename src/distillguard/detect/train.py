"""Training the shipped detector on simulator ground truth (``distillguard train``).

A simulation directory (``distillguard simulate --out DIR``) is ingested once into
``DIR/_store`` and reused. The supervised trees and the distribution reference are
fitted on all training accounts; fusion is fitted on out-of-fold scores (leave one
campaign type out) so the risk it outputs is calibrated on accounts, and campaign
types, the trees did not see.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from distillguard.detect.base import Features
from distillguard.detect.distribution import DistributionDetector
from distillguard.detect.model import Model, fusion_inputs
from distillguard.detect.rules import RulesDetector
from distillguard.detect.supervised import SupervisedDetector
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


def _folds(kinds: np.ndarray, y: np.ndarray, seed: int) -> list[np.ndarray]:
    """Test masks that each hold out one whole campaign type (plus a random share of benign accounts).

    Out-of-fold scores then come from trees that never saw the attacker's campaign type,
    so fusion learns how much to trust rules and the distribution test on *new* campaigns.
    """
    types = sorted({str(k) for k in kinds[y == 1]})
    if len(types) < 2:
        types = ["fold0", "fold1", "fold2", "fold3"]
        kinds = np.array([types[i % 4] for i in range(len(y))], dtype=object)
    rng = np.random.default_rng(seed)
    benign = np.flatnonzero(y == 0)
    benign_fold = rng.permutation(len(benign)) % len(types)
    masks = []
    for k, t in enumerate(types):
        mask = (kinds.astype(str) == t) & (y == 1)
        mask[benign[benign_fold == k]] = True
        masks.append(mask)
    return masks


def fit_fusion(x: np.ndarray, y: np.ndarray, l2: float = 1e-2) -> tuple[np.ndarray, float]:
    """Platt-style logistic fusion with non-negative weights: more evidence never lowers risk."""
    from scipy.optimize import minimize

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        z = x @ w[:-1] + w[-1]
        p = 1.0 / (1.0 + np.exp(-z))
        eps = 1e-9
        value = -np.mean(y * np.log(p + eps) + (1 - y) * np.log(1 - p + eps)) + l2 * np.sum(w[:-1] ** 2)
        g = p - y
        grad = np.append(x.T @ g / len(y) + 2 * l2 * w[:-1], g.mean())
        return value, grad

    start = np.append(np.full(x.shape[1], 0.5), 0.0)
    bounds = [(0.0, None)] * x.shape[1] + [(None, None)]
    result = minimize(loss, start, jac=True, method="L-BFGS-B", bounds=bounds)
    return result.x[:-1].astype(float), float(result.x[-1])


def fit_model(features: Features, labels: np.ndarray, kinds: np.ndarray, *, seed: int = 0,
              meta: dict | None = None) -> Model:
    """Fit all detectors and a calibrated fusion (on out-of-fold detector scores)."""
    y = np.asarray(labels).astype(int)
    if len(np.unique(y)) < 2:
        raise ValueError("training data needs both attack and benign accounts")
    oof = np.zeros((len(y), 3))
    rules = RulesDetector()
    for test in _folds(np.asarray(kinds, dtype=object), y, seed):
        train = ~test
        if len(np.unique(y[train])) < 2:
            continue
        sub = {k: v[train] for k, v in features.items()}
        held = {k: v[test] for k, v in features.items()}
        sup = SupervisedDetector().fit(sub, y[train], seed=seed)
        dist = DistributionDetector().fit(sub, y[train])
        oof[test] = fusion_inputs(sup.score(held), rules.score(held), dist.score(held))
    # Accounts a strong rule already lifts to throttle (rules.FLOOR) are left out of the fusion fit: fusion is
    # calibrated for the evidence the floor does not cover. Fitted on them too, the unseen-type attackers the floor
    # catches anyway pushed the intercept up until benign accounts with supervised scores of ~0.01 reached throttle.
    free = rules.floor(features) == 0
    if len(np.unique(y[free])) < 2:
        free[:] = True
    coef, intercept = fit_fusion(oof[free], y[free])
    model = Model(SupervisedDetector().fit(features, y, seed=seed), DistributionDetector().fit(features, y), rules,
                  coef, intercept, dict(meta or {}))
    model.meta.setdefault("trained", datetime.now(UTC).isoformat(timespec="seconds"))
    model.meta.update({"accounts": int(len(y)), "attack_accounts": int(y.sum())})
    return model


def train(simdirs: list[Path], out: Path, *, exclude_types: tuple[str, ...] = (), seed: int = 0) -> Model:
    """Train on simulation directories (optionally without some campaign types) and save to ``out``."""
    data = [load_simulation(d) for d in simdirs]
    model = fit_labelled(data, exclude_types=exclude_types, seed=seed)
    model.save(Path(out))
    return model


def fit_labelled(data: list[Labelled], *, exclude_types: tuple[str, ...] = (), seed: int = 0) -> Model:
    keep = [~np.isin(d.kind, list(exclude_types)) | (d.label == 0) for d in data]
    features = concat([{k: v[m] for k, v in d.table.features.items()} for d, m in zip(data, keep, strict=True)])
    labels = np.concatenate([d.label[m] for d, m in zip(data, keep, strict=True)])
    kinds = np.concatenate([d.kind[m] for d, m in zip(data, keep, strict=True)])
    meta = {"trained_on": [d.source.name for d in data], "excluded_types": list(exclude_types)}
    return fit_model(features, labels, kinds, seed=seed, meta=meta)
