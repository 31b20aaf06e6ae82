"""Values that are JSON but not a valid exchange: quarantined with file, line, field and a clear reason, the
rest of the log kept, and the compiled decoder and the Python path in agreement on every one of them."""

from __future__ import annotations

import ipaddress
import json
import random
from pathlib import Path

import orjson
import pytest

from conftest import make_record
from distillguard.ingest import ingest
from distillguard.ingest.decode import NATIVE, decode_block
from distillguard.model.exchange import valid_ip
from distillguard.store import Store


def _verdicts(lines: list[bytes]) -> list[tuple[str, str] | None]:
    """Per line: None when accepted, else (field, reason); asserting both decoders agree on every line."""
    block = b"\n".join(lines) + b"\n"
    results = [decode_block(block, native=False)]
    if NATIVE:
        results.append(decode_block(block, native=True))
    out = []
    for decoded in results:
        bad = {index: (field, reason) for index, _, field, reason, _ in decoded.bad}
        out.append([bad.get(i) for i in range(len(lines))])
        assert decoded.table.num_rows == len(lines) - len(bad)
    if NATIVE:
        assert out[0] == out[1]
        native, python = results[1].table.to_pylist(), results[0].table.to_pylist()
        for a, b in zip(native, python, strict=True):
            for key in ("request_json", "response_json", "extra_json"):
                a[key], b[key] = (orjson.loads(a[key]) if a[key] else None), (orjson.loads(b[key]) if b[key] else None)
            assert a == b
    return out[0]


def _line(**over: object) -> bytes:
    return orjson.dumps(make_record(1, **over))


# --- client addresses ---------------------------------------------------------------------------------

VALID_IPS = ["203.0.113.7", "0.0.0.0", "255.255.255.255", "::", "::1", "1::", "2001:db8::8a2e:370:7334",
             "2001:DB8:0:0:0:0:0:1", "::ffff:192.0.2.1", "64:ff9b::198.51.100.7", "1:2:3:4:5:6:7:8",
             "1:2:3:4:5:6::8", "1::3:4:5:6:7:8", "1:2:3:4:5:6:1.2.3.4", "::1.2.3.4", "fe80::1"]
INVALID_IPS = ["999.1.1.1", "fe80::1%eth0", "fe80::1%", "1.2.3", "1.2.3.4.5", "01.2.3.4", "1.2.3.04", "1.2.3.256",
               "1.2.3.-1", " 1.2.3.4", "1.2.3.4 ", "1.2.3.4/24", "", "localhost", "testclient", "::1::", ":::",
               "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7", "1:2:3:4:5:6:7::8", "12345::", ":1::", "1::2:", "::g",
               "1:2:3:4:5:6:7:1.2.3.4", "::1.2.3", "::256.1.1.1", "1.2.3.4::", "١.٢.٣.٤", "::1.2.3.4:5"]


def test_client_addresses_are_ip_addresses() -> None:
    lines = [_line(client={"ip": ip}) for ip in VALID_IPS + INVALID_IPS]
    verdicts = _verdicts(lines)
    assert verdicts[:len(VALID_IPS)] == [None] * len(VALID_IPS)
    for ip, verdict in zip(INVALID_IPS, verdicts[len(VALID_IPS):], strict=True):
        if ip == "":
            assert verdict == ("client.ip", "must not be empty")
        else:
            assert verdict == ("client.ip", f"not an IPv4 or IPv6 address: {ip!r}")


def test_ip_rule_is_ipaddress_without_zones_and_the_compiled_decoder_follows_it() -> None:
    """Random strings over the characters addresses are made of: both decoders agree with ``ipaddress``."""
    rng = random.Random(5)
    alphabet = "0123456789abcdefABCDEF:.:.:.::g% "
    samples = set(VALID_IPS + INVALID_IPS)
    while len(samples) < 6000:
        samples.add("".join(rng.choice(alphabet) for _ in range(rng.randint(1, 40))))
        base = ipaddress.ip_address(rng.getrandbits(128) if rng.random() < 0.5 else rng.getrandbits(32))
        text = base.compressed if rng.random() < 0.5 else getattr(base, "exploded", str(base))
        at = rng.randrange(len(text) + 1)
        samples.add(text[:at] + rng.choice(["", ":", ".", "0", "::", "f"]) + text[at + rng.randint(0, 2):])
    ips = sorted(samples)
    verdicts = _verdicts([_line(client={"ip": ip}) for ip in ips])
    accepted = 0
    for ip, verdict in zip(ips, verdicts, strict=True):
        try:
            ipaddress.ip_address(ip)
            expected = "%" not in ip
        except ValueError:
            expected = False
        assert (verdict is None) == expected == valid_ip(ip), ip
        accepted += expected
    assert accepted > 500


def test_valid_addresses_stay_on_the_compiled_path() -> None:
    if not NATIVE:
        pytest.skip("compiled decoder not built")
    from distillguard.ingest import _columnar

    block = b"\n".join(_line(client={"ip": ip}) for ip in VALID_IPS)
    assert _columnar.decode_block(block)[2] == len(VALID_IPS)


# --- types and ranges -----------------------------------------------------------------------------------


def test_stream_must_be_a_boolean() -> None:
    def request(stream: object) -> dict:
        body = make_record(1)["request"]
        body["stream"] = stream
        return body

    lines = [_line(request=request(v)) for v in (True, False, None, "false", "true", 0, 1, [])]
    verdicts = _verdicts(lines)
    assert verdicts[:3] == [None, None, None]
    assert verdicts[3:] == [("request.stream", "expected a boolean, got str: 'false'"),
                            ("request.stream", "expected a boolean, got str: 'true'"),
                            ("request.stream", "expected a boolean, got int: 0"),
                            ("request.stream", "expected a boolean, got int: 1"),
                            ("request.stream", "expected a boolean, got list: []")]
    table = decode_block(b"\n".join(lines[:3]), native=NATIVE).table
    assert table.column("stream").to_pylist() == [True, False, False]


