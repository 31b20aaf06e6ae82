"""Shared indicators -> a per-account detection signal, with the corroboration rule.

One member's intel can raise an account's risk up to the policy's ``intel_max_risk`` and no further
(:mod:`distillguard.decide`): ``corroborated`` takes indicators (or local-detection sightings) from ``k``
distinct members. Our own detection is our own evidence, weighed separately by ``decide``; it never turns
one member's word into a corroborated one. Indicators that would hit a large share of local accounts are
damped, so a mistaken or malicious member sharing a cloud ASN or a generic prompt cannot flag a provider's
customer base wholesale.

:func:`score_evidence` is the one scoring rule: batch matching here and the gateway's per-request matcher
(:mod:`distillguard.gateway.intel`) both call it.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pyarrow as pa

from distillguard.intel.indicators import SharedIndicator, collect, ipv4_ranges, objects_of
from distillguard.intel.privacy import TemplateHasher, TemplateIndex, decode_signature, keyed_id, template_text

# evidence weights by indicator kind and feature (strength in [0, 1] multiplies the weight)
WEIGHTS = {"ip": 0.45, "tls_fp": 0.25, "asn": 0.12, "user_agent": 0.1, "payment_fp": 0.6, "signup_ip": 0.35,
           "email_domain": 0.3, "template": 0.6, "behaviour": 0.15}
_IPV4_INT = ("(CAST(split_part(ip, '.', 1) AS BIGINT) * 16777216 + CAST(split_part(ip, '.', 2) AS BIGINT) * 65536"
             " + CAST(split_part(ip, '.', 3) AS BIGINT) * 256 + CAST(split_part(ip, '.', 4) AS BIGINT))")


@dataclass
class MatchOptions:
    k: int = 2  # distinct members needed to corroborate
    min_source_score: float = 0.25  # a member counts towards k only with at least this much evidence
    max_account_share: float = 0.2  # indicators hitting more local accounts than this are damped
    template_sample: int = 20  # exchanges per account checked against shared templates
    min_exchanges: int = 5


@dataclass
class Hit:
    """Local matches of one shared indicator (for sightings and attribution)."""

    accounts: set[str] = field(default_factory=set)
    exchanges: int = 0
    first_ms: int | None = None
    last_ms: int | None = None


@dataclass(frozen=True)
class IntelScore:
    score: float  # in [0, 1]
    reasons: tuple[str, ...]
    corroborated: bool  # k distinct members reported it (indicators or sightings)
    indicators: tuple[str, ...]  # the indicators with evidence


NO_INTEL = IntelScore(0.0, (), False, ())


def score_evidence(evidence: dict[str, list[tuple[str, float]]], indicators: dict[str, SharedIndicator],
                   damp: dict[str, float] | None, options: MatchOptions) -> IntelScore:
    """One account's intel score from its evidence per indicator: ``(feature, strength in [0, 1])`` items.

    Noisy-OR of ``WEIGHTS[feature] * strength * damping`` within an indicator, then across indicators of
    one member, then across members. ``corroborated`` when at least ``k`` distinct members contribute
    ``min_source_score`` or more (or have reported sightings of the indicator).
    """
    per_source: dict[str, float] = {}
    corroborators: set[str] = set()
    words: list[str] = []
    hit: list[str] = []
    for ind_id, items in evidence.items():
        ind = indicators[ind_id]
        factor = 1.0 if damp is None else damp.get(ind_id, 1.0)
        miss = 1.0
        for feature, strength in items:
            miss *= 1.0 - WEIGHTS[feature] * strength * factor
        score = 1.0 - miss
        if score <= 0:
            continue
        hit.append(ind_id)
        per_source[ind.producer] = 1.0 - (1.0 - per_source.get(ind.producer, 0.0)) * (1.0 - score)
        corroborators |= ind.corroborators
        features = ",".join(sorted({f for f, _ in items}))
        words.append(f"intel {ind.kind} [{features}] from {ind.provenance()} ({score:.2f})")
    if not per_source:
        return NO_INTEL
    miss = 1.0
    for value in per_source.values():
        miss *= 1.0 - value
    sources = {p for p, v in per_source.items() if v >= options.min_source_score} | corroborators
    return IntelScore(round(1.0 - miss, 4), tuple(words), len(sources) >= options.k, tuple(hit))


@dataclass
class MatchResult:
    table: pa.Table
    hits: dict[str, Hit]
    indicators: dict[str, SharedIndicator]


RESULT_SCHEMA = pa.schema([("account_id", pa.string()), ("intel_score", pa.float64()),
                           ("intel_reasons", pa.string()), ("corroborated", pa.bool_()),
                           ("local_detection", pa.bool_())])  # our own detection flagged it (not corroboration)


def match_accounts(con: duckdb.DuckDBPyConnection, bundles: list[dict[str, Any]] | dict[str, Any], key: bytes,
                   local: set[str] | None = None, options: MatchOptions | None = None) -> pa.Table:
    """Per-account intel matches: ``account_id, intel_score, intel_reasons, corroborated`` (run_detection's input)."""
    return match(con, bundles, key, local, options).table


def match(con: duckdb.DuckDBPyConnection, bundles: list[dict[str, Any]] | dict[str, Any], key: bytes,
          local: set[str] | None = None, options: MatchOptions | None = None) -> MatchResult:
    opts = options or MatchOptions()
    indicators = {i.id: i for i in collect(objects_of(bundles))}
    # evidence[account][indicator] = (feature, strength) list
    evidence: dict[str, dict[str, list[tuple[str, float]]]] = defaultdict(lambda: defaultdict(list))
    active = {a for (a,) in con.execute("SELECT account_id FROM exchanges GROUP BY account_id HAVING count(*) >= ?",
                                        [opts.min_exchanges]).fetchall()}
    for ind in indicators.values():
        for account, feature, strength in _match_one(con, ind, key):
            if account in active and strength > 0:
                evidence[account][ind.id].append((feature, strength))
    _match_templates(con, [i for i in indicators.values() if i.kind == "templates"], key, opts, active, evidence)
    behaviour = [i for i in indicators.values() if i.kind == "behaviour"]
    if behaviour:
        for account, ind_id in _match_behaviour(con, behaviour, opts):
            # behaviour alone describes eval runners and batch jobs too: it only adds to other evidence
            if account in evidence and any(indicators[i].producer == indicators[ind_id].producer
                                           for i in evidence[account]):
                evidence[account][ind_id].append(("behaviour", 1.0))
    damp = _damping(evidence, len(active), opts.max_account_share)
    return _score(con, evidence, indicators, damp, local or set(), opts)


def _match_one(con: duckdb.DuckDBPyConnection, ind: SharedIndicator, key: bytes) -> list[tuple[str, str, float]]:
    data = ind.data
    out: list[tuple[str, str, float]] = []
    if ind.kind == "infrastructure":
        ranges = ipv4_ranges(data.get("ip_prefixes", []))
        if ranges:
            con.register("_ranges", pa.table({"lo": [r[0] for r in ranges], "hi": [r[1] for r in ranges]}))
            rows = con.execute(
                f"WITH e AS (SELECT account_id, CASE WHEN regexp_full_match(ip, '\\d+\\.\\d+\\.\\d+\\.\\d+') "
                f"THEN {_IPV4_INT} END AS n FROM exchanges) "
                "SELECT account_id, avg(CASE WHEN EXISTS (SELECT 1 FROM _ranges r WHERE e.n BETWEEN r.lo AND r.hi) "
                "THEN 1.0 ELSE 0.0 END) FROM e GROUP BY account_id").fetchall()
            con.unregister("_ranges")
            out += [(a, "ip", s) for a, s in rows]
        for feature, key_name in (("asn", "asns"), ("tls_fp", "tls_fps"), ("user_agent", "user_agents")):
            values = data.get(key_name, [])
            if values:
                rows = con.execute(f"SELECT account_id, avg(CASE WHEN {feature} IN (SELECT unnest(?)) THEN 1.0 "
                                   "ELSE 0.0 END) FROM exchanges GROUP BY account_id", [list(values)]).fetchall()
                out += [(a, feature, s) for a, s in rows]
    elif ind.kind == "identifiers":
        wanted = {i.get("hmac") for i in data.get("identifiers", []) if isinstance(i, dict)}
        for account, pay, dom, sip in con.execute(
                "SELECT account_id, payment_fp, email_domain, signup_ip FROM accounts").fetchall():
            for kind, value in (("payment_fp", pay), ("email_domain", dom), ("signup_ip", sip)):
                if value and keyed_id(key, kind, value) in wanted:
                    out.append((account, kind, 1.0))
    return out


def template_texts(system: str | None, user: str | None) -> list[str]:
    """What a request is compared with shared templates by: its template text (the form ``campaigns.json``
    examples, hence exported signatures, have) and, for bundles made from whole prompts, the raw texts."""
    return [t for t in (template_text(system, user), user, system) if t]


def _match_templates(con: duckdb.DuckDBPyConnection, inds: list[SharedIndicator], key: bytes, opts: MatchOptions,
                     active: set[str], evidence: dict[str, dict[str, list[tuple[str, float]]]]) -> None:
    if not inds:
        return
    hasher = TemplateHasher(key, int(inds[0].data.get("num_perm", 64)), int(inds[0].data.get("bands", 16)))
    index = TemplateIndex(hasher, threshold=min(float(i.data.get("threshold", 0.5)) for i in inds))
    for ind in inds:
        for template in ind.data.get("templates", []):
            try:
                index.add(ind.id, decode_signature(template["signature"], hasher.num_perm))
            except (KeyError, TypeError, ValueError):
                continue  # a malformed signature from a peer is skipped, not fatal
    rows = con.execute(
        "SELECT account_id, user_text, system_text FROM (SELECT account_id, user_text, system_text, "
        "row_number() OVER (PARTITION BY account_id ORDER BY id_hash) AS rn FROM exchanges) WHERE rn <= ?",
        [opts.template_sample]).fetchall()
    sampled: dict[str, int] = defaultdict(int)
    hits: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for account, user, system in rows:
        if account not in active:
            continue
        sampled[account] += 1
        matched = {ref for text in template_texts(system, user) for ref, _ in index.query(text)}
        for ref in matched:
            hits[account][ref] += 1
    for account, refs in hits.items():
        for ref, n in refs.items():
            evidence[account][ref].append(("template", min(1.0, n / sampled[account] / 0.5)))


def _match_behaviour(con: duckdb.DuckDBPyConnection, inds: list[SharedIndicator], opts: MatchOptions
                     ) -> list[tuple[str, str]]:
    stats = con.execute(
        "WITH g AS (SELECT account_id, epoch_ms(ts) - lag(epoch_ms(ts)) OVER (PARTITION BY account_id ORDER BY ts) "
        "AS gap, max_tokens, n_user_turns, n_assistant_turns, reasoning_effort, reasoning_tokens FROM exchanges) "
        "SELECT account_id, median(max_tokens), avg(CASE WHEN n_user_turns <= 1 AND n_assistant_turns = 0 "
        "THEN 1.0 ELSE 0.0 END), avg(CASE WHEN coalesce(reasoning_tokens, 0) > 0 OR reasoning_effort IS NOT NULL "
        "THEN 1.0 ELSE 0.0 END), stddev_samp(gap) / nullif(avg(gap), 0), count(*) FROM g GROUP BY account_id"
    ).fetchall()
    out = []
    for account, mtok, single, cot, cv, n in stats:
        if n < opts.min_exchanges:
            continue
        for ind in inds:
            t = ind.data.get("thresholds", {})
            ok = ((mtok or 0) >= t.get("median_max_tokens_min", 0) and single >= t.get("single_turn_share_min", 0)
                  and cot >= t.get("cot_share_min", 0)
                  and (cv is not None and cv <= t.get("inter_arrival_cv_max", float("inf"))))
            if ok:
                out.append((account, ind.id))
    return out


def _damping(evidence: dict[str, dict[str, list[tuple[str, float]]]], n_active: int, max_share: float
             ) -> dict[str, float]:
    """Indicator -> factor in (0, 1]: an indicator hitting more than ``max_share`` of accounts is over-broad."""
    counts: dict[str, int] = defaultdict(int)
    for per in evidence.values():
        for ind_id in per:
            counts[ind_id] += 1
    limit = max(1.0, max_share * n_active)
    return {ind_id: min(1.0, limit / n) for ind_id, n in counts.items()}


def _score(con: duckdb.DuckDBPyConnection, evidence: dict[str, dict[str, list[tuple[str, float]]]],
           indicators: dict[str, SharedIndicator], damp: dict[str, float], local: set[str], opts: MatchOptions
           ) -> MatchResult:
    hits: dict[str, Hit] = defaultdict(Hit)
    ids, scores, reasons, corroborated, local_detection = [], [], [], [], []
    for account in sorted(evidence):
        result = score_evidence(evidence[account], indicators, damp, opts)
        if not result.indicators:
            continue
        for ind_id in result.indicators:
            hits[ind_id].accounts.add(account)
        ids.append(account)
        scores.append(result.score)
        reasons.append("; ".join(result.reasons))
        corroborated.append(result.corroborated)
        local_detection.append(account in local)
    _fill_hits(con, hits)
    table = pa.table([ids, scores, reasons, corroborated, local_detection], schema=RESULT_SCHEMA)
    return MatchResult(table, dict(hits), indicators)


def _fill_hits(con: duckdb.DuckDBPyConnection, hits: dict[str, Hit]) -> None:
    accounts = sorted({a for h in hits.values() for a in h.accounts})
    if not accounts:
        return
    rows = con.execute("SELECT account_id, count(*), epoch_ms(min(ts)), epoch_ms(max(ts)) FROM exchanges "
                       "WHERE account_id IN (SELECT unnest(?)) GROUP BY account_id", [accounts]).fetchall()
    per = {a: (n, lo, hi) for a, n, lo, hi in rows}
    for hit in hits.values():
        spans = [per[a] for a in hit.accounts if a in per]
        hit.exchanges = sum(s[0] for s in spans)
        hit.first_ms = min((s[1] for s in spans), default=None)
        hit.last_ms = max((s[2] for s in spans), default=None)
