"""DuckDB functions with no Spark equivalent, evaluated by DuckDB itself on the executors (Arrow UDFs).

Attribution orders and samples key groups with DuckDB's ``hash()`` (the random circulant of large groups and
the proxy-pool MinHash elements). Spark's ``hash`` is Murmur3 with other values, and re-implementing DuckDB's
internal hash in SQL would tie the engine to DuckDB's source; so the Spark engine runs the same DuckDB build
on each Arrow batch. The executors must have the driver's DuckDB version (they run the same environment);
a different one is an error rather than different campaigns.
"""

from __future__ import annotations

import threading
from typing import Any

import pyarrow as pa

from distillguard.engine.sql import DUCKDB_HASH_UDF

_local = threading.local()


def _connection() -> Any:
    con = getattr(_local, "con", None)
    if con is None:
        import duckdb

        con = _local.con = duckdb.connect()
    return con


def duckdb_hash(columns: list[pa.Array], version: str) -> pa.Array:
    """DuckDB's ``hash(c0, c1, ...)`` of each row, as DECIMAL(20,0) (Spark's form of UBIGINT)."""
    import duckdb

    if duckdb.__version__ != version:
        raise RuntimeError(f"executor DuckDB {duckdb.__version__} != driver DuckDB {version}: hash() values differ")
    con = _connection()
    names = [f"c{i}" for i in range(len(columns))]
    batch = pa.table(dict(zip(names, columns, strict=True)))
    out = con.from_arrow(batch).project(f"hash({', '.join(names)})").to_arrow_table().column(0)
    return out.combine_chunks().cast(pa.decimal128(20, 0))


def register_duckdb_hash(spark: Any, arity: int) -> str:
    """Register ``dg_duckdb_hash_<arity>`` on ``spark``; returns its name."""
    import duckdb
    from pyspark.sql.functions import arrow_udf
    from pyspark.sql.types import DecimalType

    name = DUCKDB_HASH_UDF.format(n=arity)
    version = duckdb.__version__

    def run(*columns: pa.Array) -> pa.Array:
        return duckdb_hash(list(columns), version)

    spark.udf.register(name, arrow_udf(run, DecimalType(20, 0)))  # type: ignore[call-overload]  # variadic
    return name
