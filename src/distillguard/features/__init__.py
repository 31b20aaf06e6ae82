"""Per-account behaviour features from mergeable sufficient statistics.

Batch: :func:`attach_signals` adds views ``signals`` and ``ex`` (exchanges beside
their signals) to a store connection, and :func:`account_features` runs one group-by
and turns the statistics into features. Online: :class:`AccountState` keeps the same
statistics per account. Both end in :func:`features_from_stats`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import duckdb
import numpy as np
import pyarrow as pa

from distillguard.features.compute import (
    FEATURE_NAMES,
    Context,
    features_from_stats,
    releases_from_models,
)
from distillguard.features.state import AccountState
from distillguard.features.stats import STAT_NAMES, batch_stats
from distillguard.model.account import party
from distillguard.signals import SIGNAL_SCHEMA
from distillguard.store import Store

_DUCK = {pa.float32(): "FLOAT", pa.bool_(): "BOOLEAN", pa.int8(): "TINYINT", pa.uint64(): "UBIGINT",
         pa.uint32(): "UINTEGER", pa.int8(): "TINYINT", pa.string(): "VARCHAR"}


@dataclass
class FeatureTable:
    """Features of every account seen, aligned by row with ``account_ids``."""

    account_ids: np.ndarray
    features: dict[str, np.ndarray]
    stats: dict[str, np.ndarray]
    accounts: dict[str, np.ndarray]
    context: Context

    def __len__(self) -> int:
        return len(self.account_ids)


def _sql_list(values: list[str]) -> str:
    return "[" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + "]"


def attach_signals(con: duckdb.DuckDBPyConnection, store: Store, signal_files: list[str]) -> None:
    """Add views ``signals`` and ``ex``: the derived files, i.e. signals and the exchange columns they carry."""
    con.execute("SET enable_progress_bar = false")  # it would write to stdout, which CLI output owns
    exchange_files = store.exchange_files()
    if not exchange_files:
        con.execute("CREATE OR REPLACE VIEW signals AS SELECT NULL::VARCHAR AS id WHERE false")
        nulls = ", ".join(f"NULL::{_DUCK[f.type]} AS {f.name}" for f in SIGNAL_SCHEMA if f.name != "id")
        con.execute(f"CREATE OR REPLACE VIEW ex AS SELECT e.*, {nulls} FROM exchanges e WHERE false")
        return
    # derived files carry the exchange columns detection reads (``Store.CARRIED``): one scan, no join
    con.execute(f"CREATE OR REPLACE VIEW signals AS SELECT * FROM read_parquet({_sql_list(signal_files)})")
    con.execute("CREATE OR REPLACE VIEW ex AS SELECT * FROM signals")


def load_accounts(con: duckdb.DuckDBPyConnection, account_ids: np.ndarray) -> dict[str, np.ndarray]:
    """Account records aligned with ``account_ids`` (missing ones as nulls)."""
    rows = con.execute("SELECT account_id, tier, verified, epoch_ms(created_at), payment_fp, email_domain "
                       "FROM accounts").fetchall()
    by_id = {r[0]: r[1:] for r in rows}
    empty = (None, None, None, None, None)
    cols = list(zip(*(by_id.get(a, empty) for a in account_ids), strict=True)) if len(account_ids) else [()] * 5
    return {
        "tier": np.array(cols[0], dtype=object),
        "verified": np.array([np.nan if v is None else float(v) for v in cols[1]], dtype=np.float64),
        "created_ms": np.array([np.nan if v is None else float(v) for v in cols[2]], dtype=np.float64),
        "payment_fp": np.array(cols[3], dtype=object),
        "email_domain": np.array(cols[4], dtype=object),
    }


def build_context(con: duckdb.DuckDBPyConnection, stats: dict[str, np.ndarray]) -> Context:
    """Population facts from the data itself: model releases, payment and e-mail domain sharing."""
    pay = Counter(r[0] for r in con.execute("SELECT payment_fp FROM accounts WHERE payment_fp IS NOT NULL").fetchall())
    dom = Counter(r[0] for r in con.execute("SELECT email_domain FROM accounts WHERE email_domain IS NOT NULL")
                  .fetchall())
    parties: dict[str, set[str]] = {}  # who pays with each shared card (model.account.party)
    for account, card, org, domain in con.execute(
            "SELECT account_id, payment_fp, org_id, email_domain FROM accounts WHERE payment_fp <> ''").fetchall():
        if pay.get(card, 0) > 1:
            parties.setdefault(card, set()).add(party(account, org, domain))
    return Context(releases=releases_from_models(stats["models"], stats["first_ts"]),
                   payment_counts={k: v for k, v in pay.items() if v > 1},
                   domain_counts={k: v for k, v in dom.items() if v > 1},
                   payment_parties={k: len(v) for k, v in parties.items() if len(v) > 1})


def account_features(con: duckdb.DuckDBPyConnection, *, until_ms: int | None = None,
                     context: Context | None = None) -> FeatureTable:
    """Features of every account in view ``ex`` (see :func:`attach_signals`), optionally before ``until_ms``.

    Without ``context`` the population facts (releases, sharing) are measured on the same data; pass one to
    score a prefix against fixed facts. The deployment's behavioural baselines are fitted by detection
    (:mod:`distillguard.detect.baselines`) and stored in ``context.baselines``.
    """
    stats = batch_stats(con, until_ms)
    ids = stats["account_id"]
    accounts = load_accounts(con, ids)
    if context is None:
        context = build_context(con, stats)
    features = features_from_stats(stats, accounts, context)
    return FeatureTable(ids, features, stats, accounts, context)


__all__ = ["FEATURE_NAMES", "STAT_NAMES", "AccountState", "Context", "FeatureTable", "account_features",
           "attach_signals", "build_context", "features_from_stats", "load_accounts"]
