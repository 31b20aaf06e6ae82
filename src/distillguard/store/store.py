"""The embedded event store: day-partitioned Parquet files queried with DuckDB.

Layout of a store directory::

    store.json                      settings (format version, whether content is kept)
    exchanges/day=YYYY-MM-DD/*.parquet
    accounts/accounts.parquet       latest record per account
    quarantine/<run>.bad            rejected input, verbatim
    quarantine/<run>.errors.jsonl   one {"file","line","field","reason"} per rejected line
    derived/v<version>c1/day=.../   per-exchange signals (+ CARRIED exchange columns), one file per exchange file
    _staging/                       files being written; never read
    _staging/pid-<pid>[-duckdb]/    scratch of reader process <pid>: derived files being written, query spill
    writer.lock                     held (flock) by the one process writing

Files only become visible by an atomic rename out of ``_staging``, so a crash or
Ctrl-C mid-write leaves what was already stored intact (a half-written file stays
in staging and is removed on the next open that finds no writer at work). Dedupe is
on the exchange id via a compact index of 64-bit id hashes (8 bytes per stored exchange).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from distillguard._cpu import usable_cpus
from distillguard.errors import DistillguardError
from distillguard.model import ACCOUNT_SCHEMA, CONTENT_COLUMNS, EXCHANGE_SCHEMA
from distillguard.store.idindex import IdIndex

if TYPE_CHECKING:
    import duckdb

FORMAT_VERSION = 1


class Derive(Protocol):
    """Per-exchange signal definitions (implemented by :mod:`distillguard.signals`)."""

    version: str
    inputs: tuple[str, ...]  # exchange columns the signals read

    def derive(self, exchanges: pa.Table) -> pa.Table:
        """Return one row per input row: ``id`` plus signal columns, in input order."""
        ...


class StoreError(DistillguardError, RuntimeError):
    pass


_MS_PER_DAY = 86_400_000
# Text columns are long and unique: dictionary pages and min/max statistics on them cost
# write time and buy nothing (no query filters on prompt text).
_PLAIN_COLUMNS = frozenset(CONTENT_COLUMNS) | {"extra_json"}
_STATISTICS_COLUMNS = [name for name in EXCHANGE_SCHEMA.names if name not in _PLAIN_COLUMNS]
# Nearly-unique columns (ids, times, counts) try a dictionary only to abandon it: ~6 % of the write time.
_DICTIONARY_COLUMNS = [name for name in _STATISTICS_COLUMNS if name not in {
    "id", "id_hash", "ts", "latency_ms", "prompt_chars", "response_chars", "reasoning_chars", "prompt_tokens",
    "completion_tokens", "reasoning_tokens"}]


# Exchange columns every derived file carries next to the signals, so detection scans one set of files
# (``read_parquet`` over the derived files) instead of joining each exchange file with its signals: at
# 2,600 files that positional-join union was ~50x slower than either scan alone.
CARRIED = ("ts", "account_id", "api_key_id", "ip", "user_agent", "asn", "tls_fp", "model", "max_tokens", "temperature",
           "n_tools", "has_image", "n_assistant_turns", "prompt_tokens", "completion_tokens", "reasoning_tokens",
           "reasoning_chars", "status")
# derived files with CARRIED columns (c3: with api_key_id, n_assistant_turns, reasoning tokens and characters);
# files written before CARRIED existed are upgraded on read; any change to CARRIED needs a new layout name
_DERIVED_LAYOUT = "c3"


def _derived_table(derive: Derive, exchanges: pa.Table) -> pa.Table:
    signals = derive.derive(exchanges)
    return _with_carried(signals, exchanges)


DERIVE_PARALLEL_FILES = 4  # fewer missing derived files than this are computed in the calling process


def _derive_file(derive: Derive, src: str, columns: list[str], tmp: str) -> str:
    """A derive worker: one exchange file's signals (with CARRIED columns) written to ``tmp``."""
    pq.write_table(_derived_table(derive, read_exchange_file(src, columns)), tmp, compression="zstd")
    return tmp


