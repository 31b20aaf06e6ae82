"""Hub persistence: every accepted object is committed before the hub answers 202.

Two backends behind one interface (:class:`HubStore`): SQLite (the default, a file
path) and PostgreSQL (a ``postgresql://`` URL, optional: ``pip install
'distillguard[postgres]'``, see :mod:`distillguard.intel.hub.postgres`).
:func:`open_db` picks one from the configured ``database``.

``date_added`` is strictly increasing (microseconds) and ``seq`` orders rows, so
``added_after`` and the opaque ``next`` cursor page without gaps or repeats.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import orjson

_SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    collection TEXT NOT NULL, id TEXT NOT NULL, version TEXT NOT NULL,
    added_us INTEGER NOT NULL, type TEXT NOT NULL, spec_version TEXT NOT NULL,
    tlp TEXT, producer TEXT NOT NULL, body BLOB NOT NULL,
    UNIQUE (collection, id, version));
CREATE INDEX IF NOT EXISTS objects_added ON objects (collection, added_us);
CREATE TABLE IF NOT EXISTS status (id TEXT PRIMARY KEY, member TEXT NOT NULL, body BLOB NOT NULL);
"""
POSTGRES_SCHEMES = ("postgresql", "postgres")

# (object, version, tlp, producer) as the app hands them to HubStore.add
Item = tuple[dict[str, Any], str, str | None, str]


@dataclass
class Row:
    seq: int
    id: str
    version: str
    added_us: int
    type: str
    spec_version: str
    tlp: str | None
    producer: str
    body: bytes

    @property
    def date_added(self) -> str:
        return format_us(self.added_us)


class HubStore(Protocol):
    """What the hub needs from its database; SQLite and PostgreSQL implement it."""

    def close(self) -> None: ...

    def add(self, collection: str, items: list[Item]) -> list[bool]:
        """Insert (object, version, tlp, producer) rows in one committed transaction; True where new."""
        ...

    def query(self, collection: str, *, added_after: int | None = None, after_seq: int | None = None,
              ids: list[str] | None = None, types: list[str] | None = None) -> list[Row]:
        """Rows of one collection in ``seq`` order, filtered."""
        ...

    def delete(self, collection: str, object_id: str) -> int: ...

    def put_status(self, status: dict[str, Any], member: str) -> None: ...

    def get_status(self, status_id: str, member: str) -> dict[str, Any] | None: ...


def format_us(us: int) -> str:
    return datetime.fromtimestamp(us / 1e6, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_us(text: str) -> int:
    value = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError("timestamp without timezone")
    return int(round(value.timestamp() * 1e6))


def now_us() -> int:
    return int(datetime.now(UTC).timestamp() * 1e6)


def open_db(database: str) -> HubStore:
    """The backend for ``database``: ``postgresql://...`` (PostgreSQL), a path or ``sqlite:///path`` (SQLite)."""
    scheme = urlsplit(database).scheme.lower() if "://" in database else ""
    if scheme in POSTGRES_SCHEMES:
        from distillguard.intel.hub.postgres import PostgresHubDB

        return PostgresHubDB(database)
    if scheme == "sqlite":
        return HubDB(database.split("://", 1)[1] or ":memory:")
    if scheme:
        raise ValueError(f"database {redact(database)!r}: unsupported scheme {scheme!r} "
                         "(a SQLite path or a postgresql:// URL)")
    return HubDB(database)


def redact(database: str) -> str:
    """The database setting with any password in a URL replaced by ``***`` (for logs)."""
    if "://" not in database:
        return database
    parts = urlsplit(database)
    if parts.password is None:
        return database
    netloc = f"{parts.username or ''}:***@{parts.hostname or ''}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


class HubDB:
    """SQLite backend: thread-safe (one connection, one lock; the hub is I/O-light); WAL, synchronous=FULL."""

    def __init__(self, path: str) -> None:
        if "://" in path:
            raise ValueError(f"database {redact(path)!r}: not a SQLite path (use open_db for URLs)")
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._con = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._con.execute("PRAGMA journal_mode=WAL")
        self._con.execute("PRAGMA synchronous=FULL")
        self._con.executescript(_SCHEMA)
        self._lock = threading.Lock()
        self._last_us = self._con.execute("SELECT coalesce(max(added_us), 0) FROM objects").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._con.close()

    def _next_us(self) -> int:
        self._last_us = max(now_us(), self._last_us + 1)
        return self._last_us

    def add(self, collection: str, items: list[Item]) -> list[bool]:
        out = []
        with self._lock:
            self._con.execute("BEGIN IMMEDIATE")
            try:
                for obj, version, tlp, producer in items:
                    cur = self._con.execute(
                        "INSERT OR IGNORE INTO objects (collection, id, version, added_us, type, spec_version, tlp,"
                        " producer, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (collection, obj["id"], version, self._next_us(), obj["type"],
                         obj.get("spec_version", "2.1"), tlp, producer, orjson.dumps(obj)))
                    out.append(cur.rowcount == 1)
                self._con.execute("COMMIT")
            except BaseException:
                self._con.execute("ROLLBACK")
                raise
        return out

    def query(self, collection: str, *, added_after: int | None = None, after_seq: int | None = None,
              ids: list[str] | None = None, types: list[str] | None = None) -> list[Row]:
        sql, args = select_sql(collection, added_after, after_seq, ids, types, "?", "objects")
        with self._lock:
            rows = self._con.execute(sql, args).fetchall()
        return [Row(*r) for r in rows]

    def delete(self, collection: str, object_id: str) -> int:
        with self._lock:
            return self._con.execute("DELETE FROM objects WHERE collection = ? AND id = ?",
                                     (collection, object_id)).rowcount

    def put_status(self, status: dict[str, Any], member: str) -> None:
        with self._lock:
            self._con.execute("INSERT OR REPLACE INTO status (id, member, body) VALUES (?, ?, ?)",
                              (status["id"], member, orjson.dumps(status)))

    def get_status(self, status_id: str, member: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._con.execute("SELECT body FROM status WHERE id = ? AND member = ?",
                                    (status_id, member)).fetchone()
        return orjson.loads(row[0]) if row else None


SQLiteHubDB = HubDB


def select_sql(collection: str, added_after: int | None, after_seq: int | None, ids: list[str] | None,
               types: list[str] | None, mark: str, table: str) -> tuple[str, list[Any]]:
    """The objects query shared by both backends (``mark``: the driver's placeholder)."""
    sql = [f"SELECT seq, id, version, added_us, type, spec_version, tlp, producer, body FROM {table} "
           f"WHERE collection = {mark}"]
    args: list[Any] = [collection]
    if added_after is not None:
        sql.append(f"AND added_us > {mark}")
        args.append(added_after)
    if after_seq is not None:
        sql.append(f"AND seq > {mark}")
        args.append(after_seq)
    for column, values in (("id", ids), ("type", types)):
        if values:
            sql.append(f"AND {column} IN ({', '.join([mark] * len(values))})")
            args.extend(values)
    sql.append("ORDER BY seq")
    return " ".join(sql), args
