"""From scored accounts to campaigns: gate, link, cluster, describe, score."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from distillguard.attribution.campaign import (
    ATLAS_API_ACCESS,
    ATLAS_EXTRACT_MODEL,
    ATLAS_SERVICE_PROXIES,
    ATLAS_TRAIN_PROXY,
    Campaign,
    Evidence,
    campaign_id,
)
from distillguard.attribution.columns import aggregate, resolve
from distillguard.attribution.communities import communities
from distillguard.attribution.linking import (
    COINCIDENTAL,
    INFRASTRUCTURE,
    KINDS,
    LinkConfig,
    account_keys,
    build_edges,
    net_sql,
)
from distillguard.attribution.profile import profile

_DETAIL = {
    "shared_payment": "{n} accounts share {v} payment fingerprint(s)",
    "shared_payment_issuer": "{n} accounts pay with cards from {v} shared issuer(s)",
    "shared_org": "{n} accounts share {v} organisation id(s)",
    "lookalike_email_domain": "{n} accounts use {v} pair(s) of look-alike email domains",
    "throwaway_email_domain": "{n} accounts use {v} pair(s) of throwaway email domains (public-mailbox squats or "
                              "numbered series)",
    "shared_signup_network": "{n} accounts signed up from {v} shared network(s)",
    "shared_email_domain": "{n} accounts use {v} shared email domain(s)",
    "batch_creation": "{n} accounts were created in {v} sign-up burst(s)",
    "shared_proxy_pool": "{n} accounts rotate over the same proxy /24s (mean Jaccard {j:.2f})",
    "shared_template": "{n} accounts repeat {v} shared prompt template(s)",
    "shared_phrasing": "{n} accounts repeat {v} stock phrase(s) in their prompts",
    "synchronised_activity": "{n} accounts act in the same minutes (mean bucket Jaccard {j:.2f})",
    "shared_ip_prefix": "{n} accounts call from {v} shared network(s)",
    "shared_client_fingerprint": "{n} accounts share {v} TLS/user-agent fingerprint(s)",
}
# evidence that may attach a straggler: specific to one operation and no coincidence of timing or habit. Not a
# proxy pool: its customers share it (a commercial residential pool an operation rents), and summed over a large
# campaign's members a customer's many weak pool pairs outweighed any threshold (16M exchanges: casual and power
# users of the hydras' pool were attached and restricted); the pool still weighs in every proposed pair's edge
ATTACH_KINDS = ("shared_payment", "synchronised_activity")
_TEMP = ("_cand", "_acct", "_acct_tpl", "_acct_style", "_acct_min", "_nets", "_clients", "_all_keys", "_keys",
         "_nkeys", "_pairs", "_proposed", "_shared", "_wide", "_cohort", "_edges", "_links", "_members", "_shape",
         "_tpl", "_pair", "_attach", "_inside")


@dataclass(frozen=True)
class AttributionConfig:
    """Knobs of attribution; the defaults are what docs/attribution.md measures."""

    min_risk: float = 0.5  # accounts at or above this risk (or with verdict != allow) are graph nodes
    min_accounts: int = 3  # smaller groups are not reported as campaigns
    min_score: float = 0.3
    merge_conductance: float = 0.1
    merge_density: float = 0.1  # ... and the density between them >= this x the sparser one's internal density
    attach_min: float = 0.6  # ATTACH_KINDS weight, summed over >= 2 members, that attaches a straggler (0: off)
    proxy_churn: float = 0.2  # median distinct /24s per exchange above which IP rotation is evidence
    link: LinkConfig = field(default_factory=LinkConfig)


def suspicious(scores: pa.Table, min_risk: float) -> pa.Table:
    """The accounts that may seed or join a campaign: elevated risk or a non-allow verdict."""
    mask = pc.greater_equal(scores.column("risk"), min_risk)
    if "verdict" in scores.column_names:
        mask = pc.or_kleene(mask, pc.not_equal(scores.column("verdict"), "allow"))
    return scores.filter(pc.fill_null(mask, False)).select(["account_id", "risk"])


def find_campaigns(con: duckdb.DuckDBPyConnection, scores: pa.Table, features: pa.Table | None = None,
                   config: AttributionConfig | None = None) -> list[Campaign]:
    """Campaigns among the suspicious accounts of ``scores``, best score first.

    ``con`` needs views ``exchanges`` and ``accounts`` (and ``signals`` when detection
    made one). ``features`` (account_id + numeric columns) lends its per-account figures
    to the campaign's ``behaviour`` where the names match.
    """
    cfg = config or AttributionConfig()
    cand = suspicious(scores, cfg.min_risk)
    if len(cand) < cfg.min_accounts:
        return []
    con.register("_cand_arrow", cand)
    try:
        con.execute("CREATE OR REPLACE TEMP TABLE _cand AS SELECT account_id, max(risk) AS risk, "
                    "(row_number() OVER (ORDER BY account_id) - 1)::INT AS node FROM _cand_arrow GROUP BY account_id")
        cols = resolve(con)
        aggregate(con, cols, net_sql("ip"), cfg.link.sync_bucket_s)
        build_edges(con, cfg.link, account_keys(con, cfg.link))
        links = con.execute("SELECT a, b, w FROM _links ORDER BY a, b").fetchall()
        names = sorted({a for a, _, _ in links} | {b for _, b, _ in links})
        index = {n: i for i, n in enumerate(names)}
        groups = communities(names, [(index[a], index[b]) for a, b, _ in links], [w for _, _, w in links],
                             merge_conductance=cfg.merge_conductance, merge_density=cfg.merge_density)
        groups = [g for g in groups if len(g) >= cfg.min_accounts]
        if not groups:
            return []
        members = pa.table({"account_id": [names[v] for g in groups for v in g],
                            "cid": [c for c, g in enumerate(groups) for _ in g]})
        con.register("_members_arrow", members)
        con.execute("CREATE OR REPLACE TEMP TABLE _members AS SELECT * FROM _members_arrow")
        if cfg.attach_min > 0:
            _attach(con, cfg.attach_min)
        campaigns = _build(con, cfg, cols, features)
    finally:
        for name in _TEMP:
            con.execute(f"DROP TABLE IF EXISTS {name}")
        for name in ("_cand_arrow", "_members_arrow", "_features_arrow", "_bands_arrow", "_jac_arrow",
                     "_lookalike_arrow"):
            with contextlib.suppress(duckdb.Error):
                con.unregister(name)
    return sorted((c for c in campaigns if c.score >= cfg.min_score), key=lambda c: (-c.score, c.id))


def _attach(con: duckdb.DuckDBPyConnection, attach_min: float) -> None:
    """Attach stragglers: a suspicious account outside every campaign whose pairs each fell short of an edge.

    Evidence accumulates over a campaign's members: an account holding per-operation evidence
    (``ATTACH_KINDS``: exact card, synchrony) with at least two members of one campaign, summing to
    ``attach_min`` and at least twice what it shares with any other campaign, joins it. Infrastructure, the
    actor's dialect (templates, card issuers, domain families: IDE agents write like a coding hydra) and sign-up
    bursts (a customer who happened to sign up during one) never count here, so a NAT, a reseller range, a common
    prompt or an unlucky sign-up time cannot pull an account in; the supporting pairs are added to ``_links``,
    so the campaign's evidence lists them.
    """
    solid = ", ".join(f"'{k}'" for k in ATTACH_KINDS)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _pair AS
        SELECT a, b, sum(weight) AS w, sum(CASE WHEN kind IN ({solid}) THEN weight ELSE 0 END) AS s
        FROM _edges GROUP BY a, b HAVING s > 0
    """)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _attach AS
        WITH loose AS (
            SELECT p.a AS x, m.cid, p.s FROM _pair p JOIN _members m ON m.account_id = p.b
            WHERE p.a NOT IN (SELECT account_id FROM _members)
            UNION ALL
            SELECT p.b, m.cid, p.s FROM _pair p JOIN _members m ON m.account_id = p.a
            WHERE p.b NOT IN (SELECT account_id FROM _members)),
        per AS (SELECT x, cid, sum(s) AS s, count(*) AS n FROM loose GROUP BY x, cid),
        ranked AS (
            SELECT *, row_number() OVER (PARTITION BY x ORDER BY s DESC, cid) AS r,
                   lead(s) OVER (PARTITION BY x ORDER BY s DESC, cid) AS next FROM per)
        SELECT x AS account_id, cid FROM ranked
        WHERE r = 1 AND n >= 2 AND s >= {attach_min} AND s >= 2 * coalesce(next, 0)
    """)
    con.execute("""
        INSERT INTO _links
        SELECT p.a, p.b, p.w FROM _pair p JOIN _attach t ON t.account_id = p.a JOIN _members m ON m.account_id = p.b
        WHERE m.cid = t.cid
        UNION ALL
        SELECT p.a, p.b, p.w FROM _pair p JOIN _attach t ON t.account_id = p.b JOIN _members m ON m.account_id = p.a
        WHERE m.cid = t.cid
    """)
    con.execute("INSERT INTO _members SELECT account_id, cid FROM _attach")


def _build(con: duckdb.DuckDBPyConnection, cfg: AttributionConfig, cols, features: pa.Table | None
           ) -> list[Campaign]:
    prof = profile(con, cols)
    accounts: dict[int, list[str]] = {}
    risk: dict[int, float] = {}
    for cid, accts, mean_risk in con.execute(
            "SELECT m.cid, list(m.account_id ORDER BY m.account_id), avg(c.risk) FROM _members m"
            " JOIN _cand c USING (account_id) GROUP BY m.cid").fetchall():
        accounts[cid], risk[cid] = accts, float(mean_risk)
    # the edges between members of one campaign, for both the campaign's evidence and its links: one join
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _inside AS
        SELECT ma.cid, e.kind, e.a, e.b, e.weight FROM _edges e JOIN _links USING (a, b)
        JOIN _members ma ON ma.account_id = e.a JOIN _members mb ON mb.account_id = e.b AND mb.cid = ma.cid""")
    evidence = _evidence(con)
    edges: dict[int, list[tuple[str, str, str, float]]] = {}
    pairs: dict[int, list[tuple[str, str, float, bool]]] = {}
    chance: dict[int, set[tuple[str, str]]] = {}
    infra = ", ".join(f"'{k}'" for k in INFRASTRUCTURE)
    coincidental = ", ".join(f"'{k}'" for k in COINCIDENTAL)
    for cid, a, b, kind, w, kinds, specific in con.execute(f"""
            SELECT cid, a, b, arg_max(kind, weight), sum(weight),
                   count(DISTINCT kind) FILTER (WHERE kind NOT IN ({infra})),
                   count(*) FILTER (WHERE kind NOT IN ({coincidental}))
            FROM _inside GROUP BY cid, a, b""").fetchall():
        edges.setdefault(cid, []).append((a, b, kind, float(w)))
        # links resting on one kind of identity or behaviour evidence (one shared habit, e.g. public prompts, with
        # at most shared infrastructure beside it) are kept apart (campaign.tie_weights)
        pairs.setdefault(cid, []).append((a, b, float(w), kinds >= 2))
        if not specific:
            chance.setdefault(cid, set()).add((a, b))
    feats = _feature_medians(con, features)
    out = []
    for cid, accts in accounts.items():
        info = prof.get(cid, {})
        ev = evidence.get(cid, [])
        behaviour = {**info.get("behaviour", {}), **feats.get(cid, {})}
        atlas = [ATLAS_EXTRACT_MODEL, ATLAS_TRAIN_PROXY]
        if (behaviour.get("ip_churn") or 0) >= cfg.proxy_churn:
            ev.append(Evidence("ip_rotation", f"the median account moves to another network (/24) every "
                                              f"{1 / behaviour['ip_churn']:.1f} requests", 0.1))
            atlas.append(ATLAS_SERVICE_PROXIES)
        atlas.append(ATLAS_API_ACCESS)
        strength = min(1.0, sum(e.weight for e in ev))
        out.append(Campaign(
            id=campaign_id(accts), accounts=accts, score=risk[cid] * (0.5 + 0.5 * strength),
            evidence=sorted(ev, key=lambda e: (-e.weight, e.kind, e.detail)), strength=strength,
            exchanges=info.get("exchanges", 0),
            first_seen=info.get("first_seen"), last_seen=info.get("last_seen"),
            capabilities=info.get("capabilities", {}), models=info.get("models", {}), atlas=atlas,
            infrastructure=info.get("infrastructure", {}), identifiers=info.get("identifiers", {}),
            templates=info.get("templates", []), behaviour=behaviour, edges=edges.get(cid, []),
            links=pairs.get(cid, []), coincidental=chance.get(cid, set())))
    return out


