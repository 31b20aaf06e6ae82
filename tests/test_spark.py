"""The Spark engine against the DuckDB engine, in Spark local mode (``local[2]``), on a tiny simulated store.

What is proved: the transpiled rules return what DuckDB returns (sketch hash, casts, shifts, lists, windows,
UNPIVOT, range, DuckDB's ``hash``); the signals UDF returns the store's own derived signals byte for byte;
``detect --engine spark`` writes the same accounts (risk within 1e-6, same verdicts, points, campaigns) and the
same campaigns as DuckDB; per-component Leiden gives the driver's communities. Skipped without pyspark or
Java unless ``DISTILLGUARD_REQUIRE_SPARK=1`` (CI), where a missing Spark is a failure.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from conftest import tiny_store

REQUIRED = os.environ.get("DISTILLGUARD_REQUIRE_SPARK") == "1"


def _missing() -> str | None:
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return "pyspark is not installed (pip install 'distillguard[spark]')"
    home = os.environ.get("JAVA_HOME")
    java = os.path.join(home, "bin", "java") if home else shutil.which("java")
    if java is None or not os.path.exists(java):
        return "no java on PATH or in JAVA_HOME (Java 17)"
    done = subprocess.run([java, "-version"], capture_output=True, text=True, check=False)
    return None if done.returncode == 0 else f"java -version failed: {done.stderr[:200]}"


MISSING = _missing()
if MISSING and REQUIRED:
    raise RuntimeError(f"DISTILLGUARD_REQUIRE_SPARK=1 but {MISSING}")
pytestmark = [pytest.mark.skipif(MISSING is not None, reason=MISSING or ""),
              # pyspark checks the pandas version on every Arrow UDF; nothing here goes through pandas
              pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning")]


@pytest.fixture(scope="module")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from distillguard.engine.spark.session import spark_session

    warehouse = tmp_path_factory.mktemp("warehouse")
    session = spark_session("local[2]", {"spark.sql.shuffle.partitions": "2", "spark.default.parallelism": "2",
                                         "spark.sql.warehouse.dir": str(warehouse)})
    yield session
    session.stop()


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_store(tmp_path_factory.mktemp("spark-store"))


# ---- the rules, value for value -------------------------------------------------------------------------------

def _plain(value: Any) -> Any:
    """A value both engines' Python conventions reduce to the same thing (times as UTC seconds)."""
    if isinstance(value, dt.datetime):
        return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).timestamp()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, float):
        return round(value, 9) if math.isfinite(value) else value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


RULES = pa.table({
    "i": pa.array([1, 2, 3, 4, 5], pa.int32()),
    "x": pa.array([0.5, 1.5, 2.5, -2.5, 3.49999], pa.float64()),
    "s": pa.array(["10.0.0.1", "10.0.0.77", "2001:db8:1:2::1", "abc", "10.0.0.1"], pa.string()),
    "ts": pa.array([1_770_000_000_123, 1_770_000_059_999, 1_770_003_600_000, 1_770_086_400_001, 0],
                   pa.timestamp("ms", tz="UTC")),
    "u": pa.array([0, 1, 2**63 + 12345, 2**64 - 1, 2**40], pa.uint64()),
    "l": pa.array([["a", "b"], ["b"], [], ["c", "a"], None], pa.list_(pa.string())),
    "g": pa.array(["p", "q", "p", "q", "p"], pa.string()),
})
QUERIES = [
    "SELECT i, x::BIGINT, (x * 2)::INT, (2.5 * i)::INT, epoch(ts), epoch_ms(ts), epoch(ts)::BIGINT // 60 FROM t "
    "ORDER BY i",
    "SELECT i, i / 3, x / 0.5, i // 2, (i * 1000) / 7.0 FROM t ORDER BY i",
    "SELECT i, u >> 32, (u >> 32)::UINTEGER, i >> 1, u::VARCHAR, (u % 7)::BIGINT FROM t ORDER BY i",
    "SELECT s, (md5_number_upper(s) >> 32)::UINTEGER, md5_number_upper(s) FROM t ORDER BY i",
    "SELECT g, min(i, 2), list(s ORDER BY s), count(*) FILTER (WHERE x > 1), median(x), arg_min(s, i) FROM t "
    "GROUP BY g ORDER BY g",
    "SELECT g, min(i, 2) AS two, min(i, 3) AS three FROM t WHERE x > 0 GROUP BY g ORDER BY g",
    "SELECT g, j, min(s, 1) FROM (SELECT DISTINCT g, j, s FROM t, range(2) r(j)) WHERE s IS NOT NULL "
    "GROUP BY g, j ORDER BY g, j",
    "SELECT i, count(DISTINCT s) OVER (PARTITION BY g), row_number() OVER (PARTITION BY g ORDER BY x) FROM t "
    "ORDER BY i",
    "SELECT i, j, hash(i), hash(s, j), hash(s) FROM t, range(2) r(j) ORDER BY i, j",
    "SELECT i, len(list_intersect(l, ['a', 'b'])), coalesce(list_has_any(l, ['b']), false), list_extract(l, 1), "
    "l[2], string_split(s, '.')[1:3] FROM t ORDER BY i",
    "SELECT i, regexp_replace(s, '\\.[0-9]+$', ''), regexp_replace(s, '[0-9]', 'x', 'g'), "
    "regexp_extract(s, '^(\\d+\\.\\d+\\.\\d+)\\.\\d+$', 1), contains(s, ':') FROM t ORDER BY i",
    "SELECT CASE WHEN contains(s, '.') THEN regexp_replace(s, '\\.[0-9]+$', '') "
    "ELSE array_to_string(string_split(s, ':')[1:3], ':') END AS prefix FROM t ORDER BY i",
    "SELECT i, date_trunc('hour', ts), ts + INTERVAL 1 DAY > ts FROM t ORDER BY i",
]


