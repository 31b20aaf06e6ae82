"""What every ASGI entry point of the gateway shares (the proxy app, the middleware, the LiteLLM hook): the routes
decided on, API key ids, header access, OpenAI-format answers and the refusal raised before a request is served."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import xxhash

from distillguard.errors import DistillguardError
from distillguard.gateway import errors

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

CHAT = "/v1/chat/completions"
RESPONSES = "/v1/responses"
MODELS = "/v1/models"
HEALTH = "/healthz"
METRICS = "/metrics"


class Reject(DistillguardError):
    """A request the gateway answers itself with an OpenAI-format error (``spec``: one of :mod:`.errors`)."""

    def __init__(self, spec: tuple[int, str, str], message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.type, self.code = spec
        self.param = param
        self.field = param


def key_id(api_key: str) -> str:
    """A stable, non-reversible id for a key: raw keys never reach logs or the store."""
    return "key-" + xxhash.xxh3_64_hexdigest(api_key.encode())


def header(scope: Scope, name: bytes) -> str | None:
    """The first value of header ``name`` (lower-case bytes), decoded as Latin-1; None when absent."""
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def printable(text: str, limit: int) -> str:
    """``text`` safe for a log line: control and non-ASCII characters escaped, at most ``limit`` characters."""
    out = text if text.isascii() and text.isprintable() else text.encode("unicode_escape").decode("ascii")
    return out[:limit]


async def send_full(send: Send, status: int, body: bytes, content_type: str,
                    extra: dict[str, str] | None = None) -> None:
    """A whole response: status, content type and length, ``extra`` headers, the body."""
    headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]
    headers.extend((k.encode(), v.encode()) for k, v in (extra or {}).items())
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def send_error(send: Send, status: int, body: bytes) -> None:
    await send_full(send, status, body, "application/json")


async def send_reject(send: Send, exc: Reject, param: bool = True) -> None:
    """A :class:`Reject` as its OpenAI error."""
    await send_error(send, exc.status, errors.error_body(str(exc), exc.type, exc.code, exc.param if param else None))


__all__ = ["CHAT", "HEALTH", "METRICS", "MODELS", "RESPONSES", "Receive", "Reject", "Scope", "Send", "header",
           "key_id", "printable", "send_error", "send_full", "send_reject"]
