"""The provider-log adapters (OpenAI Batch, OTel GenAI spans, LiteLLM spend logs) on fixtures in their real shape."""

from __future__ import annotations

import gzip
import itertools
import random
from pathlib import Path

import orjson
import pytest

from conftest import make_record
from distillguard.ingest import Line, ingest
from distillguard.ingest.formats import FORMATS, UnknownFormat, detect_format
from distillguard.ingest.litellm import LiteLLMFormat
from distillguard.ingest.openai_batch import OpenAIBatchFormat
from distillguard.ingest.otel import OtelFormat
from distillguard.model import flatten
from distillguard.model.exchange import COLUMNS
from distillguard.store import Store

FIXTURES = Path(__file__).parent / "fixtures" / "ingest"
BATCH_IN = FIXTURES / "batch_input.jsonl"
BATCH_OUT = FIXTURES / "batch_output.jsonl"
BATCH_ERR = FIXTURES / "batch_errors.jsonl"
OTEL_DOC = FIXTURES / "otel_traces.json"
OTEL_LINES = FIXTURES / "otel_traces.jsonl"
LITELLM_CSV = FIXTURES / "litellm_spend_logs.csv"
LITELLM_JSON = FIXTURES / "litellm_spend_logs.json"
BATCH_OPTIONS = {"account_id": "acct_batch_1", "ip": "198.51.100.4"}


def _row(line: Line) -> dict:
    """The flattened row of a good Line (asserting it passes central validation)."""
    assert line.record is not None, line.error
    return dict(zip(COLUMNS, flatten(line.record), strict=True))


def _split(lines: list[Line]) -> tuple[dict[str, dict], list[Line]]:
    good = {line.record["id"]: _row(line) for line in lines if line.record is not None}
    return good, [line for line in lines if line.error is not None]


def _file_line(path: Path, number: int) -> bytes:
    return path.read_bytes().splitlines(keepends=True)[number - 1]


# --- detection ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "name"), [
    (BATCH_IN, "openai-batch"), (BATCH_OUT, "openai-batch"), (BATCH_ERR, "openai-batch"),
    (OTEL_DOC, "otel"), (OTEL_LINES, "otel"), (LITELLM_CSV, "litellm"), (LITELLM_JSON, "litellm"),
])
def test_detect_format_recognises_each_fixture(path: Path, name: str) -> None:
    assert detect_format(path) == name


def test_detect_format_still_recognises_canonical_and_compressed(tmp_path: Path, write_jsonl) -> None:
    assert detect_format(write_jsonl("canon.jsonl", [make_record(i) for i in range(3)])) == "canonical"
    packed = tmp_path / "input.jsonl.gz"
    packed.write_bytes(gzip.compress(BATCH_IN.read_bytes()))
    assert detect_format(packed) == "openai-batch"


def test_a_malformed_first_line_does_not_hide_a_canonical_log(tmp_path: Path, write_jsonl) -> None:
    path = write_jsonl("first-bad.jsonl", [b'{"id": "broken', b"", *[make_record(i) for i in range(3)]])
    assert detect_format(path) == "canonical"
    report = ingest([path], Store.open(tmp_path / "store"))
    assert (report.read, report.ingested, report.quarantined) == (4, 3, 1)
    assert report.errors[0].startswith(f"{path}:1: <record>: invalid JSON")
    with pytest.raises(UnknownFormat):
        detect_format(write_jsonl("junk.jsonl", [b"not a log", b'{"hello": 1}']))


def test_registry_names() -> None:
    assert {"openai-batch", "otel", "litellm"} <= set(FORMATS)


# --- OpenAI Batch ------------------------------------------------------------------------------


def _shuffled_output(tmp_path: Path, seed: int) -> Path:
    lines = BATCH_OUT.read_bytes().splitlines(keepends=True)
    random.Random(seed).shuffle(lines)
    path = tmp_path / f"output-{seed}.jsonl"
    path.write_bytes(b"".join(lines))
    return path


