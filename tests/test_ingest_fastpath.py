"""The compiled decoder never disagrees with ``flatten``: what it accepts, flatten accepts with the same row."""

from __future__ import annotations

import itertools
import json
from typing import Any

import orjson
import pytest

from conftest import make_record, mutated_lines
from distillguard.ingest.decode import parse_chunk
from distillguard.ingest.fastpath import FALLBACK, decode_row
from distillguard.model import FieldError, flatten
from distillguard.model.exchange import COLUMNS, to_record

_JSON_COLUMNS = {COLUMNS.index("request_json"), COLUMNS.index("response_json"), COLUMNS.index("extra_json")}


def _comparable(row: tuple) -> tuple:
    """The row with JSON columns parsed: the fast path keeps a body as spelled, flatten re-serialises it."""
    return tuple(orjson.loads(v) if i in _JSON_COLUMNS and v is not None else v for i, v in enumerate(row))


def _slow(raw: bytes) -> tuple | None:
    try:
        return flatten(orjson.loads(raw))
    except (orjson.JSONDecodeError, FieldError):
        return None


def _check(raw: bytes) -> bool:
    """Assert the contract for one line; return whether the fast path took it."""
    try:
        fast = decode_row(raw)
    except FALLBACK:
        return False
    slow = _slow(raw)
    assert slow is not None, raw
    assert _comparable(fast) == _comparable(slow), raw
    return True


def test_common_records_take_the_fast_path_with_identical_rows() -> None:
    records = [make_record(i) for i in range(5)]
    records.append(make_record(9, response=None, status=None))
    records.append({"id": "m", "ts": "2026-02-02T10:00:00+05:30", "account_id": "a", "client": {"ip": "1.2.3.4"}})
    records.append(make_record(10, request={}, response={"choices": []}))
    for record in records:
        assert _check(orjson.dumps(record)), record


def test_spelling_differences_are_the_same_value() -> None:
    raw = orjson.dumps(make_record(1)).replace(b'"model":', b'"model" :  ').replace(b'"aurora-2"', b'"aur\\u006fra-2"')
    assert _check(raw)
    assert _check(b'{"id":"e","ts":"2026-02-02T10:00:00Z","account_id":"a","client":{"ip":"::1"},"request":{ }}')


@pytest.mark.parametrize("seed", range(6))
def test_mutations_never_disagree(seed: int) -> None:
    """Every field of a full record set to every awkward JSON value, or deleted."""
    base = make_record(seed)
    base["request"]["tools"] = [{"type": "function", "function": {"name": "f"}}]
    base["response"]["choices"][0]["message"]["tool_calls"] = [{"id": "c"}]
    if seed % 3:  # the token distribution parameters, so that mutations reach them
        base["request"].update(n=2, logprobs=True, top_logprobs=5)
    taken = sum(_check(line) for line in mutated_lines(base, seed))
    assert 0 < taken < 400  # both paths were exercised


def test_json_only_orjson_rejects_falls_back() -> None:
    base = orjson.dumps(make_record(1))
    for raw in (base.replace(b'"temperature":0.7', b'"temperature":1e400'),
                base.replace(b'"aurora-2"', b'"\xff"'),
                base.replace(b'"aurora-2"', b'"\\ud800"'),
                base[:-1] + b',}'):
        with pytest.raises(FALLBACK):
            decode_row(raw)
        assert _slow(raw) is None


def test_huge_number_in_an_unread_body_field_is_kept_and_read_back() -> None:
    """The one documented difference from orjson: RFC 8259 allows 1e400; the body keeps it and reads back."""
    raw = orjson.dumps(make_record(1)).replace(b'"temperature":0.7', b'"temperature":0.7,"logit_bias":{"1":1e400}')
    row = decode_row(raw)
    assert _slow(raw) is None  # orjson refuses the line
    record = to_record(dict(zip(COLUMNS, row, strict=True)))
    assert record["request"]["logit_bias"] == {"1": float("inf")}
    assert record["request"]["temperature"] == 0.7


def test_out_of_range_integers_are_quarantined_not_fatal() -> None:
    good = orjson.dumps(make_record(1))
    raws = [good] + [json.dumps(record).encode() for record in (
        make_record(2, status=99_999_999_999), make_record(3, latency_ms=2**64),
        make_record(4, client={"ip": "10.0.0.1", "asn": -(2**63) - 1}))]
    table, errors = parse_chunk(raws)
    assert len(table) == 1
    assert [(index, field) for index, field, _ in errors] == [(1, "status"), (2, "latency_ms"), (3, "client.asn")]


# n / logprobs / top_logprobs: each value valid, at a bound, one past it, or of the wrong kind (_ABSENT: no key)
_ABSENT: Any = object()
N_VALUES = [_ABSENT, None, 1, 2, 128, 2**31 - 1, 2**31, 0, -1, 1.0, 2.5, True, "2", [], {}, 10**30]
LOGPROBS_VALUES = [_ABSENT, None, True, False, 0, 1, 5, 21, -1, "true", 1.5, [], 10**30]
TOP_LOGPROBS_VALUES = [_ABSENT, None, 0, 1, 20, 21, -1, 5.0, True, "5", 2**63, 10**30]
ENDPOINTS = ["/v1/chat/completions", None, "/v1/completions", "/v1/responses"]
_N_OK = (_ABSENT, None, 1, 2, 128, 2**31 - 1)
_LOGPROBS_OK = (_ABSENT, None, True, False)
_TOP_OK = (_ABSENT, None, 0, 1, 20)


def _is(value: Any, allowed: tuple) -> bool:  # identity for the sentinel and the booleans (True == 1), else equality
    return any(value is ok or (type(value) is type(ok) and value == ok) for ok in allowed)


def parameter_lines() -> tuple[list[bytes], int]:
    """Every combination of the values above, as lines, and how many are in the common shape (a chat body with
    values flatten accepts as they are: the compiled decoders must take those themselves)."""
    lines, common = [], 0
    for i, (endpoint, n, logprobs, top) in enumerate(itertools.product(
            ENDPOINTS, N_VALUES, LOGPROBS_VALUES, TOP_LOGPROBS_VALUES)):
        record = make_record(i)
        record["endpoint"] = endpoint
        for key, value in (("n", n), ("logprobs", logprobs), ("top_logprobs", top)):
            if value is not _ABSENT:
                record["request"][key] = value
        lines.append(json.dumps(record).encode())
        common += (endpoint != "/v1/responses" and _is(n, _N_OK) and _is(logprobs, _LOGPROBS_OK)
                   and _is(top, _TOP_OK))
    return lines, common


def test_token_distribution_parameters_never_disagree() -> None:
    lines, common = parameter_lines()
    assert sum(_check(line) for line in lines) == common
