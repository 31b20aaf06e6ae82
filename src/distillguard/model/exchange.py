"""The canonical exchange: one API request and its response.

Every stage speaks this model. A canonical record (a dict in the shape of
docs/exchange-log.md) is validated once by :func:`flatten`, which returns one
row of :data:`EXCHANGE_SCHEMA`: the columns later stages need, pre-extracted so
detection never re-parses JSON. ``request_json``/``response_json`` keep the full
bodies (unless the store runs with ``--no-content``) so a record can be rebuilt.
"""

from __future__ import annotations

import functools
import ipaddress
import json
from datetime import UTC, datetime
from typing import Any, Literal, overload

import orjson
import pyarrow as pa
import xxhash

from distillguard.errors import DistillguardError

EXCHANGE_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("id_hash", pa.uint64()),  # xxh3 of id: the dedupe key
        ("ts", pa.timestamp("ms", tz="UTC")),
        ("account_id", pa.string()),
        ("api_key_id", pa.string()),
        ("org_id", pa.string()),
        ("ip", pa.string()),
        ("user_agent", pa.string()),
        ("asn", pa.int64()),
        ("country", pa.string()),
        ("tls_fp", pa.string()),
        ("endpoint", pa.string()),
        ("model", pa.string()),
        ("stream", pa.bool_()),
        ("max_tokens", pa.int64()),
        ("temperature", pa.float64()),
        ("top_p", pa.float64()),
        ("reasoning_effort", pa.string()),
        ("n_messages", pa.int32()),
        ("n_user_turns", pa.int32()),
        ("n_assistant_turns", pa.int32()),
        ("n_tools", pa.int32()),
        ("has_image", pa.bool_()),
        ("system_text", pa.string()),  # all system/developer messages, joined
        ("user_text", pa.string()),  # the last user message's text
        ("prompt_chars", pa.int64()),  # characters of text over all messages
        ("response_text", pa.string()),
        ("reasoning_text", pa.string()),
        ("response_chars", pa.int64()),
        ("reasoning_chars", pa.int64()),
        ("n_tool_calls", pa.int32()),
        ("finish_reason", pa.string()),
        ("prompt_tokens", pa.int64()),
        ("completion_tokens", pa.int64()),
        ("reasoning_tokens", pa.int64()),
        ("status", pa.int32()),
        ("latency_ms", pa.int64()),
        ("request_json", pa.string()),
        ("response_json", pa.string()),
        ("extra_json", pa.string()),  # unknown top-level fields, kept not rejected
        # what a request asked of the token distribution (harvesting it is distillation): appended, so files and
        # code that know the columns above by position keep working; stores written before them read them as null
        ("n_choices", pa.int32()),  # chat/completions `n` (choices returned); null when absent
        ("logprobs", pa.bool_()),  # chat `logprobs`; Responses: `include` asks for them or `top_logprobs` > 0
        ("top_logprobs", pa.int32()),  # 0..20
        # history provenance (docs/exchange-log.md): tool-call ids are issued by the provider, so a request can only
        # answer calls some earlier response issued. xxh3-64 of the id of the first tool call the request's history
        # answers (chat: the first ``tool`` message's ``tool_call_id``; Responses: the first ``*_call_output``
        # item's ``call_id``), and of the first tool call this response issues; null when there is none
        ("cited_call", pa.uint64()),
        ("issued_call", pa.uint64()),
    ]
)
COLUMNS: tuple[str, ...] = tuple(EXCHANGE_SCHEMA.names)
CONTENT_COLUMNS = ("system_text", "user_text", "response_text", "reasoning_text", "request_json", "response_json")
_KNOWN_TOP = {"id", "ts", "account_id", "api_key_id", "org_id", "client", "endpoint", "request", "response",
              "status", "latency_ms"}


class FieldError(DistillguardError, ValueError):
    """A record failed validation; ``field`` names the offending field."""

    field: str

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"field '{field}': {reason}")
        self.field = field
        self.reason = reason


# Timestamps outside [1970-01-01, 2100-01-01) UTC are not API traffic but broken clocks or typos (a year 1600 or
# 9999 would also land in a partition of its own); the compiled decoder checks the same bounds.
TS_MIN_MS = 0
TS_MAX_MS = 4_102_444_800_000  # 2100-01-01T00:00:00Z, excluded
TS_RANGE = "1970-01-01T00:00:00Z to 2099-12-31T23:59:59Z"


