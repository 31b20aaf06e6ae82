"""Batch detection: store -> signals -> features -> scores -> campaigns -> outputs.

``run_detection`` writes ``accounts.csv``, ``campaigns.json``, ``report.html`` (and
``context.json``, the population baseline the gateway scores new traffic against).
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa

from distillguard.decide import flagged
from distillguard.detect import FAMILIES, GroupEvidence, Model, Scores, score_accounts
from distillguard.detect.evidence import coordination_eligible, points_in, shows_use
from distillguard.features import FeatureTable, account_features, attach_signals
from distillguard.features.compute import normalised_entropy
from distillguard.model import format_ts
from distillguard.signals import SIGNALS
from distillguard.signals.cues import CAPABILITIES
from distillguard.store import Store

ACCOUNTS_HEADER = ("account_id", "risk", "verdict", "campaign_id", "signals", "exchanges", "first_seen", "last_seen",
                   *(f"points_{f}" for f in FAMILIES), "points_coordination", "campaign_note")
Progress = Callable[[str, float], None]  # (stage, fraction of that stage done)


@dataclass
class DetectionResult:
    accounts: pa.Table  # the rows of accounts.csv
    campaigns: list[Any]
    features: FeatureTable
    scores: Scores
    seconds: dict[str, float] = field(default_factory=dict)

    def verdict_counts(self) -> dict[str, int]:
        values, counts = np.unique(np.asarray(self.scores.verdicts, dtype=object).astype(str), return_counts=True)
        return {str(v): int(c) for v, c in zip(values, counts, strict=True)}


def features_table(ft: FeatureTable) -> pa.Table:
    """account_id + numeric features, with the names campaign ``behaviour`` uses."""
    cols: dict[str, Any] = {"account_id": pa.array(ft.account_ids.tolist(), pa.string())}
    cols.update({name: pa.array(values) for name, values in ft.features.items()})
    cols["inter_arrival_cv"] = pa.array(ft.features["gap_cv"])
    cols["median_max_tokens"] = pa.array(np.exp2(ft.features["mean_log_max_tokens"]) - 1)
    return pa.table(cols)


def scores_table(scores: Scores) -> pa.Table:
    return pa.table({"account_id": pa.array(scores.account_ids.tolist(), pa.string()),
                     "risk": pa.array(scores.risk, pa.float64()),
                     "verdict": pa.array(scores.verdicts, pa.string())})


def accounts_table(ft: FeatureTable, scores: Scores, campaigns: list[Any]) -> pa.Table:
    """The accounts.csv rows, riskiest first, with each evidence family's points (the gateway reads them)."""
    member = {a: c.id for c in campaigns for a in (*c.accounts, *getattr(c, "watched", ()))}
    order = np.argsort(-scores.risk, kind="stable")
    ids = [str(a) for a in ft.account_ids[order]]
    points = {f"points_{name}": pa.array(np.round(scores.components.get(name, np.zeros(len(ids)))[order], 3))
              for name in (*FAMILIES, "coordination")}
    return pa.table({
        "account_id": ids,
        "risk": pa.array(np.round(scores.risk[order], 4)),
        "verdict": [scores.verdicts[i] for i in order],
        "campaign_id": pa.array([member.get(a) for a in ids], pa.string()),
        "signals": ["; ".join(scores.reasons[i]) for i in order],
        "exchanges": pa.array(ft.stats["n"][order].astype(np.int64)),
        "first_seen": [format_ts(int(t)) for t in ft.stats["first_ts"][order]],
        "last_seen": [format_ts(int(t)) for t in ft.stats["last_ts"][order]],
        **points,
        # why a restricted account is in no campaign (attribution's own words)
        "campaign_note": pa.array([str(v) for v in scores.components.get(
            "campaign_note", np.full(len(ids), "", dtype=object))[order]], pa.string()),
    })