def test_counts_must_not_be_negative() -> None:
    usage = make_record(1)["response"]
    negative_tokens = json.loads(json.dumps(usage))
    negative_tokens["usage"]["completion_tokens"] = -3
    negative_reasoning = json.loads(json.dumps(usage))
    negative_reasoning["usage"]["completion_tokens_details"]["reasoning_tokens"] = -1
    verdicts = _verdicts([_line(latency_ms=-5), _line(latency_ms=0), _line(response=negative_tokens),
                          _line(response=negative_reasoning)])
    assert verdicts == [("latency_ms", "must not be negative: -5"), None,
                        ("response.usage.completion_tokens", "must not be negative: -3"),
                        ("response.usage.completion_tokens_details.reasoning_tokens", "must not be negative: -1")]


@pytest.mark.parametrize(("ts", "ok"), [
    ("1600-01-01T00:00:00Z", False), ("9999-12-31T23:59:59Z", False), ("0001-01-01T00:00:00+01:00", False),
    ("9999-12-31T23:59:59-01:00", False), ("1969-12-31T23:59:59.999Z", False), ("1970-01-01T00:00:00Z", True),
    ("1970-01-01T01:00:00+01:00", True), ("1970-01-01T00:30:00+01:00", False), ("2099-12-31T23:59:59.999Z", True),
    ("2100-01-01T00:00:00Z", False), ("2099-12-31T23:30:00-01:00", False), ("2026-02-23T14:03:11.250Z", True),
])
def test_timestamps_outside_1970_to_2099_are_refused(ts: str, ok: bool) -> None:
    [verdict] = _verdicts([_line(ts=ts)])
    if ok:
        assert verdict is None
    else:
        assert verdict == ("ts", f"out of range (1970-01-01T00:00:00Z to 2099-12-31T23:59:59Z): {ts!r}")


def test_integers_beyond_64_bits_are_out_of_range_not_floats() -> None:
    lines = [json.dumps(make_record(1, latency_ms=2**70)).encode(),
             json.dumps(make_record(2, status=-(2**70))).encode(),
             json.dumps(make_record(3, client={"ip": "10.0.0.1", "asn": 2**64})).encode(),
             _line(latency_ms=1.5), b'{"id":"x","latency_ms":1e30}']
    verdicts = _verdicts(lines)
    assert verdicts[:3] == [("latency_ms", f"integer out of range: {2**70}"),
                            ("status", f"integer out of range: {-(2**70)}"),
                            ("client.asn", f"integer out of range: {2**64}")]
    assert verdicts[3] == ("latency_ms", "expected an integer, got float")  # a real float stays one
    assert verdicts[4] == ("ts", "required")


def test_invalid_utf8_is_located_not_reported_as_surrogates() -> None:
    record = make_record(1)
    record["request"]["messages"][1]["content"][0]["text"] = "PLACEHOLDER"
    raw = orjson.dumps(record)
    bad = raw.replace(b"PLACEHOLDER", b"caf\xe9 au lait")
    offset = bad.index(b"\xe9")
    key = orjson.dumps(make_record(2)).replace(b'"region"', b'"r\xffgion"').replace(b'"api_key_id"', b'"k\xff"')
    verdicts = _verdicts([bad, key, b'{"id": "\xc3"', raw])
    assert verdicts[0] == ("request.messages[1].content[0].text", f"invalid UTF-8 (byte 0xe9 at offset {offset} "
                                                                  "of the line)")
    key_offset = key.index(b"\xff")
    assert verdicts[1] == ("k\\xff", f"invalid UTF-8 (byte 0xff at offset {key_offset} of the line)")
    assert verdicts[2] == ("<record>", "invalid UTF-8 (byte 0xc3 at offset 8 of the line)")  # not JSON either
    assert verdicts[3] is None
    assert all("surrogates" not in v[1] for v in verdicts[:3])


def test_pipeline_reports_file_line_field_and_keeps_the_rest(tmp_path: Path) -> None:
    lines = [_line(), _line(client={"ip": "999.1.1.1"}), _line(client={"ip": "fe80::1%eth0"}), _line(latency_ms=-1),
             _line(ts="1600-01-01T00:00:00Z"), _line(ts="9999-01-01T00:00:00Z"),
             json.dumps(make_record(7, latency_ms=2**70)).encode(), _line().replace(b"Recursion", b"R\xffc"), _line()]
    lines = [line.replace(b'"req_000001"', f'"req_{i}"'.encode()) for i, line in enumerate(lines)]
    request = make_record(10)["request"]
    request["stream"] = "false"
    lines.append(orjson.dumps(make_record(10, request=request)))
    log = tmp_path / "log.jsonl"
    log.write_bytes(b"\n".join(lines) + b"\n")
    store = Store.open(tmp_path / "store")
    report = ingest([log], store)
    assert (report.read, report.ingested, report.quarantined) == (10, 2, 8) and report.balanced
    errors = [orjson.loads(x) for x in Path(report.quarantine_file).read_bytes().splitlines()]
    assert [(e["line"], e["field"]) for e in errors] == [
        (2, "client.ip"), (3, "client.ip"), (4, "latency_ms"), (5, "ts"), (6, "ts"), (7, "latency_ms"),
        (8, "response.choices[0].message.content"), (10, "request.stream")]
    assert all(e["file"] == str(log) for e in errors)
    assert (Path(report.quarantine_file).with_suffix("").with_suffix(".bad").read_bytes().splitlines()
            == [lines[i - 1] for i, _ in [(e["line"], 0) for e in errors]])
    assert store.count() == 2
