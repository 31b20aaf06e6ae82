"""Per-account sufficient statistics: the one definition batch and online share.

A statistic is mergeable (a count, a sum, a histogram bin, a min/max, a distinct
set). Batch computes them with one DuckDB group-by over exchanges joined with the
derived signals (:func:`batch_stats`); the gateway keeps the same numbers per
account in :class:`distillguard.features.state.AccountState`. Each per-exchange
quantity is defined once below as an (SQL, Python) pair so the two cannot drift,
and ``tests/test_features.py`` replays the same traffic through both.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import duckdb
import numpy as np

from distillguard.signals import TEXT_DIMS
from distillguard.signals.cues import CAPABILITIES, SCRIPTS

GAP_EDGES = (1.0, 10.0, 60.0, 600.0, 3600.0, 21600.0, 86400.0)  # seconds; 8 bins of inter-arrival time


@dataclass(frozen=True)
class Quantity:
    """A per-exchange number summed into an account statistic."""

    name: str
    sql: str
    py: Callable[[dict[str, Any], dict[str, Any]], float]  # (exchange row, signals row) -> value


def _f(value: Any, default: float = 0.0) -> float:
    return default if value is None else float(value)


def _scaled(signal: str, scale: float) -> Callable[[dict[str, Any], dict[str, Any]], float]:
    """The quantity ``signal / scale`` of the signals row."""
    return lambda e, s: _f(s[signal]) / scale


def _equals(signal: str, value: int) -> Callable[[dict[str, Any], dict[str, Any]], float]:
    """1.0 when the signals row's ``signal`` is ``value``, else 0.0."""
    return lambda e, s: float(s[signal] == value)


SUMS: tuple[Quantity, ...] = (
    Quantity("n", "1", lambda e, s: 1.0),
    Quantity("prompt_tokens", "coalesce(prompt_tokens, 0)", lambda e, s: _f(e.get("prompt_tokens"))),
    Quantity("completion_tokens", "coalesce(completion_tokens, 0)", lambda e, s: _f(e.get("completion_tokens"))),
    Quantity("reasoning_tokens", "coalesce(reasoning_tokens, 0)", lambda e, s: _f(e.get("reasoning_tokens"))),
    # reasoning the response *returned* (characters): hidden reasoning tokens are billed, never harvested
    Quantity("reasoning_chars", "coalesce(reasoning_chars, 0)", lambda e, s: _f(e.get("reasoning_chars"))),
    # log-scale output and input per exchange: their difference is how much the model generated per word asked
    Quantity("log_out", "ln(1 + coalesce(completion_tokens, 0))",
             lambda e, s: math.log1p(max(_f(e.get("completion_tokens")), 0.0))),
    Quantity("log_in", "ln(1 + coalesce(prompt_tokens, 0))",
             lambda e, s: math.log1p(max(_f(e.get("prompt_tokens")), 0.0))),
    Quantity("cot", "cot::INT", lambda e, s: float(bool(s["cot"]))),
    Quantity("coerce", "coerce::INT", lambda e, s: float(bool(s["coerce"]))),
    Quantity("rubric", "rubric::INT", lambda e, s: float(bool(s["rubric"]))),
    Quantity("length", "length::INT", lambda e, s: float(bool(s["length"]))),
    Quantity("synth", "synth::INT", lambda e, s: float(bool(s["synth"]))),
    Quantity("probe", "probe::INT", lambda e, s: float(bool(s["probe"]))),
    Quantity("logits", "logits::INT", lambda e, s: float(bool(s["logits"]))),
    Quantity("hit_cap", "hit_cap::INT", lambda e, s: float(bool(s["hit_cap"]))),
    Quantity("big_budget", "big_budget::INT", lambda e, s: float(bool(s["big_budget"]))),
    Quantity("single_turn", "single_turn::INT", lambda e, s: float(bool(s["single_turn"]))),
    Quantity("turns", "coalesce(n_assistant_turns, 0)", lambda e, s: _f(e.get("n_assistant_turns"))),
    Quantity("tools", "(coalesce(n_tools, 0) > 0)::INT", lambda e, s: float(_f(e.get("n_tools")) > 0)),
    Quantity("image", "coalesce(has_image, false)::INT", lambda e, s: float(bool(e.get("has_image")))),
    Quantity("errors", "(coalesce(status, 200) >= 400)::INT", lambda e, s: float(_f(e.get("status"), 200) >= 400)),
    Quantity("log_max_tokens", "log2(1 + coalesce(max_tokens, 0))",
             lambda e, s: math.log2(1 + _f(e.get("max_tokens")))),
    *(Quantity(f"temb_{k}", f"temb{k} / 127.0", _scaled(f"temb{k}", 127.0)) for k in range(TEXT_DIMS)),
    *(Quantity(f"cap_{i}", f"(cap = {i})::INT", _equals("cap", i)) for i in range(len(CAPABILITIES))),
    *(Quantity(f"script_{i}", f"(script = {i})::INT", _equals("script", i)) for i in range(len(SCRIPTS))),
)
HOUR_BINS = 24
GAP_BINS = len(GAP_EDGES) + 1
KMV_K = 16  # distinct counts are K-minimum-values estimates, identical in batch and online: exact below K