def test_batch_join_is_independent_of_file_and_line_order(tmp_path: Path) -> None:
    outputs = [BATCH_OUT, _shuffled_output(tmp_path, 1), _shuffled_output(tmp_path, 2)]
    results = []
    for output in outputs:
        for order in itertools.permutations([BATCH_IN, output, BATCH_ERR]):
            lines = list(OpenAIBatchFormat(**BATCH_OPTIONS, ts="2026-02-24T00:00:00Z").read(list(order)))
            good, bad = _split(lines)
            results.append(({k: (v["status"], v["response_text"]) for k, v in good.items()},
                            sorted(line.error for line in bad)))
    assert all(result == results[0] for result in results)
    good, errors = results[0]
    assert len(good) == 5 and len(errors) == 2


def test_batch_field_mapping() -> None:
    lines = list(OpenAIBatchFormat(**BATCH_OPTIONS, api_key_id="key_b1", batch_id="batch_abc").read(
        [BATCH_OUT, BATCH_IN]))
    good, _ = _split(lines)
    row = good["a3f1c29e8b7d4e6fa0b1c2d3e4f50617"]  # response.request_id
    assert row["ts"] == 1771855391000  # response.body.created
    assert (row["account_id"], row["ip"], row["api_key_id"]) == ("acct_batch_1", "198.51.100.4", "key_b1")
    assert (row["endpoint"], row["model"], row["max_tokens"], row["reasoning_effort"]) == (
        "/v1/chat/completions", "o4-mini", 4096, "high")
    assert (row["prompt_tokens"], row["completion_tokens"], row["reasoning_tokens"]) == (38, 612, 448)
    assert row["system_text"].startswith("You are an expert competition mathematician")
    assert row["user_text"] == "Prove that the sum of the first n odd numbers is n^2."
    assert row["response_text"].startswith("Let the k-th odd number be 2k-1")
    assert (row["status"], row["finish_reason"]) == (200, "stop")
    extra = orjson.loads(row["extra_json"])["batch"]
    assert extra == {"custom_id": "task-0001", "batch_id": "batch_abc",
                     "request_id": "batch_req_68a21c9e1f0b84190a7d3e52b61c4f1"}


def test_batch_raw_is_the_verbatim_input_and_output_lines() -> None:
    lines = list(OpenAIBatchFormat(**BATCH_OPTIONS).read([BATCH_IN, BATCH_OUT]))
    joined = next(line for line in lines if line.record and line.record["batch"]["custom_id"] == "task-0002")
    assert joined.source == str(BATCH_OUT) and joined.line == 4
    assert joined.raw == _file_line(BATCH_IN, 2) + _file_line(BATCH_OUT, 4)
    # the quarantined pair is itself a valid Batch file
    assert [orjson.loads(x)["custom_id"] for x in joined.raw.splitlines()] == ["task-0002", "task-0002"]


def test_batch_bad_units_are_error_lines_naming_the_field() -> None:
    lines = list(OpenAIBatchFormat(**BATCH_OPTIONS).read([BATCH_IN, BATCH_OUT, BATCH_ERR]))
    errors = {(Path(line.source).name, line.line): line.error for line in lines if line.error}
    assert errors[("batch_input.jsonl", 4)].startswith("body: ")
    assert errors[("batch_output.jsonl", 1)] == (
        "custom_id: output line has no input line with custom_id 'task-9999'")
    # a 400 and an expired request carry no response.body.created: ts must come from --option ts
    assert errors[("batch_output.jsonl", 3)].startswith("ts: ") and "task-0004" in errors[("batch_output.jsonl", 3)]
    assert errors[("batch_errors.jsonl", 1)].startswith("ts: ")
    assert len(lines) == 7  # nothing dropped: 6 input lines + 5 output + 1 error line -> 7 units


