"""TAXII 2.1 hub as a Starlette app: discovery, API root, collections, objects, manifest, status.

Access is per member (HTTP Basic, argon2id hashes checked off the event loop,
failed attempts limited) and per trust group (a collection belongs to one group);
reads are filtered by TLP 2.0 against the member's clearance, the object-level
and granular markings together (TLP:RED never leaves the hub except to its
producer). Posted objects must be TLP-marked, created by the poster and carry
the poster's Ed25519 signature, and an id belongs to the member that first
stored it; anything else is listed as a failure in the status resource, per
object, with the valid objects of the same envelope kept. Malformed or
oversized requests get TAXII error bodies, never a 500.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import logging
import re
import secrets
import threading
import time
import uuid
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any, TypeGuard

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from distillguard.errors import DistillguardError
from distillguard.intel.export import member_identity_id
from distillguard.intel.extension import EXTENSION_ID, PROJECT_IDENTITY_ID, extension_definition, project_identity
from distillguard.intel.hub.config import Collection, HubConfig, dummy_verify, hash_scheme, verify_password
from distillguard.intel.hub.db import HubStore, Row, format_us, open_db, parse_us
from distillguard.intel.refdata import tlp_by_id, tlp_markings, tlp_rank
from distillguard.intel.signing import SignatureError, verify

log = logging.getLogger(__name__)

TAXII = "application/taxii+json;version=2.1"
STIX = "application/stix+json;version=2.1"


class TaxiiError(DistillguardError):
    def __init__(self, status: int, title: str, description: str = "", headers: dict[str, str] | None = None) -> None:
        super().__init__(title)
        self.status, self.title, self.description = status, title, description
        self.headers = headers or {}


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type=TAXII, headers=headers)


def _error(exc: TaxiiError) -> Response:
    """A TAXII 2.1 error message resource (section 3.6.1)."""
    headers = dict(exc.headers)
    if exc.status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="taxii"'
    return _json({"title": exc.title, "description": exc.description, "http_status": str(exc.status)},
                 exc.status, headers or None)


def _fixed_objects() -> dict[str, bytes]:
    """Objects every member may post unsigned because their content is fixed: TLP definitions, our extension."""
    clear = tlp_markings()["clear"]["id"]
    fixed = [*tlp_markings().values(), orjson.loads(project_identity(clear).serialize()),
             orjson.loads(extension_definition(clear).serialize())]
    return {o["id"]: orjson.dumps(o, option=orjson.OPT_SORT_KEYS) for o in fixed}


def _version(obj: dict[str, Any]) -> str:
    return obj.get("modified") or obj.get("created") or "1970-01-01T00:00:00.000Z"


# STIX 2.1 identifiers and timestamps (section 2.7 and 3.2): checked before anything is stored or echoed back
_TYPE = re.compile(r"[a-z0-9][a-z0-9-]{1,248}[a-z0-9]\Z")
_ID = re.compile(r"([a-z0-9][a-z0-9-]{1,248}[a-z0-9])--[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}"
                 r"-[0-9a-fA-F]{12}\Z")
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z\Z")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\Z")
MAX_DEPTH = 32  # STIX objects nest a few levels; deeper JSON is refused before anything recurses over it
MAX_FILTER_VALUES = 100  # values in one match[...] filter
MAX_MESSAGE = 200  # characters of one status failure message


def _is_id(value: Any) -> TypeGuard[str]:
    return isinstance(value, str) and _ID.match(value) is not None


def _depth_ok(obj: Any, limit: int = MAX_DEPTH) -> bool:
    stack = [(obj, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > limit:
            return False
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)
    return True


def _timestamp_ok(value: Any) -> TypeGuard[str]:
    if not isinstance(value, str) or _TIMESTAMP.match(value) is None:
        return False
    try:
        parse_us(value)
    except (ValueError, OverflowError):
        return False
    return True


def _marking_problem(obj: dict[str, Any]) -> str | None:
    """Why the object's markings are unacceptable: every marking (object-level or granular) must be TLP 2.0."""
    refs = obj.get("object_marking_refs", [])
    if not isinstance(refs, list) or not all(isinstance(r, str) for r in refs):
        return "object_marking_refs must be a list of marking-definition ids"
    known = tlp_by_id()
    if not any(ref in known for ref in refs):
        return "no TLP 2.0 marking (object_marking_refs)"
    if any(ref not in known for ref in refs):
        return "unknown marking definition (only the TLP 2.0 markings are accepted)"
    granular = obj.get("granular_markings", [])
    if not isinstance(granular, list):
        return "granular_markings must be a list"
    for marking in granular:
        if not isinstance(marking, dict):
            return "granular_markings entries must be objects"
        selectors = marking.get("selectors")
        if not isinstance(selectors, list) or not selectors or \
                not all(isinstance(sel, str) and sel for sel in selectors):
            return "granular marking needs a non-empty list of selectors"
        ref, lang = marking.get("marking_ref"), marking.get("lang")
        if ref is None and not isinstance(lang, str):
            return "granular marking needs marking_ref or lang"
        if ref is not None and (not isinstance(ref, str) or ref not in known):
            return "unknown granular marking (only the TLP 2.0 markings are accepted)"
    return None


