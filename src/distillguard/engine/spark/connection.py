"""A DuckDB-connection look-alike that runs the stages' DuckDB SQL on Spark.

The feature statistics (``features.stats.batch_stats``), account records and context
(``features.load_accounts`` / ``build_context``), attribution (``attribution.find_campaigns`` and its
helpers) and the report all talk to a DuckDB connection: ``execute(sql, params)``, ``fetchall`` /
``fetchone`` / ``fetchnumpy``, ``register`` / ``unregister`` of Arrow tables. :class:`SparkConnection`
offers that surface. Each statement is transpiled by :mod:`distillguard.engine.sql` (an error for anything
whose meaning would change) and executed by Spark, so those stages run unchanged -- their SQL is the one
definition both engines execute.

Statement mapping:

* ``SELECT`` -> a Spark query; results come back through Arrow with DuckDB's Python conventions
  (``DECIMAL(20,0)``, Spark's form of UBIGINT, comes back as ``int`` / ``uint64``);
* ``CREATE [OR REPLACE] TEMP TABLE t AS q`` -> ``q`` computed once (``localCheckpoint``: later reads never
  recompute it, so row numbers over ties cannot change between reads) and registered as temp view ``t``;
  ``CREATE TEMP TABLE t (col TYPE, ...)`` -> an empty one; ``CREATE VIEW`` -> a lazy temp view;
* ``INSERT INTO t q`` -> ``t`` replaced by ``t UNION ALL q``, by position and cast to ``t``'s types (as DuckDB does);
* ``DROP TABLE/VIEW [IF EXISTS] t`` -> the view dropped and its blocks released;
* ``SET`` of DuckDB's own tuning options (threads, memory) -> ignored; any other ``SET`` is an error;
* ``information_schema.columns`` filtered by ``table_name`` -> the registered relation's columns.
"""

from __future__ import annotations

import decimal
import itertools
import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
from sqlglot import exp

from distillguard.engine import sql as sqlrules
from distillguard.engine.spark.arrow import for_spark, kind_of, spark_schema
from distillguard.engine.spark.udfs import register_duckdb_hash

_ids = itertools.count()
log = logging.getLogger("distillguard.engine.spark")


class SparkResult:
    """Rows of one query, fetched once through Arrow."""

    def __init__(self, df: Any = None, table: pa.Table | None = None) -> None:
        self._df = df
        self._table = table

    def arrow(self) -> pa.Table:
        if self._table is None:
            self._table = _from_spark(self._df.toArrow()) if self._df is not None else pa.table({})
        return self._table

    fetch_arrow_table = arrow

    def fetchall(self) -> list[tuple]:
        table = self.arrow()
        if table.num_columns == 0:
            return []
        columns = [_pylist(table.column(i)) for i in range(table.num_columns)]
        return list(zip(*columns, strict=True))

    def fetchone(self) -> tuple | None:
        rows = self.fetchall()
        return rows[0] if rows else None

    def fetchnumpy(self) -> dict[str, np.ndarray]:
        table = self.arrow()
        return {name: _numpy(table.column(i)) for i, name in enumerate(table.column_names)}

    def df(self) -> Any:
        return self.arrow().to_pandas()


def _from_spark(table: pa.Table) -> pa.Table:
    """DECIMAL(20,0) (UBIGINT in the transpiled SQL) back to uint64, as DuckDB returns it."""
    fields = []
    for f in table.schema:
        t = f.type
        if pa.types.is_decimal(t) and (t.precision, t.scale) == (20, 0):
            t = pa.uint64()
        elif pa.types.is_list(t) and pa.types.is_decimal(t.value_type) and \
                (t.value_type.precision, t.value_type.scale) == (20, 0):
            t = pa.list_(pa.uint64())
        fields.append(pa.field(f.name, t))
    schema = pa.schema(fields)
    return table if schema == table.schema else table.cast(schema)


def _pylist(column: pa.ChunkedArray) -> list[Any]:
    return column.to_pylist()


def _numpy(column: pa.ChunkedArray) -> np.ndarray:
    """A column as DuckDB's ``fetchnumpy`` gives it: masked where NULL, DECIMAL as float64, text as objects."""
    t = column.type
    if pa.types.is_decimal(t):
        column = column.cast(pa.float64())
    values = column.to_numpy(zero_copy_only=False)
    if column.null_count:
        mask = column.is_null().to_numpy(zero_copy_only=False)
        if values.dtype == object:
            return np.ma.masked_array(values, mask=mask)
        filled = column.fill_null(0 if not pa.types.is_boolean(column.type) else False)
        return np.ma.masked_array(filled.to_numpy(zero_copy_only=False), mask=mask)
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return values.astype(object)
    return values


