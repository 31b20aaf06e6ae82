"""What the gateway tells the engine for one request, and what it records in the store.

The gateway decides per account; the engine (where the logits are) applies the decode-time defences. The
directive travels on the *upstream* request only, never back to the client:

* header ``X-DistillGuard-Resist: v=1;ad=0.5;proxy=default;wm=acme-2026-03;tier=suspect`` (custom engines, the
  transformers server wrapper), and/or
* body field ``vllm_xargs: {"distillguard_resist": "<same string>"}``: vLLM's OpenAI server copies ``vllm_xargs``
  into ``SamplingParams.extra_args``, where :mod:`distillguard.resist.vllm_plugin` reads it. Only for vLLM
  upstreams: hosted APIs reject unknown body fields.

The gateway builds its upstream headers from scratch (client headers other than ``Accept`` are not forwarded), so a
client cannot send its own directive through it. With an optional shared secret the directive is signed
(``sig=`` HMAC-SHA256, truncated to 16 bytes): an engine reachable other than through the gateway then ignores
unsigned or forged directives and applies its own defaults.

In the store the exchange gets a top-level ``resistance`` object (kept by ingest under ``extra_json``)::

    {"resistance": {"profile": "acme-default", "profile_version": 1, "watermark_key": "acme-2026-03",
                    "antidistillation": 0.5, "reasoning": "restructure", "tier": "suspect"}}
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

from distillguard.errors import DistillguardError

HEADER = "x-distillguard-resist"
VLLM_XARGS = "vllm_xargs"
XARG_KEY = "distillguard_resist"
STORE_FIELD = "resistance"
VERSION = 1


class DirectiveError(DistillguardError, ValueError):
    """A directive an engine received is malformed, of another version, or (with a secret) unsigned or forged."""


@dataclass(frozen=True)
class EngineDirective:
    antidistillation: float = 0.0  # strength λ; 0 = off
    proxy: str | None = None  # which proxy student the engine uses (engine-side name)
    watermark_key: str | None = None  # key id; None = no watermark
    tier: str = ""

    @property
    def active(self) -> bool:
        return self.antidistillation > 0 or self.watermark_key is not None

    def encode(self, secret: bytes | None = None) -> str:
        parts = [f"v={VERSION}", f"ad={self.antidistillation:g}"]
        if self.proxy:
            parts.append(f"proxy={self.proxy}")
        parts.append(f"wm={self.watermark_key or '-'}")
        if self.tier:
            parts.append(f"tier={self.tier}")
        body = ";".join(parts)
        if secret:
            body += ";sig=" + _sign(body, secret)
        return body

    @classmethod
    def decode(cls, value: str, secret: bytes | None = None) -> EngineDirective:
        """Parse a header / xarg value; with ``secret`` an unsigned or forged value raises :class:`DirectiveError`."""
        body, _, sig = value.partition(";sig=")
        if secret is not None and (not sig or not hmac.compare_digest(sig, _sign(body, secret))):
            raise DirectiveError("directive signature missing or invalid")
        fields: dict[str, str] = {}
        for part in body.split(";"):
            name, eq, val = part.strip().partition("=")
            if not eq:
                raise DirectiveError(f"malformed directive part {part!r}")
            fields[name] = val
        if fields.get("v") != str(VERSION):
            raise DirectiveError(f"unsupported directive version {fields.get('v')!r}")
        try:
            ad = float(fields.get("ad", "0"))
        except ValueError:
            raise DirectiveError(f"ad: not a number: {fields['ad']!r}") from None
        if not ad >= 0:
            raise DirectiveError("ad: must be >= 0")
        wm = fields.get("wm", "-")
        return cls(antidistillation=ad, proxy=fields.get("proxy") or None,
                   watermark_key=None if wm in ("", "-") else wm, tier=fields.get("tier", ""))


def _sign(body: str, secret: bytes) -> str:
    return hmac.new(secret, body.encode(), hashlib.sha256).hexdigest()[:32]


def attach(directive: EngineDirective, body: dict[str, Any], headers: dict[str, str], *, transport: str = "header",
           secret: bytes | None = None) -> None:
    """Put the directive on the upstream request (``transport``: header | vllm_xargs | both)."""
    value = directive.encode(secret)
    if transport in ("header", "both"):
        headers[HEADER] = value
    if transport in ("vllm_xargs", "both"):
        xargs = body.get(VLLM_XARGS)
        xargs = dict(xargs) if isinstance(xargs, dict) else {}
        xargs[XARG_KEY] = value
        body[VLLM_XARGS] = xargs


def strip_client_directive(body: dict[str, Any]) -> bool:
    """Remove a directive a client put in its own ``vllm_xargs`` (call before :func:`attach`); True if removed."""
    xargs = body.get(VLLM_XARGS)
    if isinstance(xargs, dict) and XARG_KEY in xargs:
        xargs = {k: v for k, v in xargs.items() if k != XARG_KEY}
        if xargs:
            body[VLLM_XARGS] = xargs
        else:
            del body[VLLM_XARGS]
        return True
    return False


def from_request(headers: dict[str, str] | None = None, extra_args: dict[str, Any] | None = None,
                 secret: bytes | None = None) -> EngineDirective | None:
    """The directive an engine plugin received (header or vLLM ``extra_args``); None when there is none."""
    value = None
    if extra_args and isinstance(extra_args.get(XARG_KEY), str):
        value = extra_args[XARG_KEY]
    elif headers:
        value = next((v for k, v in headers.items() if k.lower() == HEADER), None)
    if value is None:
        return None
    return EngineDirective.decode(value, secret)
