"""The export privacy guard on by default, against the real artefacts: a simulated provider, real detection,
`intel export` through the CLI, and stix2-validator in strict mode (``stix2_validator --strict``)."""

from __future__ import annotations

import csv
import ipaddress
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from stix2validator import ValidationOptions, validate_string

from distillguard.cli import main
from distillguard.decide import flagged
from distillguard.intel.export import ExportOptions, benign_exclusions, export_bundle
from distillguard.intel.extension import EXTENSION_ID
from distillguard.intel.privacy import keyed_id
from distillguard.store import Store
from test_intel_fixtures import GROUP_KEY, campaigns_doc, member_keys, small_store


def _ok(result: Any) -> None:
    assert result.exit_code == 0, (result.output, result.exception)


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """`simulate --scale tiny`, ingested into a store, and `detect` over it (the tester's path)."""
    root = tmp_path_factory.mktemp("guard")
    runner = CliRunner()
    _ok(runner.invoke(main, ["simulate", "--scale", "tiny", "--seed", "11", "--out", str(root / "sim")]))
    logs = sorted(str(p) for p in (root / "sim" / "exchanges").iterdir())
    _ok(runner.invoke(main, ["ingest", "--store", str(root / "store"), "--accounts",
                             str(root / "sim" / "accounts.jsonl"), *logs]))
    _ok(runner.invoke(main, ["detect", "--store", str(root / "store"), "--out", str(root / "det")]))
    _ok(runner.invoke(main, ["intel", "keygen", "--member", "p1", "--out", str(root / "keys"), "--group-key"]))
    return {"root": root, "store": root / "store", "det": root / "det", "keys": root / "keys"}


def _export(provider: dict[str, Path], name: str, *extra: str) -> tuple[Any, Path]:
    out = provider["root"] / name
    result = CliRunner().invoke(main, ["intel", "export", "--detections", str(provider["det"]), "--out", str(out),
                                       "--member", "p1", "--group-key", str(provider["keys"] / "group.key"),
                                       "--sign-key", str(provider["keys"] / "p1.key"), *extra])
    return result, out


def _strictly_valid(text: str) -> None:
    result = validate_string(text, ValidationOptions(strict=True))
    assert result.is_valid, [str(e) for e in result.errors]
    assert not result.warnings, [str(w) for w in result.warnings]


def _customers(provider: dict[str, Path]) -> dict[str, set]:
    """What the provider's benign customers use, computed here from the store and detect's output: accounts in
    no campaign that the detector does not restrict (verdict throttle or block)."""
    doc = json.loads((provider["det"] / "campaigns.json").read_text())
    in_campaigns = {a for c in doc["campaigns"] for a in c["accounts"]}
    with (provider["det"] / "accounts.csv").open(newline="") as handle:
        restricted = {row["account_id"] for row in csv.DictReader(handle) if flagged(row["verdict"])}
    con = Store.open(provider["store"], create=False).connect()
    excluded = sorted(in_campaigns | restricted)
    placeholders = ",".join("?" * len(excluded)) or "NULL"
    rows = con.execute(f"SELECT ip, asn, user_agent, tls_fp FROM exchanges WHERE account_id NOT IN ({placeholders})",
                       excluded).fetchall()
    ids = con.execute("SELECT payment_fp, email_domain, signup_ip FROM accounts "
                      f"WHERE account_id NOT IN ({placeholders})", excluded).fetchall()
    out: dict[str, set] = {"ips": {r[0] for r in rows if r[0]}, "asns": {int(r[1]) for r in rows if r[1] is not None},
                           "user_agents": {r[2] for r in rows if r[2]}, "tls_fps": {r[3] for r in rows if r[3]}}
    out["slash24"] = {str(ipaddress.ip_network(f"{ip}/24", strict=False)) for ip in out["ips"] if ":" not in ip}
    group_key = bytes.fromhex((provider["keys"] / "group.key").read_text().strip())
    out["keyed"] = {keyed_id(group_key, kind, v) for p, e, s in ids
                    for kind, v in (("payment_fp", p), ("email_domain", e), ("signup_ip", s)) if v}
    return out


