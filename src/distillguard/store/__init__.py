"""Embedded event store (Parquet + DuckDB)."""

from distillguard.store.idindex import IdIndex
from distillguard.store.store import Store, StoreError

__all__ = ["IdIndex", "Store", "StoreError"]
