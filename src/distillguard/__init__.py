"""distillguard: detect, attribute, contain and share intelligence about adversarial distillation.

The curated public surface; stages live in their own packages
(ingest -> store -> signals -> features -> detect -> attribution -> decide -> gateway/report/intel).
Names resolve lazily so ``distillguard --help`` and small tools do not pay for Arrow and DuckDB.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "EXCHANGE_SCHEMA": "distillguard.model",
    "FieldError": "distillguard.model",
    "flatten": "distillguard.model",
    "IngestFormat": "distillguard.ingest",
    "IngestReport": "distillguard.ingest",
    "Store": "distillguard.store",
    "simulate": "distillguard.simulate",
}
# ``ingest`` is the subpackage; the function is exported as ``ingest_logs``
_RENAMED = {"ingest_logs": ("distillguard.ingest", "ingest"),
            "run_detection": ("distillguard.pipeline", "run_detection")}

__all__ = sorted([*_EXPORTS, *_RENAMED, "__version__"])


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    if name in _RENAMED:
        module, attr = _RENAMED[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'distillguard' has no attribute {name!r}")
