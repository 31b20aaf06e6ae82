"""Learned multilingual text classifiers: hashed byte n-grams -> linear heads (numpy + pyarrow + scipy.sparse).

One featuriser serves batch (millions of exchanges) and the gateway (one request): the text is cut to a
bounded head + tail (:data:`HEAD`, :data:`TAIL` characters), lower-cased with Arrow's Unicode kernel, and
every byte n-gram (n in :data:`NGRAMS`) is hashed into ``2**BITS`` buckets with a 32-bit multiplicative
hash computed over the whole Arrow data buffer at once (no per-row Python loop). Byte n-grams make the same
code work for Latin, CJK, Cyrillic, Arabic and Devanagari text. A text's feature vector is its bucket
counts scaled by ``1/sqrt(#windows)``; each head is a linear function of it (a sparse x dense product),
calibrated with a Platt sigmoid; ``capability`` is a softmax over :data:`CAPABILITIES`.

Batch scores equal one-by-one scores bit for bit: each text's windows, their order and the summation order
depend on that text alone (texts are separated by ``PAD`` NUL bytes, so no n-gram crosses into a
neighbour). Training (``distillguard.textlab``) calls :func:`features` - the same definition.

The weights file (``data/models/text-v1.npz``) carries a format number and the hash of the feature spec;
loading a file whose spec differs from this module's raises :class:`ModelMismatch`.
"""

from __future__ import annotations

import hashlib
import json
import threading
from importlib import resources
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import scipy.sparse as sp

from distillguard.errors import DistillguardError

FORMAT = 1
HEAD = 384  # characters scanned from the start of a text ...
TAIL = 192  # ... and from its end (instructions sit at either end of a prompt template)
NGRAMS = (2, 3, 4, 5)  # byte n-gram lengths
BITS = 18  # 2**BITS hash buckets
PAD = max(NGRAMS) - 1  # NUL bytes before every text: n-grams never cross texts, and mark the text's start
SEED = 0x811C9DC5
MULT = 0x9E3779B1  # odd: each step is a bijection, so equal-length n-grams never collide before bucketing
BLOCK_BYTES = 1 << 21  # texts are featurised in blocks of about this many bytes (keeps temporaries in cache)

HEADS = ("cot", "coerce", "rubric", "length", "synth")
CAPABILITIES = ("chat", "coding", "tool_use", "computer_use", "math", "writing", "reasoning", "translation",
                "data_extraction")
EMBED_DIM = 32

SPEC: dict[str, Any] = {
    "head": HEAD, "tail": TAIL, "sep": "\n", "lower": "arrow utf8_lower", "ngrams": list(NGRAMS), "bits": BITS,
    "pad": PAD, "seed": SEED, "mult": MULT, "hash": "h=seed; per byte: h=(h^b)*mult mod 2^32; bucket=h>>(32-bits)",
    "runs": "bytes equal to those 2 before, pair-wise (period 1-2 runs), dropped after the 3rd",
    "norm": "counts / sqrt(len(ngrams) * (bytes + pad))", "embed": "sign(splitmix64(bucket)) bits 0..31",
}
SPEC_HASH = hashlib.sha256(json.dumps(SPEC, sort_keys=True).encode()).hexdigest()[:16]


class ModelMismatch(DistillguardError, ValueError):
    """The weights file does not match this module's format or feature spec."""


TextInput: TypeAlias = pa.Array | pa.ChunkedArray | list[str | None] | tuple[str | None, ...]


def _as_array(texts: TextInput) -> pa.Array:
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks() if texts.num_chunks != 1 else texts.chunk(0)
    elif not isinstance(texts, pa.Array):
        texts = pa.array(list(texts), pa.string())
    if not pa.types.is_string(texts.type):
        texts = pc.cast(texts, pa.string())
    return texts


def prepare(texts: pa.Array) -> pa.Array:
    """What is hashed: PAD NULs + lower(head + "\\n" + tail) (the whole text when it is short); null -> ""."""
    texts = pc.fill_null(texts, "")
    length = pc.utf8_length(texts)
    long = pc.greater(length, HEAD + TAIL)
    if pc.any(long).as_py():
        cut = pc.binary_join_element_wise(pc.utf8_slice_codeunits(texts, 0, HEAD),
                                          pc.utf8_slice_codeunits(texts, -TAIL), "\n")
        texts = pc.if_else(long, cut, texts)
    return pc.binary_join_element_wise(pa.scalar("\0" * PAD), pc.utf8_lower(texts), "")