def effective_tlp(obj: dict[str, Any]) -> str | None:
    """The most restrictive TLP 2.0 level of the object's markings, object-level and granular together.

    The hub serves whole signed objects (redacting a field would break the signature), so a field marked
    TLP:RED inside a TLP:CLEAR object makes the whole object TLP:RED for reads.
    """
    known = tlp_by_id()
    refs: list[Any] = [r for r in obj.get("object_marking_refs", []) if isinstance(r, str)]
    refs += [g.get("marking_ref") for g in obj.get("granular_markings", []) if isinstance(g, dict)]
    levels = [known[r] for r in refs if isinstance(r, str) and r in known]
    return max(levels, key=tlp_rank) if levels else None


class FailureLimiter:
    """Failed logins per client address and per user name in fixed windows; bounded memory.

    An address is refused after ``per_ip`` failures in a window; a user name after ``per_user`` failures,
    except from addresses that have logged in as that user before (so guessing from elsewhere does not lock
    a member out of its own network). Refused attempts spend no hashing work and learn nothing.
    """

    def __init__(self, per_ip: int, per_user: int, window_s: float, max_keys: int = 10_000) -> None:
        self.per_ip, self.per_user, self.window_s, self.max_keys = per_ip, per_user, window_s, max_keys
        self._fails: OrderedDict[tuple[str, str], tuple[float, int]] = OrderedDict()
        self._trusted: OrderedDict[tuple[str, str], None] = OrderedDict()

    def _count(self, key: tuple[str, str], now: float) -> int:
        entry = self._fails.get(key)
        if entry is None or now - entry[0] >= self.window_s:
            return 0
        return entry[1]

    def retry_after(self, ip: str, user: str, now: float | None = None) -> int | None:
        """Seconds until this attempt may be made, or None when it may be made now."""
        now = time.monotonic() if now is None else now
        blocked = [("ip", ip)] if self._count(("ip", ip), now) >= self.per_ip else []
        if (user, ip) not in self._trusted and self._count(("user", user), now) >= self.per_user:
            blocked.append(("user", user))
        if not blocked:
            return None
        return max(1, int(max(self._fails[k][0] + self.window_s - now for k in blocked)) + 1)

    def failed(self, ip: str, user: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        for key in (("ip", ip), ("user", user)):
            entry = self._fails.pop(key, None)
            self._fails[key] = (now, 1) if entry is None or now - entry[0] >= self.window_s else \
                (entry[0], entry[1] + 1)
        while len(self._fails) > self.max_keys:
            self._fails.popitem(last=False)

    def succeeded(self, ip: str, user: str) -> None:
        self._trusted[(user, ip)] = None
        self._trusted.move_to_end((user, ip))
        while len(self._trusted) > self.max_keys:
            self._trusted.popitem(last=False)


class Hub:
    HASH_SLOTS = 2  # password checks running at once (threads; each argon2id check holds 19 MiB)
    HASH_QUEUE = 64  # password checks waiting for a slot before further ones are refused with 429
    CACHE_SIZE = 1024  # verified (user, password) pairs remembered, so members' polling costs no hashing

    def __init__(self, config: HubConfig, db: HubStore) -> None:
        self.config, self.db = config, db
        self.fixed = _fixed_objects()
        self.identities = {member_identity_id(name): name for name in config.members}
        db.claim(self.identities)  # computable by anyone: a member's identity id is its own, even if squatted
        self._cache_key = secrets.token_bytes(32)
        self._verified: OrderedDict[bytes, str] = OrderedDict()
        self._limiter = FailureLimiter(config.auth_failures_per_ip, config.auth_failures_per_user,
                                       config.auth_window_s)
        self._hash_slots: asyncio.Semaphore | None = None
        self._hash_threads = threading.BoundedSemaphore(self.HASH_SLOTS)  # holds even when a waiter is cancelled
        self._hash_waiting = 0
        legacy = sorted(n for n, m in config.members.items() if hash_scheme(m.password_hash) != "argon2id")
        if legacy:
            log.warning("members %s have legacy PBKDF2 password hashes: they are upgraded to argon2id in memory on "
                        "login; put `distillguard intel passwd` hashes in the config", ", ".join(legacy))

    # ---- access ---------------------------------------------------------
    async def member(self, request: Request) -> str:
        header = request.headers.get("authorization", "")
        if not header.lower().startswith("basic "):
            raise TaxiiError(401, "Authentication required")
        try:
            user, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise TaxiiError(401, "Malformed credentials") from None
        ip = request.client.host if request.client else "unknown"
        wait = self._limiter.retry_after(ip, user)
        if wait is not None:
            raise TaxiiError(429, "Too many failed logins", f"try again in {wait} s", {"Retry-After": str(wait)})
        digest = hmac.new(self._cache_key, user.encode() + b"\0" + password.encode(), hashlib.sha256).digest()
        if self._verified.get(digest) == user and user in self.config.members:
            self._verified.move_to_end(digest)
        elif await self._check_password(user, password):
            self._verified[digest] = user
            while len(self._verified) > self.CACHE_SIZE:
                self._verified.popitem(last=False)
        else:
            self._limiter.failed(ip, user)
            raise TaxiiError(401, "Invalid credentials")
        self._limiter.succeeded(ip, user)
        accept = request.headers.get("accept", "")
        if accept and "application/taxii+json" not in accept and "*/*" not in accept:
            raise TaxiiError(406, "Not acceptable", f"this server speaks {TAXII}")
        return user

    async def _check_password(self, user: str, password: str) -> bool:
        """The password check, in a worker thread (never on the event loop), the same work for unknown names."""
        if self._hash_slots is None:
            self._hash_slots = asyncio.Semaphore(self.HASH_SLOTS)
        if self._hash_waiting >= self.HASH_QUEUE:
            raise TaxiiError(429, "Too many login attempts", "the hub is busy checking passwords; retry shortly",
                             {"Retry-After": "1"})
        self._hash_waiting += 1
        try:
            async with self._hash_slots:
                member = self.config.members.get(user)
                if member is None:
                    await asyncio.to_thread(self._bounded, dummy_verify, password)
                    return False
                encoded = member.password_hash
                ok, upgraded = await asyncio.to_thread(self._bounded, verify_password, password, encoded)
        finally:
            self._hash_waiting -= 1
        if ok and upgraded and member.password_hash == encoded:
            member.password_hash = upgraded  # rehash on login: legacy PBKDF2 (or weaker argon2) -> argon2id
            log.info("member %s: password hash upgraded to argon2id in memory", user)
        return ok

    def _bounded(self, check: Any, *args: Any) -> Any:
        with self._hash_threads:
            return check(*args)

    def collection(self, request: Request, member: str) -> Collection:
        self.api_root(request)
        coll = self.config.collections.get(request.path_params["collection"])
        if coll is None or not self.config.can_access(member, coll):
            raise TaxiiError(404, "Collection not found", "unknown collection or not in your trust groups")
        return coll

    def api_root(self, request: Request) -> None:
        if request.path_params["root"] != self.config.api_root:
            raise TaxiiError(404, "API root not found")

    def visible(self, row: Row, member: str) -> bool:
        if row.producer == member:
            return True
        if row.tlp is None or row.tlp == "red":
            return row.type == "marking-definition"
        return tlp_rank(row.tlp) <= tlp_rank(self.config.members[member].clearance)

    # ---- endpoints --------------------------------------------------------
    async def discovery(self, request: Request) -> Response:
        await self.member(request)
        root = str(request.base_url).rstrip("/") + f"/{self.config.api_root}/"
        return _json({"title": self.config.title, "description": "distillguard TAXII 2.1 hub",
                      "default": root, "api_roots": [root]})

    async def root_info(self, request: Request) -> Response:
        await self.member(request)
        self.api_root(request)
        return _json({"title": self.config.title, "versions": [TAXII],
                      "max_content_length": self.config.max_content_length})

    def _collection_resource(self, coll: Collection) -> dict[str, Any]:
        return {"id": coll.id, "title": coll.title, "description": coll.description, "can_read": True,
                "can_write": True, "media_types": [STIX]}

    async def collections(self, request: Request) -> Response:
        member = await self.member(request)
        self.api_root(request)
        visible = [self._collection_resource(c) for c in self.config.collections.values()
                   if self.config.can_access(member, c)]
        return _json({"collections": visible} if visible else {})

    async def collection_info(self, request: Request) -> Response:
        member = await self.member(request)
        return _json(self._collection_resource(self.collection(request, member)))

    async def status(self, request: Request) -> Response:
        member = await self.member(request)
        self.api_root(request)
        status_id = request.path_params["status"]
        status = self.db.get_status(status_id, member) if _UUID.match(status_id) else None
        if status is None:
            raise TaxiiError(404, "Status not found")
        return _json(status)

    def _select(self, request: Request, member: str, coll: Collection, object_id: str | None = None,
                default_version: str = "last") -> tuple[list[Row], bool, str | None]:
        q = request.query_params
        try:
            added_after = parse_us(q["added_after"]) if "added_after" in q else None
            after_seq = int(q["next"]) if "next" in q else None
            limit = min(int(q.get("limit", self.config.page_size)), self.config.page_size)
        except (ValueError, OverflowError):
            raise TaxiiError(400, "Bad filter", "added_after must be RFC 3339; limit and next integers") from None
        if limit <= 0:
            raise TaxiiError(400, "Bad filter", "limit must be positive")
        if object_id is not None and not _is_id(object_id):
            raise TaxiiError(404, "Object not found")
        ids = [object_id] if object_id else _split(q.get("match[id]"))
        types = _split(q.get("match[type]"))
        if any(not _is_id(i) for i in ids) or any(not _TYPE.match(t) for t in types):
            # such values match nothing stored; refusing them also keeps NUL bytes away from PostgreSQL
            raise TaxiiError(400, "Bad filter", "match[id] takes STIX ids, match[type] STIX type names")
        rows = [r for r in self.db.query(coll.id, added_after=added_after, ids=ids or None, types=types or None)
                if self.visible(r, member)]
        spec = _split(q.get("match[spec_version]"))
        if spec:
            rows = [r for r in rows if r.spec_version in spec]
        rows = _versions(rows, _split(q.get("match[version]")) or [default_version])
        if after_seq is not None:
            rows = [r for r in rows if r.seq > after_seq]
        more = len(rows) > limit
        page = rows[:limit]
        return page, more, (str(page[-1].seq) if more and page else None)

    @staticmethod
    def _headers(page: list[Row]) -> dict[str, str]:
        if not page:
            return {}
        added = [r.added_us for r in page]
        return {"X-TAXII-Date-Added-First": format_us(min(added)), "X-TAXII-Date-Added-Last": format_us(max(added))}

    async def get_objects(self, request: Request) -> Response:
        member = await self.member(request)
        coll = self.collection(request, member)
        page, more, nxt = self._select(request, member, coll)
        return self._envelope(page, more, nxt)

    def _envelope(self, page: list[Row], more: bool, nxt: str | None) -> Response:
        body = b'{"more":' + (b"true" if more else b"false")
        if nxt:
            body += b',"next":' + orjson.dumps(nxt)
        if page:
            body += b',"objects":[' + b",".join(r.body for r in page) + b"]"
        return Response(body + b"}", media_type=TAXII, headers=self._headers(page))

    async def get_object(self, request: Request) -> Response:
        member = await self.member(request)
        coll = self.collection(request, member)
        page, more, nxt = self._select(request, member, coll, request.path_params["object"])
        if not page:
            raise TaxiiError(404, "Object not found")
        return self._envelope(page, more, nxt)

    async def versions(self, request: Request) -> Response:
        member = await self.member(request)
        coll = self.collection(request, member)
        page, more, nxt = self._select(request, member, coll, request.path_params["object"], "all")
        if not page:
            raise TaxiiError(404, "Object not found")
        return _json({"more": more, **({"next": nxt} if nxt else {}), "versions": [r.version for r in page]},
                     headers=self._headers(page))

    async def manifest(self, request: Request) -> Response:
        member = await self.member(request)
        coll = self.collection(request, member)
        page, more, nxt = self._select(request, member, coll)
        entries = [{"id": r.id, "date_added": r.date_added, "version": r.version, "media_type": STIX} for r in page]
        body: dict[str, Any] = {"more": more, **({"next": nxt} if nxt else {})}
        if entries:
            body["objects"] = entries
        return _json(body, headers=self._headers(page))

    async def delete_object(self, request: Request) -> Response:
        member = await self.member(request)
        coll = self.collection(request, member)
        object_id = request.path_params["object"]
        rows = self.db.query(coll.id, ids=[object_id]) if _is_id(object_id) else []
        if not rows:
            raise TaxiiError(404, "Object not found")
        if self.db.owner(object_id) != member:  # fixed objects (owned by nobody) cannot be deleted either
            if not any(self.visible(r, member) for r in rows):
                raise TaxiiError(404, "Object not found")  # nothing to learn about objects one cannot read
            raise TaxiiError(403, "Cannot delete", "only the producer may delete its objects")
        self.db.delete(coll.id, object_id)
        return Response(status_code=200, media_type=TAXII)

    async def add_objects(self, request: Request) -> Response:
        member = await self.member(request)
        coll = self.collection(request, member)
        ctype = request.headers.get("content-type", "").replace(" ", "").lower()
        if not ctype.startswith("application/taxii+json"):
            raise TaxiiError(415, "Unsupported media type", f"post {TAXII}")
        body = await self._read_body(request)
        try:
            envelope = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise TaxiiError(400, "Malformed JSON", str(exc)) from None
        objects = envelope.get("objects") if isinstance(envelope, dict) else None
        if not isinstance(objects, list):
            raise TaxiiError(422, "Not an envelope", "expected an object with an 'objects' list")
        if len(objects) > self.config.max_objects:
            raise TaxiiError(413, "Too many objects", f"at most {self.config.max_objects} objects per envelope")
        requested = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        # signature checks (RFC 8785 canonical form + Ed25519, ~0.2 ms an object) off the event loop
        accepted, failures = await asyncio.to_thread(self._check_all, objects, member)
        outcomes = self.db.add(coll.id, accepted)
        successes = []
        for (obj, version, _, _), outcome in zip(accepted, outcomes, strict=True):
            if outcome is None:
                successes.append({"id": obj["id"], "version": version})
            else:
                failures.append({"id": obj["id"], "version": version, "message": outcome})
        status = {"id": str(uuid.uuid4()), "status": "complete", "request_timestamp": requested,
                  "total_count": len(objects), "success_count": len(successes), "successes": successes,
                  "failure_count": len(failures), "failures": failures, "pending_count": 0, "pendings": []}
        self.db.put_status(status, member)
        return _json(status, 202)

    async def _read_body(self, request: Request) -> bytes:
        limit = self.config.max_content_length
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise TaxiiError(413, "Content too large", f"max_content_length is {limit} bytes")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise TaxiiError(413, "Content too large", f"max_content_length is {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    def _check_all(self, objects: list[Any], member: str
                   ) -> tuple[list[tuple[dict[str, Any], str, str | None, str]], list[dict[str, str]]]:
        """(accepted rows for the store, status failures) of one posted envelope."""
        accepted: list[tuple[dict[str, Any], str, str | None, str]] = []
        failures: list[dict[str, str]] = []
        for i, obj in enumerate(objects):
            try:
                problem = self._check(obj, member)
            except Exception:  # noqa: BLE001 - one malformed object never costs the others (or a 500)
                problem = "malformed STIX object"
            if problem:
                failures.append(_failure(obj, i, problem))
            else:
                accepted.append((obj, _version(obj), effective_tlp(obj), member))
        return accepted, failures

    def _check(self, obj: Any, member: str) -> str | None:
        """Why ``obj`` must be refused (None when acceptable); the store then checks who owns its id."""
        if not isinstance(obj, dict) or not isinstance(obj.get("id"), str) or not isinstance(obj.get("type"), str):
            return "not a STIX object (needs string type and id)"
        if not _TYPE.match(obj["type"]) or not _is_id(obj["id"]):
            return "type or id is not a STIX 2.1 identifier"
        if not obj["id"].startswith(obj["type"] + "--"):
            return "id does not match type"
        if obj.get("spec_version") != "2.1":
            return "only STIX 2.1 objects are accepted"
        if not _depth_ok(obj):
            return f"nested deeper than {MAX_DEPTH} levels"
        for key in ("created", "modified"):
            if key in obj and not _timestamp_ok(obj[key]):
                return f"{key} is not a STIX timestamp (RFC 3339, UTC, 'Z')"
        canonical = orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)
        if obj["id"] in self.fixed:
            same = canonical == self.fixed[obj["id"]]
            return None if same else "altered copy of a fixed object (TLP definition or distillguard extension)"
        if obj["type"] == "marking-definition" or obj["id"] in (EXTENSION_ID, PROJECT_IDENTITY_ID):
            return "only the OASIS TLP 2.0 marking definitions are accepted"
        problem = _marking_problem(obj)
        if problem:
            return problem
        if "extensions" in obj and not isinstance(obj["extensions"], dict):
            return "extensions must be an object"
        if self.identities.get(obj["id"], member) != member:
            return "this identity id belongs to another member"
        expected = member_identity_id(member)
        if obj.get("created_by_ref") != expected and obj["id"] != expected:
            return f"created_by_ref must be the poster's identity {expected}"
        try:
            signer = verify(obj, {member: self.config.members[member].public_key})
        except SignatureError as exc:
            return str(exc)
        return None if signer == member else "signed by another member"


