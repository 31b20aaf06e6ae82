from __future__ import annotations

import pytest

from conftest import make_record
from distillguard.model import ACCOUNT_SCHEMA, COLUMNS, FieldError, flatten, flatten_account, rows_to_table, to_record


def test_flatten_extracts_columns() -> None:
    row = dict(zip(COLUMNS, flatten(make_record(1, unknown_field={"a": 1})), strict=True))
    assert row["account_id"] == "acct_1"
    assert row["ip"] == "203.0.113.7" and row["asn"] == 14061
    assert row["model"] == "aurora-2" and row["max_tokens"] == 4096
    assert row["system_text"] == "You are helpful."
    assert row["user_text"] == "Question 1: explain recursion"
    assert row["has_image"] is True
    assert row["reasoning_text"] == "Let me think." and row["reasoning_tokens"] == 40
    assert row["n_user_turns"] == 1 and row["n_messages"] == 2
    assert row["extra_json"] == '{"unknown_field":{"a":1}}'


def test_max_completion_tokens_preferred() -> None:
    record = make_record(1)
    record["request"]["max_completion_tokens"] = 8000
    row = dict(zip(COLUMNS, flatten(record), strict=True))
    assert row["max_tokens"] == 8000


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda r: r.pop("id"), "id"),
        (lambda r: r.pop("ts"), "ts"),
        (lambda r: r.update(ts="yesterday"), "ts"),
        (lambda r: r.update(ts="2026-02-02T10:00:00"), "ts"),
        (lambda r: r.update(account_id=7), "account_id"),
        (lambda r: r["client"].pop("ip"), "client.ip"),
        (lambda r: r.update(client="1.2.3.4"), "client"),
        (lambda r: r["client"].update(asn="AS1"), "client.asn"),
        (lambda r: r["request"].update(max_tokens="many"), "request.max_tokens"),
        (lambda r: r["request"].update(messages={"role": "user"}), "request.messages"),
        (lambda r: r.update(response=[1]), "response"),
        (lambda r: r.update(status=True), "status"),
        (lambda r: r["request"].update(n=0), "request.n"),
        (lambda r: r["request"].update(n=-2), "request.n"),
        (lambda r: r["request"].update(n=2.0), "request.n"),
        (lambda r: r["request"].update(n=True), "request.n"),
        (lambda r: r["request"].update(n=2**31), "request.n"),
        (lambda r: r["request"].update(logprobs="true"), "request.logprobs"),
        (lambda r: r["request"].update(logprobs=1), "request.logprobs"),
        (lambda r: r["request"].update(top_logprobs=-1), "request.top_logprobs"),
        (lambda r: r["request"].update(top_logprobs=21), "request.top_logprobs"),
        (lambda r: r["request"].update(top_logprobs="5"), "request.top_logprobs"),
        (lambda r: r.update(endpoint="/v1/completions") or r["request"].update(logprobs=6 * 4), "request.logprobs"),
    ],
)
def test_flatten_names_the_bad_field(mutate, field: str) -> None:
    record = make_record(1)
    mutate(record)
    with pytest.raises(FieldError) as info:
        flatten(record)
    assert info.value.field == field


def test_token_distribution_parameters() -> None:
    """n, logprobs, top_logprobs: columns of their own (appended to the schema), null when not asked for."""
    assert list(COLUMNS[-5:-2]) == ["n_choices", "logprobs", "top_logprobs"]
    row = dict(zip(COLUMNS, flatten(make_record(1)), strict=True))
    assert (row["n_choices"], row["logprobs"], row["top_logprobs"]) == (None, None, None)
    record = make_record(1)
    record["request"].update(n=8, logprobs=True, top_logprobs=20)
    row = dict(zip(COLUMNS, flatten(record), strict=True))
    assert (row["n_choices"], row["logprobs"], row["top_logprobs"]) == (8, True, 20)
    record["request"].update(n=1, logprobs=False, top_logprobs=0)
    row = dict(zip(COLUMNS, flatten(record), strict=True))
    assert (row["n_choices"], row["logprobs"], row["top_logprobs"]) == (1, False, 0)
    record["request"].update(n=None, logprobs=None, top_logprobs=None)
    row = dict(zip(COLUMNS, flatten(record), strict=True))
    assert (row["n_choices"], row["logprobs"], row["top_logprobs"]) == (None, None, None)
    table = rows_to_table([flatten(record)])
    assert table.schema.field("logprobs").type == "bool" and table.schema.field("n_choices").type == "int32"


