"""A block of canonical lines -> exchange table and bad lines: compiled where it can be, Python where it must.

The compiled decoder (``_native/columnar.c``) handles the common shape of a line in C and writes
the columns straight into Arrow buffers; it hands back every other line, and Python decides
those (:func:`parse_chunk`: msgspec's fast path, then
:func:`~distillguard.model.flatten`, which defines what is accepted and every error). Without a
C compiler at install time the extension is absent and the whole block goes through Python:
same table, same errors, ~3x the CPU.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from distillguard.ingest.fastpath import FALLBACK, decode_row
from distillguard.model import COLUMNS, EXCHANGE_SCHEMA, FieldError, rows_to_table
from distillguard.model.exchange import flatten_json

try:
    from distillguard.ingest import _columnar
except ImportError:  # built without a C compiler
    _columnar = None

NATIVE = _columnar is not None
if _columnar is not None and _columnar.column_names() != COLUMNS:
    raise ImportError("distillguard.ingest._columnar was built for another EXCHANGE_SCHEMA; reinstall the package")


@dataclass
class Decoded:
    """What a block held: its good rows in input order, and its bad lines."""

    table: pa.Table
    lines: int  # non-blank lines
    newlines: int  # b"\n" in the block: the next block's first line is this many lines on
    bad: list[tuple[int, int, str, str, bytes]]  # (index among non-blank lines, line offset, field, reason, raw)


def decode_block(block: bytes | bytearray | memoryview, native: bool | None = None) -> Decoded:
    """Decode a block of whole lines; ``native=False`` forces the Python path (tests compare the two)."""
    if not (NATIVE if native is None else native):
        return _python_block(block)
    lines, newlines, n_rows, columns, row_index, unusual = _columnar.decode_block(block)
    table = _table(n_rows, columns)
    if not unusual:
        return Decoded(table, lines, newlines, [])
    raws = [bytes(block[start:end]) for _, _, start, end in unusual]
    fallback, errors = parse_chunk(raws)
    failed = {index for index, _, _ in errors}
    bad = [(unusual[i][0], unusual[i][1], field, reason, raws[i]) for i, field, reason in errors]
    if len(fallback):
        positions = np.concatenate([np.frombuffer(row_index, np.int32),
                                    np.array([unusual[i][0] for i in range(len(raws)) if i not in failed], np.int32)])
        table = pa.concat_tables([table, fallback]).take(np.argsort(positions, kind="stable"))
    return Decoded(table, lines, newlines, bad)


def _python_block(block: bytes | bytearray | memoryview) -> Decoded:
    offsets: list[int] = []
    raws: list[bytes] = []
    pieces = bytes(block).split(b"\n")
    for offset, raw in enumerate(pieces):
        if raw and not raw.isspace():
            offsets.append(offset)
            raws.append(raw)
    table, errors = parse_chunk(raws)
    return Decoded(table, len(raws), len(pieces) - 1, [(index, offsets[index], field, reason, raws[index])
                                                       for index, field, reason in errors])


def _table(n: int, columns: list[tuple]) -> pa.Table:
    """Arrow arrays over the decoder's (values, offsets or None, validity) buffers: no copy but bit-packing flags."""
    arrays = []
    for field, (values, offsets, valid) in zip(EXCHANGE_SCHEMA, columns, strict=True):
        flags = np.frombuffer(valid, np.uint8)
        nulls = n - int(np.count_nonzero(flags))
        bitmap = pa.py_buffer(np.packbits(flags, bitorder="little")) if nulls else None
        if offsets is not None:
            buffers = [bitmap, pa.py_buffer(offsets), pa.py_buffer(values)]
        elif pa.types.is_boolean(field.type):
            buffers = [bitmap, pa.py_buffer(np.packbits(np.frombuffer(values, np.uint8), bitorder="little"))]
        else:
            buffers = [bitmap, pa.py_buffer(values)]
        arrays.append(pa.Array.from_buffers(field.type, n, buffers, null_count=nulls))
    return pa.Table.from_arrays(arrays, schema=EXCHANGE_SCHEMA)


def parse_chunk(raws: Sequence[bytes]) -> tuple[pa.Table, list[tuple[int, str, str]]]:
    """The per-line Python path over a chunk: good rows as a table, bad lines as (index, field, reason).

    Lines in the common shape take msgspec's compiled decoder; the rest, and every bad line, go through
    :func:`~distillguard.model.exchange.flatten_json` (``orjson`` + ``flatten``), which defines what is
    accepted and the errors.
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
            rows.append(flatten_json(raw))
        except FieldError as exc:
            errors.append((index, exc.field, exc.reason))
    return rows, errors
