"""Signatures over RFC 8785 (JCS): the RFC's own test vectors, and signatures made here verified over bytes from
an independent canonicaliser (Node.js: ECMAScript JSON.stringify, whose number and string forms JCS adopts, and
Array.prototype.sort, which orders keys by UTF-16 code units as JCS does)."""

from __future__ import annotations

import base64
import copy
import json
import shutil
import struct
import subprocess

import orjson
import pytest

from distillguard.intel.export import ExportOptions, export_bundle
from distillguard.intel.extension import EXTENSION_ID, fixed_objects
from distillguard.intel.refdata import tlp_by_id
from distillguard.intel.signing import CANON, SignatureError, canonical, sign, verify
from test_intel_fixtures import GROUP_KEY, campaigns_doc, member_keys

# RFC 8785 Appendix B: IEEE 754 double (hex) -> its JCS form
NUMBERS = """
0000000000000000 0
8000000000000000 0
0000000000000001 5e-324
8000000000000001 -5e-324
7fefffffffffffff 1.7976931348623157e+308
ffefffffffffffff -1.7976931348623157e+308
4340000000000000 9007199254740992
c340000000000000 -9007199254740992
4430000000000000 295147905179352830000
44b52d02c7e14af5 9.999999999999997e+22
44b52d02c7e14af6 1e+23
44b52d02c7e14af7 1.0000000000000001e+23
444b1ae4d6e2ef4e 999999999999999700000
444b1ae4d6e2ef4f 999999999999999900000
444b1ae4d6e2ef50 1e+21
3eb0c6f7a0b5ed8c 9.999999999999997e-7
3eb0c6f7a0b5ed8d 0.000001
41b3de4355555553 333333333.3333332
41b3de4355555554 333333333.33333325
41b3de4355555555 333333333.3333333
41b3de4355555556 333333333.3333334
41b3de4355555557 333333333.33333343
becbf647612f3696 -0.0000033333333333333333
43143ff3c1cb0959 1424953923781206.2
"""


@pytest.mark.parametrize("hex_value,expected", [line.split() for line in NUMBERS.strip().splitlines()])
def test_rfc8785_appendix_b_numbers(hex_value: str, expected: str) -> None:
    value = struct.unpack(">d", bytes.fromhex(hex_value))[0]
    assert canonical({"n": value}) == b'{"n":' + expected.encode() + b"}"


def test_rfc8785_non_finite_numbers_are_refused() -> None:
    for hex_value in ("7fffffffffffffff", "7ff0000000000000"):  # NaN, Infinity
        with pytest.raises(SignatureError, match="RFC 8785"):
            canonical({"id": "x", "n": struct.unpack(">d", bytes.fromhex(hex_value))[0]})


def test_rfc8785_section_3_2_2_example() -> None:
    source = r'''{
      "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
      "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
      "literals": [null, true, false]
    }'''
    expected = (r'''{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'''
                r'''"string":"€$\u000f\nA'B\"\\\\\"/"}''')
    assert canonical(json.loads(source)) == expected.encode()


def test_rfc8785_section_3_2_3_sorting_by_utf16_code_units() -> None:
    source = r'''{
      "\u20ac": "Euro Sign", "\r": "Carriage Return", "\ufb33": "Hebrew Letter Dalet With Dagesh", "1": "One",
      "\ud83d\ude00": "Emoji: Grinning Face", "\u0080": "Control", "\u00f6": "Latin Small Letter O With Diaeresis"
    }'''
    out = canonical(json.loads(source))
    assert list(json.loads(out).values()) == ["Carriage Return", "One", "Control",
                                              "Latin Small Letter O With Diaeresis", "Euro Sign",
                                              "Emoji: Grinning Face", "Hebrew Letter Dalet With Dagesh"]
    assert out.startswith(b'{"\\r":"Carriage Return","1":"One","\xc2\x80":"Control"')
    # code-point (UTF-8) order, as the first scheme's orjson used, puts U+FB33 before U+1F600: not JCS
    assert orjson.dumps(json.loads(source), option=orjson.OPT_SORT_KEYS) != out


@pytest.fixture(scope="module")
def keys():
    return member_keys(("p1", "p2"))


def _tricky(keys) -> dict:
    """A member object with what canonicalisers disagree on: non-BMP and high-BMP keys, floats in both
    exponent ranges, integral floats, control characters and non-ASCII text."""
    doc = campaigns_doc()
    doc["campaigns"][0]["capabilities"] = {"\U0001f600": 1e-7, "\ufb33": 1e21, "\u00f6": 4.0, "z": 0.1 + 0.2,
                                           "ctl": "tab\there \u0001 \u2028 \"q\" \\ /"}
    doc["campaigns"][0]["score"] = 333333333.33333329
    bundle = export_bundle(doc, ExportOptions("p1", GROUP_KEY, keys["p1"]))
    return next(o for o in bundle["objects"] if o["type"] == "campaign")


