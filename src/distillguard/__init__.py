"""distillguard: detect, attribute, contain and share intelligence about adversarial distillation.

The curated public surface; stages live in their own packages
(ingest -> store -> signals -> features -> detect -> attribution -> decide -> gateway/report/intel).
"""

from distillguard.ingest import IngestFormat, IngestReport
from distillguard.ingest import ingest as ingest_logs  # not ``ingest``: that name is the subpackage
from distillguard.model import EXCHANGE_SCHEMA, FieldError, flatten
from distillguard.store import Store

__version__ = "0.1.0"

__all__ = ["EXCHANGE_SCHEMA", "FieldError", "IngestFormat", "IngestReport", "Store", "__version__", "flatten",
           "ingest_logs"]