def _can_fork_workers(derive: Derive) -> bool:
    """Whether ``derive`` can go to worker processes from here: it pickles (a derive defined in a function, as in
    tests and notebooks, runs in this process) and this process may have children (a daemonic one may not)."""
    import multiprocessing
    import pickle

    if multiprocessing.current_process().daemon:
        return False
    try:
        pickle.dumps(derive)
    except Exception:
        return False
    return True


def _derive_pool(workers: int) -> ProcessPoolExecutor:
    """Worker processes for ``Store.derived``, tied to this process's life as ingest's are (forkserver: the
    caller may hold DuckDB threads, which fork() would copy half-alive; a ``kill -9`` leaves no worker)."""
    import multiprocessing

    from distillguard.ingest import parallel

    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["distillguard.ingest._forkserver_lifeline", parallel.__name__])
    return ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=parallel._worker_init,
                               initargs=(os.getpid(),))


def _with_carried(signals: pa.Table, exchanges: pa.Table) -> pa.Table:
    for name in CARRIED:
        if name not in signals.column_names:
            signals = signals.append_column(EXCHANGE_SCHEMA.field(name), exchanges.column(name))
    return signals


@dataclass(frozen=True)
class StagedPart:
    """One day's exchanges in ``_staging``: their rows in the staged table, and the renames that publish them."""

    rows: np.ndarray
    moves: list[tuple[Path, Path]]  # derived signals first: an exchange file is never visible without them


# Files written before a column was appended to EXCHANGE_SCHEMA (ACCOUNT_SCHEMA) lack it: readers take it as null.
_SCHEMA_NAMES = frozenset(EXCHANGE_SCHEMA.names)
_ACCOUNT_NAMES = frozenset(ACCOUNT_SCHEMA.names)


