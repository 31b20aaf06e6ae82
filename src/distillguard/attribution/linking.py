"""The account-linking graph: which suspicious accounts share what, as weighted edges.

Every piece of linking evidence is a *key* an account holds (a payment fingerprint,
a /24 it calls from, a template it repeats, a band of its activity MinHash). Two
suspicious accounts holding the same key are a candidate pair, weighed on every kind
of key they share. Three rules keep benign clusters that share infrastructure out of
campaigns:

* a key counts only when a large share of *all* accounts holding it are suspicious, so
  webmail domains, campus NATs, reseller egress IPs and a company card that mostly
  pays for ordinary accounts carry no weight;
* infrastructure kinds are weak, and an edge needs identity or behaviour evidence
  (``min_strong``) besides them;
* only suspicious accounts are nodes at all (the caller's risk gate).

Large key groups propose a sparse random circulant instead of a clique, so a
10,000-account hydra costs ~10 pairs per account and key rather than 50 million, while
the group stays one well-connected community.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import numpy as np
import pyarrow as pa

from distillguard.attribution import minhash
from distillguard.attribution.domains import lookalike_pairs, squats, throwaway

# kind -> (weight, category); weights are per-pair contributions, summed over kinds
KINDS: dict[str, tuple[float, str]] = {
    "shared_payment": (0.35, "identity"),
    # one card issuer (the account record's ``payment_issuer``: IIN/BIN or issuer name) behind distinct cards;
    # common issuers are no evidence (most of their holders are unsuspicious: ``min_flagged_share``)
    "shared_payment_issuer": (0.15, "identity"),
    # a pair of look-alike domains (attribution/domains.py): a private family names one registrant; squats on a
    # public mailbox (gmai1.com) and numbered series (fastmail851.site) are bought and shared by many operations
    "lookalike_email_domain": (0.3, "identity"),
    "throwaway_email_domain": (0.2, "identity"),
    "batch_creation": (0.15, "identity"),  # signed up in one burst (consecutive gaps <= creation_gap_s)
    "shared_proxy_pool": (0.3, "identity"),  # rotating over the same set of /24s (weighted by Jaccard)
    "shared_template": (0.25, "behaviour"),
    # stock phrases of one generator (signals/style.py): Jaccard of the accounts' phrase sets, see PHRASE_FULL
    "shared_phrasing": (0.35, "behaviour"),
    "synchronised_activity": (0.25, "behaviour"),
    # an institution or a customer shares these legitimately: they corroborate, never link alone
    "shared_ip_prefix": (0.15, "infrastructure"),
    "shared_signup_network": (0.15, "infrastructure"),
    "shared_email_domain": (0.1, "infrastructure"),
    "shared_org": (0.1, "infrastructure"),
    "shared_client_fingerprint": (0.1, "infrastructure"),
}
INFRASTRUCTURE = tuple(k for k, (_, cat) in KINDS.items() if cat == "infrastructure")
# What a customer can share with an operation by chance: the commercial proxy pool both rent, a sign-up in the hour
# of one of the operation's bursts, the phrases of one language (a heavy user holds thousands), and infrastructure.
# A link resting on nothing else ties a member that shows no use of its own (detect.evidence.shows_use: only young
# or behind a proxy) to no campaign (pipeline.coordination_evidence): at 16M exchanges three casual users, days old
# and on the pool a hydra rented, were linked into it by the pool and a few phrases, or by a burst and phrasing, and
# throttled.
COINCIDENTAL = ("shared_proxy_pool", "batch_creation", "shared_phrasing", *INFRASTRUCTURE)
# An actor's *dialect* (its templates, card issuers, domain families, networks, client stack) is shared by all of
# its operations; these kinds link two accounts only when they also belong to one launch cohort: created, or
# first active, within ``cohort_s`` of each other. Exact payment cards, proxy pools, synchrony and sign-up
# bursts are per-operation and link regardless (a hydra's replacement accounts arrive over weeks).
# Look-alike domains name a registrant only for accounts it signed up together: colleagues at ``atlas-lab.org``
# and customers of ``atlaslabs.ai`` who were all active on the first day of the window are no cohort. These kinds
# need sign-up within ``cohort_s`` (first activity only when a sign-up time is missing).
SIGNUP_GATED = ("lookalike_email_domain", "throwaway_email_domain")
COHORT_GATED = ("shared_template", "shared_payment_issuer", "lookalike_email_domain", "throwaway_email_domain",
                *INFRASTRUCTURE)


@dataclass(frozen=True)
class LinkConfig:
    min_flagged_share: float = 0.5  # a key is evidence only if this share of its holders is suspicious
    clique_max: int = 40  # key groups larger than this are linked by a sparse random circulant
    circulant_degree: int = 6  # random offsets per member in a large group
    template_min_share: float = 0.05  # a template must be this share of an account's traffic (and >= 2)
    sync_bucket_s: int = 60  # SynchroTrap time bucket
    sync_min_buckets: int = 5  # accounts active in fewer buckets are not compared
    min_jaccard: float = 0.3  # for the set kinds: synchrony and proxy pool
    pool_min_networks: int = 3  # a proxy pool is at least this many informative /24s (a NAT is one or two)
    creation_gap_s: int = 600
    public_domain_accounts: int = 10  # a domain this many unsuspicious accounts use is a public mailbox
    cohort_s: int = 86_400  # dialect kinds need sign-up or first activity this close (0: no gate)
    min_edge: float = 0.3  # total weight to keep an edge
    min_strong: float = 0.3  # identity + behaviour weight an edge needs beyond infrastructure


_IPV4_NET = "regexp_extract({col}, '^(\\d+\\.\\d+\\.\\d+)\\.\\d+$', 1)"
SET_KINDS = ("synchronised_activity", "shared_proxy_pool", "shared_phrasing")
# Phrasing is a set kind too: the set of stock phrases (``stock_phrase`` keys, informative ones only) an account's
# prompts hold. Heavy users of one language share many common phrases by sheer volume, and two operations built
# on the same public prompt sources share some; what one generator's accounts share is a large part of their
# phrase *sets*. So the weight grows with the Jaccard of the sets, full at PHRASE_FULL (the set kinds' usual
# min_jaccard), and pairs are proposed by finer LSH bands (32 x 2: pairs above ~0.2 are found) rather than by
# every shared phrase (which proposed millions of pairs of heavy users at 1M exchanges).
PHRASE_FULL = 0.3
PHRASE_MIN = 0.05  # below this Jaccard a pair's phrasing counts for nothing
PHRASE_ALONE = 4  # fewer shared phrases than this (estimated) stay below an edge on their own (min_edge): one
# task-style instruction a customer happens to type the way a harvester's generator does must not link them
PHRASE_BANDS, PHRASE_ROWS = 32, 2


def net_sql(col: str) -> str:
    """/24 for IPv4, the first four hextets (/64) for IPv6: the unit a proxy pool rotates within."""
    v4 = _IPV4_NET.format(col=col)
    return (f"CASE WHEN {v4} <> '' THEN {v4} || '.0/24' "
            f"WHEN contains({col}, ':') THEN "
            f"array_to_string(list_slice(string_split({col}, ':'), 1, 4), ':') || '::/64' END")


def account_keys(con: duckdb.DuckDBPyConnection, cfg: LinkConfig) -> dict[str, np.ndarray]:
    """Create temp table ``_keys(account_id, kind, value)`` of informative keys held by candidates (``_cand``).

    Reads ``accounts`` and the tables of :func:`columns.aggregate`. Returns the MinHash signatures of the
    set kinds (per kind, indexed by ``_cand.node``) for :func:`build_edges` to weigh pairs with.
    """
    # look-alike pairs among the candidates' domains (attribution/domains.py); every holder of either domain of
    # a pair holds its key, so the flagged-share test below judges the pair on all of them
    domains = [r[0] for r in con.execute("SELECT DISTINCT lower(a.email_domain) FROM accounts a JOIN _cand c"
                                         " USING (account_id) WHERE a.email_domain <> ''").fetchall()]
    pairs = lookalike_pairs([d for d in domains if d])
    public = [r[0] for r in con.execute(
        "SELECT lower(a.email_domain) FROM accounts a LEFT JOIN _cand c USING (account_id) WHERE a.email_domain <> ''"
        f" AND c.account_id IS NULL GROUP BY 1 HAVING count(*) >= {cfg.public_domain_accounts}").fetchall()]
    squatted = squats(sorted({d for pair in pairs for d in pair}), public)
    con.register("_lookalike_arrow", pa.table({
        "domain": pa.array([d for pair in pairs for d in pair], pa.string()),
        "kind": pa.array(["throwaway_email_domain" if a in squatted or b in squatted or throwaway(a, b)
                          else "lookalike_email_domain" for a, b in pairs for _ in range(2)], pa.string()),
        "pair": pa.array([f"{a} ~ {b}" for a, b in pairs for _ in range(2)], pa.string())}))
    # networks, templates and phrases come one row per (account, key) already (grouped by both in
    # columns.aggregate) and are the largest key kinds: appended (UNION ALL), not searched for duplicates (on Spark
    # that search was most of this statement)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _all_keys AS
        SELECT account_id, 'shared_payment' AS kind, payment_fp AS value FROM accounts WHERE payment_fp <> ''
        UNION SELECT account_id, 'shared_payment_issuer', lower(trim(payment_issuer)) FROM accounts
              WHERE payment_issuer <> '' AND payment_fp <> ''
        UNION SELECT account_id, 'shared_org', org_id FROM accounts WHERE org_id <> ''
        UNION SELECT account_id, 'shared_email_domain', lower(email_domain) FROM accounts WHERE email_domain <> ''
        UNION SELECT a.account_id, l.kind, l.pair FROM accounts a
              JOIN _lookalike_arrow l ON lower(a.email_domain) = l.domain
        UNION SELECT account_id, 'shared_signup_network', {net_sql('signup_ip')} FROM accounts WHERE signup_ip <> ''
        UNION SELECT account_id, 'shared_client_fingerprint', coalesce(tls_fp, '') || ' ' || coalesce(user_agent, '')
              FROM _clients
        UNION ALL SELECT account_id, 'shared_ip_prefix', net FROM _nets
        UNION ALL SELECT t.account_id, 'shared_template', t.fp::VARCHAR FROM _acct_tpl t
              JOIN _acct a USING (account_id) WHERE t.n >= 2 AND t.n >= {cfg.template_min_share} * a.n
        UNION ALL SELECT account_id, 'stock_phrase', fp::VARCHAR FROM _acct_style
    """)
    # keep keys shared by >= 2 candidates where candidates are a large share of all holders
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _keys AS
        WITH held AS (
            SELECT k.account_id, k.kind, k.value, c.account_id IS NOT NULL AS flagged
            FROM _all_keys k LEFT JOIN _cand c USING (account_id) WHERE k.value IS NOT NULL AND k.value <> ''),
        good AS (
            SELECT kind, value FROM held GROUP BY kind, value
            HAVING sum(flagged::INT) >= 2 AND sum(flagged::INT) >= {cfg.min_flagged_share} * count(*))
        SELECT h.account_id, h.kind, h.value FROM held h JOIN good USING (kind, value) WHERE h.flagged
    """)
    con.execute("DROP TABLE _all_keys")
    con.unregister("_lookalike_arrow")
    _batch_keys(con, cfg)
    return _set_keys(con, cfg)


def _batch_keys(con: duckdb.DuckDBPyConnection, cfg: LinkConfig) -> None:
    """Batch creation: runs of candidate sign-ups with gaps <= ``creation_gap_s``, if candidates dominate the window.

    Chaining gaps, not fixed buckets, keeps a batch made over two hours whole; the share test
    against *all* accounts created in the window keeps a busy sign-up hour from counting.
    """
    con.execute(f"""
        INSERT INTO _keys
        WITH c AS (
            SELECT a.account_id, epoch(a.created_at) AS t FROM accounts a JOIN _cand USING (account_id)
            WHERE a.created_at IS NOT NULL),
        s AS (SELECT *, CASE WHEN t - lag(t) OVER (ORDER BY t, account_id) <= {cfg.creation_gap_s} THEN 0 ELSE 1 END
                  AS brk FROM c),
        b AS (SELECT account_id, t, sum(brk) OVER (ORDER BY t, account_id ROWS UNBOUNDED PRECEDING) AS batch FROM s),
        w AS (SELECT batch, min(t) AS lo, max(t) AS hi, count(*) AS n FROM b GROUP BY batch HAVING count(*) >= 2),
        everyone AS (
            SELECT w.batch, count(*) AS total FROM w JOIN accounts a ON epoch(a.created_at) BETWEEN w.lo AND w.hi
            GROUP BY w.batch)
        SELECT b.account_id, 'batch_creation', 'batch-' || b.batch::VARCHAR FROM b JOIN w USING (batch)
        JOIN everyone USING (batch) WHERE w.n >= {cfg.min_flagged_share} * everyone.total
    """)


def _set_keys(con: duckdb.DuckDBPyConnection, cfg: LinkConfig) -> dict[str, np.ndarray]:
    """Set-similarity kinds via MinHash: LSH bands become keys, the full signature re-scores pairs.

    * synchronised_activity (SynchroTrap): the set of time buckets an account is active in;
    * shared_proxy_pool: the set of informative /24s it calls from (at least ``pool_min_networks``).
    """
    names = [r[0] for r in con.execute("SELECT account_id FROM _cand ORDER BY node").fetchall()]
    sources = {
        "synchronised_activity": ("SELECT c.node, m.x FROM _acct_min m JOIN _cand c USING (account_id)",
                                  cfg.sync_min_buckets),
        "shared_proxy_pool": ("SELECT c.node, hash(k.value) FROM _keys k JOIN _cand c USING (account_id)"
                              " WHERE k.kind = 'shared_ip_prefix'", cfg.pool_min_networks),
        "shared_phrasing": ("SELECT c.node, hash(k.value) FROM _keys k JOIN _cand c USING (account_id)"
                            " WHERE k.kind = 'stock_phrase'", 2),
    }
    out: dict[str, np.ndarray] = {}
    for kind, (sql, min_size) in sources.items():
        owner, element = con.execute(sql).fetchnumpy().values()
        owner = np.asarray(owner, dtype=np.int64)
        sig, has = minhash.signatures(owner, np.asarray(element).astype(np.uint64), len(names), min_size)
        out[kind] = np.where(has[:, None], sig, np.uint64(0))  # 0: no signature (a real minimum is 0 with odds 2^-64)
        if kind == "shared_phrasing":  # set sizes, to estimate how many phrases a pair shares
            out["phrase_count"] = np.bincount(owner, minlength=len(names)).astype(np.uint64)
        nodes = np.flatnonzero(has)
        bands, rows = (PHRASE_BANDS, PHRASE_ROWS) if kind == "shared_phrasing" else (minhash.BANDS, minhash.ROWS)
        keys = minhash.band_keys(sig[nodes], bands, rows)
        band = np.tile(np.arange(bands), len(nodes))
        con.register("_bands_arrow", pa.table({
            "account_id": pa.array([names[i] for i in np.repeat(nodes, bands)], pa.string()),
            "kind": pa.array([kind] * len(band), pa.string()),
            "value": pa.array([f"{b}:{k}" for b, k in zip(band.tolist(), keys.ravel().tolist(), strict=True)],
                              pa.string())}))
        con.execute("INSERT INTO _keys SELECT * FROM _bands_arrow")
        con.unregister("_bands_arrow")
    return out


def phrase_factor(jac: np.ndarray, size_a: np.ndarray, size_b: np.ndarray, min_edge: float) -> np.ndarray:
    """Share of the phrasing weight a pair earns: its phrase-set Jaccard over PHRASE_FULL (at most 1), nothing
    below PHRASE_MIN, and less than an edge on its own while the pair shares fewer than PHRASE_ALONE phrases
    (estimated from the Jaccard and the set sizes: ``|A & B| = J (|A| + |B|) / (1 + J)``)."""
    weight = KINDS["shared_phrasing"][0]
    factor = np.where(jac >= PHRASE_MIN, np.minimum(1.0, jac / PHRASE_FULL), 0.0)
    shared = jac * (size_a + size_b) / (1.0 + jac)
    few = shared < PHRASE_ALONE - 0.5
    return np.where(few, np.minimum(factor, (min_edge - 0.05) / weight), factor)


def build_edges(con: duckdb.DuckDBPyConnection, cfg: LinkConfig, signatures: dict[str, np.ndarray]) -> None:
    """Create temp table ``_edges(a, b, kind, weight)`` (a < b; one row per pair and kind) and ``_links(a, b, w)``.

    Keys only *propose* pairs (a clique per small key group, a sparse circulant per large one; a large
    infrastructure group proposes none, since infrastructure never links alone); each proposed pair is then
    weighed on every kind it shares, not just the one that proposed it. Otherwise two large groups (a
    sign-up batch and a proxy pool) would sample different random pairs, and no pair would collect both
    kinds of evidence. ``_links`` holds the pairs that pass the edge rules, with their
    total weight. Pairs are built on the candidates' integer ``node`` numbers; account ids come back
    only for the edges that survive.
    """
    weights = " ".join(f"WHEN '{k}' THEN {w}" for k, (w, _) in KINDS.items())
    infra = ", ".join(f"'{k}'" for k in INFRASTRUCTURE)
    gated = ", ".join(f"'{k}'" for k in COHORT_GATED)
    registered = ", ".join(f"'{k}'" for k in SIGNUP_GATED)
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _cohort AS
        SELECT c.node, c.account_id, epoch(any_value(a.created_at)) AS born, epoch(any_value(x.first_ts)) AS start
        FROM _cand c LEFT JOIN accounts a USING (account_id) LEFT JOIN _acct x USING (account_id)
        GROUP BY c.node, c.account_id
    """)
    con.execute("CREATE OR REPLACE TEMP TABLE _nkeys AS SELECT c.node, k.kind, k.value FROM _keys k "
                "JOIN _cand c USING (account_id) WHERE k.kind <> 'stock_phrase'")  # phrases: by their LSH bands
    deg = cfg.circulant_degree
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _pairs AS
        WITH g AS (
            SELECT node, kind, value,
                   row_number() OVER (PARTITION BY kind, value ORDER BY hash(node)) - 1 AS i,
                   count(*) OVER (PARTITION BY kind, value) AS n
            FROM _nkeys),
        small AS (
            SELECT x.node AS p, y.node AS q, x.kind FROM g x JOIN g y
            ON x.kind = y.kind AND x.value = y.value AND x.i < y.i WHERE x.n <= {cfg.clique_max}),
        hops AS (  -- member i links to member (i + 1 + h_j) mod n: an equi-join, not a scan of the group
            SELECT x.node AS p, x.kind, x.value,
                   ((x.i + 1 + (hash(x.value, j) % (x.n - 1)::UBIGINT)::BIGINT) % x.n) AS t
            FROM g x, range({deg}) r(j) WHERE x.n > {cfg.clique_max} AND x.kind NOT IN ({infra})),
        large AS (
            SELECT h.p, y.node AS q, h.kind FROM hops h JOIN g y
            ON y.kind = h.kind AND y.value = h.value AND y.i = h.t)
        SELECT DISTINCT least(p, q) AS a, greatest(p, q) AS b, kind FROM (SELECT * FROM small UNION ALL
                                                                          SELECT * FROM large)
    """)
    # every proposed pair, weighed on every key kind both hold (a network prefix counts where its small
    # group proposed the pair: hydra accounts hold hundreds, and the proxy pool Jaccard measures those).
    # One row per node with a list of values per kind makes this two 1:1 lookups per pair; joining the
    # keys themselves would let the planner start from the key self-join, the very clique product the
    # circulant avoids.
    keyed = [k for k in KINDS if k not in (*SET_KINDS, "shared_ip_prefix")]
    lists = ", ".join(f"list(value) FILTER (WHERE kind = '{k}') AS {k}" for k in keyed)
    hits = ", ".join(f"coalesce(list_has_any(x.{k}, y.{k}), false) AS {k}" for k in keyed)
    con.execute(f"CREATE OR REPLACE TEMP TABLE _wide AS SELECT node, {lists} FROM _nkeys GROUP BY node")
    con.execute("CREATE OR REPLACE TEMP TABLE _proposed AS SELECT DISTINCT a, b FROM _pairs")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _shared AS
        WITH hit AS (
            SELECT p.a, p.b, {hits} FROM _proposed p
            JOIN _wide x ON x.node = p.a JOIN _wide y ON y.node = p.b)
        SELECT a, b, kind FROM (UNPIVOT hit ON {", ".join(keyed)} INTO NAME kind VALUE shared) WHERE shared
        UNION ALL SELECT a, b, kind FROM _pairs WHERE kind = 'shared_ip_prefix'
    """)
    # set kinds: the Jaccard estimated from the full MinHash signatures, for every proposed pair
    a, b = con.execute("SELECT a, b FROM _proposed").fetchnumpy().values()
    a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    jac = []
    for kind in SET_KINDS:
        sig = signatures.get(kind)
        if sig is None:
            continue
        both = (sig[a, 0] != 0) & (sig[b, 0] != 0)
        j = np.zeros(len(a))
        j[both] = minhash.jaccard(sig, a[both], b[both])
        if kind == "shared_phrasing":
            factor = phrase_factor(j, signatures["phrase_count"][a].astype(np.float64),
                                   signatures["phrase_count"][b].astype(np.float64), cfg.min_edge)
        else:
            factor = np.where(j >= cfg.min_jaccard, j, 0.0)
        keep = factor > 0
        jac.append(pa.table({"a": a[keep], "b": b[keep], "kind": pa.array([kind] * int(keep.sum()), pa.string()),
                             "jac": factor[keep]}))
    con.register("_jac_arrow", pa.concat_tables(jac) if jac else
                 pa.table({"a": pa.array([], pa.int64()), "b": pa.array([], pa.int64()),
                           "kind": pa.array([], pa.string()), "jac": pa.array([], pa.float64())}))
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _edges AS
        WITH weighed AS (
            SELECT a, b, kind, CASE kind {weights} END AS weight FROM _shared
            UNION ALL SELECT a, b, kind, (CASE kind {weights} END) * jac FROM _jac_arrow)
        SELECT least(ca.account_id, cb.account_id) AS a, greatest(ca.account_id, cb.account_id) AS b, p.kind,
               p.weight
        FROM weighed p JOIN _cohort ca ON ca.node = p.a JOIN _cohort cb ON cb.node = p.b
        WHERE {cfg.cohort_s} <= 0 OR p.kind NOT IN ({gated})
              OR (p.kind IN ({registered}) AND coalesce(abs(ca.born - cb.born) <= {cfg.cohort_s},
                                                       abs(ca.start - cb.start) <= {cfg.cohort_s}, true))
              OR (p.kind NOT IN ({registered}) AND (coalesce(abs(ca.born - cb.born) <= {cfg.cohort_s}, true)
                                                   OR coalesce(abs(ca.start - cb.start) <= {cfg.cohort_s}, true)))
    """)
    con.unregister("_jac_arrow")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _links AS
        SELECT a, b, sum(weight) AS w FROM _edges GROUP BY a, b
        HAVING sum(weight) >= {cfg.min_edge}
           AND sum(CASE WHEN kind IN ({infra}) THEN 0 ELSE weight END) >= {cfg.min_strong}
    """)
    for name in ("_pairs", "_proposed", "_shared", "_wide", "_nkeys", "_cohort"):
        con.execute(f"DROP TABLE {name}")
