"""Registry of ingest formats and auto-detection."""

from __future__ import annotations

from pathlib import Path

from distillguard.errors import DistillguardError
from distillguard.ingest.base import IngestFormat, read_head
from distillguard.ingest.canonical import CanonicalFormat
from distillguard.ingest.litellm import LiteLLMFormat
from distillguard.ingest.openai_batch import OpenAIBatchFormat
from distillguard.ingest.otel import OtelFormat

FORMATS: dict[str, type[IngestFormat]] = {
    CanonicalFormat.name: CanonicalFormat,
    OpenAIBatchFormat.name: OpenAIBatchFormat,
    OtelFormat.name: OtelFormat,
    LiteLLMFormat.name: LiteLLMFormat,
}


class UnknownFormat(DistillguardError, ValueError):
    pass


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