def _with_columns(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` in ``schema``: columns it lacks (a file written before they were added) are nulls."""
    for name in schema.names:
        if name not in table.column_names:
            table = table.append_column(name, pa.nulls(len(table), schema.field(name).type))
    return table.select(schema.names).cast(schema)


_FILE_COLUMNS: dict[tuple[str, int, int], frozenset[str]] = {}  # published files never change: read each footer once


def file_columns(path: str | os.PathLike[str]) -> frozenset[str]:
    """The columns a Parquet file holds (from its footer, cached per path, size and modification time)."""
    stat = os.stat(path)
    key = (os.fspath(path), stat.st_size, stat.st_mtime_ns)
    names = _FILE_COLUMNS.get(key)
    if names is None:
        names = _FILE_COLUMNS[key] = frozenset(pq.read_schema(path).names)
    return names


def read_exchange_file(path: str | os.PathLike[str], columns: list[str] | None = None) -> pa.Table:
    """``columns`` (default: all of :data:`EXCHANGE_SCHEMA`) of an exchange file, in that order; a column the file
    predates (a store written before it was added) is read as nulls of its type."""
    wanted = list(EXCHANGE_SCHEMA.names) if columns is None else columns
    present = file_columns(path)
    if all(name in present for name in wanted):
        return pq.read_table(path, columns=wanted)
    table = pq.read_table(path, columns=[name for name in wanted if name in present])
    for index, name in enumerate(wanted):
        if name not in present:
            field = EXCHANGE_SCHEMA.field(name)
            table = table.add_column(index, field, pa.nulls(len(table), field.type))
    return table


def write_exchange_file(table: pa.Table, path: Path) -> None:
    pq.write_table(table, path, compression="zstd", row_group_size=128_000, use_dictionary=_DICTIONARY_COLUMNS,
                   write_statistics=_STATISTICS_COLUMNS)


def keep_rows(part: StagedPart, keep: np.ndarray) -> list[tuple[Path, Path]]:
    """The renames that publish only the ``keep`` rows of a staged part (rewritten in staging when some go)."""
    if keep.all():
        return part.moves
    if not keep.any():
        for tmp, _ in part.moves:
            tmp.unlink()
        return []
    mask = pa.array(keep)
    *derived, (exchanges, _) = part.moves
    for tmp, _ in derived:
        pq.write_table(pq.read_table(tmp).filter(mask), tmp, compression="zstd")
    write_exchange_file(pq.read_table(exchanges).filter(mask), exchanges)
    return part.moves


def publish(moves: list[tuple[Path, Path]]) -> None:
    """Make staged files visible, each by one atomic rename, in the given order."""
    for tmp, final in moves:
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, final)


class Store:
    """A store directory. Open with :meth:`open` (creates it when missing)."""

    def __init__(self, root: Path, content: bool) -> None:
        self.root = root
        self.content = content
        self._ids: IdIndex | None = None
        self._ids_files: frozenset[str] = frozenset()

    # ---- lifecycle -------------------------------------------------------
    @classmethod
    def open(cls, root: str | os.PathLike[str], *, content: bool | None = None, create: bool = True) -> Store:
        """Open (or create) a store. ``content=False`` makes a privacy store that keeps no raw text.

        A store's content setting is fixed at creation; asking an existing no-content
        store to keep content is an error rather than a silent change of policy.
        """
        root = Path(root)
        meta_path = root / "store.json"
        if meta_path.exists():
            meta = orjson.loads(meta_path.read_bytes())
            if meta.get("version") != FORMAT_VERSION:
                raise StoreError(f"{meta_path}: unsupported store version {meta.get('version')}")
            stored_content = bool(meta.get("content", True))
            if content is True and not stored_content:
                raise StoreError(f"{root} is a --no-content store; it cannot start keeping content")
            store = cls(root, stored_content)
        else:
            if not create:
                raise StoreError(f"{root}: not a distillguard store (no store.json)")
            root.mkdir(parents=True, exist_ok=True)
            store = cls(root, True if content is None else content)
            _atomic_write(meta_path, orjson.dumps({"version": FORMAT_VERSION, "content": store.content,
                                                   "created": datetime.now(UTC).isoformat()}))
        for sub in ("exchanges", "derived", "accounts", "quarantine", "_staging"):
            (root / sub).mkdir(exist_ok=True)
        store._clean_staging()
        return store

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Hold the store's writer lock: one ingest at a time, and no cleanup under a running one.

        Waits for another writer to finish. The dedupe index is reloaded if another
        process published files since this one loaded it.
        """
        with (self.root / "writer.lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                if self._ids is not None and frozenset(self.exchange_files()) != self._ids_files:
                    self._ids = None
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _own_staging(self) -> Path:
        """This process's scratch directory in ``_staging``: kept by cleanups while the process runs."""
        path = self.root / "_staging" / f"pid-{os.getpid()}"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _clean_staging(self) -> None:
        """Remove what a crashed writer or query left in ``_staging``, unless a writer or its owner still runs."""
        with (self.root / "writer.lock").open("a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return  # an ingest is at work: its staged files are not leftovers
            try:
                for entry in (self.root / "_staging").iterdir():
                    if entry.name.startswith("pid-") and _alive(entry.name.split("-")[1]):
                        continue  # a reader's scratch space (derived files being written, query spill)
                    if entry.is_dir():
                        shutil.rmtree(entry, ignore_errors=True)
                    else:
                        entry.unlink(missing_ok=True)
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    @property
    def ids(self) -> IdIndex:
        """The dedupe index, loaded lazily from the stored id hashes."""
        if self._ids is None:
            self._ids = IdIndex()
            files = self.exchange_files()
            self._ids_files = frozenset(files)
            for path in files:
                self._ids.add(pq.read_table(path, columns=["id_hash"]).column(0).to_numpy())
        return self._ids

    # ---- writing ---------------------------------------------------------
    def prepare(self, table: pa.Table) -> pa.Table:
        """Apply the store's privacy policy: without content, raw text columns are nulled."""
        if self.content:
            return table
        for name in CONTENT_COLUMNS:
            index = table.schema.get_field_index(name)
            table = table.set_column(index, name, pa.nulls(len(table), type=table.schema.field(name).type))
        return table

    def dedupe(self, table: pa.Table) -> tuple[pa.Table, int]:
        """Drop exchanges already stored or repeated within ``table``; return (new rows, duplicates)."""
        hashes = table.column("id_hash").to_numpy()
        keep = self.ids.claim(hashes)
        duplicates = int(len(keep) - keep.sum())
        return (table if duplicates == 0 else table.filter(pa.array(keep))), duplicates

    def write_exchanges(self, tables: list[pa.Table], derive: Derive | None = None) -> int:
        """Write deduplicated tables, one file per day partition, committed by atomic rename.

        ``derive`` computes per-exchange signals; it must run here, before content is
        dropped, for a no-content store (content stores derive lazily, see :meth:`derived`).
        """
        if not tables:
            return 0
        table = pa.concat_tables(tables)
        for part in self.stage_exchanges(table, derive):
            publish(part.moves)
        return len(table)

    def stage_exchanges(self, table: pa.Table, derive: Derive | None = None) -> list[StagedPart]:
        """Write ``table`` into ``_staging``, one file per day; nothing is visible until :func:`publish`.

        Safe to call from another process on the same store (ingest workers do), which then hands
        the parts back to the one process that dedupes and publishes them in input order.
        """
        if len(table) == 0:
            return []
        if derive is None and not self.content:
            raise StoreError("a no-content store needs signals derived at ingest (derive=...)")
        day_numbers = table.column("ts").cast(pa.int64()).to_numpy() // _MS_PER_DAY
        parts: list[StagedPart] = []
        for day_number in np.unique(day_numbers):
            rows = np.flatnonzero(day_numbers == day_number)
            contiguous = rows[-1] - rows[0] + 1 == len(rows)  # time-ordered input: a zero-copy slice
            part = table.slice(int(rows[0]), len(rows)) if contiguous else table.take(rows)
            day = datetime.fromtimestamp(int(day_number) * 86_400, UTC).strftime("%Y-%m-%d")
            name = f"part-{uuid.uuid4().hex}.parquet"
            moves: list[tuple[Path, Path]] = []
            if derive is not None:
                tmp = self.root / "_staging" / f"derived-{name}"
                pq.write_table(_derived_table(derive, part), tmp, compression="zstd")
                moves.append((tmp, self._derived_dir(derive) / f"day={day}" / name))
            tmp = self.root / "_staging" / name
            write_exchange_file(self.prepare(part), tmp)
            moves.append((tmp, self.root / "exchanges" / f"day={day}" / name))
            parts.append(StagedPart(rows, moves))
        return parts

    def _derived_dir(self, derive: Derive, layout: str = _DERIVED_LAYOUT) -> Path:
        return self.root / "derived" / f"v{derive.version}{layout}"

    def derived(self, derive: Derive, on_file: Callable[[], None] | None = None,
                workers: int | None = None) -> list[str]:
        """Files of derived per-exchange signals, one per exchange file, computing missing ones.

        Derived files are a cache keyed by the signal definitions' version, so
        detection re-reads text only for files it has not seen under that version.
        A no-content store cannot recompute them; it keeps the version it was ingested with.
        Missing files are computed by ``workers`` processes (default: the usable cores) when there are
        at least ``DERIVE_PARALLEL_FILES`` of them: one file's signals are numpy and regex work that
        holds the GIL most of the time, so threads within a file barely help.
        """
        out_dir = self._derived_dir(derive)
        sources = [Path(path) for path in self.exchange_files()]
        targets = [out_dir / src.parent.name / src.name for src in sources]
        columns = list(dict.fromkeys((*derive.inputs, *CARRIED)))
        todo = [i for i, (src, target) in enumerate(zip(sources, targets, strict=True))
                if not target.exists() and self.content
                and not (self._derived_dir(derive, "") / src.parent.name / src.name).exists()]
        workers = min(workers or usable_cpus(), len(todo))
        with contextlib.ExitStack() as stack:
            computed: Iterator[str] | None = None
            if workers >= 2 and len(todo) >= DERIVE_PARALLEL_FILES and _can_fork_workers(derive):
                pool = _derive_pool(workers)
                stack.callback(pool.shutdown, wait=True, cancel_futures=True)  # on an error: no more files
                staging = self._own_staging()
                computed = pool.map(_derive_file, [derive] * len(todo), [str(sources[i]) for i in todo],
                                    [columns] * len(todo),
                                    [str(staging / f"derived-{sources[i].name}") for i in todo])
            files = []
            pending = set(todo) if computed is not None else set()
            for i, (src, target) in enumerate(zip(sources, targets, strict=True)):
                if computed is not None and i in pending:  # in file order; a worker's error is raised here
                    target.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(next(computed), target)
                elif not target.exists():
                    legacy = self._derived_dir(derive, "") / src.parent.name / src.name
                    if legacy.exists():  # signals without CARRIED: the exchange file still has those columns
                        table = _with_carried(pq.read_table(legacy), read_exchange_file(src, list(CARRIED)))
                        tmp = self._write_staged(table, src)
                    elif not self.content:
                        raise StoreError(f"{target}: signals missing in a no-content store (ingested with "
                                         f"another signal version?); re-ingest from the original logs")
                    else:
                        tmp = self._write_staged(_derived_table(derive, read_exchange_file(src, columns)), src)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(tmp, target)
                files.append(str(target))
                if on_file:
                    on_file()
        return files

    def _write_staged(self, table: pa.Table, src: Path) -> Path:
        tmp = self._own_staging() / f"derived-{src.name}"
        pq.write_table(table, tmp, compression="zstd")
        return tmp

    def write_accounts(self, table: pa.Table) -> int:
        """Merge account records: a newer record for an account replaces the older one."""
        path = self.root / "accounts" / "accounts.parquet"
        table = table.cast(ACCOUNT_SCHEMA)
        if path.exists():
            old = _with_columns(pq.read_table(path), ACCOUNT_SCHEMA)
            old = old.filter(pc.invert(pc.is_in(old.column("account_id"), value_set=table.column("account_id"))))
            table = pa.concat_tables([old, table])
        # last record wins for accounts repeated within the input
        ids = table.column("account_id").to_pylist()
        last = {account: i for i, account in enumerate(ids)}
        if len(last) != len(ids):
            table = table.take(sorted(last.values()))
        tmp = self.root / "_staging" / f"accounts-{uuid.uuid4().hex}.parquet"
        pq.write_table(table, tmp, compression="zstd")
        os.replace(tmp, path)
        return len(table)

    # ---- reading ---------------------------------------------------------
    def exchange_files(self) -> list[str]:
        return sorted(str(p) for p in (self.root / "exchanges").glob("day=*/*.parquet"))

    def connect(self, threads: int | None = None, memory_limit: str | None = None) -> duckdb.DuckDBPyConnection:
        """A DuckDB connection with views ``exchanges`` and ``accounts`` over this store."""
        import duckdb  # here, not at the top: ingest workers write Parquet and never query

        con = duckdb.connect()
        if threads:
            con.execute(f"SET threads = {int(threads)}")
        if memory_limit:
            con.execute(f"SET memory_limit = '{memory_limit}'")
        # what does not fit spills here (DuckDB's default is ./.tmp under whatever directory the user is in)
        # DuckDB creates it only if a query spills; cleanups keep it while this process runs
        spill = self.root / "_staging" / f"pid-{os.getpid()}-duckdb"
        con.execute(f"SET temp_directory = '{_sql_str(str(spill))}'")
        con.execute(f"CREATE VIEW exchanges AS {self._exchanges_sql(con)}")
        accounts = self.root / "accounts" / "accounts.parquet"
        if accounts.exists():
            query = f"SELECT * FROM read_parquet('{_sql_str(str(accounts))}')"
            if not file_columns(accounts) >= _ACCOUNT_NAMES:  # written before a column was added: nulls for it
                con.register("_empty_accounts", ACCOUNT_SCHEMA.empty_table())
                query = f"SELECT * FROM _empty_accounts UNION ALL BY NAME {query}"
            con.execute(f"CREATE VIEW accounts AS {query}")
        else:
            con.register("_empty_accounts", ACCOUNT_SCHEMA.empty_table())
            con.execute("CREATE VIEW accounts AS SELECT * FROM _empty_accounts")
        return con

    def _exchanges_sql(self, con: duckdb.DuckDBPyConnection) -> str:
        """The query behind view ``exchanges``. Files from before a column was added to :data:`EXCHANGE_SCHEMA`
        lack it (DuckDB would refuse to read them with newer files): they are read apart and unioned by name
        with an empty table of the schema, so their missing columns are nulls of the right type."""
        files = self.exchange_files()
        current = [f for f in files if file_columns(f) >= _SCHEMA_NAMES]
        if files and len(current) == len(files):
            return f"SELECT * FROM read_parquet({_sql_list(files)})"
        con.register("_empty_exchanges", EXCHANGE_SCHEMA.empty_table())
        parts = ["SELECT * FROM _empty_exchanges"]
        if current:
            parts.append(f"SELECT * FROM read_parquet({_sql_list(current)})")
        older = sorted(set(files) - set(current))
        if older:  # they may lack different columns: each is filled in from the union of the others' names
            parts.append(f"SELECT * FROM read_parquet({_sql_list(older)}, union_by_name = true)")
        return " UNION ALL BY NAME ".join(parts)

    def exchanges(self, columns: list[str] | None = None, con: duckdb.DuckDBPyConnection | None = None
                  ) -> duckdb.DuckDBPyRelation:
        """Exchanges as a DuckDB relation (``.to_arrow_table()`` for Arrow, ``.df()`` for pandas)."""
        con = con or self.connect()
        rel = con.table("exchanges")
        return rel.select(*columns) if columns else rel

    def accounts(self, con: duckdb.DuckDBPyConnection | None = None) -> duckdb.DuckDBPyRelation:
        con = con or self.connect()
        return con.table("accounts")

    def count(self) -> int:
        files = self.exchange_files()
        return sum(pq.ParquetFile(f).metadata.num_rows for f in files)

    def summary(self) -> dict[str, Any]:
        """Headline figures for the CLI summary: exchanges, accounts, span, models, quarantined."""
        con = self.connect()
        row = con.execute(
            "SELECT count(*), count(DISTINCT account_id), min(ts), max(ts), count(DISTINCT model),"
            " count(DISTINCT ip) FROM exchanges").fetchone()
        assert row is not None  # an aggregate always has its one row
        models = con.execute(
            "SELECT model, count(*) AS n FROM exchanges GROUP BY model ORDER BY n DESC LIMIT 10").fetchall()
        accounts = (con.execute("SELECT count(*) FROM accounts").fetchone() or (0,))[0]
        quarantined = sum(1 for p in (self.root / "quarantine").glob("*.errors.jsonl")
                          for _ in p.open("rb"))
        return {"exchanges": row[0], "accounts_seen": row[1], "first_ts": row[2], "last_ts": row[3],
                "models": dict(models), "distinct_ips": row[5], "account_records": accounts,
                "quarantined": quarantined, "content": self.content}


def _sql_str(value: str) -> str:
    return value.replace("'", "''")


def _sql_list(values: list[str]) -> str:
    return "[" + ", ".join(f"'{_sql_str(v)}'" for v in values) + "]"


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + f".{uuid.uuid4().hex}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _alive(pid: str) -> bool:
    """Whether process ``pid`` (on this host) still runs."""
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True
