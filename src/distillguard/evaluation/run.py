"""``distillguard eval``: quality on held-out simulations, never on the data the model was fitted on.

* held-out seeds: train on simulations A..., detect on simulation B (full pipeline);
* leave-one-campaign-type-out: train without any account of type T, measure recall on T;
* time to detection: replay B on growing time prefixes (finer where campaigns start) and
  record how many exchanges each campaign had harvested before one of its accounts was flagged.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from distillguard.decide import flagged
from distillguard.detect import Model, score_accounts
from distillguard.detect.train import Labelled, fit_labelled, load_simulation
from distillguard.evaluation.metrics import campaign_ari, rate_by, recall_at_fpr, roc_auc
from distillguard.features import account_features, attach_signals
from distillguard.pipeline import run_detection
from distillguard.signals import SIGNALS

HARVEST_FRACTIONS = (0.0025, 0.005, 0.01, 0.015, 0.02, 0.03, 0.04, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0)
Log = Callable[[str], None]


def _quality(test: Labelled, risk: np.ndarray, verdicts: list[str]) -> dict[str, Any]:
    y = test.label
    flag = np.array([flagged(v) for v in verdicts])
    attack_types = {str(k) for k in test.kind[y == 1]}
    return {
        "accounts": int(len(y)), "attack_accounts": int(y.sum()),
        "roc_auc": roc_auc(y, risk),
        "recall_at_fpr_1pct": recall_at_fpr(y, risk, 0.01),
        "recall_at_fpr_0.1pct": recall_at_fpr(y, risk, 0.001),
        "flagged_recall": float(flag[y == 1].mean()) if y.any() else float("nan"),
        "flagged_fpr": float(flag[y == 0].mean()) if (y == 0).any() else float("nan"),
        "fpr_by_population": rate_by(test.kind, y == 0, flag),
        "recall_by_campaign_type": rate_by(test.kind, y == 1, flag),
        "recall_at_fpr_0.1pct_by_type": {
            t: recall_at_fpr(y[(y == 0) | (test.kind == t)], risk[(y == 0) | (test.kind == t)], 0.001)
            for t in sorted(attack_types)},
    }


def harvest_before_flag(test: Labelled, model: Model, log: Log | None = None) -> dict[str, dict[str, Any]]:
    """Per campaign: exchanges (and share) harvested before any of its accounts is first flagged."""
    con = test.store.connect()
    attach_signals(con, test.store, test.store.derived(SIGNALS))
    rows = con.execute("SELECT account_id, epoch_ms(ts) FROM exchanges").fetchnumpy()
    by_account = dict(zip(test.table.account_ids, test.campaign, strict=True))
    acct = rows["account_id"]
    ts = np.asarray(rows["epoch_ms(ts)"], dtype=np.int64)
    camp = np.array([by_account.get(a, "") for a in acct], dtype=object)
    times: dict[str, np.ndarray] = {c: np.sort(ts[camp == c]) for c in sorted({c for c in camp if c})}
    cutoffs: dict[int, set[str]] = {}
    for c, t in times.items():
        for q in HARVEST_FRACTIONS:
            k = min(int(np.ceil(q * len(t))), len(t) - 1)
            cutoffs.setdefault(int(t[k]) + 1, set()).add(c)
    found: dict[str, int] = {}
    pending = set(times)
    for cut in sorted(cutoffs):
        if not (cutoffs[cut] & pending) and not any(cut >= times[c][-1] for c in pending):
            continue
        table = account_features(con, until_ms=cut)
        scores = score_accounts(table.account_ids, table.features, model, explain=False)
        hit = {by_account.get(a, "") for a, v in zip(table.account_ids, scores.verdicts, strict=True) if flagged(v)}
        for c in list(pending):
            if c in hit:
                found[c] = cut
                pending.discard(c)
        if log:
            log(f"prefix {cut}: {len(found)}/{len(times)} campaigns flagged")
        if not pending:
            break
    out = {}
    for c, t in times.items():
        harvested = int(np.searchsorted(t, found[c])) if c in found else len(t)
        out[c] = {"exchanges": int(len(t)), "harvested_before_flag": harvested,
                  "share": harvested / len(t), "flagged": c in found}
    return out


def evaluate_held_out(train: list[Labelled], test: Labelled, *, log: Log | None = None,
                      harvest: bool = True) -> dict[str, Any]:
    """Fit the decision weights on ``train``, run the full detection pipeline on ``test`` and measure it."""
    model = fit_labelled(train)
    with tempfile.TemporaryDirectory() as tmp:
        result = run_detection(test.store, Path(tmp), model=model)
    index = {a: i for i, a in enumerate(result.scores.account_ids)}
    order = np.array([index[a] for a in test.table.account_ids])
    risk = result.scores.risk[order]
    verdicts = [result.scores.verdicts[i] for i in order]
    member = {a: c.id for c in result.campaigns for a in c.accounts}
    predicted = [member.get(a) for a in test.table.account_ids]
    out = _quality(test, risk, verdicts)
    out["campaigns_found"] = len(result.campaigns)
    out["campaign_ari"] = campaign_ari(test.campaign, test.label, predicted)
    out["benign_in_campaigns"] = int(sum(1 for p, y in zip(predicted, test.label, strict=True) if p and y == 0))
    if harvest:
        out["harvest"] = harvest_before_flag(test, model, log)
        shares = [h["share"] for h in out["harvest"].values()]
        out["max_harvest_share"] = max(shares) if shares else float("nan")
    out["seconds"] = result.seconds
    return out


def leave_one_type_out(train: list[Labelled], test: Labelled, *, log: Log | None = None) -> dict[str, Any]:
    """For each campaign type: fit the weights without it, then measure recall on it in the test simulation."""
    out = {}
    types = sorted({str(k) for k in test.kind[test.label == 1]})
    for t in types:
        model = fit_labelled(train, exclude_types=(t,))
        scores = score_accounts(test.table.account_ids, test.table.features, model, explain=False)
        y = test.label
        mask = (y == 0) | (test.kind == t)
        flag = np.array([flagged(v) for v in scores.verdicts])
        held = (test.kind == t) & (y == 1)
        out[t] = {"accounts": int(held.sum()),
                  "flagged_recall": float(flag[held].mean()),
                  "recall_at_fpr_1pct": recall_at_fpr(y[mask], scores.risk[mask], 0.01),
                  "recall_at_fpr_0.1pct": recall_at_fpr(y[mask], scores.risk[mask], 0.001),
                  "roc_auc": roc_auc(y[mask], scores.risk[mask])}
        if log:
            log(f"leave-out {t}: flagged recall {out[t]['flagged_recall']:.3f}")
    return out


def evaluate(train_dirs: list[Path], test_dirs: list[Path], *, loco: bool = True, harvest: bool = True,
             log: Log | None = None) -> dict[str, Any]:
    """The whole evaluation: per held-out simulation, the full metrics and leave-one-type-out."""
    train = [load_simulation(d) for d in train_dirs]
    report: dict[str, Any] = {"train": [str(d) for d in train_dirs], "test": {}}
    for d in test_dirs:
        test = load_simulation(d)
        entry = evaluate_held_out(train, test, log=log, harvest=harvest)
        if loco:
            entry["leave_one_type_out"] = leave_one_type_out(train, test, log=log)
        report["test"][str(d)] = entry
    return report
