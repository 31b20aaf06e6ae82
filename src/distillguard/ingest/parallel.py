"""Parse canonical JSON Lines in worker processes.

Per line, decoding + Arrow conversion is CPU-bound Python (~20 us for a 3 KB line),
and so is Parquet encoding, so one process cannot keep up with a large log. Workers
run exactly the per-line code of the serial path (:func:`parse_chunk`: one definition
of validation, so errors are identical) on chunks of raw lines, write the good rows to
the store's staging area and hand back only the bad lines, the id hashes and the
staged files. The parent dedupes on the hashes and publishes the files in input
order, so no table crosses a process boundary.
"""

from __future__ import annotations

import gc
import multiprocessing
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa

from distillguard.ingest.base import open_binary
from distillguard.ingest.fastpath import FALLBACK, decode_row
from distillguard.model import FieldError, flatten, rows_to_table
from distillguard.store import Store
from distillguard.store.store import Derive, StagedPart

CHUNK_BYTES = 32 << 20  # input bytes per chunk: bounds memory whatever the line length (~10k exchanges)


def parse_chunk(raws: Sequence[bytes]) -> tuple[pa.Table, list[tuple[int, str, str]]]:
    """The per-line path over a chunk: good rows as a table, bad lines as (index, field, reason).

    Lines in the common shape take the compiled decoder; the rest, and every bad line, go
    through ``orjson`` + :func:`flatten`, which defines what is accepted and the errors.
    The cyclic garbage collector is paused meanwhile: a chunk allocates hundreds of thousands
    of acyclic objects, and its collections over them cost a third of the parse time.
    """
    with _collector_paused():
        rows, errors = _parse_lines(raws)
        return rows_to_table(rows), errors


@contextmanager
def _collector_paused() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _parse_lines(raws: Sequence[bytes]) -> tuple[list[tuple], list[tuple[int, str, str]]]:
    rows: list[tuple] = []
    errors: list[tuple[int, str, str]] = []
    for index, raw in enumerate(raws):
        try:
            rows.append(decode_row(raw))
            continue
        except FALLBACK:
            pass
        try:
            rows.append(flatten(orjson.loads(raw)))
        except orjson.JSONDecodeError as exc:
            errors.append((index, "<record>", f"invalid JSON: {exc}"))
        except FieldError as exc:
            errors.append((index, exc.field, exc.reason))
    return rows, errors


@dataclass
class StagedChunk:
    """A chunk parsed and written to the store's staging area by a worker, awaiting dedupe and publication."""

    source: str
    lines: int  # non-blank lines in the chunk
    bad: list[tuple[int, str, str, bytes]]  # (line number, field, reason, raw line), ascending
    hashes: np.ndarray  # id_hash of the good rows, in input order
    parts: list[StagedPart]


@dataclass(frozen=True)
class Span:
    """Whole lines of an uncompressed file, by position: a worker reads them itself."""

    path: str
    start: int
    length: int

    def read(self) -> bytes:
        with open(self.path, "rb") as handle:
            handle.seek(self.start)
            return handle.read(self.length)


def read_blocks(paths: Sequence[Path], size: int | None = None) -> Iterator[tuple[str, int, bytes | Span]]:
    """Each file as blocks of whole lines of about ``size`` bytes: (file, number of the block's first line, block).

    Blocks, not lines, cross to the workers, so the parent does no per-line work; a block of an
    uncompressed file crosses as a :class:`Span`, so its bytes are not copied through the parent either.
    """
    size = size or CHUNK_BYTES
    for path in paths:
        if path.suffix.lower() in (".gz", ".zst", ".zstd"):
            yield from _decompressed_blocks(path, size)
        else:
            yield from _spans(path, size)


def _decompressed_blocks(path: Path, size: int) -> Iterator[tuple[str, int, bytes]]:
    number, rest = 1, b""
    with open_binary(path) as handle:
        while data := handle.read(size):
            data = rest + data if rest else data
            cut = data.rfind(b"\n") + 1
            block, rest = data[:cut], data[cut:]
            if block:
                yield str(path), number, block
                number += block.count(b"\n")
    if rest:
        yield str(path), number, rest


def _spans(path: Path, size: int) -> Iterator[tuple[str, int, Span]]:
    """Line-aligned spans, found by scanning the file through one reused buffer (no per-block allocation)."""
    buffer = bytearray(size)
    number, start, held = 1, 0, 0
    with path.open("rb", buffering=0) as handle:
        while True:
            if held == len(buffer):  # one line longer than the buffer: grow it
                buffer.extend(bytes(len(buffer)))
            with memoryview(buffer) as view:
                got = handle.readinto(view[held:])
            held += got
            cut = buffer.rfind(b"\n", 0, held) + 1 if got else held  # at the end, an unterminated last line
            if cut:
                yield str(path), number, Span(str(path), start, cut)
                number += buffer.count(b"\n", 0, cut)
                start += cut
                buffer[:held - cut] = buffer[cut:held]
                held -= cut
            if not got:
                return


def block_lines(first: int, block: bytes | Span) -> tuple[list[int], list[bytes]]:
    """The non-blank lines of a block and their 1-based numbers in the file."""
    if isinstance(block, Span):
        block = block.read()
    numbers: list[int] = []
    raws: list[bytes] = []
    for offset, raw in enumerate(block.split(b"\n")):
        if raw and not raw.isspace():
            numbers.append(first + offset)
            raws.append(raw)
    return numbers, raws


def _stage_worker(first: int, block: bytes | Span, root: str, content: bool, derive: Derive | None
                  ) -> tuple[int, list[tuple[int, str, str, bytes]], np.ndarray, list[StagedPart]]:
    numbers, raws = block_lines(first, block)
    del block
    table, errors = parse_chunk(raws)
    parts = Store(Path(root), content).stage_exchanges(table, derive)
    hashes = table.column("id_hash").to_numpy()
    return len(raws), [(numbers[index], field, reason, raws[index]) for index, field, reason in errors], hashes, parts


def stage_parallel(paths: Sequence[Path], store: Store, workers: int, derive: Derive | None = None
                   ) -> Iterator[StagedChunk]:
    """Chunks parsed and staged by ``workers`` processes, yielded in input order.

    Workers write the Parquet files themselves, so the parent only reads blocks and
    publishes; at most ``2 * workers`` chunks are in flight, so memory is bounded
    whatever the input size.
    """
    # forkserver: the parent may hold DuckDB/Arrow threads, which fork() would copy half-alive
    context = multiprocessing.get_context("forkserver")
    in_flight: deque[tuple[str, Future]] = deque()
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        for source, first, block in read_blocks(paths):
            in_flight.append((source, pool.submit(_stage_worker, first, block, str(store.root), store.content,
                                                  derive)))
            if len(in_flight) >= 2 * workers:
                yield _collect(*in_flight.popleft())
        while in_flight:
            yield _collect(*in_flight.popleft())


def _collect(source: str, future: Future) -> StagedChunk:
    return StagedChunk(source, *future.result())
