"""Hub configuration: members (credentials, Ed25519 key, trust groups, TLP clearance) and collections.

A JSON or YAML file; every error names the file and the offending field.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from distillguard.intel.refdata import TLP_LEVELS
from distillguard.intel.signing import SignatureError, load_public

_ITERATIONS = 200_000


class ConfigError(ValueError):
    pass


def hash_password(password: str, iterations: int = _ITERATIONS) -> str:
    """PBKDF2-SHA256 so a leaked config does not leak member passwords."""
    salt = secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return f"pbkdf2_sha256${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def check_password(password: str, encoded: str) -> bool:
    try:
        scheme, iterations, salt, digest = encoded.split("$")
        if scheme != "pbkdf2_sha256":
            return False
        computed = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(salt), int(iterations))
    except ValueError:
        return False
    return hmac.compare_digest(computed, base64.b64decode(digest))


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
    for key in ("max_content_length", "page_size"):
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