def _literal(value: Any) -> exp.Expression:
    if value is None:
        return exp.Null()
    if isinstance(value, bool):
        return exp.Boolean(this=value)
    if isinstance(value, (int, float, decimal.Decimal)):
        return exp.Literal.number(value)
    if isinstance(value, str):
        return exp.Literal.string(value)
    raise sqlrules.UnsupportedSQL(f"a parameter of type {type(value).__name__}")


def _bind(tree: exp.Expression, params: Any) -> exp.Expression:
    values = list(params or [])
    holes = list(tree.find_all(exp.Placeholder))
    if len(holes) != len(values):
        raise ValueError(f"{len(holes)} ? placeholders, {len(values)} parameters")
    for hole, value in zip(holes, values, strict=True):
        hole.replace(_literal(value))
    return tree


def release(df: Any) -> None:
    """Free the blocks behind ``df`` now: a cached frame's, or the RDD a ``localCheckpoint`` left behind (otherwise
    kept until the JVM's garbage collector lets Spark's cleaner see it)."""
    if df.storageLevel.useMemory or df.storageLevel.useDisk:
        df.unpersist()
        return
    try:
        plan = df._jdf.queryExecution().logical()
        if plan.getClass().getSimpleName() == "LogicalRDD":
            plan.rdd().unpersist(False)
    except Exception:  # noqa: BLE001 - best effort: Spark frees it later anyway
        log.debug("could not release the blocks of a checkpointed frame", exc_info=True)


