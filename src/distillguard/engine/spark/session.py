"""The Spark session detection runs in, with the settings the DuckDB-equivalence of the SQL relies on."""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Mapping
from typing import Any

# pyspark checks the pandas version whenever an Arrow UDF is declared; the engine hands Arrow to Arrow and
# never converts through pandas
warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas", category=FutureWarning)

# Settings the transpiled SQL needs to mean what it means in DuckDB (see distillguard.engine.sql):
REQUIRED = {
    "spark.sql.session.timeZone": "UTC",  # date_trunc, epoch: DuckDB runs in UTC too (Store.connect)
    "spark.sql.ansi.enabled": "false",  # element_at out of range -> NULL, as list_extract
    "spark.sql.legacy.sizeOfNull": "false",  # size(NULL) is NULL, as len(NULL) (-1 with ANSI off otherwise)
    # localCheckpoint of a UNION (INSERT INTO a temp table) fails in constraint rewriting (Spark 4.x:
    # NoSuchElementException in UnionBase.rewriteConstraints); the stages' queries gain nothing from it
    "spark.sql.constraintPropagation.enabled": "false",
}
# Settings that only make it work well: Arrow for the Python stages, partition columns as text (DuckDB's
# hive partitions), no UI port per test run.
DEFAULTS = {
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.sources.partitionColumnTypeInference.enabled": "false",
    "spark.sql.adaptive.enabled": "true",
    "spark.ui.showConsoleProgress": "false",
}
LOCAL_DEFAULTS = {
    "spark.ui.enabled": "false",
    "spark.sql.shuffle.partitions": "8",  # AQE coalesces further; 200 tiny tasks cost seconds on one machine
    "spark.driver.memory": "4g",
}


def is_local(master: str | None) -> bool:
    return master is None or master.startswith("local")


def spark_session(master: str | None = None, conf: Mapping[str, str] | None = None,
                  app_name: str = "distillguard") -> Any:
    """A session for detection: an active one is reused (a notebook's) with the required settings applied;
    otherwise one is built for ``master`` (when None: spark-submit's ``--master``, else ``local[*]``).

    For a local master the Python workers run this interpreter (``PYSPARK_PYTHON``), so they import the same
    distillguard, text model weights and DuckDB as the driver. On a cluster the executors' Python is the
    cluster's business (docs/spark.md).
    """
    from pyspark import SparkConf
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None and master is None:
        for key, value in {**(conf or {}), **REQUIRED}.items():  # the required settings win, as below
            active.conf.set(key, value)
        return active
    # under spark-submit the master (and the rest) come in through SparkConf: keep them
    master = master or SparkConf().get("spark.master", None) or "local[*]"
    if is_local(master):
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(app_name).master(master)
    settings = {**DEFAULTS, **(LOCAL_DEFAULTS if is_local(master) else {}), **(conf or {}), **REQUIRED}
    for key, value in settings.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(os.environ.get("DISTILLGUARD_SPARK_LOG_LEVEL", "ERROR"))
    for key, value in REQUIRED.items():  # getOrCreate may have returned a session built elsewhere
        spark.conf.set(key, value)
    return spark
