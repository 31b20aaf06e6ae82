"""TAXII 2.1 client for members: incremental publish and pull, remembering what it has seen.

Works against our hub and any TAXII 2.1 server (tested with OASIS medallion).
Pulled objects are signature-checked against the group keyring; failures are
reported and dropped, never handed to matching. A signed object must name its
signer as creator (``created_by_ref``), and every id stays bound to the first
member seen producing it: later versions of that id from anyone else are
dropped, whatever their ``modified`` (the hub enforces the same per member).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from distillguard.errors import DistillguardError
from distillguard.intel.export import member_identity_id
from distillguard.intel.extension import ext, fixed_objects
from distillguard.intel.refdata import tlp_by_id
from distillguard.intel.signing import SignatureError, load_public, verify

TAXII = "application/taxii+json;version=2.1"
MAX_OBJECTS = 500  # objects per posted envelope (our hub refuses more than its max_objects, 1000 by default)


class TaxiiClientError(DistillguardError, RuntimeError):
    pass


@dataclass
class PullResult:
    accepted: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)  # "<id>: <reason>"
    pages: int = 0


@dataclass
class State:
    """What a member has published and up to when it has pulled, per collection URL."""

    path: Path | None
    published: dict[str, set[str]] = field(default_factory=dict)
    added_after: dict[str, str] = field(default_factory=dict)
    owners: dict[str, str] = field(default_factory=dict)  # object id -> the member first seen producing it

    @classmethod
    def load(cls, path: str | Path | None) -> State:
        if path is None or not Path(path).exists():
            return cls(Path(path) if path else None)
        try:
            doc = orjson.loads(Path(path).read_bytes())
            return cls(Path(path), {k: set(v) for k, v in doc.get("published", {}).items()},
                       dict(doc.get("added_after", {})), dict(doc.get("owners", {})))
        except (orjson.JSONDecodeError, AttributeError, TypeError, ValueError) as exc:
            raise TaxiiClientError(f"{path}: corrupt client state ({exc}); delete it to start over") from None

    def save(self) -> None:
        if self.path is None:
            return
        doc = {"published": {k: sorted(v) for k, v in self.published.items()}, "added_after": self.added_after,
               "owners": self.owners}
        tmp = self.path.with_suffix(".tmp")
        tmp.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
        os.replace(tmp, self.path)


def load_keyring(path: str | Path) -> dict[str, Ed25519PublicKey]:
    """Group file (``members: {name: {public_key: PEM}}``, JSON or YAML) -> key id -> public key."""
    import yaml

    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise TaxiiClientError(f"{path}: cannot read group file ({exc})") from None
    members = doc.get("members") if isinstance(doc, dict) else None
    if not isinstance(members, dict):
        raise TaxiiClientError(f"{path}: field 'members': expected a mapping")
    out = {}
    for name, spec in members.items():
        if not isinstance(spec, dict) or not isinstance(spec.get("public_key"), str):
            raise TaxiiClientError(f"{path}: field 'members.{name}.public_key': required PEM string")
        try:
            out[str(name)] = load_public(spec["public_key"], f"{path}: field 'members.{name}.public_key'")
        except SignatureError as exc:
            raise TaxiiClientError(str(exc)) from None
    return out


class TaxiiClient:
    """One collection on one TAXII 2.1 server."""

    def __init__(self, discovery_url: str, collection: str, user: str, password: str, *,
                 http: httpx.Client | None = None, timeout: float = 30.0) -> None:
        self.http = http or httpx.Client(timeout=timeout)
        self.http.auth = (user, password)  # a tuple: accepted by httpx and by httpx2 (starlette's TestClient)
        self.http.headers["Accept"] = TAXII
        self.discovery_url = discovery_url
        self.collection = collection
        self._root: str | None = None
        self._max_content: int | None = None
        self.failures: list[str] = []  # "<id>: <reason>" from the last publish

    def close(self) -> None:
        self.http.close()

    def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """One request; an unreachable server or an HTTP error becomes a :class:`TaxiiClientError` naming the
        hub's URL and the cause (connection refused, timeout, TLS, ...), never a raw transport exception."""
        try:
            response = self.http.request(method, url, **kwargs)
        except (httpx.RequestError, httpx.InvalidURL) as exc:
            where = "" if url == self.discovery_url else f" at {url}"
            raise TaxiiClientError(f"{self.discovery_url}: cannot reach the TAXII hub{where} "
                                   f"({type(exc).__name__}: {exc})") from None
        _raise(response, url)
        return response

    def _get(self, url: str, params: dict[str, str] | None = None) -> httpx.Response:
        return self._send("GET", url, params=params)

    @property
    def api_root(self) -> str:
        if self._root is None:
            doc = _json(self._get(self.discovery_url), self.discovery_url)
            root = doc.get("default") or (doc.get("api_roots") or [None])[0]
            if not root:
                raise TaxiiClientError(f"{self.discovery_url}: server lists no API root")
            self._root = str(httpx.URL(self.discovery_url).join(root)).rstrip("/") + "/"
        return self._root

    @property
    def collection_url(self) -> str:
        return f"{self.api_root}collections/{self.collection}/"

    @property
    def max_content_length(self) -> int:
        if self._max_content is None:
            limit = _json(self._get(self.api_root), self.api_root).get("max_content_length", 1_000_000)
            try:
                self._max_content = int(limit)
            except (TypeError, ValueError):
                raise TaxiiClientError(f"{self.api_root}: max_content_length is not a number: {limit!r}") from None
        return self._max_content

    def publish(self, objects: list[dict[str, Any]], state: State, max_objects: int = MAX_OBJECTS
                ) -> dict[str, int]:
        """Post objects not already published (by id and version), in chunks under the server's size limit
        and of at most ``max_objects`` objects (the hub's default limit per envelope is 1000).

        ``extension-definition`` objects are never posted (counted as ``out_of_band``): their required
        ``version`` property is a semver string, which OASIS medallion 3.0 parses as an object version (a
        timestamp), failing every later read of the collection with HTTP 500. The distillguard extension
        definition is fixed and ships with distillguard and in every exported bundle file instead.
        """
        seen = state.published.setdefault(self.collection_url, set())
        shared = [o for o in objects if o.get("type") != "extension-definition"]
        todo = [o for o in shared if _key(o) not in seen]
        counts = {"posted": 0, "accepted": 0, "failed": 0, "skipped": len(shared) - len(todo),
                  "out_of_band": len(objects) - len(shared)}
        failures: list[str] = []
        for chunk in _chunks(todo, self.max_content_length // 2, max_objects):
            body = orjson.dumps({"objects": chunk})
            url = self.collection_url + "objects/"
            status = _json(self._send("POST", url, content=body, headers={"Content-Type": TAXII}), url)
            counts["posted"] += len(chunk)
            failed = {f.get("id") for f in status.get("failures", [])}
            failures.extend(f"{f.get('id')}: {f.get('message')}" for f in status.get("failures", []))
            for obj in chunk:
                if obj["id"] not in failed:
                    seen.add(_key(obj))
            counts["failed"] += len(failed)
            counts["accepted"] += len(chunk) - len(failed)
        state.save()
        self.failures = failures
        return counts

    def pull(self, state: State, keyring: dict[str, Ed25519PublicKey] | None, page_size: int = 200,
             max_pages: int = 10_000) -> PullResult:
        """Fetch objects added since the last pull, following ``next``; verify signatures when a keyring is given."""
        url = self.collection_url + "objects/"
        params: dict[str, str] = {"limit": str(page_size)}
        if self.collection_url in state.added_after:
            params["added_after"] = state.added_after[self.collection_url]
        result, last = PullResult(), state.added_after.get(self.collection_url)
        for _ in range(max_pages):
            response = self._get(url, params)
            doc = _json(response, url)
            result.pages += 1
            for obj in doc.get("objects", []):
                reason = reject_reason(obj, keyring) or _bind(obj, state.owners)
                if reason:
                    result.rejected.append(f"{obj.get('id')}: {reason}")
                else:
                    result.accepted.append(obj)
            last = response.headers.get("X-TAXII-Date-Added-Last", last)
            if not doc.get("more") or not doc.get("next"):
                break
            params = {**params, "next": str(doc["next"])}
        if last:
            state.added_after[self.collection_url] = last
        state.save()
        return result


def reject_reason(obj: Any, keyring: dict[str, Ed25519PublicKey] | None) -> str | None:
    """Why a pulled object must be dropped: with a keyring, it must verify, and its creator must be its signer."""
    if not isinstance(obj, dict) or not isinstance(obj.get("id"), str):
        return "not a STIX object"
    if keyring is None or obj["id"] in fixed_objects() or obj["id"] in tlp_by_id():
        return None
    try:
        signer = verify(obj, keyring)
    except SignatureError as exc:
        return str(exc)
    except (AttributeError, TypeError):
        return "malformed object"
    identity = member_identity_id(signer)
    if obj.get("created_by_ref") != identity and obj["id"] != identity:
        return f"signed by {signer!r} but created_by_ref is not {signer!r}'s identity"
    return None


def producer_of(obj: dict[str, Any]) -> str | None:
    """Who produced an object: the signature's key id (callers verify it first), else ``created_by_ref``.

    None for the fixed objects (TLP definitions, the distillguard extension) that belong to nobody.
    """
    if obj.get("id") in fixed_objects() or obj.get("id") in tlp_by_id():
        return None
    block = ext(obj) if isinstance(obj.get("extensions", {}), dict) else {}
    signature = block.get("signature") if isinstance(block, dict) else None
    signer = signature.get("key_id") if isinstance(signature, dict) else None
    if isinstance(signer, str):
        return signer
    creator = obj.get("created_by_ref")
    return creator if isinstance(creator, str) else "unknown"


def _bind(obj: dict[str, Any], owners: dict[str, str]) -> str | None:
    """Bind ``obj``'s id to its producer on first sight; why it must be dropped when another member owns it."""
    producer = producer_of(obj)
    if producer is None:
        return None
    owner = owners.setdefault(obj["id"], producer)
    return None if owner == producer else f"id belongs to {owner!r}, this version comes from {producer!r}"


def _key(obj: dict[str, Any]) -> str:
    return f"{obj['id']}|{obj.get('modified') or obj.get('created') or ''}"


def _chunks(objects: list[dict[str, Any]], budget: int, max_objects: int = MAX_OBJECTS) -> list[list[dict[str, Any]]]:
    out: list[list[dict[str, Any]]] = []
    current: list[dict[str, Any]] = []
    size = 0
    for obj in objects:
        n = len(orjson.dumps(obj)) + 1
        if current and (size + n > budget or len(current) >= max_objects):
            out.append(current)
            current, size = [], 0
        current.append(obj)
        size += n
    if current:
        out.append(current)
    return out


def _json(response: httpx.Response, url: str) -> dict[str, Any]:
    """The JSON object of a TAXII response (empty body: {}); anything else is a clear error, not a traceback."""
    if not response.content:
        return {}
    try:
        doc = response.json()
    except ValueError:
        kind = response.headers.get("content-type", "no content type")
        raise TaxiiClientError(f"{url}: not a TAXII response (HTTP {response.status_code}, {kind}, not JSON); "
                               "is the URL the server's TAXII 2.1 discovery URL?") from None
    if not isinstance(doc, dict):
        raise TaxiiClientError(f"{url}: not a TAXII response (a JSON {type(doc).__name__}, expected an object)")
    return doc


def _raise(response: httpx.Response, url: str) -> None:
    if response.status_code < 400:
        return
    try:
        detail = response.json()
        text = f"{detail.get('title', '')}: {detail.get('description', '')}"
    except (ValueError, AttributeError):  # not JSON, or JSON but no TAXII error object
        text = " ".join(response.text[:200].split())
    raise TaxiiClientError(f"{url}: HTTP {response.status_code} {text}")
