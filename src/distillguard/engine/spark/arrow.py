"""Arrow <-> Spark types, and the per-exchange signals as a vectorised Arrow UDF.

Spark has no unsigned integers. Its Parquet reader turns UINT64 into ``DECIMAL(20,0)`` and UINT32 into
``BIGINT``; the glue here does the same to the Arrow batches the signals UDF returns, so a fingerprint such as
``tpl`` has one exact value (and one text form) whichever way it reached Spark, and the transpiled SQL
(:mod:`distillguard.engine.sql`, where ``UBIGINT`` is ``DECIMAL(20,0)``) reads it like DuckDB reads UBIGINT.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from distillguard.engine import sql as sqlrules

if TYPE_CHECKING:
    from pyspark.sql.types import DataType, StructType

UINT64 = pa.decimal128(20, 0)  # how Spark holds an unsigned 64-bit value


def spark_arrow_type(t: pa.DataType) -> pa.DataType:
    """The Arrow type Spark accepts for values of Arrow type ``t`` (unsigned -> wider signed or DECIMAL(20,0))."""
    if pa.types.is_uint64(t):
        return UINT64
    if pa.types.is_uint32(t):
        return pa.int64()
    if pa.types.is_uint16(t):
        return pa.int32()
    if pa.types.is_uint8(t):
        return pa.int16()
    if pa.types.is_timestamp(t):
        return pa.timestamp("us", tz=t.tz)
    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pa.string()
    if pa.types.is_dictionary(t):
        return spark_arrow_type(t.value_type)
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return pa.list_(spark_arrow_type(t.value_type))
    return t


def spark_arrow_schema(schema: pa.Schema) -> pa.Schema:
    return pa.schema([pa.field(f.name, spark_arrow_type(f.type)) for f in schema])


def for_spark(table: pa.Table) -> pa.Table:
    """``table`` cast to types Spark can take (see :func:`spark_arrow_type`)."""
    target = spark_arrow_schema(table.schema)
    return table if target == table.schema else table.cast(target)


def spark_type(t: pa.DataType) -> DataType:
    """The Spark SQL type of Arrow type ``t`` (after :func:`spark_arrow_type`)."""
    from pyspark.sql import types as T

    t = spark_arrow_type(t)
    simple = {pa.string(): T.StringType(), pa.bool_(): T.BooleanType(), pa.int8(): T.ByteType(),
              pa.int16(): T.ShortType(), pa.int32(): T.IntegerType(), pa.int64(): T.LongType(),
              pa.float32(): T.FloatType(), pa.float64(): T.DoubleType(), pa.date32(): T.DateType(),
              pa.binary(): T.BinaryType()}
    if t in simple:
        return simple[t]
    if pa.types.is_decimal(t):
        return T.DecimalType(t.precision, t.scale)
    if pa.types.is_timestamp(t):
        return T.TimestampType() if t.tz else T.TimestampNTZType()
    if pa.types.is_list(t):
        return T.ArrayType(spark_type(t.value_type))
    raise TypeError(f"no Spark type for Arrow type {t}")


def spark_schema(schema: pa.Schema) -> StructType:
    from pyspark.sql import types as T

    return T.StructType([T.StructField(f.name, spark_type(f.type), True) for f in schema])


def kind_of(dt: Any) -> str:
    """The value kind (:mod:`distillguard.engine.sql`) of a Spark SQL type: what the type-dependent rules read."""
    from pyspark.sql import types as T

    if isinstance(dt, T.BooleanType):
        return sqlrules.BOOL
    if isinstance(dt, (T.ByteType, T.ShortType, T.IntegerType, T.LongType)):
        return sqlrules.INT
    if isinstance(dt, T.DecimalType):
        return sqlrules.UINT if (dt.precision, dt.scale) == (20, 0) else sqlrules.DECIMAL
    if isinstance(dt, (T.FloatType, T.DoubleType)):
        return sqlrules.FLOAT
    if isinstance(dt, T.StringType):
        return sqlrules.STRING
    if isinstance(dt, (T.TimestampType, T.TimestampNTZType)):
        return sqlrules.TIMESTAMP
    if isinstance(dt, T.DateType):
        return sqlrules.DATE
    if isinstance(dt, T.ArrayType):
        return sqlrules.ARRAY
    return sqlrules.UNKNOWN


def derive_batches(derive: Any, in_schema: pa.Schema, out_schema: pa.Schema
                   ) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """The ``mapInArrow`` function of the signals stage: each Arrow batch through the store's own derivation.

    ``derive`` is the :class:`~distillguard.store.store.Derive` the pipeline passed (``SIGNALS``), and each batch
    goes through ``store.store._derived_table`` -- the very function ``Store.derived`` applies to an exchange
    file for the DuckDB engine (signals + the ``CARRIED`` exchange columns) -- so the engines cannot disagree on a
    signal. Batches arrive in Spark's types and are cast to ``in_schema`` (the store's exchange types, e.g.
    millisecond timestamps) first; results leave in ``out_schema`` (:func:`spark_arrow_schema`).
    """

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from distillguard.store.store import _derived_table

        for batch in batches:
            if batch.num_rows == 0:
                continue
            table = pa.Table.from_batches([batch]).select(in_schema.names).cast(in_schema)
            out = _derived_table(derive, table).select(out_schema.names)
            yield from out.cast(out_schema).to_batches()

    return run
