"""Ingest: real provider log formats mapped onto the canonical exchange.

Names resolve lazily, so an ingest worker process that imports only
:mod:`distillguard.ingest.parallel` does not load every log format's adapter.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "IngestFormat": "distillguard.ingest.base",
    "Line": "distillguard.ingest.base",
    "open_binary": "distillguard.ingest.base",
    "FORMATS": "distillguard.ingest.formats",
    "UnknownFormat": "distillguard.ingest.formats",
    "detect_format": "distillguard.ingest.formats",
    "register_format": "distillguard.ingest.formats",
    "check_format": "distillguard.ingest.formats",
    "FormatConformanceError": "distillguard.ingest.formats",
    "IngestReport": "distillguard.ingest.pipeline",
    "StrictModeError": "distillguard.ingest.pipeline",
    "expand_paths": "distillguard.ingest.pipeline",
    "ingest": "distillguard.ingest.pipeline",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'distillguard.ingest' has no attribute {name!r}")
