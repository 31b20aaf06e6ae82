"""Watermark keys: one provider, several keys over time (rotation), each with an id recorded per exchange.

A keys file (YAML or JSON)::

    version: 1
    provider: acme
    keys:
      - id: acme-2026-03            # recorded with every exchange served under this key
        secret_env: DG_WM_2026_03   # or `secret: <hex>`; never written to the store or a report
        created: 2026-03-01
        active: true                # the key that marks new traffic (exactly one)
        greenlist_ratio: 0.25       # gamma of the KGW watermark
        bias: 2.0                   # delta added to green logits

Rotation: add a key, mark it ``active`` and the old one ``active: false``. Keep retired keys: a model trained on
outputs served under them is tested with them. The watermark itself is transformers' ``WatermarkLogitsProcessor``
(Kirchenbauer et al., left-hash seeding); its integer ``hashing_key`` is derived from the secret with HMAC-SHA256,
so the secret never appears in the engine's configuration.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from distillguard.errors import DistillguardError

SCHEME = "kgw-lefthash"  # transformers WatermarkLogitsProcessor, seeding_scheme="lefthash", context_width=1


class KeyError_(DistillguardError, ValueError):
    """A keys file is invalid; the message names file and field."""


@dataclass(frozen=True)
class WatermarkKey:
    id: str
    hashing_key: int
    greenlist_ratio: float = 0.25
    bias: float = 2.0
    scheme: str = SCHEME
    provider: str = ""
    active: bool = False
    created: str | None = None

    def public(self) -> dict[str, Any]:
        """What may be shown in a report or exchanged with partners: no secret, no hashing key."""
        return {"id": self.id, "provider": self.provider, "scheme": self.scheme,
                "greenlist_ratio": self.greenlist_ratio, "bias": self.bias, "created": self.created}


def derive_hashing_key(secret: bytes, key_id: str) -> int:
    """A 62-bit non-zero integer for ``WatermarkLogitsProcessor(hashing_key=...)`` (a torch seed must fit 64 bits)."""
    digest = hmac.new(secret, b"distillguard-kgw-v1|" + key_id.encode(), hashlib.sha256).digest()
    return (int.from_bytes(digest[:8], "big") >> 2) or 1


def key_from_secret(key_id: str, secret: bytes, *, greenlist_ratio: float = 0.25, bias: float = 2.0,
                    provider: str = "", active: bool = True) -> WatermarkKey:
    return WatermarkKey(id=key_id, hashing_key=derive_hashing_key(secret, key_id), greenlist_ratio=greenlist_ratio,
                        bias=bias, provider=provider, active=active)


def random_key(key_id: str, rng_seed: int | None = None, **kwargs: Any) -> WatermarkKey:
    """A fresh key (``rng_seed`` makes it reproducible, for the lab and for control keys)."""
    if rng_seed is None:
        secret = secrets.token_bytes(32)
    else:
        secret = hashlib.sha256(f"distillguard-lab-key|{rng_seed}".encode()).digest()
    return key_from_secret(key_id, secret, **kwargs)


@dataclass(frozen=True)
class KeyRing:
    provider: str
    keys: tuple[WatermarkKey, ...]
    source: str = "<memory>"

    @property
    def active(self) -> WatermarkKey:
        for key in self.keys:
            if key.active:
                return key
        raise KeyError_(f"{self.source}: keys: no key is active")

    def get(self, key_id: str) -> WatermarkKey:
        for key in self.keys:
            if key.id == key_id:
                return key
        raise KeyError_(f"{self.source}: no key with id {key_id!r} (have {', '.join(k.id for k in self.keys)})")


def _secret(entry: dict[str, Any], where: str) -> bytes:
    if "secret" in entry:
        try:
            return bytes.fromhex(str(entry["secret"]))
        except ValueError:
            raise KeyError_(f"{where}.secret: expected hex") from None
    env = entry.get("secret_env")
    if not env:
        raise KeyError_(f"{where}: needs `secret` (hex) or `secret_env` (environment variable with the hex secret)")
    value = os.environ.get(str(env))
    if value is None:
        raise KeyError_(f"{where}.secret_env: environment variable {env} is not set")
    try:
        return bytes.fromhex(value.strip())
    except ValueError:
        raise KeyError_(f"{where}.secret_env: {env} is not hex") from None


def parse_keyring(data: Any, source: str) -> KeyRing:
    if not isinstance(data, dict):
        raise KeyError_(f"{source}: expected a mapping with `version`, `provider`, `keys`")
    unknown = set(data) - {"version", "provider", "keys"}
    if unknown:
        raise KeyError_(f"{source}: {sorted(unknown)[0]}: unknown field (expected keys, provider, version)")
    if data.get("version", 1) != 1:
        raise KeyError_(f"{source}: version: only version 1 is supported")
    provider = str(data.get("provider") or "")
    entries = data.get("keys")
    if not isinstance(entries, list) or not entries:
        raise KeyError_(f"{source}: keys: expected a non-empty list")
    keys, seen = [], set()
    for i, entry in enumerate(entries):
        where = f"{source}: keys[{i}]"
        if not isinstance(entry, dict) or not entry.get("id"):
            raise KeyError_(f"{where}.id: required")
        extra = set(entry) - {"id", "secret", "secret_env", "created", "active", "greenlist_ratio", "bias", "scheme"}
        if extra:
            raise KeyError_(f"{where}.{sorted(extra)[0]}: unknown field")
        key_id = str(entry["id"])
        if key_id in seen:
            raise KeyError_(f"{where}.id: {key_id!r} appears twice")
        seen.add(key_id)
        if entry.get("scheme", SCHEME) != SCHEME:
            raise KeyError_(f"{where}.scheme: only {SCHEME} is supported")
        gamma = entry.get("greenlist_ratio", 0.25)
        bias = entry.get("bias", 2.0)
        if not isinstance(gamma, int | float) or not 0 < gamma < 1:
            raise KeyError_(f"{where}.greenlist_ratio: expected a number in (0, 1)")
        if not isinstance(bias, int | float) or bias <= 0:
            raise KeyError_(f"{where}.bias: expected a positive number")
        keys.append(WatermarkKey(id=key_id, hashing_key=derive_hashing_key(_secret(entry, where), key_id),
                                 greenlist_ratio=float(gamma), bias=float(bias), provider=provider,
                                 active=bool(entry.get("active", False)),
                                 created=str(entry["created"]) if entry.get("created") is not None else None))
    if sum(k.active for k in keys) > 1:
        raise KeyError_(f"{source}: keys: more than one key is active (exactly one marks new traffic)")
    return KeyRing(provider=provider, keys=tuple(keys), source=source)


def load_keyring(path: str | Path) -> KeyRing:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise KeyError_(f"{path}: cannot read keys file: {exc.strerror}") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise KeyError_(f"{path}: cannot parse: {exc}") from None
    return parse_keyring(data, str(path))


def new_key_entry(key_id: str, *, active: bool = True, greenlist_ratio: float = 0.25, bias: float = 2.0,
                  created: str | None = None) -> dict[str, Any]:
    """A keys-file entry with a fresh 256-bit secret (``distillguard provenance keygen``)."""
    entry: dict[str, Any] = {"id": key_id, "secret": secrets.token_hex(32), "active": active,
                             "greenlist_ratio": greenlist_ratio, "bias": bias}
    if created:
        entry["created"] = created
    return entry
