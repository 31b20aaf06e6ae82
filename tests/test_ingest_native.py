"""The compiled decoder never disagrees with Python: same table, same bad lines, same line numbers.

``model.flatten`` defines what a canonical line means; ``decode_block(native=False)`` is that
definition (msgspec fast path + flatten). The compiled decoder takes the lines it understands and
hands the rest back, so over any block the two must give identical results.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

import orjson
import pytest

from conftest import make_record, mutated_lines
from distillguard.ingest.decode import NATIVE, decode_block
from distillguard.model.exchange import COLUMNS

if not NATIVE:
    if os.environ.get("DISTILLGUARD_REQUIRE_NATIVE"):
        raise RuntimeError("DISTILLGUARD_REQUIRE_NATIVE is set but distillguard.ingest._columnar is not built")
    pytest.skip("compiled decoder not built (no C compiler at install)", allow_module_level=True)

from distillguard.ingest import _columnar  # noqa: E402

_JSON = {"request_json", "response_json", "extra_json"}


def _rows(decoded: Any) -> list[dict]:
    decoded.table.validate(full=True)
    rows = decoded.table.to_pylist()
    for row in rows:
        for name in _JSON:
            if row[name] is not None:
                row[name] = json.loads(row[name])  # json: the fast path keeps 1e400 in a body, orjson refuses it
    return rows


def _native_share(block: bytes) -> int:
    """How many of the block's lines the compiled decoder took itself."""
    return _columnar.decode_block(block)[2]


def _same(block: bytes) -> int:
    native, python = decode_block(block, native=True), decode_block(block, native=False)
    assert native.lines == python.lines
    assert native.bad == python.bad
    for a, b in zip(_rows(native), _rows(python), strict=True):
        assert a == b, {k: (a[k], b[k]) for k in a if a[k] != b[k]}
    assert native.table.schema.names == list(COLUMNS)
    return _native_share(block)


def _block(records: list[Any]) -> bytes:
    return b"".join(orjson.dumps(r) + b"\n" for r in records)


def test_common_records_are_decoded_natively_and_identically() -> None:
    records = [make_record(i) for i in range(20)]
    records.append(make_record(30, response=None, status=None))
    records.append({"id": "m", "ts": "2026-02-02T10:00:00+05:30", "account_id": "a", "client": {"ip": "1.2.3.4"}})
    records.append(make_record(31, request={}, response={"choices": []}))
    records.append(make_record(32, request=None, response={}))
    records.append(make_record(33, request={"messages": [{"role": "developer", "content": "a"},
                                                         {"role": "system", "content": ""},
                                                         {"role": "user", "content": "first"},
                                                         {"role": "assistant", "content": None},
                                                         {"role": "user", "content": [
                                                             {"type": "input_text", "text": "x"},
                                                             {"type": "output_text", "text": "y"},
                                                             {"type": "input_image"}, {"type": 5}]}],
                                           "tools": [{"type": "function"}], "stream": True, "top_p": 1,
                                           "max_completion_tokens": 5, "max_tokens": "ignored"}))
    records.append(make_record(34, response={"choices": [{"message": None, "finish_reason": 3}],
                                             "usage": {"completion_tokens_details": 7}}))
    records.append(make_record(35, response={"choices": [{"message": {"content": [{"type": "text", "text": "é"}],
                                                                      "tool_calls": [{}, {}],
                                                                      "reasoning_content": 9}}]}))
    block = _block(records)
    assert _same(block) == len(records)


def test_simulated_traffic_is_decoded_natively_and_identically(tmp_path: Path) -> None:
    """Every population and campaign of the simulator: image parts, tools, multilingual text, reasoning."""
    from distillguard.ingest.base import open_binary
    from distillguard.simulate import simulate

    simulate(tmp_path / "sim", "tiny", seed=3)
    block = b""
    for path in sorted((tmp_path / "sim" / "exchanges").glob("*.jsonl*")):
        with open_binary(path) as handle:
            block += handle.read()
    lines = block.count(b"\n")
    assert lines > 1000
    assert _same(block) == lines