@dataclass(frozen=True)
class Distinct:
    """A distinct-count statistic: the value per exchange (SQL and Python) and its 32-bit sketch hash.

    String values hash to the upper half of their MD5's first eight bytes (DuckDB's ``md5_number_upper``);
    values that are already 64-bit fingerprints (template, system prompt, parameters) to their top 32 bits.
    Batch keeps the K smallest hashes per account exactly as the gateway's sketch does, so both estimate
    the same number.
    """

    name: str
    sql: str  # the value (VARCHAR, or UBIGINT for fingerprints)
    fingerprint: bool = False  # a UBIGINT fingerprint, hashed by its top 32 bits


DISTINCTS: tuple[Distinct, ...] = (
    Distinct("ip", "ip"),
    Distinct("prefix", "CASE WHEN contains(ip, '.') THEN regexp_replace(ip, '\\.[0-9]+$', '') "
                       "ELSE array_to_string(string_split(ip, ':')[1:3], ':') END"),
    Distinct("asn", "asn::VARCHAR"),
    Distinct("ua", "user_agent"),
    Distinct("tls", "tls_fp"),
    Distinct("key", "api_key_id"),
    Distinct("tpl", "tpl", fingerprint=True),
    Distinct("sys", "sys_fp", fingerprint=True),
    Distinct("params", "params_fp", fingerprint=True),
)
DISTINCT_NAMES = tuple(d.name for d in DISTINCTS)


def ip_prefix(ip: str) -> str:
    """/24 for IPv4, the first three groups (/48) for IPv6: the unit proxy rotation moves within."""
    if "." in ip:
        return ip.rsplit(".", 1)[0]
    return ":".join(ip.split(":")[:3])


def string_hash(value: str) -> int:
    """32-bit sketch hash of a string value (twin of ``md5_number_upper(v) >> 32``)."""
    return int.from_bytes(hashlib.md5(value.encode("utf-8")).digest()[4:8], "little")


def distinct_hashes(e: dict[str, Any], s: dict[str, Any]) -> dict[str, int | None]:
    """Python twin of :data:`DISTINCTS`: the sketch hash of each value of one exchange (None: no value)."""
    ip = e.get("ip")
    asn = e.get("asn")
    strings = {"ip": ip, "prefix": ip_prefix(ip) if ip else None, "asn": None if asn is None else str(asn),
               "ua": e.get("user_agent"), "tls": e.get("tls_fp"), "key": e.get("api_key_id")}
    out: dict[str, int | None] = {k: None if v is None else string_hash(v) for k, v in strings.items()}
    for name, key in (("tpl", "tpl"), ("sys", "sys_fp"), ("params", "params_fp")):
        value = s.get(key)
        out[name] = None if value is None else int(value) >> 32
    return out