def test_legacy_completions_logprobs_is_a_count() -> None:
    """/v1/completions' ``logprobs`` (0-5 in the API) is how many alternatives to return: top_logprobs, asked for."""
    record = make_record(1, endpoint="/v1/completions", request={"model": "m", "prompt": "x", "logprobs": 5, "n": 3})
    row = dict(zip(COLUMNS, flatten(record), strict=True))
    assert (row["n_choices"], row["logprobs"], row["top_logprobs"]) == (3, True, 5)
    record["request"]["logprobs"] = 0
    row = dict(zip(COLUMNS, flatten(record), strict=True))
    assert (row["logprobs"], row["top_logprobs"]) == (True, 0)
    record["endpoint"] = "/v1/chat/completions"  # chat's logprobs is a boolean
    with pytest.raises(FieldError) as info:
        flatten(record)
    assert info.value.field == "request.logprobs"


def test_round_trip_to_record() -> None:
    record = make_record(3, org_id="org_9")
    table = rows_to_table([flatten(record)])
    rebuilt = to_record(table.to_pylist()[0])
    assert rebuilt == record


def test_account_record_keeps_unknown_fields_and_checks_tier() -> None:
    record = {"account_id": "a", "tier": "edu", "verified": True, "referrer": "x", "payment_issuer": "411111"}
    row = dict(zip(ACCOUNT_SCHEMA.names, flatten_account(record), strict=True))
    assert row["account_id"] == "a" and row["tier"] == "edu" and row["extra_json"] == '{"referrer":"x"}'
    assert row["payment_issuer"] == "411111"
    with pytest.raises(FieldError) as info:
        flatten_account({"account_id": "a", "tier": "gold"})
    assert info.value.field == "tier"
    with pytest.raises(FieldError) as info:
        flatten_account({"account_id": "a", "payment_issuer": 411111})
    assert info.value.field == "payment_issuer"


def test_history_provenance_columns() -> None:
    """Chat and Responses bodies alike: the first tool call the history answers, and the first the response issues."""
    from distillguard.model.exchange import call_hash

    record = make_record(1)
    row = dict(zip(COLUMNS, flatten(record), strict=True))
    assert (row["cited_call"], row["issued_call"]) == (None, None)
    responses = {
        "id": "r1", "ts": "2026-02-02T10:00:00Z", "account_id": "a", "client": {"ip": "1.2.3.4"},
        "endpoint": "/v1/responses",
        "request": {"model": "m", "input": [
            {"role": "user", "content": "fix it"},
            {"type": "function_call", "call_id": "call_1", "name": "read", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "call_1", "output": "text"},
            {"type": "function_call", "call_id": "call_2", "name": "read", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "call_2", "output": "more"}]},
        "response": {"status": "completed", "output": [
            {"type": "reasoning", "summary": []},
            {"type": "function_call", "call_id": "call_3", "name": "write", "arguments": "{}"},
            {"type": "function_call", "call_id": "call_4", "name": "write", "arguments": "{}"}]},
    }
    row = dict(zip(COLUMNS, flatten(responses), strict=True))
    assert (row["cited_call"], row["issued_call"]) == (call_hash("call_1"), call_hash("call_3"))
    assert call_hash("") is None and call_hash(5) is None and call_hash("é") == call_hash("é")
