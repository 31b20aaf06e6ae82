"""Per-exchange columns attribution needs, taken from the ``signals`` view when it has them.

Attribution runs after detection, which usually registers a ``signals`` view. When
that view is missing, or lacks a column, the column is computed here from the
exchange text with DuckDB SQL, so attribution works on any store; a no-content
store has no text, and then only the content-free fallbacks (tools, images) apply.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from distillguard.signals.cues import CAPABILITIES

# signals columns (distillguard.signals.SIGNAL_SCHEMA) -> SQL reading them as attribution wants them
_FROM_SIGNALS = {
    "tpl": "CAST(nullif(s.tpl, 0) AS VARCHAR)",
    "cap": "list_extract([" + ", ".join(f"'{c}'" for c in CAPABILITIES) + "], s.cap + 1)",
    "cot": "s.cot >= 0.5",
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
    """SQL expressions over ``exchanges e LEFT JOIN signals s`` (``from_sql``) for each needed column."""

    from_sql: str
    template_fp: str
    template_text: str
    capability: str
    cot: str


def _columns_of(con: duckdb.DuckDBPyConnection, view: str) -> set[str]:
    rows = con.execute("SELECT column_name FROM information_schema.columns WHERE table_name = ?", [view]).fetchall()
    return {r[0] for r in rows}


def resolve(con: duckdb.DuckDBPyConnection) -> Columns:
    """Pick each column from ``signals`` when present, else its text-derived fallback."""
    have = _columns_of(con, "signals") if "id" in _columns_of(con, "signals") else set()

    def pick(name: str, fallback: str) -> str:
        return _FROM_SIGNALS[name] if name in have else fallback

    return Columns(
        from_sql="exchanges e LEFT JOIN signals s ON s.id = e.id" if have else "exchanges e",
        template_fp=pick("tpl", f"CASE WHEN {_NORMALISED} IS NULL THEN NULL ELSE CAST(hash({_NORMALISED}) AS VARCHAR)"
                                " END"),
        template_text=_NORMALISED,
        capability=pick("cap", _CAPABILITY_SQL),
        cot=pick("cot", _COT_SQL),
    )


def materialise(con: duckdb.DuckDBPyConnection, cols: Columns, net: str) -> None:
    """Create temp table ``_cx``: the candidates' (``_cand``) exchanges with every derived column computed once.

    Keys, synchrony and the campaign profile all read this table, so the exchange text is
    parsed once per run (and only for suspicious accounts) instead of once per query.
    """
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _cx AS
        SELECT e.id, e.account_id, e.ts, {cols.template_fp} AS fp, {cols.capability} AS cap,
               coalesce({cols.cot}, false) AS cot, {net} AS net, e.model, e.max_tokens, e.n_user_turns, e.asn,
               e.tls_fp, e.user_agent
        FROM {cols.from_sql} SEMI JOIN _cand c ON c.account_id = e.account_id
    """)
