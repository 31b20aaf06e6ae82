"""``SparkEngine``: :func:`distillguard.pipeline.run_detection` with Spark doing the data work.

What runs where:

* signals: a ``mapInArrow`` job -- each Arrow batch of exchanges through ``Store``'s own derivation
  (``SIGNALS.derive``, the learned text classifiers included) on the executors;
* features: ``features.stats.batch_stats``'s queries (``SUMS``, ``DISTINCTS`` K-minimum-values sketches, the
  inter-arrival window, hour and day activity, per-model counts), transpiled to Spark SQL; only the
  per-account results come back to the driver, where ``features_from_stats`` (numpy, shared with the gateway)
  turns them into features;
* scores and decisions: the same numpy code on the driver, over one row per account;
* attribution: ``attribution.find_campaigns``'s SQL -- the per-account folds of every exchange, the key
  tables, proposed pairs (cliques and random circulants, ordered by DuckDB's own ``hash`` through an Arrow
  UDF) and the pair weighing -- as Spark jobs; the MinHash signatures, Leiden and the campaign descriptions read
  the per-account and per-pair results on the driver, as with DuckDB; ``communities="components"`` runs Leiden
  per connected component on the executors instead (:mod:`distillguard.engine.spark.graph`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from distillguard.engine.base import Engine
from distillguard.engine.spark.session import spark_session
from distillguard.engine.spark.store import Source, SparkStore

if TYPE_CHECKING:
    from distillguard.store import Store


class SparkEngine(Engine):
    """Detection on Spark. ``master`` is a Spark master URL (``local[2]``, ``spark://host:7077``, ``yarn``);
    without it an active session is used (spark-submit, a Databricks notebook) or ``local[*]`` is started.
    ``conf`` adds Spark settings; ``spark`` passes a ready session. ``communities`` is ``"driver"`` (Leiden on
    the whole graph in the driver, exactly as the DuckDB engine) or ``"components"`` (connected components as a
    Spark job, then Leiden per component on the executors)."""

    name = "spark"

    def __init__(self, master: str | None = None, conf: Mapping[str, str] | None = None, spark: Any = None,
                 communities: str = "driver", batch_rows: int | None = None) -> None:
        if communities not in ("driver", "components"):
            raise ValueError(f"communities must be 'driver' or 'components', not {communities!r}")
        self.master = master
        self.conf = dict(conf or {})
        self._spark = spark
        self._owned = False
        self.communities = communities
        self.batch_rows = batch_rows
        self.last_store: SparkStore | None = None

    @property
    def spark(self) -> Any:
        if self._spark is None:
            from pyspark.sql import SparkSession

            self._owned = SparkSession.getActiveSession() is None or self.master is not None
            self._spark = spark_session(self.master, self.conf)
        return self._spark

    def open(self, store: str | os.PathLike[str]) -> SparkStore:
        """The store (directory, URI or ``table:``/``delta:``/``iceberg:`` source) as ``run_detection`` reads it."""
        options = {"batch_rows": self.batch_rows} if self.batch_rows else {}
        return SparkStore(self.spark, Source.parse(os.fspath(store)), **options)

    def detect(self, store: str | os.PathLike[str], out_dir: Path, *, model: Any = None, intel: Any = None,
               decisions: Any = None, progress: Any = None, memory_limit: str | None = None) -> Any:
        from distillguard.pipeline import run_detection

        source = self.open(store)
        self.last_store = source
        try:
            with self._communities():
                # SparkStore is duck-typed to the part of Store run_detection reads (tests/test_spark.py)
                return run_detection(cast("Store", source), Path(out_dir), intel=intel, progress=progress, model=model,
                                     memory_limit=memory_limit, decisions=decisions)
        finally:
            source.close()

    @contextlib.contextmanager
    def _communities(self) -> Iterator[None]:
        if self.communities == "driver":
            yield
            return
        from distillguard.engine.spark.graph import distributed_communities

        with distributed_communities(self.spark):
            yield

    def close(self) -> None:
        if self._spark is not None and self._owned:
            self._spark.stop()
        self._spark = None