def parse_ts(value: Any, field: str = "ts") -> int:
    """RFC 3339 timestamp -> epoch milliseconds (UTC). Naive times and times outside :data:`TS_RANGE` are
    rejected."""
    if not isinstance(value, str):
        raise FieldError(field, f"expected an RFC 3339 string, got {type(value).__name__}")
    text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise FieldError(field, f"not an RFC 3339 timestamp: {value!r}") from None
    if parsed.tzinfo is None:
        raise FieldError(field, f"timestamp has no UTC offset: {value!r}")
    try:
        epoch_ms = int(parsed.timestamp() * 1000)
    except (OverflowError, ValueError):  # years 1 and 9999 with an offset that crosses the calendar's ends
        epoch_ms = -1
    if not TS_MIN_MS <= epoch_ms < TS_MAX_MS:
        raise FieldError(field, f"out of range ({TS_RANGE}): {value!r}")
    return epoch_ms


def format_ts(epoch_ms: int, field: str = "ts") -> str:
    """Epoch milliseconds -> RFC 3339 (UTC, ``Z``); a value no calendar date has raises :class:`FieldError`."""
    try:
        moment = datetime.fromtimestamp(epoch_ms / 1000, UTC)
    except (OverflowError, ValueError, OSError):
        raise FieldError(field, f"not a representable time: {epoch_ms} ms since 1970") from None
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@functools.lru_cache(maxsize=1 << 16)
def valid_ip(value: str) -> bool:
    """An IPv4 or IPv6 address as ``ipaddress`` reads it, without an IPv6 zone (``%eth0``: an interface of the
    machine that logged it, not a client address). Client addresses repeat, hence the cache."""
    if "%" in value:
        return False
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


@overload
def _str(record: dict, key: str, field: str, required: Literal[True]) -> str: ...


@overload
def _str(record: dict, key: str, field: str, required: bool = False) -> str | None: ...


def _str(record: dict, key: str, field: str, required: bool = False) -> str | None:
    value = record.get(key)
    if value is None:
        if required:
            raise FieldError(field, "required")
        return None
    if not isinstance(value, str):
        raise FieldError(field, f"expected a string, got {type(value).__name__}")
    if required and not value:
        raise FieldError(field, "must not be empty")
    return value


INT64_MAX = 2**63 - 1
INT32_MAX = 2**31 - 1


FLOAT_FOR_INT = "expected an integer, got float"  # orjson reads integers beyond 64 bits as floats: flatten_json


def _int(record: dict, key: str, field: str, limit: int = INT64_MAX, count: bool = False) -> int | None:
    """An optional integer; ``count``: a quantity (tokens, milliseconds) that cannot be negative."""
    value = record.get(key)
    if value is None:
        return None
    if isinstance(value, float):
        raise FieldError(field, FLOAT_FOR_INT)
    if isinstance(value, bool) or not isinstance(value, int):
        raise FieldError(field, f"expected an integer, got {type(value).__name__}")
    if not -limit - 1 <= value <= limit:  # JSON integers are unbounded; the stored column is not
        raise FieldError(field, f"integer out of range: {value}")
    if count and value < 0:
        raise FieldError(field, f"must not be negative: {value}")
    return value


def _bool(record: dict, key: str, field: str) -> bool:
    """An optional boolean (null or absent: false); ``"false"`` is not a boolean and is not read as true."""
    value = record.get(key)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise FieldError(field, f"expected a boolean, got {type(value).__name__}: {value!r}"[:200])
    return value


def _opt_bool(record: dict, key: str, field: str) -> bool | None:
    """An optional boolean kept as given: null or absent is None (not false)."""
    value = record.get(key)
    if value is None or isinstance(value, bool):
        return value
    raise FieldError(field, f"expected a boolean, got {type(value).__name__}: {value!r}"[:200])


TOP_LOGPROBS_MAX = 20  # the OpenAI API's bound on top_logprobs (chat and Responses)


def _top_logprobs(record: dict, key: str, field: str) -> int | None:
    """``top_logprobs``: an integer from 0 to :data:`TOP_LOGPROBS_MAX`."""
    value = _int(record, key, field)
    if value is not None and not 0 <= value <= TOP_LOGPROBS_MAX:
        raise FieldError(field, f"must be an integer from 0 to {TOP_LOGPROBS_MAX}: {value}")
    return value


