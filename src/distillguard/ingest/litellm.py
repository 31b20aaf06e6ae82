"""LiteLLM proxy spend logs (``LiteLLM_SpendLogs`` rows) as JSON, JSON Lines or CSV.

Providers and gateways that front their models with the LiteLLM proxy already
keep one ``LiteLLM_SpendLogs`` row per call: who (``user``, ``end_user``,
``team_id``, hashed ``api_key``), from where (``requester_ip_address``), what and
when. Rows arrive as a ``psql``/UI CSV export (JSON columns as strings), as the
``/spend/logs`` API's JSON array (or ``/spend/logs/v2``'s ``{"data": [...]}``),
or as JSON Lines. JSON arrays are split element by element while streaming, so
each row keeps its verbatim bytes and starting line without loading the file.

LiteLLM stores timestamps as naive UTC (Postgres ``timestamp`` without zone), so
a time without an offset is read as UTC. Request content is only present when the
proxy runs with ``store_prompts_in_spend_logs``; it lives in
``proxy_server_request`` (newer versions) or ``messages``.
"""

from __future__ import annotations

import csv
import itertools
import re
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from distillguard.ingest.base import IngestFormat, Line
from distillguard.model.exchange import FieldError, format_ts

DEFAULT_ACCOUNT_FIELDS = ("user", "end_user", "team_id")
_ENDPOINTS = {  # LiteLLM call_type (sync and async) -> OpenAI-style path
    "completion": "/v1/chat/completions",
    "text_completion": "/v1/completions",
    "embedding": "/v1/embeddings",
    "responses": "/v1/responses",
    "anthropic_messages": "/v1/messages",
    "image_generation": "/v1/images/generations",
    "moderation": "/v1/moderations",
}
_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"|[{}\[\]]')
_BOM = b"\xef\xbb\xbf"


def _is_row(obj: Any) -> bool:
    return isinstance(obj, dict) and "request_id" in obj and "call_type" in obj


def _whole_row(line: bytes) -> bool:
    """Whether ``line`` is one complete SpendLogs row (so the file is JSON Lines)."""
    try:
        return _is_row(orjson.loads(line))
    except orjson.JSONDecodeError:
        return False


def _text(value: Any) -> str | None:
    """A string column; CSV NULLs and LiteLLM's ``""`` defaults mean absent."""
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    return text or None


def _int(value: Any, field: str) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise FieldError(field, "expected an integer")
    if isinstance(value, int):
        return value
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise FieldError(field, f"expected an integer, got {value!r}") from None
    if not number.is_integer():
        raise FieldError(field, f"expected an integer, got {value!r}")
    return int(number)


def _json(value: Any, field: str) -> Any:
    """A JSON column: an object/list already, or a JSON string (always so in CSV)."""
    if value is None or isinstance(value, dict | list):
        return value
    if not isinstance(value, str):
        raise FieldError(field, f"expected JSON, got {type(value).__name__}")
    if not value.strip():
        return None
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise FieldError(field, f"invalid JSON: {exc}") from None