def _leaks(bundle: dict[str, Any], customers: dict[str, set]) -> list[str]:
    """Every customer value (IP, /24, ASN, UA, TLS fingerprint, keyed identifier) the bundle carries."""
    text = json.dumps(bundle)
    found = [f"ip {ip}" for ip in customers["ips"] if f'"{ip}"' in text or f"'{ip}'" in text]
    found += [f"/24 {net}" for net in customers["slash24"] if net in text]
    found += [f"keyed {h[:12]}" for h in customers["keyed"] if h in text]
    for obj in bundle["objects"]:
        block = obj.get("extensions", {}).get(EXTENSION_ID, {})
        if block.get("kind") != "infrastructure":
            continue
        pattern = obj["pattern"]
        for prefix in block.get("ip_prefixes", []):
            net = ipaddress.ip_network(prefix, strict=False)
            found += [f"{ip} in {prefix}" for ip in customers["ips"]
                      if (":" in ip) == (net.version == 6) and ipaddress.ip_address(ip) in net]
        found += [f"asn {a}" for a in block.get("asns", []) if a in customers["asns"]]
        found += [f"asn {a} in pattern" for a in customers["asns"] if f"autonomous-system:number = {a}]" in pattern]
        for kind in ("user_agents", "tls_fps"):
            found += [f"{kind} {v}" for v in block.get(kind, []) if v in customers[kind]]
    return found


def test_export_requires_the_guard_or_an_explicit_opt_out(provider):
    result, out = _export(provider, "none.json")
    assert result.exit_code == 2 and not out.exists()
    assert "--store is required" in result.output and "--no-privacy-guard" in result.output
    result, _ = _export(provider, "both.json", "--store", str(provider["store"]), "--no-privacy-guard")
    assert result.exit_code == 2


def test_guarded_export_is_strictly_valid_and_withholds_every_customer_value(provider):
    """Before: `--store` failed here ("asns: empty arrays are not allowed") and the default export shared
    the infrastructure of customers; now the guarded bundle validates strictly and carries none of it."""
    customers = _customers(provider)
    doc = json.loads((provider["det"] / "campaigns.json").read_text())
    assert doc["campaigns"], "detection found no campaign: the test would prove nothing"

    result, out = _export(provider, "unguarded.json", "--no-privacy-guard")
    _ok(result)
    assert "--no-privacy-guard" in result.output  # the opt-out is announced
    unguarded = out.read_text()
    _strictly_valid(unguarded)
    assert _leaks(json.loads(unguarded), customers), "the scenario has no shared infrastructure"

    result, out = _export(provider, "guarded.json", "--store", str(provider["store"]))
    _ok(result)
    guarded = out.read_text()
    _strictly_valid(guarded)
    bundle = json.loads(guarded)
    assert _leaks(bundle, customers) == []
    for obj in bundle["objects"]:  # no empty list anywhere, no indicator left with nothing to match
        block = obj.get("extensions", {}).get(EXTENSION_ID, {})
        assert all(v != [] for v in block.values()), obj["id"]
        if block.get("kind") == "infrastructure":
            assert any(block.get(k) for k in ("ip_prefixes", "asns", "tls_fps", "user_agents"))


def _infrastructure(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return [o for o in bundle["objects"] if o.get("extensions", {}).get(EXTENSION_ID, {}).get("kind")
            == "infrastructure"]


def test_withholding_never_leaves_an_empty_list(tmp_path):
    """A hand-built store: the campaign's ASN, TLS fingerprint and User-Agent are also its customers'; only the
    prefix is the attacker's own. Then all of it is the customers': the indicator goes."""
    keys = member_keys(("p1",))
    con = small_store(tmp_path / "store").connect()
    doc = campaigns_doc()
    doc["campaigns"][0]["infrastructure"] = {"ip_prefixes": ["203.0.113.0/24"], "asns": [7922],
                                             "tls_fps": ["t13d_benign"], "user_agents": ["Mozilla/5.0"]}
    ex = benign_exclusions(con, set(doc["campaigns"][0]["accounts"]))
    bundle = export_bundle(doc, ExportOptions("p1", GROUP_KEY, keys["p1"], exclusions=ex))
    _strictly_valid(json.dumps(bundle))
    [infra] = _infrastructure(bundle)
    block = infra["extensions"][EXTENSION_ID]
    assert block["ip_prefixes"] == ["203.0.113.0/24"]
    assert not {"asns", "tls_fps", "user_agents"} & set(block)
    assert infra["pattern"] == "[ipv4-addr:value ISSUBSET '203.0.113.0/24']"

    doc["campaigns"][0]["infrastructure"]["ip_prefixes"] = ["192.0.2.0/24"]
    bundle = export_bundle(doc, ExportOptions("p1", GROUP_KEY, keys["p1"], exclusions=ex))
    _strictly_valid(json.dumps(bundle))
    assert _infrastructure(bundle) == []
    ids = {o["id"] for o in bundle["objects"]}
    assert all(o["source_ref"] in ids for o in bundle["objects"] if o["type"] == "relationship")
