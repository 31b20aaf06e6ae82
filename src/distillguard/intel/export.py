"""campaigns.json -> a signed, TLP-marked STIX 2.1 bundle that carries no raw private data.

Only attacker-side data leaves: infrastructure that local benign customers do
not share, account identifiers as keyed HMACs, prompt templates as keyed MinHash
signatures, behaviour as thresholds. ``templates[].example`` and the raw
``identifiers`` of campaigns.json are local-only and never copied.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import stix2
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from distillguard.errors import DistillguardError
from distillguard.intel import sigma
from distillguard.intel.extension import EXTENSION_ID, extension_definition, project_identity
from distillguard.intel.privacy import TemplateHasher, encode_signature, keyed_id, subkey
from distillguard.intel.refdata import atlas_objects, tlp_markings, tlp_rank
from distillguard.intel.signing import sign

_NS = uuid.UUID("6f1d2a8e-3c4b-4e5f-9a7b-1c2d3e4f5a6b")
_MIN_V4_PREFIX, _MIN_V6_PREFIX = 16, 32  # broader prefixes cover too many bystanders to share
IDENTIFIER_KINDS = ("payment_fps", "email_domains", "signup_ips")


class ExportError(DistillguardError, ValueError):
    """campaigns.json (or its companions) is malformed; the message names file and field."""


def member_identity_id(member: str) -> str:
    """Deterministic identity id of a sharing-group member, so hubs and peers can check ``created_by_ref``."""
    return f"identity--{_uuid('member/' + member)}"


def key_id(group_key: bytes) -> str:
    """Public fingerprint of the group key: tells a peer which key a keyed value was made under."""
    return subkey(group_key, "key-id").hex()[:16]


def _uuid(name: str) -> uuid.UUID:
    """Name-derived but UUIDv4-shaped (STIX SHOULD use v4): only for ids everyone must be able to compute."""
    return uuid.UUID(bytes=uuid.uuid5(_NS, name).bytes, version=4)


def object_id_key(opts: ExportOptions) -> bytes:
    """The key a member's object ids are derived under: from its own Ed25519 signing key.

    Ids are then stable across re-exports (a new version updates the object instead of duplicating it) but
    unpredictable to other members, who cannot pre-post ("squat") an id before its producer does. Without a
    signing key (unsigned bundles, which hubs refuse) the group key stands in: unpredictable to outsiders
    only. A new signing key gives new ids: re-exported objects then start new histories.
    """
    if opts.signing_key is not None:
        raw = opts.signing_key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                             serialization.NoEncryption())
        return hmac.new(raw, b"distillguard/object-ids/v1", hashlib.sha256).digest()
    return subkey(opts.group_key, f"object-ids/{opts.member}")


def _sid(key: bytes, kind: str, *parts: str) -> str:
    """A keyed (HMAC-SHA256), UUIDv4-shaped STIX id of ``kind`` for the name ``parts``."""
    digest = hmac.new(key, "/".join((kind, *parts)).encode(), hashlib.sha256).digest()
    return f"{kind}--{uuid.UUID(bytes=digest[:16], version=4)}"


@dataclass
class Exclusions:
    """Infrastructure and identifiers seen on local benign accounts: never exported."""

    ips: list[str] = field(default_factory=list)
    asns: set[int] = field(default_factory=set)
    user_agents: set[str] = field(default_factory=set)
    tls_fps: set[str] = field(default_factory=set)
    identifiers: dict[str, set[str]] = field(default_factory=dict)

    def covers_benign_ip(self, prefix: str) -> bool:
        net = ipaddress.ip_network(prefix, strict=False)
        return any(ipaddress.ip_address(ip) in net for ip in self.ips if _same_family(ip, net))


def _same_family(ip: str, net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    return (":" in ip) == (net.version == 6)


def benign_exclusions(con: Any, flagged: set[str]) -> Exclusions:
    """Collect what accounts outside ``flagged`` use, from a DuckDB connection with views exchanges/accounts."""
    con.register("_flagged", _flag_table(flagged))
    rows = con.execute("SELECT DISTINCT ip, asn, user_agent, tls_fp FROM exchanges "
                       "WHERE account_id NOT IN (SELECT account_id FROM _flagged)").fetchall()
    out = Exclusions()
    for ip, asn, ua, tls in rows:
        if ip:
            out.ips.append(ip)
        if asn is not None:
            out.asns.add(int(asn))
        if ua:
            out.user_agents.add(ua)
        if tls:
            out.tls_fps.add(tls)
    ids = con.execute("SELECT payment_fp, email_domain, signup_ip FROM accounts "
                      "WHERE account_id NOT IN (SELECT account_id FROM _flagged)").fetchall()
    for kind, values in zip(IDENTIFIER_KINDS, zip(*ids, strict=True) if ids else ((), (), ()), strict=True):
        out.identifiers[kind] = {v.strip().lower() for v in values if v}
    con.unregister("_flagged")
    return out


def detector_flagged(accounts_csv: Path) -> set[str]:
    """Accounts the local detector restricts (verdict throttle or block in ``detect``'s accounts.csv).

    They are not counted as benign customers by :func:`benign_exclusions`: an attacker's accounts that
    detection flagged but attribution left out of every exported campaign would otherwise get the
    attacker's own infrastructure (its client stack, proxy prefixes, look-alike e-mail domains) withheld.
    """
    import csv

    from distillguard.decide import flagged

    try:
        with accounts_csv.open(newline="") as handle:
            reader = csv.DictReader(handle)
            if not reader.fieldnames or not {"account_id", "verdict"} <= set(reader.fieldnames):
                raise ExportError(f"{accounts_csv}, line 1: header needs account_id and verdict")
            return {row["account_id"] for row in reader if flagged(row["verdict"] or "")}
    except OSError as exc:
        raise ExportError(f"{accounts_csv}: cannot read ({exc.strerror})") from None


def _flag_table(flagged: set[str]) -> Any:
    import pyarrow as pa
    return pa.table({"account_id": pa.array(sorted(flagged), type=pa.string())})


def load_campaigns(path: Path) -> dict[str, Any]:
    """Read and check campaigns.json, naming the file and offending field on error."""
    try:
        doc = orjson.loads(path.read_bytes())
    except OSError as exc:
        raise ExportError(f"{path}: cannot read ({exc.strerror})") from None
    except orjson.JSONDecodeError as exc:
        raise ExportError(f"{path}, line {_line(path, exc.pos)}: not JSON ({exc.msg})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("campaigns"), list):
        raise ExportError(f"{path}: field 'campaigns': expected a list")
    for i, camp in enumerate(doc["campaigns"]):
        where = f"{path}: field 'campaigns[{i}]"
        if not isinstance(camp, dict):
            raise ExportError(f"{where}': expected an object")
        for key in ("id", "first_seen", "last_seen"):
            if not isinstance(camp.get(key), str):
                raise ExportError(f"{where}.{key}': required string")
        for key in ("infrastructure", "identifiers", "behaviour"):
            if not isinstance(camp.get(key, {}), dict):
                raise ExportError(f"{where}.{key}': expected an object")
        if not isinstance(camp.get("templates", []), list):
            raise ExportError(f"{where}.templates': expected a list")
        for key in ("first_seen", "last_seen"):
            try:
                _ts(camp[key])
            except ValueError:
                raise ExportError(f"{where}.{key}': not an RFC 3339 timestamp: {camp[key]!r}") from None
    return doc


def _line(path: Path, pos: int) -> int:
    try:
        return path.read_bytes()[:pos].count(b"\n") + 1
    except OSError:
        return 1


def _ts(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError("naive timestamp")
    return value.astimezone(UTC)


@dataclass
class ExportOptions:
    member: str
    group_key: bytes
    signing_key: Ed25519PrivateKey | None = None
    tlp: str = "amber"
    min_template_count: int = 20
    min_score: float = 0.0
    exclusions: Exclusions | None = None


def export_bundle(doc: dict[str, Any], opts: ExportOptions) -> dict[str, Any]:
    """Build the bundle (a JSON-ready dict): identity, per campaign an intrusion set, indicators, relationships."""
    tlp_rank(opts.tlp)
    markings = tlp_markings()
    mark = [markings[opts.tlp]["id"]]
    clear = markings["clear"]["id"]
    generated = _ts(doc.get("generated") or datetime.now(UTC).isoformat())
    me = stix2.Identity(id=member_identity_id(opts.member), name=opts.member, identity_class="organization",
                        sectors=["technology"], created="2026-01-01T00:00:00Z", modified="2026-01-01T00:00:00Z",
                        description="LLM API provider, member of a distillation intel sharing group.",
                        object_marking_refs=mark)
    objects: list[Any] = [me]
    hasher = TemplateHasher(opts.group_key)
    atlas = atlas_objects()
    for camp in doc["campaigns"]:
        if float(camp.get("score", 1.0)) < opts.min_score:
            continue
        objects.extend(_campaign_objects(camp, opts, hasher, atlas, me.id, mark, generated))
    fixed = [project_identity(clear), extension_definition(clear)]
    out = [orjson.loads(o.serialize()) for o in objects]
    if opts.signing_key is not None:
        out = [sign(o, opts.signing_key, opts.member) for o in out]
    levels = sorted({opts.tlp, "clear"}, key=tlp_rank)
    defs = [markings[level] for level in levels]
    fixed_json = [orjson.loads(o.serialize()) for o in fixed]
    return {"type": "bundle", "id": f"bundle--{uuid.uuid4()}", "objects": defs + fixed_json + out}


def _campaign_objects(camp: dict[str, Any], opts: ExportOptions, hasher: TemplateHasher,
                      atlas: dict[str, dict[str, Any]], me: str, mark: list[str], generated: datetime) -> list[Any]:
    local, ids = camp["id"], object_id_key(opts)
    first, last = _ts(camp["first_seen"]), _ts(camp["last_seen"])
    created = min(first, generated)
    common = {"created_by_ref": me, "object_marking_refs": mark, "created": created, "modified": generated}
    ext_common = {"extension_type": "property-extension"}
    campaign = stix2.Campaign(
        id=_sid(ids, "campaign", opts.member, local), name=f"Distillation campaign {local}",
        description="Adversarial distillation: bulk harvesting of model responses to train a copy.",
        first_seen=first, last_seen=max(last, first), objective="Harvest model outputs to train a substitute model",
        extensions={EXTENSION_ID: {**ext_common, "local_id": local, "score": float(camp.get("score", 0.0)),
                                   "exchanges": int(camp.get("exchanges", 0)),
                                   "accounts": len(camp.get("accounts", [])),
                                   "capabilities": camp.get("capabilities", {}), "models": camp.get("models", {})}},
        **common)
    actor = stix2.IntrusionSet(
        id=_sid(ids, "intrusion-set", opts.member, local), name=f"Distillation actor behind {local}",
        description="Operator of a network of fraudulent API accounts harvesting model outputs.",
        first_seen=first, last_seen=max(last, first), goals=["replicate a frontier model"],
        resource_level="organization", primary_motivation="organizational-gain", **common)
    out: list[Any] = [campaign, actor,
                      stix2.Relationship(id=_sid(ids, "relationship", opts.member, local, "attributed-to"),
                                         relationship_type="attributed-to", source_ref=campaign.id,
                                         target_ref=actor.id, **common)]
    for technique in camp.get("atlas", []):
        pattern = atlas.get(technique)
        if pattern is None:
            continue
        for source in (campaign.id, actor.id):
            out.append(stix2.Relationship(id=_sid(ids, "relationship", opts.member, local, source, technique),
                                          relationship_type="uses", source_ref=source, target_ref=pattern["id"],
                                          description=f"MITRE ATLAS {technique} {pattern['name']}", **common))
    for indicator in _indicators(camp, opts, hasher, first, common, ext_common):
        out.append(indicator)
        for target in (campaign.id, actor.id):
            out.append(stix2.Relationship(id=_sid(ids, "relationship", opts.member, indicator.id, target),
                                          relationship_type="indicates", source_ref=indicator.id, target_ref=target,
                                          **common))
    return out


def _indicators(camp: dict[str, Any], opts: ExportOptions, hasher: TemplateHasher, first: datetime,
                common: dict[str, Any], ext_common: dict[str, Any]) -> list[stix2.Indicator]:
    local, ex, ids = camp["id"], opts.exclusions or Exclusions(), object_id_key(opts)
    base = {"valid_from": first, "indicator_types": ["malicious-activity"], **common}
    out: list[stix2.Indicator] = []
    infra = camp.get("infrastructure", {})
    prefixes = [p for p in infra.get("ip_prefixes", []) if _shareable_prefix(p) and not ex.covers_benign_ip(p)]
    asns = [int(a) for a in infra.get("asns", []) if int(a) not in ex.asns]
    tls = [t for t in infra.get("tls_fps", []) if t not in ex.tls_fps]
    uas = [u for u in infra.get("user_agents", []) if u not in ex.user_agents]
    if prefixes or asns or tls or uas:
        terms = [f"[{'ipv6' if ':' in p else 'ipv4'}-addr:value ISSUBSET '{p}']" for p in prefixes]
        terms += [f"[autonomous-system:number = {a}]" for a in asns]
        terms += [f"[network-traffic:extensions.'http-request-ext'.request_header.'User-Agent' = '{_q(u)}']"
                  for u in uas]
        terms += [f"[x-distillguard-client:tls_fp = '{_q(t)}']" for t in tls]
        # withholding may empty some lists: STIX forbids empty lists, so an emptied property is left out
        lists = _non_empty({"ip_prefixes": prefixes, "asns": asns, "tls_fps": tls, "user_agents": uas})
        out.append(stix2.Indicator(
            id=_sid(ids, "indicator", opts.member, local, "infrastructure"), name=f"Infrastructure of {local}",
            description="Network infrastructure used only by the campaign's accounts at the producer.",
            pattern_type="stix", pattern=" OR ".join(terms),
            extensions={EXTENSION_ID: {**ext_common, "kind": "infrastructure", **lists}}, **base))
    idents = []
    for kind in IDENTIFIER_KINDS:
        excluded = ex.identifiers.get(kind, set())
        for value in camp.get("identifiers", {}).get(kind, []):
            if isinstance(value, str) and value and value.strip().lower() not in excluded:
                idents.append({"kind": kind.removesuffix("s"), "hmac": keyed_id(opts.group_key,
                                                                                 kind.removesuffix("s"), value)})
    if idents:
        values = ", ".join(f"'{i['hmac']}'" for i in idents)
        out.append(stix2.Indicator(
            id=_sid(ids, "indicator", opts.member, local, "identifiers"), name=f"Keyed account identifiers of {local}",
            description="HMAC-SHA256 under the sharing group's key of payment fingerprints, email domains and "
                        "signup IPs of the campaign's accounts.",
            pattern_type="stix", pattern=f"[x-distillguard-keyed-id:hmac IN ({values})]",
            extensions={EXTENSION_ID: {**ext_common, "kind": "identifiers", "hmac_alg": "HMAC-SHA256",
                                       "key_id": key_id(opts.group_key), "identifiers": idents}}, **base))
    sigs: list[dict[str, Any]] = []
    for template in camp.get("templates", []):
        if not isinstance(template, dict) or int(template.get("count", 0)) < opts.min_template_count:
            continue
        sig = hasher.signature(str(template.get("example", "")))
        if sig is not None:
            sigs.append({"signature": encode_signature(sig), "count": int(template.get("count", 0))})
    if sigs:
        values = ", ".join(f"'{s['signature'][:32]}'" for s in sigs)
        out.append(stix2.Indicator(
            id=_sid(ids, "indicator", opts.member, local, "templates"), name=f"Prompt templates of {local}",
            description="Keyed MinHash signatures of the campaign's prompt templates (no text).",
            pattern_type="stix", pattern=f"[x-distillguard-template:minhash_prefix IN ({values})]",
            extensions={EXTENSION_ID: {**ext_common, "kind": "templates", "key_id": key_id(opts.group_key),
                                       "num_perm": hasher.num_perm, "bands": hasher.bands, "threshold": 0.5,
                                       "templates": sigs}}, **base))
    limits = sigma.thresholds(camp.get("behaviour", {}))
    if limits:
        out.append(stix2.Indicator(
            id=_sid(ids, "indicator", opts.member, local, "behaviour"), name=f"Behaviour of {local}",
            description="Per-account behavioural thresholds as a Sigma correlation rule.",
            pattern_type="sigma", pattern=sigma.correlation_rule(local, limits),
            extensions={EXTENSION_ID: {**ext_common, "kind": "behaviour", "thresholds": limits}}, **base))
    return out


def _non_empty(lists: dict[str, list[Any]]) -> dict[str, list[Any]]:
    """The non-empty lists of ``lists``: STIX 2.1 (3.1, "empty lists are prohibited") and stix2-validator
    refuse an empty list, so a property that withholding emptied is left out rather than sent as []."""
    return {name: values for name, values in lists.items() if values}


def _q(text: str) -> str:
    return text.replace("\\", "\\\\").replace("'", "\\'")


def _shareable_prefix(prefix: str) -> bool:
    try:
        net = ipaddress.ip_network(prefix, strict=False)
    except ValueError:
        return False
    return net.prefixlen >= (_MIN_V6_PREFIX if net.version == 6 else _MIN_V4_PREFIX)
