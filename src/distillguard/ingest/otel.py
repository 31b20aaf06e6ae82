"""OpenTelemetry GenAI spans in OTLP JSON: one document per file, or one request per line.

Providers that trace their serving stack with the OTel GenAI semantic conventions
already record each inference call as a span; this maps such a span to an
exchange. Input is the OTLP/JSON encoding of ``ExportTraceServiceRequest``
(``resourceSpans[].scopeSpans[].spans[]``), either a single (possibly
pretty-printed) document or the collector file exporter's JSON Lines.

Only inference spans (``gen_ai.operation.name`` of ``chat``, ``text_completion``
or ``generate_content``) are exchanges; every other span (HTTP, DB, embeddings,
tool and agent spans) yields nothing and is counted in :attr:`OtelFormat.skipped`,
because a trace legitimately holds many of them. An inference span that cannot be
mapped (no account, no client address) is an error Line.

Content comes from the current parts-based attributes (``gen_ai.input.messages``,
``gen_ai.output.messages``, ``gen_ai.system_instructions``), as a JSON string or
a structured OTLP value, with a fallback to the older indexed
``gen_ai.prompt.N.*`` / ``gen_ai.completion.N.*`` attributes.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import orjson

from distillguard.ingest.base import IngestFormat, Line, parse_line
from distillguard.model.exchange import FieldError, format_ts, json_error

INFERENCE_OPERATIONS = frozenset({"chat", "text_completion", "generate_content"})
_ENDPOINTS = {"chat": "/v1/chat/completions", "text_completion": "/v1/completions"}
_FINISH = {"tool_call": "tool_calls"}  # semconv name -> OpenAI name
_REQUEST_PARAMS = (  # semconv request attribute -> OpenAI request field
    ("gen_ai.request.max_tokens", "max_tokens"),
    ("gen_ai.request.temperature", "temperature"),
    ("gen_ai.request.top_p", "top_p"),
    ("gen_ai.request.frequency_penalty", "frequency_penalty"),
    ("gen_ai.request.presence_penalty", "presence_penalty"),
    ("gen_ai.request.seed", "seed"),
    ("gen_ai.request.stop_sequences", "stop"),
    ("gen_ai.request.choice.count", "n"),
)
_LEGACY = re.compile(r"gen_ai\.(prompt|completion)\.(\d+)\.(role|content|finish_reason)$")
_SDK_STATUS = re.compile(r"Error code: ([1-5][0-9][0-9])\b")
DETAILS_EVENT = "gen_ai.client.inference.operation.details"  # newer conventions: all content in one event
_MESSAGE_EVENTS = {"gen_ai.system.message": "system", "gen_ai.user.message": "user",  # v1.30 conventions
                   "gen_ai.assistant.message": "assistant", "gen_ai.tool.message": "tool"}


def _any(value: Any) -> Any:
    """Python value of an OTLP/JSON ``AnyValue`` (int64 arrives as a string)."""
    if not isinstance(value, dict):
        return None
    if "stringValue" in value:
        return value["stringValue"]
    if "boolValue" in value:
        return bool(value["boolValue"])
    if "intValue" in value:
        try:
            return int(value["intValue"])
        except (TypeError, ValueError):
            return None
    if "doubleValue" in value:
        try:
            return float(value["doubleValue"])
        except (TypeError, ValueError):
            return None
    if "arrayValue" in value:
        inner = value["arrayValue"]
        values = inner.get("values") if isinstance(inner, dict) else None
        return [_any(v) for v in values] if isinstance(values, list) else []
    if "kvlistValue" in value:
        inner = value["kvlistValue"]
        values = inner.get("values") if isinstance(inner, dict) else None
        return _attributes(values if isinstance(values, list) else None, "kvlistValue")
    if "bytesValue" in value:
        return value["bytesValue"]
    return None


def _attributes(items: Any, field: str) -> dict[str, Any]:
    if items is None:
        return {}
    if not isinstance(items, list):
        raise FieldError(field, "expected a list of key/value pairs")
    out: dict[str, Any] = {}
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("key"), str):
            out[item["key"]] = _any(item.get("value"))
    return out


def _nanos(value: Any, field: str) -> int:
    try:
        nanos = int(value)
    except (TypeError, ValueError):
        raise FieldError(field, f"expected unix nanoseconds, got {value!r}") from None
    if nanos <= 0:
        raise FieldError(field, "missing or zero")
    return nanos


def _json_attr(attrs: dict[str, Any], key: str) -> Any:
    """A content attribute: a JSON string (the common recording) or an already structured value."""
    value = attrs.get(key)
    if isinstance(value, str):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            raise FieldError(key, f"invalid JSON: {exc}") from None
    return value


def _text_and_media(parts: list, field: str) -> tuple[list[dict], list[dict], list[str], list[dict]]:
    """Split semconv parts into OpenAI content parts, tool calls, reasoning and tool results."""
    content: list[dict] = []
    calls: list[dict] = []
    reasoning: list[str] = []
    results: list[dict] = []
    for i, part in enumerate(parts):
        if not isinstance(part, dict):
            raise FieldError(f"{field}[{i}]", "expected an object")
        kind = part.get("type")
        if kind == "text":
            content.append({"type": "text", "text": str(part.get("content") or "")})
        elif kind == "reasoning":
            reasoning.append(str(part.get("content") or ""))
        elif kind == "tool_call":
            args = part.get("arguments")
            calls.append({"id": part.get("id"), "type": "function",
                          "function": {"name": part.get("name"),
                                       "arguments": args if isinstance(args, str) else orjson.dumps(args).decode()}})
        elif kind == "tool_call_response":
            result = part.get("result", part.get("response"))
            results.append({"role": "tool", "tool_call_id": part.get("id"),
                            "content": result if isinstance(result, str) else orjson.dumps(result).decode()})
        elif kind in ("blob", "uri") and part.get("modality") == "image":
            url = (part.get("uri") if kind == "uri"
                   else f"data:{part.get('mime_type') or 'image/*'};base64,{part.get('content') or ''}")
            content.append({"type": "image_url", "image_url": {"url": url}})
    return content, calls, reasoning, results


def _content(parts: list[dict]) -> str | list[dict] | None:
    """OpenAI ``content``: a plain string unless the message holds images."""
    if not parts:
        return None
    if all(p["type"] == "text" for p in parts):
        return "\n".join(p["text"] for p in parts)
    return parts


def _messages(value: Any, field: str) -> list[dict]:
    """Semconv input messages -> OpenAI chat messages (tool results become ``tool`` messages)."""
    if not isinstance(value, list):
        raise FieldError(field, "expected a list of messages")
    out: list[dict] = []
    for i, message in enumerate(value):
        if not isinstance(message, dict):
            raise FieldError(f"{field}[{i}]", "expected an object")
        parts = message.get("parts")
        if not isinstance(parts, list):
            raise FieldError(f"{field}[{i}].parts", "expected a list")
        content, calls, reasoning, results = _text_and_media(parts, f"{field}[{i}].parts")
        role = message.get("role")
        if results and not content and not calls:
            out.extend(results)
            continue
        converted: dict[str, Any] = {"role": role, "content": _content(content)}
        if message.get("name"):
            converted["name"] = message["name"]
        if calls:
            converted["tool_calls"] = calls
        if reasoning:
            converted["reasoning_content"] = "\n".join(reasoning)
        out.append(converted)
        out.extend(results)
    return out


def _choices(value: Any, field: str) -> list[dict]:
    """Semconv output messages -> OpenAI ``choices``."""
    if not isinstance(value, list):
        raise FieldError(field, "expected a list of messages")
    choices = []
    for i, message in enumerate(value):
        if not isinstance(message, dict) or not isinstance(message.get("parts"), list):
            raise FieldError(f"{field}[{i}]", "expected an object with parts")
        content, calls, reasoning, _ = _text_and_media(message["parts"], f"{field}[{i}].parts")
        converted: dict[str, Any] = {"role": message.get("role") or "assistant", "content": _content(content)}
        if reasoning:
            converted["reasoning_content"] = "\n".join(reasoning)
        if calls:
            converted["tool_calls"] = calls
        finish = message.get("finish_reason")
        choices.append({"index": i, "message": converted,
                        "finish_reason": _FINISH.get(finish, finish) if isinstance(finish, str) else None})
    return choices


def _legacy(attrs: dict[str, Any]) -> tuple[list[dict], list[dict]]:
    """Older indexed attributes (``gen_ai.prompt.0.role`` ...), as written by OpenLLMetry."""
    found: dict[str, dict[int, dict[str, Any]]] = {"prompt": {}, "completion": {}}
    for key, value in attrs.items():
        match = _LEGACY.match(key)
        if match:
            found[match[1]].setdefault(int(match[2]), {})[match[3]] = value
    messages = [{"role": m.get("role"), "content": m.get("content")} for _, m in sorted(found["prompt"].items())]
    completions = [m for _, m in sorted(found["completion"].items())]
    choices = [{"index": i, "message": {"role": m.get("role") or "assistant", "content": m.get("content")},
                "finish_reason": m.get("finish_reason")} for i, m in enumerate(completions)]
    return messages, choices


def _from_events(events: list[dict]) -> tuple[list[dict], list[dict]]:
    """Chat messages and choices from the per-message events of the v1.30 conventions (the default of
    ``opentelemetry-instrumentation-openai-v2``): ``gen_ai.<role>.message`` bodies hold ``content`` (and
    ``tool_calls``, or the tool call ``id``), ``gen_ai.choice`` bodies ``index``, ``finish_reason`` and
    ``message``. Without content capture the bodies hold roles and tool call names only."""
    messages: list[dict] = []
    choices: list[dict] = []
    for event in events:
        body = event["body"] if isinstance(event["body"], dict) else {}
        role = _MESSAGE_EVENTS.get(event["name"])
        if role is not None:
            message: dict[str, Any] = {"role": role, "content": body.get("content")}
            if role == "assistant" and body.get("tool_calls"):
                message["tool_calls"] = body["tool_calls"]
            if role == "tool" and body.get("id") is not None:
                message["tool_call_id"] = body["id"]
            messages.append(message)
        elif event["name"] == "gen_ai.choice":
            reply = body.get("message")
            if not isinstance(reply, dict):
                reply = {}
            message = {"role": reply.get("role") or "assistant", "content": reply.get("content")}
            if reply.get("tool_calls"):
                message["tool_calls"] = reply["tool_calls"]
            finish = body.get("finish_reason")
            index = body.get("index")
            choices.append({"index": index if isinstance(index, int) else len(choices), "message": message,
                            "finish_reason": _FINISH.get(finish, finish) if isinstance(finish, str) else None})
    choices.sort(key=lambda choice: choice["index"])
    return messages, choices


class _EventSpool:
    """GenAI log events by (traceId, spanId), waiting for their span: the events (and their verbatim units) in an
    anonymous temporary file, only their positions in memory, so a big export does not have to fit in memory."""

    def __init__(self) -> None:
        self._file: IO[bytes] | None = None
        self._index: dict[tuple[str, str], list[tuple[int, int, int]]] = {}

    def __enter__(self) -> _EventSpool:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._file is not None:
            self._file.close()

    def add(self, key: tuple[str, str], event: dict, unit: bytes) -> None:
        if self._file is None:
            self._file = tempfile.TemporaryFile()  # noqa: SIM115 (closed by __exit__)
        data = orjson.dumps(event)
        self._file.seek(0, 2)
        self._index.setdefault(key, []).append((self._file.tell(), len(data), len(unit)))
        self._file.write(data)
        self._file.write(unit)

    def _load(self, where: tuple[int, int, int]) -> tuple[dict, bytes]:
        assert self._file is not None
        offset, size, unit_size = where
        self._file.seek(offset)
        data = self._file.read(size + unit_size)
        return orjson.loads(data[:size]), data[size:]

    def take(self, trace_id: Any, span_id: Any) -> tuple[list[dict], list[bytes]]:
        """The events of a span (removed from the spool) and their units, in input order."""
        if not self._index or not isinstance(trace_id, str) or not isinstance(span_id, str):
            return [], []
        found = [self._load(where) for where in self._index.pop((trace_id, span_id), [])]
        return [event for event, _ in found], [unit for _, unit in found]

    def leftovers(self) -> Iterator[Line]:
        """An error line for each event whose span was not in the input."""
        for (trace_id, span_id), wheres in self._index.items():
            for where in wheres:
                event, unit = self._load(where)
                yield Line(event["source"], event["line"], unit,
                           error=f"spanId: GenAI event {event['name']} belongs to span {trace_id}:{span_id}, which "
                                 "is not in the input (pass the traces with the logs in one run)")
        self._index.clear()


def _str_attr(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, str) else str(value)


class OtelFormat(IngestFormat):
    """Options: ``account_attribute`` (default ``enduser.id``; a comma-separated list is tried in order),
    ``account_id`` (for spans with none of them), ``ip_attribute`` (default ``client.address``, then
    ``http.client_ip``; a list too), ``ip`` (for spans with no address), ``api_key_attribute``,
    ``org_attribute``.

    ``skipped`` counts the non-inference spans and non-GenAI log records read so far.
    """

    name = "otel"

    @classmethod
    def sniff(cls, path: Path, head: bytes) -> bool:
        return head.lstrip().startswith(b"{") and (b'"resourceSpans"' in head[:4096]
                                                   or b'"resourceLogs"' in head[:4096])

    def read(self, paths: Sequence[Path]) -> Iterator[Line]:
        """Two passes: GenAI log events are indexed by span first (spooled to a temporary file), then spans
        are read and each takes its events; events whose span never came are error lines at the end."""
        with _EventSpool() as events:
            logs_only: set[tuple[int, int]] = set()  # (file, line) of requests that held only log records
            for fidx, path in enumerate(paths):
                for number, raw, document in self._units(path, b'"resourceLogs"'):
                    if not isinstance(document, dict) or "resourceLogs" not in document:
                        continue  # invalid or not logs: reported in the span pass
                    yield from self._logs(str(path), document, raw, number, events)
                    if "resourceSpans" not in document:
                        logs_only.add((fidx, number or 0))
            for fidx, path in enumerate(paths):
                for number, raw, document in self._units(path, None, skip=logs_only, fidx=fidx):
                    if isinstance(document, Line):
                        yield document
                    else:
                        yield from self._request(str(path), document, raw, number, events)
            yield from events.leftovers()

    def _units(self, path: Path, needle: bytes | None, skip: set[tuple[int, int]] | None = None, fidx: int = 0
               ) -> Iterator[tuple[int | None, bytes, Any]]:
        """(line number or None for a whole document, raw bytes, parsed value or an error Line) of each request
        in a file: the collector's JSON Lines, or one (possibly pretty-printed) document. With ``needle``, only
        requests whose bytes hold it are parsed (the others come as None)."""
        source = str(path)
        with self.open(path) as handle:
            lines = enumerate(handle, 1)
            head: list[bytes] = []
            for item in lines:
                head.append(item[1])
                if item[1].strip():
                    break
            else:
                return  # empty file
            number, raw = item
            try:
                document = orjson.loads(raw)
            except orjson.JSONDecodeError:
                text = b"".join(head) + handle.read()  # one multi-line document
            else:
                # Collector file exporter: one Export*ServiceRequest per line.
                if not (skip and (fidx, number) in skip):
                    yield number, raw, document
                for number, raw in lines:
                    if not raw.strip() or (skip and (fidx, number) in skip):
                        continue
                    if needle is not None and needle not in raw:
                        yield number, raw, None
                        continue
                    parsed = parse_line(source, number, raw)
                    yield number, raw, parsed if parsed.error is not None else parsed.record
                return
        if skip and (fidx, 0) in skip:
            return
        if needle is not None and needle not in text:
            yield None, text, None
            return
        try:
            yield None, text, orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            field, reason = json_error(text, exc)
            yield None, text, Line(source, 1, text, error=f"{field}: {reason}")

    def _logs(self, source: str, document: dict, raw: bytes, number: int | None, events: _EventSpool
              ) -> Iterator[Line]:
        """Index the GenAI events of one ExportLogsServiceRequest by their span; other records are skipped."""
        locate = _Locator(raw) if number is None else None
        resource_logs = document["resourceLogs"]
        if not isinstance(resource_logs, list):
            yield Line(source, number or 1, raw, error="resourceLogs: expected a list")
            return
        for r, rl in enumerate(resource_logs):
            scope_logs = rl.get("scopeLogs") if isinstance(rl, dict) else None
            if not isinstance(scope_logs, list):
                yield Line(source, number or 1, raw, error=f"resourceLogs[{r}]: expected an object with a "
                                                           "scopeLogs list")
                continue
            for s, sl in enumerate(scope_logs):
                records = sl.get("logRecords") if isinstance(sl, dict) else None
                if not isinstance(records, list):
                    yield Line(source, number or 1, raw, error=f"resourceLogs[{r}].scopeLogs[{s}]: expected an "
                                                               "object with a logRecords list")
                    continue
                for i, record in enumerate(records):
                    where = f"resourceLogs[{r}].scopeLogs[{s}].logRecords[{i}]"
                    if not isinstance(record, dict):
                        yield Line(source, number or 1, raw, error=f"{where}: expected an object")
                        continue
                    try:
                        attrs = _attributes(record.get("attributes"), "attributes")
                    except FieldError:
                        attrs = {}
                    name = record.get("eventName") or attrs.get("event.name")  # older SDKs: an attribute
                    if not isinstance(name, str) or not name.startswith("gen_ai."):
                        self.skipped += 1
                        continue
                    trace_id, span_id = record.get("traceId"), record.get("spanId")
                    line = locate(span_id) if locate is not None else number or 1
                    unit = orjson.dumps({"resourceLogs": [{**{k: v for k, v in rl.items() if k != "scopeLogs"},
                                                           "scopeLogs": [{**{k: v for k, v in sl.items()
                                                                             if k != "logRecords"},
                                                                          "logRecords": [record]}]}]})
                    if not (isinstance(trace_id, str) and trace_id and isinstance(span_id, str) and span_id):
                        yield Line(source, line, unit, error=f"spanId: GenAI event {name} has no traceId/spanId, "
                                                             "so it cannot be joined to its span")
                        continue
                    events.add((trace_id, span_id), {"name": name, "body": _any(record.get("body")),
                                                     "attrs": attrs, "source": source, "line": line}, unit)

    def _request(self, source: str, document: Any, raw: bytes, number: int | None, events: _EventSpool
                 ) -> Iterator[Line]:
        """Spans of one ExportTraceServiceRequest. ``number`` is its line, or None for a whole document."""
        locate = _Locator(raw) if number is None else None
        try:
            if not isinstance(document, dict):
                raise FieldError("resourceSpans", "expected an ExportTraceServiceRequest object")
            resource_spans = document.get("resourceSpans")
            if not isinstance(resource_spans, list):
                raise FieldError("resourceSpans", "expected a list (or resourceLogs, for log events)")
        except FieldError as exc:
            yield Line(source, number or 1, raw, error=f"{exc.field}: {exc.reason}")
            return
        for r, rs in enumerate(resource_spans):
            try:
                if not isinstance(rs, dict):
                    raise FieldError(f"resourceSpans[{r}]", "expected an object")
                resource = rs.get("resource") or {}
                resource_attrs = _attributes(resource.get("attributes") if isinstance(resource, dict) else None,
                                             f"resourceSpans[{r}].resource.attributes")
                scope_spans = rs.get("scopeSpans") or []
                if not isinstance(scope_spans, list):
                    raise FieldError(f"resourceSpans[{r}].scopeSpans", "expected a list")
            except FieldError as exc:
                yield Line(source, number or 1, raw, error=f"{exc.field}: {exc.reason}")
                continue
            for s, ss in enumerate(scope_spans):
                where = f"resourceSpans[{r}].scopeSpans[{s}]"
                spans = ss.get("spans") if isinstance(ss, dict) else None
                if not isinstance(spans, list):
                    if not isinstance(ss, dict) or spans is not None:
                        yield Line(source, number or 1, raw, error=f"{where}: expected an object with a spans list")
                    continue
                for i, span in enumerate(spans):
                    if not isinstance(span, dict):
                        yield Line(source, number or 1, raw, error=f"{where}.spans[{i}]: expected an object")
                        continue
                    try:
                        attrs = _attributes(span.get("attributes"), "attributes")
                    except FieldError:
                        attrs = {}
                    found, units = events.take(span.get("traceId"), span.get("spanId"))
                    operation = attrs.get("gen_ai.operation.name")
                    if not isinstance(operation, str) or operation not in INFERENCE_OPERATIONS:
                        self.skipped += 1 + len(found)  # its events are not exchanges either
                        continue
                    unit = orjson.dumps({"resourceSpans": [{**{k: v for k, v in rs.items() if k != "scopeSpans"},
                                                            "scopeSpans": [{**{k: v for k, v in ss.items()
                                                                               if k != "spans"},
                                                                            "spans": [span]}]}]})
                    unit = b"\n".join([unit, *units])  # quarantined with its events: still a valid OTLP file
                    line = locate(span.get("spanId")) if locate is not None else number or 1
                    try:
                        record = self._record(span, attrs, resource_attrs, found)
                    except FieldError as exc:
                        yield Line(source, line, unit, error=f"{exc.field}: {exc.reason}")
                        continue
                    yield Line(source, line, unit, record=record)

    def _attr(self, attrs: dict, resource: dict, key: str) -> str | None:
        """A span attribute, falling back to the resource's (e.g. a per-tenant service)."""
        value = attrs.get(key)
        return _str_attr(value if value is not None else resource.get(key))

    def _first(self, attrs: dict, resource: dict, keys: str) -> tuple[str | None, list[str]]:
        """The first of a comma-separated list of attributes present on the span (or its resource)."""
        names = [key.strip() for key in keys.split(",") if key.strip()]
        for key in names:
            value = self._attr(attrs, resource, key)
            if value is not None:
                return value, names
        return None, names

    def _record(self, span: dict, attrs: dict[str, Any], resource: dict[str, Any], events: list[dict]
                ) -> dict[str, Any]:
        """Map one inference span (and its GenAI log events) to a canonical record."""
        for event in events:
            if event["name"] == DETAILS_EVENT:  # the content attributes, and a copy of the span's
                attrs = {**event["attrs"], **attrs}
        account, names = self._first(attrs, resource, self.options.get("account_attribute") or "enduser.id")
        account = account or self.options.get("account_id") or None
        if account is None:
            raise FieldError("account_id", f"span has no {' or '.join(names)} attribute, on the span or its "
                                           "resource (choose with --option account_attribute=NAME[,NAME...], e.g. "
                                           "service.name, or give a default with --option account_id=)")
        ip_keys = self.options.get("ip_attribute") or "client.address,http.client_ip"
        ip, names = self._first(attrs, resource, ip_keys)
        ip = ip or self.options.get("ip") or None
        if ip is None:
            raise FieldError("client.ip", f"span has no {' or '.join(names)} attribute (client-side "
                                          "instrumentations record none: give the address with --option ip=, "
                                          "or choose an attribute with --option ip_attribute=)")
        span_id = _str_attr(span.get("spanId"))
        trace_id = _str_attr(span.get("traceId"))
        # a span id is only unique within its trace, so it is qualified by the trace id
        rid = _str_attr(attrs.get("gen_ai.response.id")) or (f"{trace_id}:{span_id}" if trace_id and span_id
                                                              else span_id)
        if rid is None:
            raise FieldError("id", "span has neither gen_ai.response.id nor spanId")
        start = _nanos(span.get("startTimeUnixNano"), "startTimeUnixNano")
        end = span.get("endTimeUnixNano")
        latency = (_nanos(end, "endTimeUnixNano") - start) // 1_000_000 if end not in (None, "", "0", 0) else None

        operation = attrs["gen_ai.operation.name"]
        model = _str_attr(attrs.get("gen_ai.request.model"))
        request: dict[str, Any] = {"model": model} if model else {}
        messages: list[dict] = []
        system = _json_attr(attrs, "gen_ai.system_instructions")
        if system is not None:
            if isinstance(system, str):
                system = [{"type": "text", "content": system}]
            if not isinstance(system, list):
                raise FieldError("gen_ai.system_instructions", "expected a list of parts")
            text, _, _, _ = _text_and_media(system, "gen_ai.system_instructions")
            messages.append({"role": "system", "content": _content(text) or ""})
        inputs = _json_attr(attrs, "gen_ai.input.messages")
        legacy_messages, legacy_choices = _legacy(attrs)
        event_messages, event_choices = _from_events(events)
        if inputs is not None:
            messages.extend(_messages(inputs, "gen_ai.input.messages"))
        else:
            messages.extend(event_messages or legacy_messages)
        if messages:
            request["messages"] = messages
        for key, field in _REQUEST_PARAMS:
            if attrs.get(key) is not None:
                request[field] = attrs[key]
        if isinstance(attrs.get("gen_ai.request.stream"), bool):
            request["stream"] = attrs["gen_ai.request.stream"]
        tools = _json_attr(attrs, "gen_ai.tool.definitions")
        if isinstance(tools, list) and tools:
            request["tools"] = [t if "function" in t else {"type": "function", "function": t}
                                for t in tools if isinstance(t, dict)]

        outputs = _json_attr(attrs, "gen_ai.output.messages")
        choices = (_choices(outputs, "gen_ai.output.messages") if outputs is not None
                   else event_choices or legacy_choices)
        finish = attrs.get("gen_ai.response.finish_reasons")
        if not choices and isinstance(finish, list) and finish:
            choices = [{"index": i, "message": {"role": "assistant", "content": None},
                        "finish_reason": _FINISH.get(f, f) if isinstance(f, str) else None}
                       for i, f in enumerate(finish)]
        usage: dict[str, Any] = {}
        prompt = attrs.get("gen_ai.usage.input_tokens", attrs.get("gen_ai.usage.prompt_tokens"))
        completion = attrs.get("gen_ai.usage.output_tokens", attrs.get("gen_ai.usage.completion_tokens"))
        reasoning = attrs.get("gen_ai.usage.reasoning.output_tokens", attrs.get("gen_ai.usage.reasoning_tokens"))
        if isinstance(prompt, int):
            usage["prompt_tokens"] = prompt
        if isinstance(completion, int):
            usage["completion_tokens"] = completion
        if isinstance(prompt, int) and isinstance(completion, int):
            usage["total_tokens"] = prompt + completion
        if isinstance(reasoning, int):
            usage["completion_tokens_details"] = {"reasoning_tokens": reasoning}
        response_model = _str_attr(attrs.get("gen_ai.response.model"))
        response: dict[str, Any] | None = None
        if choices or usage or response_model or attrs.get("gen_ai.response.id"):
            response = {"id": _str_attr(attrs.get("gen_ai.response.id")) or rid, "object": "chat.completion",
                        "created": start // 1_000_000_000, "model": response_model or model, "choices": choices}
            if usage:
                response["usage"] = usage

        span_status = span.get("status")
        if not isinstance(span_status, dict):
            span_status = {}
        failed = span_status.get("code") in (2, "STATUS_CODE_ERROR")
        http_status = attrs.get("http.response.status_code")
        error_type = _str_attr(attrs.get("error.type"))
        sdk_error = _SDK_STATUS.match(str(span_status.get("message") or "")) if failed else None
        status: int | None
        if isinstance(http_status, int):
            status = http_status
        elif error_type and error_type.isdigit():
            status = int(error_type)
        elif sdk_error:  # the openai SDK's APIStatusError, as its instrumentation records it
            status = int(sdk_error[1])
        elif failed or error_type:
            status = None
        else:
            status = 200 if response is not None else None

        record: dict[str, Any] = {"id": rid, "ts": format_ts(start // 1_000_000), "account_id": account}
        for option, field in (("api_key_attribute", "api_key_id"), ("org_attribute", "org_id")):
            if self.options.get(option):
                value = self._attr(attrs, resource, self.options[option])
                if value is not None:
                    record[field] = value
        client: dict[str, Any] = {"ip": ip}
        user_agent = self._attr(attrs, resource, "user_agent.original")
        if user_agent:
            client["user_agent"] = user_agent
        record["client"] = client
        endpoint = _str_attr(attrs.get("url.path")) or _str_attr(attrs.get("http.route")) or _ENDPOINTS.get(operation)
        if endpoint:
            record["endpoint"] = endpoint
        record["request"] = request
        record["response"] = response
        record["status"] = status
        if latency is not None:
            record["latency_ms"] = latency
        otel: dict[str, Any] = {"trace_id": trace_id, "span_id": span_id,
                                "span_name": _str_attr(span.get("name")), "operation": operation,
                                "provider": _str_attr(attrs.get("gen_ai.provider.name", attrs.get("gen_ai.system"))),
                                "conversation_id": _str_attr(attrs.get("gen_ai.conversation.id"))}
        if error_type:
            otel["error_type"] = error_type
        record["otel"] = {k: v for k, v in otel.items() if v is not None}
        return record


class _Locator:
    """Line numbers of spans inside a multi-line document, by finding each span's ``spanId``.

    Spans are visited in document order, so each search starts where the last one ended.
    """

    def __init__(self, text: bytes) -> None:
        self.text = text
        self.pos = 0
        self.line = 1

    def __call__(self, span_id: Any) -> int:
        if not isinstance(span_id, str) or not span_id:
            return self.line
        match = re.compile(rb'"spanId"\s*:\s*"' + re.escape(span_id.encode()) + rb'"').search(self.text, self.pos)
        if match is None:
            return self.line
        self.line += self.text.count(b"\n", self.pos, match.start())
        self.pos = match.start()
        return self.line
