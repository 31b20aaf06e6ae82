"""Keyed privacy primitives: what a bundle may carry instead of raw identifiers and prompts.

Everything is keyed by the sharing group's secret so a bundle that leaks outside
the group reveals nothing checkable (an unkeyed hash of an email or a payment
fingerprint is a dictionary lookup away from the value; STIX observable ids are
exactly such unkeyed hashes). Members holding the key can *match* their own
traffic; the residual risk (a member guessing low-entropy values) is documented
in docs/intel.md.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from pathlib import Path

import numpy as np

from distillguard.errors import DistillguardError

KEY_BYTES = 32
_WORD = re.compile(r"\w+", re.UNICODE)
_DIGITS = re.compile(r"\d+")
_MAX_WORDS = 400  # long prompts: the template lives in the head; bounds hashing cost


_ASCII_DIGITS = re.compile("[0-9]+")
_ASCII_SPACE = re.compile("[\t\n\f\r ]+")  # RE2's \s, as DuckDB applies it


def template_text(system: str | None, user: str | None) -> str | None:
    """A request's template text as ``detect`` shows it in ``campaigns.json`` (``templates[].example``).

    The producer exports a keyed MinHash of that example, so a consumer must hash the same form of its own
    requests: the first 80 characters of the lower-cased system prompt and the first 8 words of the user
    text, numbers folded to 0, joined by `` | ``. Mirrors ``attribution.columns._NORMALISED`` (SQL); a
    test checks that both agree. Matching whole prompts against it finds almost nothing: the example is a
    short head, so the Jaccard similarity with a long prompt stays far below the threshold.
    """
    sys_part = _ASCII_DIGITS.sub("0", (system or "").lower())[:80]
    head = _ASCII_SPACE.sub(" ", _ASCII_DIGITS.sub("0", (user or "")[:1000].lower()))
    user_part = " ".join(head.split(" ")[:8])
    text = " | ".join(([sys_part] if sys_part else []) + [user_part]).strip()
    return text or None


class GroupKeyError(DistillguardError, ValueError):
    """A group key file is missing or malformed."""


def new_group_key() -> bytes:
    return secrets.token_bytes(KEY_BYTES)


def load_group_key(path: str | Path) -> bytes:
    """Read a hex group key (64 hex characters) written by ``intel keygen``."""
    path = Path(path)
    try:
        text = path.read_text().strip()
    except OSError as exc:
        raise GroupKeyError(f"{path}: cannot read group key ({exc.strerror})") from None
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise GroupKeyError(f"{path}, line 1: group key is not hex") from None
    if len(key) != KEY_BYTES:
        raise GroupKeyError(f"{path}, line 1: group key must be {KEY_BYTES} bytes, got {len(key)}")
    return key


def subkey(key: bytes, label: str) -> bytes:
    """Independent per-purpose keys so an HMAC of one kind never equals a MinHash input of another."""
    return hmac.new(key, b"distillguard/" + label.encode(), hashlib.sha256).digest()


def normalise_identifier(kind: str, value: str) -> str:
    value = value.strip().lower()
    return value[1:] if kind == "email_domain" and value.startswith("@") else value


def keyed_id(key: bytes, kind: str, value: str) -> str:
    """HMAC-SHA256 of an account-level identifier under the group key, hex."""
    msg = f"{kind}\x00{normalise_identifier(kind, value)}".encode()
    return hmac.new(subkey(key, "identifier"), msg, hashlib.sha256).hexdigest()


def normalise_text(text: str) -> list[str]:
    """Words of a prompt with numbers folded, so template fills that differ only in numbers still match."""
    return _WORD.findall(_DIGITS.sub("0", text.lower()))[:_MAX_WORDS]


class TemplateHasher:
    """Keyed MinHash over word 3-gram shingles with LSH banding.

    Shingles are hashed with keyed BLAKE2b and permuted by multiply-shift hashes
    whose parameters are derived from the group key: without the key a signature
    cannot be recomputed from a guessed text, with it a member can match its own
    traffic (band keys give candidate lookup in O(1); the full signature estimates
    Jaccard similarity).
    """

    def __init__(self, key: bytes, num_perm: int = 64, bands: int = 16) -> None:
        if num_perm % bands:
            raise ValueError("num_perm must be a multiple of bands")
        self.num_perm, self.bands, self.rows = num_perm, bands, num_perm // bands
        self._shingle_key = subkey(key, "minhash-shingle")[:32]
        self._band_key = subkey(key, "minhash-band")[:32]
        rng = np.random.Generator(np.random.PCG64(int.from_bytes(subkey(key, "minhash-perm"), "big")))
        self._a = rng.integers(1, 2**63, size=num_perm, dtype=np.uint64) | np.uint64(1)
        self._b = rng.integers(0, 2**63, size=num_perm, dtype=np.uint64)
        self._cache: dict[str, np.ndarray | None] = {}

    def signature(self, text: str) -> np.ndarray | None:
        """uint32[num_perm] signature, or None for texts too short to fingerprint (< 3 words)."""
        words = normalise_text(text)
        if len(words) < 3:
            return None
        norm = " ".join(words)
        if norm in self._cache:
            return self._cache[norm]
        shingles = {" ".join(words[i:i + 3]) for i in range(len(words) - 2)}
        hv = np.fromiter((int.from_bytes(hashlib.blake2b(s.encode(), key=self._shingle_key, digest_size=8).digest(),
                                         "little") for s in shingles), dtype=np.uint64, count=len(shingles))
        with np.errstate(over="ignore"):
            perm = (hv[:, None] * self._a[None, :] + self._b[None, :]) >> np.uint64(32)
        sig = perm.min(axis=0).astype(np.uint32)
        if len(self._cache) < 200_000:
            self._cache[norm] = sig
        return sig

    def band_keys(self, sig: np.ndarray) -> list[str]:
        out = []
        for band in range(self.bands):
            chunk = sig[band * self.rows:(band + 1) * self.rows].tobytes()
            out.append(hashlib.blake2b(bytes([band]) + chunk, key=self._band_key, digest_size=8).hexdigest())
        return out


def encode_signature(sig: np.ndarray) -> str:
    return sig.astype("<u4").tobytes().hex()


def decode_signature(text: str, num_perm: int) -> np.ndarray:
    raw = bytes.fromhex(text)
    if len(raw) != 4 * num_perm:
        raise ValueError(f"signature has {len(raw) // 4} values, expected {num_perm}")
    return np.frombuffer(raw, dtype="<u4").astype(np.uint32)


class TemplateIndex:
    """LSH index of shared template signatures, queried with local prompt texts."""

    def __init__(self, hasher: TemplateHasher, threshold: float = 0.5) -> None:
        self.hasher = hasher
        self.threshold = threshold
        self._sigs: list[np.ndarray] = []
        self._refs: list[str] = []
        self._buckets: dict[str, list[int]] = {}

    def add(self, ref: str, sig: np.ndarray) -> None:
        index = len(self._sigs)
        self._sigs.append(sig)
        self._refs.append(ref)
        for band in self.hasher.band_keys(sig):
            self._buckets.setdefault(band, []).append(index)

    def __len__(self) -> int:
        return len(self._sigs)

    def query(self, text: str) -> list[tuple[str, float]]:
        """(ref, estimated Jaccard) of shared templates similar to ``text``."""
        sig = self.hasher.signature(text)
        if sig is None or not self._sigs:
            return []
        candidates: set[int] = set()
        for band in self.hasher.band_keys(sig):
            candidates.update(self._buckets.get(band, ()))
        out = []
        for index in candidates:
            similarity = float(np.mean(self._sigs[index] == sig))
            if similarity >= self.threshold:
                out.append((self._refs[index], similarity))
        return out