def _n_choices(request: dict) -> int | None:
    """``n``, the number of choices asked for: a positive integer."""
    value = _int(request, "n", "request.n", INT32_MAX)
    if value is not None and value < 1:
        raise FieldError("request.n", f"must be a positive integer: {value}")
    return value


# Responses API ``include`` value that returns log probabilities with the output text
RESPONSES_LOGPROBS = "message.output_text.logprobs"


def _num(record: dict, key: str, field: str) -> float | None:
    value = record.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FieldError(field, f"expected a number, got {type(value).__name__}")
    try:
        return float(value)
    except OverflowError:
        raise FieldError(field, f"number out of range: {value}") from None


def _content_text(content: Any, field: str) -> tuple[str, bool]:
    """Text of an OpenAI message ``content`` (string or parts) and whether it holds an image."""
    if content is None:
        return "", False
    if isinstance(content, str):
        return content, False
    if not isinstance(content, list):
        raise FieldError(field, f"expected a string or a list of parts, got {type(content).__name__}")
    texts: list[str] = []
    image = False
    for part in content:
        if not isinstance(part, dict):
            raise FieldError(field, "content part is not an object")
        kind = part.get("type")
        if kind in ("text", "input_text", "output_text"):
            text = part.get("text")
            if isinstance(text, str):
                texts.append(text)
        elif kind in ("image_url", "input_image", "image"):
            image = True
    return "\n".join(texts), image


def is_responses_endpoint(endpoint: Any) -> bool:
    """Whether an exchange's bodies are OpenAI Responses API bodies (``/v1/responses``, also behind a prefix or
    with a query string) rather than ``chat.completions`` ones."""
    return isinstance(endpoint, str) and endpoint.partition("?")[0].rstrip("/").endswith("/responses")


def is_legacy_completions_endpoint(endpoint: Any) -> bool:
    """Whether an exchange is a legacy Completions API call (``/v1/completions``), whose ``logprobs`` is the number
    of most likely tokens to return (an integer), not chat's boolean."""
    if not isinstance(endpoint, str):
        return False
    path = endpoint.partition("?")[0].rstrip("/")
    return path.endswith("/completions") and not path.endswith("/chat/completions")


# Responses API items the model produced (an assistant turn is a run of them, as one chat assistant message holds
# its text, reasoning and tool calls) and items that answer a tool call (a chat ``tool`` message each).
_ASSISTANT_ITEMS = frozenset({"reasoning", "function_call", "custom_tool_call", "file_search_call", "web_search_call",
                              "computer_call", "code_interpreter_call", "image_generation_call", "local_shell_call",
                              "shell_call", "apply_patch_call", "mcp_call", "mcp_list_tools", "mcp_approval_request"})
_CLIENT_TOOL_CALLS = ("function_call", "custom_tool_call")  # the calls a client answers: chat's tool_calls


def call_hash(call_id: Any) -> int | None:
    """xxh3-64 of a tool call id (the UTF-8 of a non-empty string); None for anything else."""
    if isinstance(call_id, str) and call_id:
        return xxhash.xxh3_64_intdigest(call_id.encode("utf-8", "surrogatepass"))
    return None


class _Prompt:
    """What the request side contributes to a row (chat and Responses requests alike)."""

    __slots__ = ("system_parts", "user_text", "n_messages", "n_user", "n_assistant", "prompt_chars", "has_image",
                 "cited_call")

    def __init__(self) -> None:
        self.system_parts: list[str] = []
        self.user_text = ""
        self.n_messages = self.n_user = self.n_assistant = self.prompt_chars = 0
        self.has_image = False
        self.cited_call: int | None = None

    def cite(self, call_id: Any) -> None:
        """The first tool call the history answers (later ones are ignored)."""
        if self.cited_call is None:
            self.cited_call = call_hash(call_id)

    def message(self, role: Any, content: Any, field: str) -> None:
        text, image = _content_text(content, field)
        self.has_image = self.has_image or image
        self.prompt_chars += len(text)
        if role in ("system", "developer"):
            self.system_parts.append(text)
        elif role == "user":
            self.n_user += 1
            self.user_text = text
        elif role == "assistant":
            self.n_assistant += 1


def _chat_prompt(request: dict) -> _Prompt:
    prompt = _Prompt()
    messages = request.get("messages") or []
    if not isinstance(messages, list):
        raise FieldError("request.messages", "expected a list")
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise FieldError(f"request.messages[{i}]", "expected an object")
        role = message.get("role")
        prompt.message(role, message.get("content"), f"request.messages[{i}].content")
        if role == "tool":
            prompt.cite(message.get("tool_call_id"))
    prompt.n_messages = len(messages)
    return prompt