def test_batch_error_objects_map_to_status_and_null_response() -> None:
    lines = list(OpenAIBatchFormat(**BATCH_OPTIONS, ts="2026-02-24T00:00:00Z").read([BATCH_IN, BATCH_OUT, BATCH_ERR]))
    by_cid = {line.record["batch"]["custom_id"]: line.record for line in lines if line.record}
    rejected = by_cid["task-0004"]
    assert (rejected["status"], rejected["response"]) == (400, None)
    assert rejected["batch"]["error"]["type"] == "invalid_request_error"
    expired = by_cid["task-0005"]
    assert (expired["status"], expired["response"], expired["id"]) == (None, None, "batch:task-0005")
    assert expired["batch"]["error"]["code"] == "batch_expired"
    assert all(flatten(record) for record in by_cid.values())


def test_batch_inputs_without_output_need_a_ts() -> None:
    lines = list(OpenAIBatchFormat(**BATCH_OPTIONS).read([BATCH_IN]))
    assert all(line.error for line in lines)
    assert {line.error.split(":")[0] for line in lines} == {"ts", "body"}
    lines = list(OpenAIBatchFormat(**BATCH_OPTIONS, ts="2026-02-24T00:00:00Z").read([BATCH_IN]))
    good, bad = _split(lines)
    assert len(good) == 5 and [line.line for line in bad] == [4]
    assert all(row["status"] is None and row["response_text"] is None for row in good.values())
    bad_ts = list(OpenAIBatchFormat(**BATCH_OPTIONS, ts="yesterday").read([BATCH_IN]))
    assert all(line.error.startswith(("ts: option ts", "body:")) for line in bad_ts)


def test_batch_account_and_ip_come_from_options_or_body() -> None:
    lines = list(OpenAIBatchFormat(ip="198.51.100.4").read([BATCH_IN, BATCH_OUT]))
    accounts = {line.record["batch"]["custom_id"]: line.record["account_id"] for line in lines if line.record}
    assert accounts == {"task-0002": "acct_meta_77"}  # body.metadata.account_id
    assert sum(1 for line in lines if line.error and line.error.startswith("account_id: ")) == 2
    no_ip = list(OpenAIBatchFormat(account_id="acct_x").read([BATCH_IN, BATCH_OUT]))
    assert sum(1 for line in no_ip if line.error and line.error.startswith("client.ip: ")) == 3


def test_batch_compressed_input_is_spooled(tmp_path: Path) -> None:
    packed = tmp_path / "input.jsonl.gz"
    packed.write_bytes(gzip.compress(BATCH_IN.read_bytes()))
    plain = [(line.line, line.raw, line.record) for line in OpenAIBatchFormat(**BATCH_OPTIONS).read(
        [BATCH_IN, BATCH_OUT])]
    spooled = [(line.line, line.raw, line.record) for line in OpenAIBatchFormat(**BATCH_OPTIONS).read(
        [packed, BATCH_OUT])]
    assert plain == spooled


# --- OpenTelemetry GenAI spans -----------------------------------------------------------------