def attribute(con: Any, ft: FeatureTable, model: Model, first: Scores, intel: Any = None,
              decisions: Any = None) -> tuple[Scores, list[Any]]:
    """Link accounts with any evidence of their own into campaigns; decide again with the coordination found.

    Candidates are accounts whose own evidence reaches one family's worth (``family_floor`` points): a
    hydra's accounts may each look only mildly odd, and what they share is the evidence. Colleagues share
    cards, networks and prompt habits too, so linking alone proves nothing: a linked group's members get
    coordination points (one more family for ``decide``) only when the member itself takes outputs or is a
    throwaway or disguised account (an *eligible* member, see ``detect.evidence.coordination_eligible``) and
    the group's eligible members,
    on average, also show what harvesting costs or needs (:data:`GROUP_FAMILIES`, plus up to a point of
    group-only identity evidence: one card, sign-up bursts, look-alike domains, a proxy pool); a group stays a
    campaign only while most of its eligible members end up restricted.
    """
    from distillguard.attribution import AttributionConfig, campaign_id, find_campaigns

    if not len(ft):
        return first, []
    gate = float(model.policy.risk_of_points(np.array([model.policy.family_floor]))[0])
    candidates = scores_table(first).set_column(1, "risk", pa.array(first.components["own"], pa.float64()))
    found = find_campaigns(con, candidates, features_table(ft), AttributionConfig(min_risk=gate, min_score=0.0))
    index = {a: i for i, a in enumerate(ft.account_ids)}
    group = points_in(first.components, GROUP_FAMILIES, len(ft.account_ids))
    items = {k.split(":", 1)[1]: v for k, v in first.components.items() if k.startswith("item:")}
    eligible = coordination_eligible(first.components, items)
    no_use = eligible & ~shows_use(first.components)
    cfg = AttributionConfig()
    kept, note = [], {}
    for camp in found:  # judged on the members that could be harvesters themselves, not on everyone linked
        rows = [index[a] for a in camp.accounts if a in index and eligible[index[a]]]
        if len(rows) >= cfg.min_accounts and float(group[rows].mean()) + _operation(camp) >= GROUP_MIN:
            kept.append(camp)
        else:
            for a in camp.accounts:
                note[a] = (f"linked with {len(camp.accounts) - 1} account(s), but not as an operation: too few of "
                           "them take outputs or are throwaway accounts")
    linked = {id(c): list(c.accounts) for c in kept}  # every account linked into a campaign keeps its coordination
    takes = first.components.get("harvest", np.zeros(len(ft.account_ids)))
    own_flagged = {a for a, v in zip(ft.account_ids, first.verdicts, strict=True) if flagged(v)}
    restricted: set[str] | None = None  # the first round ties members to everyone linked with them
    for _ in range(5):
        # a campaign lists the members it restricts, and stands only while most of its eligible members are
        # restricted and at least ``min_accounts`` remain; decide again until that is stable. From the second
        # round on, a member's tie counts only its links to accounts the round before restricted
        points, why = coordination_evidence(ft.account_ids, kept, model.policy.coordination_cap, eligible, linked,
                                            restricted, no_use)
        split = split_coverage(ft, kept, eligible, linked)  # only the campaigns that still stand
        scores = score_accounts(ft.account_ids, ft.features, model, intel, coordination=points,
                                coordination_reasons=why, decisions=decisions, fit=False, group=split)
        still, changed = [], False
        for camp in kept:
            eligible_flags = [flagged(scores.verdicts[index[a]]) for a in linked[id(camp)] if eligible[index[a]]]
            members = [a for a in camp.accounts if flagged(scores.verdicts[index[a]])]
            if (np.mean(eligible_flags) if eligible_flags else 0.0) >= 0.5 and len(members) >= cfg.min_accounts:
                # linked members that take outputs themselves (a family's worth of harvest evidence) and are
                # watched stay in the campaign as *watched* members (accounts.csv names their campaign; intel
                # shares only the restricted ones)
                watched = [a for a in linked[id(camp)] if a not in members and eligible[index[a]]
                           and points[index[a]] > 0 and takes[index[a]] >= model.policy.family_floor
                           and scores.risk[index[a]] >= model.policy.watch]
                if members != camp.accounts or watched != camp.watched:
                    for a in set(linked[id(camp)]) - set(members) - set(watched):
                        note[a] = f"linked to {len(members)} restricted account(s), but not restricted itself"
                    camp.accounts = members
                    camp.watched = watched
                    camp.id = campaign_id(members)
                    changed = True
                still.append(camp)
            else:
                changed = True
                for a in camp.accounts:
                    note[a] = (f"linked with {len(camp.accounts) - 1} account(s), too few of them restricted to "
                               "make a campaign")
        kept = still
        now = {a for a, v in zip(ft.account_ids, scores.verdicts, strict=True) if flagged(v)}
        before, restricted = restricted, anchored(kept, now, own_flagged)
        if not changed and before == restricted:
            break
    scores.components["coordination"] = points
    in_campaign = {a for c in kept for a in (*c.accounts, *c.watched)}
    # every account at watch or above that no campaign lists says why (restricted or watched alike)
    scores.components["campaign_note"] = np.array(
        ["" if a in in_campaign or v == "allow" else note.get(a, "linked to no other suspicious account")
         for a, v in zip(ft.account_ids, scores.verdicts, strict=True)], dtype=object)
    for camp in kept:
        camp.score = float(np.mean(scores.risk[[index[a] for a in camp.accounts]]))
    return scores, sorted(kept, key=lambda c: (-c.score, c.id))


