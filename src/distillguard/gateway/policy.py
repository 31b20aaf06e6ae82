"""The declarative gateway policy: verdicts -> actions, budgets, perturbation, exemptions, failure mode.

Risk and verdict come from :mod:`distillguard.decide` (the one decision stage, shared with batch detection);
its thresholds and rules are the policy's ``decide:`` section. A tier says what the gateway does with the
accounts of one verdict.

Loaded from YAML with every value's line kept, so a bad policy is reported as
``policy.yaml:12: tiers[1].requests_per_minute: expected a positive number`` rather
than a stack trace when the gateway starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any, overload

import yaml

from distillguard.decide import DEFAULT_POLICY, VERDICTS, DecisionPolicy
from distillguard.errors import DistillguardError

ACTIONS = ("allow", "throttle", "perturb", "block")  # the built-in actions; plug-ins register more (gateway.actions)
MODES = ("shadow", "enforce")
FAIL_MODES = ("open", "closed")
REASONING_MODES = ("keep", "withhold", "summarise", "restructure")  # restructure: distillguard.resist.text


class PolicyError(DistillguardError, ValueError):
    """A policy file is invalid; the message names file, line and field (also ``source``, ``line``, ``field``)."""

    @classmethod
    def at(cls, source: str, line: int, field: str, reason: str) -> PolicyError:
        """``source:line: field: reason``, located."""
        error = cls(f"{source}:{line}: {field}: {reason}")
        error.source, error.line, error.field = source, line, field
        return error


@dataclass(frozen=True)
class Perturb:
    """Output defences for suspected accounts; legitimate traffic never passes through these."""

    reasoning: str = "withhold"  # keep | withhold | summarise | restructure (conclusion first, no self-talk)
    summary_chars: int = 160
    strip_logprobs: bool = True
    max_n: int = 1
    max_tokens_cap: int | None = None


@dataclass(frozen=True)
class Tier:
    """Accounts whose verdict is ``verdict`` get ``action``, within these budgets."""

    name: str
    verdict: str
    action: str
    requests_per_minute: float | None = None
    tokens_per_minute: float | None = None
    burst: float = 1.0  # seconds of budget that may be spent at once
    perturb: bool = False  # also apply output defences (throttle + perturb)
    shadow: bool | None = None  # overrides the global mode for this tier
    reasoning: str | None = None  # overrides perturb.reasoning for this tier's perturbed exchanges


@dataclass(frozen=True)
class Policy:
    mode: str = "shadow"
    fail: str = "open"
    tiers: tuple[Tier, ...] = ()
    perturb: Perturb = field(default_factory=Perturb)
    allow_accounts: frozenset[str] = frozenset()
    allow_orgs: frozenset[str] = frozenset()
    exempt_verified: bool = False
    decide: DecisionPolicy = DEFAULT_POLICY  # thresholds and rules of the decision stage
    max_body_bytes: int = 4 * 1024 * 1024
    upstream_timeout_s: float = 300.0
    unknown_keys: str = "reject"  # reject | allow (an account named after the key's hash)
    source: str = "<default>"

    def tier_for(self, verdict: str) -> Tier:
        for tier in self.tiers:
            if tier.verdict == verdict:
                return tier
        return self.tiers[-1]

    @property
    def intel_max_risk(self) -> float:
        return self.decide.intel_max_risk

    def is_shadow(self, tier: Tier) -> bool:
        return tier.shadow if tier.shadow is not None else self.mode == "shadow"

    def perturb_for(self, tier: Tier | None) -> Perturb:
        """The output defences of ``tier``: ``perturb``, with the tier's own ``reasoning`` when it sets one."""
        if tier is None or tier.reasoning is None or tier.reasoning == self.perturb.reasoning:
            return self.perturb
        return replace(self.perturb, reasoning=tier.reasoning)