def test_otel_document_maps_inference_spans_and_skips_the_rest() -> None:
    reader = OtelFormat()
    lines = list(reader.read([OTEL_DOC]))
    good, bad = _split(lines)
    assert reader.skipped == 2  # the HTTP server span and the embeddings span
    assert set(good) == {"chatcmpl-CA91xYz7Qm2LpT0vK", "chatcmpl-CA92aBc8Rn3MqU1wL"}
    row = good["chatcmpl-CA91xYz7Qm2LpT0vK"]
    assert (row["account_id"], row["ip"], row["user_agent"]) == ("acct_7f3a", "198.51.100.23", "OpenAI/Python 1.61.0")
    assert row["ts"] == 1771855391253 and row["latency_ms"] == 4170
    assert (row["model"], row["max_tokens"], row["temperature"]) == ("o4-mini", 4096, 1.0)
    assert (row["prompt_tokens"], row["completion_tokens"], row["reasoning_tokens"]) == (52, 733, 512)
    assert row["system_text"] == "You are a meticulous olympiad coach. Reveal your full chain of thought."
    assert row["user_text"] == "How many primes are there below 100? Explain."
    assert row["response_text"] == "There are 25 primes below 100."
    assert row["reasoning_text"].startswith("List primes: 2,3,5,7")
    assert (row["finish_reason"], row["status"], row["endpoint"]) == ("stop", 200, "/v1/chat/completions")
    assert orjson.loads(row["response_json"])["model"] == "o4-mini-2025-04-16"
    tools = good["chatcmpl-CA92aBc8Rn3MqU1wL"]
    assert (tools["n_tool_calls"], tools["finish_reason"], tools["n_messages"]) == (1, "tool_calls", 4)
    assert [m["role"] for m in orjson.loads(tools["request_json"])["messages"]] == ["user", "assistant", "tool", "user"]