# what separates a harvesting operation from colleagues who share a card, a network and prompt habits: what it
# takes, histories it continues but was never served, and accounts made to be thrown away or to look like several
# clients. What its prompts say is not enough (eval labs and harvesters write alike), nor, for a member, is rotating
# addresses (customers of a residential proxy do, and the shared pool is the very link).
GROUP_FAMILIES = ("harvest", "distribution", "provenance", "identity")  # a group's members on average
GROUP_MIN = 1.5  # mean points per member from GROUP_FAMILIES before linking counts as coordination


# Coverage across accounts: a capability sweep splits the space among its accounts, each asking about one or two
# capabilities while the campaign as a whole covers many. A member whose own requests cover far less of the space
# than its campaign's do (normalised entropy of the capability mix, SPLIT_GAP_NONE to SPLIT_GAP_FULL below the
# campaign's) gets up to SPLIT_POINTS in the coverage family, when the campaign covers at least SPLIT_COVERED
# capabilities with SPLIT_SHARE of its traffic each. Colleagues share one task (a hydra of coding agents covers one
# capability: nothing), and a member needs SPLIT_MIN_N requests of its own for its mix to say anything.
SPLIT_SHARE = 0.1
SPLIT_COVERED = 3
SPLIT_GAP_NONE = 0.2
SPLIT_GAP_FULL = 0.5
SPLIT_POINTS = 1.0
SPLIT_MIN_N = 20


def split_coverage(ft: FeatureTable, campaigns: list[Any], eligible: np.ndarray,
                   linked: dict[int, list[str]]) -> GroupEvidence:
    """Coverage-family points of the campaigns' members for the capability space their campaign splits among its
    accounts (see :data:`SPLIT_POINTS`); members not ``eligible`` for cross-account evidence get none."""
    n = len(ft.account_ids)
    points = np.zeros(n)
    words = [""] * n
    if not campaigns:
        return GroupEvidence("coverage", points, words)
    index = {a: i for i, a in enumerate(ft.account_ids)}
    caps = np.stack([ft.stats[f"cap_{k}"] for k in range(len(CAPABILITIES))], axis=1)
    own = normalised_entropy(caps)
    volume = ft.stats["n"]
    for camp in campaigns:
        rows = [index[a] for a in linked.get(id(camp), camp.accounts) if a in index and eligible[index[a]]]
        if len(rows) < 3:
            continue
        union = caps[rows].sum(axis=0)
        share = union / max(float(union.sum()), 1.0)
        covered = np.flatnonzero(share >= SPLIT_SHARE)
        if len(covered) < SPLIT_COVERED:
            continue
        spread = float(normalised_entropy(union[None, :])[0])
        mix = ", ".join(f"{CAPABILITIES[k]} {100 * share[k]:.0f} %" for k in covered[np.argsort(-share[covered])])
        for i in rows:
            if volume[i] < SPLIT_MIN_N:
                continue
            value = SPLIT_POINTS * float(np.clip((spread - own[i] - SPLIT_GAP_NONE)
                                                 / (SPLIT_GAP_FULL - SPLIT_GAP_NONE), 0.0, 1.0))
            if value > points[i]:
                mine = np.flatnonzero(caps[i] / max(float(caps[i].sum()), 1.0) >= SPLIT_SHARE)
                points[i] = value
                words[i] = (f"asks about {', '.join(CAPABILITIES[k] for k in mine) or 'little'} while the "
                            f"{len(rows)} accounts linked with it cover {len(covered)} capabilities ({mix}): "
                            "one slice of a capability sweep")
    return GroupEvidence("coverage", points, words)


