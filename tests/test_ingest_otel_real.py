"""OTel GenAI telemetry as the real ``opentelemetry-instrumentation-openai-v2`` writes it (tests/fixtures/real/otel,
made by its generate.py: the real openai SDK, instrumentation, OTel SDK and OTLP/JSON file exporters).

Three content modes: ``events`` (the instrumentation's default conventions: content in per-message log
events), ``spans`` (content on the spans) and ``details`` (content in one operation-details log event)."""

from __future__ import annotations

import gzip
import importlib.util
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from distillguard.ingest import ingest
from distillguard.ingest.formats import detect_format
from distillguard.ingest.otel import OtelFormat
from distillguard.model import flatten
from distillguard.model.exchange import COLUMNS
from distillguard.store import Store

REAL = Path(__file__).parent / "fixtures" / "real" / "otel"
MODES = ("events", "spans", "details")
# the generator's resource carries the tenant; the client-side instrumentation records no client address
OPTIONS = {"account_attribute": "enduser.id,tenant.id", "ip": "10.20.30.40"}
QUESTION = "Score this proof of the infinitude of primes from 1 to 10 and explain each step."
ANSWER = "Score: 9. The construction of N = p1...pk + 1 is correct."


def _files(directory: Path) -> list[Path]:
    return [directory / "traces.jsonl", directory / "logs.jsonl"]


def _rows(paths: list[Path], **options: str) -> tuple[list[dict], list, OtelFormat]:
    reader = OtelFormat(**options)
    lines = list(reader.read(paths))
    rows = [dict(zip(COLUMNS, flatten(line.record), strict=True)) for line in lines if line.record is not None]
    return rows, [line for line in lines if line.error is not None], reader