def test_otel_span_without_account_is_an_error_line_at_its_span() -> None:
    lines = list(OtelFormat().read([OTEL_DOC]))
    [bad] = [line for line in lines if line.error]
    assert bad.error.startswith("account_id: ") and "enduser.id" in bad.error
    assert b'"d4f6b9a2e3c5b7a8"' in _file_line(OTEL_DOC, bad.line)  # the line of the span's spanId
    # raw is the span in a compact envelope: re-reading the quarantined unit gives the same verdict
    envelope = orjson.loads(bad.raw)
    assert envelope["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["spanId"] == "d4f6b9a2e3c5b7a8"


def test_otel_quarantined_unit_is_re_ingestible(tmp_path: Path) -> None:
    bad = next(line for line in OtelFormat().read([OTEL_DOC]) if line.error)
    path = tmp_path / "quarantine.jsonl"
    path.write_bytes(bad.raw + b"\n")
    assert detect_format(path) == "otel"
    [again] = list(OtelFormat().read([path]))
    assert again.error == bad.error and again.line == 1


def test_otel_file_exporter_lines() -> None:
    reader = OtelFormat()
    lines = list(reader.read([OTEL_LINES]))
    assert [(line.line, line.error.split(":")[0] if line.error else "ok") for line in lines] == [
        (1, "account_id"), (2, "<record>"), (3, "ok"), (3, "ok"), (3, "ok")]
    good, _ = _split(lines)
    legacy = good["0af7651916cd43dd8448eb211c80319c:2b3c4d5e6f708192"]  # no response id: traceId:spanId
    assert (legacy["system_text"], legacy["user_text"], legacy["response_text"]) == (
        "Be brief.", "Capital of Japan?", "Tokyo.")
    assert (legacy["prompt_tokens"], legacy["completion_tokens"]) == (25, 9)
    assert orjson.loads(legacy["extra_json"])["otel"]["provider"] == "openai"  # from gen_ai.system
    image = good["0af7651916cd43dd8448eb211c80319c:3c4d5e6f708192a3"]  # structured (non-string) attributes
    assert image["has_image"] and image["user_text"] == "Describe this image." and image["response_text"]
    failed = good["0af7651916cd43dd8448eb211c80319c:4d5e6f708192a3b4"]
    assert (failed["status"], failed["response_json"]) == (429, None)


def test_otel_account_and_ip_attribute_options() -> None:
    lines = list(OtelFormat(account_attribute="app.account").read([OTEL_LINES]))
    row = _row(lines[0])
    assert (row["account_id"], row["ip"], row["user_agent"]) == ("acct_team_42", "203.0.113.77", "curl/8.5.0")
    assert (row["model"], row["max_tokens"], row["finish_reason"]) == ("aurora-2", 2048, "length")
    lines = list(OtelFormat(ip_attribute="net.peer.ip").read([OTEL_DOC]))
    assert [line.error.split(":")[0] for line in lines] == ["client.ip", "client.ip", "account_id"]


# --- LiteLLM spend logs --------------------------------------------------------------------------


def test_litellm_csv_export() -> None:
    lines = list(LiteLLMFormat().read([LITELLM_CSV]))
    good, bad = _split(lines)
    row = good["chatcmpl-9f1c2a7e-3b4d-4e5f-8a9b-0c1d2e3f4a5b"]
    assert row["ts"] == 1771855391250  # naive "2026-02-23 14:03:11.25" read as UTC
    assert (row["account_id"], row["ip"], row["org_id"]) == ("acct_4471", "203.0.113.9", "org_acme")
    assert row["api_key_id"] == "88dc28d0f030c55ed4ab77ed8faf098196cb1c05df778539800c9f1243fe6b4b"
    assert (row["model"], row["max_tokens"], row["temperature"], row["latency_ms"]) == (
        "aurora-2-reasoning", 8192, 0.6, 8481)
    assert (row["prompt_tokens"], row["completion_tokens"], row["reasoning_tokens"]) == (96, 749, 610)
    assert row["system_text"].startswith("You are a teacher model")
    assert row["user_text"].startswith("A train leaves at 3pm")
    assert row["response_text"] == "The second train catches up at 8pm."
    assert row["reasoning_text"].startswith("At 4pm the first train is 80 km ahead")
    litellm = orjson.loads(row["extra_json"])["litellm"]
    assert litellm["spend"] == 0.0042135 and litellm["request_tags"] == ["distill-audit"]

    no_content = good["chatcmpl-1c7e9a3b-5d2f-4a8e-b6c4-9e0f1a2b3c4d"]
    assert (no_content["account_id"], no_content["model"]) == ("cust_991", "aurora-2")  # end_user; model_group
    assert (no_content["prompt_tokens"], no_content["completion_tokens"], no_content["latency_ms"]) == (42, 188, 2552)
    failed = good["chatcmpl-77d0e4a1-2b3c-4d5e-8f90-a1b2c3d4e5f6"]
    assert (failed["status"], failed["response_json"]) == (429, None)

    [error] = bad
    assert error.line == 5 and error.error.startswith("account_id: ")
    assert error.raw == _file_line(LITELLM_CSV, 5)  # the row's original text


def test_litellm_account_field_option() -> None:
    lines = list(LiteLLMFormat(account_field="team_id").read([LITELLM_CSV]))
    assert [line.record["account_id"] if line.record else None for line in lines] == [
        "team_research", None, "team_research", None]
    lines = list(LiteLLMFormat(account_field="metadata.user_api_key_user_id").read([LITELLM_CSV]))
    assert lines[0].record["account_id"] == "acct_4471"


def test_litellm_json_array() -> None:
    lines = list(LiteLLMFormat().read([LITELLM_JSON]))
    elements = orjson.loads(LITELLM_JSON.read_bytes())
    assert [orjson.loads(line.raw) for line in lines] == elements  # raw is each element, verbatim
    assert all(_file_line(LITELLM_JSON, line.line).strip() == b"{" for line in lines)  # where each starts
    good, bad = _split(lines)
    row = good["chatcmpl-AbC123def456GhI789jkl"]
    assert (row["account_id"], row["org_id"], row["ip"]) == ("team_ops", "team_ops", "192.0.2.200")  # team_id
    assert row["ts"] == 1771859400118 and row["latency_ms"] == 3284
    assert row["user_text"] == "Write a haiku about gradient descent."  # `messages` as a JSON list
    assert row["response_text"].startswith("Down the loss valley")
    offset = good["chatcmpl-Q1w2E3r4T5y6U7i8O9p0"]
    assert offset["ts"] == 1771860030000 and offset["endpoint"] == "/v1/chat/completions"
    [error] = bad
    assert error.error.startswith("startTime: ") and error.line == lines[1].line


def test_litellm_jsonl_and_v2_wrapper_match_the_array(tmp_path: Path) -> None:
    elements = orjson.loads(LITELLM_JSON.read_bytes())
    jsonl = tmp_path / "spend.jsonl"
    jsonl.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in elements))
    wrapped = tmp_path / "spend_v2.json"
    wrapped.write_bytes(orjson.dumps({"data": elements, "total": 3, "page": 1, "page_size": 50, "total_pages": 1},
                                     option=orjson.OPT_INDENT_2))
    expected = [(line.record, line.error) for line in LiteLLMFormat().read([LITELLM_JSON])]
    for path in (jsonl, wrapped):
        assert detect_format(path) == "litellm"
        assert [(line.record, line.error) for line in LiteLLMFormat().read([path])] == expected
    assert [line.line for line in LiteLLMFormat().read([jsonl])] == [1, 2, 3]