class SparkConnection:
    """The DuckDB connection API the detection stages use, executed on ``spark`` (see the module docstring).

    ``parquet`` resolves a ``read_parquet`` path list to a DataFrame (the store decides: its files, or the
    signals the Spark engine derived).
    """

    def __init__(self, spark: Any, parquet: Callable[[list[str]], Any] | None = None) -> None:
        self.spark = spark
        self._parquet = parquet or (lambda paths: spark.read.parquet(*paths))
        self._relations: dict[str, Any] = {}  # name -> DataFrame (temp tables are checkpointed)
        self._parquet_views: dict[tuple[str, ...], str] = {}
        self._hashes: set[int] = set()
        self._functions: set[str] | None = None
        self.statements = 0
        self.seconds = 0.0  # spent in execute
        self.translations: list[tuple[str, str]] = []  # (DuckDB, Spark) of every statement, for inspection

    # ---- relations --------------------------------------------------------------------------------------------
    def create_view(self, name: str, df: Any) -> None:
        df.createOrReplaceTempView(name)
        self._relations[name.lower()] = df

    def _drop(self, name: str) -> bool:
        df = self._relations.pop(name.lower(), None)
        if df is None:
            return False
        self.spark.catalog.dropTempView(name)
        release(df)
        return True

    def register(self, name: str, table: pa.Table) -> SparkConnection:
        """Like DuckDB's ``register``: an Arrow table visible to SQL as ``name``."""
        table = for_spark(table)
        if table.num_rows == 0:
            df = self.spark.createDataFrame([], spark_schema(table.schema))
        else:
            df = self.spark.createDataFrame(table)
        self.create_view(name, df)
        return self

    def unregister(self, name: str) -> SparkConnection:
        self._drop(name)
        return self

    def table(self, name: str) -> Any:
        return self._relations[name.lower()]

    def _read_parquet(self, paths: list[str]) -> str:
        key = tuple(paths)
        name = self._parquet_views.get(key)
        if name is None:
            name = self._parquet_views[key] = f"_dg_parquet_{next(_ids)}"
            self.create_view(name, self._parquet(paths))
        return name

    def _kinds(self, tree: exp.Expression) -> dict[str, dict[str, str]]:
        """Column kinds of the registered relations the statement reads (for the type-dependent rules)."""
        out: dict[str, dict[str, str]] = {}
        for table in tree.find_all(exp.Table):
            name = table.name.lower()
            df = self._relations.get(name)
            if df is not None and name not in out:
                out[name] = {f.name.lower(): kind_of(f.dataType) for f in df.schema.fields}
        return out

    @property
    def functions(self) -> set[str]:
        if self._functions is None:
            self._functions = {r.function.lower() for r in self.spark.sql("SHOW FUNCTIONS").collect()}
        return self._functions

    # ---- statements -------------------------------------------------------------------------------------------
    def translate(self, tree: exp.Expression, sql: str) -> str:
        done = sqlrules.to_spark(tree, sql=sql, tables=self._kinds(tree), functions=self.functions,
                                 relations=self._read_parquet)
        for arity in done.hash_arities - self._hashes:
            register_duckdb_hash(self.spark, arity)
            self._hashes.add(arity)
        out = done.sql
        self.translations.append((sql, out))
        return out

    def query(self, tree: exp.Expression, sql: str) -> Any:
        return self.spark.sql(self.translate(tree, sql))

    def execute(self, sql: str, params: Any = None) -> SparkResult:
        """Run one DuckDB statement on Spark (see the module docstring); a query's rows are fetched here."""
        started = time.perf_counter()
        try:
            return self._execute(sql, params)
        finally:
            self.seconds += time.perf_counter() - started
            if log.isEnabledFor(logging.DEBUG):
                log.debug("%.2f s  %s", time.perf_counter() - started, " ".join(sql.split())[:160])

    def _execute(self, sql: str, params: Any = None) -> SparkResult:  # noqa: C901 - one branch per statement kind
        self.statements += 1
        tree = _bind(sqlrules.parse(sql), params)
        if isinstance(tree, exp.Set):
            for item in tree.expressions:
                name = item.this.this.name if isinstance(item.this, exp.EQ) else item.name
                if name.lower() not in sqlrules.IGNORED_SETTINGS:
                    raise sqlrules.UnsupportedSQL(f"SET {name}", sql)
            return SparkResult()
        if isinstance(tree, exp.Create):
            kind = (tree.args.get("kind") or "").upper()
            target = tree.this
            if kind not in ("TABLE", "VIEW"):
                raise sqlrules.UnsupportedSQL(f"CREATE {kind}", sql)
            if isinstance(target, exp.Schema):  # CREATE TABLE t (col TYPE, ...)
                from pyspark.sql import types as T

                fields = [T.StructField(c.name, self._type(c.args["kind"], sql)) for c in target.expressions]
                name = target.this.name
                self._drop(name)
                self.create_view(name, self.spark.createDataFrame([], T.StructType(fields)))
                return SparkResult()
            name = target.name
            df = self.query(tree.expression, sql)
            if kind == "TABLE":
                df = df.localCheckpoint(eager=True)
            self._drop(name)
            self.create_view(name, df)
            return SparkResult()
        if isinstance(tree, exp.Insert):
            name = tree.this.name
            old = self._relations.get(name.lower())
            if old is None:
                raise ValueError(f"INSERT INTO {name}: no such table")
            if tree.args.get("by_name"):
                raise sqlrules.UnsupportedSQL("INSERT ... BY NAME", sql)
            query = self.translate(tree.expression, sql)
            width = len(self.spark.sql(query).columns)
            if width != len(old.columns):
                raise ValueError(f"INSERT INTO {name}: {width} values for {len(old.columns)} columns")
            holes = ", ".join(f"_c{i}" for i in range(width))
            casts = ", ".join(f"CAST(_c{i} AS {f.dataType.simpleString()}) AS `{f.name}`"
                              for i, f in enumerate(old.schema.fields))
            merged = self.spark.sql(f"SELECT * FROM {name} UNION ALL SELECT {casts} FROM ({query}) AS _q({holes})")
            merged = merged.localCheckpoint(eager=True)
            self._drop(name)
            self.create_view(name, merged)
            return SparkResult()
        if isinstance(tree, exp.Drop):
            if (tree.args.get("kind") or "").upper() not in ("TABLE", "VIEW"):
                raise sqlrules.UnsupportedSQL(f"DROP {tree.args.get('kind')}", sql)
            for table in tree.args.get("tables") or [tree.this]:
                if not self._drop(table.name) and not tree.args.get("exists"):
                    raise ValueError(f"DROP {table.name}: no such table")
            return SparkResult()
        if isinstance(tree, exp.Query):
            schema_question = self._information_schema(tree)
            if schema_question is not None:
                return schema_question
            return SparkResult(table=_from_spark(self.query(tree, sql).toArrow()))  # eager, like DuckDB
        raise sqlrules.UnsupportedSQL(f"statement {type(tree).__name__}", sql)

    def _type(self, kind: exp.DataType, sql: str) -> Any:
        out = sqlrules.to_spark(exp.Cast(this=exp.Null(), to=kind), sql=sql).sql
        return self.spark.sql(f"SELECT {out} AS x").schema.fields[0].dataType

    def _information_schema(self, tree: exp.Expression) -> SparkResult | None:
        """``SELECT column_name FROM information_schema.columns WHERE table_name = 'x'`` from the registry."""
        source = tree.args.get("from_")
        table = source.this if source is not None else None
        if not isinstance(table, exp.Table) or table.db.lower() != "information_schema":
            return None
        where = tree.args.get("where")
        condition = where.this if where is not None else None
        projection = [e.name for e in tree.expressions]
        if table.name.lower() != "columns" or projection != ["column_name"] or not isinstance(condition, exp.EQ) \
                or condition.this.name != "table_name" or not isinstance(condition.expression, exp.Literal):
            raise sqlrules.UnsupportedSQL("information_schema query other than column names of one table")
        df = self._relations.get(condition.expression.name.lower())
        names = list(df.columns) if df is not None else []
        return SparkResult(table=pa.table({"column_name": pa.array(names, pa.string())}))

    def close(self) -> None:
        for name in list(self._relations):
            self._drop(name)
