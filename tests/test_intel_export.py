from __future__ import annotations

import json

import pytest
from stix2validator import ValidationOptions, validate_string

from distillguard.intel.export import ExportError, ExportOptions, benign_exclusions, export_bundle, load_campaigns
from distillguard.intel.extension import EXTENSION_ID, fixed_objects
from distillguard.intel.privacy import TemplateHasher, keyed_id
from distillguard.intel.refdata import atlas_objects, tlp_by_id
from distillguard.intel.signing import SignatureError, verify
from test_intel_fixtures import GROUP_KEY, campaigns_doc, member_keys, small_store

ATLAS_IDS = {"AML.T0024.002": "attack-pattern--3f567912-629a-5e0b-ab0c-0102977c2d6c",
             "AML.T0005.001": "attack-pattern--298dc6c6-5683-5475-b724-2a2a3db3a7dc",
             "AML.T0008.005": "attack-pattern--647ac4ac-b2bc-53f7-ab83-81f421a1f0b5",
             "AML.T0040": "attack-pattern--5ac1f849-523e-51bf-a1e9-1a97ab91cc91"}


@pytest.fixture(scope="module")
def keys():
    return member_keys()


@pytest.fixture(scope="module")
def bundle(keys):
    return export_bundle(campaigns_doc(), ExportOptions("p1", GROUP_KEY, keys["p1"], tlp="amber"))


def test_bundle_is_valid_stix(bundle):
    result = validate_string(json.dumps(bundle), ValidationOptions(strict=False))
    assert result.is_valid, [str(e) for e in result.errors]
    assert not result.warnings, [str(w) for w in result.warnings]


def test_bundle_structure(bundle):
    by_type: dict[str, list] = {}
    for obj in bundle["objects"]:
        by_type.setdefault(obj["type"], []).append(obj)
    assert len(by_type["campaign"]) == 1 and len(by_type["intrusion-set"]) == 1
    kinds = {o["extensions"][EXTENSION_ID]["kind"] for o in by_type["indicator"]}
    assert kinds == {"infrastructure", "identifiers", "templates", "behaviour"}
    assert any(o["pattern_type"] == "sigma" and "correlation:" in o["pattern"] for o in by_type["indicator"])
    assert "extension-definition" in by_type and by_type["extension-definition"][0]["id"] == EXTENSION_ID
    uses = {r["target_ref"] for r in by_type["relationship"] if r["relationship_type"] == "uses"}
    assert set(ATLAS_IDS.values()) <= uses
    assert {k: atlas_objects()[k]["id"] for k in ATLAS_IDS} == ATLAS_IDS
    rel_types = {r["relationship_type"] for r in by_type["relationship"]}
    assert {"uses", "indicates", "attributed-to"} <= rel_types


def test_every_object_is_tlp_marked_and_signed(bundle, keys):
    keyring = {"p1": keys["p1"].public_key()}
    for obj in bundle["objects"]:
        if obj["type"] == "marking-definition":
            assert obj["id"] in tlp_by_id()
            continue
        assert any(ref in tlp_by_id() for ref in obj["object_marking_refs"]), obj["id"]
        if obj["id"] not in fixed_objects():
            assert verify(obj, keyring) == "p1"


def test_tampering_breaks_signature(bundle, keys):
    indicator = next(o for o in bundle["objects"] if o["type"] == "indicator")
    forged = json.loads(json.dumps(indicator))
    forged["pattern"] = "[ipv4-addr:value = '192.0.2.1']"
    with pytest.raises(SignatureError, match="bad signature"):
        verify(forged, {"p1": keys["p1"].public_key()})
    with pytest.raises(SignatureError, match="unknown key"):
        verify(indicator, {"p2": keys["p2"].public_key()})


def test_no_private_data_in_bundle(bundle):
    text = json.dumps(bundle)
    for secret in ("pay_secret_fp_777", "mailbox-farm.example", "203.0.113.9", "expert software engineer",
                   "acct_a1", "10.0.0.0/8"):
        assert secret not in text, secret
    assert keyed_id(GROUP_KEY, "payment_fp", "pay_secret_fp_777") in text
    assert "203.0.113.0/24" in text  # attacker-only infrastructure is shared


def test_templates_are_keyed_minhash(bundle):
    ind = next(o for o in bundle["objects"] if o.get("extensions", {}).get(EXTENSION_ID, {}).get("kind") == "templates")
    templates = ind["extensions"][EXTENSION_ID]["templates"]
    assert len(templates) == 1  # the rare template (count 3) is withheld
    from distillguard.intel.privacy import TemplateIndex, decode_signature
    from test_intel_fixtures import TEMPLATE
    right, wrong = TemplateHasher(GROUP_KEY), TemplateHasher(bytes(32))
    index = TemplateIndex(right)
    index.add("t", decode_signature(templates[0]["signature"], 64))
    assert index.query(TEMPLATE.format(n=4242, w="billing"))  # a new fill of the template matches
    assert not index.query("what is the capital of france and why is it famous for its food")
    other = TemplateIndex(wrong)
    other.add("t", decode_signature(templates[0]["signature"], 64))
    assert not other.query(TEMPLATE.format(n=1, w="parser"))  # without the key, even the exact text does not


def test_benign_overlap_withheld(tmp_path, keys):
    con = small_store(tmp_path / "store").connect()
    doc = campaigns_doc()
    doc["campaigns"][0]["infrastructure"]["ip_prefixes"].append("192.0.2.0/24")  # benign customers' range
    doc["campaigns"][0]["identifiers"]["email_domains"].append("gmail.com")
    ex = benign_exclusions(con, set(doc["campaigns"][0]["accounts"]))
    text = json.dumps(export_bundle(doc, ExportOptions("p1", GROUP_KEY, keys["p1"], exclusions=ex)))
    assert "192.0.2.0/24" not in text and "203.0.113.0/24" in text
    assert keyed_id(GROUP_KEY, "email_domain", "gmail.com") not in text
    assert keyed_id(GROUP_KEY, "email_domain", "mailbox-farm.example") in text


