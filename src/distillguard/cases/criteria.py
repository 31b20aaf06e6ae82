"""Escalation criteria, declared in a policy file and evaluated on every case continuously.

A policy (YAML) names the criteria and how many must hold::

    escalation:
      require: all            # all | any | a number of criteria
      criteria:
        - {name: confirmed by two analysts, kind: confirmed_by, min: 2}
        - {name: harvested at least 10000 exchanges, kind: harvested_exchanges, min: 10000}
        - {name: corroborated by two members, kind: corroborated_by, min: 2}
        - {name: targets a listed capability, kind: targets_capability, capabilities: [cyber, bio], min_share: 0.05}
        - {name: spans two models, kind: models, min: 2}

Kinds (what a case is measured by): ``confirmed_by`` distinct analysts with a confirm decision in force on the
case's accounts; ``harvested_exchanges`` exchanges of the case's campaigns and accounts; ``corroborated_by``
distinct sharing-group members whose intel matched the case's accounts; ``targets_capability`` share of the
case's exchanges on any listed capability; ``campaigns``, ``accounts`` and ``models`` counts. Errors name file,
line and field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from distillguard.errors import DistillguardError

CRITERIA_KINDS = ("confirmed_by", "harvested_exchanges", "corroborated_by", "targets_capability", "campaigns",
                  "accounts", "models")
DEFAULT_POLICY = """
escalation:
  require: all
  criteria:
    - {name: confirmed by two analysts, kind: confirmed_by, min: 2}
    - {name: harvested at least 1000 exchanges, kind: harvested_exchanges, min: 1000}
    - {name: corroborated by two sharing-group members, kind: corroborated_by, min: 2}
"""


class CriteriaError(DistillguardError, ValueError):
    pass


@dataclass(frozen=True)
class Criterion:
    name: str
    kind: str
    min: float = 1.0
    capabilities: tuple[str, ...] = ()
    min_share: float = 0.0


@dataclass(frozen=True)
class EscalationPolicy:
    criteria: tuple[Criterion, ...]
    require: str | int = "all"
    source: str = "<default>"

    def needed(self) -> int:
        if self.require == "all":
            return len(self.criteria)
        if self.require == "any":
            return 1
        return int(self.require)


@dataclass
class CaseFacts:
    """What criteria measure, gathered for one case."""

    confirmed_by: set[str] = field(default_factory=set)
    exchanges: int = 0
    corroborating_members: set[str] = field(default_factory=set)
    capabilities: dict[str, float] = field(default_factory=dict)  # share of the case's exchanges
    campaigns: int = 0
    accounts: int = 0
    models: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class Result:
    criterion: Criterion
    met: bool
    measured: str


def _lines(text: str) -> dict[int, int]:
    """Line of each criterion (by index) for error messages."""
    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return {}
    out: dict[int, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if key.value == "escalation" and isinstance(value, yaml.MappingNode):
                for k2, v2 in value.value:
                    if k2.value == "criteria" and isinstance(v2, yaml.SequenceNode):
                        for i, item in enumerate(v2.value):
                            out[i] = item.start_mark.line + 1
    return out


def parse_policy(text: str, source: str = "<policy>") -> EscalationPolicy:
    try:
        doc = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise CriteriaError(f"{source}:{mark.line + 1 if mark else 1}: <yaml>: {exc}") from None
    section = doc.get("escalation") if isinstance(doc, dict) else None
    if not isinstance(section, dict):
        raise CriteriaError(f"{source}:1: escalation: required mapping")
    lines = _lines(text)
    raw = section.get("criteria")
    if not isinstance(raw, list) or not raw:
        raise CriteriaError(f"{source}:1: escalation.criteria: at least one criterion")
    criteria = []
    for i, item in enumerate(raw):
        where = f"{source}:{lines.get(i, 1)}: escalation.criteria[{i}]"
        if not isinstance(item, dict):
            raise CriteriaError(f"{where}: expected a mapping")
        unknown = set(item) - {"name", "kind", "min", "capabilities", "min_share"}
        if unknown:
            raise CriteriaError(f"{where}.{sorted(unknown)[0]}: unknown field")
        kind = item.get("kind")
        if kind not in CRITERIA_KINDS:
            raise CriteriaError(f"{where}.kind: expected one of {', '.join(CRITERIA_KINDS)}, got {kind!r}")
        try:
            minimum = float(item.get("min", 1))
            share = float(item.get("min_share", 0.0))
        except (TypeError, ValueError):
            raise CriteriaError(f"{where}.min: not a number") from None
        caps = item.get("capabilities") or []
        if kind == "targets_capability" and (not isinstance(caps, list) or not caps):
            raise CriteriaError(f"{where}.capabilities: a list of capability names is required")
        criteria.append(Criterion(str(item.get("name") or kind), kind, minimum, tuple(str(c) for c in caps), share))
    require = section.get("require", "all")
    if require not in ("all", "any") and not (isinstance(require, int) and 1 <= require <= len(criteria)):
        raise CriteriaError(f"{source}:1: escalation.require: all, any or a number from 1 to {len(criteria)}")
    return EscalationPolicy(tuple(criteria), require, source)


def load_policy(path: str | Path | None) -> EscalationPolicy:
    if path is None:
        return parse_policy(DEFAULT_POLICY, "<default escalation policy>")
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise CriteriaError(f"{path}: cannot read: {exc.strerror}") from None
    return parse_policy(text, str(path))


def evaluate(policy: EscalationPolicy, facts: CaseFacts) -> tuple[bool, list[Result]]:
    """(whether the case meets the policy, each criterion with what was measured)."""
    results = []
    for c in policy.criteria:
        if c.kind == "confirmed_by":
            n = len(facts.confirmed_by)
            results.append(Result(c, n >= c.min, f"{n} analyst(s): {', '.join(sorted(facts.confirmed_by)) or '-'}"))
        elif c.kind == "harvested_exchanges":
            results.append(Result(c, facts.exchanges >= c.min, f"{facts.exchanges:,} exchanges"))
        elif c.kind == "corroborated_by":
            n = len(facts.corroborating_members)
            results.append(Result(c, n >= c.min,
                                  f"{n} member(s): {', '.join(sorted(facts.corroborating_members)) or '-'}"))
        elif c.kind == "targets_capability":
            share = sum(facts.capabilities.get(cap, 0.0) for cap in c.capabilities)
            results.append(Result(c, share >= max(c.min_share, 1e-9),
                                  f"{share:.1%} of exchanges on {', '.join(c.capabilities)}"))
        else:
            n = {"campaigns": facts.campaigns, "accounts": facts.accounts, "models": len(facts.models)}[c.kind]
            results.append(Result(c, n >= c.min, f"{n:,} {c.kind}"))
    met = sum(r.met for r in results)
    return met >= policy.needed(), results
