"""OpenAI Responses API exchanges (``/v1/responses``): Batch files and canonical lines read into the same columns
as chat completions. Fixtures are built from the ``openai`` SDK's types (tests/fixtures/real/openai_batch)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from distillguard.ingest import ingest
from distillguard.ingest.decode import NATIVE, decode_block
from distillguard.ingest.openai_batch import OpenAIBatchFormat
from distillguard.model import flatten
from distillguard.model.exchange import COLUMNS, FieldError, is_responses_endpoint
from distillguard.store import Store

REAL = Path(__file__).parent / "fixtures" / "real" / "openai_batch"
INPUT, OUTPUT = REAL / "responses_input.jsonl", REAL / "responses_output.jsonl"
OPTIONS = {"account_id": "acct_batch", "ip": "198.51.100.4"}


def _rows(paths: list[Path]) -> dict[str, dict]:
    lines = list(OpenAIBatchFormat(**OPTIONS).read(paths))
    assert all(line.error is None for line in lines), [line.error for line in lines]
    return {line.record["batch"]["custom_id"]: dict(zip(COLUMNS, flatten(line.record), strict=True))
            for line in lines}


def _check(rows: dict[str, dict]) -> None:
    grader = rows["resp-grader"]
    instructions = "You are a meticulous grader. Explain every step of your reasoning."
    question = "Score the proof in the image from 1 to 10."
    assert grader["endpoint"] == "/v1/responses" and grader["model"] == "o4-mini"
    assert (grader["n_messages"], grader["n_user_turns"], grader["n_assistant_turns"]) == (2, 1, 0)
    assert (grader["system_text"], grader["user_text"], grader["has_image"]) == (instructions, question, True)
    assert grader["prompt_chars"] == len(instructions) + len(question)
    assert (grader["max_tokens"], grader["reasoning_effort"], grader["temperature"], grader["stream"]) == (
        4096, "high", 1.0, False)
    assert grader["response_text"] == "Score: 7. Steps 1-2 are sound; step 3 is circular."
    assert grader["reasoning_text"] == "Check each step against the rubric.\nStep 3 assumes what it proves."
    assert grader["reasoning_chars"] == len(grader["reasoning_text"])
    assert (grader["prompt_tokens"], grader["completion_tokens"], grader["reasoning_tokens"]) == (412, 1630, 256)
    assert (grader["finish_reason"], grader["n_tool_calls"], grader["status"]) == ("stop", 0, 200)
    # top_logprobs 5 and include ["message.output_text.logprobs", ...]: asks for token distributions; no `n`
    assert (grader["n_choices"], grader["logprobs"], grader["top_logprobs"]) == (None, True, 5)

    tool = rows["resp-tool"]
    assert (tool["n_messages"], tool["n_user_turns"], tool["user_text"]) == (1, 1, "What is the weather in Paris?")
    assert (tool["n_tools"], tool["max_tokens"], tool["top_p"], tool["reasoning_effort"]) == (1, 256, 0.9, None)
    assert (tool["response_text"], tool["n_tool_calls"], tool["finish_reason"]) == (None, 1, "tool_calls")
    assert (tool["prompt_tokens"], tool["completion_tokens"], tool["reasoning_tokens"]) == (61, 18, 0)
    assert (tool["n_choices"], tool["logprobs"], tool["top_logprobs"]) == (None, None, None)

    agent = rows["resp-agent"]
    # instructions, user, [reasoning + function_call] (one assistant turn), function_call_output,
    # assistant message (a second turn), developer, user
    assert (agent["n_messages"], agent["n_user_turns"], agent["n_assistant_turns"]) == (7, 2, 2)
    assert agent["system_text"] == "Answer with the tool's data.\nBe brief."
    assert agent["user_text"] == "And tomorrow, in one word?"
    assert agent["prompt_chars"] == sum(map(len, ("Answer with the tool's data.", "What is the weather in Paris?",
                                                  '{"temp_c": 18, "sky": "clear"}', "It is 18 C and clear.",
                                                  "Be brief.", "And tomorrow, in one word?")))
    assert (agent["response_text"], agent["reasoning_text"], agent["finish_reason"]) == ("Sunny", None, "length")
    assert (agent["max_tokens"], agent["reasoning_effort"], agent["reasoning_tokens"]) == (16, "low", 12)


def test_batch_responses_are_mapped() -> None:
    rows = _rows([OUTPUT, INPUT])
    _check(rows)
    assert rows["resp-grader"]["ts"] == 1_771_855_391_000  # created_at
    assert rows["resp-grader"]["account_id"] == "acct_batch"


def _canonical(rows: dict[str, dict]) -> list[bytes]:
    """The same exchanges as canonical log lines."""
    return [orjson.dumps({"id": f"r{i}", "ts": "2026-02-23T14:03:11Z", "account_id": "a", "client": {"ip": "::1"},
                          "endpoint": row["endpoint"], "request": orjson.loads(row["request_json"]),
                          "response": orjson.loads(row["response_json"]), "status": 200, "stream_note": 1})
            for i, row in enumerate(rows.values())]


def test_canonical_responses_lines_read_alike_by_both_decoders() -> None:
    rows = _rows([INPUT, OUTPUT])
    block = b"\n".join(_canonical(rows))
    python = decode_block(block, native=False)
    assert not python.bad
    decoded = python.table.to_pylist()
    if NATIVE:
        native = decode_block(block, native=True)
        assert not native.bad and native.table.to_pylist() == decoded
    again = {cid: {**row, **{k: v for k, v in new.items() if k not in ("id", "id_hash", "ts", "account_id", "ip",
                                                                        "extra_json", "response_json",
                                                                        "request_json", "api_key_id")}}
             for (cid, row), new in zip(rows.items(), decoded, strict=True)}
    _check(again)


def test_endpoint_decides_the_body_shape() -> None:
    assert is_responses_endpoint("/v1/responses") and is_responses_endpoint("/openai/v1/responses?api-version=1")
    assert not is_responses_endpoint("/v1/chat/completions") and not is_responses_endpoint("/v1/responses/x")
    base = {"id": "x", "ts": "2026-02-23T14:03:11Z", "account_id": "a", "client": {"ip": "10.0.0.1"}}
    row = dict(zip(COLUMNS, flatten({**base, "endpoint": "/v1/responses", "request": {"input": "hi"}}), strict=True))
    assert (row["user_text"], row["n_messages"]) == ("hi", 1)
    chat = dict(zip(COLUMNS, flatten({**base, "endpoint": "/v1/chat/completions", "request": {"input": "hi"}}),
                    strict=True))
    assert (chat["user_text"], chat["n_messages"]) == ("", 0)


@pytest.mark.parametrize(("body", "field"), [
    ({"input": 5}, "request.input"), ({"input": [3]}, "request.input[0]"),
    ({"input": [{"role": "user", "content": 5}]}, "request.input[0].content"),
    ({"instructions": {"x": 1}}, "request.instructions"), ({"reasoning": "high"}, "request.reasoning"),
    ({"reasoning": {"effort": 3}}, "request.reasoning.effort"),
    ({"max_output_tokens": "9"}, "request.max_output_tokens"),
    ({"top_logprobs": -1}, "request.top_logprobs"), ({"top_logprobs": 21}, "request.top_logprobs"),
    ({"top_logprobs": 2.0}, "request.top_logprobs"), ({"top_logprobs": True}, "request.top_logprobs"),
    ({"include": "message.output_text.logprobs"}, "request.include"), ({"stream": "false"}, "request.stream"),
])
def test_bad_responses_requests_name_the_field(body: dict, field: str) -> None:
    record = {"id": "x", "ts": "2026-02-23T14:03:11Z", "account_id": "a", "client": {"ip": "10.0.0.1"},
              "endpoint": "/v1/responses", "request": body}
    with pytest.raises(FieldError) as caught:
        flatten(record)
    assert caught.value.field == field


@pytest.mark.parametrize(("body", "expected"), [
    ({}, (None, None, None)),
    ({"top_logprobs": 20}, (None, True, 20)),
    ({"top_logprobs": 0}, (None, False, 0)),  # no alternatives asked for, nor the chosen tokens' logprobs
    ({"include": ["message.output_text.logprobs"]}, (None, True, None)),
    ({"include": ["message.output_text.logprobs"], "top_logprobs": 0}, (None, True, 0)),
    ({"include": ["reasoning.encrypted_content"]}, (None, False, None)),
    ({"include": [], "top_logprobs": None}, (None, False, None)),
    ({"include": None, "n": 5, "logprobs": True}, (None, None, None)),  # chat's fields mean nothing here
])
def test_responses_requests_ask_for_logprobs_with_include_or_top_logprobs(body: dict, expected: tuple) -> None:
    record = {"id": "x", "ts": "2026-02-23T14:03:11Z", "account_id": "a", "client": {"ip": "10.0.0.1"},
              "endpoint": "/v1/responses", "request": {"input": "q", **body}}
    row = dict(zip(COLUMNS, flatten(record), strict=True))
    assert (row["n_choices"], row["logprobs"], row["top_logprobs"]) == expected
    block = orjson.dumps(record) + b"\n"
    python = decode_block(block, native=False).table.select(["n_choices", "logprobs", "top_logprobs"]).to_pylist()
    assert [tuple(r.values()) for r in python] == [expected]
    if NATIVE:
        assert decode_block(block, native=True).table.to_pylist() == decode_block(block, native=False).table.to_pylist()


@pytest.mark.parametrize(("response", "field"), [
    ({"output": {}}, "response.output"), ({"output": [1]}, "response.output[0]"),
    ({"output": [{"type": "reasoning", "summary": "x"}]}, "response.output[0].summary"),
    ({"usage": {"input_tokens": -1}}, "response.usage.input_tokens"),
    ({"usage": {"output_tokens_details": {"reasoning_tokens": 1.5}}},
     "response.usage.output_tokens_details.reasoning_tokens"),
])
def test_bad_responses_bodies_name_the_field(response: dict, field: str) -> None:
    record = {"id": "x", "ts": "2026-02-23T14:03:11Z", "account_id": "a", "client": {"ip": "10.0.0.1"},
              "endpoint": "/v1/responses", "request": {"input": "q"}, "response": response}
    with pytest.raises(FieldError) as caught:
        flatten(record)
    assert caught.value.field == field


def test_pipeline_stores_batch_responses(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "store")
    report = ingest([INPUT, OUTPUT], store, options=OPTIONS)
    assert (report.ingested, report.quarantined) == (3, 0) and report.balanced
    tokens = store.connect().execute("SELECT sum(completion_tokens), sum(reasoning_tokens) FROM exchanges").fetchone()
    assert tokens == (1630 + 18 + 16, 256 + 0 + 12)


@pytest.mark.skipif(importlib.util.find_spec("openai") is None, reason="the openai SDK is not installed")
def test_fixtures_regenerate_from_the_sdk_types(tmp_path: Path) -> None:
    """The generator runs against the installed SDK (its request check included) and gives the same exchanges."""
    subprocess.run([sys.executable, str(REAL / "generate.py"), str(tmp_path)], check=True)
    _check(_rows([tmp_path / "responses_input.jsonl", tmp_path / "responses_output.jsonl"]))
