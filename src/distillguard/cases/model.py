"""Cases as an append-only event log: a case's state is the fold of its events, never a row edited in place.

So no state change can leave no log entry (every change *is* an entry, with who, when and why), and merging
keeps both histories: the absorbed case ends in state ``merged`` pointing at the case that took it over, and
every campaign and account the survivor gained records which case it came from.

Events (``kind``: body):

* ``open``: ``{title, campaigns, accounts}``
* ``add`` / ``remove``: ``{campaigns, accounts}``
* ``note``: ``{text}``
* ``state``: ``{to}`` (one of :data:`STATES`)
* ``merge-into``: ``{into}`` (on the absorbed case) and ``absorb``: ``{from, campaigns, accounts}`` (on the
  survivor), always written together
* ``escalate``: ``{criteria}`` (the criteria as evaluated then) and ``export``: ``{package, sha256, audience}``
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from distillguard.errors import DistillguardError

STATES = ("open", "review", "escalated", "closed", "merged")
KINDS = ("open", "add", "remove", "note", "state", "merge-into", "absorb", "escalate", "export")
_ID = re.compile(r"^case-[0-9]{4,}$")


class CaseError(DistillguardError, ValueError):
    pass


@dataclass
class Case:
    id: str
    title: str = ""
    state: str = "open"
    opened_by: str = ""
    opened_at: str = ""
    campaigns: dict[str, str] = field(default_factory=dict)  # campaign -> where it came from ("" or a case id)
    accounts: dict[str, str] = field(default_factory=dict)
    merged_into: str | None = None
    merged_from: list[str] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    exports: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "state": self.state, "opened_by": self.opened_by,
                "opened_at": self.opened_at, "campaigns": sorted(self.campaigns), "accounts": sorted(self.accounts),
                "merged_into": self.merged_into, "merged_from": self.merged_from, "exports": self.exports}


def fold(events: list[dict[str, Any]]) -> dict[str, Case]:
    """Every case's current state from the event log (in ``seq`` order)."""
    cases: dict[str, Case] = {}
    for ev in events:
        cid, kind, body = ev["case_id"], ev["kind"], ev["body"]
        if kind == "open":
            case = cases[cid] = Case(cid, body.get("title", ""), "open", ev["actor"], ev["at"])
        else:
            case = cases.setdefault(cid, Case(cid))
        case.history.append(ev)
        origin = body.get("from", "") if kind == "absorb" else ""
        if kind in ("open", "add", "absorb"):
            for c in body.get("campaigns", []):
                case.campaigns.setdefault(c, origin)
            for a in body.get("accounts", []):
                case.accounts.setdefault(a, origin)
            if kind == "absorb":
                case.merged_from.append(body["from"])
        elif kind == "remove":
            for c in body.get("campaigns", []):
                case.campaigns.pop(c, None)
            for a in body.get("accounts", []):
                case.accounts.pop(a, None)
        elif kind == "state":
            case.state = body["to"]
        elif kind == "merge-into":
            case.state = "merged"
            case.merged_into = body["into"]
        elif kind == "escalate":
            case.state = "escalated"
        elif kind == "export":
            case.exports.append(body)
    return cases


def next_id(cases: dict[str, Case]) -> str:
    numbers = [int(c.split("-")[1]) for c in cases if _ID.match(c)]
    return f"case-{(max(numbers) + 1) if numbers else 1:04d}"


def check_change(cases: dict[str, Case], case_id: str, kind: str, body: dict[str, Any]) -> None:
    """Refuse changes that make no sense (to a merged or unknown case, to an unknown state, a self-merge)."""
    if kind not in KINDS:
        raise CaseError(f"unknown case event {kind!r}")
    if kind == "open":
        if case_id in cases:
            raise CaseError(f"{case_id} already exists")
        return
    case = cases.get(case_id)
    if case is None:
        raise CaseError(f"no case {case_id}")
    if case.state == "merged":
        raise CaseError(f"{case_id} was merged into {case.merged_into}: change that case instead")
    if kind == "state" and body.get("to") not in STATES[:-1]:
        raise CaseError(f"state: expected one of {', '.join(STATES[:-1])}")
    if kind == "merge-into":
        into = body.get("into")
        if into == case_id:
            raise CaseError("a case cannot be merged into itself")
        target = cases.get(into) if isinstance(into, str) else None
        if target is None or target.state == "merged":
            raise CaseError(f"cannot merge into {into!r}: no such open case")


def merge_events(cases: dict[str, Case], source: str, target: str, actor: str, why: str
                 ) -> list[tuple[str, str, str, str, dict[str, Any]]]:
    """The two events of a merge (both or neither are written)."""
    check_change(cases, source, "merge-into", {"into": target})
    src = cases[source]
    return [(source, actor, "merge-into", why, {"into": target}),
            (target, actor, "absorb", why, {"from": source, "campaigns": sorted(src.campaigns),
                                              "accounts": sorted(src.accounts)})]


def related_campaigns(campaign: dict[str, Any], others: list[dict[str, Any]], limit: int = 10
                      ) -> list[tuple[str, list[str]]]:
    """Campaigns sharing a template, identifier or infrastructure value with ``campaign`` (grouping candidates
    across time and models): ``[(campaign id, what they share)]``."""

    def values(c: dict[str, Any]) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {"template": {t.get("fingerprint", "") for t in c.get("templates", [])} - {""}}
        for section in ("infrastructure", "identifiers"):
            for k, vals in (c.get(section) or {}).items():
                if k == "asns":  # shared clouds say little
                    continue
                out[k] = {str(v) for v in vals}
        return out

    mine = values(campaign)
    found = []
    for other in others:
        if other["id"] == campaign["id"]:
            continue
        theirs = values(other)
        shared = [f"{k.replace('_', ' ')} ({len(mine[k] & theirs.get(k, set()))})" for k in mine
                  if mine[k] & theirs.get(k, set())]
        if shared:
            found.append((other["id"], shared))
    found.sort(key=lambda kv: (-len(kv[1]), kv[0]))
    return found[:limit]
