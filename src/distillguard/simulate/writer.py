"""Output files: day-sharded exchange logs, accounts, ground-truth labels and run metadata.

Every writer is deterministic (no timestamps or file names inside gzip headers, fixed zstd
level, sorted rows) so the same seed yields byte-identical output.
"""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Iterable
from pathlib import Path
from typing import Any, BinaryIO

import orjson
import zstandard

from distillguard.model import format_ts
from distillguard.simulate.accounts import Account

COMPRESSIONS = ("zst", "gz", "none")
SUFFIX = {"zst": ".jsonl.zst", "gz": ".jsonl.gz", "none": ".jsonl"}
LABEL_HEADER = ("account_id", "label", "campaign", "population", "actor")


class ShardWriter:
    """One JSON Lines file per UTC day, streamed through the chosen compressor."""

    def __init__(self, directory: Path, compress: str) -> None:
        if compress not in COMPRESSIONS:
            raise ValueError(f"compress must be one of {', '.join(COMPRESSIONS)}; got {compress!r}")
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.compress = compress
        self.files: list[Path] = []
        self._raw: BinaryIO | None = None
        self._stream: Any = None

    def open(self, day_name: str) -> None:
        self.close()
        path = self.directory / f"{day_name}{SUFFIX[self.compress]}"
        self._raw = path.open("wb")
        if self.compress == "zst":
            # One worker thread takes compression off the rendering thread; zstd's multi-threaded
            # output is identical for any worker count >= 1, so the bytes stay reproducible.
            self._stream = zstandard.ZstdCompressor(level=3, threads=1).stream_writer(self._raw, closefd=False)
        elif self.compress == "gz":
            self._stream = gzip.GzipFile(filename="", mode="wb", fileobj=self._raw, mtime=0, compresslevel=6)
        else:
            self._stream = self._raw
        self.files.append(path)

    def write(self, data: bytes | bytearray) -> None:
        """Append complete, newline-terminated JSON lines."""
        if data:
            self._stream.write(data)

    def close(self) -> None:
        if self._stream is not None and self._stream is not self._raw:
            self._stream.close()
        if self._raw is not None:
            self._raw.close()
        self._raw = self._stream = None


def write_accounts(path: Path, accounts: Iterable[Account]) -> None:
    with path.open("wb") as handle:
        for acct in sorted(accounts, key=lambda a: a.account_id):
            record = acct.record()
            record["created_at"] = format_ts(record["created_at"])
            handle.write(orjson.dumps(record) + b"\n")


def write_labels(path: Path, accounts: Iterable[Account]) -> None:
    buffer = io.StringIO()
    out = csv.writer(buffer, lineterminator="\n")
    out.writerow(LABEL_HEADER)
    for acct in sorted(accounts, key=lambda a: a.account_id):
        out.writerow((acct.account_id, acct.behaviour.label, acct.campaign, acct.behaviour.name, acct.actor))
    path.write_text(buffer.getvalue(), encoding="utf-8")


def write_json(path: Path, data: dict) -> None:
    path.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2) + b"\n")
