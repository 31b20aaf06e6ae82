"""TAXII 2.1 hub as a Starlette app: discovery, API root, collections, objects, manifest, status.

Access is per member (HTTP Basic) and per trust group (a collection belongs to
one group); reads are filtered by TLP 2.0 against the member's clearance
(TLP:RED never leaves the hub except to its producer). Posted objects must be
TLP-marked, created by the poster and carry the poster's Ed25519 signature;
anything else is listed as a failure in the status resource. Malformed or
oversized requests get TAXII error bodies, never a 500.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from distillguard.intel.export import member_identity_id
from distillguard.intel.extension import EXTENSION_ID, PROJECT_IDENTITY_ID, extension_definition, project_identity
from distillguard.intel.hub.config import Collection, HubConfig, check_password
from distillguard.intel.hub.db import HubStore, Row, format_us, open_db, parse_us
from distillguard.intel.refdata import object_tlp, tlp_by_id, tlp_markings, tlp_rank
from distillguard.intel.signing import SignatureError, verify

TAXII = "application/taxii+json;version=2.1"
STIX = "application/stix+json;version=2.1"


class TaxiiError(Exception):
    def __init__(self, status: int, title: str, description: str = "") -> None:
        super().__init__(title)
        self.status, self.title, self.description = status, title, description


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type=TAXII, headers=headers)


def _error(exc: TaxiiError) -> Response:
    headers = {"WWW-Authenticate": 'Basic realm="taxii"'} if exc.status == 401 else None
    return _json({"title": exc.title, "description": exc.description, "http_status": str(exc.status)},
                 exc.status, headers)


def _fixed_objects() -> dict[str, bytes]:
    """Objects every member may post unsigned because their content is fixed: TLP definitions, our extension."""
    clear = tlp_markings()["clear"]["id"]
    fixed = [*tlp_markings().values(), orjson.loads(project_identity(clear).serialize()),
             orjson.loads(extension_definition(clear).serialize())]
    return {o["id"]: orjson.dumps(o, option=orjson.OPT_SORT_KEYS) for o in fixed}


def _version(obj: dict[str, Any]) -> str:
    return obj.get("modified") or obj.get("created") or "1970-01-01T00:00:00.000Z"


class Hub:
    def __init__(self, config: HubConfig, db: HubStore) -> None:
        self.config, self.db = config, db
        self.fixed = _fixed_objects()
        self._auth_cache: dict[tuple[str, bytes], bool] = {}

    # ---- access ---------------------------------------------------------
    def member(self, request: Request) -> str:
        header = request.headers.get("authorization", "")
        if not header.lower().startswith("basic "):
            raise TaxiiError(401, "Authentication required")
        try:
            user, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise TaxiiError(401, "Malformed credentials") from None
        member = self.config.members.get(user)
        cache_key = (user, hashlib.sha256(password.encode()).digest())
        ok = self._auth_cache.get(cache_key)
        if ok is None:
            ok = member is not None and check_password(password, member.password_hash)
            if len(self._auth_cache) < 10_000:
                self._auth_cache[cache_key] = ok
        if not ok:
            raise TaxiiError(401, "Invalid credentials")
        accept = request.headers.get("accept", "")
        if accept and "application/taxii+json" not in accept and "*/*" not in accept:
            raise TaxiiError(406, "Not acceptable", f"this server speaks {TAXII}")
        return user

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
        self.member(request)
        root = str(request.base_url).rstrip("/") + f"/{self.config.api_root}/"
        return _json({"title": self.config.title, "description": "distillguard TAXII 2.1 hub",
                      "default": root, "api_roots": [root]})

    async def root_info(self, request: Request) -> Response:
        self.member(request)
        self.api_root(request)
        return _json({"title": self.config.title, "versions": [TAXII],
                      "max_content_length": self.config.max_content_length})

    def _collection_resource(self, coll: Collection) -> dict[str, Any]:
        return {"id": coll.id, "title": coll.title, "description": coll.description, "can_read": True,
                "can_write": True, "media_types": [STIX]}

    async def collections(self, request: Request) -> Response:
        member = self.member(request)
        self.api_root(request)
        visible = [self._collection_resource(c) for c in self.config.collections.values()
                   if self.config.can_access(member, c)]
        return _json({"collections": visible} if visible else {})

    async def collection_info(self, request: Request) -> Response:
        member = self.member(request)
        return _json(self._collection_resource(self.collection(request, member)))

    async def status(self, request: Request) -> Response:
        member = self.member(request)
        self.api_root(request)
        status = self.db.get_status(request.path_params["status"], member)
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
        except ValueError:
            raise TaxiiError(400, "Bad filter", "added_after must be RFC 3339; limit and next integers") from None
        if limit <= 0:
            raise TaxiiError(400, "Bad filter", "limit must be positive")
        ids = [object_id] if object_id else _split(q.get("match[id]"))
        rows = [r for r in self.db.query(coll.id, added_after=added_after, ids=ids or None,
                                         types=_split(q.get("match[type]")) or None) if self.visible(r, member)]
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
        member = self.member(request)
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
        member = self.member(request)
        coll = self.collection(request, member)
        page, more, nxt = self._select(request, member, coll, request.path_params["object"])
        if not page:
            raise TaxiiError(404, "Object not found")
        return self._envelope(page, more, nxt)

    async def versions(self, request: Request) -> Response:
        member = self.member(request)
        coll = self.collection(request, member)
        page, more, nxt = self._select(request, member, coll, request.path_params["object"], "all")
        if not page:
            raise TaxiiError(404, "Object not found")
        return _json({"more": more, **({"next": nxt} if nxt else {}), "versions": [r.version for r in page]},
                     headers=self._headers(page))

    async def manifest(self, request: Request) -> Response:
        member = self.member(request)
        coll = self.collection(request, member)
        page, more, nxt = self._select(request, member, coll)
        entries = [{"id": r.id, "date_added": r.date_added, "version": r.version, "media_type": STIX} for r in page]
        body: dict[str, Any] = {"more": more, **({"next": nxt} if nxt else {})}
        if entries:
            body["objects"] = entries
        return _json(body, headers=self._headers(page))

    async def delete_object(self, request: Request) -> Response:
        member = self.member(request)
        coll = self.collection(request, member)
        object_id = request.path_params["object"]
        rows = self.db.query(coll.id, ids=[object_id])
        if not rows or any(r.producer != member for r in rows):
            raise TaxiiError(404 if not rows else 403, "Cannot delete", "only the producer may delete its objects")
        self.db.delete(coll.id, object_id)
        return Response(status_code=200, media_type=TAXII)

    async def add_objects(self, request: Request) -> Response:
        member = self.member(request)
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
        requested = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        accepted, failures = [], []
        for i, obj in enumerate(objects):
            problem = self._check(obj, member)
            if problem:
                oid = obj.get("id", f"objects[{i}]") if isinstance(obj, dict) else f"objects[{i}]"
                version = _version(obj) if isinstance(obj, dict) else ""
                failures.append({"id": str(oid), "version": str(version), "message": problem})
            else:
                accepted.append((obj, _version(obj), object_tlp(obj), member))
        self.db.add(coll.id, accepted)
        successes = [{"id": o["id"], "version": v} for o, v, _, _ in accepted]
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

    def _check(self, obj: Any, member: str) -> str | None:
        """Why ``obj`` must be refused (None when acceptable)."""
        if not isinstance(obj, dict) or not isinstance(obj.get("id"), str) or not isinstance(obj.get("type"), str):
            return "not a STIX object (needs string type and id)"
        if not obj["id"].startswith(obj["type"] + "--"):
            return "id does not match type"
        if obj.get("spec_version") != "2.1":
            return "only STIX 2.1 objects are accepted"
        if obj["id"] in self.fixed:
            same = orjson.dumps(obj, option=orjson.OPT_SORT_KEYS) == self.fixed[obj["id"]]
            return None if same else "altered copy of a fixed object (TLP definition or distillguard extension)"
        if obj["type"] == "marking-definition" or obj["id"] in (EXTENSION_ID, PROJECT_IDENTITY_ID):
            return "only the OASIS TLP 2.0 marking definitions are accepted"
        if not any(ref in tlp_by_id() for ref in obj.get("object_marking_refs", [])):
            return "no TLP 2.0 marking (object_marking_refs)"
        expected = member_identity_id(member)
        if obj.get("created_by_ref") != expected and obj["id"] != expected:
            return f"created_by_ref must be the poster's identity {expected}"
        try:
            signer = verify(obj, {member: self.config.members[member].public_key})
        except SignatureError as exc:
            return str(exc)
        return None if signer == member else "signed by another member"


def _split(value: str | None) -> list[str]:
    return [v for v in (value or "").split(",") if v]


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
        code = exc.status_code if isinstance(exc, HTTPException) else 500
        return _error(TaxiiError(code, "Not found" if code == 404 else "Request refused", str(exc)))

    app = Starlette(routes=routes, exception_handlers={HTTPException: http_error})
    app.state.hub = hub
    return app