def anchored(campaigns: list[Any], restricted: set[str], own: set[str]) -> set[str]:
    """The restricted accounts whose links may tie others to a campaign in the next round: within each campaign,
    those connected (through restricted members' links) to its *core*, members restricted on their own evidence
    or linked to another restricted member by two kinds of identity or behaviour evidence or more. Bystanders
    that one shared habit links only with each other (eval runners sending the same public judge prompts) do not
    vouch for each other once the operation's own members no longer reach them. A campaign without a core (all
    of its links one kind deep) keeps every restricted member as before."""
    out = set(restricted)
    for camp in campaigns:
        inside = {a for a, b, _, _ in camp.links} | {b for _, b, _, _ in camp.links}
        members = inside & restricted
        core = members & own
        graph: dict[str, list[str]] = {}
        for a, b, _, several in camp.links:
            if a in members and b in members:
                graph.setdefault(a, []).append(b)
                graph.setdefault(b, []).append(a)
                if several:
                    core.update((a, b))
        if not core:
            continue
        reached, stack = set(core), list(core)
        while stack:
            for b in graph.get(stack.pop(), ()):
                if b not in reached:
                    reached.add(b)
                    stack.append(b)
        out -= members - reached
    return out


def _operation(campaign: Any) -> float:
    """Identity evidence only a group has (one card across accounts, sign-up bursts, look-alike e-mail domains,
    a shared proxy pool): up to one point added to its members' mean."""
    from distillguard.attribution import KINDS

    weight = sum(e.weight for e in campaign.evidence if KINDS.get(e.kind, (0, ""))[1] == "identity")
    return min(1.0, 2.0 * weight)


def coordination_evidence(account_ids: np.ndarray, campaigns: list[Any], cap: float,
                          eligible: np.ndarray | None = None, linked: dict[int, list[str]] | None = None,
                          restricted: set[str] | None = None, no_use: np.ndarray | None = None
                          ) -> tuple[np.ndarray, list[str]]:
    """Cross-account points per member of the campaigns attribution found: ``cap`` times the campaign's linking
    strength times how tied the member itself is (the weight of its own links inside the campaign, up to
    :data:`TIED`; links resting on one kind of evidence count for at most :data:`SINGLE_KIND_TIE` of it): a core
    member of a hydra gets all of it, an account tied only by shared phrasing (public prompts harvesters and eval
    labs both send) at most three quarters, which throttles with evidence of its own but never blocks alone.
    Members not ``eligible`` (no harvest or evasion evidence of their own) get none. ``linked`` (campaign object
    id -> accounts) lists everyone linked into a campaign when its listed members are only those it restricts.
    With ``restricted``, a member's tie counts only its links to those accounts: Leiden puts bystanders linked with
    each other into an operation's community too (eval runners sharing public benchmark prompts with each other
    and, through one of them, with a rubric-harvesting operation), and a bystander's links to other bystanders are
    no coordination with the operation. A member with ``no_use`` of its own (eligible as a young or disguised
    account, but taking, asking and covering nothing unusual: ``detect.evidence.shows_use``) is tied only by links
    resting on more than what a customer shares with an operation by chance (the campaign's ``coincidental``
    pairs do not count for it: ``attribution.linking.COINCIDENTAL``)."""
    from distillguard.attribution.campaign import tie_weights

    index = {a: i for i, a in enumerate(account_ids)}
    points = np.zeros(len(account_ids))
    why = [""] * len(account_ids)
    for camp in campaigns:
        kinds = ", ".join(dict.fromkeys(e.kind.replace("_", " ") for e in camp.evidence[:3])) or "linked"
        tied = tie_weights(camp.links, restricted)
        chance = camp.coincidental
        specific = tie_weights([x for x in camp.links if (x[0], x[1]) not in chance], restricted) if chance else tied
        listed = {*camp.accounts, *camp.watched}
        for account in (linked or {}).get(id(camp), camp.accounts):
            i = index.get(account)
            if i is None or (eligible is not None and not eligible[i]):
                continue
            ties = specific if no_use is not None and no_use[i] else tied
            tie = min(1.0, ties.get(account, 0.0) / TIED + min(SINGLE_KIND_TIE, ties.get("~" + account, 0.0) / TIED))
            value = cap * float(camp.strength) * tie
            if value > points[i]:
                points[i] = value
                if account in listed:
                    why[i] = f"member of {camp.id}: {len(camp.accounts)} linked accounts ({kinds})"
                else:  # linked into it, but the campaign does not list it (see find_campaigns' rounds)
                    why[i] = (f"linked to {camp.id}: {len(camp.accounts)} linked accounts ({kinds}), not listed as "
                              "a member: too little evidence of its own")
    return points, why


