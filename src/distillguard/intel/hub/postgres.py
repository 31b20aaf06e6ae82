"""PostgreSQL backend for the hub (``database: postgresql://user@host/db``), behind :class:`~.db.HubStore`.

Optional: needs psycopg 3 (``pip install 'distillguard[postgres]'``). Several hub
processes may share one database: inserts take a transaction-scoped advisory lock,
so ``date_added`` (microseconds, from the database's latest row) and ``seq`` increase
together across processes, and a reader paging by ``next`` never sees a lower
``seq`` commit after a higher one. Every add is committed (``synchronous_commit``
as the server has it, ``on`` by default) before the hub answers 202. Tables
``dg_hub_objects``, ``dg_hub_owners`` and ``dg_hub_status`` are created on first use, in the
connection's ``search_path`` schema (e.g. ``?options=-csearch_path%3Dintel``); ids are bound to their
first producer as in :mod:`~.db`.
A dropped connection is reopened once per call.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

import orjson

from distillguard.intel.hub.db import (
    CONFLICT,
    OTHER_PRODUCER,
    Item,
    Row,
    fill_owners_sql,
    now_us,
    redact,
    same_object,
    select_sql,
    unbound_ids,
)

try:
    import psycopg
except ImportError:  # pragma: no cover - exercised only without the extra
    psycopg = None  # type: ignore[assignment]  # the optional extra is missing: checked before use

T = TypeVar("T")
_LOCK_KEY = 0x64675F687562  # "dg_hub": serialises inserts (and schema creation) across hub processes
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS dg_hub_objects ("
    " seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
    " collection TEXT NOT NULL, id TEXT NOT NULL, version TEXT NOT NULL,"
    " added_us BIGINT NOT NULL, type TEXT NOT NULL, spec_version TEXT NOT NULL,"
    " tlp TEXT, producer TEXT NOT NULL, body BYTEA NOT NULL,"
    " UNIQUE (collection, id, version))",
    "CREATE INDEX IF NOT EXISTS dg_hub_objects_added ON dg_hub_objects (collection, added_us)",
    "CREATE TABLE IF NOT EXISTS dg_hub_status (id TEXT PRIMARY KEY, member TEXT NOT NULL, body BYTEA NOT NULL)",
)


class PostgresHubDB:
    """One connection (autocommit, explicit transactions) behind a lock, like the SQLite backend."""

    def __init__(self, url: str, connect_timeout: int = 10) -> None:
        if psycopg is None:
            raise ValueError(f"database {redact(url)!r}: PostgreSQL needs psycopg 3 "
                             "(pip install 'distillguard[postgres]')")
        self.url = url
        self.connect_timeout = connect_timeout
        self._lock = threading.Lock()
        self._con: Any = None
        with self._lock:
            self._run(self._create)

    def _connect(self) -> Any:
        try:
            return psycopg.connect(self.url, autocommit=True, connect_timeout=self.connect_timeout)
        except psycopg.OperationalError as exc:
            raise ValueError(f"database {redact(self.url)!r}: cannot connect ({str(exc).strip()})") from None

    def _run(self, work: Callable[[Any], T]) -> T:
        """``work(connection)``, reconnecting once when the connection was lost (caller holds the lock)."""
        for attempt in (0, 1):
            if self._con is None or self._con.closed or self._con.broken:
                self._con = self._connect()
            try:
                return work(self._con)
            except psycopg.OperationalError:
                if attempt or not (self._con.closed or self._con.broken):
                    raise
        raise AssertionError("unreachable")

    @staticmethod
    def _create(con: Any) -> None:
        with con.transaction():
            con.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK_KEY])
            for statement in _SCHEMA:
                con.execute(statement)
            if con.execute("SELECT to_regclass('dg_hub_owners')").fetchone()[0] is None:
                con.execute("CREATE TABLE dg_hub_owners (id TEXT PRIMARY KEY, producer TEXT NOT NULL)")
                for sql, args in fill_owners_sql("dg_hub_objects", "dg_hub_owners", "%s"):
                    con.execute(sql, args)

    def close(self) -> None:
        with self._lock:
            if self._con is not None:
                self._con.close()

    def add(self, collection: str, items: list[Item]) -> list[str | None]:
        def work(con: Any) -> list[str | None]:
            out: list[str | None] = []
            with con.transaction():
                con.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK_KEY])
                last = con.execute("SELECT coalesce(max(added_us), 0) FROM dg_hub_objects WHERE collection = %s",
                                   [collection]).fetchone()[0]
                for obj, version, tlp, producer in items:
                    if obj["id"] not in unbound_ids():
                        con.execute("INSERT INTO dg_hub_owners (id, producer) VALUES (%s, %s)"
                                    " ON CONFLICT (id) DO NOTHING", [obj["id"], producer])
                        owner = con.execute("SELECT producer FROM dg_hub_owners WHERE id = %s",
                                            [obj["id"]]).fetchone()[0]
                        if owner != producer:
                            out.append(OTHER_PRODUCER)
                            continue
                    row = con.execute("SELECT body, producer, seq FROM dg_hub_objects WHERE collection = %s"
                                      " AND id = %s AND version = %s", [collection, obj["id"], version]).fetchone()
                    if row is not None and (row[1] == producer or obj["id"] in unbound_ids()):
                        out.append(None if same_object(bytes(row[0]), obj) else CONFLICT)
                        continue
                    if row is not None:  # a row of someone who does not own the id: never served, replaced
                        con.execute("DELETE FROM dg_hub_objects WHERE seq = %s", [row[2]])
                    last = max(now_us(), last + 1)
                    con.execute(
                        "INSERT INTO dg_hub_objects (collection, id, version, added_us, type, spec_version, tlp,"
                        " producer, body) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                        [collection, obj["id"], version, last, obj["type"], obj.get("spec_version", "2.1"), tlp,
                         producer, orjson.dumps(obj)])
                    out.append(None)
            return out

        if not items:
            return []
        with self._lock:
            return self._run(work)

    def owner(self, object_id: str) -> str | None:
        with self._lock:
            row = self._run(lambda con: con.execute("SELECT producer FROM dg_hub_owners WHERE id = %s",
                                                    [object_id]).fetchone())
        return row[0] if row else None

    def claim(self, owners: dict[str, str]) -> None:
        def work(con: Any) -> None:
            with con.transaction():
                for object_id, producer in owners.items():
                    con.execute("INSERT INTO dg_hub_owners (id, producer) VALUES (%s, %s) ON CONFLICT (id)"
                                " DO UPDATE SET producer = excluded.producer", [object_id, producer])

        with self._lock:
            self._run(work)

    def query(self, collection: str, *, added_after: int | None = None, after_seq: int | None = None,
              ids: list[str] | None = None, types: list[str] | None = None) -> list[Row]:
        sql, args = select_sql(collection, added_after, after_seq, ids, types, "%s", "dg_hub_objects",
                               "dg_hub_owners")
        with self._lock:
            rows = self._run(lambda con: con.execute(sql, args).fetchall())
        return [Row(seq, id_, version, added, type_, spec, tlp, producer, bytes(body))
                for seq, id_, version, added, type_, spec, tlp, producer, body in rows]

    def delete(self, collection: str, object_id: str) -> int:
        with self._lock:
            return self._run(lambda con: con.execute(
                "DELETE FROM dg_hub_objects WHERE collection = %s AND id = %s", [collection, object_id]).rowcount)

    def put_status(self, status: dict[str, Any], member: str) -> None:
        with self._lock:
            self._run(lambda con: con.execute(
                "INSERT INTO dg_hub_status (id, member, body) VALUES (%s, %s, %s)"
                " ON CONFLICT (id) DO UPDATE SET member = excluded.member, body = excluded.body",
                [status["id"], member, orjson.dumps(status)]))

    def get_status(self, status_id: str, member: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._run(lambda con: con.execute(
                "SELECT body FROM dg_hub_status WHERE id = %s AND member = %s", [status_id, member]).fetchone())
        return orjson.loads(bytes(row[0])) if row else None
