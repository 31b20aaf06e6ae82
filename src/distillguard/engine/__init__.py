"""Execution engines for batch detection: ``duckdb`` (embedded, default) and ``spark`` (a cluster).

Both run the same stage definitions -- the signals' Python (as an Arrow UDF on Spark), the feature and
attribution SQL (transpiled for Spark by :mod:`distillguard.engine.sql`), the numpy features, detectors and
decisions -- so their results agree (``tests/test_spark*.py``). See docs/spark.md.
"""

from __future__ import annotations

from typing import Any

from distillguard.engine.base import ENGINES, Engine, EngineError, get_engine, register
from distillguard.engine.duckdb import DuckDBEngine


def _spark(**options: Any) -> Engine:
    try:
        from distillguard.engine.spark import SparkEngine
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise EngineError(f"the spark engine needs pyspark (pip install 'distillguard[spark]') and Java 17: "
                          f"{exc}") from exc
    return SparkEngine(**options)


register("duckdb", DuckDBEngine)
register("spark", _spark)

__all__ = ["ENGINES", "DuckDBEngine", "Engine", "EngineError", "get_engine", "register"]
