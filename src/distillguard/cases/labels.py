"""Analysts' decisions as labelled examples: confirm = attack, dismiss = benign.

* :func:`labels_csv` writes the ``labels.csv`` that ``distillguard eval --labels`` reads (calibration on the
  accounts analysts judged);
* :func:`analyst_labelled` gives ``distillguard train`` (:func:`distillguard.detect.train.fit_labelled`) the
  feature rows of those accounts, measured against the baselines of the *whole* deployment (fitted on every
  account of the store, not only the judged ones), as a :class:`~distillguard.detect.train.Labelled`.

Undone decisions are not labels; the latest decision per account counts.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from distillguard.decide.analyst import AnalystDecision, load_decisions


def label_of(decision: AnalystDecision) -> str | None:
    if decision.action.startswith("confirm"):
        return "attack"
    if decision.action == "dismiss":
        return "benign"
    return None


def labels_csv(decisions: Mapping[str, AnalystDecision]) -> str:
    """``account_id,label,campaign,population`` rows (population: ``analyst-confirmed`` / ``analyst-dismissed``)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(("account_id", "label", "campaign", "population"))
    for account in sorted(decisions):
        d = decisions[account]
        label = label_of(d)
        if label is None:
            continue
        campaign = (d.case_id or "analyst") if label == "attack" else ""
        writer.writerow((account, label, campaign, "analyst-confirmed" if label == "attack" else "analyst-dismissed"))
    return out.getvalue()


def analyst_rows(store_dir: str | Path, decisions_path: str | Path
                 ) -> tuple[list[str], np.ndarray, np.ndarray, list[str]]:
    """Labelled feature rows of the judged accounts: ``(family names, points matrix, labels, account ids)``.

    Points are measured against the baselines of the *whole* deployment (fitted on every account of the store),
    the way detection measured them when the analysts judged, not against the judged few.
    """
    from distillguard.decide import COORDINATION
    from distillguard.detect.baselines import Baselines
    from distillguard.detect.model import Model
    from distillguard.features import account_features, attach_signals
    from distillguard.signals import SIGNALS
    from distillguard.store import Store

    decisions = load_decisions(decisions_path)
    labelled = {a: label_of(d) for a, d in decisions.items() if label_of(d) is not None}
    if not labelled:
        raise ValueError(f"{decisions_path}: no confirm or dismiss decision in force: nothing to learn from")
    store = Store.open(store_dir, create=False)
    con = store.connect()
    attach_signals(con, store, store.derived(SIGNALS))
    table = account_features(con)
    ids = [str(a) for a in table.account_ids]
    keep = np.array([a in labelled for a in ids])
    if not keep.any():
        raise ValueError(f"{decisions_path}: none of the judged accounts is in {store_dir}")
    record = Model.load().with_baselines(Baselines.fit(table.features)).record(table.features)
    names = [n for n in record.families if n != COORDINATION]
    x = np.column_stack([np.asarray(record.families[n])[keep] for n in names])
    kept = [a for a, k in zip(ids, keep, strict=True) if k]
    y = np.array([1 if labelled[a] == "attack" else 0 for a in kept])
    return names, x, y, kept


def fit_analyst(store_dir: str | Path, decisions_path: str | Path, out: str | Path | None = None):
    """Refit the family weights on analysts' labels (``distillguard train --store DIR --decisions FILE``)."""
    from datetime import UTC, datetime

    from distillguard.detect.baselines import Baselines
    from distillguard.detect.model import Model
    from distillguard.detect.train import fit_logistic, policy_from_fit

    names, x, y, _ = analyst_rows(store_dir, decisions_path)
    if len(np.unique(y)) < 2:
        raise ValueError(f"{decisions_path}: analysts' labels need both confirmed and dismissed accounts")
    coef, intercept = fit_logistic(x, y)
    base = Model.load()
    model = Model(base.detectors, policy_from_fit(base.policy, names, coef, intercept), Baselines(), dict(base.meta))
    model.meta.update({"trained": datetime.now(UTC).isoformat(timespec="seconds"), "accounts": int(len(y)),
                       "attack_accounts": int(y.sum()), "trained_on": [f"analyst labels {Path(decisions_path).name}"],
                       "excluded_types": []})
    if out is not None:
        model.save(Path(out))
    return model
