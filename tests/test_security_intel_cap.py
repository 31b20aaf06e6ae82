"""Security issue, finding 3: one member must never get a benign account blocked, anywhere.

The prober's case: a p1-signed, uncorroborated bundle matching customers of p2. Batch detection capped them, but
`gateway replay --intel` blocked an eval runner whose own online risk (0.59-0.75) had made the single member's
intel count as "corroborated". The rule now, in every path: one member's intel raises risk to
``intel_max_risk`` and no further; the account's own evidence stands on its own.
"""

from __future__ import annotations

import csv

import httpx
import numpy as np
import orjson
import pytest
from click.testing import CliRunner

from conftest import make_record
from distillguard.cli import main
from distillguard.decide import DecisionPolicy
from distillguard.detect import Model, score_accounts
from distillguard.features import FEATURE_NAMES
from distillguard.gateway import fake_upstream
from distillguard.gateway.app import Gateway
from distillguard.gateway.engine import Engine
from distillguard.gateway.intel import RequestIntel
from distillguard.gateway.policy import load_policy
from distillguard.gateway.scoring import BaseOnlineEvidence, FusedScorer, Online
from distillguard.intel.export import ExportOptions, export_bundle
from test_intel_fixtures import GROUP_KEY, TEMPLATE, campaigns_doc, member_keys

POLICY = DecisionPolicy()
OWN = {"allow": {}, "watch": {"elicitation": 3.0}, "throttle": {"elicitation": 3.0, "timing": 1.5, "session": 1.0}}


@pytest.fixture(scope="module")
def bundle() -> dict:
    return export_bundle(campaigns_doc(), ExportOptions("p1", GROUP_KEY, member_keys(("p1",))["p1"], tlp="amber"))


@pytest.mark.parametrize("level", list(OWN))
def test_batch_single_member_intel_never_lifts_past_its_cap(level: str) -> None:
    features = {name: np.zeros(3) for name in FEATURE_NAMES}
    features["log_n"] = np.log1p(np.full(3, 200.0))
    model = Model()
    own = score_accounts(np.array(["a", "b", "c"]), features, model, fit=False)
    intel = [{"account_id": a, "intel_score": 1.0, "intel_reasons": "p1 says so", "corroborated": False}
             for a in ("a", "b", "c")]
    hit = score_accounts(np.array(["a", "b", "c"]), features, model, intel, fit=False)
    assert (hit.risk <= np.maximum(own.risk, POLICY.intel_max_risk) + 1e-9).all()
    assert "block" not in hit.verdicts
    corroborated = [dict(row, corroborated=True) for row in intel]
    assert (score_accounts(np.array(["a", "b", "c"]), features, model, corroborated, fit=False).risk >= hit.risk).all()


class _Fixed(BaseOnlineEvidence):
    """Online evidence at a chosen level for every account (as the eval runner's own evidence was)."""

    def __init__(self, families: dict[str, float]) -> None:
        self.families = families

    def observe(self, row: dict) -> None:
        pass

    def evidence(self, account_id: str, now_ms: int) -> Online:
        return Online(200.0, dict(self.families), ("own evidence",)) if self.families else Online(200.0, {})


@pytest.mark.parametrize("level", list(OWN))
async def test_gateway_single_member_intel_never_blocks_and_never_lifts_past_its_cap(bundle, level: str) -> None:
    policy = load_policy()
    enforce = policy.__class__(**{**policy.__dict__, "mode": "enforce"})
    alone = FusedScorer(online=_Fixed(OWN[level]), policy=enforce.decide)
    scorer = FusedScorer(online=_Fixed(OWN[level]), policy=enforce.decide, intel=RequestIntel(bundle, GROUP_KEY))
    engine = Engine(enforce, scorer)
    gw = Gateway("http://up", engine, keys={"k1": "acct_eval"}, transport=httpx.ASGITransport(app=fake_upstream.app))
    own_risk = alone.score("acct_eval", {}, 0).risk
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=gw), base_url="http://gw") as client:
        for i in range(20):
            body = {"model": "m", "messages": [{"role": "user", "content": TEMPLATE.format(n=i, w="cache")}]}
            resp = await client.post("/v1/chat/completions", json=body,
                                     headers={"authorization": "Bearer k1", "user-agent": "python-httpx/0.27",
                                              "x-forwarded-for": "203.0.113.5"})
            assert resp.status_code != 403, resp.text  # never blocked on one member's word
            score = scorer.score("acct_eval", {}, 0)
            assert score.risk <= max(own_risk, enforce.decide.intel_max_risk) + 1e-9
            assert score.verdict != "block"
    await gw.shutdown()


def test_replay_single_member_intel_never_blocks(bundle, tmp_path) -> None:
    records = []
    for i in range(60):
        record = make_record(i, account="acct_eval", ts=f"2026-03-01T{i // 60:02d}:{i % 60:02d}:00.000Z")
        # an eval runner: grading prompts with step-by-step reasoning, from p1's shared infrastructure
        record["request"]["messages"] = [{"role": "user", "content": TEMPLATE.format(n=i, w="cache") +
                                          " Grade the answer on a scale of 1-10 against the rubric, step by step."}]
        records.append(record)
    logs = tmp_path / "log.jsonl"
    logs.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    (tmp_path / "b.json").write_bytes(orjson.dumps(bundle))
    (tmp_path / "group.key").write_text(GROUP_KEY.hex() + "\n")
    from importlib import resources

    text = resources.files("distillguard").joinpath("data", "policy-default.yaml").read_text()
    (tmp_path / "p.yaml").write_text(text.replace("mode: shadow", "mode: enforce"))
    result = CliRunner().invoke(main, ["gateway", "replay", str(logs), "--policy", str(tmp_path / "p.yaml"),
                                       "--out", str(tmp_path / "out"), "--intel", str(tmp_path / "b.json"),
                                       "--group-key", str(tmp_path / "group.key")])
    assert result.exit_code == 0, result.output
    with open(tmp_path / "out" / "decisions.csv") as handle:
        decisions = list(csv.DictReader(handle))
    assert decisions and all(d["action"] != "block" for d in decisions)
    assert any("intel" in d["reasons"] for d in decisions), "the bundle did match: the cap, not a miss, held"
    with open(tmp_path / "out" / "accounts.csv") as handle:
        final = next(csv.DictReader(handle))
    assert final["final_verdict"] != "block"