def _check(rows: list[dict]) -> None:
    """The five chat calls the generator makes, whatever the content mode."""
    assert len(rows) == 5
    plain, streamed, tool_call, tool_result, failed = rows
    for row in rows:
        assert (row["account_id"], row["ip"], row["endpoint"], row["model"]) == (
            "acct_4821", "10.20.30.40", "/v1/chat/completions", "gpt-4o-mini")
    assert plain["id"] == "chatcmpl-2"
    assert (plain["system_text"], plain["user_text"], plain["response_text"]) == ("You are a terse grader.", QUESTION,
                                                                                  ANSWER)
    assert (plain["n_messages"], plain["temperature"], plain["max_tokens"], plain["finish_reason"]) == (
        2, 0.0, 512, "stop")
    assert (plain["prompt_tokens"], plain["completion_tokens"], plain["status"]) == (33, 17, 200)
    assert plain["latency_ms"] is not None and plain["latency_ms"] >= 0
    assert streamed["response_text"].strip() == ANSWER and streamed["user_text"] == QUESTION
    assert (tool_call["n_tool_calls"], tool_call["finish_reason"], tool_call["user_text"]) == (
        1, "tool_calls", "Who proved it first?")
    messages = orjson.loads(tool_result["request_json"])["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "tool"]
    assert (tool_result["n_messages"], tool_result["n_assistant_turns"], tool_result["response_text"]) == (
        3, 1, ANSWER)
    assert tool_result["prompt_chars"] == len("Who proved it first?") + len("Euclid, Elements IX.20")
    assert (failed["status"], failed["response_json"], failed["user_text"]) == (500, None, "Anyone there?")
    assert orjson.loads(failed["extra_json"])["otel"]["error_type"] == "InternalServerError"


@pytest.mark.parametrize("mode", MODES)
def test_every_content_mode_gives_the_same_exchanges(mode: str) -> None:
    rows, errors, reader = _rows(_files(REAL / mode), **OPTIONS)
    assert not errors, [e.error for e in errors]
    assert reader.skipped == 1  # the embeddings span
    _check(rows)


@pytest.mark.parametrize("mode", MODES)
def test_files_are_recognised_and_ingested(tmp_path: Path, mode: str) -> None:
    for path in _files(REAL / mode):
        if path.stat().st_size:
            assert detect_format(path) == "otel"
    store = Store.open(tmp_path / "store")
    report = ingest([REAL / mode], store, options=OPTIONS)  # the directory: traces, logs (maybe empty), VERSIONS
    assert (report.ingested, report.quarantined, report.skipped) == (5, 0, 1) and report.balanced
    assert report.file_problems == [f"{REAL / mode / 'VERSIONS'}: cannot tell the log format from its content; "
                                    "pass --format (skipped)"]
    assert store.count() == 5


def test_without_options_every_span_is_an_error_naming_the_fix() -> None:
    rows, errors, _ = _rows(_files(REAL / "events"))
    assert not rows and len(errors) == 5
    assert all(e.error.startswith("account_id: span has no enduser.id attribute") for e in errors)
    assert all("--option account_attribute=" in e.error for e in errors)
    rows, errors, _ = _rows(_files(REAL / "events"), account_attribute="tenant.id")
    assert not rows and all(e.error.startswith("client.ip: span has no client.address or http.client_ip attribute")
                            and "--option ip=" in e.error for e in errors)


def test_account_from_a_resource_attribute_or_a_default() -> None:
    rows, _, _ = _rows(_files(REAL / "spans"), account_attribute="service.name", ip="::1")
    assert {row["account_id"] for row in rows} == {"inference-gateway"} and {row["ip"] for row in rows} == {"::1"}
    rows, _, _ = _rows(_files(REAL / "spans"), account_id="acct_default", ip="192.0.2.1")
    assert {row["account_id"] for row in rows} == {"acct_default"}


def test_events_without_their_spans_and_spans_without_their_events(tmp_path: Path) -> None:
    rows, errors, _ = _rows([REAL / "events" / "traces.jsonl"], **OPTIONS)
    assert len(rows) == 5 and not errors  # content capture off looks like this: no text, all else there
    assert rows[0]["user_text"] == "" and rows[0]["prompt_tokens"] == 33
    rows, errors, _ = _rows([REAL / "events" / "logs.jsonl"], **OPTIONS)
    assert not rows and len(errors) == 13  # every GenAI event, each reported at its line
    assert all(e.error.startswith("spanId: GenAI event gen_ai.") and "not in the input" in e.error for e in errors)
    assert errors[0].line == 1 and orjson.loads(errors[0].raw)["resourceLogs"][0]["scopeLogs"][0]["logRecords"]


def test_one_file_holding_traces_and_logs_like_a_shared_collector_exporter(tmp_path: Path) -> None:
    mixed = tmp_path / "otel.jsonl.gz"
    mixed.write_bytes(gzip.compress(b"".join(p.read_bytes() for p in reversed(_files(REAL / "events")))))
    rows, errors, _ = _rows([mixed], **OPTIONS)
    assert not errors
    _check(rows)


def test_quarantined_span_keeps_its_events_and_is_re_ingestible(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "store")
    report = ingest(_files(REAL / "events"), store, options={**OPTIONS, "ip": "999.1.1.1"})
    assert (report.ingested, report.quarantined) == (0, 5)
    errors = [orjson.loads(x) for x in Path(report.quarantine_file).read_bytes().splitlines()]
    assert {(e["field"], e["reason"]) for e in errors} == {("client.ip", "not an IPv4 or IPv6 address: '999.1.1.1'")}
    bad = Path(report.quarantine_file.replace(".errors.jsonl", ".bad"))
    again = Store.open(tmp_path / "again")
    report = ingest([bad], again, fmt="otel", options=OPTIONS)
    assert (report.ingested, report.quarantined) == (5, 0)
    texts = again.connect().execute("SELECT user_text FROM exchanges ORDER BY ts").fetchall()
    assert texts[0] == (QUESTION,)  # the content came back with the span: its events were quarantined with it


def _span_lines(mode: str, **extra_attributes: object) -> bytes:
    out = []
    for line in (REAL / mode / "traces.jsonl").read_bytes().splitlines():
        request = orjson.loads(line)
        for rs in request["resourceSpans"]:
            for ss in rs["scopeSpans"]:
                for span in ss["spans"]:
                    for key, value in extra_attributes.items():
                        kind = {bool: "boolValue", str: "stringValue", int: "intValue"}[type(value)]
                        encoded = str(value) if kind == "intValue" else value  # OTLP/JSON writes int64 as a string
                        span["attributes"].append({"key": key, "value": {kind: encoded}})
        out.append(orjson.dumps(request))
    return b"\n".join(out) + b"\n"


def test_stream_flag_and_client_address_validation(tmp_path: Path) -> None:
    path = tmp_path / "traces.jsonl"
    path.write_bytes(_span_lines("spans", **{"gen_ai.request.stream": True, "client.address": "2001:db8::7"}))
    rows, errors, _ = _rows([path], account_attribute="tenant.id")
    assert not errors and {(row["stream"], row["ip"]) for row in rows} == {(True, "2001:db8::7")}
    path.write_bytes(_span_lines("spans", **{"client.address": "fe80::1%eth0"}))
    store = Store.open(tmp_path / "store")
    report = ingest([path], store, options={"account_attribute": "tenant.id"})
    assert (report.ingested, report.quarantined) == (0, 5)
    assert "client.ip: not an IPv4 or IPv6 address: 'fe80::1%eth0'" in report.errors[0]


def test_choice_count_is_n_and_the_conventions_have_no_logprobs(tmp_path: Path) -> None:
    """``gen_ai.request.choice.count`` is chat's ``n``; the GenAI conventions define no log-probability request
    attributes, so spans leave ``logprobs``/``top_logprobs`` null."""
    path = tmp_path / "traces.jsonl"
    path.write_bytes(_span_lines("spans", **{"gen_ai.request.choice.count": 3}))
    store = Store.open(tmp_path / "store")
    report = ingest([path], store, options={"account_attribute": "tenant.id", "ip": "10.0.0.1"})
    assert (report.ingested, report.quarantined) == (5, 0)
    rows = store.connect().execute("SELECT DISTINCT n_choices, logprobs, top_logprobs FROM exchanges").fetchall()
    assert rows == [(3, None, None)]
    path.write_bytes(_span_lines("spans", **{"gen_ai.request.choice.count": 0}))
    report = ingest([path], Store.open(tmp_path / "other"), options={"account_attribute": "tenant.id",
                                                                     "ip": "10.0.0.1"})
    assert (report.ingested, report.quarantined) == (0, 5)
    assert "request.n: must be a positive integer: 0" in report.errors[0]


def _instrumentation_available() -> bool:
    names = ("openai", "opentelemetry.sdk", "opentelemetry.instrumentation.openai_v2",
             "opentelemetry.exporter.otlp.json.file")
    try:
        return all(importlib.util.find_spec(name) is not None for name in names)
    except ModuleNotFoundError:
        return False


@pytest.mark.skipif(not _instrumentation_available(), reason="the OTel instrumentation packages are not installed")
def test_live_instrumentation_output_is_ingested(tmp_path: Path) -> None:
    """Regenerate the artefacts with the installed real libraries and ingest them: same five exchanges."""
    result = subprocess.run([sys.executable, str(REAL / "generate.py"), str(tmp_path)], capture_output=True,
                            text=True, timeout=300)
    if result.returncode != 0 and "ModuleNotFoundError" in result.stderr:
        pytest.skip(f"instrumentation does not import with the installed versions: {result.stderr[-300:]}")
    assert result.returncode == 0, result.stderr[-2000:]
    for mode in MODES:
        rows, errors, _ = _rows(_files(tmp_path / mode), **OPTIONS)
        assert not errors, [e.error for e in errors]
        _check(rows)
