"""The engine interface: one detection pipeline, executed by an embedded or a distributed query engine.

An engine runs :func:`distillguard.pipeline.run_detection` -- signals, features, scores, attribution,
decisions, outputs -- over a store. What differs is only where the SQL and the per-exchange Python run:
DuckDB in this process (:class:`~distillguard.engine.duckdb.DuckDBEngine`, the default) or a Spark cluster
(:class:`~distillguard.engine.spark.SparkEngine`). Engines register by name (:func:`register`) and the
CLI picks one with ``distillguard detect --engine NAME``.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from distillguard.errors import DistillguardError

if TYPE_CHECKING:
    from distillguard.pipeline import DetectionResult, Progress


class Engine(ABC):
    """Executes detection over a store; ``detect`` writes the same outputs whichever engine runs it."""

    name: ClassVar[str]

    @abstractmethod
    def detect(self, store: str | os.PathLike[str], out_dir: Path, *, model: Any = None, intel: Any = None,
               decisions: Any = None, progress: Progress | None = None, memory_limit: str | None = None
               ) -> DetectionResult:
        """Score every account of ``store`` and write accounts.csv, campaigns.json, context.json, report.html."""

    def close(self) -> None:  # noqa: B027 - engines without resources need nothing
        """Release what the engine holds (a Spark session it started)."""

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


ENGINES: dict[str, Callable[..., Engine]] = {}


class EngineError(DistillguardError, ValueError):
    """An unknown engine, or one whose dependencies are not installed."""


def register(name: str, factory: Callable[..., Engine]) -> None:
    """Make ``factory(**options)`` available as engine ``name``."""
    ENGINES[name] = factory


def get_engine(name: str, **options: Any) -> Engine:
    """A new engine ``name`` (``duckdb``, ``spark``, or a registered one) built with ``options``."""
    factory = ENGINES.get(name)
    if factory is None:
        raise EngineError(f"unknown engine {name!r}; choose one of {', '.join(sorted(ENGINES))}")
    return factory(**options)
