"""What each campaign did: volume, span, models, capabilities, infrastructure, templates, behaviour.

All figures come from grouped DuckDB queries over the members table ``_members(account_id,
cid)`` and the per-account tables of :func:`distillguard.attribution.columns.aggregate`, plus
one scan of the members' traffic folded into ``_shape`` (campaign x model x capability x ASN x
max_tokens), so profiling costs one pass over the suspicious traffic no matter how many
campaigns there are; the raw exchange text is read again only for the handful of template
examples shown.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import duckdb
import pyarrow as pa

from distillguard.attribution.columns import Columns

TOP = 5


def _grouped(con: duckdb.DuckDBPyConnection, sql: str) -> dict[int, list[tuple]]:
    out: dict[int, list[tuple]] = defaultdict(list)
    for row in con.execute(sql).fetchall():
        out[row[0]].append(row[1:])
    return out


def _top(con: duckdb.DuckDBPyConnection, expr: str, source: str, n: int = TOP, weight: str = "1"
         ) -> dict[int, list]:
    """The ``n`` most frequent values of ``expr`` per campaign; ``source`` has ``cid``, ``weight`` counts rows."""
    rows = _grouped(con, f"""
        SELECT cid, v FROM (
            SELECT cid, {expr} AS v, row_number() OVER (PARTITION BY cid ORDER BY sum({weight}) DESC, {expr}) AS r
            FROM {source} WHERE {expr} IS NOT NULL AND CAST({expr} AS VARCHAR) <> '' GROUP BY cid, {expr})
        WHERE r <= {n} ORDER BY cid, r""")
    return {cid: [r[0] for r in vals] for cid, vals in rows.items()}


_MEMBERS = "JOIN _members USING (account_id)"


def profile(con: duckdb.DuckDBPyConnection, cols: Columns) -> dict[int, dict[str, Any]]:
    """Per campaign index: the descriptive fields of :class:`~distillguard.attribution.campaign.Campaign`."""
    out: dict[int, dict[str, Any]] = defaultdict(dict)
    for cid, n, first, last in con.execute(
            "SELECT m.cid, sum(a.n), min(a.first_ts), max(a.last_ts) FROM _acct a JOIN _members m USING (account_id)"
            " GROUP BY m.cid").fetchall():
        out[cid].update(exchanges=int(n), first_seen=first, last_seen=last)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _shape AS
        SELECT m.cid, e.model, {cols.capability} AS cap, e.asn, e.max_tokens, count(*) AS n,
               sum(coalesce({cols.single_turn}, true)::INT) AS single, sum(coalesce({cols.cot}, false)::INT) AS cot
        FROM {cols.from_sql} JOIN _members m ON m.account_id = e.account_id GROUP BY ALL""")
    for cid, rows in _grouped(con, "SELECT cid, coalesce(model, 'unknown'), sum(n) FROM _shape"
                                   " GROUP BY 1, 2 ORDER BY 1, 3 DESC, 2").items():
        out[cid]["models"] = {model: int(c) for model, c in rows}
    for cid, rows in _grouped(con, "SELECT cid, cap, sum(n) FROM _shape GROUP BY 1, 2 ORDER BY 1, 3 DESC, 2").items():
        total = sum(c for _, c in rows) or 1
        out[cid]["capabilities"] = {cap or "unknown": c / total for cap, c in rows}
    nets, asns = _top(con, "net", f"_nets {_MEMBERS}", weight="n"), _top(con, "asn", "_shape", weight="n")
    tls = _top(con, "tls_fp", f"_clients {_MEMBERS}", weight="n")
    agents = _top(con, "user_agent", f"_clients {_MEMBERS}", weight="n")
    payments = _top(con, "payment_fp", f"accounts {_MEMBERS}", 10)
    domains = _top(con, "email_domain", f"accounts {_MEMBERS}", 10)
    signup = _top(con, "signup_ip", f"accounts {_MEMBERS}", 10)
    for cid in out:
        out[cid]["infrastructure"] = {"ip_prefixes": nets.get(cid, []), "asns": asns.get(cid, []),
                                      "tls_fps": tls.get(cid, []), "user_agents": agents.get(cid, [])}
        out[cid]["identifiers"] = {"payment_fps": payments.get(cid, []), "email_domains": domains.get(cid, []),
                                   "signup_ips": signup.get(cid, [])}
    _templates(con, cols, out)
    _behaviour(con, out)
    con.execute("DROP TABLE _shape")
    return out


