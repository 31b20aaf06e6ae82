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


def _stats_sql(where: str) -> str:
    sums = ",\n".join(f"sum({q.sql})::DOUBLE AS {q.name}" for q in SUMS)
    hours = ",\n".join(f"count(*) FILTER (WHERE (t // 3600000) % 24 = {h})::DOUBLE AS hour_{h}"
                       for h in range(HOUR_BINS))
    gap_case = " ".join(f"WHEN gap < {edge!r} THEN {i}" for i, edge in enumerate(GAP_EDGES))
    gaps = ",\n".join(f"count(*) FILTER (WHERE gap_bin = {b})::DOUBLE AS gap_{b}" for b in range(GAP_BINS))
    embs = ",\n".join(f"sum({_emb_sql(j)})::DOUBLE AS emb_{j}" for j in range(EMB_DIM))
    distinct = ",\n".join(f"count(DISTINCT {expr})::DOUBLE AS d_{name}" for name, expr in DISTINCTS.items())
    return f"""
WITH base AS (
  SELECT *, epoch_ms(ts) AS t,
         (epoch_ms(ts) - lag(epoch_ms(ts)) OVER (PARTITION BY account_id ORDER BY epoch_ms(ts), id)) / 1000.0 AS gap
  FROM ex {where}
), g AS (
  SELECT *, CASE WHEN gap IS NULL THEN NULL {gap_case} ELSE {len(GAP_EDGES)} END AS gap_bin FROM base
), days AS (
  SELECT account_id, count(*)::DOUBLE AS days, max(c)::DOUBLE AS max_day FROM (
    SELECT account_id, t // 86400000 AS day, count(*) AS c FROM g GROUP BY ALL) GROUP BY account_id
)
SELECT account_id,
{sums},
{hours},
count(gap)::DOUBLE AS gap_n, coalesce(sum(gap), 0)::DOUBLE AS gap_sum, coalesce(sum(gap * gap), 0)::DOUBLE AS gap_sumsq,
coalesce(sum(ln(1 + gap)), 0)::DOUBLE AS lgap_sum, coalesce(sum(ln(1 + gap) ^ 2), 0)::DOUBLE AS lgap_sumsq,
{gaps},
{embs},
min(t)::DOUBLE AS first_ts, max(t)::DOUBLE AS last_ts, any_value(days.days) AS days,
any_value(days.max_day) AS max_day,
{distinct}
FROM g JOIN days USING (account_id)
GROUP BY account_id
ORDER BY account_id
"""


def batch_stats(con: duckdb.DuckDBPyConnection, until_ms: int | None = None) -> dict[str, np.ndarray]:
    """Statistics of every account in view ``ex`` (exchanges + signals), optionally only before ``until_ms``.

    Returns column arrays keyed by ``account_id`` and :data:`STAT_NAMES`, plus the
    per-(account, model) counts and first times as ``models`` (see :func:`model_stats`).
    """
    where = f"WHERE ts < to_timestamp({int(until_ms) / 1000!r})" if until_ms is not None else ""
    out = con.execute(_stats_sql(where)).fetchnumpy()
    stats = {"account_id": np.asarray(out["account_id"], dtype=object)}
    for name in STAT_NAMES:
        stats[name] = np.asarray(out[name], dtype=np.float64)
    stats["models"] = model_stats(con, stats["account_id"], where)
    return stats


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