def kmv_estimate(count: int, kth: float) -> float:
    """Distinct-count estimate from the number of kept hashes and the largest of them (K-minimum values)."""
    if count < KMV_K:
        return float(count)
    return (KMV_K - 1) / ((kth + 1) / 2**32)


def gap_bin(gap_s: float) -> int:
    return int(np.searchsorted(GAP_EDGES, gap_s, side="right"))


# History provenance: tool-call ids are issued by the provider, so the first tool call a request's history answers
# (``cited_call``) was issued to the account by an earlier response (``issued_call``) -- unless the history was
# written somewhere else. Distinct cited ids (one per agent session: every request of a session answers the same
# first call) split into those some response of the account issued (own) and those none did (foreign), each a
# K-minimum-values count. A session under way when the data starts cites a call issued before it: one foreign.
HISTORIES = ("own", "foreign")

STAT_NAMES: tuple[str, ...] = (
    *(q.name for q in SUMS),
    *(f"hour_{h}" for h in range(HOUR_BINS)),
    "gap_n", "gap_sum", "gap_sumsq", "lgap_sum", "lgap_sumsq",
    *(f"gap_{b}" for b in range(GAP_BINS)),
    "first_ts", "last_ts", "days", "max_day",
    *(f"d_{name}" for name in DISTINCT_NAMES),
    *(f"history_{name}" for name in HISTORIES),
)


def call_sketch_hash(call: int) -> int:
    """The 32-bit sketch hash of a tool call id's 64-bit hash (its top half, as for fingerprints)."""
    return int(call) >> 32


def _history_sql(where: str) -> str:
    """Per account, the K smallest sketch hashes of its distinct cited calls, k = 0 own, k = 1 foreign.

    Reads view ``exchanges`` (four narrow columns of the exchange files), not ``ex``: carrying the two 64-bit ids
    into the derived files would send them through Spark's Python signals job, which cost that stage a fifth more
    time at 1M exchanges (unsigned 64-bit values cross Spark's Arrow bridge as decimals). For the same reason the
    ids are split into two 32-bit halves (as BIGINT) before they are grouped: Spark reads UBIGINT as
    DECIMAL(20, 0), whose hash aggregation works on Java BigDecimal objects. Only rows with an id are read.

    A cited call is *own* when the account issued it too. That is found by grouping, not by a join: cited and
    issued ids are stacked and grouped once per (account, id), which is a single hash aggregation that spills on
    its own. The join form (distinct cited ids LEFT JOIN distinct issued ids) put two aggregations, two sorts and
    the join into one Spark task and ran out of aggregation memory at 16M exchanges on Spark local (driver memory
    4g, beside the cached signals). Both forms give the same rows on both engines."""
    return f"""
WITH e AS (SELECT account_id, cited_call, issued_call FROM exchanges {where}),
ids AS (
  SELECT account_id, (cited_call >> 32)::BIGINT AS hi, (cited_call % 4294967296)::BIGINT AS lo, 1 AS cited, 0 AS issued
  FROM e WHERE cited_call IS NOT NULL
  UNION ALL
  SELECT account_id, (issued_call >> 32)::BIGINT AS hi, (issued_call % 4294967296)::BIGINT AS lo, 0 AS cited,
         1 AS issued
  FROM e WHERE issued_call IS NOT NULL),
calls AS (SELECT account_id, hi, max(cited) AS cited, max(issued) AS issued FROM ids GROUP BY account_id, hi, lo)
SELECT account_id, k, min(h, {KMV_K}) AS kept FROM (
  SELECT DISTINCT account_id, (1 - issued)::INT AS k, hi::UINTEGER AS h FROM calls WHERE cited = 1
) GROUP BY account_id, k
"""


