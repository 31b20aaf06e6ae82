"""Shared intel matched per request: indicators from other members' bundles, in the request path.

Batch ``intel match`` needs a detect run; here each request is checked as it
arrives against the indicators of loaded STIX bundles (``gateway --intel``):

* infrastructure: client IP inside a shared IPv4 prefix (bisect over sorted
  ranges), ASN, TLS fingerprint, User-Agent;
* templates: keyed MinHash of the request prompt against the shared signatures
  (LSH), in the template-head form ``campaigns.json`` examples (hence exported
  signatures) have, and as whole user and system texts; for an account's first ``template_sample``
  requests and every ``template_every``-th after that (hashing costs ~0.1-0.5 ms);
* identifiers: keyed HMACs of the account record's payment fingerprint, e-mail
  domain and signup IP (``--accounts``), computed once per account.

Evidence per account is the batch matcher's: the share of the account's requests so far that hit each
feature, scored by the one rule both share (:func:`distillguard.intel.match.score_evidence`); indicators
hitting more than ``max_account_share`` of the active accounts are damped. Behaviour indicators (Sigma
thresholds over an account's whole traffic) are left to batch. ``corroborated`` means ``k`` distinct members;
uncorroborated intel raises risk to the policy's ``intel_max_risk`` and no further (:mod:`distillguard.decide`).
"""

from __future__ import annotations

import bisect
import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from distillguard.intel.indicators import SharedIndicator, collect, ipv4_ranges, objects_of
from distillguard.intel.match import NO_INTEL, IntelScore, MatchOptions, score_evidence, template_texts
from distillguard.intel.privacy import TemplateHasher, TemplateIndex, decode_signature, keyed_id

IDENTIFIER_FIELDS = (("payment_fp", "payment_fp"), ("email_domain", "email_domain"), ("signup_ip", "signup_ip"))
_DAMP_WARMUP = 50  # active accounts before over-broad indicators are damped


@dataclass
class _Infra:
    ranges: list[tuple[int, int]]
    starts: list[int]
    asns: set[int]
    tls: set[str]
    uas: set[str]


@dataclass
class _Account:
    n: int = 0
    templated: int = 0  # requests whose prompt was hashed
    hits: dict[str, dict[str, int]] = field(default_factory=dict)  # indicator -> feature -> matching requests
    identifiers: dict[str, list[str]] | None = None  # indicator -> identifier kinds (static per account)


def load_bundles(paths: list[str | Path], keyring: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """STIX objects of bundle files; with a keyring, objects whose signatures do not verify are dropped."""
    objects: list[dict[str, Any]] = []
    for path in paths:
        try:
            objects += objects_of(orjson.loads(Path(path).read_bytes()))
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"{path}: not JSON ({exc})") from None
    if keyring is not None:
        from distillguard.intel.client import reject_reason

        objects = [o for o in objects if reject_reason(o, keyring) is None]
    return objects


