"""Matches published back as STIX sightings, and shared intrusion sets linked to local campaigns.

A sighting says "this indicator matched N accounts and M exchanges here, between
these times" and whether a local detector flagged those accounts independently
(``local_detection``), which is what lets the producer's indicator reach
corroboration at other members. It never names accounts.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
import stix2
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from distillguard.intel.export import member_identity_id
from distillguard.intel.extension import EXTENSION_ID
from distillguard.intel.match import MatchResult
from distillguard.intel.refdata import tlp_markings, tlp_rank
from distillguard.intel.signing import sign


def sightings(result: MatchResult, member: str, signing_key: Ed25519PrivateKey | None, local: set[str],
              tlp: str = "amber") -> list[dict[str, Any]]:
    """One signed sighting per matched indicator, marked at least as restrictively as the indicator."""
    me = member_identity_id(member)
    out = []
    for ind_id, hit in result.hits.items():
        ind = result.indicators[ind_id]
        if not hit.accounts or hit.first_ms is None or hit.last_ms is None:
            continue
        level = max(tlp, ind.tlp if ind.tlp in tlp_markings() else tlp, key=tlp_rank)
        first = datetime.fromtimestamp(hit.first_ms / 1000, UTC)
        last = datetime.fromtimestamp(max(hit.last_ms, hit.first_ms) / 1000, UTC)
        sighting = stix2.Sighting(
            id=f"sighting--{uuid.uuid4()}", sighting_of_ref=ind_id, created_by_ref=me, where_sighted_refs=[me],
            count=min(hit.exchanges, 999_999_999), first_seen=first, last_seen=last,
            object_marking_refs=[tlp_markings()[level]["id"]],
            extensions={EXTENSION_ID: {"extension_type": "property-extension", "accounts": len(hit.accounts),
                                       "local_detection": bool(hit.accounts & local)}})
        obj = orjson.loads(sighting.serialize())
        out.append(sign(obj, signing_key, member) if signing_key else obj)
    return out


def link_campaigns(result: MatchResult, campaigns: list[dict[str, Any]], min_share: float = 0.3
                   ) -> dict[str, list[tuple[str, float]]]:
    """Local campaign id -> shared intrusion sets (id, share of its accounts matched), best first."""
    actor_accounts: dict[str, set[str]] = {}
    for ind_id, hit in result.hits.items():
        for target in result.indicators[ind_id].targets:
            if target.startswith("intrusion-set--"):
                actor_accounts.setdefault(target, set()).update(hit.accounts)
    links: dict[str, list[tuple[str, float]]] = {}
    for camp in campaigns:
        accounts = set(camp.get("accounts", []))
        if not accounts:
            continue
        scored = [(actor, len(accounts & members) / len(accounts)) for actor, members in actor_accounts.items()]
        links[camp["id"]] = sorted(((a, round(s, 3)) for a, s in scored if s >= min_share), key=lambda x: -x[1])
    return links
