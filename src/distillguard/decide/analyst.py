"""Analysts' decisions as input to the decision stage: confirm (revoke), dismiss (false positive), undo.

The exchange format is JSON Lines, one decision per line, the latest line per account winning::

    {"account_id": "acct_...", "action": "confirm-block" | "confirm-throttle" | "dismiss" | "undo",
     "points": 7.4, "families": ["harvest", "elicitation"], "analyst": "alice", "at": "2026-12-06T18:00:00Z",
     "note": "why", "case_id": "case-..."}

``points`` and ``families`` record the evidence the analyst saw (``decide`` re-judges a dismissed account
once its evidence grows past that, see :func:`distillguard.decide.decide`). The console writes these
(and pushes them to running gateways through their shared state); ``distillguard detect --decisions FILE``
and ``distillguard gateway --decisions FILE`` read them. Bad lines are errors naming file, line and field.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from distillguard.errors import DistillguardError

ACTIONS = ("confirm-block", "confirm-throttle", "dismiss", "undo")


class DecisionsError(DistillguardError, ValueError):
    """A decisions file is malformed (the message names file, line and field)."""


@dataclass(frozen=True)
class AnalystDecision:
    account_id: str
    action: str
    points: float = 0.0
    families: frozenset[str] = field(default_factory=frozenset)
    analyst: str = ""
    at: str = ""
    note: str = ""
    case_id: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"account_id": self.account_id, "action": self.action, "points": self.points,
                "families": sorted(self.families), "analyst": self.analyst, "at": self.at, "note": self.note,
                "case_id": self.case_id}

    @classmethod
    def from_json(cls, data: Mapping[str, Any], where: str = "decision") -> AnalystDecision:
        if not isinstance(data, Mapping):
            raise DecisionsError(f"{where}: <record>: expected a JSON object")
        account = data.get("account_id")
        if not isinstance(account, str) or not account:
            raise DecisionsError(f"{where}: account_id: required non-empty string")
        action = data.get("action")
        if action not in ACTIONS:
            raise DecisionsError(f"{where}: action: expected one of {', '.join(ACTIONS)}, got {action!r}")
        try:
            points = float(data.get("points") or 0.0)
        except (TypeError, ValueError):
            raise DecisionsError(f"{where}: points: not a number: {data.get('points')!r}") from None
        families = data.get("families") or []
        if not isinstance(families, list) or not all(isinstance(f, str) for f in families):
            raise DecisionsError(f"{where}: families: expected a list of family names")
        return cls(account, action, points, frozenset(families), str(data.get("analyst") or ""),
                   str(data.get("at") or ""), str(data.get("note") or ""), str(data.get("case_id") or ""))


def latest(decisions: Iterable[AnalystDecision]) -> dict[str, AnalystDecision]:
    """The decision in force per account (the last one; ``undo`` removes the account's decision)."""
    out: dict[str, AnalystDecision] = {}
    for decision in decisions:
        if decision.action == "undo":
            out.pop(decision.account_id, None)
        else:
            out[decision.account_id] = decision
    return out


def load_decisions(path: str | Path) -> dict[str, AnalystDecision]:
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DecisionsError(f"{path}: cannot read: {exc.strerror}") from None
    found = []
    for number, line in enumerate(raw.splitlines(), 1):
        if not line.strip():
            continue
        try:
            data = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise DecisionsError(f"{path}:{number}: <record>: invalid JSON: {exc}") from None
        found.append(AnalystDecision.from_json(data, f"{path}:{number}"))
    return latest(found)


def columns(account_ids: Iterable[str], decisions: Mapping[str, AnalystDecision]
            ) -> tuple[np.ndarray, np.ndarray, list[frozenset[str]]]:
    """``Record.analyst``, ``Record.analyst_points`` and ``Record.analyst_families`` for these accounts."""
    ids = list(account_ids)
    action = np.array([decisions[a].action if a in decisions else "" for a in ids], dtype=object)
    points = np.array([decisions[a].points if a in decisions else 0.0 for a in ids], dtype=np.float64)
    families = [decisions[a].families if a in decisions else frozenset() for a in ids]
    return action, points, families


__all__ = ["ACTIONS", "AnalystDecision", "DecisionsError", "columns", "latest", "load_decisions"]
