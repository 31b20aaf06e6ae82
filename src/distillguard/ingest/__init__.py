"""Ingest: real provider log formats mapped onto the canonical exchange."""

from distillguard.ingest.base import IngestFormat, Line, open_binary
from distillguard.ingest.formats import FORMATS, UnknownFormat, detect_format
from distillguard.ingest.pipeline import IngestReport, StrictModeError, expand_paths, ingest

__all__ = ["FORMATS", "IngestFormat", "IngestReport", "Line", "StrictModeError", "UnknownFormat",
           "detect_format", "expand_paths", "ingest", "open_binary"]