def _failure(obj: Any, index: int, problem: str) -> dict[str, str]:
    """A status failure entry of bounded size: the object's id and version only when well-formed."""
    oid = obj.get("id") if isinstance(obj, dict) else None
    version = _version(obj) if isinstance(obj, dict) else None
    return {"id": oid if _is_id(oid) else f"objects[{index}]",
            "version": version if _timestamp_ok(version) else "",
            "message": problem[:MAX_MESSAGE]}


def _split(value: str | None) -> list[str]:
    values = [v for v in (value or "").split(",") if v]
    if len(values) > MAX_FILTER_VALUES:
        raise TaxiiError(400, "Bad filter", f"at most {MAX_FILTER_VALUES} values per match filter")
    return values


def _versions(rows: list[Row], wanted: list[str]) -> list[Row]:
    if "all" in wanted:
        return rows
    by_id: dict[str, list[Row]] = {}
    for row in rows:
        by_id.setdefault(row.id, []).append(row)
    keep: set[int] = set()
    for versions in by_id.values():
        ordered = sorted(versions, key=lambda r: r.version)
        if "last" in wanted:
            keep.add(ordered[-1].seq)
        if "first" in wanted:
            keep.add(ordered[0].seq)
        keep.update(r.seq for r in versions if r.version in wanted)
    return [r for r in rows if r.seq in keep]


