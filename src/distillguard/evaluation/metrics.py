"""Detection-quality metrics on labelled accounts (issue §6)."""

from __future__ import annotations

import numpy as np


def roc_auc(y: np.ndarray, score: np.ndarray) -> float:
    """Probability that a random attacker outscores a random benign account (scikit-learn's ROC-AUC)."""
    from sklearn.metrics import roc_auc_score

    y = np.asarray(y).astype(bool)
    if y.all() or not y.any():
        return float("nan")
    return float(roc_auc_score(y, np.asarray(score, dtype=np.float64)))


def threshold_at_fpr(y: np.ndarray, score: np.ndarray, fpr: float) -> float:
    """Lowest threshold (flag when score > t) keeping the benign false-positive rate <= ``fpr``."""
    benign = np.sort(np.asarray(score)[~np.asarray(y).astype(bool)])[::-1]
    allowed = int(np.floor(fpr * len(benign)))
    if not len(benign):
        return float("-inf")
    return float(benign[min(allowed, len(benign) - 1)])


def recall_at_fpr(y: np.ndarray, score: np.ndarray, fpr: float) -> float:
    y = np.asarray(y).astype(bool)
    if not y.any():
        return float("nan")
    t = threshold_at_fpr(y, score, fpr)
    return float((score[y] > t).mean())


def rate_by(groups: np.ndarray, mask: np.ndarray, flagged: np.ndarray) -> dict[str, dict[str, float]]:
    """Per group (within ``mask``): accounts and the share flagged."""
    out = {}
    for g in sorted({str(x) for x in groups[mask]}):
        m = mask & (groups.astype(str) == g)
        out[g] = {"accounts": int(m.sum()), "flagged": int(flagged[m].sum()), "rate": float(flagged[m].mean())}
    return out


def campaign_ari(truth: np.ndarray, label: np.ndarray, predicted: list[str | None]) -> float:
    """Adjusted Rand index between true and found campaigns over attackers and campaign members.

    Accounts outside any true (found) campaign are their own singleton cluster, so a
    benign account pulled into a campaign and an attacker left out both cost.
    """
    from sklearn.metrics import adjusted_rand_score

    idx = [i for i in range(len(label)) if label[i] == 1 or predicted[i]]
    if not idx:
        return float("nan")
    t = [truth[i] if label[i] == 1 and truth[i] else f"_single{i}" for i in idx]
    p = [predicted[i] or f"_single{i}" for i in idx]
    return float(adjusted_rand_score(t, p))
