"""The request grammar of the gateway's routes: which parts of the OpenAI API pass through, and the strict
grammar paths, query strings, model ids and content types must follow before anything is forwarded upstream."""

from __future__ import annotations

import contextlib
import re
from urllib.parse import parse_qsl, quote, urlencode

import orjson

from distillguard.gateway import errors
from distillguard.gateway.asgi import MODELS, Reject, Scope, header

MAX_MODEL_ID = 256  # longest model id accepted in GET /v1/models/{id}
MAX_ACCEPT = 1024  # longest Accept header forwarded upstream
MAX_PATH = 1024  # longest pass-through path
MAX_SEGMENTS = 8  # path segments after /v1/
MAX_QUERY = 2048  # longest query string (pass-through only)
MAX_QUERY_FIELDS = 32
MAX_CONTENT_TYPE = 256
MAX_ERROR_BODY = 1 << 20  # an upstream error body read to wrap it
# one segment of a model id ("gpt-4o", "ft:gpt-4o-mini:org::id", "meta-llama/Llama-3.1-8B"): unreserved + ":@+=,"
_MODEL_SEGMENT = re.compile(r"[A-Za-z0-9._~:@+=,-]+")
_ACCEPT = re.compile(r"[\t\x20-\x7e]*")  # no CR, LF, NUL or other control byte, no non-ASCII
_QUERY_KEY = re.compile(r"[A-Za-z0-9_.\[\]-]{1,64}")
_QUERY_VALUE = re.compile(r"[\x20-\x7e]{0,512}")
_TAGS = re.compile(r"<[^>]{0,2000}>")
_SPACES = re.compile(r"\s+")

# The rest of the OpenAI API, by first path segment after /v1/: the methods forwarded. Anything else is a 404.
PASS_THROUGH: dict[str, frozenset[str]] = {
    "embeddings": frozenset({"POST"}),
    "completions": frozenset({"POST"}),  # legacy text completions
    "moderations": frozenset({"POST"}),
    "images": frozenset({"POST"}),
    "audio": frozenset({"POST"}),
    "files": frozenset({"GET", "POST", "DELETE"}),
    "uploads": frozenset({"POST"}),
    "batches": frozenset({"GET", "POST"}),
    "fine_tuning": frozenset({"GET", "POST", "DELETE"}),
    "vector_stores": frozenset({"GET", "POST", "DELETE"}),
    "conversations": frozenset({"GET", "POST", "DELETE"}),
    "responses": frozenset({"GET", "POST", "DELETE"}),  # /v1/responses/{id}[/input_items|/cancel]
    "chat": frozenset({"GET", "POST", "DELETE"}),  # stored completions: /v1/chat/completions/{id}[/messages]
}
# path segments that name an operation rather than an object; any other segment is an id in the audited route
_ROUTE_WORDS = frozenset({
    "completions", "content", "cancel", "input_items", "messages", "parts", "complete", "jobs", "checkpoints",
    "events", "files", "file_batches", "generations", "edits", "variations", "speech", "transcriptions",
    "translations", "search", "items", "permissions", "pause", "resume", "alpha", "graders", "run", "validate",
    "compact", "input_tokens",
})


def api_path(path: str) -> tuple[str, str]:
    """``(upstream path, audited route)`` for a pass-through path; a 400 or 414 outside the grammar.

    ``path`` is the client's *decoded* path: every segment after ``/v1/`` must be non-empty unreserved characters
    (no ``%``, no space or control byte, no ``.``/``..``), so the path sent upstream is re-encoded from checked
    parts and nothing else. The route names ids ``{id}`` (``/v1/files/{id}/content``), for the audit log.
    """
    if len(path) > MAX_PATH:
        raise Reject(errors.URI_TOO_LONG, f"Request paths are at most {MAX_PATH} characters.")
    segments = path[len("/v1/"):].split("/")
    if len(segments) > MAX_SEGMENTS or any(s in (".", "..") or _MODEL_SEGMENT.fullmatch(s) is None
                                           for s in segments):
        raise Reject(errors.BAD_PATH, "Invalid request path: use letters, digits, '.', '_', '~', ':', '@', '+', '=', "
                                       f"',', '-' in at most {MAX_SEGMENTS} non-empty parts other than '.' and '..'.")
    route = "/v1/" + "/".join(s if i == 0 or s in _ROUTE_WORDS else "{id}" for i, s in enumerate(segments))
    return "/v1/" + "/".join(quote(s, safe=":@+=,~") for s in segments), route


