"""Parse canonical JSON Lines in worker processes.

Decoding and Parquet encoding are CPU-bound, so one process cannot keep up with a
large log. Workers run exactly the code of the serial path
(:func:`~distillguard.ingest.decode.decode_block`: one definition of validation, so
errors are identical) on blocks of whole lines, write the good rows to the store's
staging area and hand back only the bad lines, the id hashes and the staged files.
The parent dedupes on the hashes and publishes the files in input order, so no table
crosses a process boundary.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from distillguard.ingest import _lifeline
from distillguard.ingest.base import Damage, open_binary
from distillguard.ingest.decode import decode_block
from distillguard.store import Store
from distillguard.store.store import Derive, StagedPart

CHUNK_BYTES = 32 << 20  # input bytes per chunk: bounds memory whatever the line length (~10k exchanges)


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


def read_blocks(paths: Sequence[Path], size: int | None = None, on_damage: Callable[[Damage], None] | None = None
                ) -> Iterator[tuple[str, bytes | Span]]:
    """Each file as blocks of whole lines of about ``size`` bytes: (file, block).

    Blocks, not lines, cross to the workers, so the parent does no per-line work; a block of an
    uncompressed file crosses as a :class:`Span`, found by seeking, so the parent reads only the few
    bytes around each boundary. Lines are numbered by whoever consumes the blocks in order
    (:class:`LineNumbers`), from the newlines each decoded block reports. A damaged compressed file ends
    at its last complete line (see :func:`~distillguard.ingest.base.open_binary`; ``on_damage`` hears of it).
    """
    size = size or CHUNK_BYTES
    for path in paths:
        if path.suffix.lower() in (".gz", ".zst", ".zstd"):
            yield from _decompressed_blocks(path, size, on_damage)
        else:
            yield from _spans(path, size)


def load(block: bytes | Span) -> bytes:
    return block.read() if isinstance(block, Span) else block


class LineNumbers:
    """The number of each block's first line in its file, for blocks taken in input order."""

    def __init__(self) -> None:
        self._next: dict[str, int] = {}

    def take(self, source: str, newlines: int) -> int:
        first = self._next.get(source, 1)
        self._next[source] = first + newlines
        return first


def _decompressed_blocks(path: Path, size: int, on_damage: Callable[[Damage], None] | None
                         ) -> Iterator[tuple[str, bytes]]:
    rest = b""
    with open_binary(path, on_damage) as handle:
        while data := handle.read(size):
            data = rest + data if rest else data
            cut = data.rfind(b"\n") + 1
            block, rest = data[:cut], data[cut:]
            if block:
                yield str(path), block
    if rest:
        yield str(path), rest


def _spans(path: Path, size: int) -> Iterator[tuple[str, Span]]:
    """Line-aligned spans: seek ``size`` bytes on, then read on to the next newline."""
    total = path.stat().st_size  # a file still being appended to is read up to its size now
    start = 0
    with path.open("rb") as handle:
        while start < total:
            end = min(start + size, total)
            handle.seek(end)
            while end < total:  # a line longer than one read: keep reading
                piece = handle.read(1 << 16)
                cut = piece.find(b"\n")
                if cut >= 0 or not piece:
                    end = min(end + cut + 1, total) if cut >= 0 else total
                    break
                end += len(piece)
            yield str(path), Span(str(path), start, end - start)
            start = end


def _worker_init(ingest_pid: int) -> None:
    """Tie the worker's life to the ingest's (see :mod:`~distillguard.ingest._lifeline`: a ``kill -9`` of the
    ingest must not leave workers behind).

    Keep freed memory for reuse in a worker: each block allocates tens of MB afresh, and handing them
    back to the kernel and faulting them in again cost ~3 of ~20 us of CPU per exchange. Arrow allocates
    through malloc too, so both follow the same (glibc) thresholds; elsewhere this changes nothing."""
    _lifeline.die_with_parent()  # the parent is the forkserver, which itself dies with the ingest
    _lifeline.watch(ingest_pid)
    pa.set_memory_pool(pa.system_memory_pool())
    libc = ctypes.CDLL(None)  # the process's own symbols, libc's among them (find_library would run ldconfig)
    if hasattr(libc, "mallopt"):
        libc.mallopt(-3, 1 << 30)  # M_MMAP_THRESHOLD: large blocks from the heap, not fresh mmaps
        libc.mallopt(-1, 1 << 30)  # M_TRIM_THRESHOLD (an int): do not return the heap top after every block


def _stage_worker(block: bytes | Span, root: str, content: bool, derive: Derive | None
                  ) -> tuple[int, int, list[tuple[int, str, str, bytes]], np.ndarray, list[StagedPart]]:
    decoded = decode_block(load(block))
    parts = Store(Path(root), content).stage_exchanges(decoded.table, derive)
    hashes = decoded.table.column("id_hash").to_numpy()
    return decoded.lines, decoded.newlines, [(offset, field, reason, raw) for _, offset, field, reason, raw
                                             in decoded.bad], hashes, parts


def stage_parallel(paths: Sequence[Path], store: Store, workers: int, derive: Derive | None = None,
                   on_damage: Callable[[Damage], None] | None = None) -> Iterator[StagedChunk]:
    """Chunks parsed and staged by ``workers`` processes, yielded in input order.

    Workers write the Parquet files themselves, so the parent only finds block boundaries and
    publishes; at most ``2 * workers`` chunks are in flight, so memory is bounded
    whatever the input size.
    """
    # forkserver: the parent may hold DuckDB/Arrow threads, which fork() would copy half-alive. The server
    # imports this module once and forks workers from it, so they do not each pay ~0.6 s of imports; it
    # imports _forkserver_lifeline first, which ties its life to this process's.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["distillguard.ingest._forkserver_lifeline", __name__])
    numbers = LineNumbers()
    in_flight: deque[tuple[str, Future]] = deque()
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_worker_init,
                             initargs=(os.getpid(),)) as pool:
        for source, block in read_blocks(paths, on_damage=on_damage):
            in_flight.append((source, pool.submit(_stage_worker, block, str(store.root), store.content, derive)))
            if len(in_flight) >= 2 * workers:
                yield _collect(numbers, *in_flight.popleft())
        while in_flight:
            yield _collect(numbers, *in_flight.popleft())


def _collect(numbers: LineNumbers, source: str, future: Future) -> StagedChunk:
    lines, newlines, bad, hashes, parts = future.result()
    first = numbers.take(source, newlines)
    return StagedChunk(source, lines, [(first + offset, field, reason, raw) for offset, field, reason, raw in bad],
                       hashes, parts)
