"""The account-linking graph: which suspicious accounts share what, as weighted edges.

Every piece of linking evidence is a *key* an account holds (a payment fingerprint,
a /24 it calls from, a template it repeats, a band of its activity MinHash). Two
suspicious accounts holding the same key are linked by that key's kind. Three rules
keep benign clusters that share infrastructure out of campaigns:

* a key counts only when a large share of *all* accounts holding it are suspicious, so
  webmail domains, campus NATs, reseller egress IPs and a company card that mostly
  pays for ordinary accounts carry no weight;
* infrastructure kinds are weak, and an edge needs identity or behaviour evidence
  (``min_strong``) besides them;
* only suspicious accounts are nodes at all (the caller's risk gate).

Large key groups are linked by a sparse random circulant instead of a clique, so a
10,000-account hydra costs ~10 edges per account rather than 50 million, while the
group stays one well-connected community.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

# kind -> (weight, category); weights are per-pair contributions, summed over kinds
KINDS: dict[str, tuple[float, str]] = {
    "shared_payment": (0.35, "identity"),
    "shared_payment_issuer": (0.15, "identity"),  # prepaid/virtual card BIN behind distinct cards
    "lookalike_email_domain": (0.2, "identity"),  # distinct domains with one skeleton: mailbox1.xyz, mail-box7.xyz
    "batch_creation": (0.15, "identity"),  # signed up in one burst (consecutive gaps <= creation_gap_s)
    "shared_proxy_pool": (0.3, "identity"),  # rotating over the same set of /24s (weighted by Jaccard)
    "shared_template": (0.25, "behaviour"),
    "synchronised_activity": (0.25, "behaviour"),
    # an institution or a customer shares these legitimately: they corroborate, never link alone
    "shared_ip_prefix": (0.15, "infrastructure"),
    "shared_signup_network": (0.15, "infrastructure"),
    "shared_email_domain": (0.1, "infrastructure"),
    "shared_org": (0.1, "infrastructure"),
    "shared_client_fingerprint": (0.1, "infrastructure"),
}
INFRASTRUCTURE = tuple(k for k, (_, cat) in KINDS.items() if cat == "infrastructure")
# An actor's *dialect* (its templates, card issuers, domain families, networks, client stack) is shared by all of
# its operations; these kinds link two accounts only when they also belong to one launch cohort: created, or
# first active, within ``cohort_s`` of each other. Exact payment cards, proxy pools, synchrony and sign-up
# bursts are per-operation and link regardless (a hydra's replacement accounts arrive over weeks).
COHORT_GATED = ("shared_template", "shared_payment_issuer", "lookalike_email_domain", *INFRASTRUCTURE)


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
    cohort_s: int = 86_400  # dialect kinds need sign-up or first activity this close (0: no gate)
    min_edge: float = 0.3  # total weight to keep an edge
    min_strong: float = 0.3  # identity + behaviour weight an edge needs beyond infrastructure


_IPV4_NET = "regexp_extract({col}, '^(\\d+\\.\\d+\\.\\d+)\\.\\d+$', 1)"
_MINHASH_BANDS, _MINHASH_ROWS = 16, 4
_SET_KINDS = "'synchronised_activity', 'shared_proxy_pool'"


def net_sql(col: str) -> str:
    """/24 for IPv4, the first four hextets (/64) for IPv6: the unit a proxy pool rotates within."""
    v4 = _IPV4_NET.format(col=col)
    return (f"CASE WHEN {v4} <> '' THEN {v4} || '.0/24' "
            f"WHEN contains({col}, ':') THEN "
            f"array_to_string(list_slice(string_split({col}, ':'), 1, 4), ':') || '::/64' END")


def account_keys(con: duckdb.DuckDBPyConnection, cfg: LinkConfig) -> None:
    """Create temp table ``_keys(account_id, kind, value)`` of informative keys held by candidates (``_cand``).

    Reads ``accounts``, ``exchanges`` (network and client keys of every account, for the share test) and
    ``_cx`` (the candidates' exchanges with template fingerprints, see :func:`columns.materialise`).
    """
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _all_keys AS
        SELECT account_id, 'shared_payment' AS kind, payment_fp AS value FROM accounts WHERE payment_fp <> ''
        UNION SELECT account_id, 'shared_payment_issuer', regexp_extract(payment_fp, '^(pfp_[0-9a-f]{{6}})', 1)
              FROM accounts WHERE payment_fp <> ''
        UNION SELECT account_id, 'shared_org', org_id FROM accounts WHERE org_id <> ''
        UNION SELECT account_id, 'shared_email_domain', lower(email_domain) FROM accounts WHERE email_domain <> ''
        UNION SELECT account_id, 'lookalike_email_domain', skeleton FROM (
              SELECT account_id, skeleton, count(DISTINCT domain) OVER (PARTITION BY skeleton) AS variants FROM (
                  SELECT account_id, lower(email_domain) AS domain,
                         regexp_replace(regexp_replace(lower(email_domain), '\\.[a-z.]+$', ''), '[0-9_-]', '', 'g')
                             AS skeleton
                  FROM accounts WHERE email_domain <> ''))
              WHERE variants >= 2
        UNION SELECT account_id, 'shared_signup_network', {net_sql('signup_ip')} FROM accounts WHERE signup_ip <> ''
        UNION SELECT DISTINCT account_id, 'shared_ip_prefix', {net_sql('ip')} FROM exchanges
        UNION SELECT DISTINCT account_id, 'shared_client_fingerprint',
              coalesce(tls_fp, '') || ' ' || coalesce(user_agent, '') FROM exchanges
              WHERE tls_fp IS NOT NULL OR user_agent IS NOT NULL
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
    # templates: only the candidates' own traffic (``_cx``, parsed once) is read
    con.execute(f"""
        INSERT INTO _keys
        WITH t AS (
            SELECT account_id, fp, count(*) AS n, sum(count(*)) OVER (PARTITION BY account_id) AS total
            FROM _cx GROUP BY account_id, fp)
        SELECT account_id, 'shared_template', fp FROM t
        WHERE fp IS NOT NULL AND n >= 2 AND n >= {cfg.template_min_share} * total
    """)
    _batch_keys(con, cfg)
    _set_keys(con, cfg)


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


def _set_keys(con: duckdb.DuckDBPyConnection, cfg: LinkConfig) -> None:
    """Set-similarity kinds via MinHash: LSH bands become keys, the full signature re-scores pairs.

    * synchronised_activity (SynchroTrap): the set of time buckets an account is active in;
    * shared_proxy_pool: the set of informative /24s it calls from (at least ``pool_min_networks``).
    """
    perms = _MINHASH_BANDS * _MINHASH_ROWS
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _elements AS
        SELECT DISTINCT e.account_id, 'synchronised_activity' AS kind, epoch(e.ts)::BIGINT // {cfg.sync_bucket_s} AS x
        FROM _cx e
    """)
    con.execute("""
        INSERT INTO _elements SELECT account_id, 'shared_proxy_pool', (hash(value) >> 1)::BIGINT FROM _keys
        WHERE kind = 'shared_ip_prefix'
    """)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _minhash AS
        WITH big AS (
            SELECT account_id, kind FROM _elements GROUP BY account_id, kind
            HAVING count(*) >= CASE kind WHEN 'synchronised_activity' THEN {cfg.sync_min_buckets}
                                         ELSE {cfg.pool_min_networks} END)
        SELECT x.account_id, x.kind, j, min(hash(x.x, j)) AS h
        FROM _elements x JOIN big USING (account_id, kind), range({perms}) r(j)
        GROUP BY x.account_id, x.kind, j
    """)
    con.execute(f"""
        INSERT INTO _keys
        SELECT account_id, kind, (j // {_MINHASH_ROWS})::VARCHAR || ':' || hash(list(h ORDER BY j))::VARCHAR
        FROM _minhash GROUP BY account_id, kind, j // {_MINHASH_ROWS}
    """)
    con.execute("DROP TABLE _elements")


def build_edges(con: duckdb.DuckDBPyConnection, cfg: LinkConfig) -> None:
    """Create temp table ``_edges(a, b, kind, weight)`` (a < b; one row per pair and kind) and ``_links(a, b, w)``.

    ``_links`` holds the pairs that pass the edge rules, with their total weight.
    """
    weights = " ".join(f"WHEN '{k}' THEN {w}" for k, (w, _) in KINDS.items())
    infra = ", ".join(f"'{k}'" for k in INFRASTRUCTURE)
    gated = ", ".join(f"'{k}'" for k in COHORT_GATED)
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _cohort AS
        SELECT c.account_id, epoch(any_value(a.created_at)) AS born, (SELECT min(epoch(x.ts)) FROM _cx x
               WHERE x.account_id = c.account_id) AS start
        FROM _cand c LEFT JOIN accounts a USING (account_id) GROUP BY c.account_id
    """)
    deg = cfg.circulant_degree
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _pairs AS
        WITH g AS (
            SELECT account_id, kind, value,
                   row_number() OVER (PARTITION BY kind, value ORDER BY hash(account_id)) - 1 AS i,
                   count(*) OVER (PARTITION BY kind, value) AS n
            FROM _keys),
        small AS (
            SELECT x.account_id AS p, y.account_id AS q, x.kind FROM g x JOIN g y
            ON x.kind = y.kind AND x.value = y.value AND x.i < y.i WHERE x.n <= {cfg.clique_max}),
        hops AS (  -- member i links to member (i + 1 + h_j) mod n: an equi-join, not a scan of the group
            SELECT x.account_id AS p, x.kind, x.value,
                   ((x.i + 1 + (hash(x.value, j) % (x.n - 1)::UBIGINT)::BIGINT) % x.n) AS t
            FROM g x, range({deg}) r(j) WHERE x.n > {cfg.clique_max}),
        large AS (
            SELECT h.p, y.account_id AS q, h.kind FROM hops h JOIN g y
            ON y.kind = h.kind AND y.value = h.value AND y.i = h.t)
        SELECT DISTINCT least(p, q) AS a, greatest(p, q) AS b, kind FROM (SELECT * FROM small UNION ALL
                                                                          SELECT * FROM large)
    """)
    # set kinds are weighted by the Jaccard estimated from the full MinHash signatures
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _edges AS
        WITH sets AS (
            SELECT p.a, p.b, p.kind, count(*) / {_MINHASH_BANDS * _MINHASH_ROWS} AS jac
            FROM _pairs p JOIN _minhash x ON x.account_id = p.a AND x.kind = p.kind
            JOIN _minhash y ON y.account_id = p.b AND y.kind = p.kind AND y.j = x.j
            WHERE x.h = y.h GROUP BY p.a, p.b, p.kind)
        SELECT p.a, p.b, p.kind, (CASE p.kind {weights} END) * coalesce(s.jac, 1) AS weight
        FROM _pairs p LEFT JOIN sets s USING (a, b, kind)
        LEFT JOIN _cohort ca ON ca.account_id = p.a LEFT JOIN _cohort cb ON cb.account_id = p.b
        WHERE (p.kind NOT IN ({_SET_KINDS}) OR s.jac >= {cfg.min_jaccard})
          AND ({cfg.cohort_s} <= 0 OR p.kind NOT IN ({gated})
               OR coalesce(abs(ca.born - cb.born) <= {cfg.cohort_s}, true)
               OR coalesce(abs(ca.start - cb.start) <= {cfg.cohort_s}, true))
    """)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _links AS
        SELECT a, b, sum(weight) AS w FROM _edges GROUP BY a, b
        HAVING sum(weight) >= {cfg.min_edge}
           AND sum(CASE WHEN kind IN ({infra}) THEN 0 ELSE weight END) >= {cfg.min_strong}
    """)
    con.execute("DROP TABLE _pairs")
    con.execute("DROP TABLE _cohort")
