"""The Spark engine: detection as Spark jobs (``distillguard detect --engine spark [--master URL]``)."""

from __future__ import annotations

import pyspark  # noqa: F401 - fail at import when pyspark is missing, with the engine registry's message

from distillguard.engine.spark.engine import SparkEngine

__all__ = ["SparkEngine"]