def test_litellm_ip_option_and_truncated_array(tmp_path: Path) -> None:
    row = orjson.loads(LITELLM_JSON.read_bytes())[0]
    row["requester_ip_address"] = None
    row["metadata"]["requester_ip_address"] = None
    path = tmp_path / "noip.json"
    path.write_bytes(orjson.dumps([row]))
    assert next(LiteLLMFormat().read([path])).error.startswith("client.ip: ")
    assert next(LiteLLMFormat(ip="10.0.0.1").read([path])).record["client"]["ip"] == "10.0.0.1"
    truncated = tmp_path / "cut.json"
    truncated.write_bytes(LITELLM_JSON.read_bytes()[:-400])
    lines = list(LiteLLMFormat().read([truncated]))
    assert lines[-1].error.startswith("<record>: invalid JSON")


# --- token distribution parameters (n, logprobs, top_logprobs) in every format ------------------


_PARAMS = ("n_choices", "logprobs", "top_logprobs")


def _stored_params(store: Store) -> dict[str, tuple]:
    rows = store.connect().execute(f"SELECT id, {', '.join(_PARAMS)} FROM exchanges").fetchall()
    return {row[0]: tuple(row[1:]) for row in rows}


def test_batch_request_parameters_are_columns(tmp_path: Path) -> None:
    """Chat, legacy Completions and Responses bodies of one batch; a bad value is an error line naming the field."""
    bodies = {
        "chat": ("/v1/chat/completions", {"model": "m", "messages": [{"role": "user", "content": "q"}], "n": 4,
                                          "logprobs": True, "top_logprobs": 20}),
        "plain": ("/v1/chat/completions", {"model": "m", "messages": [{"role": "user", "content": "q"}]}),
        "legacy": ("/v1/completions", {"model": "m", "prompt": "q", "logprobs": 5, "n": 2}),
        "responses": ("/v1/responses", {"model": "m", "input": "q", "top_logprobs": 3,
                                        "include": ["message.output_text.logprobs"]}),
        "bad": ("/v1/chat/completions", {"model": "m", "messages": [{"role": "user", "content": "q"}],
                                         "top_logprobs": 25}),
    }
    inputs = [{"custom_id": cid, "method": "POST", "url": url, "body": body} for cid, (url, body) in bodies.items()]
    path = tmp_path / "batch_input.jsonl"
    path.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in inputs))
    store = Store.open(tmp_path / "store")
    report = ingest([path], store, options={**BATCH_OPTIONS, "ts": "2026-02-24T00:00:00Z"})
    assert (report.ingested, report.quarantined) == (4, 1)
    assert "request.top_logprobs: must be an integer from 0 to 20: 25" in report.errors[0]
    assert _stored_params(store) == {"batch:chat": (4, True, 20), "batch:plain": (None, None, None),
                                     "batch:legacy": (2, True, 5), "batch:responses": (None, True, 3)}


