"""Hub configuration: members (credentials, Ed25519 key, trust groups, TLP clearance) and collections.

A JSON or YAML file; every error names the file and the offending field.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import orjson
import yaml
from argon2 import PasswordHasher, Type, extract_parameters
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from distillguard.errors import DistillguardError
from distillguard.intel.refdata import TLP_LEVELS
from distillguard.intel.signing import SignatureError, load_public

_ITERATIONS = 200_000  # legacy PBKDF2-SHA256 hashes (still accepted, upgraded to argon2id on login)
# argon2id at OWASP's minimum (19 MiB, 2 passes, 1 lane): ~20 ms a check, memory-hard against GPU guessing,
# and small enough that the hub's few concurrent checks (see app.Hub.HASH_SLOTS) cannot exhaust its memory
_ARGON2 = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1, hash_len=32, salt_len=16, type=Type.ID)


class ConfigError(DistillguardError, ValueError):
    pass


def hash_password(password: str, iterations: int | None = None) -> str:
    """An argon2id hash, so a leaked config does not leak member passwords.

    ``iterations`` asks for a legacy PBKDF2-SHA256 hash instead (for tests and for checking the upgrade path);
    the hub still accepts those and replaces them with argon2id the first time the member logs in.
    """
    if iterations is not None:
        salt = secrets.token_bytes(16)
        digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
        return f"pbkdf2_sha256${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"
    return _ARGON2.hash(password)


def verify_password(password: str, encoded: str) -> tuple[bool, str | None]:
    """(whether ``password`` matches ``encoded``, a fresh argon2id hash when ``encoded`` should be replaced).

    CPU-bound (tens of milliseconds): the hub calls it off the event loop.
    """
    if encoded.startswith("$argon2"):
        try:
            _ARGON2.verify(encoded, password)
        except (VerificationError, InvalidHashError):
            return False, None
        return True, (_ARGON2.hash(password) if _ARGON2.check_needs_rehash(encoded) else None)
    ok = _check_pbkdf2(password, encoded)
    return ok, (_ARGON2.hash(password) if ok else None)


def check_password(password: str, encoded: str) -> bool:
    return verify_password(password, encoded)[0]


@cache
def _dummy_hash() -> str:
    return _ARGON2.hash(secrets.token_urlsafe(16))


def dummy_verify(password: str) -> None:
    """The work of one argon2id check, for unknown user names (so they do not show by timing)."""
    verify_password(password, _dummy_hash())


def _check_pbkdf2(password: str, encoded: str) -> bool:
    try:
        scheme, iterations, salt, digest = encoded.split("$")
        if scheme != "pbkdf2_sha256" or not 0 < int(iterations) <= 10_000_000:
            return False
        computed = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(salt), int(iterations))
        return hmac.compare_digest(computed, base64.b64decode(digest))
    except (ValueError, binascii.Error):
        return False


def hash_scheme(encoded: str) -> str | None:
    """``argon2id`` or ``pbkdf2_sha256`` for a well-formed stored hash, else None."""
    if encoded.startswith("$argon2id$"):
        try:
            extract_parameters(encoded)
        except InvalidHashError:
            return None
        return "argon2id"
    parts = encoded.split("$")
    if len(parts) == 4 and parts[0] == "pbkdf2_sha256" and parts[1].isdigit():
        return "pbkdf2_sha256"
    return None


@dataclass
class Member:
    name: str
    password_hash: str
    public_key: Ed25519PublicKey
    groups: set[str]
    clearance: str = "amber"


@dataclass
class Collection:
    id: str
    title: str
    group: str
    description: str = ""


@dataclass
class HubConfig:
    members: dict[str, Member]
    collections: dict[str, Collection]
    title: str = "distillguard intel hub"
    api_root: str = "intel"
    database: str = "hub.sqlite"
    max_content_length: int = 10 * 1024 * 1024
    page_size: int = 500
    max_objects: int = 1000  # objects per POSTed envelope (bounds the work and the status resource of one post)
    # failed logins allowed per window before further attempts get 429: per client address, and per user name
    # from addresses that have not logged in as that user before (so guessing cannot lock a member out at home)
    auth_failures_per_ip: int = 20
    auth_failures_per_user: int = 10
    auth_window_s: int = 60

    def can_access(self, member: str, collection: Collection) -> bool:
        m = self.members.get(member)
        return m is not None and collection.group in m.groups


def load_config(path: str | Path) -> HubConfig:
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        doc = orjson.loads(raw) if path.suffix == ".json" else yaml.safe_load(raw)
    except (orjson.JSONDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: not valid {'JSON' if path.suffix == '.json' else 'YAML'} ({exc})") from None
    return parse_config(doc, str(path), base=path.parent)


def parse_config(doc: Any, where: str = "<config>", base: Path | None = None) -> HubConfig:
    if not isinstance(doc, dict):
        raise ConfigError(f"{where}: expected a mapping at the top level")
    members: dict[str, Member] = {}
    for name, spec in _mapping(doc, "members", where).items():
        at = f"{where}: field 'members.{name}"
        if not isinstance(spec, dict):
            raise ConfigError(f"{at}': expected a mapping")
        for key in ("password_hash", "public_key"):
            if not isinstance(spec.get(key), str):
                raise ConfigError(f"{at}.{key}': required string")
        groups = spec.get("groups", [])
        if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
            raise ConfigError(f"{at}.groups': expected a list of group names")
        clearance = spec.get("clearance", "amber")
        if clearance not in TLP_LEVELS:
            raise ConfigError(f"{at}.clearance': one of {', '.join(TLP_LEVELS)}; got {clearance!r}")
        if hash_scheme(spec["password_hash"]) is None:
            raise ConfigError(f"{at}.password_hash': not an argon2id or pbkdf2_sha256 hash "
                              "(make one with `distillguard intel passwd`)")
        try:
            public = load_public(spec["public_key"], f"{at}.public_key'")
        except SignatureError as exc:
            raise ConfigError(str(exc)) from None
        members[str(name)] = Member(str(name), spec["password_hash"], public, set(groups), clearance)
    collections: dict[str, Collection] = {}
    items = doc.get("collections")
    if not isinstance(items, list) or not items:
        raise ConfigError(f"{where}: field 'collections': expected a non-empty list")
    for i, spec in enumerate(items):
        at = f"{where}: field 'collections[{i}]"
        if not isinstance(spec, dict) or not all(isinstance(spec.get(k), str) for k in ("id", "title", "group")):
            raise ConfigError(f"{at}': needs string id, title and group")
        collections[spec["id"]] = Collection(spec["id"], spec["title"], spec["group"], spec.get("description", ""))
    cfg = HubConfig(members=members, collections=collections)
    for key in ("title", "api_root", "database"):
        if key in doc:
            if not isinstance(doc[key], str) or not doc[key]:
                raise ConfigError(f"{where}: field '{key}': expected a non-empty string")
            setattr(cfg, key, doc[key])
    for key in ("max_content_length", "page_size", "max_objects", "auth_failures_per_ip", "auth_failures_per_user",
                "auth_window_s"):
        if key in doc:
            if isinstance(doc[key], bool) or not isinstance(doc[key], int) or doc[key] <= 0:
                raise ConfigError(f"{where}: field '{key}': expected a positive integer")
            setattr(cfg, key, doc[key])
    if base is not None and "://" not in cfg.database and not Path(cfg.database).is_absolute():
        cfg.database = str(base / cfg.database)
    return cfg


def _mapping(doc: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = doc.get(key)
    if not isinstance(value, dict) or not value:
        raise ConfigError(f"{where}: field '{key}': expected a non-empty mapping")
    return value