class RequestIntel:
    def __init__(self, bundles: list[dict[str, Any]] | dict[str, Any], key: bytes,
                 accounts: dict[str, dict[str, Any]] | None = None, options: MatchOptions | None = None,
                 template_sample: int = 20, template_every: int = 8) -> None:
        self.key = key
        self.options = options or MatchOptions()
        self.accounts = accounts or {}
        self.template_sample, self.template_every = template_sample, template_every
        self.indicators: dict[str, SharedIndicator] = {i.id: i for i in collect(objects_of(bundles))}
        self._infra: dict[str, _Infra] = {}
        self._identifiers: dict[str, set[str | None]] = {}  # an identifier without its hmac matches nothing
        templates = []
        for ind in self.indicators.values():
            data = ind.data
            if ind.kind == "infrastructure":
                ranges = _merge(ipv4_ranges(data.get("ip_prefixes", [])))
                self._infra[ind.id] = _Infra(ranges, [r[0] for r in ranges],
                                             {int(a) for a in data.get("asns", []) if str(a).isdigit()},
                                             set(data.get("tls_fps", [])), set(data.get("user_agents", [])))
            elif ind.kind == "identifiers":
                self._identifiers[ind.id] = {i.get("hmac") for i in data.get("identifiers", [])
                                             if isinstance(i, dict)}
            elif ind.kind == "templates":
                templates.append(ind)
        self.index: TemplateIndex | None = None
        if templates:
            hasher = TemplateHasher(key, int(templates[0].data.get("num_perm", 64)),
                                    int(templates[0].data.get("bands", 16)))
            self.index = TemplateIndex(hasher, threshold=min(float(i.data.get("threshold", 0.5)) for i in templates))
            for ind in templates:
                for template in ind.data.get("templates", []):
                    try:
                        self.index.add(ind.id, decode_signature(template["signature"], hasher.num_perm))
                    except (KeyError, TypeError, ValueError):
                        continue  # a malformed signature from a peer is skipped, not fatal
        self._state: dict[str, _Account] = {}
        self._hit_accounts: dict[str, set[str]] = {}
        self._active = 0

    def __len__(self) -> int:
        return len(self.indicators)

    def score(self, account_id: str, row: dict[str, Any]) -> IntelScore:
        """Fold one request into the account's evidence and score it."""
        if not self.indicators:
            return NO_INTEL
        acct = self._state.get(account_id)
        if acct is None:
            acct = self._state[account_id] = _Account()
            acct.identifiers = self._match_identifiers(self.accounts.get(account_id))
        acct.n += 1
        if acct.n == self.options.min_exchanges:
            self._active += 1
        self._match_request(acct, row)
        for ind_id in acct.hits:
            self._hit_accounts.setdefault(ind_id, set()).add(account_id)
        for ind_id in acct.identifiers or {}:
            self._hit_accounts.setdefault(ind_id, set()).add(account_id)
        return self._score(acct)

    def current(self, account_id: str) -> IntelScore:
        """The account's intel score from the requests folded so far (folds nothing)."""
        acct = self._state.get(account_id)
        return self._score(acct) if acct is not None and self.indicators else NO_INTEL

    def _match_identifiers(self, record: dict[str, Any] | None) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        if not record or not self._identifiers:
            return out
        keyed = {kind: keyed_id(self.key, kind, str(record[name])) for kind, name in IDENTIFIER_FIELDS
                 if record.get(name)}
        for ind_id, wanted in self._identifiers.items():
            kinds = [kind for kind, value in keyed.items() if value in wanted]
            if kinds:
                out[ind_id] = kinds
        return out

    def _match_request(self, acct: _Account, row: dict[str, Any]) -> None:
        ip = _ipv4(row.get("ip"))
        asn, tls, ua = row.get("asn"), row.get("tls_fp"), row.get("user_agent")
        for ind_id, infra in self._infra.items():
            found = []
            if ip is not None and infra.ranges:
                i = bisect.bisect_right(infra.starts, ip) - 1
                if i >= 0 and ip <= infra.ranges[i][1]:
                    found.append("ip")
            if asn is not None and asn in infra.asns:
                found.append("asn")
            if tls and tls in infra.tls:
                found.append("tls_fp")
            if ua and ua in infra.uas:
                found.append("user_agent")
            if found:
                per = acct.hits.setdefault(ind_id, {})
                for feature in found:
                    per[feature] = per.get(feature, 0) + 1
        if self.index is not None and (acct.n <= self.template_sample or acct.n % self.template_every == 0):
            acct.templated += 1
            refs = {ref for text in template_texts(row.get("system_text"), row.get("user_text"))
                    for ref, _ in self.index.query(text)}
            for ref in refs:
                per = acct.hits.setdefault(ref, {})
                per["template"] = per.get("template", 0) + 1

    def _damp(self, ind_id: str) -> float:
        if self._active < _DAMP_WARMUP:
            return 1.0
        n = len(self._hit_accounts.get(ind_id, ()))
        limit = max(1.0, self.options.max_account_share * self._active)
        return min(1.0, limit / n) if n else 1.0

    def _score(self, acct: _Account) -> IntelScore:
        evidence: dict[str, list[tuple[str, float]]] = {}
        for ind_id, per in acct.hits.items():
            items = evidence.setdefault(ind_id, [])
            for feature, hits in per.items():
                if feature == "template":
                    items.append((feature, min(1.0, hits / max(acct.templated, 1) / 0.5)))
                else:
                    items.append((feature, hits / acct.n))
        for ind_id, kinds in (acct.identifiers or {}).items():
            evidence.setdefault(ind_id, []).extend((kind, 1.0) for kind in kinds)
        damp = {ind_id: self._damp(ind_id) for ind_id in evidence}
        return score_evidence(evidence, self.indicators, damp, self.options)


def _merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted, disjoint ranges (nested or overlapping prefixes merged), so one bisect decides membership."""
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def _ipv4(value: Any) -> int | None:
    if not value or not isinstance(value, str) or ":" in value:
        return None
    try:
        return int(ipaddress.IPv4Address(value))
    except ValueError:
        return None