def _templates(con: duckdb.DuckDBPyConnection, cols: Columns, out: dict[int, dict[str, Any]]) -> None:
    """Top templates per campaign; the example text is normalised only for one exchange per shown template."""
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _tpl AS
        SELECT cid, fp, n, r FROM (
            SELECT m.cid, t.fp, sum(t.n) AS n, row_number() OVER (PARTITION BY m.cid ORDER BY sum(t.n) DESC, t.fp) AS r
            FROM _acct_tpl t JOIN _members m USING (account_id) GROUP BY m.cid, t.fp HAVING sum(t.n) >= 2)
        WHERE r <= {TOP}""")
    # the first exchange of each shown template, fetched as a small table of its own and joined as a registered
    # table whose size Spark knows: on Spark at 4M exchanges the one statement joining the exchanges' text against a
    # subquery took 33 s, these two 12 s; DuckDB runs the same two statements
    rows = con.execute(f"""
        SELECT m.cid, {cols.template_fp} AS fp, arg_min(e.id, e.ts) AS example_id
        FROM {cols.from_sql} JOIN _members m ON m.account_id = e.account_id
        WHERE {cols.template_fp} IN (SELECT fp FROM _tpl) GROUP BY ALL""").fetchall()
    first = pa.table([pa.array([r[i] for r in rows], t) for i, t in enumerate((pa.int64(), pa.uint64(), pa.string()))],
                     names=["cid", "fp", "example_id"])
    con.register("_first_arrow", first)
    try:
        grouped = _grouped(con, f"""
            SELECT t.cid, t.fp::VARCHAR, x.example, t.n FROM _tpl t
            LEFT JOIN _first_arrow f ON f.cid = t.cid AND f.fp = t.fp
            LEFT JOIN (SELECT e.id, {cols.template_text} AS example FROM exchanges e
                       SEMI JOIN _first_arrow s ON s.example_id = e.id) x ON x.id = f.example_id
            ORDER BY t.cid, t.r""")
    finally:
        con.unregister("_first_arrow")
    for cid, rows in grouped.items():
        out[cid]["templates"] = [{"fingerprint": fp, "example": ex, "count": int(n)} for fp, ex, n in rows]
    con.execute("DROP TABLE _tpl")


def _behaviour(con: duckdb.DuckDBPyConnection, out: dict[int, dict[str, Any]]) -> None:
    """Request shape; ``ip_churn`` (median distinct /24s per exchange) flags proxy rotation.

    The median inter-arrival CV comes from detection's per-account features (see ``find_campaigns``).
    """
    rows = con.execute("""
        WITH tokens AS (SELECT cid, max_tokens, sum(n) AS n FROM _shape WHERE max_tokens IS NOT NULL GROUP BY ALL),
        cum AS (SELECT cid, max_tokens, sum(n) OVER (PARTITION BY cid ORDER BY max_tokens) AS upto,
                       sum(n) OVER (PARTITION BY cid) AS total FROM tokens),
        med AS (SELECT cid, min(max_tokens) AS max_tokens FROM cum WHERE 2 * upto >= total GROUP BY cid),
        acct AS (SELECT x.account_id, count(x.net) / sum(x.n) AS churn FROM _nets x
                 SEMI JOIN _members m ON m.account_id = x.account_id GROUP BY x.account_id),
        churn AS (SELECT m.cid, median(a.churn) AS churn FROM acct a JOIN _members m USING (account_id) GROUP BY m.cid),
        shares AS (SELECT cid, sum(single) / sum(n) AS single, sum(cot) / sum(n) AS cot FROM _shape GROUP BY cid)
        SELECT s.cid, med.max_tokens, s.single, s.cot, churn.churn FROM shares s LEFT JOIN med USING (cid)
        LEFT JOIN churn USING (cid)""").fetchall()
    for cid, max_tokens, single, cot, churn in rows:
        out[cid]["behaviour"] = {"median_max_tokens": max_tokens, "single_turn_share": single, "cot_share": cot,
                                 "ip_churn": churn}
