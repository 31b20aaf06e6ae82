"""The one-method interface every log format implements.

A format turns files into :class:`Line` items: a canonical record (see
docs/exchange-log.md) or the reason it could not be mapped, always with the
source file, line number and verbatim text so bad input can be quarantined and
reported precisely. Validation of the canonical record itself happens once,
centrally, in :func:`distillguard.model.flatten`.
"""

from __future__ import annotations

import gzip
import io
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

import orjson
import zstandard

from distillguard.model.exchange import json_error


@dataclass(frozen=True, slots=True)
class Line:
    """One input unit: where it came from, its verbatim bytes, and a record or an error."""

    source: str
    line: int
    raw: bytes
    record: dict[str, Any] | None = None
    error: str | None = None


class IngestFormat(ABC):
    """A log format. Subclasses set ``name`` and implement :meth:`read`.

    ``options`` are format-specific settings from the CLI (``--option key=value``),
    e.g. the OTel attribute that carries the account id.
    """

    name: ClassVar[str]

    def __init__(self, **options: str) -> None:
        self.options = options
        self.skipped = 0  # input units that are not exchanges (e.g. non-GenAI spans), reported not hidden

    @classmethod
    def sniff(cls, path: Path, head: bytes) -> bool:
        """Whether ``path`` (whose first decompressed bytes are ``head``) is in this format."""
        return False

    @abstractmethod
    def read(self, paths: Sequence[Path]) -> Iterator[Line]:
        """Yield every line of ``paths`` in order; never raise on bad content, yield an error Line."""


def parse_line(source: str, number: int, raw: bytes) -> Line:
    """One non-blank line as a record, or the reason it is not JSON (invalid UTF-8 located in the line)."""
    try:
        return Line(source, number, raw, record=orjson.loads(raw))
    except orjson.JSONDecodeError as exc:
        field, reason = json_error(raw, exc)
        return Line(source, number, raw, error=f"{field}: {reason}")


def open_binary(path: Path) -> BinaryIO:
    """Open a possibly compressed file (.gz, .zst) for buffered binary reading."""
    suffix = path.suffix.lower()
    if suffix == ".gz":
        return gzip.open(path, "rb")  # type: ignore[return-value]
    if suffix in (".zst", ".zstd"):
        raw = path.open("rb")
        reader = zstandard.ZstdDecompressor().stream_reader(raw, closefd=True)
        return io.BufferedReader(reader, buffer_size=1 << 20)  # type: ignore[arg-type]
    return path.open("rb", buffering=1 << 20)


def read_head(path: Path, size: int = 65536) -> bytes:
    with open_binary(path) as handle:
        return handle.read(size)
