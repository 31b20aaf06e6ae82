"""Console users, roles and sessions.

Roles and what they may do (:data:`PERMISSIONS`; every route names the one permission it needs, and
``tests/test_console_roles.py`` walks every route with every role):

========= ==== ======= ====== ====== ====== ===== =====
role      view content decide escalate cases export admin
========= ==== ======= ====== ====== ====== ===== =====
viewer    yes
analyst   yes  yes     yes    yes      yes
lead      yes  yes     yes    yes      yes    yes   yes
legal     yes  yes                     yes    yes
========= ==== ======= ====== ====== ====== ===== =====

``content`` is raw prompts and responses (every reveal is audited); ``admin`` is users and the audit log.

Passwords are argon2id (argon2-cffi, the same parameters as the TAXII hub). Sessions are random 256-bit tokens
in an HttpOnly, SameSite=Strict cookie; the database keeps only their SHA-256. A session ends after
``idle_s`` without a request or ``max_age_s`` after login, whichever comes first. Every state-changing request
carries the session's CSRF token (synchronizer token, compared in constant time) and, when the browser sends
one, an ``Origin`` equal to the console's own.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

from distillguard.console.db import ConsoleDB

ROLES = ("viewer", "analyst", "lead", "legal")
PERMISSIONS: dict[str, frozenset[str]] = {
    "viewer": frozenset({"view"}),
    "analyst": frozenset({"view", "content", "decide", "escalate", "cases"}),
    "lead": frozenset({"view", "content", "decide", "escalate", "cases", "export", "admin"}),
    "legal": frozenset({"view", "content", "cases", "export"}),
}
ALL_PERMISSIONS = ("view", "content", "decide", "escalate", "cases", "export", "admin")
_HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1, hash_len=32, salt_len=16, type=Type.ID)
_DUMMY = _HASHER.hash("distillguard-console-dummy")


def hash_password(password: str) -> str:
    if len(password) < 8:
        raise ValueError("password: at least 8 characters")
    return _HASHER.hash(password)


def check_password(password: str, encoded: str) -> bool:
    try:
        return _HASHER.verify(encoded, password)
    except (VerificationError, InvalidHashError):
        return False


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class User:
    name: str
    role: str
    csrf: str = ""
    token: str = ""

    def can(self, permission: str) -> bool:
        return permission in PERMISSIONS.get(self.role, frozenset())


class Auth:
    def __init__(self, db: ConsoleDB, idle_s: float = 1800.0, max_age_s: float = 12 * 3600.0) -> None:
        self.db = db
        self.idle_s, self.max_age_s = idle_s, max_age_s

    def add_user(self, name: str, role: str, password: str) -> None:
        if role not in ROLES:
            raise ValueError(f"role: expected one of {', '.join(ROLES)}, got {role!r}")
        if not name or not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
            raise ValueError("name: letters, digits, '-', '_' and '.' only")
        self.db.put_user(name, role, hash_password(password))
        self.db.end_sessions_of(name)  # a new password or role ends the sessions of the old one

    def login(self, name: str, password: str) -> tuple[str, User] | None:
        """A new session token and its user, or None (same work whether or not the user exists)."""
        found = self.db.user(name)
        if found is None or not found[2]:
            check_password(password, _DUMMY)
            return None
        role, encoded, _ = found
        if not check_password(password, encoded):
            return None
        if _HASHER.check_needs_rehash(encoded):
            self.db.set_hash(name, _HASHER.hash(password))
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        self.db.new_session(token_hash(token), name, csrf)
        return token, User(name, role, csrf, token)

    def session(self, token: str | None, now: float | None = None) -> User | None:
        if not token:
            return None
        now = time.time() if now is None else now
        key = token_hash(token)
        found = self.db.session(key)
        if found is None:
            return None
        name, created, seen, csrf = found
        if now - seen > self.idle_s or now - created > self.max_age_s:
            self.db.end_session(key)
            return None
        user = self.db.user(name)
        if user is None or not user[2]:
            self.db.end_session(key)
            return None
        if now - seen > 5:
            self.db.touch_session(key, now)
        return User(name, user[0], csrf, token)

    def logout(self, token: str) -> None:
        self.db.end_session(token_hash(token))


def csrf_ok(user: User, sent: object) -> bool:
    return bool(sent) and hmac.compare_digest(user.csrf.encode(), str(sent).encode())
