"""SQLite persistence for the hub: every accepted object is committed before the hub answers 202.

``date_added`` is strictly increasing (microseconds) and ``seq`` orders rows, so
``added_after`` and the opaque ``next`` cursor page without gaps or repeats.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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


def format_us(us: int) -> str:
    return datetime.fromtimestamp(us / 1e6, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_us(text: str) -> int:
    value = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError("timestamp without timezone")
    return int(round(value.timestamp() * 1e6))


class HubDB:
    """Thread-safe SQLite store (one connection, one lock; the hub is I/O-light)."""

    def __init__(self, path: str) -> None:
        if "://" in path:
            raise ValueError(f"database {path!r}: only SQLite paths are supported in this build")
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
        now = int(datetime.now(UTC).timestamp() * 1e6)
        self._last_us = max(now, self._last_us + 1)
        return self._last_us

    def add(self, collection: str, items: list[tuple[dict[str, Any], str, str | None, str]]) -> list[bool]:
        """Insert (object, version, tlp, producer) rows in one transaction; True where new."""
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
        sql = ["SELECT seq, id, version, added_us, type, spec_version, tlp, producer, body FROM objects "
               "WHERE collection = ?"]
        args: list[Any] = [collection]
        if added_after is not None:
            sql.append("AND added_us > ?")
            args.append(added_after)
        if after_seq is not None:
            sql.append("AND seq > ?")
            args.append(after_seq)
        for column, values in (("id", ids), ("type", types)):
            if values:
                sql.append(f"AND {column} IN ({', '.join('?' * len(values))})")
                args.extend(values)
        sql.append("ORDER BY seq")
        with self._lock:
            rows = self._con.execute(" ".join(sql), args).fetchall()
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
