"""Shared intel as the matcher sees it: indicators with provenance, from pulled STIX objects."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from distillguard.intel.extension import ext
from distillguard.intel.refdata import object_tlp


@dataclass
class SharedIndicator:
    id: str
    name: str
    kind: str  # infrastructure | identifiers | templates | behaviour
    producer: str  # signer key id (verified on pull) or, failing that, the creator's identity name
    tlp: str
    shared: str  # modified timestamp
    data: dict[str, Any]
    targets: set[str] = field(default_factory=set)  # campaign / intrusion-set ids it indicates
    corroborators: set[str] = field(default_factory=set)  # members reporting an independent local detection

    def provenance(self) -> str:
        return f"{self.producer} {self.shared[:10]} TLP:{self.tlp.upper()}"


def collect(objects: list[dict[str, Any]], now: datetime | None = None) -> list[SharedIndicator]:
    """Latest, unrevoked, unexpired distillguard indicators, with their targets and corroborating sightings."""
    now = now or datetime.now(UTC)
    latest: dict[str, dict[str, Any]] = {}
    owners: dict[str, str] = {}  # an id belongs to the first producer seen: others' versions never replace it
    names: dict[str, Any] = {o["id"]: o.get("name", o["id"]) for o in objects
                             if isinstance(o, dict) and o.get("type") == "identity"}
    for obj in objects:
        if not isinstance(obj, dict) or "id" not in obj:
            continue
        if owners.setdefault(obj["id"], _producer(obj)) != _producer(obj):
            continue
        prior = latest.get(obj["id"])
        if prior is None or str(obj.get("modified", "")) >= str(prior.get("modified", "")):
            latest[obj["id"]] = obj
    out: dict[str, SharedIndicator] = {}
    for obj in latest.values():
        block = ext(obj)
        if obj.get("type") != "indicator" or obj.get("revoked") or block.get("kind") is None:
            continue
        until = obj.get("valid_until")
        if until and datetime.fromisoformat(until.replace("Z", "+00:00")) < now:
            continue
        signer = (block.get("signature") or {}).get("key_id")
        producer = signer or names.get(obj.get("created_by_ref", ""), obj.get("created_by_ref", "unknown"))
        out[obj["id"]] = SharedIndicator(obj["id"], obj.get("name", obj["id"]), block["kind"], producer,
                                         object_tlp(obj) or "unmarked", str(obj.get("modified", "")), block)
    for obj in latest.values():
        if obj.get("type") == "relationship" and obj.get("relationship_type") == "indicates" \
                and obj.get("source_ref") in out:
            out[obj["source_ref"]].targets.add(obj["target_ref"])
        if obj.get("type") == "sighting" and obj.get("sighting_of_ref") in out and ext(obj).get("local_detection"):
            signer = (ext(obj).get("signature") or {}).get("key_id")
            if signer:
                out[obj["sighting_of_ref"]].corroborators.add(signer)
    return list(out.values())


def _producer(obj: dict[str, Any]) -> str:
    """Signer key id (verified on pull), else the creator's identity id."""
    block = ext(obj) if isinstance(obj.get("extensions", {}), dict) else {}
    signature = block.get("signature") if isinstance(block, dict) else None
    signer = signature.get("key_id") if isinstance(signature, dict) else None
    return signer if isinstance(signer, str) else str(obj.get("created_by_ref", ""))


def objects_of(docs: list[dict[str, Any]] | dict[str, Any]) -> list[dict[str, Any]]:
    """Flatten bundles, TAXII envelopes and bare object lists into one object list."""
    items = docs if isinstance(docs, list) else [docs]
    out: list[dict[str, Any]] = []
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("objects"), list):
            out.extend(item["objects"])
        elif isinstance(item, dict) and "type" in item:
            out.append(item)
    return out


def ipv4_ranges(prefixes: list[str]) -> list[tuple[int, int]]:
    """Shared IPv4 prefixes as (first, last) address integers; malformed or IPv6 entries are ignored."""
    ranges = []
    for prefix in prefixes:
        try:
            net = ipaddress.ip_network(prefix, strict=False)
        except ValueError:
            continue
        if net.version == 4:
            ranges.append((int(net.network_address), int(net.broadcast_address)))
    return ranges