def _sketch_value(d: Distinct) -> str:
    return f"({d.sql} >> 32)::UINTEGER" if d.fingerprint else f"(md5_number_upper({d.sql}) >> 32)::UINTEGER"


def _distinct_sql(where: str) -> str:
    """The K smallest sketch hashes of every distinct statistic per account (see :class:`Distinct`), in one pass
    over the exchanges: each row fans out to one (statistic, hash) pair per statistic, then distinct pairs per
    account keep their K smallest hashes. One scan instead of one per statistic (on Spark each is a job)."""
    cases = " ".join(f"WHEN {k} THEN {_sketch_value(d)}" for k, d in enumerate(DISTINCTS))
    return (f"SELECT account_id, k, min(h, {KMV_K}) AS kept FROM (SELECT DISTINCT account_id, k, CASE k {cases} END "
            f"AS h FROM ex, range({len(DISTINCTS)}) r(k) {where}) WHERE h IS NOT NULL GROUP BY account_id, k")


def _main_sql(where: str) -> str:
    """Sums and first/last time: one narrow hash aggregate, no sort (it streams and can spill)."""
    sums = ",\n".join(f"sum({q.sql})::DOUBLE AS {q.name}" for q in SUMS)
    return f"""
SELECT account_id,
{sums},
min(epoch_ms(ts))::DOUBLE AS first_ts, max(epoch_ms(ts))::DOUBLE AS last_ts
FROM ex {where}
GROUP BY account_id
ORDER BY account_id
"""


def _gaps_sql(where: str) -> str:
    """Inter-arrival statistics: the only sort, over (account_id, ts) alone.

    Ties in ``ts`` give a zero gap whichever row comes first, so no tie-breaker is needed.
    """
    gap_case = " ".join(f"WHEN gap < {edge!r} THEN {i}" for i, edge in enumerate(GAP_EDGES))
    gaps = ",\n".join(f"count(*) FILTER (WHERE gap_bin = {b})::DOUBLE AS gap_{b}" for b in range(GAP_BINS))
    return f"""
WITH w AS (
  SELECT account_id, (t - lag(t) OVER (PARTITION BY account_id ORDER BY t)) / 1000.0 AS gap
  FROM (SELECT account_id, epoch_ms(ts) AS t FROM ex {where})
), g AS (
  SELECT account_id, gap, CASE WHEN gap IS NULL THEN NULL {gap_case} ELSE {len(GAP_EDGES)} END AS gap_bin FROM w
)
SELECT account_id,
count(gap)::DOUBLE AS gap_n, coalesce(sum(gap), 0)::DOUBLE AS gap_sum, coalesce(sum(gap * gap), 0)::DOUBLE AS gap_sumsq,
coalesce(sum(ln(1 + gap)), 0)::DOUBLE AS lgap_sum, coalesce(sum(ln(1 + gap) ^ 2), 0)::DOUBLE AS lgap_sumsq,
{gaps}
FROM g GROUP BY account_id
"""


def _align(index: dict[Any, int], keys: np.ndarray) -> np.ndarray:
    return np.fromiter((index[k] for k in keys), dtype=np.int64, count=len(keys))