def _epoch_ms(value: Any, field: str) -> int:
    """LiteLLM time -> epoch ms; naive times are UTC (LiteLLM writes naive UTC)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value if value > 1e11 else value * 1000)
    if not isinstance(value, str) or not value.strip():
        raise FieldError(field, "required")
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise FieldError(field, f"not a timestamp: {value!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)


def _get(row: dict[str, Any], metadata: dict[str, Any], path: str) -> Any:
    """A column, or ``metadata.<key>`` for a value LiteLLM keeps in the metadata column."""
    if path.startswith("metadata."):
        return metadata.get(path[len("metadata."):])
    return row.get(path)


def _split_json(lines: Iterator[bytes]) -> Iterator[tuple[int, bytes]]:
    """Top-level rows of a JSON array (or of ``{"data": [...]}``), with their start line.

    JSON strings cannot hold a raw newline, so tokenising line by line is exact;
    only one row is held at a time.
    """
    stack: list[tuple[bytes, bytes | None]] = []  # (bracket, key that opened it)
    last_string: bytes | None = None
    parts: list[bytes] = []
    start_line = 0
    for number, line in enumerate(lines, 1):
        cut = 0  # where this line's share of the current row begins
        for match in _TOKEN.finditer(line):
            token = match.group()
            if token[:1] == b'"':
                last_string = token
                continue
            if token in (b"{", b"["):
                if token == b"{" and (stack == [(b"[", None)] or (len(stack) == 2 and stack[0][0] == b"{"
                                                                  and stack[1] == (b"[", b'"data"'))):
                    start_line, cut, parts = number, match.start(), []
                stack.append((token, last_string if token == b"[" else None))
                last_string = None
            else:
                if stack:
                    stack.pop()
                if token == b"}" and start_line and (stack == [(b"[", None)] or (
                        len(stack) == 2 and stack[1] == (b"[", b'"data"'))):
                    parts.append(line[cut:match.end()])
                    yield start_line, b"".join(parts)
                    start_line, parts = 0, []
        if start_line:
            parts.append(line[cut:])
    if start_line:
        yield start_line, b"".join(parts)  # truncated: the caller reports invalid JSON


class LiteLLMFormat(IngestFormat):
    """Options: ``account_field`` (a column, or ``metadata.<key>``; default: user, then
    end_user, then team_id) and ``ip`` (address used when a row has none)."""

    name = "litellm"

    @classmethod
    def sniff(cls, path: Path, head: bytes) -> bool:
        text = head.removeprefix(_BOM).lstrip()
        if text.startswith(b"{"):
            try:
                obj = orjson.loads(text.split(b"\n", 1)[0])
            except orjson.JSONDecodeError:
                obj = None  # pretty-printed, or a first line longer than the head
            if obj is not None:
                data = obj.get("data") if isinstance(obj, dict) else None
                return _is_row(obj) or (isinstance(data, list) and bool(data) and _is_row(data[0]))
        if text.startswith((b"[", b"{")):
            window = text[:8192]
            return b'"request_id"' in window and b'"call_type"' in window and b'"startTime"' in window
        header = text.split(b"\n", 1)[0].decode("utf-8", "replace")
        columns = {c.strip().strip('"') for c in header.split(",")}
        return {"request_id", "call_type", "startTime"} <= columns

    def read(self, paths: Sequence[Path]) -> Iterator[Line]:
        for path in paths:
            source = str(path)
            with self.open(path) as handle:
                head: list[bytes] = []
                for raw in handle:
                    head.append(raw)
                    if raw.strip(b" \t\r\n" + _BOM):
                        break
                if not head or not head[-1].strip(b" \t\r\n" + _BOM):
                    continue
                lines = itertools.chain(head, handle)
                first = head[-1].lstrip().removeprefix(_BOM).lstrip()
                if first.startswith(b"{") and _whole_row(first):
                    # JSON Lines
                    for number, raw in enumerate(lines, 1):
                        if raw.strip():
                            yield self._unit(source, number, raw)
                elif first.startswith((b"{", b"[")):
                    found = False
                    for number, raw in _split_json(lines):
                        found = True
                        yield self._unit(source, number, raw)
                    if not found:
                        yield Line(source, 1, b"".join(head), error="<record>: no SpendLogs rows found "
                                   '(expected a JSON array, {"data": [...]} or JSON Lines)')
                else:
                    yield from self._read_csv(source, lines)

    def _unit(self, source: str, number: int, raw: bytes) -> Line:
        try:
            row = orjson.loads(raw.removeprefix(_BOM))
        except orjson.JSONDecodeError as exc:
            return Line(source, number, raw, error=f"<record>: invalid JSON: {exc}")
        return self._line(source, number, raw, row)

    def _read_csv(self, source: str, lines: Iterator[bytes]) -> Iterator[Line]:
        csv.field_size_limit(max(csv.field_size_limit(), 1 << 30))  # content columns are long
        consumed: list[bytes] = []  # the raw lines of the row being read, for a verbatim Line.raw

        def decoded() -> Iterator[str]:
            for raw in lines:
                consumed.append(raw)
                yield raw.decode("utf-8", "surrogateescape").removeprefix("\ufeff")

        reader = csv.reader(decoded())
        columns: list[str] = []
        for header in reader:
            if any(c.strip() for c in header):
                columns = [c.strip() for c in header]
                break
        consumed.clear()
        line_no = reader.line_num
        for values in reader:
            number = line_no + 1
            raw = b"".join(consumed)
            consumed.clear()
            line_no = reader.line_num
            if not any(v.strip() for v in values):
                continue
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield Line(source, number, raw, error=f"<record>: not valid UTF-8: {exc.reason} at byte {exc.start}")
                continue
            if len(values) != len(columns):
                yield Line(source, number, raw,
                           error=f"<record>: {len(values)} CSV fields, the header has {len(columns)}")
                continue
            yield self._line(source, number, raw, dict(zip(columns, values, strict=True)))

    def _line(self, source: str, number: int, raw: bytes, row: Any) -> Line:
        try:
            return Line(source, number, raw, record=self._record(row))
        except FieldError as exc:
            return Line(source, number, raw, error=f"{exc.field}: {exc.reason}")

    def _record(self, row: Any) -> dict[str, Any]:
        """Map one SpendLogs row to a canonical record."""
        if not isinstance(row, dict):
            raise FieldError("<record>", "expected a SpendLogs row object")
        rid = _text(row.get("request_id"))
        if rid is None:
            raise FieldError("request_id", "required")
        metadata = _json(row.get("metadata"), "metadata")
        metadata = metadata if isinstance(metadata, dict) else {}
        start = _epoch_ms(row.get("startTime"), "startTime")

        if "account_field" in self.options:
            fields: Sequence[str] = (self.options["account_field"],)
        else:
            fields = DEFAULT_ACCOUNT_FIELDS
        account = next((v for f in fields if (v := _text(_get(row, metadata, f)))), None)
        if account is None:
            raise FieldError("account_id", f"row has no {' / '.join(fields)} "
                                           "(choose the account column with --option account_field=)")
        ip = (_text(row.get("requester_ip_address")) or _text(metadata.get("requester_ip_address"))
              or _text(self.options.get("ip")))
        if ip is None:
            raise FieldError("client.ip", "row has no requester_ip_address (or pass --option ip=<address>)")

        model = _text(row.get("model_group")) or _text(row.get("model"))
        request = self._request(row, metadata, model)
        response = _json(row.get("response"), "response")
        if response is not None and not isinstance(response, dict):
            raise FieldError("response", "expected a JSON object")
        outcome = _text(row.get("status")) or _text(metadata.get("status"))
        failed = outcome == "failure"
        error = metadata.get("error_information") if isinstance(metadata.get("error_information"), dict) else None
        usage = {key: value for key in ("prompt_tokens", "completion_tokens", "total_tokens")
                 if (value := _int(row.get(key), key)) is not None}
        if failed:
            response = None
        elif not response:  # content not stored: keep the token counts
            response = {"id": rid, "object": "chat.completion", "model": _text(row.get("model")), "choices": []}
        if response is not None and usage and not isinstance(response.get("usage"), dict):
            response["usage"] = usage
        status: int | None = 200 if not failed else None
        code = str(error.get("error_code") or "") if error else ""
        if failed and code.isdigit():
            status = int(code)

        duration = _int(row.get("request_duration_ms"), "request_duration_ms")
        if duration is None and row.get("endTime") not in (None, ""):
            duration = _epoch_ms(row.get("endTime"), "endTime") - start

        record: dict[str, Any] = {"id": rid, "ts": format_ts(start), "account_id": account}
        api_key = _text(row.get("api_key")) or _text(metadata.get("user_api_key"))
        if api_key:
            record["api_key_id"] = api_key
        org = (_text(row.get("organization_id")) or _text(metadata.get("user_api_key_org_id"))
               or _text(row.get("team_id")))
        if org:
            record["org_id"] = org
        client: dict[str, Any] = {"ip": ip}
        user_agent = _text(metadata.get("user_agent"))
        if user_agent:
            client["user_agent"] = user_agent
        record["client"] = client
        call_type = _text(row.get("call_type")) or ""
        endpoint = _ENDPOINTS.get(call_type.removeprefix("a")) or _ENDPOINTS.get(call_type)
        if endpoint:
            record["endpoint"] = endpoint
        record["request"] = request
        record["response"] = response
        record["status"] = status
        if duration is not None and duration >= 0:
            record["latency_ms"] = duration
        litellm: dict[str, Any] = {"call_type": call_type}
        spend = row.get("spend")
        if spend not in (None, ""):
            try:
                litellm["spend"] = float(spend)
            except (TypeError, ValueError):
                raise FieldError("spend", f"expected a number, got {spend!r}") from None
        for key in ("model", "model_group", "custom_llm_provider", "api_base", "cache_hit",
                    "session_id", "user", "end_user", "team_id", "status"):
            value = row.get(key)
            if value not in (None, ""):
                litellm[key] = value
        tags = _json(row.get("request_tags"), "request_tags")
        if tags:
            litellm["request_tags"] = tags
        if error:
            litellm["error"] = {k: error[k] for k in ("error_code", "error_class", "llm_provider") if k in error}
        record["litellm"] = litellm
        return record

    def _request(self, row: dict[str, Any], metadata: dict[str, Any], model: str | None) -> dict[str, Any]:
        """The request body: ``proxy_server_request`` when stored, else built from ``messages``."""
        body = _json(row.get("proxy_server_request"), "proxy_server_request")
        if not body and metadata.get("proxy_server_request"):
            body = _json(metadata["proxy_server_request"], "metadata.proxy_server_request")
        if isinstance(body, dict) and body:
            request = dict(body)
        else:
            messages = _json(row.get("messages"), "messages")
            if isinstance(messages, list):
                request = {"messages": messages}
            elif isinstance(messages, dict) and isinstance(messages.get("messages"), list):
                request = dict(messages)
            elif messages in (None, {}):
                request = {}
            else:
                raise FieldError("messages", "expected a list of chat messages")
        if model and not request.get("model"):
            request["model"] = model
        return request