def test_bad_campaigns_file_names_field(tmp_path):
    path = tmp_path / "campaigns.json"
    path.write_text('{"campaigns": [{"id": "c1", "first_seen": "yesterday", "last_seen": "2026-01-01T00:00:00Z"}]}')
    with pytest.raises(ExportError, match=r"campaigns\.json: field 'campaigns\[0\]\.first_seen'"):
        load_campaigns(path)
    path.write_text('{"campaigns": [\n{"id": }]}')
    with pytest.raises(ExportError, match="line 2"):
        load_campaigns(path)


def test_cli_keygen_export_match(tmp_path):
    from click.testing import CliRunner

    from distillguard.cli import main

    runner = CliRunner()
    keys = tmp_path / "keys"
    assert runner.invoke(main, ["intel", "keygen", "--member", "p1", "--out", str(keys), "--group-key"]).exit_code == 0
    det = tmp_path / "det"
    det.mkdir()
    (det / "campaigns.json").write_text(json.dumps(campaigns_doc()))
    store = small_store(tmp_path / "store")
    bundle = tmp_path / "bundle.json"
    result = runner.invoke(main, ["intel", "export", "--detections", str(det), "--out", str(bundle), "--member", "p1",
                                  "--group-key", str(keys / "group.key"), "--sign-key", str(keys / "p1.key"),
                                  "--store", str(store.root)])
    assert result.exit_code == 0, result.output
    assert "pay_secret_fp_777" not in bundle.read_text()
    group = tmp_path / "group.yaml"
    group.write_text("members:\n  p1:\n    public_key: |\n" + "".join(
        f"      {line}\n" for line in (keys / "p1.pub").read_text().splitlines()))
    out = tmp_path / "matches.csv"
    result = runner.invoke(main, ["intel", "match", "--store", str(store.root), "--bundle", str(bundle),
                                  "--group-key", str(keys / "group.key"), "--group", str(group), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_text().count("acct_a") == 4 and "acct_b" not in out.read_text()
    (det / "campaigns.json").write_text("{}")
    result = runner.invoke(main, ["intel", "export", "--detections", str(det), "--out", str(bundle), "--member", "p1",
                                  "--group-key", str(keys / "group.key"), "--no-privacy-guard"])
    assert result.exit_code == 1 and "campaigns" in result.output


def test_accounts_our_detector_restricts_are_not_benign_customers(tmp_path):
    """An attacker account detection flagged but attribution left out of the campaign must not get the
    attacker's infrastructure withheld as if it were a customer's; an allowed account still does."""
    from click.testing import CliRunner

    from distillguard.cli import main

    store = small_store(tmp_path / "store")
    doc = campaigns_doc()
    doc["campaigns"][0]["accounts"] = ["acct_a1", "acct_a2"]  # acct_a3 and acct_a4 share the infrastructure
    doc["campaigns"][0]["identifiers"] = {"email_domains": ["mailbox-farm.example"]}
    det = tmp_path / "det"
    det.mkdir()
    (det / "campaigns.json").write_text(json.dumps(doc))
    key = tmp_path / "group.key"
    key.write_text(GROUP_KEY.hex() + "\n")

    def exported(verdicts: dict[str, str]) -> dict:
        (det / "accounts.csv").write_text("account_id,risk,verdict\n" + "".join(
            f"{a},0.9,{v}\n" for a, v in verdicts.items()))
        out = tmp_path / "bundle.json"
        result = CliRunner().invoke(main, ["intel", "export", "--detections", str(det), "--out", str(out),
                                           "--member", "p1", "--group-key", str(key), "--store", str(store.root)])
        assert result.exit_code == 0, result.output
        found = {}
        for obj in json.loads(out.read_text())["objects"]:
            block = obj.get("extensions", {}).get(EXTENSION_ID, {})
            found[block.get("kind")] = block
        return found

    both = exported({"acct_a3": "throttle", "acct_a4": "block"})
    assert both["infrastructure"]["tls_fps"] and both["infrastructure"]["asns"] == [64512]
    assert both["identifiers"]["identifiers"] == [
        {"kind": "email_domain", "hmac": keyed_id(GROUP_KEY, "email_domain", "mailbox-farm.example")}]
    one = exported({"acct_a3": "throttle", "acct_a4": "watch"})  # watch restricts nothing: a customer
    assert "infrastructure" not in one and "identifiers" not in one


def test_template_text_is_what_detect_shows_as_template_example():
    import duckdb

    from distillguard.attribution.columns import _NORMALISED
    from distillguard.intel.privacy import template_text

    rows = [(None, "Hello world  this is\n a test 123 with numbers 45 and more words"), ("You are 3 helpful", None),
            ("", ""), (None, None), ("SYSTEM Prompt " * 20, "  leading spaces\tand tabs 12 ab"),
            ("Σύστημα ÄÖ", "Ünïcode Wörds 1 2 3 4 5 6 7 8 9"), ("x", " ")]
    con = duckdb.connect()
    con.execute("CREATE TABLE e (system_text VARCHAR, user_text VARCHAR)")
    con.executemany("INSERT INTO e VALUES (?, ?)", rows)
    sql = [r[0] for r in con.execute(f"SELECT {_NORMALISED} FROM e e").fetchall()]
    assert [template_text(s, u) for s, u in rows] == sql
