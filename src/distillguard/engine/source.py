"""Where detection reads from: a store directory, a store URI, or catalog / Delta / Iceberg tables.

Kept free of pyspark so the CLI can tell a local store from a Spark-only source without importing Spark.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Source:
    """Where exchanges and accounts are: ``kind`` is store (directory or URI), table or a format name."""

    kind: str
    location: str

    @classmethod
    def parse(cls, value: str | Path) -> Source:
        text = str(value)
        for prefix in ("table:", "delta:", "iceberg:"):
            if text.startswith(prefix):
                return cls(prefix[:-1], text[len(prefix):])
        return cls("store", text)

    @property
    def local(self) -> Path | None:
        """The directory of a local store, else None."""
        if self.kind != "store":
            return None
        text = self.location[len("file:"):] if self.location.startswith("file:") else self.location
        if "://" in text:
            return None
        return Path(text)

    def describe(self) -> str:
        return f"{self.kind}:{self.location}" if self.kind != "store" else self.location


def is_local_store(value: str | Path) -> bool:
    """Whether ``value`` names a local store directory (anything else only the Spark engine can read)."""
    return Source.parse(value).local is not None