def _evidence(con: duckdb.DuckDBPyConnection) -> dict[int, list[Evidence]]:
    """Per campaign and kind: members involved, distinct shared keys, weight = kind weight x coverage (over the
    members' edges, ``_inside``)."""
    rows = con.execute("""
        WITH inside AS (SELECT cid, kind, a, b, weight FROM _inside),
        touched AS (SELECT cid, kind, a AS account_id FROM inside UNION SELECT cid, kind, b FROM inside),
        size AS (SELECT cid, count(*) AS n FROM _members GROUP BY cid),
        held AS (  -- phrasing is counted in stock phrases held by two or more members, not in LSH bands
            SELECT account_id, CASE kind WHEN 'stock_phrase' THEN 'shared_phrasing' ELSE kind END AS kind, value
            FROM _keys WHERE kind <> 'shared_phrasing'),
        keys AS (
            SELECT cid, kind, count(*) FILTER (WHERE holders >= 2 OR kind <> 'shared_phrasing') AS v FROM (
                SELECT m.cid, k.kind, k.value, count(*) AS holders FROM held k
                JOIN touched t ON t.account_id = k.account_id AND t.kind = k.kind
                JOIN _members m ON m.account_id = k.account_id AND m.cid = t.cid
                GROUP BY m.cid, k.kind, k.value)
            GROUP BY cid, kind),
        agg AS (SELECT cid, kind, count(DISTINCT account_id) AS n FROM touched GROUP BY cid, kind),
        jac AS (SELECT cid, kind, avg(weight) AS w FROM inside GROUP BY cid, kind)
        SELECT agg.cid, agg.kind, agg.n, coalesce(keys.v, 0), size.n, jac.w FROM agg
        JOIN size USING (cid) JOIN jac USING (cid, kind) LEFT JOIN keys USING (cid, kind)""").fetchall()
    out: dict[int, list[Evidence]] = {}
    for cid, kind, n, v, size, mean_w in rows:
        base = KINDS[kind][0]
        detail = _DETAIL[kind].format(n=n, v=v, j=mean_w / base)
        out.setdefault(cid, []).append(Evidence(kind, detail, base * n / size))
    return out


def _feature_medians(con: duckdb.DuckDBPyConnection, features: pa.Table | None) -> dict[int, dict[str, float]]:
    """Medians over members of the behaviour figures detection already computed per account."""
    wanted = ("median_max_tokens", "single_turn_share", "cot_share", "inter_arrival_cv")
    if features is None:
        return {}
    names = [n for n in wanted if n in features.column_names]
    if not names:
        return {}
    con.register("_features_arrow", features.select(["account_id", *names]))
    select = ", ".join(f'median(f."{n}")' for n in names)
    rows = con.execute(f"SELECT m.cid, {select} FROM _members m JOIN _features_arrow f USING (account_id)"
                       " GROUP BY m.cid").fetchall()
    return {r[0]: {n: v for n, v in zip(names, r[1:], strict=True) if v is not None} for r in rows}
