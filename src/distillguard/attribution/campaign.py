"""The campaign record: a group of linked accounts run by one actor, with the evidence that links them."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import xxhash

# MITRE ATLAS techniques a distillation campaign maps to (https://atlas.mitre.org/techniques/<id>)
ATLAS_EXTRACT_MODEL = "AML.T0024.002"  # Exfiltration via AI Inference API: Extract AI Model
ATLAS_TRAIN_PROXY = "AML.T0005.001"  # Create Proxy AI Model: Train Proxy via Replication
ATLAS_SERVICE_PROXIES = "AML.T0008.005"  # Acquire Infrastructure: AI Service Proxies
ATLAS_API_ACCESS = "AML.T0040"  # AI Model Inference API Access
ATLAS_NAMES = {
    ATLAS_EXTRACT_MODEL: "Extract AI Model",
    ATLAS_TRAIN_PROXY: "Train Proxy via Replication",
    ATLAS_SERVICE_PROXIES: "AI Service Proxies",
    ATLAS_API_ACCESS: "AI Model Inference API Access",
}


def campaign_id(accounts: list[str]) -> str:
    """Stable id from the sorted member ids, so re-running detection on the same data gives the same id."""
    return "campaign-" + xxhash.xxh3_64_hexdigest("\n".join(sorted(accounts)).encode())[:8]


@dataclass
class Evidence:
    kind: str  # shared_payment, synchronised_activity, shared_template, ...
    detail: str  # one sentence an analyst can check
    weight: float  # contribution to the campaign score, 0..1

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "detail": self.detail, "weight": round(self.weight, 3)}


@dataclass
class Campaign:
    """One campaign; :meth:`to_json` is the object documented in docs/architecture.md."""

    id: str
    accounts: list[str]  # the members detection restricts
    score: float
    evidence: list[Evidence] = field(default_factory=list)
    strength: float = 0.0  # how strongly the members are linked, 0..1 (sum of the evidence weights, capped)
    exchanges: int = 0
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    capabilities: dict[str, float] = field(default_factory=dict)
    models: dict[str, int] = field(default_factory=dict)
    atlas: list[str] = field(default_factory=list)
    infrastructure: dict[str, list] = field(default_factory=dict)
    identifiers: dict[str, list[str]] = field(default_factory=dict)
    templates: list[dict[str, Any]] = field(default_factory=list)
    behaviour: dict[str, float | None] = field(default_factory=dict)
    # linking edges inside the campaign (a, b, dominant evidence kind, weight), for the report's graph
    edges: list[tuple[str, str, str, float]] = field(default_factory=list, repr=False)
    # the linking pairs inside the campaign: (a, b, total weight, resting on two identity or behaviour kinds or more);
    # how tied each member is follows from them (:func:`tie_weights`)
    links: list[tuple[str, str, float, bool]] = field(default_factory=list, repr=False)
    # the linking pairs (a, b) among ``links`` that rest only on evidence a customer can share with an operation by
    # chance (linking.COINCIDENTAL): they tie no member that shows no use of its own
    coincidental: set[tuple[str, str]] = field(default_factory=set, repr=False)
    # linked members that could be harvesters themselves but are only watched: named in accounts.csv and the
    # campaign record, never shared as intel or acted on as members
    watched: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "score": round(self.score, 4),
            "strength": round(self.strength, 4),
            "accounts": sorted(self.accounts),
            "watched": sorted(self.watched),
            "exchanges": self.exchanges,
            "first_seen": _iso(self.first_seen),
            "last_seen": _iso(self.last_seen),
            "capabilities": {k: round(v, 4) for k, v in self.capabilities.items()},
            "models": dict(self.models),
            "evidence": [e.to_json() for e in self.evidence],
            "atlas": list(self.atlas),
            "infrastructure": self.infrastructure,
            "identifiers": self.identifiers,
            "templates": self.templates,
            "behaviour": {k: (None if v is None else round(float(v), 4)) for k, v in self.behaviour.items()},
        }


def tie_weights(links: list[tuple[str, str, float, bool]], counted: Collection[str] | None = None
                ) -> dict[str, float]:
    """Per member, the weight of its links inside a campaign: under ``"<account>"`` those resting on two kinds of
    identity or behaviour evidence or more, under ``"~<account>"`` those resting on one kind only (one shared
    habit, e.g. public prompts, with at most shared infrastructure beside it). With ``counted``, only links to
    those accounts count: what ties a member to the accounts the campaign restricts, not to bystanders linked
    into the same community (eval runners that share public benchmark prompts with each other)."""
    ties: dict[str, float] = {}
    for a, b, weight, several in links:
        key = "" if several else "~"
        if counted is None or b in counted:
            ties[key + a] = ties.get(key + a, 0.0) + weight
        if counted is None or a in counted:
            ties[key + b] = ties.get(key + b, 0.0) + weight
    return ties


def _iso(ts: datetime | None) -> str | None:
    if ts is None:
        return None
    return ts.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def producer() -> str:
    try:
        return f"distillguard {version('distillguard')}"
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "distillguard"


def campaigns_to_json(campaigns: list[Campaign], generated: datetime | None = None) -> dict[str, Any]:
    """The whole ``campaigns.json`` document."""
    stamp = _iso(generated or datetime.now(UTC))
    return {"generated": stamp, "producer": producer(), "campaigns": [c.to_json() for c in campaigns]}