@pytest.mark.parametrize("ts", [
    "2026-02-02T10:00:00Z", "2026-02-02T10:00:00z", "2026-02-02T10:00:00.001Z", "2026-02-02T10:00:00.123456Z",
    "2026-02-02T10:00:00.999999-03:30", "2024-02-29T23:59:59.999+23:59", "1970-01-01T00:00:00.001Z",
    "1969-12-31T23:59:59.999Z", "1700-03-01T00:00:00.5Z", "2200-12-31T23:59:59.999999Z", "2300-01-01T00:00:00Z",
    "2026-02-02T10:00:00.1234567Z", "2026-02-02T10:00:00.12Z", "2026-02-02T10:00:00", "2026-02-02 10:00:00Z",
    "2026-02-30T10:00:00Z", "2025-02-29T10:00:00Z", "2026-13-01T10:00:00Z", "2026-02-02T24:00:00Z",
    "2026-02-02T10:60:00Z", "2026-02-02T10:00:60Z", "2026-02-02T10:00:00+24:00", "2026-02-02", "20260202T100000Z",
    "2026-02-02T10:00:00+0530", "0000-01-01T00:00:00Z", "", "x"])
def test_timestamps_agree(ts: str) -> None:
    _same(_block([make_record(1, ts=ts)]))


def test_strict_subset_hands_back_what_it_does_not_own() -> None:
    """Unknown top-level fields, duplicate keys, odd spellings: Python decides, and the results still agree."""
    base = orjson.dumps(make_record(1))
    lines = [
        orjson.dumps(make_record(2, extra_field={"k": 1})),
        base.replace(b'"id":"req_000001"', b'"id":"first","id":"req_000001"'),
        base.replace(b'"model":"aurora-2"', b'"model":"aurora-2","model":"other"'),
        base.replace(b'"temperature":0.7', b'"temperature":0.7,"logit_bias":{"1":1e400}'),
        base.replace(b'"aurora-2"', b'"\\ud800"'),
        base.replace(b'"aurora-2"', b'"aur\\u006fra-2"'),
        base.replace(b'"aurora-2"', b'"\xff"'),
        base[:-1] + b',}',
        base.replace(b'"status":200', b'"status":200,"status":99999999999'),
        base.replace(b'"max_tokens":4096', b'"max_tokens":4096.0'),
        base.replace(b'"max_tokens":4096', b'"max_tokens":true'),
        base.replace(b'"max_tokens":4096', b'"seed":' + b"9" * 30),
        base.replace(b'"temperature":0.7', b'"temperature":' + b"9" * 30),
        base.replace(b'"temperature":0.7', b'"temperature":-0'),
        base.replace(b'"max_tokens":4096', b'"x":' + b"[" * 1100 + b"]" * 1100),
        base.replace(b'"max_tokens":4096', b'"x":' + b"[" * 990 + b"]" * 990),
        b"[]", b"null", b'"text"', b"{}", b"not json",
        base + b"\r",
        b"  \t ",
        b"",
    ]
    block = b"\n".join(lines) + b"\n"
    taken = _same(block)
    assert 0 < taken < len(lines)


@pytest.mark.parametrize("seed", range(8))
def test_mutations_never_disagree(seed: int) -> None:
    """Every field of a full record set to every awkward JSON value or deleted, 400 lines per block."""
    base = make_record(seed)
    base["request"]["tools"] = [{"type": "function", "function": {"name": "f"}}]
    base["response"]["choices"][0]["message"]["tool_calls"] = [{"id": "c"}]
    if seed % 2:  # an unknown top-level field, kept in extra_json
        base["region"] = {"name": "eu", "ids": [1, 2]}
    if seed % 4 < 2:  # the token distribution parameters, so that mutations reach them
        base["request"].update(n=2, logprobs=True, top_logprobs=5)
    lines = mutated_lines(base, seed)
    taken = _same(b"\n".join(lines))
    assert 0 < taken < 400  # both paths were exercised


