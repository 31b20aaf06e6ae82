"""Ingest: formats -> validation -> quarantine or store, with an exact account of every line.

The invariant reported to the user, and asserted in tests, is
``lines read = ingested + duplicates + quarantined``. Good records are committed
in batches as they go, so a bad line, a crash or Ctrl-C never costs the records
already committed; re-running the same input is idempotent (dedupe on id).

A file that cannot be read as a whole (its format unrecognisable, or a compressed file
damaged part way) does not stop the run: its complete lines are kept, the problem is
reported with the file and byte offset (``STORE/quarantine/<run>.files.jsonl``), and the
other files are read.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import orjson
import pyarrow as pa

from distillguard.errors import DistillguardError
from distillguard.ingest import parallel
from distillguard.ingest.base import Damage, IngestFormat, Line, open_binary, read_head
from distillguard.ingest.decode import Decoded, decode_block
from distillguard.ingest.formats import FORMATS, UnknownFormat, detect_format
from distillguard.model import FieldError, accounts_to_table, flatten, flatten_account, rows_to_table
from distillguard.model.exchange import json_error
from distillguard.store import Store
from distillguard.store.store import Derive, keep_rows, publish

BATCH_ROWS = 50_000
COMMIT_BYTES = 96 << 20  # Arrow bytes buffered before a commit: peak memory must not grow with the input
PARALLEL_MIN_BYTES = 32 << 20


class StrictModeError(DistillguardError, ValueError):
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
    file_problems: list[str] = field(default_factory=list)  # files skipped or read only in part, all of them
    files_file: str | None = None  # STORE/quarantine/<run>.files.jsonl, when there are file problems
    empty_files: list[str] = field(default_factory=list)  # files with no line at all: nothing to read, no error

    @property
    def balanced(self) -> bool:
        return self.read == self.ingested + self.duplicates + self.quarantined

    @property
    def clean(self) -> bool:
        """No bad line, no bad account record, no file skipped or cut short."""
        return not (self.quarantined or self.accounts_quarantined or self.file_problems)


class Quarantine:
    """Rejected lines: verbatim in ``<run>.bad``, located and explained in ``<run>.errors.jsonl``."""

    def __init__(self, store: Store, run_id: str) -> None:
        self.bad_path = store.root / "quarantine" / f"{run_id}.bad"
        self.errors_path = store.root / "quarantine" / f"{run_id}.errors.jsonl"
        self.files_path = store.root / "quarantine" / f"{run_id}.files.jsonl"
        self._bad: BinaryIO | None = None
        self._errors: BinaryIO | None = None

    def file_problem(self, source: str, problem: str, reason: str, offset: int | None = None,
                     line: int | None = None) -> None:
        """A file skipped (``unrecognised``) or read only up to ``offset`` (``damaged``)."""
        entry = {"file": source, "problem": problem, "offset": offset, "line": line, "reason": reason}
        with self.files_path.open("ab") as handle:
            handle.write(orjson.dumps(entry) + b"\n")

    def add(self, line: Line, field_name: str, reason: str) -> None:
        if self._bad is None or self._errors is None:
            self._bad = self.bad_path.open("ab")
            self._errors = self.errors_path.open("ab")
        raw = line.raw if line.raw.endswith(b"\n") else line.raw + b"\n"
        self._bad.write(raw)
        self._errors.write(orjson.dumps({"file": line.source, "line": line.line, "field": field_name,
                                         "reason": reason}) + b"\n")

    def flush(self) -> None:
        for handle in (self._bad, self._errors):
            if handle is not None:
                handle.flush()

    def close(self) -> None:
        for handle in (self._bad, self._errors):
            if handle is not None:
                handle.close()


def expand_paths(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
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


def group_by_format(paths: Sequence[Path], fmt: str, report: IngestReport | None = None,
                    quarantine: Quarantine | None = None) -> dict[str, list[Path]]:
    """Files by format. With a ``report``, a file whose format cannot be told is reported and left out
    (without one, :class:`UnknownFormat` is raised), and an empty file is noted and left out."""
    groups: dict[str, list[Path]] = {}
    for path in paths:
        if fmt != "auto":
            groups.setdefault(fmt, []).append(path)
            continue
        damaged: list[Damage] = []
        head = read_head(path, 65536, damaged)
        if report is not None and not head.strip():
            if damaged:
                # damaged before its first complete line: no format to tell, but the damage (and the incomplete
                # line it cut) is reported by whichever reader opens it, so it goes with the canonical files
                groups.setdefault("canonical", []).append(path)
                continue
            if len(head) < 65536:  # (64 KiB of blanks and then text is not empty: detection judges it)
                report.empty_files.append(str(path))
                continue
        try:
            name = detect_format(path, head)
        except UnknownFormat as exc:
            if report is None:
                raise
            report.file_problems.append(f"{exc} (skipped)")
            if quarantine is not None:
                quarantine.file_problem(str(path), "unrecognised", str(exc).removeprefix(f"{path}: "))
            continue
        groups.setdefault(name, []).append(path)
    return groups


def _split_error(message: str) -> tuple[str, str]:
    field_name, _, reason = message.partition(": ")
    return (field_name, reason) if reason else ("<record>", message)


def ingest(
    paths: Sequence[str | os.PathLike[str]] | str | os.PathLike[str],
    store: Store,
    *,
    fmt: str = "auto",
    accounts: str | os.PathLike[str] | None = None,
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
    Paths (``paths``, ``accounts``) may be strings or path objects; a single path may be given bare.
    Files whose format cannot be told, and compressed files damaged part way, do not stop the run: see
    :attr:`IngestReport.file_problems` (``--strict`` stops at them).
    """
    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    with store.writing():
        return _ingest(list(paths), store, fmt=fmt, accounts=Path(accounts) if accounts is not None else None,
                       strict=strict, options=options, on_progress=on_progress, derive=derive, workers=workers)


