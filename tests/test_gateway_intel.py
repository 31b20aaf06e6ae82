"""Shared intel matched per request in the gateway: evidence, provenance, corroboration cap, CLI wiring."""

from __future__ import annotations

import csv

import orjson
import pytest
from click.testing import CliRunner

from conftest import make_record
from distillguard.cli import main
from distillguard.gateway.engine import Engine
from distillguard.gateway.intel import RequestIntel, _merge
from distillguard.gateway.policy import load_policy
from distillguard.gateway.scoring import FusedScorer
from distillguard.intel.export import ExportOptions, export_bundle
from distillguard.model import COLUMNS, flatten
from test_intel_fixtures import GROUP_KEY, TEMPLATE, campaigns_doc, member_keys

BENIGN_CLIENT = {"ip": "198.51.100.20", "user_agent": "Mozilla/5.0", "asn": 3320, "country": "DE"}


@pytest.fixture(scope="module")
def bundle():
    return export_bundle(campaigns_doc(), ExportOptions("p1", GROUP_KEY, member_keys(("p1",))["p1"], tlp="amber"))


def _row(i: int, account: str, text: str, client: dict | None = None) -> dict:
    record = make_record(i, account=account, ts=f"2026-03-01T00:{i // 60:02d}:{i % 60:02d}.000Z")
    record["request"]["messages"] = [{"role": "user", "content": text}]
    if client is not None:
        record["client"] = client
    return dict(zip(COLUMNS, flatten(record), strict=True))


def test_request_matches_infrastructure_and_template_with_provenance(bundle):
    intel = RequestIntel(bundle, GROUP_KEY)
    result = intel.score("acct_x", _row(1, "acct_x", TEMPLATE.format(n=7, w="cache")))
    assert result.score > 0.6 and not result.corroborated  # one member's word
    text = "; ".join(result.reasons)
    assert "intel infrastructure [ip,user_agent]" in text and "intel templates [template]" in text
    assert "TLP:AMBER" in text
    clean = intel.score("acct_y", _row(2, "acct_y", "What is the capital of France, please?", BENIGN_CLIENT))
    assert (clean.score, clean.reasons, clean.corroborated) == (0.0, (), False)


def test_template_as_detect_exports_it_matches_whole_requests():
    """campaigns.json holds a template's *head* (system prompt start | first user words); requests are whole
    prompts. Both sides are compared in the head form, so the shared signature matches other fills."""
    from distillguard.intel.privacy import template_text

    system = ("You are an autonomous software engineering agent working in a sandboxed Linux container. Use the "
              "provided tools to inspect the repository, make minimal changes, and run the tests. Think before every "
              "tool call.")
    task = "Collect the latest release notes of our three main dependencies and summarise breaking changes in {m}"
    doc = campaigns_doc()
    doc["campaigns"][0]["templates"] = [{"fingerprint": "f1", "example": template_text(system, task.format(m="x")),
                                         "count": 70}]
    doc["campaigns"][0]["infrastructure"] = {}
    doc["campaigns"][0]["identifiers"] = {}
    intel = RequestIntel(export_bundle(doc, ExportOptions("p1", GROUP_KEY)), GROUP_KEY)
    row = _row(1, "acct_h", task.format(m="the billing module, then open a pull request with the fixes"),
               BENIGN_CLIENT)
    row["system_text"] = system
    result = intel.score("acct_h", row)
    assert result.score == pytest.approx(0.6) and "intel templates [template]" in result.reasons[0]
    other = _row(2, "acct_o", "Collect the latest release notes of our three main dependencies", BENIGN_CLIENT)
    other["system_text"] = "You are a helpful assistant."
    assert intel.score("acct_o", other).score == 0.0  # same words, another system prompt: another template


def test_keyed_identifiers_from_account_records(bundle):
    intel = RequestIntel(bundle, GROUP_KEY, accounts={"acct_p": {"payment_fp": "pay_secret_fp_777"},
                                                      "acct_q": {"payment_fp": "pay_other"}})
    result = intel.score("acct_p", _row(1, "acct_p", "hello there friend", BENIGN_CLIENT))
    assert result.score > 0.5 and "identifiers [payment_fp]" in result.reasons[0]
    assert intel.score("acct_q", _row(2, "acct_q", "hello there friend", BENIGN_CLIENT)).score == 0.0


