"""Detections made from a simulation's ground truth, to try the console, test it and benchmark it.

``labelled_detections(store, labels.csv, out)`` writes the three files ``distillguard detect`` writes for the
console (``accounts.csv``, ``campaigns.json``, ``links.json``) with every labelled attack campaign as a campaign
(evidence: the identifiers and networks its accounts share, as found in the store) and a few benign accounts
flagged as false positives, so the console can be exercised whatever the state of detection. Never used by
detection itself.
"""

from __future__ import annotations

import csv
import hashlib
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson

from distillguard.attribution.campaign import ATLAS_EXTRACT_MODEL, ATLAS_TRAIN_PROXY, campaign_id
from distillguard.detect.evidence import FAMILIES
from distillguard.store import Store


def _h(text: str) -> float:
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF


def labelled_detections(store_dir: str | Path, labels_path: str | Path, out: str | Path,
                        false_positives: int = 3) -> dict[str, Any]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    labels: dict[str, tuple[str, str, str]] = {}
    with open(labels_path, newline="") as handle:
        for row in csv.DictReader(handle):
            labels[row["account_id"]] = (row["label"], row.get("campaign") or "", row.get("population") or "")
    store = Store.open(store_dir, create=False)
    con = store.connect()
    stats = {r[0]: r[1:] for r in con.execute(
        "SELECT account_id, count(*), min(ts), max(ts) FROM exchanges GROUP BY 1").fetchall()}
    records = {r[0]: r[1:] for r in con.execute(
        "SELECT account_id, payment_fp, email_domain, signup_ip FROM accounts").fetchall()}
    by_campaign: dict[str, list[str]] = defaultdict(list)
    for a, (label, camp, _) in labels.items():
        if label == "attack" and a in stats:
            by_campaign[camp or "unnamed"].append(a)
    benign = sorted(a for a, (label, _, _) in labels.items() if label == "benign" and a in stats)
    fps = set(sorted(benign, key=lambda a: _h("fp" + a))[:false_positives])
    member: dict[str, str] = {}
    campaigns, links = [], {}
    for _name, accounts in sorted(by_campaign.items()):
        cid = campaign_id(accounts)
        ids = sorted(accounts)
        for a in ids:
            member[a] = cid
        campaign, edges = _campaign(con, cid, ids, records, stats)
        campaigns.append(campaign)
        links[cid] = {"accounts": ids, "edges": edges}
    rows = []
    for a, (n, first, last) in stats.items():
        label = labels.get(a, ("benign", "", ""))[0]
        if label == "attack":
            risk = round(0.86 + 0.13 * _h(a), 4)
        elif a in fps:
            risk = round(0.61 + 0.2 * _h(a), 4)
        else:
            risk = round(0.25 * _h(a) ** 3, 4)
        verdict = "block" if risk >= 0.85 else "throttle" if risk >= 0.6 else "watch" if risk >= 0.3 else "allow"
        points = {f: round((6.0 if label == "attack" or a in fps else 1.0) * _h(f + a), 3) for f in FAMILIES}
        signals = "" if verdict == "allow" else "; ".join(
            f"{f}: {p:.1f} points vs a benign median of 0.4 for accounts like this one" for f, p in points.items()
            if p >= 1.0)
        rows.append([a, risk, verdict, member.get(a, ""), signals, n, _iso(first), _iso(last),
                     *[points[f] for f in FAMILIES], 2.0 if a in member else 0.0])
    rows.sort(key=lambda r: (-r[1], r[0]))
    with open(out / "accounts.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["account_id", "risk", "verdict", "campaign_id", "signals", "exchanges", "first_seen",
                         "last_seen", *(f"points_{f}" for f in FAMILIES), "points_coordination"])
        writer.writerows(rows)
    (out / "campaigns.json").write_bytes(orjson.dumps({"generated": "2026-03-01T00:00:00Z",
                                                       "producer": "distillguard sample", "campaigns": campaigns},
                                                      option=orjson.OPT_INDENT_2))
    (out / "links.json").write_bytes(orjson.dumps({"campaigns": links}))
    return {"accounts": len(rows), "campaigns": len(campaigns), "false_positives": sorted(fps)}


def _iso(ts: Any) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%S.000Z") if ts is not None else ""


def _campaign(con: Any, cid: str, ids: list[str], records: dict[str, tuple], stats: dict[str, tuple]
              ) -> tuple[dict[str, Any], list[tuple[int, int, str, float]]]:
    index = {a: i for i, a in enumerate(ids)}
    con.register("_members", __import__("pyarrow").table({"account_id": ids}))
    try:
        models = dict(con.execute("SELECT coalesce(model, 'unknown'), count(*) FROM exchanges "
                                  "WHERE account_id IN (SELECT account_id FROM _members) GROUP BY 1").fetchall())
        nets = con.execute("SELECT DISTINCT account_id, regexp_extract(ip, '^(\\d+\\.\\d+\\.\\d+)\\.', 1) AS net, "
                           "tls_fp, user_agent, asn FROM exchanges "
                           "WHERE account_id IN (SELECT account_id FROM _members)").fetchall()
    finally:
        con.unregister("_members")
    edges: list[tuple[int, int, str, float]] = []
    groups: dict[tuple[str, str], list[int]] = defaultdict(list)
    for a in ids:
        pay, email, signup = records.get(a, (None, None, None))
        if pay:
            groups[("shared_payment", pay)].append(index[a])
        if email:
            groups[("shared_email_domain", email)].append(index[a])
        if signup:
            groups[("shared_signup_network", ".".join(signup.split(".")[:3]))].append(index[a])
    infra: dict[str, set] = defaultdict(set)
    for a, net, tls, ua, asn in nets:
        if net:
            groups[("shared_ip_prefix", net)].append(index[a])
            infra["ip_prefixes"].add(f"{net}.0/24")
        if tls:
            groups[("shared_client_fingerprint", tls)].append(index[a])
            infra["tls_fps"].add(tls)
        if ua:
            infra["user_agents"].add(ua)
        if asn is not None:
            infra["asns"].add(int(asn))
    shared = {k: sorted(set(v)) for k, v in groups.items() if len(set(v)) >= 2}
    for (kind, _), members in shared.items():
        edges += [(members[0], m, kind, 0.3) for m in members[1:]]
    n = sum(stats[a][0] for a in ids)
    first = min(stats[a][1] for a in ids)
    last = max(stats[a][2] for a in ids)
    kinds = sorted({k for k, _ in shared})
    camp = {
        "id": cid, "score": round(0.9 + 0.09 * _h(cid), 4), "strength": 0.8, "accounts": ids, "exchanges": int(n),
        "first_seen": _iso(first).replace(".000", ""), "last_seen": _iso(last).replace(".000", ""),
        "capabilities": {"coding": 0.5, "math": 0.3, "reasoning": 0.2},
        "models": {k: int(v) for k, v in models.items()},
        "evidence": [{"kind": k, "detail": f"{sum(1 for kk, _ in shared if kk == k)} value(s) of {k.replace('_', ' ')}"
                      f" shared by its accounts", "weight": 0.3} for k in kinds],
        "atlas": [ATLAS_EXTRACT_MODEL, ATLAS_TRAIN_PROXY],
        "infrastructure": {k: sorted(v)[:50] for k, v in infra.items()},
        "identifiers": {"payment_fps": sorted({records[a][0] for a in ids if a in records and records[a][0]})[:50]},
        "templates": [], "behaviour": {"median_max_tokens": 8192, "single_turn_share": 0.95, "cot_share": 0.8,
                                       "inter_arrival_cv": 0.2}}
    return camp, edges