def _responses_prompt(request: dict) -> _Prompt:
    """A Responses API request (``instructions`` + ``input``) read as the chat messages it stands for:
    ``instructions`` is a system message, a string ``input`` one user message; in a list of items each message
    item is a message, each ``*_call_output`` a tool message and each run of model items (assistant message,
    reasoning, tool calls) one assistant turn."""
    prompt = _Prompt()
    instructions = request.get("instructions")
    if isinstance(instructions, str):
        prompt.message("system", instructions, "request.instructions")
        prompt.n_messages += 1
    elif isinstance(instructions, list):  # as a Response object echoes them: input items
        _responses_items(prompt, instructions, "request.instructions")
    elif instructions is not None:
        raise FieldError("request.instructions", f"expected a string, got {type(instructions).__name__}")
    items = request.get("input")
    if items is None:
        return prompt
    if isinstance(items, str):
        prompt.message("user", items, "request.input")
        prompt.n_messages += 1
    elif isinstance(items, list):
        _responses_items(prompt, items, "request.input")
    else:
        raise FieldError("request.input", f"expected a string or a list of items, got {type(items).__name__}")
    return prompt


def _responses_items(prompt: _Prompt, items: list, field: str) -> None:
    in_turn = False  # inside a run of model items
    for i, item in enumerate(items):
        where = f"{field}[{i}]"
        if not isinstance(item, dict):
            raise FieldError(where, "expected an object")
        kind = item.get("type", "message")  # EasyInputMessage has no type
        if kind is not None and not isinstance(kind, str):
            raise FieldError(f"{where}.type", f"expected a string, got {type(kind).__name__}")
        role = item.get("role")
        if kind == "message" and role != "assistant":
            prompt.message(role, item.get("content"), f"{where}.content")
            prompt.n_messages += 1
            in_turn = False
        elif kind == "message" or kind in _ASSISTANT_ITEMS:
            if kind == "message":
                text, image = _content_text(item.get("content"), f"{where}.content")
                prompt.prompt_chars += len(text)
                prompt.has_image = prompt.has_image or image
            if not in_turn:
                prompt.n_assistant += 1
                prompt.n_messages += 1
                in_turn = True
        elif isinstance(kind, str) and kind.endswith("_call_output"):
            prompt.cite(item.get("call_id"))
            output = item.get("output")
            if isinstance(output, str | list):
                text, image = _content_text(output, f"{where}.output")
                prompt.prompt_chars += len(text)
                prompt.has_image = prompt.has_image or image
            prompt.n_messages += 1
            in_turn = False
        else:  # item_reference, approvals and the like: not a message
            in_turn = False


class _Reply:
    """What the response side contributes to a row."""

    __slots__ = ("text", "reasoning", "n_tool_calls", "finish", "prompt_tokens", "completion_tokens",
                 "reasoning_tokens", "issued_call")

    def __init__(self) -> None:
        self.text: str | None = None
        self.reasoning: str | None = None
        self.n_tool_calls = 0
        self.finish: str | None = None
        self.prompt_tokens: int | None = None
        self.completion_tokens: int | None = None
        self.reasoning_tokens: int | None = None
        self.issued_call: int | None = None


def _chat_reply(response: dict) -> _Reply:
    reply = _Reply()
    choices = response.get("choices") or []
    if not isinstance(choices, list):
        raise FieldError("response.choices", "expected a list")
    if choices:
        choice = choices[0]
        if not isinstance(choice, dict):
            raise FieldError("response.choices[0]", "expected an object")
        message = choice.get("message") or {}
        if not isinstance(message, dict):
            raise FieldError("response.choices[0].message", "expected an object")
        reply.text, _ = _content_text(message.get("content"), "response.choices[0].message.content")
        reasoning = message.get("reasoning_content")
        reply.reasoning = reasoning if isinstance(reasoning, str) else None
        calls = message.get("tool_calls")
        reply.n_tool_calls = len(calls) if isinstance(calls, list) else 0
        if isinstance(calls, list) and calls and isinstance(calls[0], dict):
            reply.issued_call = call_hash(calls[0].get("id"))
        finish = choice.get("finish_reason")
        reply.finish = finish if isinstance(finish, str) else None
    usage = response.get("usage")
    if usage is not None:
        if not isinstance(usage, dict):
            raise FieldError("response.usage", "expected an object")
        reply.prompt_tokens = _int(usage, "prompt_tokens", "response.usage.prompt_tokens", count=True)
        reply.completion_tokens = _int(usage, "completion_tokens", "response.usage.completion_tokens", count=True)
        details = usage.get("completion_tokens_details")
        if isinstance(details, dict):
            reply.reasoning_tokens = _int(details, "reasoning_tokens",
                                          "response.usage.completion_tokens_details.reasoning_tokens", count=True)
    return reply