def test_litellm_request_parameters_come_from_the_stored_request(tmp_path: Path) -> None:
    """The request body LiteLLM keeps (``proxy_server_request``, with ``store_prompts_in_spend_logs``) holds them;
    a row without it has none."""
    rows = orjson.loads(LITELLM_JSON.read_bytes())
    with_body = dict(rows[0])
    with_body["proxy_server_request"] = orjson.dumps({
        "model": "gpt-4o-mini", "messages": [{"role": "user", "content": "q"}], "n": 3, "logprobs": True,
        "top_logprobs": 10}).decode()
    in_metadata = dict(rows[2], request_id="from-metadata")
    in_metadata["metadata"] = {**in_metadata["metadata"],
                               "proxy_server_request": orjson.dumps({"model": "x", "top_logprobs": 2}).decode()}
    path = tmp_path / "spend.json"
    path.write_bytes(orjson.dumps([with_body, rows[0] | {"request_id": "without"}, in_metadata]))
    store = Store.open(tmp_path / "store")
    report = ingest([path], store)
    assert (report.ingested, report.quarantined) == (3, 0), report.errors
    assert _stored_params(store) == {"chatcmpl-AbC123def456GhI789jkl": (3, True, 10), "without": (None, None, None),
                                     "from-metadata": (None, None, 2)}


# --- through the pipeline ------------------------------------------------------------------------


@pytest.mark.parametrize(("paths", "options", "ingested", "quarantined"), [
    ([BATCH_OUT, BATCH_IN, BATCH_ERR], BATCH_OPTIONS, 3, 4),
    ([OTEL_DOC, OTEL_LINES], {}, 5, 3),
    ([LITELLM_CSV, LITELLM_JSON], {}, 5, 2),
])
def test_pipeline_ingests_and_quarantines_verbatim(tmp_path: Path, paths: list[Path], options: dict,
                                                   ingested: int, quarantined: int) -> None:
    store = Store.open(tmp_path / "store")
    report = ingest(paths, store, options=options)
    assert (report.ingested, report.quarantined) == (ingested, quarantined) and report.balanced
    assert store.count() == ingested
    errors = [orjson.loads(x) for x in Path(report.quarantine_file).read_bytes().splitlines()]
    assert all(e["field"] != "<record>" or "invalid JSON" in e["reason"] for e in errors)


def test_batch_join_at_scale_with_shuffled_outputs(tmp_path: Path) -> None:
    n = 2000
    inputs = [orjson.dumps({"custom_id": f"r{i}", "method": "POST", "url": "/v1/chat/completions", "body": {
        "model": "m", "messages": [{"role": "user", "content": f"q{i} é" + "x" * (i % 97)}]}}) for i in range(n)]
    outputs = [orjson.dumps({"id": f"batch_req_{i}", "custom_id": f"r{i}", "response": {
        "status_code": 200, "request_id": f"req_{i}", "body": {"created": 1771855391 + i, "choices": [
            {"index": 0, "message": {"role": "assistant", "content": f"a{i}"}, "finish_reason": "stop"}]}}})
        for i in range(n)]
    random.Random(3).shuffle(outputs)
    (tmp_path / "in.jsonl.gz").write_bytes(gzip.compress(b"\n".join(inputs)))  # no trailing newline
    (tmp_path / "out.jsonl").write_bytes(b"\n".join(outputs) + b"\n")
    lines = list(OpenAIBatchFormat(**BATCH_OPTIONS).read([tmp_path / "out.jsonl", tmp_path / "in.jsonl.gz"]))
    assert len(lines) == n and all(line.record for line in lines)
    for line in lines:
        i = line.record["id"].removeprefix("req_")
        assert line.record["request"]["messages"][0]["content"].startswith(f"q{i} é")
        assert line.record["response"]["choices"][0]["message"]["content"] == f"a{i}"


