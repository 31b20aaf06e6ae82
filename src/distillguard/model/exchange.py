"""The canonical exchange: one API request and its response.

Every stage speaks this model. A canonical record (a dict in the shape of
docs/exchange-log.md) is validated once by :func:`flatten`, which returns one
row of :data:`EXCHANGE_SCHEMA`: the columns later stages need, pre-extracted so
detection never re-parses JSON. ``request_json``/``response_json`` keep the full
bodies (unless the store runs with ``--no-content``) so a record can be rebuilt.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import orjson
import pyarrow as pa
import xxhash

REQUIRED = ("id", "ts", "account_id", "client")

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
    ]
)
COLUMNS: tuple[str, ...] = tuple(EXCHANGE_SCHEMA.names)
CONTENT_COLUMNS = ("system_text", "user_text", "response_text", "reasoning_text", "request_json", "response_json")
_KNOWN_TOP = {"id", "ts", "account_id", "api_key_id", "org_id", "client", "endpoint", "request", "response",
              "status", "latency_ms"}


class FieldError(ValueError):
    """A record failed validation; ``field`` names the offending field."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"field '{field}': {reason}")
        self.field = field
        self.reason = reason


def parse_ts(value: Any, field: str = "ts") -> int:
    """RFC 3339 timestamp -> epoch milliseconds (UTC). Naive times are rejected."""
    if not isinstance(value, str):
        raise FieldError(field, f"expected an RFC 3339 string, got {type(value).__name__}")
    text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise FieldError(field, f"not an RFC 3339 timestamp: {value!r}") from None
    if parsed.tzinfo is None:
        raise FieldError(field, f"timestamp has no UTC offset: {value!r}")
    return int(parsed.timestamp() * 1000)


def format_ts(epoch_ms: int) -> str:
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


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


def _int(record: dict, key: str, field: str, limit: int = INT64_MAX) -> int | None:
    value = record.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise FieldError(field, f"expected an integer, got {type(value).__name__}")
    if not -limit - 1 <= value <= limit:  # JSON integers are unbounded; the stored column is not
        raise FieldError(field, f"integer out of range: {value}")
    return value


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


def flatten(record: Any) -> tuple:
    """Validate a canonical record and return its row, in :data:`COLUMNS` order.

    Raises :class:`FieldError` naming the first offending field.
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

    request = record.get("request")
    if request is None:
        request = {}
    elif not isinstance(request, dict):
        raise FieldError("request", "expected an object")
    messages = request.get("messages") or []
    if not isinstance(messages, list):
        raise FieldError("request.messages", "expected a list")
    system_parts: list[str] = []
    user_text = ""
    n_user = n_assistant = 0
    prompt_chars = 0
    has_image = False
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise FieldError(f"request.messages[{i}]", "expected an object")
        text, image = _content_text(message.get("content"), f"request.messages[{i}].content")
        has_image = has_image or image
        prompt_chars += len(text)
        role = message.get("role")
        if role in ("system", "developer"):
            system_parts.append(text)
        elif role == "user":
            n_user += 1
            user_text = text
        elif role == "assistant":
            n_assistant += 1
    max_tokens = _int(request, "max_completion_tokens", "request.max_completion_tokens")
    if max_tokens is None:
        max_tokens = _int(request, "max_tokens", "request.max_tokens")
    tools = request.get("tools")
    if tools is not None and not isinstance(tools, list):
        raise FieldError("request.tools", "expected a list")

    response = record.get("response")
    response_text = reasoning_text = finish = None
    n_tool_calls = 0
    prompt_tokens = completion_tokens = reasoning_tokens = None
    if response is not None:
        if not isinstance(response, dict):
            raise FieldError("response", "expected an object or null")
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
            response_text, _ = _content_text(message.get("content"), "response.choices[0].message.content")
            reasoning = message.get("reasoning_content")
            reasoning_text = reasoning if isinstance(reasoning, str) else None
            calls = message.get("tool_calls")
            n_tool_calls = len(calls) if isinstance(calls, list) else 0
            finish = choice.get("finish_reason")
            finish = finish if isinstance(finish, str) else None
        usage = response.get("usage")
        if usage is not None:
            if not isinstance(usage, dict):
                raise FieldError("response.usage", "expected an object")
            prompt_tokens = _int(usage, "prompt_tokens", "response.usage.prompt_tokens")
            completion_tokens = _int(usage, "completion_tokens", "response.usage.completion_tokens")
            details = usage.get("completion_tokens_details")
            if isinstance(details, dict):
                reasoning_tokens = _int(details, "reasoning_tokens",
                                        "response.usage.completion_tokens_details.reasoning_tokens")

    extra = {k: v for k, v in record.items() if k not in _KNOWN_TOP}
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
        _str(record, "endpoint", "endpoint"),
        _str(request, "model", "request.model"),
        bool(request.get("stream", False)),
        max_tokens,
        _num(request, "temperature", "request.temperature"),
        _num(request, "top_p", "request.top_p"),
        _str(request, "reasoning_effort", "request.reasoning_effort"),
        len(messages),
        n_user,
        n_assistant,
        len(tools) if tools else 0,
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
        _int(record, "status", "status", INT32_MAX),
        _int(record, "latency_ms", "latency_ms"),
        _dumps(request, "request") if request else None,
        _dumps(response, "response") if response is not None else None,
        _dumps(extra, "<record>") if extra else None,
    )


def _dumps(value: Any, field: str) -> str:
    """A body as JSON text; orjson writes at most 254 levels of nesting, and deeper bodies are refused."""
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:
        raise FieldError(field, "nested too deeply to store (more than 254 levels)") from None


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
