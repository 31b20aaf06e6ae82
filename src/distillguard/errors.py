"""The root of every error distillguard raises on purpose.

Catch :class:`DistillguardError` to handle any of them; each also keeps its built-in base (``ValueError`` for
bad input, ``RuntimeError`` for a failed service, ``OSError`` for a damaged file), so existing handlers keep
working. Errors about an input say where: the message names the file, line and field, and
:func:`location` reads them back when the raising code recorded them.
"""

from __future__ import annotations


class DistillguardError(Exception):
    """Base class of distillguard's errors. ``source``, ``line`` and ``field`` locate bad input when known."""

    source: str | None = None
    line: int | None = None
    field: str | None = None


def location(exc: BaseException) -> str:
    """``file:line: field`` of an error, as far as it is known ("" when nothing is)."""
    parts = [str(p) for p in (getattr(exc, "source", None), getattr(exc, "line", None)) if p is not None]
    where = ":".join(parts)
    field = getattr(exc, "field", None)
    return f"{where}: {field}" if where and field else where or (field or "")


__all__ = ["DistillguardError", "location"]
