"""The console's own records: users, sessions, and three append-only logs (audit, decisions, case events).

Two backends behind one class: SQLite (``sqlite:///FILE``, the default) and PostgreSQL (``postgresql://...``,
psycopg 3). The logs are append-only twice over: the database refuses UPDATE and DELETE on them (triggers), and
every audit entry carries the SHA-256 of the previous one (:meth:`ConsoleDB.verify_audit` walks the chain), so an
edit made behind the database's back shows. Appends are serialised (a lock, and an advisory lock on
PostgreSQL) so the chain has no forks.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

LOGS = ("dg_console_audit", "dg_console_decisions", "dg_console_case_events")
_LOCK_KEY = 0x64675F636F6E  # "dg_con"
GENESIS = "0" * 64


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _tables(serial: str, blob: str) -> list[str]:
    return [
        "CREATE TABLE IF NOT EXISTS dg_console_users (name TEXT PRIMARY KEY, role TEXT NOT NULL, hash TEXT NOT NULL,"
        " created TEXT NOT NULL, active INTEGER NOT NULL DEFAULT 1)",
        "CREATE TABLE IF NOT EXISTS dg_console_sessions (token TEXT PRIMARY KEY, name TEXT NOT NULL,"
        " created DOUBLE PRECISION NOT NULL, seen DOUBLE PRECISION NOT NULL, csrf TEXT NOT NULL)",
        f"CREATE TABLE IF NOT EXISTS dg_console_audit (seq {serial}, at TEXT NOT NULL, actor TEXT NOT NULL,"
        " role TEXT NOT NULL, action TEXT NOT NULL, target TEXT NOT NULL, why TEXT NOT NULL, detail TEXT NOT NULL,"
        " ip TEXT NOT NULL, prev TEXT NOT NULL, hash TEXT NOT NULL)",
        f"CREATE TABLE IF NOT EXISTS dg_console_decisions (seq {serial}, at TEXT NOT NULL, account_id TEXT NOT NULL,"
        f" body {blob} NOT NULL)",
        "CREATE INDEX IF NOT EXISTS dg_console_decisions_account ON dg_console_decisions (account_id)",
        f"CREATE TABLE IF NOT EXISTS dg_console_case_events (seq {serial}, at TEXT NOT NULL, case_id TEXT NOT NULL,"
        f" actor TEXT NOT NULL, kind TEXT NOT NULL, why TEXT NOT NULL, body {blob} NOT NULL)",
        "CREATE INDEX IF NOT EXISTS dg_console_case_events_case ON dg_console_case_events (case_id)",
    ]


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    at: str
    actor: str
    role: str
    action: str
    target: str
    why: str
    detail: dict[str, Any]
    ip: str
    prev: str
    hash: str

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "at": self.at, "actor": self.actor, "role": self.role, "action": self.action,
                "target": self.target, "why": self.why, "detail": self.detail, "ip": self.ip, "prev": self.prev,
                "hash": self.hash}


def entry_hash(prev: str, at: str, actor: str, role: str, action: str, target: str, why: str, detail: str,
               ip: str) -> str:
    body = orjson.dumps([prev, at, actor, role, action, target, why, detail, ip])
    return hashlib.sha256(body).hexdigest()


class ConsoleDB:
    """``sqlite:///path`` (or a bare path) or ``postgresql://...``."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._lock = threading.RLock()
        self._con: Any  # a DB-API connection: psycopg's or sqlite3's
        if url.startswith(("postgresql://", "postgres://")):
            import psycopg

            self.kind = "postgres"
            self._con = psycopg.connect(url, autocommit=True)
            serial, blob = "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY", "BYTEA"
        else:
            path = url[len("sqlite:///"):] if url.startswith("sqlite:///") else url
            if path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            self.kind = "sqlite"
            self._con = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._con.execute("PRAGMA journal_mode=WAL")
            self._con.execute("PRAGMA synchronous=FULL")
            serial, blob = "INTEGER PRIMARY KEY AUTOINCREMENT", "BLOB"
        with self._tx():
            if self.kind == "postgres":
                self._exec("SELECT pg_advisory_xact_lock(?)", (_LOCK_KEY,))
            for statement in _tables(serial, blob):
                self._exec(statement)
            self._append_only()

    # ---- plumbing -------------------------------------------------------
    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.kind == "postgres" else sql

    def _exec(self, sql: str, args: tuple = ()) -> Any:
        if self.kind == "postgres" and not args:  # psycopg reads '%' as a placeholder whenever params are given
            return self._con.execute(sql)
        return self._con.execute(self._sql(sql), args)

    def _all(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self._lock:
            return [tuple(r) for r in self._exec(sql, args).fetchall()]

    @contextmanager
    def _tx(self) -> Iterator[None]:
        with self._lock:
            if self.kind == "sqlite":
                self._con.execute("BEGIN IMMEDIATE")
                try:
                    yield
                except BaseException:
                    self._con.execute("ROLLBACK")
                    raise
                self._con.execute("COMMIT")
            else:
                with self._con.transaction():
                    self._exec("SELECT pg_advisory_xact_lock(?)", (_LOCK_KEY,))
                    yield

    def _append_only(self) -> None:
        for table in LOGS:
            if self.kind == "sqlite":
                for op in ("UPDATE", "DELETE"):
                    self._exec(f"CREATE TRIGGER IF NOT EXISTS {table}_no_{op.lower()} BEFORE {op} ON {table} "
                               f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END")
            else:
                self._exec("CREATE OR REPLACE FUNCTION dg_console_append_only() RETURNS trigger AS $$ BEGIN "
                           "RAISE EXCEPTION '% is append-only', TG_TABLE_NAME; END $$ LANGUAGE plpgsql")
                self._exec(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
                self._exec(f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                           "FOR EACH ROW EXECUTE FUNCTION dg_console_append_only()")

    def close(self) -> None:
        with self._lock:
            self._con.close()

    # ---- users ----------------------------------------------------------
    def put_user(self, name: str, role: str, password_hash: str) -> None:
        with self._tx():
            if self._exec("SELECT 1 FROM dg_console_users WHERE name = ?", (name,)).fetchone():
                self._exec("UPDATE dg_console_users SET role = ?, hash = ?, active = 1 WHERE name = ?",
                           (role, password_hash, name))
            else:
                self._exec("INSERT INTO dg_console_users (name, role, hash, created, active) VALUES (?, ?, ?, ?, 1)",
                           (name, role, password_hash, now_iso()))

    def set_hash(self, name: str, password_hash: str) -> None:
        with self._tx():
            self._exec("UPDATE dg_console_users SET hash = ? WHERE name = ?", (password_hash, name))

    def user(self, name: str) -> tuple[str, str, bool] | None:
        """(role, hash, active) of a user."""
        rows = self._all("SELECT role, hash, active FROM dg_console_users WHERE name = ?", (name,))
        return (rows[0][0], rows[0][1], bool(rows[0][2])) if rows else None

    def users(self) -> list[tuple[str, str, str, bool]]:
        return [(r[0], r[1], r[2], bool(r[3])) for r in
                self._all("SELECT name, role, created, active FROM dg_console_users ORDER BY name")]

    # ---- sessions -------------------------------------------------------
    def new_session(self, token_hash: str, name: str, csrf: str) -> None:
        now = time.time()
        with self._tx():
            self._exec("INSERT INTO dg_console_sessions (token, name, created, seen, csrf) VALUES (?, ?, ?, ?, ?)",
                       (token_hash, name, now, now, csrf))

    def session(self, token_hash: str) -> tuple[str, float, float, str] | None:
        rows = self._all("SELECT name, created, seen, csrf FROM dg_console_sessions WHERE token = ?", (token_hash,))
        return (rows[0][0], float(rows[0][1]), float(rows[0][2]), rows[0][3]) if rows else None

    def touch_session(self, token_hash: str, when: float) -> None:
        with self._lock:
            self._exec("UPDATE dg_console_sessions SET seen = ? WHERE token = ?", (when, token_hash))

    def end_session(self, token_hash: str) -> None:
        with self._lock:
            self._exec("DELETE FROM dg_console_sessions WHERE token = ?", (token_hash,))

    def end_sessions_of(self, name: str) -> None:
        with self._lock:
            self._exec("DELETE FROM dg_console_sessions WHERE name = ?", (name,))

    # ---- audit ----------------------------------------------------------
    def audit(self, actor: str, role: str, action: str, target: str, why: str = "",
              detail: dict[str, Any] | None = None, ip: str = "") -> AuditEntry:
        """Append one entry (who, when, what, why) to the hash-chained audit log."""
        with self._tx():
            return self._audit_locked(actor, role, action, target, why, detail, ip)

    def _audit_locked(self, actor: str, role: str, action: str, target: str, why: str,
                      detail: dict[str, Any] | None, ip: str) -> AuditEntry:
        last = self._exec("SELECT hash FROM dg_console_audit ORDER BY seq DESC LIMIT 1").fetchone()
        prev = last[0] if last else GENESIS
        at = now_iso()
        text = orjson.dumps(detail or {}, option=orjson.OPT_SORT_KEYS).decode()
        digest = entry_hash(prev, at, actor, role, action, target, why, text, ip)
        cur = self._exec("INSERT INTO dg_console_audit (at, actor, role, action, target, why, detail, ip, prev, hash)"
                         " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING seq",
                         (at, actor, role, action, target, why, text, ip, prev, digest))
        seq = int(cur.fetchone()[0])
        return AuditEntry(seq, at, actor, role, action, target, why, detail or {}, ip, prev, digest)

    def audit_entries(self, target: str | None = None, limit: int = 200, actor: str | None = None
                      ) -> list[AuditEntry]:
        where, args = [], []
        if target:
            where.append("target = ?")
            args.append(target)
        if actor:
            where.append("actor = ?")
            args.append(actor)
        sql = ("SELECT seq, at, actor, role, action, target, why, detail, ip, prev, hash FROM dg_console_audit"
               + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY seq DESC LIMIT ?")
        rows = self._all(sql, (*args, limit))
        return [AuditEntry(int(r[0]), r[1], r[2], r[3], r[4], r[5], r[6], orjson.loads(r[7]), r[8], r[9], r[10])
                for r in rows]

    def verify_audit(self) -> tuple[bool, int, str]:
        """Walk the chain: (intact, entries checked, first problem)."""
        rows = self._all("SELECT seq, at, actor, role, action, target, why, detail, ip, prev, hash "
                         "FROM dg_console_audit ORDER BY seq")
        prev = GENESIS
        for r in rows:
            if r[9] != prev:
                return False, len(rows), f"entry {r[0]}: previous hash does not match"
            if entry_hash(r[9], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8]) != r[10]:
                return False, len(rows), f"entry {r[0]}: altered (hash does not match its content)"
            prev = r[10]
        return True, len(rows), ""

    # ---- decisions ------------------------------------------------------
    def add_decisions(self, bodies: list[dict[str, Any]], audits: list[tuple[str, str, str, str, str, dict, str]]
                      ) -> None:
        """Append analyst decisions and their audit entries in one transaction (all or none)."""
        with self._tx():
            for body in bodies:
                self._exec("INSERT INTO dg_console_decisions (at, account_id, body) VALUES (?, ?, ?)",
                           (body["at"], body["account_id"], orjson.dumps(body)))
            for entry in audits:
                self._audit_locked(*entry)

    def decisions(self, account_id: str | None = None) -> list[dict[str, Any]]:
        if account_id is None:
            rows = self._all("SELECT body FROM dg_console_decisions ORDER BY seq")
        else:
            rows = self._all("SELECT body FROM dg_console_decisions WHERE account_id = ? ORDER BY seq", (account_id,))
        return [orjson.loads(bytes(r[0])) for r in rows]

    # ---- case events ----------------------------------------------------
    def add_case_events(self, events: list[tuple[str, str, str, str, dict[str, Any]]],
                        audit: list[tuple[str, str, str, str, str, dict, str]]) -> None:
        """Append case events ``(case_id, actor, kind, why, body)`` and their audit entries atomically."""
        with self._tx():
            for case_id, actor, kind, why, body in events:
                self._exec("INSERT INTO dg_console_case_events (at, case_id, actor, kind, why, body) "
                           "VALUES (?, ?, ?, ?, ?, ?)", (now_iso(), case_id, actor, kind, why, orjson.dumps(body)))
            for entry in audit:
                self._audit_locked(*entry)

    def case_events(self) -> list[dict[str, Any]]:
        rows = self._all("SELECT seq, at, case_id, actor, kind, why, body FROM dg_console_case_events ORDER BY seq")
        return [{"seq": int(r[0]), "at": r[1], "case_id": r[2], "actor": r[3], "kind": r[4], "why": r[5],
                 "body": orjson.loads(bytes(r[6]))} for r in rows]