def _ingest(paths: Sequence[str | os.PathLike[str]], store: Store, *, fmt: str, accounts: Path | None, strict: bool,
            options: dict[str, str] | None, on_progress: Callable[[int], None] | None, derive: Derive | None,
            workers: int | None) -> IngestReport:
    started = time.perf_counter()
    run_id = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
    report = IngestReport()
    quarantine = Quarantine(store, run_id)
    files = expand_paths(paths)
    groups = group_by_format(files, fmt, report, quarantine)
    if strict and report.file_problems:
        raise StrictModeError(report.file_problems[0])
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

    def damaged(damage: Damage) -> None:
        """A compressed file that ended early: its incomplete line is quarantined, the file reported."""
        if damage.partial:
            report.read += 1
            refuse(damage.source, damage.line, damage.partial, "<file>",
                   f"incomplete line: the file is damaged here ({damage.reason})")
        report.file_problems.append(damage.message())
        quarantine.file_problem(damage.source, "damaged", damage.reason, damage.offset, damage.line)
        if strict:
            raise StrictModeError(damage.message())

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
                damages: list[Damage] = []
                n_workers = _workers_for(group) if workers is None else workers
                if n_workers > 1 and not strict:
                    commit()  # what other formats staged goes first
                    for staged in parallel.stage_parallel(group, store, n_workers, derive, damages.append):
                        publish_staged(staged)
                        if on_progress:
                            on_progress(report.read)
                else:
                    numbers = parallel.LineNumbers()
                    for source, block in parallel.read_blocks(group, on_damage=damages.append):
                        decoded = decode_block(parallel.load(block))
                        take(source, numbers.take(source, decoded.newlines), decoded)
                        if pending_bytes >= COMMIT_BYTES:
                            commit()
                        if on_progress:
                            on_progress(report.read)
                for damage in damages:
                    damaged(damage)
                continue
            reader: IngestFormat = FORMATS[name](**(options or {}))
            for batch in _batches(reader.read(group), BATCH_ROWS):
                stage(validate(batch))
                if pending_bytes >= COMMIT_BYTES:
                    commit()
                if on_progress:
                    on_progress(report.read)
            report.skipped += reader.skipped
            for damage in _unique(reader.damaged):
                damaged(damage)
        if accounts is not None:
            _ingest_accounts(accounts, store, quarantine, report, strict, damaged)
    finally:
        # what was read and validated is committed even when interrupted by an error
        # in a later line (strict mode) or an unexpected failure
        commit()
        quarantine.close()
        report.seconds = time.perf_counter() - started
        if report.quarantined or report.accounts_quarantined:
            report.quarantine_file = str(quarantine.errors_path)
        if report.file_problems:
            report.files_file = str(quarantine.files_path)
    return report


def _unique(damages: list[Damage]) -> list[Damage]:
    """Formats that read a file twice (Batch, OTel) meet its damage twice: once per file is reported."""
    seen: set[str] = set()
    out = []
    for damage in damages:
        if damage.source not in seen:
            seen.add(damage.source)
            out.append(damage)
    return out


def _workers_for(paths: Sequence[Path]) -> int:
    """Worker processes worth starting for these canonical files (compressed bytes count 4x)."""
    size = sum(p.stat().st_size * (4 if p.suffix in (".gz", ".zst", ".zstd") else 1) for p in paths)
    return (os.cpu_count() or 1) if size > PARALLEL_MIN_BYTES else 1


def _ingest_accounts(path: Path, store: Store, quarantine: Quarantine, report: IngestReport, strict: bool,
                     damaged: Callable[[Damage], None]) -> None:
    rows = []
    damages: list[Damage] = []
    with open_binary(path, damages.append) as handle:
        for number, raw in enumerate(handle, 1):
            if not raw.strip():
                continue
            line = Line(str(path), number, raw)
            try:
                rows.append(flatten_account(orjson.loads(raw)))
                continue
            except orjson.JSONDecodeError as exc:
                field_name, reason = json_error(raw, exc)
            except FieldError as exc:
                field_name, reason = exc.field, exc.reason
            message = f"{path}:{number}: {field_name}: {reason}"
            if strict:
                raise StrictModeError(message)
            report.accounts_quarantined += 1
            if len(report.errors) < 20:
                report.errors.append(message)
            quarantine.add(line, field_name, reason)
    for damage in damages:
        if damage.partial:  # an account line, not an exchange line
            report.accounts_quarantined += 1
            quarantine.add(Line(damage.source, damage.line, damage.partial), "<file>",
                           f"incomplete line: the file is damaged here ({damage.reason})")
        damaged(Damage(damage.source, damage.offset, damage.line, damage.reason))
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
