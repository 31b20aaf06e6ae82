"""The declarative gateway policy: risk tiers -> actions, budgets, perturbation, exemptions, failure mode.

Loaded from YAML with every value's line kept, so a bad policy is reported as
``policy.yaml:12: tiers[1].requests_per_minute: expected a positive number`` rather
than a stack trace when the gateway starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

ACTIONS = ("allow", "throttle", "perturb", "block")
MODES = ("shadow", "enforce")
FAIL_MODES = ("open", "closed")
REASONING_MODES = ("keep", "withhold", "summarise")


class PolicyError(ValueError):
    """A policy file is invalid; the message names file, line and field."""


@dataclass(frozen=True)
class Perturb:
    """Output defences for suspected accounts; legitimate traffic never passes through these."""

    reasoning: str = "withhold"  # keep | withhold | summarise
    summary_chars: int = 160
    strip_logprobs: bool = True
    max_n: int = 1
    max_tokens_cap: int | None = None


@dataclass(frozen=True)
class Tier:
    """Accounts whose risk is at least ``min_risk`` get ``action`` (tiers are checked top to bottom)."""

    name: str
    min_risk: float
    action: str
    requests_per_minute: float | None = None
    tokens_per_minute: float | None = None
    burst: float = 1.0  # seconds of budget that may be spent at once
    perturb: bool = False  # also apply output defences (throttle + perturb)
    shadow: bool | None = None  # overrides the global mode for this tier


@dataclass(frozen=True)
class Policy:
    mode: str = "shadow"
    fail: str = "open"
    tiers: tuple[Tier, ...] = ()
    perturb: Perturb = field(default_factory=Perturb)
    allow_accounts: frozenset[str] = frozenset()
    allow_orgs: frozenset[str] = frozenset()
    exempt_verified: bool = False
    intel_max_risk: float = 0.6  # shared intel alone never reaches block (corroboration rule)
    max_body_bytes: int = 4 * 1024 * 1024
    upstream_timeout_s: float = 300.0
    unknown_keys: str = "reject"  # reject | allow (an account named after the key's hash)
    source: str = "<default>"

    def tier_for(self, risk: float) -> Tier:
        for tier in self.tiers:
            if risk >= tier.min_risk:
                return tier
        return self.tiers[-1]

    def is_shadow(self, tier: Tier) -> bool:
        return tier.shadow if tier.shadow is not None else self.mode == "shadow"


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
            raise PolicyError(f"{source}:{line}: {path or '<top>'}: expected a mapping")
        self.data = data
        self.lines: dict[str, int] = getattr(data, "lines", {})
        self.line = getattr(data, "line", line)

    def fail(self, key: str, reason: str) -> PolicyError:
        name = f"{self.path}.{key}" if self.path else key
        return PolicyError(f"{self.source}:{self.lines.get(key, self.line)}: {name}: {reason}")

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
    reader.check_keys({"name", "min_risk", "action", "requests_per_minute", "tokens_per_minute", "burst_seconds",
                       "perturb", "shadow"})
    name = reader.get("name", str)
    if not name:
        raise reader.fail("name", "required")
    risk = reader.get("min_risk", float)
    if risk is None or not 0 <= risk <= 1:
        raise reader.fail("min_risk", f"required, between 0 and 1; got {risk!r}")
    return Tier(name=name, min_risk=risk, action=reader.choice("action", ACTIONS, "allow"),
                requests_per_minute=reader.positive("requests_per_minute"),
                tokens_per_minute=reader.positive("tokens_per_minute"),
                burst=reader.positive("burst_seconds", 1.0), perturb=reader.get("perturb", bool, False),
                shadow=reader.get("shadow", bool))


def parse_policy(text: str, source: str) -> Policy:
    """Parse policy YAML text; ``source`` names the file in error messages."""
    try:
        data = yaml.load(text, Loader=_LineLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else 1
        raise PolicyError(f"{source}:{line}: <yaml>: {getattr(exc, 'problem', exc)}") from None
    top = _Reader(source, data if data is not None else _Mapping({}, {}, 1), "")
    top.check_keys({"version", "mode", "fail", "tiers", "perturb", "allow", "intel_max_risk", "limits",
                    "unknown_keys"})
    if top.get("version", int, 1) != 1:
        raise top.fail("version", "only version 1 is supported")
    tiers_raw = top.get("tiers", list, [])
    if not tiers_raw:
        raise top.fail("tiers", "at least one tier is required")
    tiers = tuple(_tier(_Reader(source, raw, f"tiers[{i}]", top.lines.get("tiers", 1)))
                  for i, raw in enumerate(tiers_raw))
    for i in range(1, len(tiers)):
        if tiers[i].min_risk > tiers[i - 1].min_risk:
            raise PolicyError(f"{source}:{top.lines.get('tiers', 1)}: tiers[{i}].min_risk: tiers must be ordered "
                              f"from highest to lowest min_risk")
    if tiers[-1].min_risk != 0:
        raise PolicyError(f"{source}:{top.lines.get('tiers', 1)}: tiers[{len(tiers) - 1}].min_risk: the last tier "
                          f"must have min_risk 0 so every account has a tier")
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
    intel_max = top.get("intel_max_risk", float, 0.6)
    if not 0 <= intel_max <= 1:
        raise top.fail("intel_max_risk", "must be between 0 and 1")
    return Policy(mode=top.choice("mode", MODES, "shadow"), fail=top.choice("fail", FAIL_MODES, "open"),
                  tiers=tiers, perturb=perturb, allow_accounts=a.strings("accounts"), allow_orgs=a.strings("orgs"),
                  exempt_verified=a.get("verified_orgs", bool, False), intel_max_risk=intel_max,
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