class _LineLoader(yaml.SafeLoader):
    """Safe loader that records the line of each mapping so validation can point at it."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> dict:
    mapping = loader.construct_mapping(node, deep=True)
    lines = {key.value: key.start_mark.line + 1 for key, _ in node.value if isinstance(key, yaml.ScalarNode)}
    return _Mapping(mapping, lines, node.start_mark.line + 1)


class _Mapping(dict):
    def __init__(self, data: dict, lines: dict[str, int], line: int) -> None:
        super().__init__(data)
        self.lines = lines
        self.line = line


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


class _Reader:
    """Typed access to one mapping, raising :class:`PolicyError` with file, line and field path."""

    def __init__(self, source: str, data: Any, path: str, line: int = 1) -> None:
        self.source, self.path = source, path
        if not isinstance(data, dict):
            raise PolicyError.at(source, line, path or "<top>", "expected a mapping")
        self.data = data
        # a mapping _LineLoader read knows its lines; a dict built in code does not
        self.lines: dict[str, int] = data.lines if isinstance(data, _Mapping) else {}
        self.line: int = data.line if isinstance(data, _Mapping) else line

    def fail(self, key: str, reason: str) -> PolicyError:
        name = f"{self.path}.{key}" if self.path else key
        return PolicyError.at(self.source, self.lines.get(key, self.line), name, reason)

    def check_keys(self, allowed: set[str]) -> None:
        for key in self.data:
            if key not in allowed:
                raise self.fail(str(key), f"unknown field (expected one of {', '.join(sorted(allowed))})")

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = None) -> Any:
        value = self.data.get(key, default)
        if value is None:
            return default
        if kind in (float, int) and isinstance(value, int | float) and not isinstance(value, bool):
            return kind(value)
        if not isinstance(value, kind) or (isinstance(value, bool) and kind in (int, float)):
            names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
            raise self.fail(key, f"expected {names}, got {type(value).__name__} {value!r}")
        return value

    def choice(self, key: str, options: tuple[str, ...], default: str) -> str:
        value = self.get(key, str, default)
        if value not in options:
            raise self.fail(key, f"must be one of {', '.join(options)}; got {value!r}")
        return value

    @overload
    def positive(self, key: str, default: float, allow_zero: bool = False) -> float: ...

    @overload
    def positive(self, key: str, default: None = None, allow_zero: bool = False) -> float | None: ...

    def positive(self, key: str, default: float | None = None, allow_zero: bool = False) -> float | None:
        value = self.get(key, float, default)
        if value is not None and (value < 0 or (value == 0 and not allow_zero)):
            raise self.fail(key, f"expected a positive number, got {value!r}")
        return value

    def strings(self, key: str) -> frozenset[str]:
        value = self.get(key, list, [])
        if not all(isinstance(v, str) for v in value):
            raise self.fail(key, "expected a list of strings")
        return frozenset(value)

    def child(self, key: str) -> _Reader:
        name = f"{self.path}.{key}" if self.path else key
        return _Reader(self.source, self.data.get(key) or _Mapping({}, {}, self.lines.get(key, self.line)),
                       name, self.lines.get(key, self.line))


def _tier(reader: _Reader) -> Tier:
    if "min_risk" in reader.data:
        raise reader.fail("min_risk", "tiers select accounts by verdict since policy version 2: replace "
                                      "`min_risk: X` with `verdict: allow|watch|throttle|block` and put thresholds "
                                      "in the `decide:` section (see docs/gateway.md)")
    reader.check_keys({"name", "verdict", "action", "requests_per_minute", "tokens_per_minute", "burst_seconds",
                       "perturb", "shadow", "reasoning"})
    name = reader.get("name", str)
    if not name:
        raise reader.fail("name", "required")
    if reader.get("verdict", str) is None:
        raise reader.fail("verdict", f"required, one of {', '.join(VERDICTS)}")
    from distillguard.gateway.actions import action_class, registered_actions

    action = reader.get("action", str, "allow")
    if action_class(action) is None:
        raise reader.fail("action", f"must be one of {', '.join(registered_actions())} (registered actions); "
                                    f"got {action!r}")
    return Tier(name=name, verdict=reader.choice("verdict", VERDICTS, "allow"), action=action,
                requests_per_minute=reader.positive("requests_per_minute"),
                tokens_per_minute=reader.positive("tokens_per_minute"),
                burst=reader.positive("burst_seconds", 1.0), perturb=reader.get("perturb", bool, False),
                shadow=reader.get("shadow", bool),
                reasoning=reader.choice("reasoning", REASONING_MODES, "keep")
                if reader.get("reasoning", str) is not None else None)


def parse_policy(text: str, source: str) -> Policy:
    """Parse policy YAML text; ``source`` names the file in error messages."""
    try:
        data = yaml.load(text, Loader=_LineLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else 1
        raise PolicyError.at(source, line, "<yaml>", str(getattr(exc, "problem", exc))) from None
    top = _Reader(source, data if data is not None else _Mapping({}, {}, 1), "")
    top.check_keys({"version", "mode", "fail", "tiers", "perturb", "allow", "intel_max_risk", "decide", "limits",
                    "unknown_keys"})
    if top.get("version", int, 2) != 2:
        raise top.fail("version", "only version 2 is supported (tiers select by verdict; see docs/gateway.md)")
    tiers_raw = top.get("tiers", list, [])
    if not tiers_raw:
        raise top.fail("tiers", "at least one tier is required")
    tiers = tuple(_tier(_Reader(source, raw, f"tiers[{i}]", top.lines.get("tiers", 1)))
                  for i, raw in enumerate(tiers_raw))
    seen: dict[str, int] = {}
    for i, tier in enumerate(tiers):
        if tier.verdict in seen:
            raise PolicyError.at(source, top.lines.get("tiers", 1), f"tiers[{i}].verdict",
                                 f"{tier.verdict!r} already has tier {seen[tier.verdict]}")
        seen[tier.verdict] = i
    missing = [v for v in VERDICTS if v not in seen]
    if missing:
        raise PolicyError.at(source, top.lines.get("tiers", 1), "tiers",
                             f"every verdict needs a tier; missing {', '.join(missing)}")
    p = top.child("perturb")
    p.check_keys({"reasoning", "summary_chars", "strip_logprobs", "max_n", "max_tokens_cap"})
    cap = p.positive("max_tokens_cap")
    perturb = Perturb(reasoning=p.choice("reasoning", REASONING_MODES, "withhold"),
                      summary_chars=int(p.positive("summary_chars", 160)),
                      strip_logprobs=p.get("strip_logprobs", bool, True), max_n=int(p.positive("max_n", 1)),
                      max_tokens_cap=int(cap) if cap else None)
    a = top.child("allow")
    a.check_keys({"accounts", "orgs", "verified_orgs"})
    limits = top.child("limits")
    limits.check_keys({"max_body_bytes", "upstream_timeout_s"})
    decide_data = dict(top.get("decide", dict, {}))
    intel_max = top.get("intel_max_risk", float)
    if intel_max is not None:  # kept at the top level for old files: the same setting as decide.intel_max_risk
        decide_data.setdefault("intel_max_risk", intel_max)
    try:
        decision = DecisionPolicy.from_mapping(decide_data, "decide")
    except ValueError as exc:
        raise PolicyError(f"{source}:{top.lines.get('decide', top.lines.get('intel_max_risk', 1))}: {exc}") from None
    return Policy(mode=top.choice("mode", MODES, "shadow"), fail=top.choice("fail", FAIL_MODES, "open"),
                  tiers=tiers, perturb=perturb, allow_accounts=a.strings("accounts"), allow_orgs=a.strings("orgs"),
                  exempt_verified=a.get("verified_orgs", bool, False), decide=decision,
                  max_body_bytes=int(limits.positive("max_body_bytes", 4 * 1024 * 1024)),
                  upstream_timeout_s=limits.positive("upstream_timeout_s", 300.0),
                  unknown_keys=top.choice("unknown_keys", ("reject", "allow"), "reject"), source=source)


def load_policy(path: str | Path | None = None) -> Policy:
    """Load ``path``, or the packaged default policy (shadow mode) when ``path`` is None."""
    if path is None:
        text = resources.files("distillguard.data").joinpath("policy-default.yaml").read_text()
        return parse_policy(text, "policy-default.yaml")
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise PolicyError(f"{path}: cannot read policy: {exc.strerror}") from None
    return parse_policy(text, str(path))
