"""The distillguard STIX extension-definition: one fixed id for all non-standard data.

Indicators, campaigns, intrusion sets, sightings and identities carry a
property-extension under :data:`EXTENSION_ID` (keyed identifiers, template
signatures, behavioural thresholds, Ed25519 signatures). The fields are
documented in docs/intel.md; the id never changes so peers can register it once.
"""

from __future__ import annotations

from typing import Any

import stix2

EXTENSION_ID = "extension-definition--8c2f6d1e-4b7a-4f3e-9a51-6d0c2b7e9f14"
PROJECT_IDENTITY_ID = "identity--5d3e0f7b-9a2c-4c1e-8f6d-2b7a1c9e4d30"
_CREATED = "2026-03-01T00:00:00.000Z"
SCHEMA_URL = "https://github.com/distillguard/distillguard/blob/main/docs/intel.md#extension-definition"


def project_identity(marking: str) -> stix2.Identity:
    """The distillguard project, creator of the extension-definition (fixed id and content)."""
    return stix2.Identity(id=PROJECT_IDENTITY_ID, created=_CREATED, modified=_CREATED, name="distillguard project",
                          identity_class="organization", description="Maintainers of the distillguard STIX extension.",
                          object_marking_refs=[marking])


def extension_definition(marking: str) -> stix2.ExtensionDefinition:
    return stix2.ExtensionDefinition(
        id=EXTENSION_ID, created=_CREATED, modified=_CREATED, created_by_ref=PROJECT_IDENTITY_ID,
        name="distillguard", version="1.0.0", extension_types=["property-extension"], schema=SCHEMA_URL,
        description="Adversarial-distillation intel: keyed identifiers, keyed MinHash template signatures, "
                    "behavioural thresholds and Ed25519 object signatures.",
        object_marking_refs=[marking])


def ext(obj: dict[str, Any]) -> dict[str, Any]:
    """The distillguard extension block of a STIX object (empty when absent)."""
    return obj.get("extensions", {}).get(EXTENSION_ID, {})


def fixed_objects() -> set[str]:
    """Ids of objects that are identical for every producer and therefore carry no member signature."""
    return {EXTENSION_ID, PROJECT_IDENTITY_ID}
