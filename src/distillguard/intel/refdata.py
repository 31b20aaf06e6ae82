"""Reference data shipped with the package: ATLAS techniques and TLP 2.0 markings.

Copied into package data (never read from ``../shared`` at run time) so exports
work offline and always cite the same STIX ids as the peers' ATLAS copies.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

import orjson

TLP_LEVELS = ("clear", "green", "amber", "amber+strict", "red")  # least to most restrictive
TLP_EXTENSION_ID = "extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d"


def _load(name: str) -> dict[str, Any]:
    return orjson.loads(resources.files("distillguard").joinpath("data", "intel", name).read_bytes())


@cache
def atlas_objects() -> dict[str, dict[str, Any]]:
    """ATLAS external id (e.g. ``AML.T0024.002``) -> the ATLAS STIX object."""
    out = {}
    for obj in _load("atlas-subset.json")["objects"]:
        for ref in obj.get("external_references", []):
            if ref.get("source_name") == "mitre-atlas" and ref.get("external_id"):
                out[ref["external_id"]] = obj
    return out


@cache
def tlp_markings() -> dict[str, dict[str, Any]]:
    """TLP level name (``clear`` .. ``red``) -> the OASIS TLP 2.0 marking-definition object."""
    return {obj["extensions"][TLP_EXTENSION_ID]["tlp_2_0"]: obj for obj in _load("tlp-2.0.json")["objects"]}


@cache
def tlp_by_id() -> dict[str, str]:
    """Marking-definition id -> TLP level name."""
    return {obj["id"]: level for level, obj in tlp_markings().items()}


def tlp_rank(level: str) -> int:
    """Restrictiveness of a TLP level; unknown levels raise ``ValueError``."""
    try:
        return TLP_LEVELS.index(level)
    except ValueError:
        raise ValueError(f"unknown TLP level {level!r}; expected one of {', '.join(TLP_LEVELS)}") from None


def object_tlp(obj: dict[str, Any]) -> str | None:
    """The most restrictive TLP 2.0 level among an object's markings (None when unmarked)."""
    known = tlp_by_id()
    levels = [known[ref] for ref in obj.get("object_marking_refs", []) if ref in known]
    return max(levels, key=tlp_rank) if levels else None
