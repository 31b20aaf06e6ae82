"""Behavioural thresholds as a Sigma correlation rule (pattern_type ``sigma``).

A campaign's behaviour (long completions, single-turn, chain-of-thought asks,
machine-regular timing) is a per-account aggregate, which is what Sigma
correlation rules express: a base rule selecting matching requests plus an
``event_count`` correlation grouped by account over a timespan.
"""

from __future__ import annotations

import uuid
from typing import Any

import yaml

_NS = uuid.UUID("0b8f3c55-7a61-4a44-9d0e-5c2f8e7b1a90")


def thresholds(behaviour: dict[str, Any], slack: float = 0.8) -> dict[str, float]:
    """Loosened thresholds from a campaign's observed behaviour (missing values are left out)."""
    out: dict[str, float] = {}
    if behaviour.get("median_max_tokens") is not None:
        out["median_max_tokens_min"] = round(float(behaviour["median_max_tokens"]) * slack, 3)
    for name in ("single_turn_share", "cot_share"):
        if behaviour.get(name) is not None:
            out[f"{name}_min"] = round(float(behaviour[name]) * slack, 3)
    if behaviour.get("inter_arrival_cv") is not None:
        out["inter_arrival_cv_max"] = round(float(behaviour["inter_arrival_cv"]) / slack, 3)
    return out


def correlation_rule(campaign_ref: str, limits: dict[str, float], min_events: int = 50,
                     timespan: str = "24h") -> str:
    """Two-document Sigma YAML: the request selection and its per-account event-count correlation."""
    base_name = f"distillguard_{campaign_ref}_requests".replace("-", "_")
    selection: dict[str, Any] = {}
    if "median_max_tokens_min" in limits:
        selection["max_tokens|gte"] = int(limits["median_max_tokens_min"])
    if limits.get("single_turn_share_min", 0) >= 0.5:
        selection["n_user_turns"] = 1
    if limits.get("cot_share_min", 0) >= 0.5:
        selection["reasoning_requested"] = True
    base = {
        "title": f"Requests matching distillation campaign {campaign_ref}",
        "id": str(uuid.uuid5(_NS, base_name)), "name": base_name, "status": "experimental",
        "logsource": {"product": "llm_api", "service": "inference"},
        "detection": {"selection": selection or {"endpoint": "/v1/chat/completions"}, "condition": "selection"},
        "level": "medium",
    }
    corr = {
        "title": f"Account volume matching distillation campaign {campaign_ref}",
        "id": str(uuid.uuid5(_NS, base_name + "/correlation")), "status": "experimental",
        "correlation": {"type": "event_count", "rules": [base_name], "group-by": ["account_id"],
                        "timespan": timespan, "condition": {"gte": min_events}},
        "level": "high",
    }
    return yaml.safe_dump_all([base, corr], sort_keys=False)
