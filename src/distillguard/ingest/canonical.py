"""The canonical exchange log: JSON Lines, plain or .gz/.zst."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import orjson

from distillguard.ingest.base import IngestFormat, Line, open_binary


class CanonicalFormat(IngestFormat):
    name = "canonical"

    @classmethod
    def sniff(cls, path: Path, head: bytes) -> bool:
        first = head.lstrip().split(b"\n", 1)[0]
        return first.startswith(b"{") and b'"account_id"' in first and b'"ts"' in first

    def read(self, paths: Sequence[Path]) -> Iterator[Line]:
        for path in paths:
            source = str(path)
            with open_binary(path) as handle:
                for number, raw in enumerate(handle, 1):
                    if not raw.strip():
                        continue
                    try:
                        record = orjson.loads(raw)
                    except orjson.JSONDecodeError as exc:
                        yield Line(source, number, raw, error=f"<record>: invalid JSON: {exc}")
                        continue
                    yield Line(source, number, raw, record=record)
