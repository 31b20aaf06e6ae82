"""Hub persistence: every accepted object is committed before the hub answers 202.

Two backends behind one interface (:class:`HubStore`): SQLite (the default, a file
path) and PostgreSQL (a ``postgresql://`` URL, optional: ``pip install
'distillguard[postgres]'``, see :mod:`distillguard.intel.hub.postgres`).
:func:`open_db` picks one from the configured ``database``.

``date_added`` is strictly increasing (microseconds) and ``seq`` orders rows, so
``added_after`` and the opaque ``next`` cursor page without gaps or repeats.

Every object id is bound, hub-wide and for good (deleting the object keeps the
binding), to the member that first stored it: the ``owners`` table. Another
member's versions of that id are refused, and reads skip any row whose producer
is not the id's owner (rows a hub stored before owners existed: the table is
filled from the first producer of each id when it is created). Only the fixed
objects that every member posts byte-identical (TLP definitions, the
distillguard extension and project identity) belong to nobody. Members' identity
ids, which anyone can compute, are claimed for their members when a hub starts
(:meth:`HubStore.claim`), whoever posted them first.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
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
_OWNERS = "CREATE TABLE owners (id TEXT PRIMARY KEY, producer TEXT NOT NULL)"
POSTGRES_SCHEMES = ("postgresql", "postgres")

# (object, version, tlp, producer) as the app hands them to HubStore.add
Item = tuple[dict[str, Any], str, str | None, str]
OTHER_PRODUCER = "this id belongs to another producer"
CONFLICT = "a different object with this id and version is already stored"


@cache
def unbound_ids() -> frozenset[str]:
    """Ids of the fixed objects every member may post (byte-identical): they belong to no producer."""
    from distillguard.intel.extension import EXTENSION_ID, PROJECT_IDENTITY_ID
    from distillguard.intel.refdata import tlp_by_id

    return frozenset(tlp_by_id()) | {EXTENSION_ID, PROJECT_IDENTITY_ID}


def same_object(stored: bytes, obj: dict[str, Any]) -> bool:
    """Whether a stored body and a posted object are the same JSON (key order aside; 1, 1.0 and true differ)."""
    return orjson.dumps(orjson.loads(stored), option=orjson.OPT_SORT_KEYS) == \
        orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)


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

    def add(self, collection: str, items: list[Item]) -> list[str | None]:
        """Store (object, version, tlp, producer) rows in one committed transaction, binding new ids to their
        producer. Per item: None when stored, or already stored with the same content (idempotent re-post);
        else why not (:data:`OTHER_PRODUCER`: the id is bound to another member; :data:`CONFLICT`: another
        body under the same id and version)."""
        ...

    def owner(self, object_id: str) -> str | None:
        """The member an id is bound to (None for unbound or unknown ids)."""
        ...

    def claim(self, owners: dict[str, str]) -> None:
        """Bind ids to members whatever was stored before (members' identity ids, which anyone can compute)."""
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
        self._con.execute("BEGIN IMMEDIATE")
        try:
            if self._con.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'owners'").fetchone() \
                    is None:
                self._con.execute(_OWNERS)
                for sql, args in fill_owners_sql("objects", "owners", "?"):
                    self._con.execute(sql, args)
            self._con.execute("COMMIT")
        except BaseException:
            self._con.execute("ROLLBACK")
            raise
        self._lock = threading.Lock()
        self._last_us = self._con.execute("SELECT coalesce(max(added_us), 0) FROM objects").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._con.close()

    def _next_us(self) -> int:
        self._last_us = max(now_us(), self._last_us + 1)
        return self._last_us

    def add(self, collection: str, items: list[Item]) -> list[str | None]:
        out: list[str | None] = []
        with self._lock:
            self._con.execute("BEGIN IMMEDIATE")
            try:
                for obj, version, tlp, producer in items:
                    out.append(self._add_one(collection, obj, version, tlp, producer))
                self._con.execute("COMMIT")
            except BaseException:
                self._con.execute("ROLLBACK")
                raise
        return out

    def _add_one(self, collection: str, obj: dict[str, Any], version: str, tlp: str | None,
                 producer: str) -> str | None:
        con = self._con
        if obj["id"] not in unbound_ids():
            con.execute("INSERT OR IGNORE INTO owners (id, producer) VALUES (?, ?)", (obj["id"], producer))
            if con.execute("SELECT producer FROM owners WHERE id = ?", (obj["id"],)).fetchone()[0] != producer:
                return OTHER_PRODUCER
        row = con.execute("SELECT body, producer, seq FROM objects WHERE collection = ? AND id = ? AND version = ?",
                          (collection, obj["id"], version)).fetchone()
        if row is not None and (row[1] == producer or obj["id"] in unbound_ids()):
            return None if same_object(row[0], obj) else CONFLICT
        if row is not None:  # a row of someone who does not own the id (stored before it was claimed): never served
            con.execute("DELETE FROM objects WHERE seq = ?", (row[2],))
        con.execute("INSERT INTO objects (collection, id, version, added_us, type, spec_version, tlp, producer, body)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (collection, obj["id"], version, self._next_us(), obj["type"], obj.get("spec_version", "2.1"),
                     tlp, producer, orjson.dumps(obj)))
        return None

    def owner(self, object_id: str) -> str | None:
        with self._lock:
            row = self._con.execute("SELECT producer FROM owners WHERE id = ?", (object_id,)).fetchone()
        return row[0] if row else None

    def claim(self, owners: dict[str, str]) -> None:
        with self._lock:
            self._con.execute("BEGIN IMMEDIATE")
            try:
                self._con.executemany("INSERT INTO owners (id, producer) VALUES (?, ?) ON CONFLICT (id) DO UPDATE"
                                      " SET producer = excluded.producer", list(owners.items()))
                self._con.execute("COMMIT")
            except BaseException:
                self._con.execute("ROLLBACK")
                raise

    def query(self, collection: str, *, added_after: int | None = None, after_seq: int | None = None,
              ids: list[str] | None = None, types: list[str] | None = None) -> list[Row]:
        sql, args = select_sql(collection, added_after, after_seq, ids, types, "?", "objects", "owners")
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