@pytest.mark.parametrize("query", QUERIES)
def test_rule_returns_what_duckdb_returns(spark: Any, query: str) -> None:
    import duckdb

    from distillguard.engine.spark.connection import SparkConnection

    duck = duckdb.connect()
    duck.execute("SET TimeZone = 'UTC'")
    duck.register("t", RULES)
    con = SparkConnection(spark)
    con.register("t", RULES)
    assert _plain(con.execute(query).fetchall()) == _plain(duck.execute(query).fetchall())


def test_temp_tables_inserts_unpivot_and_settings(spark: Any) -> None:
    """CREATE TEMP TABLE (empty or AS), INSERT INTO by position with DuckDB's casts, UNPIVOT, SET, DROP."""
    import duckdb

    from distillguard.engine.spark.connection import SparkConnection
    from distillguard.engine.sql import UnsupportedSQL

    script = [
        "SET enable_progress_bar = false",
        "CREATE OR REPLACE TEMP TABLE k (account_id VARCHAR, fp UINTEGER, n BIGINT)",
        "INSERT INTO k SELECT s, i * 2, 1 FROM t WHERE i <= 3",
        "INSERT INTO k SELECT s, (u >> 40)::UINTEGER, 2 FROM t WHERE i > 3",
        "CREATE OR REPLACE TEMP TABLE h AS SELECT i, i > 1 AS p, x > 1 AS q FROM t",
        "CREATE OR REPLACE TEMP TABLE w AS SELECT i, kind FROM (UNPIVOT h ON p, q INTO NAME kind VALUE shared) "
        "WHERE shared",
        "DROP TABLE h",
    ]
    duck = duckdb.connect()
    duck.register("t", RULES)
    con = SparkConnection(spark)
    con.register("t", RULES)
    for statement in script:
        duck.execute(statement)
        con.execute(statement)
    for query in ("SELECT account_id, fp, n FROM k ORDER BY ALL", "SELECT i, kind FROM w ORDER BY ALL",
                  "SELECT column_name FROM information_schema.columns WHERE table_name = 'k'"):
        assert _plain(con.execute(query).fetchall()) == _plain(duck.execute(query).fetchall())
    assert con.execute("SELECT n FROM k ORDER BY n").fetchnumpy()["n"].tolist() == [1, 1, 1, 2, 2]
    with pytest.raises(UnsupportedSQL, match="SET threads_per_query|SET"):
        con.execute("SET default_order = 'desc'")
    with pytest.raises(ValueError, match="no such table"):
        con.execute("DROP TABLE h")


def test_sketch_hash_is_the_python_twin(spark: Any) -> None:
    """``md5_number_upper(v) >> 32`` on Spark (hex MD5, byte-swapped) = features.stats.string_hash."""
    from distillguard.engine.spark.connection import SparkConnection
    from distillguard.features.stats import DISTINCTS, string_hash

    values = ["203.0.113.7", "", "python-httpx/0.27", "é€😀", "t13d1516h2_8daaf6152771", "14061", "2001:db8::1"]
    con = SparkConnection(spark)
    con.register("ex", pa.table({"ip": pa.array(values)}))
    ip = next(d for d in DISTINCTS if d.name == "ip")
    rows = con.execute(f"SELECT ip, (md5_number_upper({ip.sql}) >> 32)::UINTEGER AS h FROM ex").fetchall()
    assert {v: h for v, h in rows} == {v: string_hash(v) for v in values}