_NODE_JCS = r"""
const ext = process.argv[1];
const jcs = (v) => v === null || typeof v !== 'object' ? JSON.stringify(v)
  : Array.isArray(v) ? '[' + v.map(jcs).join(',') + ']'
  : '{' + Object.keys(v).sort().map((k) => JSON.stringify(k) + ':' + jcs(v[k])).join(',') + '}';
let input = '';
process.stdin.on('data', (d) => { input += d; });
process.stdin.on('end', () => {
  const out = JSON.parse(input).map((o) => {
    if (o.extensions && o.extensions[ext]) delete o.extensions[ext].signature;
    return Buffer.from(jcs(o), 'utf8').toString('base64');
  });
  process.stdout.write(JSON.stringify(out));
});
"""


def _node_canonical(objects: list[dict]) -> list[bytes]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js not installed: no independent JCS implementation")
    done = subprocess.run([node, "-e", _NODE_JCS, EXTENSION_ID], input=json.dumps(objects).encode(),
                          capture_output=True, timeout=60, check=True)
    return [base64.b64decode(b) for b in json.loads(done.stdout)]


def test_signatures_verify_over_an_independent_jcs(keys) -> None:
    """Before: signatures covered orjson's sorted JSON; Node's JCS bytes differ (numbers, key order) and the
    signatures of such objects did not verify over them."""
    bundle = export_bundle(campaigns_doc(), ExportOptions("p1", GROUP_KEY, keys["p1"]))
    signed = [o for o in bundle["objects"] if o["id"] not in fixed_objects() and o["id"] not in tlp_by_id()]
    signed.append(_tricky(keys))
    public = keys["p1"].public_key()
    independents = _node_canonical(signed)
    assert orjson.dumps(_without_signature(signed[-1]), option=orjson.OPT_SORT_KEYS) != independents[-1]
    for obj, independent in zip(signed, independents, strict=True):
        block = obj["extensions"][EXTENSION_ID]["signature"]
        assert block["canon"] == CANON == "RFC8785" and block["alg"] == "Ed25519"
        assert canonical(obj) == independent, obj["id"]
        public.verify(base64.b64decode(block["value"]), independent)  # raises InvalidSignature if not
        assert verify(obj, {"p1": public}) == "p1"


def _without_signature(obj: dict) -> dict:
    out = copy.deepcopy(obj)
    del out["extensions"][EXTENSION_ID]["signature"]
    return out


def test_tampering_fails(keys) -> None:
    obj = _tricky(keys)
    keyring = {"p1": keys["p1"].public_key(), "p2": keys["p2"].public_key()}
    for change in (lambda o: o.__setitem__("name", o["name"] + " "),
                   lambda o: o["extensions"][EXTENSION_ID]["capabilities"].__setitem__("\u00f6", 4.000001),
                   lambda o: o["extensions"][EXTENSION_ID].__setitem__("accounts", 5),
                   lambda o: o["extensions"][EXTENSION_ID]["signature"].__setitem__("key_id", "p2")):
        forged = copy.deepcopy(obj)
        change(forged)
        with pytest.raises(SignatureError, match="bad signature"):
            verify(forged, keyring)
    renamed = copy.deepcopy(obj)
    renamed["extensions"][EXTENSION_ID]["signature"]["canon"] = "JCS-ish"
    with pytest.raises(SignatureError, match="unknown canonicalization"):
        verify(renamed, keyring)
    # the same values in another JSON spelling are the same JCS form: still valid
    respelled = json.loads(json.dumps(obj, indent=3).replace("4.0", "4.00000"))
    assert verify(respelled, keyring) == "p1"


def test_first_scheme_signatures_still_verify_during_the_transition(keys) -> None:
    obj = _tricky(keys)
    legacy = copy.deepcopy(obj)
    block = legacy["extensions"][EXTENSION_ID]
    del block["signature"]
    value = keys["p1"].sign(orjson.dumps(legacy, option=orjson.OPT_SORT_KEYS))
    block["signature"] = {"alg": "Ed25519", "key_id": "p1", "value": base64.b64encode(value).decode()}
    assert verify(legacy, {"p1": keys["p1"].public_key()}) == "p1"
    legacy["name"] = "altered"
    with pytest.raises(SignatureError, match="bad signature"):
        verify(legacy, {"p1": keys["p1"].public_key()})


def test_values_outside_json_numbers_are_refused(keys) -> None:
    with pytest.raises(SignatureError, match="RFC 8785"):
        sign({"id": "indicator--x", "n": 2**60}, keys["p1"], "p1")
    obj = sign({"id": "indicator--x", "n": 1}, keys["p1"], "p1")
    obj["n"] = 2**60
    with pytest.raises(SignatureError, match="RFC 8785"):
        verify(obj, {"p1": keys["p1"].public_key()})