TIED = 1.5  # total link weight at which a member counts as fully tied into its campaign
SINGLE_KIND_TIE = 0.75  # the most of a full tie that links of one evidence kind can make


def write_accounts_csv(path: Path, table: pa.Table) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(ACCOUNTS_HEADER)
        for row in zip(*(table.column(c).to_pylist() for c in ACCOUNTS_HEADER), strict=True):
            writer.writerow(["" if v is None else v for v in row])


def default_memory_limit() -> str:
    """6 GB or half the machine's memory, whichever is less.

    DuckDB's own default (80 % of RAM) let attribution reach 7.8 GiB at 4M exchanges and would crowd out a
    gateway or a second job on the same host; capped, the work spills into the store instead.
    """
    import os

    half = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
    return f"{min(6 * 1000**3, half) // 1000**2}MB"


def run_detection(store: Store, out_dir: Path, *, intel: Any = None, progress: Progress | None = None,
                  model: Model | None = None, memory_limit: str | None = None, decisions: Any = None
                  ) -> DetectionResult:
    """Score every account in ``store`` and write the detection outputs to ``out_dir``.

    ``decisions`` (account -> :class:`~distillguard.decide.analyst.AnalystDecision`) are analysts' confirmations
    and dismissals, applied by ``decide``.
    ``memory_limit`` caps DuckDB (e.g. ``"5GB"``); past it, joins and sorts spill into the store. The default,
    :func:`default_memory_limit`, keeps the public-scale run (20M exchanges) under 5 GiB of RSS.
    """
    from distillguard.attribution import campaigns_to_json
    from distillguard.report import write_report

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = progress or (lambda stage, done: None)
    seconds: dict[str, float] = {}
    started = time.perf_counter()

    con = store.connect(memory_limit=memory_limit or default_memory_limit())
    total = max(len(store.exchange_files()), 1)
    done = 0

    def on_file() -> None:
        nonlocal done
        done += 1
        report("signals", done / total)

    signal_files = store.derived(SIGNALS, on_file=on_file)
    attach_signals(con, store, signal_files)
    seconds["signals"] = time.perf_counter() - started

    report("features", 0.0)
    ft = account_features(con)
    seconds["features"] = time.perf_counter() - started - sum(seconds.values())
    report("scores", 0.0)
    model = (model or Model.load()).fit(ft.features)  # baselines of this deployment, from its own accounts
    ft.context.baselines = model.baselines.to_json()
    first = score_accounts(ft.account_ids, ft.features, model, intel, fit=False, explain=False)
    seconds["scores"] = time.perf_counter() - started - sum(seconds.values())

    report("campaigns", 0.0)
    scores, campaigns = attribute(con, ft, model, first, intel, decisions)
    seconds["campaigns"] = time.perf_counter() - started - sum(seconds.values())

    report("outputs", 0.0)
    table = accounts_table(ft, scores, campaigns)
    write_accounts_csv(out_dir / "accounts.csv", table)
    (out_dir / "campaigns.json").write_bytes(orjson.dumps(campaigns_to_json(campaigns), option=orjson.OPT_INDENT_2))
    (out_dir / "context.json").write_bytes(orjson.dumps(ft.context.to_json()))
    write_report(out_dir, table, campaigns, con)
    seconds["outputs"] = time.perf_counter() - started - sum(seconds.values())
    report("outputs", 1.0)
    return DetectionResult(table, campaigns, ft, scores, seconds)