# ---- stages ---------------------------------------------------------------------------------------------------

def test_signals_udf_returns_the_stores_derived_signals(spark: Any, store_dir: Path) -> None:
    import pyarrow.parquet as pq

    from distillguard.engine.source import Source
    from distillguard.engine.spark.store import SparkStore
    from distillguard.signals import SIGNALS
    from distillguard.store import Store

    store = SparkStore(spark, Source.parse(store_dir))
    (name,) = store.derived(SIGNALS)
    got = store.connect().table("exchanges") and store._parquet([name]).toArrow()
    want = pa.concat_tables([pq.read_table(f) for f in Store.open(store_dir, create=False).derived(SIGNALS)])
    assert sorted(got.column_names) == sorted(want.column_names)
    got = got.select(want.column_names).sort_by("id")
    want = want.sort_by("id")
    for name in want.column_names:
        left, right = got.column(name), want.column(name)
        if left.type != right.type:
            left = left.cast(right.type)  # DECIMAL(20,0) -> uint64, int64 -> uint32, us -> ms
        assert left.equals(right), name
    store.close()


@pytest.fixture(scope="module")
def duckdb_out(store_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from distillguard.engine import get_engine

    out = tmp_path_factory.mktemp("duckdb-out")
    result = get_engine("duckdb").detect(store_dir, out)
    assert len(result.campaigns) >= 1, "the test store must give campaigns, so attribution's SQL is compared"
    return out


def test_detection_on_spark_equals_duckdb(spark: Any, store_dir: Path, duckdb_out: Path, tmp_path: Path) -> None:
    from distillguard.engine.compare import differences
    from distillguard.engine.spark import SparkEngine

    engine = SparkEngine(spark=spark)
    result = engine.detect(store_dir, tmp_path / "spark")
    assert differences(duckdb_out, tmp_path / "spark") == []
    assert len(result.campaigns) >= 1
    statements = sum(c.statements for c in engine.last_store.connections)
    assert statements > 60  # features, attribution and the report all ran their SQL on Spark


def test_catalog_table_source_gives_the_same_features(spark: Any, store_dir: Path) -> None:
    """``--store table:NS`` (how Delta/Iceberg tables arrive through a catalog) reads like the store."""
    import numpy as np

    from distillguard.engine.source import Source
    from distillguard.engine.spark.store import SparkStore
    from distillguard.features import account_features, attach_signals
    from distillguard.signals import SIGNALS
    from distillguard.store import Store

    spark.sql("CREATE DATABASE IF NOT EXISTS dgtest")
    spark.read.parquet(str(store_dir / "exchanges")).write.mode("overwrite").saveAsTable("dgtest.exchanges")
    spark.read.parquet(str(store_dir / "accounts")).write.mode("overwrite").saveAsTable("dgtest.accounts")
    source = SparkStore(spark, Source.parse("table:dgtest"))
    con = source.connect()
    attach_signals(con, source, source.derived(SIGNALS))
    got = account_features(con)
    local = Store.open(store_dir, create=False)
    duck = local.connect()
    attach_signals(duck, local, local.derived(SIGNALS))
    want = account_features(duck)
    assert got.account_ids.tolist() == want.account_ids.tolist()
    for name, values in want.features.items():
        np.testing.assert_allclose(got.features[name], values, rtol=1e-9, atol=1e-12, equal_nan=True, err_msg=name)
    source.close()


def test_leiden_per_connected_component_gives_the_drivers_communities(spark: Any) -> None:
    import numpy as np

    from distillguard.attribution.communities import communities
    from distillguard.engine.spark.graph import component_communities

    rng = np.random.default_rng(3)
    edges, weights = [], []
    for lo, hi in ((0, 12), (12, 20), (20, 34), (40, 43)):  # dense groups; 12-20 hangs off 0-12 by one edge
        for a in range(lo, hi):
            for b in range(a + 1, hi):
                if rng.random() < 0.7:
                    edges.append((a, b))
                    weights.append(float(rng.uniform(0.3, 1.0)))
    edges.append((3, 15))
    weights.append(0.3)
    names = [f"acct_{i:03d}" for i in range(44)]
    want = communities(names, edges, weights)
    got = component_communities(spark, names, edges, weights)
    assert sorted(map(sorted, got)) == sorted(map(sorted, want))
