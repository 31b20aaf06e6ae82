"""Score any labelled traffic against ``detect`` output and ``gateway replay`` decisions.

The labels are a CSV with ``account_id,label,campaign,population`` (``label`` is ``benign`` or ``attack``;
``campaign`` is empty for benign accounts; ``population`` names the benign population or the attack kind).
Nothing here knows how the traffic was made: it reads the files a user has (``accounts.csv``,
``campaigns.json``, a replay's ``accounts.csv``) and the labels, so the same command scores the project's
own simulator, an independent sample or a provider's own analyst-labelled accounts.

Accounts in the labels but absent from the detections (no traffic in the store) count as risk 0 / allow and
are reported; detections of accounts the labels do not name are ignored and counted.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from distillguard.decide import flagged
from distillguard.errors import DistillguardError
from distillguard.evaluation.metrics import campaign_ari, rate_by, recall_at_fpr, roc_auc, threshold_at_fpr

LABELS_HEADER = ("account_id", "label", "campaign", "population")
LABEL_VALUES = ("benign", "attack")


class LabelsError(DistillguardError, ValueError):
    """A labels, detections or replay file is malformed (the message names file, line and field)."""


@dataclass
class Labels:
    account_ids: list[str]
    attack: np.ndarray  # bool per account
    campaign: np.ndarray  # object: campaign id ("" for benign)
    population: np.ndarray  # object

    def __len__(self) -> int:
        return len(self.account_ids)


def _reader(path: Path, required: tuple[str, ...]) -> tuple[Any, Any]:
    handle = path.open(newline="", encoding="utf-8")
    reader = csv.DictReader(handle)
    missing = [c for c in required if c not in (reader.fieldnames or ())]
    if missing:
        handle.close()
        raise LabelsError(f"{path}:1: header: missing column(s) {', '.join(missing)}")
    return handle, reader


def load_labels(path: str | Path) -> Labels:
    path = Path(path)
    handle, reader = _reader(path, LABELS_HEADER)
    ids: list[str] = []
    attack, campaign, population = [], [], []
    seen: dict[str, int] = {}
    with handle:
        for line, row in enumerate(reader, 2):
            account = (row.get("account_id") or "").strip()
            if not account:
                raise LabelsError(f"{path}:{line}: account_id: empty")
            if account in seen:
                raise LabelsError(f"{path}:{line}: account_id: {account!r} already labelled on line {seen[account]}")
            label = (row.get("label") or "").strip()
            if label not in LABEL_VALUES:
                raise LabelsError(f"{path}:{line}: label: expected benign or attack, got {label!r}")
            seen[account] = line
            ids.append(account)
            attack.append(label == "attack")
            camp = (row.get("campaign") or "").strip()
            pop = (row.get("population") or "").strip()
            if label == "attack" and not camp:
                camp = f"_unnamed:{pop or 'attack'}"
            campaign.append(camp if label == "attack" else "")
            population.append(pop or label)
    if not ids:
        raise LabelsError(f"{path}: no labelled accounts")
    return Labels(ids, np.array(attack, dtype=bool), np.array(campaign, dtype=object),
                  np.array(population, dtype=object))


def _load_detections(detections: Path) -> tuple[dict[str, tuple[float, str]], dict[str, str], int]:
    path = detections / "accounts.csv" if detections.is_dir() else detections
    handle, reader = _reader(path, ("account_id", "risk", "verdict"))
    rows: dict[str, tuple[float, str]] = {}
    with handle:
        for line, row in enumerate(reader, 2):
            try:
                risk = float(row["risk"])
            except (TypeError, ValueError):
                raise LabelsError(f"{path}:{line}: risk: not a number: {row['risk']!r}") from None
            rows[row["account_id"]] = (risk, row["verdict"] or "allow")
    member: dict[str, str] = {}
    campaigns_path = path.parent / "campaigns.json"
    n_campaigns = 0
    if campaigns_path.exists():
        try:
            doc = orjson.loads(campaigns_path.read_bytes())
        except orjson.JSONDecodeError as exc:
            raise LabelsError(f"{campaigns_path}: not JSON ({exc})") from None
        for camp in doc.get("campaigns", []):
            n_campaigns += 1
            # attribution counts every member it names: the restricted ones and the watched ones
            for account in (*camp.get("accounts", []), *camp.get("watched", [])):
                member[str(account)] = str(camp.get("id"))
    return rows, member, n_campaigns


def _per_group(groups: np.ndarray, mask: np.ndarray, hit: np.ndarray) -> dict[str, dict[str, float]]:
    return rate_by(groups, mask, hit) if mask.any() else {}


def score_detections(labels: Labels, detections: str | Path) -> dict[str, Any]:
    """Quality of ``detect`` output (``accounts.csv`` + ``campaigns.json`` in ``detections``) on ``labels``."""
    rows, member, n_campaigns = _load_detections(Path(detections))
    y = labels.attack
    risk = np.array([rows[a][0] if a in rows else 0.0 for a in labels.account_ids])
    verdicts = [rows[a][1] if a in rows else "allow" for a in labels.account_ids]
    flag = np.array([flagged(v) for v in verdicts])
    block = np.array([v == "block" for v in verdicts])
    predicted = [member.get(a) for a in labels.account_ids]
    in_campaign = np.array([p is not None for p in predicted])
    pop = labels.population
    out: dict[str, Any] = {
        "accounts": len(labels), "attack_accounts": int(y.sum()), "benign_accounts": int((~y).sum()),
        "labelled_without_detection": int(sum(1 for a in labels.account_ids if a not in rows)),
        "detections_without_label": int(len(set(rows) - set(labels.account_ids))),
        "roc_auc": roc_auc(y, risk),
        "recall_at_fpr_1pct": recall_at_fpr(y, risk, 0.01),
        "recall_at_fpr_0.1pct": recall_at_fpr(y, risk, 0.001),
        "threshold_at_fpr_0.1pct": threshold_at_fpr(y, risk, 0.001),
        "flagged_recall": float(flag[y].mean()) if y.any() else float("nan"),
        "flagged_fpr": float(flag[~y].mean()) if (~y).any() else float("nan"),
        "benign_blocked": int(block[~y].sum()),
        "flagged_fpr_by_population": _per_group(pop, ~y, flag),
        "blocked_by_population": _per_group(pop, ~y, block),
        "flagged_recall_by_campaign": _per_group(labels.campaign, y, flag),
        "flagged_recall_by_kind": _per_group(pop, y, flag),
        "recall_at_fpr_0.1pct_by_kind": {
            str(k): recall_at_fpr(y[(~y) | (pop == k)], risk[(~y) | (pop == k)], 0.001)
            for k in sorted({str(p) for p in pop[y]})},
        "campaigns_found": n_campaigns,
        "campaign_ari": campaign_ari(labels.campaign, y.astype(int), predicted),
        "benign_in_campaigns": int((in_campaign & ~y).sum()),
        "attackers_in_no_campaign": int((~in_campaign & y).sum()),
    }
    return out


def _load_replay(replay: Path) -> dict[str, dict[str, Any]]:
    path = replay / "accounts.csv" if replay.is_dir() else replay
    handle, reader = _reader(path, ("account_id", "exchanges", "throttle", "block", "first_restricted"))
    out: dict[str, dict[str, Any]] = {}
    with handle:
        for line, row in enumerate(reader, 2):
            try:
                first = int(row["first_restricted"]) if row["first_restricted"] else None
                out[row["account_id"]] = {"exchanges": int(row["exchanges"]), "throttle": int(row["throttle"]),
                                          "block": int(row["block"]), "first_restricted": first}
            except (TypeError, ValueError) as exc:
                raise LabelsError(f"{path}:{line}: not a number ({exc})") from None
    return out


def score_replay(labels: Labels, replay: str | Path, within: int = 200) -> dict[str, Any]:
    """Quality of ``gateway replay`` decisions (its ``accounts.csv``) on ``labels``.

    An attacker counts as restricted within ``within`` when its first throttle or block came at or before its
    ``within``-th request; one that sent fewer requests and was never restricted counts as missed.
    """
    rows = _load_replay(Path(replay))
    y = labels.attack
    seen = np.array([a in rows for a in labels.account_ids])
    first = [rows[a]["first_restricted"] if a in rows else None for a in labels.account_ids]
    restricted = np.array([f is not None and f <= within for f in first])
    throttled = np.array([a in rows and rows[a]["throttle"] > 0 for a in labels.account_ids])
    blocked = np.array([a in rows and rows[a]["block"] > 0 for a in labels.account_ids])
    ever = throttled | blocked
    pop = labels.population
    attack_seen = y & seen
    benign_seen = ~y & seen
    return {
        "within": within,
        "accounts_replayed": int(seen.sum()),
        "attackers_restricted_within": float(restricted[attack_seen].mean()) if attack_seen.any() else float("nan"),
        "attackers_restricted_by_campaign": _per_group(labels.campaign, attack_seen, restricted),
        "attackers_restricted_by_kind": _per_group(pop, attack_seen, restricted),
        "benign_ever_restricted": float(ever[benign_seen].mean()) if benign_seen.any() else float("nan"),
        "benign_ever_blocked": int(blocked[benign_seen].sum()),
        "benign_ever_throttled_by_population": _per_group(pop, benign_seen, throttled),
        "benign_ever_blocked_by_population": _per_group(pop, benign_seen, blocked),
    }


# ---- targets (issue: detection that holds on traffic this project did not write) ----------------------------------
TARGETS = {
    "roc_auc": 0.99, "recall_at_fpr_0.1pct": 0.95, "flagged_fpr": 0.005, "flagged_fpr_population": 0.01,
    "benign_blocked": 0, "campaign_recall": 0.9, "campaign_ari": 0.9, "benign_in_campaigns": 0,
    "replay_benign_blocked": 0, "replay_benign_throttled_population": 0.01, "replay_attackers_restricted": 0.95,
}


def verdict_on_targets(detection: dict[str, Any] | None, replay: dict[str, Any] | None) -> list[tuple[str, str, bool]]:
    """(target, measured, met) rows for the figures measured."""
    out: list[tuple[str, str, bool]] = []
    if detection:
        d = detection
        out.append(("ROC-AUC >= 0.99", f"{d['roc_auc']:.4f}", d["roc_auc"] >= TARGETS["roc_auc"]))
        out.append(("recall >= 0.95 at <= 0.1 % benign FPR", f"{d['recall_at_fpr_0.1pct']:.3f}",
                    d["recall_at_fpr_0.1pct"] >= TARGETS["recall_at_fpr_0.1pct"]))
        out.append(("flagged benign FPR <= 0.5 %", f"{100 * d['flagged_fpr']:.2f} %",
                    d["flagged_fpr"] <= TARGETS["flagged_fpr"]))
        worst = max(d["flagged_fpr_by_population"].items(), key=lambda kv: kv[1]["rate"], default=None)
        if worst:
            out.append(("flagged FPR <= 1 % in every benign population",
                        f"worst {worst[0]} {100 * worst[1]['rate']:.1f} %",
                        worst[1]["rate"] <= TARGETS["flagged_fpr_population"]))
        out.append(("no benign account blocked", str(d["benign_blocked"]), d["benign_blocked"] == 0))
        low = min(d["flagged_recall_by_campaign"].items(), key=lambda kv: kv[1]["rate"], default=None)
        if low:
            out.append(("flagged recall >= 0.9 for every campaign", f"lowest {low[0]} {low[1]['rate']:.3f}",
                        low[1]["rate"] >= TARGETS["campaign_recall"]))
        out.append(("campaign ARI >= 0.9", f"{d['campaign_ari']:.3f}", d["campaign_ari"] >= TARGETS["campaign_ari"]))
        out.append(("no benign account in a campaign", str(d["benign_in_campaigns"]), d["benign_in_campaigns"] == 0))
    if replay:
        r = replay
        out.append(("replay: no benign account blocked", str(r["benign_ever_blocked"]), r["benign_ever_blocked"] == 0))
        worst = max(r["benign_ever_throttled_by_population"].items(), key=lambda kv: kv[1]["rate"], default=None)
        if worst:
            out.append(("replay: <= 1 % of any benign population throttled",
                        f"worst {worst[0]} {100 * worst[1]['rate']:.1f} %",
                        worst[1]["rate"] <= TARGETS["replay_benign_throttled_population"]))
        out.append((f"replay: >= 95 % of attackers restricted within {r['within']} requests",
                    f"{100 * r['attackers_restricted_within']:.1f} %",
                    r["attackers_restricted_within"] >= TARGETS["replay_attackers_restricted"]))
    return out