# Response.status (+ incomplete_details.reason) in chat's finish_reason vocabulary, which the signals read
_RESPONSES_FINISH = {"completed": "stop", "max_output_tokens": "length", "content_filter": "content_filter"}


def _responses_reply(response: dict) -> _Reply:
    """A Responses API ``Response``: message items' ``output_text`` is the response text, reasoning items'
    summaries (and reasoning text, where returned) the reasoning, function calls the tool calls."""
    reply = _Reply()
    output = response.get("output")
    if output is None:
        output = []
    if not isinstance(output, list):
        raise FieldError("response.output", "expected a list")
    texts: list[str] = []
    reasoning: list[str] = []
    has_message = False
    for i, item in enumerate(output):
        where = f"response.output[{i}]"
        if not isinstance(item, dict):
            raise FieldError(where, "expected an object")
        kind = item.get("type")
        if kind == "message":
            text, _ = _content_text(item.get("content"), f"{where}.content")
            texts.append(text)
            has_message = True
        elif kind == "reasoning":
            for key in ("summary", "content"):
                parts = item.get(key)
                if parts is None:
                    continue
                if not isinstance(parts, list):
                    raise FieldError(f"{where}.{key}", "expected a list")
                for j, part in enumerate(parts):
                    if not isinstance(part, dict):
                        raise FieldError(f"{where}.{key}[{j}]", "expected an object")
                    part_text = part.get("text")
                    if isinstance(part_text, str):
                        reasoning.append(part_text)
        elif kind in _CLIENT_TOOL_CALLS:
            if not reply.n_tool_calls:
                reply.issued_call = call_hash(item.get("call_id"))
            reply.n_tool_calls += 1
    reply.text = "\n".join(texts) if has_message else None
    reply.reasoning = "\n".join(reasoning) if reasoning else None
    status = response.get("status")
    if isinstance(status, str):
        details = response.get("incomplete_details")
        reason = details.get("reason") if isinstance(details, dict) else None
        key = reason if status == "incomplete" and isinstance(reason, str) else status
        reply.finish = "tool_calls" if status == "completed" and reply.n_tool_calls else _RESPONSES_FINISH.get(key, key)
    usage = response.get("usage")
    if usage is not None:
        if not isinstance(usage, dict):
            raise FieldError("response.usage", "expected an object")
        reply.prompt_tokens = _int(usage, "input_tokens", "response.usage.input_tokens", count=True)
        reply.completion_tokens = _int(usage, "output_tokens", "response.usage.output_tokens", count=True)
        details = usage.get("output_tokens_details")
        if isinstance(details, dict):
            reply.reasoning_tokens = _int(details, "reasoning_tokens",
                                          "response.usage.output_tokens_details.reasoning_tokens", count=True)
    return reply