def create_app(config: HubConfig, db: HubStore | None = None) -> Starlette:
    """The hub ASGI app; ``db`` defaults to the config's ``database`` (SQLite path or ``postgresql://`` URL)."""
    hub = Hub(config, db or open_db(config.database))

    def wrap(handler: Any) -> Any:
        async def endpoint(request: Request) -> Response:
            try:
                return await handler(request)
            except TaxiiError as exc:
                return _error(exc)
            except Exception as exc:  # noqa: BLE001 - the hub must answer, never crash
                return _error(TaxiiError(500, "Internal error", type(exc).__name__))
        return endpoint

    c = "/{root}/collections/{collection}"
    routes = [
        Route("/taxii2/", wrap(hub.discovery)),
        Route("/{root}/", wrap(hub.root_info)),
        Route("/{root}/status/{status}/", wrap(hub.status)),
        Route("/{root}/collections/", wrap(hub.collections)),
        Route(c + "/", wrap(hub.collection_info)),
        Route(c + "/objects/", wrap(hub.get_objects), methods=["GET"]),
        Route(c + "/objects/", wrap(hub.add_objects), methods=["POST"]),
        Route(c + "/objects/{object}/", wrap(hub.get_object), methods=["GET"]),
        Route(c + "/objects/{object}/", wrap(hub.delete_object), methods=["DELETE"]),
        Route(c + "/objects/{object}/versions/", wrap(hub.versions)),
        Route(c + "/manifest/", wrap(hub.manifest)),
    ]
    async def http_error(request: Request, exc: Exception) -> Response:
        if not isinstance(exc, HTTPException):
            return _error(TaxiiError(500, "Internal error", type(exc).__name__))
        code = exc.status_code
        return _error(TaxiiError(code, "Not found" if code == 404 else "Request refused", exc.detail,
                                 dict(exc.headers or {})))

    app = Starlette(routes=routes, exception_handlers={HTTPException: http_error, Exception: http_error})
    app.state.hub = hub
    return app
