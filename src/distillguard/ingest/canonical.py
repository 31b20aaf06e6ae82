"""The canonical exchange log: JSON Lines, plain or .gz/.zst.

:meth:`CanonicalFormat.read` is the plain per-line reader (used by replay and other
callers); :func:`distillguard.ingest.ingest` parses large canonical inputs in worker
processes (:mod:`distillguard.ingest.parallel`) with the same per-line code.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

from distillguard.ingest.base import IngestFormat, Line, open_binary, parse_line


class CanonicalFormat(IngestFormat):
    name = "canonical"

    @classmethod
    def sniff(cls, path: Path, head: bytes) -> bool:
        """Any of the first 20 lines looks like an exchange: one malformed first line must not make a whole log
        unreadable (it is quarantined like any other bad line)."""
        lines = head.lstrip().split(b"\n", 20)[:20]
        return any(line.lstrip().startswith(b"{") and b'"account_id"' in line and b'"ts"' in line for line in lines)

    def read(self, paths: Sequence[Path]) -> Iterator[Line]:
        for path in paths:
            source = str(path)
            with open_binary(path) as handle:
                for number, raw in enumerate(handle, 1):
                    if raw.strip():
                        yield parse_line(source, number, raw)