def select_sql(collection: str, added_after: int | None, after_seq: int | None, ids: list[str] | None,
               types: list[str] | None, mark: str, table: str, owners: str) -> tuple[str, list[Any]]:
    """The objects query shared by both backends (``mark``: the driver's placeholder): rows of ids' owners only."""
    sql = [f"SELECT o.seq, o.id, o.version, o.added_us, o.type, o.spec_version, o.tlp, o.producer, o.body "
           f"FROM {table} o LEFT JOIN {owners} w ON w.id = o.id "
           f"WHERE o.collection = {mark} AND (w.producer IS NULL OR w.producer = o.producer)"]
    args: list[Any] = [collection]
    if added_after is not None:
        sql.append(f"AND o.added_us > {mark}")
        args.append(added_after)
    if after_seq is not None:
        sql.append(f"AND o.seq > {mark}")
        args.append(after_seq)
    for column, values in (("id", ids), ("type", types)):
        if values:
            sql.append(f"AND o.{column} IN ({', '.join([mark] * len(values))})")
            args.extend(values)
    sql.append("ORDER BY o.seq")
    return " ".join(sql), args


def fill_owners_sql(table: str, owners: str, mark: str) -> list[tuple[str, list[Any]]]:
    """Statements binding the ids already stored (by a hub that predates owners) to their first producer."""
    unbound = sorted(unbound_ids())
    return [(f"INSERT INTO {owners} (id, producer) SELECT o.id, o.producer FROM {table} o "
             f"JOIN (SELECT id, min(seq) AS first FROM {table} GROUP BY id) f ON o.seq = f.first "
             f"WHERE o.id NOT IN ({', '.join([mark] * len(unbound))})", list(unbound))]
