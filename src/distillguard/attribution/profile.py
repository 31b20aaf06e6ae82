"""What each campaign did: volume, span, models, capabilities, infrastructure, templates, behaviour.

All figures come from a handful of grouped DuckDB queries over the members table
``_members(account_id, cid)`` and the candidates' parsed exchanges ``_cx`` (see
:func:`distillguard.attribution.columns.materialise`), so profiling costs one scan of
the suspicious traffic per figure family no matter how many campaigns there are; the
raw exchange text is read again only for the handful of template examples shown.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import duckdb

from distillguard.attribution.columns import Columns

TOP = 5


def _grouped(con: duckdb.DuckDBPyConnection, sql: str) -> dict[int, list[tuple]]:
    out: dict[int, list[tuple]] = defaultdict(list)
    for row in con.execute(sql).fetchall():
        out[row[0]].append(row[1:])
    return out


def _top(con: duckdb.DuckDBPyConnection, expr: str, source: str = "_cx e", n: int = TOP) -> dict[int, list]:
    rows = _grouped(con, f"""
        SELECT cid, v FROM (
            SELECT m.cid, {expr} AS v, count(*) AS c,
                   row_number() OVER (PARTITION BY m.cid ORDER BY count(*) DESC, {expr}) AS r
            FROM {source} JOIN _members m ON m.account_id = e.account_id
            WHERE {expr} IS NOT NULL AND CAST({expr} AS VARCHAR) <> '' GROUP BY m.cid, {expr})
        WHERE r <= {n} ORDER BY cid, r""")
    return {cid: [r[0] for r in vals] for cid, vals in rows.items()}


def profile(con: duckdb.DuckDBPyConnection, cols: Columns) -> dict[int, dict[str, Any]]:
    """Per campaign index: the descriptive fields of :class:`~distillguard.attribution.campaign.Campaign`."""
    out: dict[int, dict[str, Any]] = defaultdict(dict)
    for cid, n, first, last in con.execute(
            "SELECT m.cid, count(*), min(e.ts), max(e.ts) FROM _cx e JOIN _members m USING (account_id)"
            " GROUP BY m.cid").fetchall():
        out[cid].update(exchanges=int(n), first_seen=first, last_seen=last)
    for cid, rows in _grouped(con, "SELECT m.cid, coalesce(e.model, 'unknown'), count(*) FROM _cx e"
                                   " JOIN _members m USING (account_id) GROUP BY 1, 2 ORDER BY 1, 3 DESC, 2").items():
        out[cid]["models"] = {model: int(c) for model, c in rows}
    for cid, rows in _grouped(con, "SELECT m.cid, e.cap, count(*) FROM _cx e JOIN _members m USING (account_id)"
                                   " GROUP BY 1, 2 ORDER BY 1, 3 DESC, 2").items():
        total = sum(c for _, c in rows) or 1
        out[cid]["capabilities"] = {cap or "unknown": c / total for cap, c in rows}
    nets, asns = _top(con, "e.net"), _top(con, "e.asn")
    tls, agents = _top(con, "e.tls_fp"), _top(con, "e.user_agent")
    payments = _top(con, "e.payment_fp", "accounts e", 10)
    domains = _top(con, "e.email_domain", "accounts e", 10)
    signup = _top(con, "e.signup_ip", "accounts e", 10)
    for cid in out:
        out[cid]["infrastructure"] = {"ip_prefixes": nets.get(cid, []), "asns": asns.get(cid, []),
                                      "tls_fps": tls.get(cid, []), "user_agents": agents.get(cid, [])}
        out[cid]["identifiers"] = {"payment_fps": payments.get(cid, []), "email_domains": domains.get(cid, []),
                                   "signup_ips": signup.get(cid, [])}
    # top templates per campaign from the parsed fingerprints; the example text is normalised only for
    # one exchange per shown template
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _tpl AS
        SELECT cid, fp, n, r, example_id FROM (
            SELECT m.cid, e.fp, count(*) AS n, arg_min(e.id, e.ts) AS example_id,
                   row_number() OVER (PARTITION BY m.cid ORDER BY count(*) DESC, e.fp) AS r
            FROM _cx e JOIN _members m USING (account_id)
            GROUP BY m.cid, e.fp HAVING e.fp IS NOT NULL AND count(*) >= 2)
        WHERE r <= {TOP}""")
    for cid, rows in _grouped(con, f"""
            SELECT t.cid, t.fp, x.example, t.n FROM _tpl t LEFT JOIN (
                SELECT e.id, {cols.template_text} AS example FROM exchanges e SEMI JOIN _tpl ON _tpl.example_id = e.id
            ) x ON x.id = t.example_id ORDER BY t.cid, t.r""").items():
        out[cid]["templates"] = [{"fingerprint": fp, "example": ex, "count": int(n)} for fp, ex, n in rows]
    con.execute("DROP TABLE _tpl")
    _behaviour(con, cols, out)
    return out


def _behaviour(con: duckdb.DuckDBPyConnection, cols: Columns, out: dict[int, dict[str, Any]]) -> None:
    """Request shape and timing; ``ip_churn`` (distinct /24s per exchange) flags proxy rotation."""
    rows = con.execute("""
        WITH x AS (
            SELECT m.cid, e.account_id, e.max_tokens, e.n_user_turns, e.cot, e.net,
                   epoch_ms(e.ts) - lag(epoch_ms(e.ts)) OVER (PARTITION BY e.account_id ORDER BY e.ts) AS gap
            FROM _cx e JOIN _members m USING (account_id)),
        acct AS (
            SELECT cid, account_id, stddev_pop(gap) / nullif(avg(gap), 0) AS cv,
                   count(DISTINCT net) / count(*) AS churn FROM x GROUP BY cid, account_id)
        SELECT x.cid, median(x.max_tokens), avg((coalesce(x.n_user_turns, 1) <= 1)::INT),
               avg(coalesce(x.cot, false)::INT),
               (SELECT median(cv) FROM acct WHERE acct.cid = x.cid),
               (SELECT median(churn) FROM acct WHERE acct.cid = x.cid)
        FROM x GROUP BY x.cid""").fetchall()
    for cid, max_tokens, single, cot, cv, churn in rows:
        out[cid]["behaviour"] = {"median_max_tokens": max_tokens, "single_turn_share": single, "cot_share": cot,
                                 "inter_arrival_cv": cv, "ip_churn": churn}
