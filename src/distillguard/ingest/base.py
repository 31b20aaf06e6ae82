"""The one-method interface every log format implements, and damage-tolerant reading of compressed files.

A format turns files into :class:`Line` items: a canonical record (see
docs/exchange-log.md) or the reason it could not be mapped, always with the
source file, line number and verbatim text so bad input can be quarantined and
reported precisely. Validation of the canonical record itself happens once,
centrally, in :func:`distillguard.model.flatten`.

A compressed file can be damaged (truncated by a full disk or an interrupted copy, a flipped bit):
:func:`open_binary` then reads it as if it ended at the last complete line before the damage, and
reports a :class:`Damage` (where, why, and the incomplete line it withheld), so every complete line is
kept and the caller can go on with its other files.
"""

from __future__ import annotations

import gzip
import io
import zlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

import orjson
import zstandard

from distillguard.errors import DistillguardError
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
        self.damaged: list[Damage] = []  # compressed files that ended early; read up to their last whole line

    def open(self, path: Path) -> BinaryIO:
        """:func:`open_binary`, recording damage in :attr:`damaged` instead of raising."""
        return open_binary(path, self.damaged.append)

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


@dataclass(frozen=True)
class Damage:
    """Where a compressed file stopped being readable. Everything before ``line`` was read; ``partial`` holds
    the bytes of the incomplete line the damage cut (withheld from the reader, empty at a line boundary)."""

    source: str
    offset: int  # bytes of decompressed data intact (the partial line included)
    line: int  # number of the line the damage cut: lines before it are complete
    reason: str
    partial: bytes = b""

    def message(self) -> str:
        cut = (f"line {self.line} is incomplete ({len(self.partial)} bytes kept in quarantine)" if self.partial
               else f"it ends cleanly after line {self.line - 1}")
        suspect = (" (a checksum covers all of them: they may hold corrupt bytes, and bad ones are quarantined)"
                   if "CRC" in self.reason or "checksum" in self.reason else "")
        return (f"{self.source}: damaged at byte {self.offset:,} of the decompressed data: {self.reason}; "
                f"the {self.line - 1:,} lines before it were read{suspect}, {cut}, nothing after it could be read")


class DamagedFile(DistillguardError, OSError):
    """A compressed file is damaged and the caller gave no ``on_damage`` to carry on."""

    def __init__(self, damage: Damage) -> None:
        super().__init__(damage.message())
        self.damage = damage


_DAMAGE_ERRORS = (EOFError, OSError, zlib.error, zstandard.ZstdError)  # gzip.BadGzipFile is an OSError


class _LinesUntilDamage(io.RawIOBase):
    """A decompressed stream delivered in whole lines, which ends at the first decompression error.

    Bytes after the last newline are held back until the next newline (or a clean end) arrives, so at the
    damage the incomplete line can be withheld and handed to ``on_damage`` with the offset and reason.
    """

    def __init__(self, inner: BinaryIO, source: str, on_damage: Callable[[Damage], None] | None) -> None:
        self._inner = inner
        self._source = source
        self._on_damage = on_damage
        self._ready = memoryview(b"")
        self._pending = b""
        self._offset = 0  # decompressed bytes taken from inner
        self._newlines = 0  # newlines in what was made ready (all delivered before the next fill)
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._ready and not self._done:
            self._fill()
        n = min(len(buffer), len(self._ready))
        buffer[:n] = self._ready[:n]
        self._ready = self._ready[n:]
        return n

    def _fill(self) -> None:
        try:  # read1: one decompression step, so what preceded the damage is delivered before it raises
            data = self._inner.read1(1 << 20) if hasattr(self._inner, "read1") else self._inner.read(1 << 20)
        except _DAMAGE_ERRORS as exc:
            self._done = True
            reason = str(exc) or type(exc).__name__
            damage = Damage(self._source, self._offset, self._newlines + 1, reason, self._pending)
            self._pending = b""
            if self._on_damage is None:
                raise DamagedFile(damage) from None
            self._on_damage(damage)
            return
        if not data:
            self._done = True
            self._ready, self._pending = memoryview(self._pending), b""
            return
        self._offset += len(data)
        cut = data.rfind(b"\n") + 1
        if cut:
            ready = self._pending + data[:cut] if self._pending else data[:cut]
            self._newlines += ready.count(b"\n")
            self._ready = memoryview(ready)
            self._pending = data[cut:]
        else:
            self._pending += data

    def close(self) -> None:
        self._inner.close()
        super().close()


class _ZstdFrames(io.RawIOBase):
    """Zstandard frames one after the other. Unlike ``stream_reader``, a truncated last frame is an error
    (``stream_reader`` ends silently), so a cut ``.zst`` is reported, not taken as complete."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._decompressor = zstandard.ZstdDecompressor()
        self._frame = self._decompressor.decompressobj()
        self._started = False  # the current frame has taken input
        self._out = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._out:
            chunk = self._raw.read(1 << 13)  # small steps: output before a corrupt block is delivered first
            if not chunk:
                if self._started:
                    raise EOFError("zstd frame truncated: the file ends inside a frame")
                return 0
            while chunk:
                self._started = True
                self._out += self._frame.decompress(chunk)
                if not self._frame.eof:
                    break
                chunk = self._frame.unused_data  # the next frame starts in this chunk
                self._frame = self._decompressor.decompressobj()
                self._started = False
        n = min(len(buffer), len(self._out))
        buffer[:n] = self._out[:n]
        self._out = self._out[n:]
        return n

    def close(self) -> None:
        self._raw.close()
        super().close()


def open_binary(path: Path, on_damage: Callable[[Damage], None] | None = None) -> BinaryIO:
    """Open a possibly compressed file (.gz, .zst) for buffered binary reading.

    A damaged compressed file (truncated, failing its CRC, corrupt) reads as if it ended after its last
    complete line before the damage; ``on_damage`` then receives the :class:`Damage` (without it,
    :class:`DamagedFile` is raised at that point).
    """
    suffix = path.suffix.lower()
    if suffix == ".gz":
        inner: BinaryIO = gzip.open(path, "rb")  # type: ignore[assignment]  # noqa: SIM115 (closed by the reader)
    elif suffix in (".zst", ".zstd"):
        inner = _ZstdFrames(path.open("rb"))  # type: ignore[assignment]
    else:
        return path.open("rb", buffering=1 << 20)
    reader = _LinesUntilDamage(inner, str(path), on_damage)
    return io.BufferedReader(reader, buffer_size=1 << 20)


def read_head(path: Path, size: int = 65536, damaged: list[Damage] | None = None) -> bytes:
    """The first ``size`` bytes (decompressed); a damaged file gives what is readable (into ``damaged``)."""
    with open_binary(path, (damaged if damaged is not None else []).append) as handle:
        return handle.read(size)
