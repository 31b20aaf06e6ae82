"""Engines by name, and the DuckDB -> Spark SQL rules (no Spark needed here; tests/test_spark.py runs them).

The statement test replays detection on a simulated store and translates every statement the stages send to
DuckDB, with the column types DuckDB reports: when a stage's SQL changes, this fails (naming the construct)
wherever the change has no Spark translation of the same meaning, with or without Spark installed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlglot import exp

from conftest import tiny_store
from distillguard.engine import DuckDBEngine, EngineError, get_engine
from distillguard.engine import sql as rules
from distillguard.engine.compare import differences
from distillguard.engine.source import Source, is_local_store
from distillguard.engine.sql import UnsupportedSQL, parse, to_spark, transpile


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_store(tmp_path_factory.mktemp("engine"))


def test_engines_by_name() -> None:
    assert isinstance(get_engine("duckdb"), DuckDBEngine)
    with pytest.raises(EngineError, match="unknown engine"):
        get_engine("presto")
    with pytest.raises(TypeError):
        get_engine("duckdb", master="local[2]")


def test_sources() -> None:
    assert Source.parse("table:prod.dg") == Source("table", "prod.dg")
    assert Source.parse("delta:s3a://b/dg").kind == "delta"
    assert Source.parse("s3a://bucket/store").local is None
    assert Source.parse("/data/store").local == Path("/data/store")
    assert is_local_store("file:/data/store") and not is_local_store("hdfs://nn/store")


# ---- rules ----------------------------------------------------------------------------------------------------

EX = {"ex": {"ts": rules.TIMESTAMP, "tpl": rules.UINT, "ip": rules.STRING, "cot": rules.BOOL, "n": rules.INT,
             "x": rules.FLOAT, "d": rules.DECIMAL, "l": rules.ARRAY}}


def spark(sql: str, **kwargs: Any) -> str:
    return transpile(sql, tables=EX, **kwargs)


def test_sketch_hash_reads_four_md5_bytes_little_endian() -> None:
    out = spark("SELECT (md5_number_upper(ip) >> 32)::UINTEGER FROM ex")
    assert out == ("SELECT CAST((CAST(CONV(ARRAY_JOIN(REVERSE(REGEXP_EXTRACT_ALL(SUBSTR(MD5(ip), 9, 8), '..', 0)), "
                   "''), 16, 10) AS BIGINT)) AS BIGINT) FROM ex")
    full = spark("SELECT md5_number_upper(ip) FROM ex")
    assert "SUBSTR(MD5(ip), 1, 16)" in full and "DECIMAL(20, 0)" in full


def test_type_directed_rules() -> None:
    assert spark("SELECT epoch_ms(ts) FROM ex") == "SELECT UNIX_MILLIS(ts) FROM ex"
    assert spark("SELECT epoch_ms(n) FROM ex") == "SELECT TIMESTAMP_MILLIS(n) FROM ex"
    assert spark("SELECT epoch(ts) FROM ex") == "SELECT UNIX_MICROS(ts) / 1000000.0D FROM ex"
    assert spark("SELECT x::BIGINT, d::INT, cot::INT, n::INT FROM ex") == (
        "SELECT CAST(BROUND(x) AS BIGINT), CAST(ROUND(d) AS INT), CAST(cot AS INT), CAST(n AS INT) FROM ex")
    assert spark("SELECT tpl >> 32, n >> 3 FROM ex") == "SELECT tpl DIV 4294967296, SHIFTRIGHT(n, 3) FROM ex"
    assert spark("SELECT n / 2 FROM ex") == "SELECT CAST(n AS DOUBLE) / CAST(2 AS DOUBLE) FROM ex"
    assert spark("SELECT len(l), len(ip) FROM ex") == "SELECT SIZE(l), LENGTH(ip) FROM ex"
    assert spark("SELECT n::UBIGINT, n::UINTEGER FROM ex") == \
        "SELECT CAST(n AS DECIMAL(20, 0)), CAST(n AS BIGINT) FROM ex"
    # a relation's column wins over a select alias of the same name (DuckDB resolves it so)
    assert spark("SELECT sum(cot::INT)::DOUBLE AS cot FROM ex") == \
        "SELECT CAST(SUM(CAST(cot AS INT)) AS DOUBLE) AS cot FROM ex"


def test_list_and_window_rules() -> None:
    assert spark("SELECT min(n, 16) FROM ex") == "SELECT SLICE(ARRAY_SORT(COLLECT_LIST(n)), 1, 16) FROM ex"
    # the only aggregate of a grouped select: each group keeps its k first rows before collecting (bounded memory)
    assert spark("SELECT ip, min(n, 3) AS kept FROM ex WHERE n > 0 GROUP BY ip") == (
        "SELECT ip, SLICE(ARRAY_SORT(COLLECT_LIST(n)), 1, 3) AS kept FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY "
        "ip ORDER BY n ASC NULLS LAST) AS __dg_rank FROM ex WHERE n > 0) AS __dg_smallest WHERE __dg_rank <= 3 "
        "GROUP BY ip")
    # beside another aggregate, which needs every row, the unbounded form (same meaning) stays
    assert spark("SELECT ip, min(n, 3), count(*) FROM ex GROUP BY ip") == \
        "SELECT ip, SLICE(ARRAY_SORT(COLLECT_LIST(n)), 1, 3), COUNT(*) FROM ex GROUP BY ip"
    assert spark("SELECT list(ip ORDER BY ip) FROM ex") == "SELECT ARRAY_SORT(COLLECT_LIST(ip)) FROM ex"
    assert spark("SELECT count(DISTINCT ip) OVER (PARTITION BY n) FROM ex") == \
        "SELECT SIZE(COLLECT_SET(ip) OVER (PARTITION BY n)) FROM ex"
    assert spark("SELECT string_split(ip, '.')[1:3], l[2], list_slice(l, 2, 4) FROM ex") == \
        "SELECT SLICE(SPLIT(ip, CONCAT('\\\\Q', '.', '\\\\E')), 1, 3), ELEMENT_AT(l, 2), SLICE(l, 2, 3) FROM ex"
    assert spark("SELECT list_has_any(l, l), len(list_intersect(l, l)) FROM ex") == \
        "SELECT ARRAYS_OVERLAP(l, l), SIZE(ARRAY_INTERSECT(l, l)) FROM ex"
    assert spark("SELECT a, kind FROM (UNPIVOT h ON p, q INTO NAME kind VALUE shared)") == \
        "SELECT a, kind FROM (SELECT * FROM h UNPIVOT(shared FOR kind IN (p, q)))"
    assert spark("SELECT j FROM ex, range(6) r(j)") == "SELECT j FROM ex, RANGE(0, 6) AS r(j)"
    assert spark("SELECT hash(ip, n) FROM ex") == "SELECT DG_DUCKDB_HASH_2(ip, n) FROM ex"


@pytest.mark.parametrize("sql, construct", [
    ("SELECT list(ip ORDER BY n) FROM ex", "ORDER BY"),
    ("SELECT regexp_replace(ip, '[0-9]', 'x') FROM ex", "first match only"),
    ("SELECT regexp_replace(ip, '([0-9])', '\\1', 'g') FROM ex", "group references"),
    ("SELECT regexp_replace(ip, 'a', 'b', 'i') FROM ex", "options"),
    ("SELECT y::INT FROM other", "cast of a unknown value"),
    ("SELECT x::VARCHAR FROM ex", "to text"),
    ("SELECT ip >> 2 FROM ex", "right shift of a string"),
    ("SELECT len(y) FROM other", "len()"),
    ("SELECT sum(DISTINCT n) OVER (PARTITION BY ip) FROM ex", "DISTINCT aggregate over a window"),
    ("SELECT * FROM read_parquet('a.parquet')", "read_parquet"),
    ("SELECT * EXCLUDE (n) FROM ex", "EXCLUDE"),
    ("SELECT n FROM ex QUALIFY row_number() OVER () = 1", "QUALIFY"),
    ("SELECT md5_number(ip) FROM ex", "md5_number"),
    ("SELECT ip[1] FROM ex", "[] on a string"),
])
def test_constructs_without_a_translation_are_errors(sql: str, construct: str) -> None:
    with pytest.raises(UnsupportedSQL, match="no Spark translation") as info:
        spark(sql)
    assert construct in str(info.value)


def test_unknown_functions_are_errors_given_sparks_function_list() -> None:
    assert spark("SELECT upper(ip) FROM ex", functions={"upper"}) == "SELECT UPPER(ip) FROM ex"
    with pytest.raises(UnsupportedSQL, match="jaro_winkler_similarity"):
        spark("SELECT jaro_winkler_similarity(ip, ip) FROM ex", functions={"upper"})
    assert spark("SELECT * FROM read_parquet(['a', 'b'])", relations=lambda paths: "_files") == "SELECT * FROM _files"


# ---- every statement detection sends --------------------------------------------------------------------------

def _kind(duck_type: str) -> str:
    t = duck_type.upper()
    if t.endswith("[]"):
        return rules.ARRAY
    if t == "BOOLEAN":
        return rules.BOOL
    if t == "UBIGINT":
        return rules.UINT
    if t in ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER"):
        return rules.INT
    if t in ("DOUBLE", "FLOAT"):
        return rules.FLOAT
    if t.startswith("DECIMAL"):
        return rules.DECIMAL
    if t == "VARCHAR":
        return rules.STRING
    if t.startswith("TIMESTAMP"):
        return rules.TIMESTAMP
    return rules.DATE if t == "DATE" else rules.UNKNOWN


class _Translating:
    """A DuckDB connection that also translates every statement for Spark, with DuckDB's column types."""

    def __init__(self, con: Any) -> None:
        self._con = con
        self.translated = 0

    def execute(self, sql: str, params: Any = None) -> Any:
        from distillguard.engine.spark.connection import _bind

        tree = _bind(parse(sql), params)
        body = tree.expression if isinstance(tree, (exp.Create, exp.Insert)) else tree
        if isinstance(tree, exp.Set):
            assert all(i.this.this.name.lower() in rules.IGNORED_SETTINGS for i in tree.expressions), sql
        elif isinstance(body, exp.Query) and not (isinstance(tree, exp.Create) and body is None):
            tables: dict[str, dict[str, str]] = {}
            for table in body.find_all(exp.Table):
                try:
                    rows = self._con.execute(f'DESCRIBE "{table.name}"').fetchall()
                except Exception:  # noqa: BLE001 - a CTE or table function, not a relation
                    continue
                tables[table.name] = {r[0]: _kind(r[1]) for r in rows}
            to_spark(body, sql=sql, tables=tables, relations=lambda paths: "_files")
            self.translated += 1
        return self._con.execute(sql, params) if params is not None else self._con.execute(sql)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._con, name)


def test_every_statement_of_detection_has_a_spark_translation(store_dir: Path, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from distillguard.pipeline import run_detection
    from distillguard.store import Store

    store = Store.open(store_dir, create=False)
    wrapped: list[_Translating] = []
    connect = store.connect

    def translating(*args: Any, **kwargs: Any) -> _Translating:
        wrapped.append(_Translating(connect(*args, **kwargs)))
        return wrapped[-1]

    monkeypatch.setattr(store, "connect", translating)
    result = run_detection(store, tmp_path / "out")
    assert result.campaigns, "the test store should give campaigns, so attribution's SQL is exercised"
    assert sum(w.translated for w in wrapped) > 60


def test_duckdb_engine_is_run_detection(store_dir: Path, tmp_path: Path) -> None:
    from distillguard.pipeline import run_detection
    from distillguard.store import Store

    get_engine("duckdb").detect(store_dir, tmp_path / "engine")
    run_detection(Store.open(store_dir, create=False), tmp_path / "direct")
    assert differences(tmp_path / "engine", tmp_path / "direct") == []
    from distillguard.store.store import StoreError

    with pytest.raises(StoreError, match="not a distillguard store"):
        get_engine("duckdb").detect(tmp_path, tmp_path / "x")
