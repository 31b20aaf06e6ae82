"""Ed25519 signatures on STIX objects, so the hub and consumers can reject forged or altered intel.

The signature sits inside the object's distillguard extension and covers the RFC 8785 (JSON
Canonicalization Scheme, JCS) form of the object without the signature block itself, so any
implementation with a JCS library can verify it, and it survives any TAXII server that stores objects
verbatim (ours or medallion). The block names the scheme: ``{"alg": "Ed25519", "canon": "RFC8785",
"key_id", "value"}``. Blocks without ``canon`` are the first scheme (orjson with sorted keys, which only
orjson reproduces byte for byte); they are still verified during the transition (docs/intel.md).
"""

from __future__ import annotations

import base64
import copy
from pathlib import Path
from typing import Any

import orjson
import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from distillguard.errors import DistillguardError
from distillguard.intel.extension import EXTENSION_ID

ALG = "Ed25519"
CANON = "RFC8785"  # the signed bytes: JCS (RFC 8785) of the object without its signature block
LEGACY_CANON = "orjson-sorted"  # the first scheme (no "canon" in the block): verified during the transition


class SignatureError(DistillguardError, ValueError):
    """An object is unsigned, signed by an unknown key or altered after signing."""


def _unsigned(obj: dict[str, Any]) -> dict[str, Any]:
    body = copy.deepcopy(obj)
    block = body.get("extensions", {}).get(EXTENSION_ID)
    if isinstance(block, dict):
        block.pop("signature", None)
    return body


def canonical(obj: dict[str, Any], scheme: str = CANON) -> bytes:
    """The bytes a signature covers: ``obj`` without its signature block, in the canonical form ``scheme``.

    RFC 8785 (JCS): keys sorted by UTF-16 code units, no whitespace, ECMAScript number serialisation, minimal
    string escaping, UTF-8. Raises :class:`SignatureError` for values JCS cannot represent (integers beyond
    2^53, NaN, lone surrogates).
    """
    body = _unsigned(obj)
    if scheme == LEGACY_CANON:
        return orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
    if scheme != CANON:
        raise SignatureError(f"{obj.get('id')}: unknown canonicalization {scheme!r}")
    try:
        return rfc8785.dumps(body)
    except rfc8785.CanonicalizationError as exc:
        raise SignatureError(f"{obj.get('id')}: not representable in RFC 8785 JSON ({exc})") from None


def sign(obj: dict[str, Any], key: Ed25519PrivateKey, key_id: str) -> dict[str, Any]:
    """A copy of ``obj`` carrying a signature by ``key`` over its RFC 8785 form (adds the extension block when
    missing)."""
    out = copy.deepcopy(obj)
    block = out.setdefault("extensions", {}).setdefault(EXTENSION_ID, {"extension_type": "property-extension"})
    block.pop("signature", None)
    value = key.sign(canonical(out))
    block["signature"] = {"alg": ALG, "canon": CANON, "key_id": key_id, "value": base64.b64encode(value).decode()}
    return out


def verify(obj: dict[str, Any], keyring: dict[str, Ed25519PublicKey]) -> str:
    """Check an object's signature against ``keyring`` (key id -> public key); return the signer's key id."""
    block = obj.get("extensions", {}).get(EXTENSION_ID, {})
    signature = block.get("signature") if isinstance(block, dict) else None
    if not isinstance(signature, dict):
        raise SignatureError(f"{obj.get('id')}: unsigned")
    key_id = signature.get("key_id")
    if signature.get("alg") != ALG or not isinstance(key_id, str) or not isinstance(signature.get("value"), str):
        raise SignatureError(f"{obj.get('id')}: malformed signature block")
    scheme = signature.get("canon", LEGACY_CANON)
    if scheme not in (CANON, LEGACY_CANON):
        raise SignatureError(f"{obj.get('id')}: unknown canonicalization {scheme!r}")
    public = keyring.get(key_id)
    if public is None:
        raise SignatureError(f"{obj.get('id')}: signed by unknown key {key_id!r}")
    signed = canonical(obj, scheme)
    try:
        public.verify(base64.b64decode(signature["value"], validate=True), signed)
    except (InvalidSignature, ValueError):
        raise SignatureError(f"{obj.get('id')}: bad signature by {key_id!r} (altered or forged)") from None
    return key_id


def generate_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def private_pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def public_pem(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_private(path: str | Path) -> Ed25519PrivateKey:
    path = Path(path)
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise SignatureError(f"{path}: not a readable PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SignatureError(f"{path}: not an Ed25519 private key")
    return key


def load_public(pem: str | bytes, where: str) -> Ed25519PublicKey:
    """Parse a PEM public key; ``where`` names the file and field for the error."""
    data = pem.encode() if isinstance(pem, str) else pem
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise SignatureError(f"{where}: not a PEM public key ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise SignatureError(f"{where}: not an Ed25519 public key")
    return key