def test_wrong_group_key_matches_nothing_keyed(bundle):
    intel = RequestIntel(bundle, bytes(32), accounts={"acct_p": {"payment_fp": "pay_secret_fp_777"}})
    result = intel.score("acct_p", _row(1, "acct_p", TEMPLATE.format(n=7, w="cache"), BENIGN_CLIENT))
    assert result.score == 0.0 and result.reasons == ()


def test_strength_is_the_share_of_requests_that_hit(bundle):
    intel = RequestIntel(bundle, GROUP_KEY)
    first = intel.score("acct_m", _row(1, "acct_m", "an ordinary question about rust", dict(BENIGN_CLIENT,
                                                                                         ip="203.0.113.5"))).score
    for i in range(2, 11):
        later = intel.score("acct_m", _row(i, "acct_m", "an ordinary question about rust", BENIGN_CLIENT)).score
    assert 0 < later < first


async def test_uncorroborated_intel_throttles_never_blocks(bundle, tmp_path):
    policy = load_policy(_enforce(tmp_path))
    engine = Engine(policy, FusedScorer(intel=RequestIntel(bundle, GROUP_KEY), policy=policy.decide))
    actions = set()
    for i in range(30):
        row = _row(i, "acct_x", TEMPLATE.format(n=i, w="cache"))
        decision = await engine.decide(row["id"], "acct_x", None, row, row["ts"])
        await engine.complete(decision, row)
        actions.add(decision.action)
    assert actions == {"throttle"} and decision.risk == policy.intel_max_risk
    assert any("single member" in r for r in decision.reasons)


def test_overlapping_prefixes_merge():
    assert _merge([(10, 20), (0, 5), (12, 30), (31, 40), (50, 60)]) == [(0, 5), (10, 40), (50, 60)]


def _enforce(tmp_path):
    from importlib import resources

    text = resources.files("distillguard").joinpath("data", "policy-default.yaml").read_text()
    path = tmp_path / "enforce.yaml"
    path.write_text(text.replace("mode: shadow", "mode: enforce"))
    return path


def test_replay_cli_loads_bundles(bundle, tmp_path):
    records = []
    for i in range(40):
        attack = make_record(i, account="attacker", ts=f"2026-03-01T00:{i:02d}:00.000Z")
        attack["request"]["messages"] = [{"role": "user", "content": TEMPLATE.format(n=i, w="router")}]
        benign = make_record(100 + i, account="benign", ts=f"2026-03-01T00:{i:02d}:30.000Z", client=BENIGN_CLIENT)
        records += [attack, benign]
    logs = tmp_path / "log.jsonl"
    logs.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    (tmp_path / "b.json").write_bytes(orjson.dumps(bundle))
    (tmp_path / "group.key").write_text(GROUP_KEY.hex() + "\n")
    args = ["gateway", "replay", str(logs), "--policy", str(_enforce(tmp_path)), "--out", str(tmp_path / "out"),
            "--intel", str(tmp_path / "b.json"), "--group-key", str(tmp_path / "group.key")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    with open(tmp_path / "out" / "accounts.csv") as handle:
        accounts = {r["account_id"]: r for r in csv.DictReader(handle)}
    assert accounts["attacker"]["first_restricted"] == "1"  # intel throttles the first request
    with open(tmp_path / "out" / "decisions.csv") as handle:
        decisions = list(csv.DictReader(handle))
    for row in decisions:
        if row["account_id"] == "attacker":  # one member's intel: throttle at most (its own evidence is weak)
            assert row["action"] != "block", row["reasons"]
        if row["account_id"] == "benign":  # judged on its own evidence; intel never matches it
            assert "intel " not in row["reasons"]
    missing = CliRunner().invoke(main, args[:-2])
    assert missing.exit_code == 2 and "--group-key" in missing.output
