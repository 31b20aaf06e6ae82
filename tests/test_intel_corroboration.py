"""`intel match --local`: our own detection marks accounts (local_detection) but never corroborates one member's
intel; only k distinct members do (indicators, or signed sightings reporting a local detection)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from distillguard.cli import main
from distillguard.decide import DEFAULT_POLICY, Record, decide
from test_intel_fixtures import campaigns_doc, small_store


def _run(*args: str) -> str:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def _group(keys: Path, members: tuple[str, ...]) -> Path:
    path = keys / "group.yaml"
    entries = []
    for m in members:
        pem = "".join(f"      {line}\n" for line in (keys / f"{m}.pub").read_text().splitlines())
        entries.append(f"  {m}:\n    public_key: |\n{pem}")
    path.write_text("members:\n" + "".join(entries))
    return path


def _rows(path: Path) -> dict[str, dict[str, str]]:
    with path.open(newline="") as handle:
        return {row["account_id"]: row for row in csv.DictReader(handle)}


def test_local_detection_never_corroborates_one_members_intel(tmp_path):
    keys = tmp_path / "keys"
    _run("intel", "keygen", "--member", "p1", "--out", str(keys), "--group-key")
    for member in ("p2", "p3"):
        _run("intel", "keygen", "--member", member, "--out", str(keys))
    group = _group(keys, ("p1", "p2", "p3"))
    det = tmp_path / "det"
    det.mkdir()
    (det / "campaigns.json").write_text(json.dumps(campaigns_doc()))
    bundle = tmp_path / "p1.json"
    _run("intel", "export", "--detections", str(det), "--out", str(bundle), "--member", "p1", "--group-key",
         str(keys / "group.key"), "--sign-key", str(keys / "p1.key"), "--store", str(small_store(tmp_path / "s1").root))

    # p2 matches p1's bundle; its own detector blocks acct_a1 and watches acct_a2
    local = tmp_path / "p2-accounts.csv"
    local.write_text("account_id,risk,verdict\nacct_a1,0.95,block\nacct_a2,0.4,watch\nacct_b1,0.1,allow\n")
    store2 = small_store(tmp_path / "s2")
    matches, sightings = tmp_path / "p2-matches.csv", tmp_path / "p2-sightings.json"
    _run("intel", "match", "--store", str(store2.root), "--bundle", str(bundle), "--group-key", str(keys / "group.key"),
         "--group", str(group), "--local", str(local), "--out", str(matches), "--sightings", str(sightings),
         "--member", "p2", "--sign-key", str(keys / "p2.key"))
    rows = _rows(matches)
    assert set(rows) == {"acct_a1", "acct_a2", "acct_a3", "acct_a4"}
    assert {a: r["local_detection"] for a, r in rows.items()} == {
        "acct_a1": "true", "acct_a2": "true", "acct_a3": "false", "acct_a4": "false"}
    assert all(r["corroborated"] == "false" for r in rows.values())  # before: acct_a1 and acct_a2 corroborated

    # the decision: one member's intel raises risk up to intel_max_risk and no further, even at the
    # account our own detector flagged (our evidence is weighed by decide on its own)
    scores = np.array([float(r["intel_score"]) for r in rows.values()])
    assert scores.max() > DEFAULT_POLICY.intel_max_risk  # strong intel: the cap is what holds it
    decided = decide(Record(n=np.full(len(rows), 100), families={}, intel_score=scores,
                            intel_corroborated=np.array([r["corroborated"] == "true" for r in rows.values()])))
    assert decided.risk.max() <= DEFAULT_POLICY.intel_max_risk + 1e-9
    assert "block" not in decided.verdicts

    # p2's signed sightings report its local detection: at p3, p1's indicators plus p2's sighting are two members
    seen = json.loads(sightings.read_text())["objects"]
    assert seen and any(s["extensions"][next(iter(s["extensions"]))]["local_detection"] for s in seen)
    at_p3 = tmp_path / "p3-matches.csv"
    _run("intel", "match", "--store", str(small_store(tmp_path / "s3").root), "--bundle", str(bundle), str(sightings),
         "--group-key", str(keys / "group.key"), "--group", str(group), "--out", str(at_p3))
    assert all(r["corroborated"] == "true" for r in _rows(at_p3).values())


def test_match_help_states_the_rule():
    text = " ".join(CliRunner().invoke(main, ["intel", "match", "--help"]).output.split())
    assert "It never corroborates" in text and "intel_max_risk and no further" in text
    assert "watch or above corroborate" not in text
