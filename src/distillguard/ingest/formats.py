"""Registry of ingest formats, auto-detection, and the conformance check every format passes.

A new log format is a subclass of :class:`~distillguard.ingest.base.IngestFormat` with a ``name``, a
``sniff`` and a ``read``, registered with :func:`register_format`; ``distillguard ingest --format NAME``
and auto-detection then find it. :func:`check_format` is what ``check_estimator`` is to scikit-learn:
``tests/test_ingest_formats.py`` runs it on every registered format.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

from distillguard.errors import DistillguardError
from distillguard.ingest.base import IngestFormat, Line, read_head
from distillguard.ingest.canonical import CanonicalFormat
from distillguard.ingest.litellm import LiteLLMFormat
from distillguard.ingest.openai_batch import OpenAIBatchFormat
from distillguard.ingest.otel import OtelFormat
from distillguard.model import FieldError, flatten

FORMATS: dict[str, type[IngestFormat]] = {}
F = TypeVar("F", bound=type[IngestFormat])


class UnknownFormat(DistillguardError, ValueError):
    pass


class FormatConformanceError(DistillguardError, AssertionError):
    """An ingest format breaks the interface contract (raised by :func:`check_format`)."""


def register_format(cls: F) -> F:
    """Class decorator: make ``cls`` available as ``--format cls.name`` and to auto-detection."""
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name or name == "auto":
        raise FormatConformanceError(f"{cls.__qualname__}: an ingest format needs a non-empty class attribute "
                                     "'name' (and 'auto' is reserved)")
    if name in FORMATS and FORMATS[name] is not cls:
        raise FormatConformanceError(f"{cls.__qualname__}: format name {name!r} is taken by "
                                     f"{FORMATS[name].__qualname__}")
    FORMATS[name] = cls
    return cls


for _builtin in (CanonicalFormat, OpenAIBatchFormat, OtelFormat, LiteLLMFormat):
    register_format(_builtin)


_JUNK = (b"", b"\x00\xff\xfe garbage\n", b"{\"unterminated\": \n", b"[1, 2, 3]\n", b"\xef\xbb\xbfnot,json,at,all\n")


def check_format(cls: type[IngestFormat], samples: Sequence[Path], scratch: Path,
                 options: dict[str, str] | None = None) -> list[Line]:
    """Check that ``cls`` honours the :class:`IngestFormat` contract; returns the lines read from ``samples``.

    - it is registered under its ``name`` and ``sniff`` recognises each sample;
    - ``sniff`` answers a bool and never raises, whatever the bytes;
    - ``read`` never raises on bad content: junk files give error lines (or nothing), never an exception;
    - every line names its source file and a positive line number, in order per file, and holds exactly one
      of a record or an error; every record read from the (good) samples passes central validation
      (:func:`distillguard.model.flatten`);
    - reading the samples twice gives the same lines (formats hold no hidden state between reads).
    """
    def fail(why: str) -> FormatConformanceError:
        return FormatConformanceError(f"ingest format {getattr(cls, 'name', cls.__qualname__)!r}: {why}")

    if FORMATS.get(cls.name) is not cls:
        raise fail("not registered (decorate the class with register_format)")
    if not samples:
        raise fail("check_format needs at least one sample file in the format")
    for sample in samples:
        if cls.sniff(sample, read_head(sample)) is not True:
            raise fail(f"sniff does not recognise its own sample {sample}")
    scratch.mkdir(parents=True, exist_ok=True)
    for n, junk in enumerate(_JUNK):
        path = scratch / f"junk-{n}.jsonl"
        path.write_bytes(junk)
        try:
            answer = cls.sniff(path, junk)
            lines = list(cls(**(options or {})).read([path]))
        except Exception as exc:  # the contract is precisely that nothing escapes
            raise fail(f"raised {type(exc).__name__} on junk input {junk[:24]!r}: {exc}") from exc
        if not isinstance(answer, bool):
            raise fail(f"sniff returned {type(answer).__name__}, not bool")
        if any((line.record is None) == (line.error is None) for line in lines):
            raise fail(f"on junk input {junk[:24]!r}: a line holds exactly one of a record and an error")
    first = list(cls(**(options or {})).read(samples))
    second = list(cls(**(options or {})).read(samples))
    if [(x.source, x.line, x.raw, x.error) for x in first] != [(x.source, x.line, x.raw, x.error) for x in second]:
        raise fail("reading the same files twice gave different lines")
    if not first:
        raise fail("read nothing from its samples")
    names = {str(sample) for sample in samples}
    for source, group in itertools.groupby(first, key=lambda line: line.source):
        if source not in names:
            raise fail(f"line source {source!r} is not one of the files read")
        numbers = [line.line for line in group]
        if any(n < 1 for n in numbers):
            raise fail(f"{source}: line numbers must be positive, got {min(numbers)}")
    for line in first:
        if (line.record is None) == (line.error is None):
            raise fail(f"{line.source}:{line.line}: a line holds exactly one of a record and an error")
        if line.record is not None:
            try:
                flatten(line.record)
            except FieldError as exc:
                raise fail(f"{line.source}:{line.line}: record fails central validation: {exc}") from exc
    return first


def detect_format(path: Path, head: bytes | None = None) -> str:
    """Name of the format of ``path``, by content (the canonical format is tried last); ``head``: its first
    64 KiB, decompressed, when the caller has read them."""
    if head is None:
        head = read_head(path)
    for name, fmt in FORMATS.items():
        if name != CanonicalFormat.name and fmt.sniff(path, head):
            return name
    if CanonicalFormat.sniff(path, head):
        return CanonicalFormat.name
    raise UnknownFormat(f"{path}: cannot tell the log format from its content; pass --format")
