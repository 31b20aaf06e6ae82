"""Phrasing fingerprints: min-hashes of a prompt's word-length windows, for linking accounts by how they write.

Prompts made by one generator share its stock phrases ("go as deep as possible", "leave nothing out") even
when every payload differs and the template's two ends vary, which defeats the template fingerprint. Each
prompt keeps :data:`STYLE_K` min-hashes of its :data:`WINDOW`-byte windows (over the same lower-cased head
and tail the text classifiers read); a stock phrase is the minimum of its prompt often enough that accounts
of one operation share several values, while benign accounts share the values of common phrases, which
attribution discards because most of their holders are not suspicious.

Vectorised over an Arrow string array: the window hashes come from one polynomial prefix sum over the
whole buffer (``H(i, i+W) = (P[i+W] - P[i]) * p^-i``, all mod 2^32), so the cost does not grow with ``W``;
windows start at word starts only.
Each row's result depends on its own text only.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

STYLE_K = 3
WINDOW = 20  # bytes: about three to four words
HEAD, TAIL = 160, 96  # characters of the prompt's two ends, where a generator's stock phrases sit
_P = 0x01000193  # odd, so invertible mod 2^32
_P_INV = pow(_P, -1, 1 << 32)
_SEEDS = (0x9E3779B1, 0x85EBCA77, 0xC2B2AE3D)
_MAX = np.uint32(0xFFFFFFFF)


def _mix(x: np.ndarray) -> np.ndarray:
    """murmur3's 32-bit finaliser."""
    with np.errstate(over="ignore"):
        x = x ^ (x >> np.uint32(16))
        x = x * np.uint32(0x85EBCA6B)
        x = x ^ (x >> np.uint32(13))
        x = x * np.uint32(0xC2B2AE35)
        return x ^ (x >> np.uint32(16))


_POWERS: dict[str, np.ndarray] = {}


def _powers(n: int) -> tuple[np.ndarray, np.ndarray]:
    if len(_POWERS.get("p", ())) < n:
        size = max(n, 1 << 23)
        for name, value in (("p", _P), ("inv", _P_INV)):
            steps = np.full(size, value, dtype=np.uint32)
            steps[0] = 1
            with np.errstate(over="ignore"):
                _POWERS[name] = np.cumprod(steps, dtype=np.uint32)
    return _POWERS["p"][:n], _POWERS["inv"][:n]


def _prepare(texts: pa.Array) -> pa.Array:
    texts = pc.fill_null(texts, "")
    long = pc.greater(pc.utf8_length(texts), HEAD + TAIL)
    if pc.any(long).as_py():
        cut = pc.binary_join_element_wise(pc.utf8_slice_codeunits(texts, 0, HEAD),
                                          pc.utf8_slice_codeunits(texts, -TAIL), "\n")
        texts = pc.if_else(long, cut, texts)
    return pc.utf8_lower(texts)


def style_hashes(texts: pa.Array | pa.ChunkedArray, block_bytes: int = 1 << 22) -> np.ndarray:
    """``(n, STYLE_K)`` uint32 min-hashes per text (0 where a text is shorter than one window)."""
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    if not pa.types.is_string(texts.type):
        texts = pc.cast(texts, pa.string())
    n = len(texts)
    out = np.zeros((n, STYLE_K), dtype=np.uint32)
    if n == 0:
        return out
    prepared = _prepare(texts)
    lengths = pc.binary_length(prepared).to_numpy(zero_copy_only=False).astype(np.int64)
    total = np.cumsum(lengths)
    start = 0
    while start < n:  # blocks of about block_bytes of text
        done = int(total[start - 1]) if start else 0
        stop = min(n, max(start + 1, int(np.searchsorted(total, done + block_bytes, side="right"))))
        out[start:stop] = _block(prepared.slice(start, stop - start))
        start = stop
    return out


def _block(arr: pa.Array) -> np.ndarray:
    n = len(arr)
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int32, count=n + 1, offset=arr.offset * 4).astype(np.int64)
    base = int(offsets[0])
    size = int(offsets[-1]) - base
    out = np.zeros((n, STYLE_K), dtype=np.uint32)
    if size < WINDOW:
        return out
    data = np.frombuffer(arr.buffers()[2], dtype=np.uint8, count=size, offset=base).astype(np.uint32)
    rel = offsets - base
    pw, inv = _powers(size + 1)
    raw = np.frombuffer(arr.buffers()[2], dtype=np.uint8, count=size, offset=base)
    # windows start at word starts: after a space or line break, or at a multi-byte (non-Latin) character
    lead = np.empty(size, dtype=bool)
    lead[0] = True
    lead[1:] = (raw[:-1] == 0x20) | (raw[:-1] == 0x0A) | (raw[1:] >= 0xC0)
    lead[rel[:-1][rel[:-1] < size]] = True
    starts = np.flatnonzero(lead[: size - WINDOW + 1])
    with np.errstate(over="ignore"):
        prefix = np.zeros(size + 1, dtype=np.uint32)
        np.cumsum((data + np.uint32(1)) * pw[:size], dtype=np.uint32, out=prefix[1:])
        window = (prefix[starts + WINDOW] - prefix[starts]) * inv[starts]
    # a window belongs to row r when it starts and ends inside it
    row = np.searchsorted(rel, starts, side="right") - 1
    valid = starts + WINDOW <= rel[row + 1]
    first = np.searchsorted(starts, rel[:-1])  # each row's first window (in ``starts`` order)
    has = np.bincount(row[valid], minlength=n)[:n] > 0
    if not len(starts):
        return out
    mixed = _mix(window)
    for k, seed in enumerate(_SEEDS[:STYLE_K]):
        with np.errstate(over="ignore"):
            h = _mix(mixed ^ np.uint32(seed))
        h[~valid] = _MAX
        np.maximum(h, np.uint32(1), out=h)  # 0 means "no window"
        mins = np.minimum.reduceat(h, np.minimum(first, len(h) - 1))  # rows without windows: masked below
        out[:, k] = np.where(has, mins, 0)
    return out