def api_query(raw: bytes) -> str:
    """A pass-through query string, parsed strictly and re-encoded (``?k=v&...``, or ``""``); else a 400 or 414."""
    if not raw:
        return ""
    if len(raw) > MAX_QUERY:
        raise Reject(errors.URI_TOO_LONG, f"Query strings are at most {MAX_QUERY} bytes.")
    try:
        pairs = parse_qsl(raw.decode("ascii"), keep_blank_values=True, strict_parsing=True,
                          max_num_fields=MAX_QUERY_FIELDS)
    except (UnicodeDecodeError, ValueError):
        raise Reject(errors.BAD_PATH, "Invalid query string.") from None
    for key, value in pairs:
        if not _QUERY_KEY.fullmatch(key) or not _QUERY_VALUE.fullmatch(value):
            raise Reject(errors.BAD_PATH, "Invalid query string: keys are letters, digits, '_', '.', '-', '[', ']'; "
                                           "values printable ASCII.")
    return "?" + urlencode(pairs, quote_via=quote, safe="")


def content_type(scope: Scope) -> str:
    value = header(scope, b"content-type") or "application/json"
    if len(value) > MAX_CONTENT_TYPE or not _ACCEPT.fullmatch(value):
        raise Reject(errors.BAD_HEADER, f"The Content-Type header must be at most {MAX_CONTENT_TYPE} printable ASCII "
                                         "characters.")
    return value


def models_path(path: str) -> str:
    """The upstream path for ``GET /v1/models[/ID]``: an allow-listed model id, re-encoded; else a 400 or 414.

    ``path`` is the client's *decoded* path, so ``%0d%0a``, ``%00``, ``%20`` and ``%2e%2e`` arrive here as the
    bytes they encode and are refused like raw ones: nothing but the id grammar reaches the upstream request line.
    """
    if path == MODELS:
        return MODELS
    model_id = path[len(MODELS) + 1:]
    if len(model_id) > MAX_MODEL_ID:
        raise Reject(errors.URI_TOO_LONG, f"Model ids are at most {MAX_MODEL_ID} characters.")
    segments = model_id.split("/")
    if any(s in (".", "..") or _MODEL_SEGMENT.fullmatch(s) is None for s in segments):
        raise Reject(errors.BAD_PATH, "Invalid model id: use letters, digits, '.', '_', '~', ':', '@', '+', '=', "
                                       "',', '-' and '/' between non-empty parts other than '.' and '..'.")
    return MODELS + "/" + "/".join(quote(s, safe=":@+=,~") for s in segments)


def upstream_error_body(status: int, body: bytes, content_type: str) -> bytes | None:
    """An OpenAI-format error for an upstream error answer that is not one (HTML, plain text, empty, JSON of
    another shape); None when it already is ``{"error": {...}}``. The status is kept by the caller."""
    if "json" in content_type.lower():
        with contextlib.suppress(orjson.JSONDecodeError):
            parsed = orjson.loads(body)
            if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
                return None
    text = _SPACES.sub(" ", _TAGS.sub(" ", body[:4096].decode("utf-8", "replace"))).strip()
    message = f"The upstream model server answered HTTP {status}" + (f": {text[:300]}" if text else " (empty body)")
    type_, code = ("upstream_error", f"upstream_http_{status}") if status >= 500 else \
        ("invalid_request_error", f"upstream_http_{status}")
    return errors.error_body(message, type_, code)


def accept(scope: Scope) -> str | None:
    """The client's Accept header, forwarded upstream only when it is at most ``MAX_ACCEPT`` printable ASCII
    characters (else a 400); None when there is none."""
    value = header(scope, b"accept")
    if value and (len(value) > MAX_ACCEPT or not _ACCEPT.fullmatch(value)):
        raise Reject(errors.BAD_HEADER, f"The Accept header must be at most {MAX_ACCEPT} printable ASCII characters.")
    return value or None
