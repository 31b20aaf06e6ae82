"""Per-account sufficient statistics: the one definition batch and online share.

A statistic is mergeable (a count, a sum, a histogram bin, a min/max, a distinct
set). Batch computes them with one DuckDB group-by over exchanges joined with the
derived signals (:func:`batch_stats`); the gateway keeps the same numbers per
account in :class:`distillguard.features.state.AccountState`. Each per-exchange
quantity is defined once below as an (SQL, Python) pair so the two cannot drift,
and ``tests/test_features.py`` replays the same traffic through both.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import duckdb
import numpy as np

from distillguard.signals.cues import CAPABILITIES, SCRIPTS

GAP_EDGES = (1.0, 10.0, 60.0, 600.0, 3600.0, 21600.0, 86400.0)  # seconds; 8 bins of inter-arrival time
EMB_DIM = 16  # random Fourier features of the request descriptor (distribution test)
_RFF_SEED = 20260302


@dataclass(frozen=True)
class Quantity:
    """A per-exchange number summed into an account statistic."""

    name: str
    sql: str
    py: Callable[[dict[str, Any], dict[str, Any]], float]  # (exchange row, signals row) -> value


def _f(value: Any, default: float = 0.0) -> float:
    return default if value is None else float(value)


SUMS: tuple[Quantity, ...] = (
    Quantity("n", "1", lambda e, s: 1.0),
    Quantity("prompt_tokens", "coalesce(prompt_tokens, 0)", lambda e, s: _f(e.get("prompt_tokens"))),
    Quantity("completion_tokens", "coalesce(completion_tokens, 0)", lambda e, s: _f(e.get("completion_tokens"))),
    Quantity("cot", "cot", lambda e, s: _f(s["cot"])),
    Quantity("coerce", "coerce::INT", lambda e, s: float(bool(s["coerce"]))),
    Quantity("rubric", "rubric", lambda e, s: _f(s["rubric"])),
    Quantity("probe", "probe::INT", lambda e, s: float(bool(s["probe"]))),
    Quantity("hit_cap", "hit_cap::INT", lambda e, s: float(bool(s["hit_cap"]))),
    Quantity("big_budget", "big_budget::INT", lambda e, s: float(bool(s["big_budget"]))),
    Quantity("single_turn", "single_turn::INT", lambda e, s: float(bool(s["single_turn"]))),
    Quantity("tools", "(coalesce(n_tools, 0) > 0)::INT", lambda e, s: float(_f(e.get("n_tools")) > 0)),
    Quantity("image", "coalesce(has_image, false)::INT", lambda e, s: float(bool(e.get("has_image")))),
    Quantity("errors", "(coalesce(status, 200) >= 400)::INT", lambda e, s: float(_f(e.get("status"), 200) >= 400)),
    Quantity("log_max_tokens", "log2(1 + coalesce(max_tokens, 0))",
             lambda e, s: math.log2(1 + _f(e.get("max_tokens")))),
    *(Quantity(f"cap_{i}", f"(cap = {i})::INT", lambda e, s, i=i: float(s["cap"] == i))
      for i in range(len(CAPABILITIES))),
    *(Quantity(f"script_{i}", f"(script = {i})::INT", lambda e, s, i=i: float(s["script"] == i))
      for i in range(len(SCRIPTS))),
)
HOUR_BINS = 24
GAP_BINS = len(GAP_EDGES) + 1
# distinct-value statistics: name -> SQL expression of the value (Python twin in ``distinct_values``)
DISTINCTS: dict[str, str] = {
    "ip": "ip",
    "prefix": "CASE WHEN contains(ip, '.') THEN regexp_replace(ip, '\\.[0-9]+$', '') "
              "ELSE array_to_string(string_split(ip, ':')[1:3], ':') END",
    "asn": "asn::VARCHAR",
    "ua": "user_agent",
    "tls": "tls_fp",
    "tpl": "tpl::VARCHAR",
    "sys": "sys_fp::VARCHAR",
    "params": "params_fp::VARCHAR",
}


def ip_prefix(ip: str) -> str:
    """/24 for IPv4, the first three groups (/48) for IPv6: the unit proxy rotation moves within."""
    if "." in ip:
        return ip.rsplit(".", 1)[0]
    return ":".join(ip.split(":")[:3])


def distinct_values(e: dict[str, Any], s: dict[str, Any]) -> dict[str, str | None]:
    """Python twin of :data:`DISTINCTS`."""
    ip = e.get("ip")
    asn = e.get("asn")
    return {"ip": ip, "prefix": ip_prefix(ip) if ip else None, "asn": None if asn is None else str(asn),
            "ua": e.get("user_agent"), "tls": e.get("tls_fp"), "tpl": str(s["tpl"]), "sys": str(s["sys_fp"]),
            "params": str(s["params_fp"])}


# descriptor of one request for the distribution test: (SQL, Python) per dimension
DESCRIPTOR: tuple[Quantity, ...] = (
    Quantity("d_cot", "cot", lambda e, s: _f(s["cot"])),
    Quantity("d_rubric", "rubric", lambda e, s: _f(s["rubric"])),
    Quantity("d_coerce", "coerce::INT", lambda e, s: float(bool(s["coerce"]))),
    Quantity("d_probe", "probe::INT", lambda e, s: float(bool(s["probe"]))),
    Quantity("d_hit_cap", "hit_cap::INT", lambda e, s: float(bool(s["hit_cap"]))),
    Quantity("d_big", "big_budget::INT", lambda e, s: float(bool(s["big_budget"]))),
    Quantity("d_single", "single_turn::INT", lambda e, s: float(bool(s["single_turn"]))),
    *(Quantity(f"d_cap_{i}", f"(cap = {i})::INT", lambda e, s, i=i: float(s["cap"] == i))
      for i in range(len(CAPABILITIES))),
    Quantity("d_nonlatin", "(script > 0)::INT", lambda e, s: float(s["script"] > 0)),
    Quantity("d_max_tokens", "log2(1 + coalesce(max_tokens, 0)) / 15",
             lambda e, s: math.log2(1 + _f(e.get("max_tokens"))) / 15),
    Quantity("d_prompt", "ln(1 + coalesce(prompt_tokens, 0)) / 8",
             lambda e, s: math.log1p(_f(e.get("prompt_tokens"))) / 8),
    Quantity("d_completion", "ln(1 + coalesce(completion_tokens, 0)) / 8",
             lambda e, s: math.log1p(_f(e.get("completion_tokens"))) / 8),
    Quantity("d_temp", "coalesce(temperature, 1.0)", lambda e, s: _f(e.get("temperature"), 1.0)),
)


def _rff() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(_RFF_SEED)
    return rng.normal(0.0, 1.0, (EMB_DIM, len(DESCRIPTOR))), rng.uniform(0, 2 * np.pi, EMB_DIM)


RFF_W, RFF_B = _rff()
_RFF_SCALE = math.sqrt(2.0 / EMB_DIM)


def embed(e: dict[str, Any], s: dict[str, Any]) -> np.ndarray:
    """Random Fourier features of one request (Python twin of the ``emb_*`` SQL)."""
    x = np.array([q.py(e, s) for q in DESCRIPTOR])
    return _RFF_SCALE * np.cos(RFF_W @ x + RFF_B)


def _emb_sql(j: int) -> str:
    terms = " + ".join(f"({float(w)!r}) * ({q.sql})" for w, q in zip(RFF_W[j], DESCRIPTOR, strict=True))
    return f"{_RFF_SCALE!r} * cos({terms} + ({float(RFF_B[j])!r}))"


def gap_bin(gap_s: float) -> int:
    return int(np.searchsorted(GAP_EDGES, gap_s, side="right"))


STAT_NAMES: tuple[str, ...] = (
    *(q.name for q in SUMS),
    *(f"hour_{h}" for h in range(HOUR_BINS)),
    "gap_n", "gap_sum", "gap_sumsq", "lgap_sum", "lgap_sumsq",
    *(f"gap_{b}" for b in range(GAP_BINS)),
    *(f"emb_{j}" for j in range(EMB_DIM)),
    "first_ts", "last_ts", "days", "max_day",
    *(f"d_{name}" for name in DISTINCTS),
)


_NETWORK = ("ip", "prefix", "asn", "ua", "tls")  # few distinct tuples per account: pre-aggregated first


def _distinct_sql(names: tuple[str, ...], where: str) -> str:
    """Exact distinct counts of ``names`` over the distinct (account, raw columns) tuples.

    Hashes and numbers are counted as themselves (the ``::VARCHAR`` twin is for Python);
    pre-aggregating to distinct tuples first makes e.g. the IP prefix a per-tuple, not per-row, expression.
    """
    raw = {"ip": "ip", "prefix": "ip", "asn": "asn", "ua": "user_agent", "tls": "tls_fp", "tpl": "tpl",
           "sys": "sys_fp", "params": "params_fp"}
    cols = ", ".join(dict.fromkeys(raw[n] for n in names))
    counts = ", ".join(f"count(DISTINCT {DISTINCTS[n] if n == 'prefix' else raw[n]})::DOUBLE AS d_{n}"
                       for n in names)
    return f"SELECT account_id, {counts} FROM (SELECT DISTINCT account_id, {cols} FROM ex {where}) GROUP BY account_id"


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
    A few narrow passes instead of one wide query: a hash aggregate (sums), exact distinct counts over
    pre-aggregated distinct tuples,
    one sort over (account, time) for gaps, pre-aggregated (account, hour) and (account, day)
    counts, and the random-Fourier embedding computed in numpy over a stream of descriptor
    columns (as SQL it was 16 x 20 scalar expressions per row, the slowest part by far).
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

    others = tuple(name for name in DISTINCTS if name not in _NETWORK)
    for sql in (_gaps_sql(where), _distinct_sql(_NETWORK, where), _distinct_sql(others, where)):
        part = con.execute(sql).fetchnumpy()
        pos = _align(index, part["account_id"])
        for name in part:
            if name != "account_id":
                stats[name] = np.zeros(n)
                stats[name][pos] = np.asarray(part[name], dtype=np.float64)

    stats.update(_activity(con, where, index, n))
    emb = _embedding_sums(con, where, ids)
    for j in range(EMB_DIM):
        stats[f"emb_{j}"] = emb[:, j]
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
    grid = np.bincount(acct * HOUR_BINS + hr % HOUR_BINS, weights=count, minlength=n * HOUR_BINS)
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


def _embedding_sums(con: duckdb.DuckDBPyConnection, where: str, ids: np.ndarray) -> np.ndarray:
    """Per account, the sum of :func:`embed` over its requests (vectorised twin of the Python one)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    out = np.zeros((len(ids), EMB_DIM))
    if not len(ids):
        return out
    value_set = pa.array(ids.tolist(), pa.string())
    cols = ", ".join(f"({q.sql})::DOUBLE AS x{i}" for i, q in enumerate(DESCRIPTOR))
    reader = con.sql(f"SELECT account_id, {cols} FROM ex {where}").to_arrow_reader(1 << 20)
    for batch in reader:
        if not batch.num_rows:
            continue
        codes = pc.index_in(batch.column(0), value_set=value_set).to_numpy(zero_copy_only=False)
        x = np.empty((len(DESCRIPTOR), batch.num_rows))  # one contiguous row per dimension: no strided copies
        for i in range(len(DESCRIPTOR)):
            x[i] = batch.column(i + 1).to_numpy(zero_copy_only=False)
        z = RFF_W @ x
        z += RFF_B[:, None]
        np.cos(z, out=z)
        for j in range(EMB_DIM):
            out[:, j] += _RFF_SCALE * np.bincount(codes, weights=z[j], minlength=len(ids))
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
