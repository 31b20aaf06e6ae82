"""The distillation-resistance profile: a versioned, exchangeable policy of which defence, how strong, for which
verdict, under which key (docs/resistance.md). Loaded with every value's line kept, so errors read like the
gateway policy's: ``resistance.yaml:14: tiers.throttle.antidistillation: expected a number >= 0``.

::

    distillguard_resistance: 1        # format version
    name: acme-default
    provider: acme
    watermark:
      keys: keys.yaml                 # relative to this file; secrets stay in the environment
      key: acme-2026-03               # default: the key ring's active key
      apply_to: all                   # all | restricted (verdicts watch, throttle) | none
    antidistillation:
      proxy: default                  # engine-side proxy student name
    engine:
      transport: header               # header | vllm_xargs | both
      secret_env: DG_RESIST_SECRET    # optional: sign directives (HMAC) so the engine can trust them
    tiers:                            # by verdict (distillguard.decide): allow, watch, throttle, block
      allow:    {antidistillation: 0,   reasoning: keep}
      watch:    {antidistillation: 0.5, reasoning: restructure}
      throttle: {antidistillation: 1.0, reasoning: summarise, watermark: true}
      block:    {}
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from distillguard.errors import DistillguardError
from distillguard.resist.directive import STORE_FIELD, EngineDirective, attach, strip_client_directive
from distillguard.resist.keys import KeyError_, KeyRing, load_keyring

FORMAT_VERSION = 1
VERDICTS = ("allow", "watch", "throttle", "block")  # the verdicts of distillguard.decide
REASONING = ("keep", "withhold", "summarise", "restructure")
APPLY_TO = ("all", "restricted", "none")
TRANSPORTS = ("header", "vllm_xargs", "both")
RESTRICTED = frozenset({"watch", "throttle"})


class ProfileError(DistillguardError, ValueError):
    """A resistance profile is invalid; the message names file, line and field (also ``source``, ``line``,
    ``field``, so :func:`distillguard.errors.location` reads them)."""

    @classmethod
    def at(cls, source: str, line: int, field: str, reason: str) -> ProfileError:
        """``source:line: field: reason``, located."""
        error = cls(f"{source}:{line}: {field}: {reason}")
        error.source, error.line, error.field = source, line, field
        return error


@dataclass(frozen=True)
class TierDefence:
    antidistillation: float = 0.0
    reasoning: str = "keep"
    watermark: bool | None = None  # None: as watermark.apply_to says


@dataclass(frozen=True)
class ResistanceProfile:
    name: str = "default"
    provider: str = ""
    version: int = FORMAT_VERSION
    tiers: dict[str, TierDefence] = field(default_factory=dict)
    watermark_key: str | None = None
    apply_to: str = "all"
    proxy: str = "default"
    transport: str = "header"
    secret: bytes | None = None
    keyring: KeyRing | None = None
    source: str = "<default>"

    def defence(self, verdict: str) -> TierDefence:
        return self.tiers.get(verdict, TierDefence())

    def watermarks(self, verdict: str) -> bool:
        if self.watermark_key is None:
            return False
        explicit = self.defence(verdict).watermark
        if explicit is not None:
            return explicit
        return self.apply_to == "all" or (self.apply_to == "restricted" and verdict in RESTRICTED)

    def directive(self, verdict: str, tier: str = "", enforced: bool = True) -> EngineDirective:
        """What the engine does for a request of this verdict. In shadow mode (``enforced`` False) nothing that a
        user could notice: no antidistillation; the watermark, invisible and provider-wide, stays as configured."""
        d = self.defence(verdict)
        if not enforced:
            d = TierDefence(watermark=d.watermark)
        return EngineDirective(antidistillation=d.antidistillation,
                               proxy=self.proxy if d.antidistillation > 0 else None,
                               watermark_key=self.watermark_key if self.watermarks(verdict) else None,
                               tier=tier or verdict)

    def reasoning(self, verdict: str, enforced: bool = True) -> str:
        """The text-level trace defence for this verdict (``keep`` in shadow mode)."""
        return self.defence(verdict).reasoning if enforced else "keep"

    def record(self, verdict: str, tier: str = "", enforced: bool = True) -> dict[str, Any]:
        """The ``resistance`` object stored with the exchange (key id, never the secret)."""
        d = self.directive(verdict, tier, enforced)
        return {"profile": self.name, "profile_version": self.version, "watermark_key": d.watermark_key,
                "antidistillation": d.antidistillation, "reasoning": self.reasoning(verdict, enforced),
                "tier": d.tier}

    def on_request(self, verdict: str, tier: str, body: dict[str, Any], headers: dict[str, str],
                   record: dict[str, Any] | None = None, enforced: bool = True) -> EngineDirective:
        """The gateway hook: directive onto the upstream request, ``resistance`` onto the stored exchange."""
        strip_client_directive(body)
        d = self.directive(verdict, tier, enforced)
        if d.active:
            attach(d, body, headers, transport=self.transport, secret=self.secret)
        if record is not None:
            record[STORE_FIELD] = self.record(verdict, tier, enforced)
        return d


class _Loader(yaml.SafeLoader):
    pass


class _Map(dict):
    lines: dict[str, int]
    line: int


def _mapping(loader: _Loader, node: yaml.MappingNode) -> _Map:
    out = _Map(loader.construct_mapping(node, deep=True))
    out.lines = {k.value: k.start_mark.line + 1 for k, _ in node.value if isinstance(k, yaml.ScalarNode)}
    out.line = node.start_mark.line + 1
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


class _R:
    def __init__(self, source: str, data: Any, path: str, line: int) -> None:
        self.source, self.path = source, path
        self.line = getattr(data, "line", line)
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ProfileError.at(source, line, path or "<top>", "expected a mapping")
        self.data, self.lines = data, getattr(data, "lines", {})

    def fail(self, key: str, reason: str) -> ProfileError:
        name = f"{self.path}.{key}" if self.path else key
        return ProfileError.at(self.source, self.lines.get(key, self.line), name, reason)

    def keys(self, allowed: set[str]) -> None:
        for key in self.data:
            if key not in allowed:
                raise self.fail(str(key), f"unknown field (expected one of {', '.join(sorted(allowed))})")

    def text(self, key: str, default: str | None = None) -> str | None:
        value = self.data.get(key, default)
        if value is not None and not isinstance(value, str):
            raise self.fail(key, f"expected a string, got {value!r}")
        return value

    def choice(self, key: str, options: tuple[str, ...], default: str) -> str:
        value = self.text(key, default)
        if value not in options:
            raise self.fail(key, f"must be one of {', '.join(options)}; got {value!r}")
        return value

    def number(self, key: str, default: float) -> float:
        value = self.data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise self.fail(key, f"expected a number >= 0, got {value!r}")
        return float(value)

    def flag(self, key: str) -> bool | None:
        value = self.data.get(key)
        if value is not None and not isinstance(value, bool):
            raise self.fail(key, f"expected true or false, got {value!r}")
        return value

    def child(self, key: str) -> _R:
        name = f"{self.path}.{key}" if self.path else key
        return _R(self.source, self.data.get(key), name, self.lines.get(key, self.line))


def parse_profile(text: str, source: str, base_dir: Path | None = None) -> ResistanceProfile:
    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ProfileError.at(source, mark.line + 1 if mark else 1, "<yaml>", str(getattr(exc, "problem", exc))) \
            from None
    top = _R(source, data, "", 1)
    top.keys({"distillguard_resistance", "name", "provider", "watermark", "antidistillation", "engine", "tiers"})
    version = top.data.get("distillguard_resistance")
    if version != FORMAT_VERSION:
        raise top.fail("distillguard_resistance", f"required, the format version ({FORMAT_VERSION}); got {version!r}")
    wm = top.child("watermark")
    wm.keys({"keys", "key", "apply_to"})
    keyring, key_id = None, wm.text("key")
    keys_path = wm.text("keys")
    if keys_path is not None:
        path = Path(keys_path)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        try:
            keyring = load_keyring(path)
            key_id = keyring.get(key_id).id if key_id else keyring.active.id
        except KeyError_ as exc:
            raise wm.fail("keys" if not wm.data.get("key") else "key", str(exc)) from None
    elif key_id is not None:
        raise wm.fail("keys", "required when watermark.key is set (the keys file the key id is in)")
    apply_to = wm.choice("apply_to", APPLY_TO, "all" if key_id else "none")
    ad = top.child("antidistillation")
    ad.keys({"proxy"})
    engine = top.child("engine")
    engine.keys({"transport", "secret_env"})
    secret = None
    env = engine.text("secret_env")
    if env:
        value = os.environ.get(env)
        if value is None:
            raise engine.fail("secret_env", f"environment variable {env} is not set")
        secret = value.encode()
    tiers_r = top.child("tiers")
    tiers_r.keys(set(VERDICTS))
    tiers = {}
    for verdict in VERDICTS:
        t = tiers_r.child(verdict)
        t.keys({"antidistillation", "reasoning", "watermark"})
        tiers[verdict] = TierDefence(antidistillation=t.number("antidistillation", 0.0),
                                     reasoning=t.choice("reasoning", REASONING, "keep"), watermark=t.flag("watermark"))
        if tiers[verdict].watermark and key_id is None:
            raise t.fail("watermark", "true but the profile has no watermark key (watermark.keys / watermark.key)")
    return ResistanceProfile(name=top.text("name", "default") or "default", provider=top.text("provider", "") or "",
                             tiers=tiers, watermark_key=key_id, apply_to=apply_to,
                             proxy=ad.text("proxy", "default") or "default",
                             transport=engine.choice("transport", TRANSPORTS, "header"), secret=secret,
                             keyring=keyring, source=source)


def load_profile(path: str | Path) -> ResistanceProfile:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ProfileError(f"{path}: cannot read resistance profile: {exc.strerror}") from None
    return parse_profile(text, str(path), path.parent)