def _buckets(prepared: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(bucket of every window, row offsets) for a prepared block: one index array per n-gram length, stacked
    as len(NGRAMS) consecutive groups of rows (rows of group j are texts 0..n-1 for NGRAMS[j])."""
    n = len(prepared)
    offsets = np.frombuffer(prepared.buffers()[1], dtype=np.int32, count=n + 1, offset=prepared.offset * 4)
    start, stop = int(offsets[0]), int(offsets[-1])
    size = stop - start
    data = np.frombuffer(prepared.buffers()[2], dtype=np.uint8, count=size, offset=start)
    rel = (offsets - start).astype(np.int64)
    if size > 3:  # runs of period 1 or 2 ("-----", "\\*\\*\\*") keep their first 3 bytes: bounded counts
        run = np.zeros(size, dtype=bool)
        run[3:] = (data[3:] == data[1:-2]) & (data[2:-1] == data[:-3]) & (data[3:] != 0)
        if run.any():
            data = data[~run]
            rel = rel - np.concatenate([[0], np.cumsum(run, dtype=np.int64)])[rel]
            size = len(data)
    b = np.zeros(size + PAD, dtype=np.uint32)
    b[:size] = data
    h = np.full(size, SEED, dtype=np.uint32)
    mult = np.uint32(MULT)
    shift = np.uint32(32 - BITS)
    out = np.empty(len(NGRAMS) * size, dtype=np.int32)
    j = 0
    for k in range(max(NGRAMS)):
        np.bitwise_xor(h, b[k:k + size], out=h)
        np.multiply(h, mult, out=h)
        if k + 1 in NGRAMS:
            np.right_shift(h, shift, out=out[j * size:(j + 1) * size].view(np.uint32))
            j += 1
    indptr = np.concatenate([rel[:-1] + j * size for j in range(len(NGRAMS))] + [np.array([len(out)])])
    return out, indptr


def _blocks(texts: pa.Array) -> list[tuple[int, int]]:
    """Row ranges of about BLOCK_BYTES of text each."""
    n = len(texts)
    if n == 0:
        return []
    lengths = pc.fill_null(pc.binary_length(texts), 0).to_numpy(zero_copy_only=False).astype(np.int64)
    sizes = np.minimum(lengths, 4 * (HEAD + TAIL) + 1) + PAD  # bytes after the head+tail cut, at most
    ends = np.searchsorted(np.cumsum(sizes), np.arange(BLOCK_BYTES, int(sizes.sum()) + BLOCK_BYTES, BLOCK_BYTES),
                           side="right")
    cuts = sorted({0, n, *(min(max(int(e), 1), n) for e in ends)})
    return list(zip(cuts[:-1], cuts[1:], strict=True))


def _raw(texts: pa.Array) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
    """(count matrix with one row per (n-gram length, text), per-text scale 1/sqrt(windows), empty mask)."""
    prepared = prepare(texts)
    idx, indptr = _buckets(prepared)
    n = len(texts)
    counts = sp.csr_matrix((np.ones(len(idx), dtype=np.float32), idx, indptr), shape=(len(NGRAMS) * n, 1 << BITS))
    windows = np.diff(indptr[: n + 1]).astype(np.float64)
    scale = (1.0 / np.sqrt(len(NGRAMS) * windows)).astype(np.float32)
    empty = windows <= PAD
    return counts, scale, empty


def features(texts: TextInput) -> sp.csr_matrix:
    """The normalised hashed n-gram matrix (n texts x 2**BITS, float32) that the heads are linear in."""
    arr = _as_array(texts)
    parts = []
    for lo, hi in _blocks(arr) or [(0, 0)]:
        counts, scale, _ = _raw(arr.slice(lo, hi - lo))
        n = hi - lo
        x = counts[:n]
        for j in range(1, len(NGRAMS)):
            x = x + counts[j * n:(j + 1) * n]
        x = sp.diags(scale) @ x
        x.sum_duplicates()
        parts.append(x.tocsr())
    return sp.vstack(parts, format="csr", dtype=np.float32) if len(parts) > 1 else parts[0]


def _splitmix(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    with np.errstate(over="ignore"):
        x ^= x >> np.uint64(30)
        x *= np.uint64(0xBF58476D1CE4E5B9)
        x ^= x >> np.uint64(27)
        x *= np.uint64(0x94D049BB133111EB)
        x ^= x >> np.uint64(31)
    return x


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-np.clip(z, -60.0, 60.0)))).astype(np.float32)


class TextModel:
    """The shipped heads. ``predict`` returns a float32 probability per binary head, ``cap`` (int8 index into
    :attr:`capabilities`) and ``cap_p``; nulls and empty texts score 0 everywhere with ``cap`` = chat."""

    def __init__(self, table: np.ndarray, bias: np.ndarray, platt: np.ndarray, thresholds: dict[str, dict[str, float]],
                 heads: tuple[str, ...], capabilities: tuple[str, ...], version: str,
                 meta: dict[str, Any] | None = None) -> None:
        self.heads = heads
        self.capabilities = capabilities
        self.version = version
        self.thresholds = thresholds
        self.meta = meta or {}
        self._table = np.ascontiguousarray(table, dtype=np.float32)  # (2**BITS, heads + capabilities)
        self._bias = bias.astype(np.float32)
        self._platt = platt.astype(np.float32)  # (heads, 2): p = sigmoid(a * logit + c)
        self._embed_table: np.ndarray | None = None
        self._lock = threading.Lock()

    # ---------------------------------------------------------------- loading
    @classmethod
    def load(cls, path: str | Path | None = None) -> TextModel:
        if path is None:
            ref = resources.files("distillguard").joinpath("data", "models", "text-v1.npz")
            with resources.as_file(ref) as p:
                return cls.load(p)
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            if meta.get("format") != FORMAT:
                raise ModelMismatch(f"{path}: weights format {meta.get('format')!r}, this code reads {FORMAT}")
            if meta.get("spec_hash") != SPEC_HASH or meta.get("spec") != SPEC:
                raise ModelMismatch(f"{path}: feature spec {meta.get('spec_hash')!r} != this code's {SPEC_HASH}")
            q = z["q"]
            table = q.astype(np.float32) * z["scale"].astype(np.float32)[None, :]
            if table.shape[0] != 1 << BITS:
                raise ModelMismatch(f"{path}: {table.shape[0]} buckets, spec has {1 << BITS}")
            return cls(table, z["bias"], z["platt"], meta["thresholds"], tuple(meta["heads"]),
                       tuple(meta["capabilities"]), meta["version"], meta)

    # ---------------------------------------------------------------- scoring
    def _embed_weights(self) -> np.ndarray:
        with self._lock:
            return self._embed_weights_unlocked()

    def _embed_weights_unlocked(self) -> np.ndarray:
        if self._embed_table is None:
            bits = _splitmix(np.arange(1 << BITS, dtype=np.uint64))
            signs = ((bits[:, None] >> np.arange(EMBED_DIM, dtype=np.uint64)[None, :]) & np.uint64(1))
            self._embed_table = (signs.astype(np.float32) * 2.0 - 1.0)
        return self._embed_table

    def logits(self, texts: TextInput) -> tuple[np.ndarray, np.ndarray]:
        """(n, heads + capabilities) float32 linear scores before calibration, and the empty-text mask."""
        arr = _as_array(texts)
        out = np.zeros((len(arr), self._table.shape[1]), dtype=np.float32)
        empty = np.ones(len(arr), dtype=bool)
        for lo, hi in _blocks(arr):
            counts, scale, emp = _raw(arr.slice(lo, hi - lo))
            y = np.asarray(counts @ self._table).reshape(len(NGRAMS), hi - lo, -1).sum(axis=0)
            out[lo:hi] = y * scale[:, None] + self._bias[None, :]
            empty[lo:hi] = emp
        return out, empty

    def _joint_table(self, dims: int) -> np.ndarray:
        """The heads' table with the first ``dims`` embedding projections appended: one sparse product for both."""
        with self._lock:
            joint = getattr(self, "_joint", None)
            if joint is None or joint.shape[1] != self._table.shape[1] + dims:
                signs = self._embed_weights_unlocked()[:, :dims]
                joint = np.ascontiguousarray(np.hstack([self._table, signs]), dtype=np.float32)
                self._joint = joint
            return joint

    def predict(self, texts: TextInput, embed_dims: int = 0) -> dict[str, np.ndarray]:
        """Per head a probability, ``cap``/``cap_p``; with ``embed_dims``, also ``embed``: the first dimensions of
        :meth:`embed`'s projection, L2-normalised over those dimensions, from the same sparse product."""
        if embed_dims:
            arr = _as_array(texts)
            table = self._joint_table(embed_dims)
            width = self._table.shape[1]
            z = np.zeros((len(arr), width), dtype=np.float32)
            emb = np.zeros((len(arr), embed_dims), dtype=np.float32)
            empty = np.ones(len(arr), dtype=bool)
            for lo, hi in _blocks(arr):
                counts, scale, emp = _raw(arr.slice(lo, hi - lo))
                y = np.asarray(counts @ table).reshape(len(NGRAMS), hi - lo, -1).sum(axis=0)
                z[lo:hi] = y[:, :width] * scale[:, None] + self._bias[None, :]
                e = y[:, width:].astype(np.float64)
                norm = np.sqrt((e ** 2).sum(axis=1, keepdims=True))
                emb[lo:hi] = np.where(norm > 0, e / np.maximum(norm, 1e-12), 0.0)
                empty[lo:hi] = emp
            emb[empty] = 0.0
            result = self._calibrate(z, empty)
            result["embed"] = emb
            return result
        z, empty = self.logits(texts)
        return self._calibrate(z, empty)

    def _calibrate(self, z: np.ndarray, empty: np.ndarray) -> dict[str, np.ndarray]:
        k = len(self.heads)
        result: dict[str, np.ndarray] = {}
        for i, head in enumerate(self.heads):
            p = _sigmoid(self._platt[i, 0] * z[:, i] + self._platt[i, 1])
            p[empty] = 0.0
            result[head] = p
        cz = z[:, k:k + len(self.capabilities)].astype(np.float64)
        cz -= cz.max(axis=1, keepdims=True)
        e = np.exp(cz)
        prob = e / e.sum(axis=1, keepdims=True)
        cap = prob.argmax(axis=1).astype(np.int8)
        cap_p = prob[np.arange(len(cap)), cap].astype(np.float32)
        cap[empty] = 0
        cap_p[empty] = 0.0
        result["cap"] = cap
        result["cap_p"] = cap_p
        return result

    def flags(self, texts: TextInput, level: str = "strong") -> dict[str, np.ndarray]:
        """Boolean per head at the shipped operating threshold (``strong`` or ``weak``)."""
        p = self.predict(texts)
        return {h: p[h] >= self.thresholds[h][level] for h in self.heads}

    def embed(self, texts: TextInput) -> np.ndarray:
        """(n, 32) float32: L2-normalised sign random projection of the hashed n-gram vector (zeros if empty)."""
        arr = _as_array(texts)
        table = self._embed_weights()
        out = np.zeros((len(arr), EMBED_DIM), dtype=np.float32)
        for lo, hi in _blocks(arr):
            counts, _, emp = _raw(arr.slice(lo, hi - lo))
            y = np.asarray(counts @ table).reshape(len(NGRAMS), hi - lo, -1).sum(axis=0)
            norm = np.sqrt((y.astype(np.float64) ** 2).sum(axis=1, keepdims=True))
            y = np.where(norm > 0, y / np.maximum(norm, 1e-12), 0.0).astype(np.float32)
            y[emp] = 0.0
            out[lo:hi] = y
        return out


_DEFAULT: TextModel | None = None
_DEFAULT_LOCK = threading.Lock()


def shipped_digest() -> str:
    """SHA-256 (hex) of the shipped weights file: retrained weights change the per-exchange signals, so the
    signal definitions' version (the key of every store's derived-signal cache) includes it."""
    data = resources.files("distillguard").joinpath("data", "models", "text-v1.npz").read_bytes()
    return hashlib.sha256(data).hexdigest()


def default_model() -> TextModel:
    """The shipped model, loaded once per process."""
    global _DEFAULT
    with _DEFAULT_LOCK:
        if _DEFAULT is None:
            _DEFAULT = TextModel.load()
        return _DEFAULT


__all__ = ["BITS", "CAPABILITIES", "FORMAT", "HEADS", "ModelMismatch", "SPEC", "SPEC_HASH", "TextModel",
           "default_model", "features", "prepare", "shipped_digest"]