def flatten(record: Any) -> tuple:
    """Validate a canonical record and return its row, in :data:`COLUMNS` order.

    Raises :class:`FieldError` naming the first offending field. The bodies of an exchange whose endpoint is
    the Responses API (:func:`is_responses_endpoint`) are read as Responses bodies, others as chat ones.
    """
    if not isinstance(record, dict):
        raise FieldError("<record>", f"expected a JSON object, got {type(record).__name__}")
    rid = _str(record, "id", "id", required=True)
    ts = parse_ts(record.get("ts")) if "ts" in record else None
    if ts is None:
        raise FieldError("ts", "required")
    account = _str(record, "account_id", "account_id", required=True)
    client = record.get("client")
    if not isinstance(client, dict):
        raise FieldError("client", "required object" if client is None else "expected an object")
    ip = _str(client, "ip", "client.ip", required=True)
    if not valid_ip(ip):
        raise FieldError("client.ip", f"not an IPv4 or IPv6 address: {ip!r}"[:200])
    endpoint = _str(record, "endpoint", "endpoint")
    responses = is_responses_endpoint(endpoint)

    request = record.get("request")
    if request is None:
        request = {}
    elif not isinstance(request, dict):
        raise FieldError("request", "expected an object")
    logprobs: bool | None
    if responses:
        prompt = _responses_prompt(request)
        max_tokens = _int(request, "max_output_tokens", "request.max_output_tokens")
        reasoning = request.get("reasoning")
        if reasoning is not None and not isinstance(reasoning, dict):
            raise FieldError("request.reasoning", "expected an object")
        effort = _str(reasoning, "effort", "request.reasoning.effort") if reasoning else None
        n_choices = None  # the Responses API returns one output
        top_logprobs = _top_logprobs(request, "top_logprobs", "request.top_logprobs")
        include = request.get("include")
        if include is not None and not isinstance(include, list):
            raise FieldError("request.include", f"expected a list, got {type(include).__name__}")
        if (include is not None and RESPONSES_LOGPROBS in include) or (top_logprobs or 0) > 0:
            logprobs = True
        else:  # asked for other things (or for no alternatives) only: false; asked nothing about them: null
            logprobs = False if include is not None or top_logprobs is not None else None
    else:
        prompt = _chat_prompt(request)
        max_tokens = _int(request, "max_completion_tokens", "request.max_completion_tokens")
        if max_tokens is None:
            max_tokens = _int(request, "max_tokens", "request.max_tokens")
        effort = _str(request, "reasoning_effort", "request.reasoning_effort")
        n_choices = _n_choices(request)
        count = request.get("logprobs")
        if isinstance(count, int | float) and not isinstance(count, bool) and is_legacy_completions_endpoint(endpoint):
            # /v1/completions: `logprobs` is the number of alternatives (chat's top_logprobs), and asks for them
            top_logprobs = _top_logprobs(request, "logprobs", "request.logprobs")
            logprobs = True
        else:
            logprobs = _opt_bool(request, "logprobs", "request.logprobs")
            top_logprobs = _top_logprobs(request, "top_logprobs", "request.top_logprobs")
    tools = request.get("tools")
    if tools is not None and not isinstance(tools, list):
        raise FieldError("request.tools", "expected a list")

    response = record.get("response")
    if response is None:
        reply = _Reply()
    elif not isinstance(response, dict):
        raise FieldError("response", "expected an object or null")
    else:
        reply = _responses_reply(response) if responses else _chat_reply(response)

    extra = {k: v for k, v in record.items() if k not in _KNOWN_TOP}
    response_text, reasoning_text = reply.text, reply.reasoning
    return (
        rid,
        xxhash.xxh3_64_intdigest(rid.encode()),
        ts,
        account,
        _str(record, "api_key_id", "api_key_id"),
        _str(record, "org_id", "org_id"),
        ip,
        _str(client, "user_agent", "client.user_agent"),
        _int(client, "asn", "client.asn"),
        _str(client, "country", "client.country"),
        _str(client, "tls_fp", "client.tls_fp"),
        endpoint,
        _str(request, "model", "request.model"),
        _bool(request, "stream", "request.stream"),
        max_tokens,
        _num(request, "temperature", "request.temperature"),
        _num(request, "top_p", "request.top_p"),
        effort,
        prompt.n_messages,
        prompt.n_user,
        prompt.n_assistant,
        len(tools) if tools else 0,
        prompt.has_image,
        "\n".join(prompt.system_parts) if prompt.system_parts else None,
        prompt.user_text,
        prompt.prompt_chars,
        response_text,
        reasoning_text,
        len(response_text) if response_text else 0,
        len(reasoning_text) if reasoning_text else 0,
        reply.n_tool_calls,
        reply.finish,
        reply.prompt_tokens,
        reply.completion_tokens,
        reply.reasoning_tokens,
        _int(record, "status", "status", INT32_MAX),
        _int(record, "latency_ms", "latency_ms", count=True),
        _dumps(request, "request") if request else None,
        _dumps(response, "response") if response is not None else None,
        _dumps(extra, "<record>") if extra else None,
        n_choices,
        logprobs,
        top_logprobs,
        prompt.cited_call,
        reply.issued_call,
    )