def test_bodies_are_kept_as_spelled_whatever_the_spacing_and_key_order() -> None:
    """Bodies are slices of the line, found between the keys: spacing, order and escaped keys must not matter."""
    request = b'{"model" :  "aurora-2","messages":[{"role":"user","content":"hi"}], "temperature" : 0.50}'
    response = b'{"choices":[{"message":{"content":"yo"}}] ,"usage":{"prompt_tokens":1}}'
    head = b'"id":"r1","ts":"2026-02-02T10:00:00Z","account_id":"a","client":{"ip":"1.2.3.4"}'
    lines = [
        b'{' + head + b',"request":' + request + b',"response":' + response + b'}',
        b'{ ' + head + b' , "request" :\t' + request + b' ,\t"response"  :  ' + response + b' \t}  \r',
        b'{"response":' + response + b',' + head + b',"request":' + request + b'}',
        b'{"request":{"model":"x"},' + head + b',"request":' + request + b',"response":' + response + b'}',
        b'{' + head + b',"requ\\u0065st":' + request + b',"resp\\u006fnse":' + response + b'}',
    ]
    block = b"\n".join(lines)
    assert _same(block) == len(lines)
    table = decode_block(block, native=True).table
    assert table.column("request_json").to_pylist()[:4] == [request.decode()] * 4
    assert table.column("response_json").to_pylist()[:4] == [response.decode()] * 4
    assert orjson.loads(table.column("request_json")[4].as_py()) == orjson.loads(request)


def test_character_counts_are_code_points_for_every_utf8_width() -> None:
    """prompt_chars/response_chars are Python's len(): 1- to 4-byte characters, NULs, across 8-byte words."""
    rng = random.Random(1)
    alphabet = ["a", "é", "€", "😀", "\u0000", "\u07ff", "\u0800", "\uffff", "\U00010000", " "]
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40))) for _ in range(300)]
    records = [make_record(i, request={"messages": [{"role": "user", "content": text}]},
                           response={"choices": [{"message": {"content": text[::-1]}}]})
               for i, text in enumerate(texts)]
    block = _block(records)
    assert _same(block) == len(records)
    table = decode_block(block, native=True).table
    assert table.column("prompt_chars").to_pylist() == [len(t) for t in texts]
    assert table.column("response_chars").to_pylist() == [len(t) if t else 0 for t in texts]


@pytest.mark.parametrize("seed", range(3))
def test_byte_level_corruption_never_disagrees(seed: int) -> None:
    """Lines cut, spliced and with bytes flipped, inserted or deleted: both paths reject or read them alike."""
    rng = random.Random(100 + seed)
    base = [orjson.dumps(make_record(i)) for i in range(5)]
    base.append(json.dumps(make_record(9), ensure_ascii=False, indent=None, separators=(", ", " : ")).encode())
    noise = b'{}[]":,\\ \t0123456789eE+-.truefalsnu\x00\x7f\xc3\xa9\xff'
    lines = []
    for _ in range(1500):
        line = bytearray(rng.choice(base))
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(line))
            action = rng.random()
            if action < 0.4:
                line[at] = rng.choice(noise)
            elif action < 0.6:
                line.insert(at, rng.choice(noise))
            elif action < 0.8:
                del line[at]
            elif action < 0.9:
                line = line[:at]
            else:
                other = rng.choice(base)
                line = line[:at] + other[rng.randrange(len(other)):]
        lines.append(bytes(line).replace(b"\n", b" "))
    taken = _same(b"\n".join(lines))
    assert 0 < taken < len(lines)


def test_unknown_top_level_fields_are_kept_natively_as_flatten_keeps_them() -> None:
    """Real logs carry extra fields on every line; they must not push the whole log to the slow path."""
    base = orjson.dumps(make_record(1))[1:-1]
    lines = [
        b'{"region":"eu",' + base + b',"tags":["a",{"b":null}],"n":-1.5e3}',
        b'{' + base + b' , "note" :  null  }',
        b'{"x":{"y":[1,2,{"z":"\\u00e9"}]},' + base + b'}',
        b'{' + base.replace(b'"response":', b'"between":true,"response":') + b'}',
        b'{"a\\u0062c":1,' + base + b'}',  # a key spelled with an escape: Python decides
        b'{"dup":1,' + base + b',"dup":2}',  # a repeated unknown key: Python decides (last value, first place)
    ]
    block = b"\n".join(lines)
    assert _same(block) == 4
    extras = [json.loads(v) if v else v for v in decode_block(block, native=True).table.column("extra_json")
              .to_pylist()]
    assert extras == [{"region": "eu", "tags": ["a", {"b": None}], "n": -1500.0}, {"note": None},
                      {"x": {"y": [1, 2, {"z": "é"}]}}, {"between": True}, {"abc": 1}, {"dup": 2}]