def test_malformed_units_are_error_lines_not_exceptions(tmp_path: Path) -> None:
    broken = tmp_path / "broken.jsonl"
    broken.write_bytes(orjson.dumps({"resourceSpans": [{"scopeSpans": [5, {"spans": [3, {"attributes": [
        {"key": "gen_ai.operation.name", "value": {"arrayValue": "chat"}}]}]}]}]}) + b"\n")
    lines = list(OtelFormat().read([broken]))
    assert [line.error.split(":")[0] for line in lines] == [
        "resourceSpans[0].scopeSpans[0]", "resourceSpans[0].scopeSpans[1].spans[0]"]
    csv_bytes = LITELLM_CSV.read_bytes().splitlines(keepends=True)
    csv_bytes[2] = csv_bytes[2].replace(b"cust_991", b"cust_\xff91")
    latin = tmp_path / "latin.csv"
    latin.write_bytes(b"".join(csv_bytes))
    lines = list(LiteLLMFormat().read([latin]))
    assert lines[1].line == 3 and lines[1].error.startswith("<record>: not valid UTF-8")


# --- the plug point: registry and conformance -----------------------------------------------------

_SAMPLES = {
    "canonical": ([], {}),  # written per test: the canonical format has no shipped fixture
    "openai-batch": ([BATCH_IN, BATCH_OUT], BATCH_OPTIONS),
    "otel": ([OTEL_DOC, OTEL_LINES], {}),
    "litellm": ([LITELLM_CSV, LITELLM_JSON], {}),
}


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_every_registered_format_passes_the_conformance_check(name: str, tmp_path: Path, write_jsonl) -> None:
    from distillguard.ingest import check_format

    samples, options = _SAMPLES[name]  # a KeyError here means a new format needs samples in this table
    if name == "canonical":
        samples = [write_jsonl("canon.jsonl", [make_record(i) for i in range(5)])]
    lines = check_format(FORMATS[name], samples, tmp_path / "scratch", options)
    assert sum(line.record is not None for line in lines) >= 2


def test_a_third_party_format_plugs_in_and_is_checked(tmp_path: Path) -> None:
    from collections.abc import Iterator, Sequence

    from distillguard.ingest import FormatConformanceError, IngestFormat, check_format, ingest, register_format
    from distillguard.ingest.base import parse_line

    class Tsv(IngestFormat):
        """account<TAB>canonical JSON, one per line: a stand-in for an in-house log."""

        name = "test-tsv"

        @classmethod
        def sniff(cls, path: Path, head: bytes) -> bool:
            return head.startswith(b"tsv1\t")

        def read(self, paths: Sequence[Path]) -> Iterator[Line]:
            for path in paths:
                with self.open(path) as handle:
                    for number, raw in enumerate(handle, 1):
                        if not raw.strip():
                            continue
                        _, _, body = raw.rstrip(b"\n").partition(b"\t")
                        yield parse_line(str(path), number, body)

    sample = tmp_path / "in.tsv"
    sample.write_bytes(b"".join(b"tsv1\t" + orjson.dumps(make_record(i)) + b"\n" for i in range(4)))
    with pytest.raises(FormatConformanceError, match="not registered"):
        check_format(Tsv, [sample], tmp_path / "s")
    register_format(Tsv)
    try:
        check_format(Tsv, [sample], tmp_path / "s")
        assert detect_format(sample) == "test-tsv"
        report = ingest([sample], Store.open(tmp_path / "store"))
        assert (report.ingested, report.quarantined) == (4, 0)

        class Raises(Tsv):
            name = "test-raises"

            def read(self, paths: Sequence[Path]) -> Iterator[Line]:
                for path in paths:
                    if b"garbage" in path.read_bytes():
                        raise ValueError("boom")
                yield from super().read(paths)

        register_format(Raises)
        with pytest.raises(FormatConformanceError, match="raised ValueError on junk input"):
            check_format(Raises, [sample], tmp_path / "s2")
        with pytest.raises(FormatConformanceError, match="taken by"):
            register_format(type("Other", (Tsv,), {"name": "test-tsv"}))
    finally:
        FORMATS.pop("test-tsv", None)
        FORMATS.pop("test-raises", None)