def batch_stats(con: duckdb.DuckDBPyConnection, until_ms: int | None = None) -> dict[str, np.ndarray]:
    """Statistics of every account in view ``ex`` (exchanges + signals), optionally only before ``until_ms``.

    Returns column arrays keyed by ``account_id`` and :data:`STAT_NAMES`, plus the
    per-(account, model) counts and first times as ``models`` (see :func:`model_stats`).
    A few narrow passes instead of one wide query: a hash aggregate (sums), the K smallest sketch hashes of
    each distinct statistic over distinct (account, value) pairs (the gateway's sketch, so both estimate the
    same count), one sort over (account, time) for gaps, and pre-aggregated (account, hour) counts.
    """
    where = f"WHERE ts < to_timestamp({int(until_ms) / 1000!r})" if until_ms is not None else ""
    out = con.execute(_main_sql(where)).fetchnumpy()
    ids = np.asarray(out["account_id"], dtype=object)
    n = len(ids)
    stats: dict[str, np.ndarray] = {"account_id": ids}
    for name in out:
        if name != "account_id":
            stats[name] = np.asarray(out[name], dtype=np.float64)
    index = {a: i for i, a in enumerate(ids)}

    part = con.execute(_gaps_sql(where)).fetchnumpy()
    pos = _align(index, part["account_id"])
    for name in part:
        if name != "account_id":
            stats[name] = np.zeros(n)
            stats[name][pos] = np.asarray(part[name], dtype=np.float64)
    distinct = np.zeros((len(DISTINCTS), n))
    for account, k, kept in con.execute(_distinct_sql(where)).fetchall():
        distinct[int(k), index[account]] = kmv_estimate(len(kept), float(max(kept)))
    for k, d in enumerate(DISTINCTS):
        stats[f"d_{d.name}"] = distinct[k]
    history = np.zeros((len(HISTORIES), n))
    for account, k, kept in con.execute(_history_sql(where)).fetchall():
        history[int(k), index[account]] = kmv_estimate(len(kept), float(max(kept)))
    for k, name in enumerate(HISTORIES):
        stats[f"history_{name}"] = history[k]

    stats.update(_activity(con, where, index, n))
    stats = {"account_id": ids, **{name: stats[name] for name in STAT_NAMES}}
    stats["models"] = model_stats(con, ids, where)
    return stats


def _activity(con: duckdb.DuckDBPyConnection, where: str, index: dict[Any, int], n: int) -> dict[str, np.ndarray]:
    """Hour-of-day bins, active days and busiest day from one pre-aggregation to (account, absolute hour) counts."""
    rows = con.execute(f"SELECT account_id, epoch_ms(ts) // 3600000 AS hr, count(*)::DOUBLE AS c FROM ex {where} "
                       "GROUP BY ALL").fetchnumpy()
    acct = _align(index, rows["account_id"])
    hr = np.asarray(rows["hr"], dtype=np.int64)
    count = np.asarray(rows["c"], dtype=np.float64)
    out: dict[str, np.ndarray] = {}
    grid: np.ndarray = np.bincount(acct * HOUR_BINS + hr % HOUR_BINS, weights=count, minlength=n * HOUR_BINS)
    grid = grid.reshape(n, HOUR_BINS) if n else np.zeros((0, HOUR_BINS))
    for h in range(HOUR_BINS):
        out[f"hour_{h}"] = grid[:, h]
    day = hr // 24
    day = day - (day.min() if len(day) else 0)
    span = int(day.max()) + 1 if len(day) else 1
    keys, inverse = np.unique(acct * span + day, return_inverse=True)
    per_day = np.bincount(inverse.ravel(), weights=count, minlength=len(keys))
    owner = keys // span
    out["days"] = np.bincount(owner, minlength=n).astype(np.float64)
    max_day = np.zeros(n)
    np.maximum.at(max_day, owner, per_day)
    out["max_day"] = max_day
    return out


def model_stats(con: duckdb.DuckDBPyConnection, accounts: np.ndarray, where: str = "") -> np.ndarray:
    """Per account, a dict model -> (count, first ts ms): the raw material of switch-speed features."""
    rows = con.execute(f"SELECT account_id, model, count(*), min(epoch_ms(ts)) FROM ex {where} "
                       "GROUP BY ALL").fetchall()
    index = {a: i for i, a in enumerate(accounts)}
    out = np.empty(len(accounts), dtype=object)
    for i in range(len(accounts)):
        out[i] = {}
    for account, model, count, first in rows:
        out[index[account]][model or ""] = (float(count), float(first))
    return out