def test_token_distribution_parameters_are_decoded_natively_and_identically() -> None:
    """n, logprobs and top_logprobs with every kind of value, under every endpoint: the C decoder takes the chat lines
    whose values flatten accepts as they are (not the slow path for every line that has them), and hands back the
    rest (bad values, the legacy Completions API's integer logprobs, Responses bodies), with the same results."""
    from test_ingest_fastpath import parameter_lines

    lines, common = parameter_lines()
    assert _same(b"\n".join(lines)) == common
    base = orjson.dumps(make_record(1))
    spelled = [
        base.replace(b'"temperature":0.7', b'"temperature":0.7,"n":0,"n":2'),  # the last value counts
        base.replace(b'"temperature":0.7', b'"temperature":0.7,"n":2,"n":0'),
        base.replace(b'"temperature":0.7', b'"temperature":0.7 , "n" :\t3 ,"logprobs" : true'),
        base.replace(b'"temperature":0.7', b'"temperature":0.7,"top_logprobs":20,"top_logprobs":21'),
        base.replace(b'"temperature":0.7', b'"temperature":0.7,"\\u006e":3,"top_logprob\\u0073":4'),
        base.replace(b'"temperature":0.7', b'"temperature":0.7,"n":-0,"top_logprobs":1e1'),
        base.replace(b'"temperature":0.7', b'"temperature":0.7,"n":1E0'),
        base.replace(b'"temperature":0.7', b'"temperature":0.7,"logprobs":null,"top_logprobs":null,"n":null'),
    ]
    assert _same(b"\n".join(spelled)) == 4
    table = decode_block(b"\n".join(spelled), native=True).table
    assert table.select(["n_choices", "logprobs", "top_logprobs"]).to_pylist() == [
        {"n_choices": 2, "logprobs": None, "top_logprobs": None},
        {"n_choices": 3, "logprobs": True, "top_logprobs": None},
        {"n_choices": 3, "logprobs": None, "top_logprobs": 4},
        {"n_choices": None, "logprobs": None, "top_logprobs": None}]


def test_history_provenance_columns_are_decoded_natively_and_identically() -> None:
    """cited_call / issued_call: the first tool message's ``tool_call_id`` and the response's first tool call id
    (hashed), whatever their spelling; odd values (numbers, empty strings, non-objects) are no id in both."""
    from distillguard.model.exchange import call_hash

    def agent(i: int, history: list, calls: list | None) -> dict:
        record = make_record(i)
        record["request"]["messages"] += history
        if calls is not None:
            record["response"]["choices"][0]["message"]["tool_calls"] = calls
        return record

    call = {"id": "call_A1", "type": "function", "function": {"name": "read", "arguments": "{\"p\": 1}"}}
    said = {"role": "assistant", "content": None, "tool_calls": [call]}
    records = [
        agent(1, [said, {"role": "tool", "tool_call_id": "call_A1", "content": "x"}], [{**call, "id": "call_B2"}]),
        agent(2, [said, {"role": "tool", "tool_call_id": 7, "content": "x"},
                  {"role": "tool", "tool_call_id": "call_C3", "content": "y"}], [{"id": ""}, {"id": "z"}]),
        agent(3, [{"role": "tool", "tool_call_id": "", "content": "x"}], ["not an object"]),
        agent(4, [], [{"type": "function", "function": {"name": "f", "arguments": "{}"}, "id": "call_D4"}]),
        agent(5, [{"role": "tool", "content": "no id"}], []),
    ]
    lines = [orjson.dumps(r) for r in records]
    lines.append(lines[0].replace(b'"tool_call_id":"call_A1"', b'"tool_call_id":"call_\\u0041\\u0031"'))
    lines.append(lines[0].replace(b'"tool_call_id":"call_A1"', b'"tool_call_id":"x","tool_call_id":"call_A1"'))
    block = b"\n".join(lines) + b"\n"
    assert _same(block) >= 5
    table = decode_block(block, native=True).table
    a1, b2, c3, d4 = (call_hash(x) for x in ("call_A1", "call_B2", "call_C3", "call_D4"))
    assert table.select(["cited_call", "issued_call"]).to_pylist() == [
        {"cited_call": a1, "issued_call": b2}, {"cited_call": c3, "issued_call": None},
        {"cited_call": None, "issued_call": None}, {"cited_call": None, "issued_call": d4},
        {"cited_call": None, "issued_call": None}, {"cited_call": a1, "issued_call": b2},
        {"cited_call": a1, "issued_call": b2}]
