"""Where the Spark engine reads exchanges and accounts from, and the signals stage as a Spark job.

:class:`SparkStore` stands where :class:`distillguard.store.Store` stands in
:func:`distillguard.pipeline.run_detection` -- ``connect()``, ``exchange_files()``, ``derived(SIGNALS)`` -- so
the pipeline's own orchestration runs on Spark without a second copy of it. Sources (``--store``):

* a store directory (``store.json``, ``exchanges/day=.../*.parquet``, ``accounts/accounts.parquet``): the files
  ``Store.exchange_files()`` lists, read by Spark;
* a store URI with the same layout (``s3a://bucket/store``, ``abfss://...``, ``hdfs://...``, ``file:/...``);
* ``table:NAMESPACE``: catalog tables ``NAMESPACE.exchanges`` and ``NAMESPACE.accounts`` (Hive/Unity/Glue catalogs,
  so Delta and Iceberg tables work wherever the cluster has their connector);
* ``delta:PATH`` / ``iceberg:PATH``: path-based tables ``PATH/exchanges`` and ``PATH/accounts`` read with that
  format (the connector must be on the cluster; neither installs from PyPI without fetching jars at run time).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pyarrow as pa
from pyspark import StorageLevel

from distillguard.engine.source import Source
from distillguard.engine.spark.arrow import derive_batches, spark_arrow_schema, spark_schema
from distillguard.engine.spark.connection import SparkConnection
from distillguard.model import ACCOUNT_SCHEMA, EXCHANGE_SCHEMA

DERIVED_PREFIX = "dg-derived:"  # a "file" name derived() returns; the connection resolves it to the Spark frame
SIGNAL_BATCH_ROWS = 32_768  # rows per Arrow batch into the signals UDF (distinct prompts are scanned once per batch)
_ids = itertools.count()


class SparkStore:
    """The store interface ``run_detection`` uses, over Spark (see the module docstring)."""

    def __init__(self, spark: Any, source: Source, *, batch_rows: int = SIGNAL_BATCH_ROWS) -> None:
        self.spark = spark
        self.source = source
        self.batch_rows = batch_rows
        self._derived: dict[str, Any] = {}
        self._local = None
        path = source.local
        if path is not None:
            from distillguard.store import Store
            from distillguard.store.store import StoreError

            if not (path / "store.json").exists():
                raise StoreError(f"{path}: not a distillguard store (no store.json)")
            self._local = Store.open(path, create=False)
        self.content = self._local.content if self._local is not None else True
        self._exchanges: Any = None
        self.connections: list[SparkConnection] = []

    # ---- the frames ---------------------------------------------------------------------------------------------
    def exchanges(self) -> Any:
        """The exchanges; columns appended to the schema after a file was written read as nulls, as in DuckDB."""
        if self._exchanges is None:
            self._exchanges = _with_nulls(self._read("exchanges", EXCHANGE_SCHEMA), EXCHANGE_SCHEMA)
        return self._exchanges

    def accounts(self) -> Any:
        """The account records; columns a table predates (written before they were added, or kept by a
        provider's own pipeline without them) are nulls of their type, as in the DuckDB store."""
        return _with_nulls(self._read("accounts", ACCOUNT_SCHEMA), ACCOUNT_SCHEMA)

    def _read(self, what: str, schema: pa.Schema) -> Any:
        reader = self.spark.read
        kind, location = self.source.kind, self.source.location
        if self._local is not None:
            root = self._local.root
            if what == "exchanges":
                files = self._local.exchange_files()
                if not files:
                    return self._empty(schema)
                # files written before a column was appended lack it: the merged schema has it, null in those files
                return reader.option("basePath", str(root / "exchanges")).option("mergeSchema", "true").parquet(*files)
            path = root / "accounts" / "accounts.parquet"
            return reader.parquet(str(path)) if path.exists() else self._empty(schema)
        if kind == "store":
            return reader.parquet(f"{location.rstrip('/')}/{what}")
        if kind == "table":
            return self.spark.table(f"{location}.{what}")
        return reader.format(kind).load(f"{location.rstrip('/')}/{what}")

    def _empty(self, schema: pa.Schema) -> Any:
        return self.spark.createDataFrame([], spark_schema(schema))

    # ---- what run_detection calls -------------------------------------------------------------------------------
    def connect(self, threads: int | None = None, memory_limit: str | None = None) -> SparkConnection:
        """A connection with views ``exchanges`` and ``accounts`` (``threads``/``memory_limit`` are DuckDB's: Spark
        sizes itself from its own configuration)."""
        con = SparkConnection(self.spark, parquet=self._parquet)
        con.create_view("exchanges", self.exchanges())
        con.create_view("accounts", self.accounts())
        self.connections.append(con)
        return con

    def exchange_files(self) -> list[str]:
        if self._local is not None:
            return self._local.exchange_files()
        return [self.source.describe()] if not self.exchanges().isEmpty() else []

    def derived(self, derive: Any, on_file: Callable[[], None] | None = None) -> list[str]:
        """Per-exchange signals as a Spark job: the exchanges through :func:`derive_batches` (``mapInArrow``),
        computed once and cached on the executors (a lost block is recomputed: the derivation is deterministic);
        returns a name ``read_parquet`` resolves to that frame.

        A no-content store cannot recompute signals (it kept no text): its derived files, written at ingest, are
        read instead.
        """
        if self._local is not None and not self.content:
            files = self._local.derived(derive, on_file=on_file)
            return files
        from distillguard.store.store import CARRIED

        frame = self.exchanges()
        present = set(frame.columns)
        missing = [c for c in CARRIED if c not in present]
        if missing:
            raise ValueError(f"{self.source.describe()}: exchanges lack column(s) {', '.join(missing)}")
        columns = [c for c in dict.fromkeys((*derive.inputs, *CARRIED)) if c in present]
        in_schema = pa.schema([EXCHANGE_SCHEMA.field(c) for c in columns])
        signal_schema = _signal_schema(derive, in_schema)
        carried = [EXCHANGE_SCHEMA.field(c) for c in CARRIED if c not in signal_schema.names]
        out_schema = spark_arrow_schema(pa.schema([*signal_schema, *carried]))
        previous = self.spark.conf.get("spark.sql.execution.arrow.maxRecordsPerBatch", None)
        self.spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(self.batch_rows))
        try:
            signals = frame.select(*(f"`{c}`" for c in columns)).mapInArrow(
                derive_batches(derive, in_schema, out_schema), spark_schema(out_schema))
            # kept as Spark's columnar cache: the feature and attribution queries each read a few columns of it
            signals = signals.persist(StorageLevel.MEMORY_AND_DISK)
            signals.count()
        finally:
            if previous is None:
                self.spark.conf.unset("spark.sql.execution.arrow.maxRecordsPerBatch")
            else:
                self.spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", previous)
        name = f"{DERIVED_PREFIX}{next(_ids)}"
        self._derived[name] = signals
        if on_file:
            for _ in range(max(len(self.exchange_files()), 1)):
                on_file()
        return [name]

    def _parquet(self, paths: list[str]) -> Any:
        if all(p.startswith(DERIVED_PREFIX) for p in paths):
            frames = [self._derived[p] for p in paths]
            out = frames[0]
            for other in frames[1:]:
                out = out.unionByName(other)
            return out
        if any(p.startswith(DERIVED_PREFIX) for p in paths):
            raise ValueError("read_parquet mixes derived frames and files")
        return self.spark.read.parquet(*paths)

    def close(self) -> None:
        for con in self.connections:
            con.close()
        for frame in self._derived.values():
            frame.unpersist()
        self._derived.clear()


def _signal_schema(derive: Any, in_schema: pa.Schema) -> pa.Schema:
    """The signal columns ``derive`` returns: its ``schema`` when it declares one, else what it makes of 0 rows."""
    declared = getattr(derive, "schema", None)
    if isinstance(declared, pa.Schema):
        return declared
    return derive.derive(in_schema.empty_table()).schema


def _with_nulls(frame: Any, schema: pa.Schema) -> Any:
    """``frame`` with every column of ``schema`` it lacks added as nulls of its type."""
    from pyspark.sql import functions as F

    present = set(frame.columns)
    types = {f.name: f.dataType for f in spark_schema(schema).fields}
    for name in schema.names:
        if name not in present:
            frame = frame.withColumn(name, F.lit(None).cast(types[name]))
    return frame
