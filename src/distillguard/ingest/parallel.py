"""Parse canonical JSON Lines in worker processes.

Per line, ``orjson.loads`` + :func:`~distillguard.model.flatten` + Arrow conversion
is CPU-bound Python (~15 us), so one process cannot keep up with a large log. Workers
run exactly that per-line code on chunks of raw lines (one definition of validation,
so errors are identical to the serial path) and hand back Arrow IPC plus the
positions and reasons of the bad lines; the parent keeps the raw bytes for the
quarantine, dedupes and writes. At most ``2 * workers`` chunks are in flight, so
memory is bounded whatever the input size.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import orjson
import pyarrow as pa

from distillguard.ingest.base import open_binary
from distillguard.model import FieldError, flatten, rows_to_table

CHUNK_LINES = 8_000


@dataclass
class ParsedChunk:
    """A chunk of one file: its raw lines, the good rows as a table, and the bad lines."""

    source: str
    numbers: list[int]  # 1-based line numbers of the non-blank lines
    raws: list[bytes]
    table: pa.Table
    errors: list[tuple[int, str, str]]  # (index into raws, field, reason), ascending


def parse_chunk(raws: Sequence[bytes]) -> tuple[pa.Table, list[tuple[int, str, str]]]:
    """The per-line path over a chunk: good rows as a table, bad lines as (index, field, reason)."""
    rows: list[tuple] = []
    errors: list[tuple[int, str, str]] = []
    for index, raw in enumerate(raws):
        try:
            rows.append(flatten(orjson.loads(raw)))
        except orjson.JSONDecodeError as exc:
            errors.append((index, "<record>", f"invalid JSON: {exc}"))
        except FieldError as exc:
            errors.append((index, exc.field, exc.reason))
    return rows_to_table(rows), errors


def _worker(raws: list[bytes]) -> tuple[bytes, list[tuple[int, str, str]]]:
    table, errors = parse_chunk(raws)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes(), errors


def split_chunks(paths: Sequence[Path], size: int) -> Iterator[tuple[str, list[int], list[bytes]]]:
    for path in paths:
        numbers: list[int] = []
        raws: list[bytes] = []
        with open_binary(path) as handle:
            for number, raw in enumerate(handle, 1):
                if not raw.strip():
                    continue
                numbers.append(number)
                raws.append(raw)
                if len(raws) >= size:
                    yield str(path), numbers, raws
                    numbers, raws = [], []
        if raws:
            yield str(path), numbers, raws


def read_parallel(paths: Sequence[Path], workers: int, chunk_lines: int = CHUNK_LINES) -> Iterator[ParsedChunk]:
    """Parsed chunks in input order, parsed by ``workers`` processes."""
    # forkserver: the parent may hold DuckDB/Arrow threads, which fork() would copy half-alive
    context = multiprocessing.get_context("forkserver")
    in_flight: deque[tuple[str, list[int], list[bytes], Future]] = deque()
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        for source, numbers, raws in split_chunks(paths, chunk_lines):
            in_flight.append((source, numbers, raws, pool.submit(_worker, raws)))
            if len(in_flight) >= 2 * workers:
                yield _collect(*in_flight.popleft())
        while in_flight:
            yield _collect(*in_flight.popleft())


def _collect(source: str, numbers: list[int], raws: list[bytes], future: Future) -> ParsedChunk:
    payload, errors = future.result()
    table = pa.ipc.open_stream(payload).read_all()
    return ParsedChunk(source, numbers, raws, table, errors)