def json_error(raw: bytes, exc: Exception) -> tuple[str, str]:
    """(field, reason) for a line ``orjson`` could not read. Invalid UTF-8 is located (byte offset in the line
    and, when the rest of the line is JSON, the field holding it) instead of orjson's "surrogates not allowed"."""
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as bad:
        field = _field_holding_bad_utf8(raw)
        byte = raw[bad.start:bad.start + 1].hex()
        return field, f"invalid UTF-8 (byte 0x{byte} at offset {bad.start} of the line)"
    return "<record>", f"invalid JSON: {exc}"


def _field_holding_bad_utf8(raw: bytes) -> str:
    """The path of the first string (or key) holding an undecodable byte, or ``<record>``."""
    try:
        value = json.loads(raw.decode("utf-8", "surrogateescape"))
    except (ValueError, RecursionError):
        return "<record>"

    def bad(text: str) -> bool:
        return any("\udc80" <= ch <= "\udcff" for ch in text)

    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, node = stack.pop()
        if isinstance(node, str) and bad(node):
            return path or "<record>"
        if isinstance(node, dict):
            for key, item in reversed(list(node.items())):
                name = key.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")  # printable
                where = f"{path}.{name}" if path else name
                if bad(key):
                    return where
                stack.append((where, item))
        elif isinstance(node, list):
            stack.extend((f"{path}[{i}]", item) for i, item in reversed(list(enumerate(node))))
    return "<record>"


def flatten_json(raw: bytes) -> tuple:
    """One line of a canonical log: ``orjson.loads`` + :func:`flatten`, every failure a :class:`FieldError`.

    orjson reads an integer beyond 64 bits as a float, so a field holding ``2**70`` would be "not an integer";
    such a line is read again with exact integers (``json``) to report what it is: an integer out of range.
    """
    try:
        record = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise FieldError(*json_error(raw, exc)) from None
    try:
        return flatten(record)
    except FieldError as exc:
        if exc.reason != FLOAT_FOR_INT:
            raise
        try:
            flatten(json.loads(raw))
        except FieldError as exact:
            raise exact from None
        except (ValueError, RecursionError):
            pass
        raise


def _dumps(value: Any, field: str) -> str:
    """A body as JSON text; orjson writes at most 254 levels of nesting, and deeper bodies are refused."""
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError as exc:
        if "recursion" in str(exc).lower():
            raise FieldError(field, "nested too deeply to store (more than 254 levels)") from None
        raise FieldError(field, f"cannot be stored as JSON: {exc}") from None  # an object, a huge int, ...


def table_from_rows(rows: list[tuple], schema: pa.Schema) -> pa.Table:
    """Column-wise conversion of validated rows; timestamps arrive as epoch milliseconds."""
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in schema]
    arrays = []
    for field, values in zip(schema, columns, strict=True):
        if pa.types.is_timestamp(field.type):
            arrays.append(pa.array(values, type=pa.int64()).cast(field.type))
        else:
            arrays.append(pa.array(values, type=field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def rows_to_table(rows: list[tuple]) -> pa.Table:
    """Flattened exchange rows as an Arrow table of :data:`EXCHANGE_SCHEMA`."""
    return table_from_rows(rows, EXCHANGE_SCHEMA)


def _load_body(text: str) -> Any:
    """A stored body; ingest's fast path keeps numbers beyond a double's range, which orjson refuses."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def to_record(row: dict[str, Any]) -> dict[str, Any]:
    """Rebuild a canonical record from a stored row (inverse of :func:`flatten`, content permitting)."""
    ts = row["ts"]
    epoch_ms = int(ts.timestamp() * 1000) if isinstance(ts, datetime) else int(ts)
    client = {k: row[c] for k, c in (("ip", "ip"), ("user_agent", "user_agent"), ("asn", "asn"),
                                     ("country", "country"), ("tls_fp", "tls_fp")) if row.get(c) is not None}
    record: dict[str, Any] = {"id": row["id"], "ts": format_ts(epoch_ms), "account_id": row["account_id"]}
    for key in ("api_key_id", "org_id"):
        if row.get(key) is not None:
            record[key] = row[key]
    record["client"] = client
    if row.get("endpoint") is not None:
        record["endpoint"] = row["endpoint"]
    record["request"] = _load_body(row["request_json"]) if row.get("request_json") else {"model": row.get("model")}
    record["response"] = _load_body(row["response_json"]) if row.get("response_json") else None
    for key in ("status", "latency_ms"):
        if row.get(key) is not None:
            record[key] = row[key]
    if row.get("extra_json"):
        record.update(orjson.loads(row["extra_json"]))
    return record
