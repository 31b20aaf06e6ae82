"""A compiled decoder for the common shape of a canonical line: the same row as ``flatten``, ~2x cheaper.

``orjson.loads`` + :func:`~distillguard.model.flatten` builds every dict and list of a
3 KB line in Python, then walks it again. Here msgspec decodes the line straight into
typed structs that hold only the fields a row needs, and keeps ``request`` and
``response`` as raw JSON slices (stored as ``request_json``/``response_json`` without
re-serialising them: the same JSON value, spelled as it arrived).

:func:`~distillguard.model.flatten` stays the definition. The structs are *stricter* than
it (no unknown top-level fields, no unusual types anywhere), so whatever they accept
``flatten`` accepts with the same values; :func:`decode_row` raises :class:`Unusual` for
everything else and the caller hands that line to ``flatten``, which then decides, errors
included. ``tests/test_ingest_fastpath.py`` checks both claims on fixtures and mutations.
One deliberate difference: a number beyond a double's range (``1e400``) in a body field
that no column reads is kept as spelled (RFC 8259 sets no range; checking every byte
for it would cost more than the decoding), where orjson would reject the line.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
import xxhash
from msgspec import Meta, Raw, Struct

from distillguard.errors import DistillguardError
from distillguard.model.exchange import INT32_MAX, INT64_MAX, TOP_LOGPROBS_MAX, call_hash, parse_ts, valid_ip

Int64 = Annotated[int, Meta(ge=-INT64_MAX - 1, le=INT64_MAX)]
Int32 = Annotated[int, Meta(ge=-INT32_MAX - 1, le=INT32_MAX)]
Count = Annotated[int, Meta(ge=0, le=INT64_MAX)]  # tokens, milliseconds: flatten refuses negative ones
Choices = Annotated[int, Meta(ge=1, le=INT32_MAX)]  # n
TopLogprobs = Annotated[int, Meta(ge=0, le=TOP_LOGPROBS_MAX)]
_NULL = Raw(b"null")


class Unusual(DistillguardError, ValueError):
    """The line is not in the common shape; ``flatten`` must decide it."""


class _Client(Struct, gc=False):
    ip: str
    user_agent: str | None = None
    asn: Int64 | None = None
    country: str | None = None
    tls_fp: str | None = None


class _Part(Struct, gc=False):
    type: str | None = None
    text: str | None = None


class _Message(Struct, gc=False):
    role: str | None = None
    content: str | list[_Part] | None = None
    tool_call_id: str | None = None


class _ToolCall(Struct, gc=False):
    id: str | None = None


class _Request(Struct, gc=False):
    model: str | None = None
    stream: bool = False
    messages: list[_Message] | None = None
    max_completion_tokens: Int64 | None = None
    max_tokens: Int64 | None = None
    temperature: float | None = None
    top_p: float | None = None
    reasoning_effort: str | None = None
    tools: list[Raw] | None = None
    n: Choices | None = None
    logprobs: bool | None = None  # an integer is the legacy Completions API's: flatten reads it
    top_logprobs: TopLogprobs | None = None


class _ReplyMessage(Struct, gc=False):
    content: str | list[_Part] | None = None
    reasoning_content: str | None = None
    tool_calls: list[_ToolCall] | None = None


class _Choice(Struct, gc=False):
    message: _ReplyMessage | None = None
    finish_reason: str | None = None


class _Details(Struct, gc=False):
    reasoning_tokens: Count | None = None


class _Usage(Struct, gc=False):
    prompt_tokens: Count | None = None
    completion_tokens: Count | None = None
    completion_tokens_details: _Details | None = None


class _Response(Struct, gc=False):
    choices: list[_Choice] | None = None
    usage: _Usage | None = None


class _Record(Struct, forbid_unknown_fields=True, gc=False):
    id: str
    ts: str
    account_id: str
    client: _Client
    api_key_id: str | None = None
    org_id: str | None = None
    endpoint: str | None = None
    request: Raw = msgspec.field(default_factory=lambda: _NULL)
    response: Raw = msgspec.field(default_factory=lambda: _NULL)
    status: Int32 | None = None
    latency_ms: Count | None = None


_record = msgspec.json.Decoder(_Record)
_request = msgspec.json.Decoder(_Request)
_response = msgspec.json.Decoder(_Response)
# what decode_row raises when flatten must decide; msgspec raises RecursionError on deep nesting (orjson refuses it)
FALLBACK = (msgspec.DecodeError, ValueError, RecursionError)


def _text(content: str | list[_Part] | None) -> tuple[str, bool]:
    """As ``model.exchange._content_text``."""
    if content is None:
        return "", False
    if isinstance(content, str):
        return content, False
    texts: list[str] = []
    image = False
    for part in content:
        kind = part.type
        if kind in ("text", "input_text", "output_text"):
            if part.text is not None:
                texts.append(part.text)
        elif kind in ("image_url", "input_image", "image"):
            image = True
    return "\n".join(texts), image


def _may_nest_deeply(raw: bytes) -> bool:
    """Whether a body could nest 255 levels: never with fewer than 254 opening brackets (a cheap C count)."""
    return len(raw) > 508 and raw.count(b"[") + raw.count(b"{") >= 254


def decode_row(raw: bytes) -> tuple:
    """The row :func:`~distillguard.model.flatten` would return for this line, or raise one of :data:`FALLBACK`."""
    record = _record.decode(raw)
    if not record.id or not record.account_id or not valid_ip(record.client.ip):
        raise Unusual("empty required field or not an IP address")
    if record.endpoint is not None and "/responses" in record.endpoint:
        raise Unusual("Responses API bodies")  # flatten reads them
    ts = parse_ts(record.ts)
    request_raw = bytes(record.request)
    response_raw = bytes(record.response)
    if _may_nest_deeply(request_raw) or _may_nest_deeply(response_raw):
        raise Unusual("deeply nested body")  # flatten refuses bodies deeper than 254 levels
    request = None if request_raw == b"null" else _request.decode(request_raw)
    system_parts: list[str] = []
    user_text = ""
    n_user = n_assistant = prompt_chars = 0
    has_image = False
    cited_call = None
    messages = (request.messages or []) if request is not None else []
    for message in messages:
        text, image = _text(message.content)
        has_image = has_image or image
        prompt_chars += len(text)
        role = message.role
        if role == "system" or role == "developer":
            system_parts.append(text)
        elif role == "user":
            n_user += 1
            user_text = text
        elif role == "assistant":
            n_assistant += 1
        elif role == "tool" and cited_call is None:
            cited_call = call_hash(message.tool_call_id)

    response = None if response_raw == b"null" else _response.decode(response_raw)
    response_text = reasoning_text = finish = None
    n_tool_calls = 0
    issued_call = None
    prompt_tokens = completion_tokens = reasoning_tokens = None
    if response is not None:
        if response.choices:
            choice = response.choices[0]
            reply = choice.message
            response_text, _ = _text(reply.content if reply is not None else None)
            if reply is not None:
                reasoning_text = reply.reasoning_content
                calls = reply.tool_calls
                n_tool_calls = len(calls) if calls is not None else 0
                if calls:
                    issued_call = call_hash(calls[0].id)
            finish = choice.finish_reason
        usage = response.usage
        if usage is not None:
            prompt_tokens, completion_tokens = usage.prompt_tokens, usage.completion_tokens
            if usage.completion_tokens_details is not None:
                reasoning_tokens = usage.completion_tokens_details.reasoning_tokens

    if request is None:
        model = reasoning_effort = max_tokens = temperature = top_p = n_choices = logprobs = top_logprobs = None
        stream, n_tools, request_json = False, 0, None
    else:
        model, stream, reasoning_effort = request.model, request.stream, request.reasoning_effort
        n_choices, logprobs, top_logprobs = request.n, request.logprobs, request.top_logprobs
        max_tokens = request.max_completion_tokens if request.max_completion_tokens is not None else request.max_tokens
        temperature, top_p = request.temperature, request.top_p
        n_tools = len(request.tools) if request.tools else 0
        # flatten stores no body for an empty request object
        request_json = None if len(request_raw) < 16 and b"".join(request_raw.split()) == b"{}" else request_raw
    client = record.client
    rid = record.id
    return (
        rid,
        xxhash.xxh3_64_intdigest(rid.encode()),
        ts,
        record.account_id,
        record.api_key_id,
        record.org_id,
        client.ip,
        client.user_agent,
        client.asn,
        client.country,
        client.tls_fp,
        record.endpoint,
        model,
        stream,
        max_tokens,
        temperature,
        top_p,
        reasoning_effort,
        len(messages),
        n_user,
        n_assistant,
        n_tools,
        has_image,
        "\n".join(system_parts) if system_parts else None,
        user_text,
        prompt_chars,
        response_text,
        reasoning_text,
        len(response_text) if response_text else 0,
        len(reasoning_text) if reasoning_text else 0,
        n_tool_calls,
        finish,
        prompt_tokens,
        completion_tokens,
        reasoning_tokens,
        record.status,
        record.latency_ms,
        request_json.decode() if request_json is not None else None,
        response_raw.decode() if response is not None else None,
        None,
        n_choices,
        logprobs,
        top_logprobs,
        cited_call,
        issued_call,
    )
