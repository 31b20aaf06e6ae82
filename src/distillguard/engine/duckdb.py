"""The embedded engine: Parquet + DuckDB in this process (the default)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from distillguard.engine.base import Engine


class DuckDBEngine(Engine):
    """:func:`distillguard.pipeline.run_detection` over a local store directory."""

    name = "duckdb"

    def __init__(self, **options: Any) -> None:
        if options:
            raise TypeError(f"the duckdb engine takes no options (got {', '.join(options)})")

    def detect(self, store: str | os.PathLike[str], out_dir: Path, *, model: Any = None, intel: Any = None,
               decisions: Any = None, progress: Any = None, memory_limit: str | None = None) -> Any:
        from distillguard.pipeline import run_detection
        from distillguard.store import Store
        from distillguard.store.store import StoreError

        root = Path(store)
        if not (root / "store.json").exists():
            raise StoreError(f"{root}: not a distillguard store (no store.json)")
        return run_detection(Store.open(root, create=False), Path(out_dir), intel=intel, progress=progress,
                             model=model, memory_limit=memory_limit, decisions=decisions)
