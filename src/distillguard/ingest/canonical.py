"""The canonical exchange log: JSON Lines, plain or .gz/.zst.

:meth:`CanonicalFormat.read` is the plain per-line reader (used by replay and other
callers); :func:`distillguard.ingest.ingest` parses large canonical inputs in worker
processes (:mod:`distillguard.ingest.parallel`) with the same per-line code.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

from distillguard.ingest.base import IngestFormat, Line, parse_line


class CanonicalFormat(IngestFormat):
    name = "canonical"

    @classmethod
    def sniff(cls, path: Path, head: bytes) -> bool:
        """Any of the first 20 lines looks like an exchange: one malformed first line must not make a whole log
        unreadable (it is quarantined like any other bad line)."""
        lines = head.lstrip().split(b"\n", 20)[:20]
        return any(line.lstrip().startswith(b"{") and b'"account_id"' in line and b'"ts"' in line for line in lines)

    def read(self, paths: Sequence[Path]) -> Iterator[Line]:
        """Every line; a damaged compressed file ends with an error line for the damage (see ``damaged``)."""
        for path in paths:
            source = str(path)
            seen = len(self.damaged)
            with self.open(path) as handle:
                for number, raw in enumerate(handle, 1):
                    if raw.strip():
                        yield parse_line(source, number, raw)
            for damage in self.damaged[seen:]:
                yield Line(source, damage.line, damage.partial, error=f"<file>: {damage.message()}")
