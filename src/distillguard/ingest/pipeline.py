"""Ingest: formats -> validation -> quarantine or store, with an exact account of every line.

The invariant reported to the user, and asserted in tests, is
``lines read = ingested + duplicates + quarantined``. Good records are committed
in batches as they go, so a bad line, a crash or Ctrl-C never costs the records
already committed; re-running the same input is idempotent (dedupe on id).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pyarrow as pa

from distillguard.ingest import parallel
from distillguard.ingest.base import IngestFormat, Line, open_binary
from distillguard.ingest.decode import Decoded, decode_block
from distillguard.ingest.formats import FORMATS, detect_format
from distillguard.model import FieldError, accounts_to_table, flatten, flatten_account, rows_to_table
from distillguard.store import Store
from distillguard.store.store import Derive, keep_rows, publish

BATCH_ROWS = 50_000
COMMIT_BYTES = 96 << 20  # Arrow bytes buffered before a commit: peak memory must not grow with the input
PARALLEL_MIN_BYTES = 32 << 20


class StrictModeError(ValueError):
    """Raised under ``--strict`` at the first bad line."""


@dataclass
class IngestReport:
    read: int = 0
    ingested: int = 0
    duplicates: int = 0
    quarantined: int = 0
    skipped: int = 0  # units that are not exchanges (e.g. non-GenAI OTel spans); not lines, not in the identity
    accounts: int = 0
    accounts_quarantined: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)  # first few, for the summary
    quarantine_file: str | None = None

    @property
    def balanced(self) -> bool:
        return self.read == self.ingested + self.duplicates + self.quarantined


class Quarantine:
    """Rejected lines: verbatim in ``<run>.bad``, located and explained in ``<run>.errors.jsonl``."""

    def __init__(self, store: Store, run_id: str) -> None:
        self.bad_path = store.root / "quarantine" / f"{run_id}.bad"
        self.errors_path = store.root / "quarantine" / f"{run_id}.errors.jsonl"
        self._bad = None
        self._errors = None

    def add(self, line: Line, field_name: str, reason: str) -> None:
        if self._bad is None:
            self._bad = self.bad_path.open("ab")
            self._errors = self.errors_path.open("ab")
        raw = line.raw if line.raw.endswith(b"\n") else line.raw + b"\n"
        self._bad.write(raw)
        self._errors.write(orjson.dumps({"file": line.source, "line": line.line, "field": field_name,
                                         "reason": reason}) + b"\n")

    def flush(self) -> None:
        if self._bad is not None:
            self._bad.flush()
            self._errors.flush()

    def close(self) -> None:
        if self._bad is not None:
            self._bad.close()
            self._errors.close()


def expand_paths(paths: Iterable[str | Path]) -> list[Path]:
    """Files named directly, plus the log files inside named directories (sorted)."""
    out: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            out.extend(sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")))
        elif path.exists():
            out.append(path)
        else:
            raise FileNotFoundError(f"{path}: no such file or directory")
    return out


def group_by_format(paths: Sequence[Path], fmt: str) -> dict[str, list[Path]]:
    groups: dict[str, list[Path]] = {}
    for path in paths:
        name = detect_format(path) if fmt == "auto" else fmt
        groups.setdefault(name, []).append(path)
    return groups


def _split_error(message: str) -> tuple[str, str]:
    field_name, _, reason = message.partition(": ")
    return (field_name, reason) if reason else ("<record>", message)


def ingest(
    paths: Sequence[str | Path],
    store: Store,
    *,
    fmt: str = "auto",
    accounts: Path | None = None,
    strict: bool = False,
    options: dict[str, str] | None = None,
    on_progress: Callable[[int], None] | None = None,
    derive: Derive | None = None,
    workers: int | None = None,
) -> IngestReport:
    """Ingest ``paths`` into ``store``. ``on_progress`` receives the count of lines read so far.

    ``derive`` (the per-exchange signal definitions) is applied before content is
    dropped; a no-content store requires it so detection still has what it needs.
    ``workers`` processes parse the canonical format (default: one per core for inputs over
    32 MiB, in-process otherwise, where starting workers costs more than it saves).
    """
    with store.writing():
        return _ingest(paths, store, fmt=fmt, accounts=accounts, strict=strict, options=options,
                       on_progress=on_progress, derive=derive, workers=workers)


def _ingest(paths: Sequence[str | Path], store: Store, *, fmt: str, accounts: Path | None, strict: bool,
            options: dict[str, str] | None, on_progress: Callable[[int], None] | None, derive: Derive | None,
            workers: int | None) -> IngestReport:
    started = time.perf_counter()
    run_id = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
    report = IngestReport()
    quarantine = Quarantine(store, run_id)
    files = expand_paths(paths)
    groups = group_by_format(files, fmt)
    pending: list = []
    pending_bytes = 0

    def commit() -> None:
        nonlocal pending, pending_bytes
        store.write_exchanges(pending, derive=derive)
        quarantine.flush()
        pending, pending_bytes = [], 0

    def stage(rows: list[tuple] | pa.Table) -> None:
        nonlocal pending_bytes
        table, duplicates = store.dedupe(rows if isinstance(rows, pa.Table) else rows_to_table(rows))
        report.duplicates += duplicates
        report.ingested += len(table)
        if len(table):
            pending.append(table)
            pending_bytes += table.nbytes

    def refuse(source: str, number: int, raw: bytes, field_name: str, reason: str) -> str:
        """Quarantine one bad line and count it; return its message."""
        report.quarantined += 1
        quarantine.add(Line(source, number, raw), field_name, reason)
        message = f"{source}:{number}: {field_name}: {reason}"
        if len(report.errors) < 20 and not strict:
            report.errors.append(message)
        return message

    def validate(lines: list[Line]) -> list[tuple]:
        """Flatten lines one by one, quarantining the bad ones."""
        rows: list[tuple] = []
        for line in lines:
            report.read += 1
            if line.error is not None:  # "<field>: <reason>", by the IngestFormat contract
                field_name, reason = _split_error(line.error)
            else:
                try:
                    rows.append(flatten(line.record))
                    continue
                except FieldError as exc:
                    field_name, reason = exc.field, exc.reason
            message = refuse(line.source, line.line, line.raw, field_name, reason)
            if strict:
                stage(rows)  # the good lines before this one are kept
                raise StrictModeError(message)
        return rows

    def take(source: str, first: int, decoded: Decoded) -> None:
        """Account for a decoded canonical block: quarantine its bad lines, stage its rows."""
        for seen, (index, offset, field_name, reason, raw) in enumerate(decoded.bad):
            message = refuse(source, first + offset, raw, field_name, reason)
            if strict:
                report.read += index + 1
                stage(decoded.table.slice(0, index - seen))  # the good lines before this one are kept
                raise StrictModeError(message)
        report.read += decoded.lines
        stage(decoded.table)

    def publish_staged(chunk: parallel.StagedChunk) -> None:
        """Account for a chunk a worker parsed and staged: quarantine, dedupe, then publish in input order."""
        for number, field_name, reason, raw in chunk.bad:
            refuse(chunk.source, number, raw, field_name, reason)
        report.read += chunk.lines
        keep = store.ids.claim(chunk.hashes)
        kept = int(keep.sum())
        report.duplicates += len(keep) - kept
        report.ingested += kept
        for part in chunk.parts:
            publish(keep_rows(part, keep[part.rows]))
        quarantine.flush()

    try:
        for name, group in groups.items():
            if name == "canonical":
                n_workers = _workers_for(group) if workers is None else workers
                if n_workers > 1 and not strict:
                    commit()  # what other formats staged goes first
                    for staged in parallel.stage_parallel(group, store, n_workers, derive):
                        publish_staged(staged)
                        if on_progress:
                            on_progress(report.read)
                    continue
                numbers = parallel.LineNumbers()
                for source, block in parallel.read_blocks(group):
                    decoded = decode_block(parallel.load(block))
                    take(source, numbers.take(source, decoded.newlines), decoded)
                    if pending_bytes >= COMMIT_BYTES:
                        commit()
                    if on_progress:
                        on_progress(report.read)
                continue
            reader: IngestFormat = FORMATS[name](**(options or {}))
            for batch in _batches(reader.read(group), BATCH_ROWS):
                stage(validate(batch))
                if pending_bytes >= COMMIT_BYTES:
                    commit()
                if on_progress:
                    on_progress(report.read)
            report.skipped += reader.skipped
        if accounts is not None:
            _ingest_accounts(accounts, store, quarantine, report, strict)
    finally:
        # what was read and validated is committed even when interrupted by an error
        # in a later line (strict mode) or an unexpected failure
        commit()
        quarantine.close()
        report.seconds = time.perf_counter() - started
        if report.quarantined or report.accounts_quarantined:
            report.quarantine_file = str(quarantine.errors_path)
    return report


def _workers_for(paths: Sequence[Path]) -> int:
    """Worker processes worth starting for these canonical files (compressed bytes count 4x)."""
    size = sum(p.stat().st_size * (4 if p.suffix in (".gz", ".zst", ".zstd") else 1) for p in paths)
    return (os.cpu_count() or 1) if size > PARALLEL_MIN_BYTES else 1


def _ingest_accounts(path: Path, store: Store, quarantine: Quarantine, report: IngestReport, strict: bool) -> None:
    rows = []
    with open_binary(path) as handle:
        for number, raw in enumerate(handle, 1):
            if not raw.strip():
                continue
            line = Line(str(path), number, raw)
            try:
                rows.append(flatten_account(orjson.loads(raw)))
                continue
            except orjson.JSONDecodeError as exc:
                field_name, reason = "<record>", f"invalid JSON: {exc}"
            except FieldError as exc:
                field_name, reason = exc.field, exc.reason
            message = f"{path}:{number}: {field_name}: {reason}"
            if strict:
                raise StrictModeError(message)
            report.accounts_quarantined += 1
            if len(report.errors) < 20:
                report.errors.append(message)
            quarantine.add(line, field_name, reason)
    if rows:
        store.write_accounts(accounts_to_table(rows))
    report.accounts = len(rows)


def _batches(lines: Iterator[Line], size: int) -> Iterator[list[Line]]:
    batch: list[Line] = []
    for line in lines:
        batch.append(line)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
