"""OpenAI-format error bodies, so existing SDKs surface gateway refusals like any other API error."""

from __future__ import annotations

import orjson


def error_body(message: str, type_: str, code: str | None = None, param: str | None = None) -> bytes:
    """The ``{"error": {...}}`` object the OpenAI API returns; SDKs raise typed exceptions from it."""
    return orjson.dumps({"error": {"message": message, "type": type_, "param": param, "code": code}})


# status -> (type, code) used for each refusal the gateway makes itself
BAD_JSON = (400, "invalid_request_error", "invalid_json")
TOO_LARGE = (413, "invalid_request_error", "request_too_large")
NO_KEY = (401, "invalid_request_error", "missing_api_key")
BAD_KEY = (401, "invalid_request_error", "invalid_api_key")
NOT_FOUND = (404, "invalid_request_error", "unknown_url")
BAD_PATH = (400, "invalid_request_error", "invalid_path")
URI_TOO_LONG = (414, "invalid_request_error", "uri_too_long")
BAD_HEADER = (400, "invalid_request_error", "invalid_header")
UNSAFE = (400, "invalid_request_error", "unsafe_request")
METHOD = (405, "invalid_request_error", "method_not_allowed")
THROTTLED = (429, "rate_limit_exceeded", "rate_limit_exceeded")
BLOCKED = (403, "permission_error", "account_blocked")
UNAVAILABLE = (503, "service_unavailable", "gateway_unavailable")
UPSTREAM_TIMEOUT = (504, "upstream_error", "upstream_timeout")
UPSTREAM_DOWN = (502, "upstream_error", "upstream_unreachable")
