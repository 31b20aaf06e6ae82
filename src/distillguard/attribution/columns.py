"""Per-exchange columns attribution needs, and the per-account tables it aggregates them into.

Attribution runs after detection, which registers the view ``ex``: exchange columns
and derived signals, row-aligned. When that view is missing (a store scored by
someone else), each column is computed here from the exchange text with DuckDB SQL,
so attribution works on any store; a no-content store has no text, and then only
the content-free fallbacks (tools, images) apply.

Suspicious accounts can own most of the traffic (at the public scale, 16M of 20M
exchanges), so attribution never keeps their exchanges row by row: every query folds
them into per-account tables (:func:`aggregate`) in one streaming, spillable group-by.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from distillguard.signals.cues import CAPABILITIES

# ``ex`` (exchange + signals columns, see distillguard.features.attach_signals) as attribution wants them
_FROM_SIGNALS = {
    "tpl": "nullif(e.tpl, 0)",
    "cap": "list_extract([" + ", ".join(f"'{c}'" for c in CAPABILITIES) + "], e.cap + 1)",
    "cot": "e.cot",
    "single_turn": "e.single_turn",
}

_TEXT = "lower(coalesce(e.user_text, ''))"
# the template only looks at the first words: normalising a 1,000-character head instead of the whole
# prompt gives the same fingerprint (unless eight words run past it) at a fraction of the regex work
_HEAD = "lower(left(coalesce(e.user_text, ''), 1000))"
# normalised template text: lower case, digits folded, the first words of the user turn after the system prompt
_NORMALISED = (
    "nullif(trim(concat_ws(' | ', nullif(left(regexp_replace(lower(coalesce(e.system_text, '')), '[0-9]+', '0', 'g'),"
    " 80), ''), array_to_string(list_slice(string_split(regexp_replace(regexp_replace(" + _HEAD +
    ", '[0-9]+', '0', 'g'), '\\s+', ' ', 'g'), ' '), 1, 8), ' '))), '')"
)
_CAPABILITY_SQL = f"""CASE
    WHEN e.has_image THEN 'vision'
    WHEN regexp_matches({_TEXT}, 'screenshot|click|browser|screen|gui|desktop') THEN 'computer_use'
    WHEN e.n_tools > 0 OR e.n_tool_calls > 0 THEN 'tool_use'
    WHEN regexp_matches({_TEXT}, 'def |function|code|python|javascript|typescript|rust|bug|refactor|sql|compile')
        THEN 'coding'
    WHEN regexp_matches({_TEXT}, 'solve|equation|integral|prove|theorem|calculate|math') THEN 'math'
    WHEN regexp_matches({_TEXT}, 'step by step|reason|think|chain of thought') THEN 'reasoning'
    WHEN {_TEXT} = '' THEN 'unknown'
    ELSE 'chat' END"""
_COT_SQL = (f"(regexp_matches({_TEXT}, 'step by step|chain of thought|show (your|all) (reasoning|work)|think')"
            " OR e.reasoning_effort = 'high')")


@dataclass(frozen=True)
class Columns:
    """SQL expressions over the exchanges, exposed as ``e`` by ``from_sql``, for each needed column."""

    from_sql: str
    template_fp: str  # UBIGINT
    template_text: str  # over ``exchanges e`` (needs the text)
    capability: str
    cot: str
    single_turn: str


def _columns_of(con: duckdb.DuckDBPyConnection, view: str) -> set[str]:
    rows = con.execute("SELECT column_name FROM information_schema.columns WHERE table_name = ?", [view]).fetchall()
    return {r[0] for r in rows}


def resolve(con: duckdb.DuckDBPyConnection) -> Columns:
    """Read each column from ``ex`` when detection registered it, else derive it from the text."""
    if set(_FROM_SIGNALS) <= _columns_of(con, "ex"):
        return Columns(from_sql="ex e", template_fp=_FROM_SIGNALS["tpl"], template_text=_NORMALISED,
                       capability=_FROM_SIGNALS["cap"], cot=_FROM_SIGNALS["cot"],
                       single_turn=_FROM_SIGNALS["single_turn"])
    return Columns(from_sql="exchanges e",
                   template_fp=f"CASE WHEN {_NORMALISED} IS NOT NULL THEN hash({_NORMALISED}) END",
                   template_text=_NORMALISED, capability=_CAPABILITY_SQL, cot=_COT_SQL,
                   single_turn="coalesce(e.n_user_turns, 1) <= 1")


def aggregate(con: duckdb.DuckDBPyConnection, cols: Columns, net: str, sync_bucket_s: int) -> None:
    """Fold the traffic into the per-account tables the linking graph and the campaign profile read.

    * ``_acct(account_id, n, first_ts, last_ts)`` and ``_acct_tpl(account_id, fp, n)`` for *every* account, and
      ``_nets(account_id, net, n)`` (``net``: SQL of the network of column ``ip``) and
      ``_clients(account_id, tls_fp, user_agent, n)`` likewise, because a template, network or client key is
      evidence only when suspicious accounts dominate its holders;
    * ``_acct_min(account_id, x)`` (active time buckets) for the candidates (``_cand``) only;
    * ``_acct_style(account_id, fp, n)``: phrasing min-hashes (signals ``style*``) of every account, kept only
      for values that occur in at least three *different* prompts (templates) overall: a generator's stock
      phrases do, while one prompt that several accounts happen to send (a popular question) does not.
    """
    cand = f"{cols.from_sql} SEMI JOIN _cand c ON c.account_id = e.account_id"
    con.execute(f"""CREATE OR REPLACE TEMP TABLE _acct AS
        SELECT e.account_id, count(*) AS n, min(e.ts) AS first_ts, max(e.ts) AS last_ts FROM {cols.from_sql}
        GROUP BY 1""")
    con.execute(f"""CREATE OR REPLACE TEMP TABLE _acct_tpl AS
        SELECT account_id, fp, count(*) AS n FROM (SELECT e.account_id, {cols.template_fp} AS fp FROM {cols.from_sql})
        WHERE fp IS NOT NULL GROUP BY ALL""")
    styles = [c for c in ("style0", "style1", "style2") if c in _columns_of(con, "ex")] if cols.from_sql == "ex e" \
        else []
    if styles:
        # n: the distinct prompts (templates) of the account holding the phrase. The distinct (account, template,
        # phrase) rows come first and everything else is computed on them. A form that found phrases on the raw
        # rows (a semi join and a distinct count over three rows per exchange in one Spark task) was a tenth faster
        # at 4M on Spark but never shown to finish at 16M there, where a statement of that shape (aggregations and
        # a sort-merge join in one task) ran out of aggregation memory: this form is the one measured at 16M
        con.execute(f"""CREATE OR REPLACE TEMP TABLE _acct_style AS
            WITH s AS (
                SELECT DISTINCT account_id, tpl, fp FROM (
                    SELECT e.account_id, e.tpl, unnest([{", ".join(f"e.{c}" for c in styles)}]) AS fp
                    FROM {cols.from_sql}) WHERE fp > 0),
            phrase AS (SELECT fp FROM s GROUP BY fp HAVING count(DISTINCT tpl) >= 3)
            SELECT account_id, fp, count(*) AS n FROM s SEMI JOIN phrase USING (fp) GROUP BY ALL""")
    else:
        con.execute("CREATE OR REPLACE TEMP TABLE _acct_style (account_id VARCHAR, fp UINTEGER, n BIGINT)")
    con.execute(f"""CREATE OR REPLACE TEMP TABLE _acct_min AS
        SELECT DISTINCT e.account_id, epoch(e.ts)::BIGINT // {sync_bucket_s} AS x FROM {cand}""")
    # distinct (account, ip) first: the /24 expression then runs once per address, not once per request
    con.execute(f"""CREATE OR REPLACE TEMP TABLE _nets AS
        SELECT account_id, {net} AS net, sum(n) AS n
        FROM (SELECT account_id, ip, count(*) AS n FROM exchanges GROUP BY ALL) GROUP BY ALL""")
    con.execute("""CREATE OR REPLACE TEMP TABLE _clients AS
        SELECT account_id, tls_fp, user_agent, count(*) AS n FROM exchanges
        WHERE tls_fp IS NOT NULL OR user_agent IS NOT NULL GROUP BY ALL""")
