"""Evidence, baselines, the one decision stage, the detector registry and the `detect` command end to end."""

from __future__ import annotations

import csv
import math
import re
from pathlib import Path

import numpy as np
import orjson
import pytest
from click.testing import CliRunner

from distillguard.cli import main
from distillguard.decide import BLOCK, THROTTLE, WATCH, DecisionPolicy, Record, decide, flagged, verdict
from distillguard.detect import (
    DETECTORS,
    FAMILIES,
    Baselines,
    Model,
    build,
    check_detector,
    register,
    score_accounts,
)
from distillguard.detect.evidence import ITEMS
from distillguard.detect.train import load_simulation
from distillguard.features import FEATURE_NAMES
from distillguard.pipeline import ACCOUNTS_HEADER, run_detection


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from distillguard.simulate import simulate

    out = tmp_path_factory.mktemp("sim") / "tiny"
    simulate(out, "tiny", seed=11)
    return out


@pytest.fixture(scope="module")
def labelled(sim: Path):
    return load_simulation(sim)


def population(n: int = 400, seed: int = 0, **over: float) -> dict[str, np.ndarray]:
    """Features of ``n`` ordinary chat accounts (every feature present), varied, with overrides for all."""
    rng = np.random.default_rng(seed)
    f = {name: np.zeros(n) for name in FEATURE_NAMES}
    f["log_n"] = np.log1p(rng.integers(20, 200, n).astype(float))
    f["log_tokens_per_req"] = rng.normal(5.8, 0.4, n)
    f["log_prompt_per_req"] = rng.normal(5.5, 0.5, n)
    f["amplification"] = rng.normal(0.2, 0.5, n)
    f["single_turn_share"] = rng.uniform(0.3, 0.8, n)
    f["log_ip"] = np.log1p(rng.integers(1, 4, n).astype(float))
    f["ip_per_req"] = np.expm1(f["log_ip"]) / np.expm1(f["log_n"])
    f["log_asn"] = np.log1p(np.ones(n))
    f["log_ua"] = np.log1p(np.ones(n))
    f["hour_entropy"] = rng.uniform(0.3, 0.6, n)
    f["cap_entropy"] = rng.uniform(0.1, 0.4, n)
    f["n_scripts"] = np.ones(n)
    f["age_days"] = rng.uniform(60, 900, n)
    f["tier"] = np.ones(n)
    f["verified"] = np.ones(n)
    f["cot_share"] = rng.uniform(0, 0.05, n)
    for name, value in over.items():
        f[name] = np.full(n, float(value))
    return f


def with_rows(base: dict[str, np.ndarray], extra: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: np.concatenate([base[k], extra[k]]) for k in base}


# ---- the decision stage ----------------------------------------------------------------------------------------

def record(families: dict[str, float], n: float = 100.0, **kw) -> Record:
    return Record(np.array([n]), {k: np.array([v]) for k, v in families.items()}, **kw)


def test_verdict_thresholds_come_from_one_policy() -> None:
    assert verdict(0.0) == "allow" and verdict(WATCH) == "watch" and verdict(THROTTLE) == "throttle"
    assert verdict(BLOCK) == "block"
    policy = DecisionPolicy()
    assert policy.risk_of_points(np.array([policy.throttle_points]))[0] == pytest.approx(THROTTLE)
    assert policy.risk_of_points(np.array([policy.block_points]))[0] == pytest.approx(BLOCK)
    with pytest.raises(ValueError, match="decide: unknown field"):
        DecisionPolicy.from_mapping({"trottle": 0.5})
    with pytest.raises(ValueError, match="watch < throttle < block"):
        DecisionPolicy.from_mapping({"throttle": 0.9})


def test_one_family_never_restricts_two_do() -> None:
    one = decide(record({"harvest": 20.0}))
    assert one.verdicts == ["watch"] and "one family only" in " ".join(one.reasons[0])
    policy = DecisionPolicy()
    two = decide(record({"harvest": 4.0, "elicitation": policy.block_points - 4.0}))
    assert two.verdicts == ["block"]
    three = decide(record({"harvest": 2.5, "identity": 2.0, "timing": policy.throttle_points - 4.5}))
    assert three.verdicts == ["throttle"]


def test_volume_gates_hold_small_accounts_back() -> None:
    strong = {"harvest": 4.0, "elicitation": 3.0, "identity": 3.0}
    assert decide(record(strong, n=3)).verdicts == ["watch"]
    assert decide(record(strong, n=10)).verdicts == ["throttle"]
    assert decide(record(strong, n=40)).verdicts == ["block"]


@pytest.mark.parametrize("own_families", [{}, {"harvest": 3.0, "identity": 2.5}, {"harvest": 2.0, "session": 1.5}])
def test_single_member_intel_raises_to_its_cap_and_no_further(own_families: dict[str, float]) -> None:
    """Security issue, finding 3: an eval runner at online risk 0.59-0.75 plus one member's bundle was blocked."""
    policy = DecisionPolicy()
    base = decide(record(own_families), policy)
    hit = decide(record(own_families, intel_score=np.array([1.0]), intel_corroborated=np.array([False]),
                        intel_reasons=["intel from p1"]), policy)
    assert hit.risk[0] == pytest.approx(max(base.risk[0], min(hit.risk[0], policy.intel_max_risk)))
    assert hit.risk[0] <= max(base.risk[0], policy.intel_max_risk) + 1e-9
    assert hit.verdicts[0] != "block"
    corroborated = decide(record(own_families, intel_score=np.array([1.0]), intel_corroborated=np.array([True])))
    assert corroborated.risk[0] >= hit.risk[0]


def test_reasons_are_words_with_numbers_and_never_repeat(labelled) -> None:
    scores = score_accounts(labelled.table.account_ids, labelled.table.features)
    raw = re.compile(r"\b(" + "|".join(re.escape(n) for n in FEATURE_NAMES if "_" in n) + r")\b")  # snake_case
    explained = 0
    for risk, reasons in zip(scores.risk, scores.reasons, strict=True):
        if risk < WATCH:
            continue
        explained += 1
        assert reasons, "every watch-or-above verdict is explained"
        assert len(reasons) == len(set(reasons))
        for reason in reasons:
            assert not raw.search(reason), reason
        evidence = [r for r in reasons if " vs " in r]
        assert all(re.search(r"\d", r) for r in evidence), evidence
    assert explained


# ---- baselines: calibrated on the deployment --------------------------------------------------------------------

def test_a_deployment_of_long_writers_is_not_flagged_for_writing_long() -> None:
    """Calibration on the deployment: what is usual here is judged against here, not the shipped priors."""
    writers = population(seed=1, log_tokens_per_req=8.3, amplification=2.5)
    writers["log_tokens_per_req"] += np.random.default_rng(2).normal(0, 0.3, len(writers["log_n"]))
    scores = score_accounts(np.arange(len(writers["log_n"])), writers)
    assert scores.components["harvest"].max() < 1.0
    against_priors = score_accounts(np.arange(len(writers["log_n"])), writers, Model(), fit=False)
    assert against_priors.components["harvest"].mean() > 1.0  # the shipped priors alone would have objected


def test_a_cohort_attackers_dominate_cannot_normalise_them() -> None:
    benign = population(600, seed=3)
    hydra = population(450, seed=4, log_ua=math.log1p(7), log_asn=math.log1p(19), tool_share=1.0, age_days=1.0)
    hydra["log_ip"] = np.full(450, math.log1p(27))
    hydra["ip_per_req"] = np.full(450, 0.3)
    agents = population(60, seed=5, tool_share=1.0)  # the hydra's cohort: a few real agents, many hydra accounts
    feats = with_rows(with_rows(benign, agents), hydra)
    b = Baselines.fit(feats)
    scores = score_accounts(np.arange(len(feats["log_n"])), feats, Model(baselines=b), fit=False)
    assert (scores.components["identity"][-450:] >= 2.5).mean() > 0.95
    assert scores.components["identity"][:660].max() < 1.0


def test_a_card_paying_for_unrelated_parties_is_identity_evidence_a_company_card_is_not() -> None:
    feats = population(12, seed=6)
    feats["card_parties"] = np.array([0, 1, 1, 2, 2, 3, 3, 4, 6, 1, 1, 1], dtype=float)
    scores = score_accounts(np.arange(12), feats)
    points = scores.components["item:card_across_parties"]
    assert points[:5].tolist() == [0.0] * 5  # no card, one party (a company card), a couple
    assert points[5:9].tolist() == [1.0, 1.0, 1.5, 1.5]
    from distillguard.detect.evidence import coordination_eligible
    items = {k.split(":", 1)[1]: v for k, v in scores.components.items() if k.startswith("item:")}
    assert coordination_eligible(scores.components, items)[5:9].all()  # a shared card may carry coordination


def test_card_parties_count_organisations_company_domains_and_individuals() -> None:
    import duckdb

    from distillguard.features import build_context
    from distillguard.model import party

    assert party("a", "org_1", "gmail.com") == "org:org_1"
    assert party("a", "", "acme.com") == "domain:acme.com"
    assert party("a", None, "gmail.com") == party("a", "", "GMAIL.co.uk") == "account:a"
    con = duckdb.connect()
    con.execute("CREATE TABLE accounts (account_id VARCHAR, payment_fp VARCHAR, org_id VARCHAR, email_domain VARCHAR)")
    con.execute("""INSERT INTO accounts VALUES
        ('t1', 'team', 'org_1', 'acme.com'), ('t2', 'team', 'org_1', 'acme.com'), ('t3', 'team', 'org_1', 'acme.com'),
        ('c1', 'couple', '', 'gmail.com'), ('c2', 'couple', '', 'outlook.com'),
        ('h1', 'ring', '', 'gmail.com'), ('h2', 'ring', '', 'yahoo.com'), ('h3', 'ring', 'org_9', 'x.io'),
        ('h4', 'ring', '', 'lunaris-ai.com'), ('s1', 'solo', '', 'gmail.com')""")
    context = build_context(con, {"models": np.array([]), "first_ts": np.array([])})
    assert context.payment_parties == {"couple": 2, "ring": 4}  # the team's card pays for one organisation
    from distillguard.features.compute import Context
    assert Context.from_json(orjson.loads(orjson.dumps(context.to_json()))).payment_parties == {"couple": 2, "ring": 4}


def test_a_rate_counts_by_how_far_above_the_benign_rate_not_by_volume_alone() -> None:
    """A heavy account with a cue in a few per cent of its requests (a nightly batch job with some grading prompts)
    is significant by sheer volume but not what a harvester does; the same share in most requests is."""
    feats = population(6, seed=7)
    feats["log_n"] = np.log1p(np.array([900.0, 900.0, 900.0, 8.0, 3.0, 900.0]))
    feats["rubric_share"] = np.array([0.0, 0.06, 0.9, 1.0, 1.0, 0.02])
    points = score_accounts(np.arange(6), feats, Model(), fit=False).components["item:grading"]
    assert points[0] == 0.0
    assert points[1] < 0.75  # 54 of 900 against a shipped 1.2 %: a billion-to-one by volume, a lift of 5
    assert points[2] == pytest.approx(2.0)  # the cue is the account's purpose: the item's cap
    assert points[3] == pytest.approx(2.0)  # 8 of 8: a lift of ~80, and a billion-to-one already
    assert 1.0 < points[4] < 2.0  # 3 of 3: the binomial surprise of three requests holds it below the cap
    assert points[5] == 0.0  # under twice the benign rate: ordinary variation between customers


def test_taking_the_models_probabilities_is_its_own_family_and_never_restricts_alone() -> None:
    """Log-probabilities of long generations are what soft-label distillation needs and no volume of text gives:
    they count beside the (capped) harvest of text, so a campaign that takes both is not hidden under one cap;
    taken alone they are one trait and stay below throttle."""
    feats = population(4, seed=3)
    feats["log_n"] = np.log1p(np.array([200.0, 200.0, 200.0, 200.0]))
    feats["logits_share"] = np.array([0.0, 1.0, 1.0, 0.0])
    feats["hit_cap_share"] = np.array([0.0, 0.0, 0.9, 0.9])
    feats["log_tokens_per_req"] = np.log1p(np.array([400.0, 400.0, 4000.0, 4000.0]))
    scores = score_accounts(np.arange(4), feats, Model(), fit=False)
    distribution, harvest = scores.components["distribution"], scores.components["harvest"]
    assert distribution[0] == 0.0 and distribution[1] == pytest.approx(2.0) and distribution[2] == pytest.approx(2.0)
    assert scores.components["item:logits"][1] == pytest.approx(2.0)
    assert harvest[2] == pytest.approx(harvest[3])  # the probabilities are not counted in the harvest of text
    assert not flagged(scores.verdicts[1])  # probabilities alone: one trait
    assert scores.risk[2] > scores.risk[3]  # probabilities on top of a capped harvest of text: more evidence


def test_small_deployments_fall_back_to_the_shipped_priors() -> None:
    b = Baselines.fit(population(10))
    assert not b.table  # too few accounts for any cohort
    loc, scale, used = b.lookup(population(3), "log_tokens_per_req")
    assert set(used) == {"shipped prior"} and (scale > 0).all()
    again = Baselines.from_json(orjson.loads(orjson.dumps(Baselines.fit(population(200)).to_json())))
    assert again.table


# ---- detectors: registry and conformance ------------------------------------------------------------------------

def test_every_registered_detector_passes_the_conformance_check(labelled) -> None:
    assert set(FAMILIES) <= set(DETECTORS)
    for name in DETECTORS:
        check_detector(build(name), labelled.table.features)


def test_a_detector_registered_by_name_joins_the_decision() -> None:
    @register("test-constant")
    class Constant:
        name = "test-constant"

        def fit(self, features, labels=None):
            return self

        def score(self, features):
            return np.full(len(features["log_n"]), 5.0)

        def explain(self, features, index):
            return [(5.0, "the test detector says so")]

    try:
        feats = population(50)
        check_detector(Constant(), feats)
        model = Model(detectors=("harvest", "test-constant"))
        base = score_accounts(np.arange(50), feats, Model(detectors=("harvest",)))
        scores = score_accounts(np.arange(50), feats, model)
        assert (scores.risk > base.risk).all()
        assert any("the test detector says so" in r for rs in scores.reasons for r in rs)
        with pytest.raises(ValueError, match="unknown detector"):
            Model(detectors=("no-such-detector",))
    finally:
        del DETECTORS["test-constant"]


def test_every_item_has_a_family_and_words() -> None:
    assert {item.family for item in ITEMS} == set(FAMILIES)
    assert len({item.name for item in ITEMS}) == len(ITEMS)


def test_model_round_trip_and_bad_artifact(tmp_path: Path) -> None:
    model = Model(policy=DecisionPolicy(weights={"harvest": 1.5}))
    model.save(tmp_path / "m.json.gz")
    again = Model.load(tmp_path / "m.json.gz")
    assert again.policy == model.policy and again.detectors == model.detectors
    (tmp_path / "bad.json").write_bytes(b"{}")
    with pytest.raises(ValueError, match="unsupported artifact format"):
        Model.load(tmp_path / "bad.json")
    (tmp_path / "junk.json").write_bytes(b"\x00junk")
    with pytest.raises(ValueError, match="not a detector artifact"):
        Model.load(tmp_path / "junk.json")


# ---- end to end ------------------------------------------------------------------------------------------------

def test_run_detection_writes_outputs(tmp_path: Path, labelled) -> None:
    result = run_detection(labelled.store, tmp_path / "out")
    with (tmp_path / "out" / "accounts.csv").open() as handle:
        rows = list(csv.reader(handle))
    assert tuple(rows[0]) == ACCOUNTS_HEADER
    assert len(rows) - 1 == len(labelled.table.account_ids)
    assert {r[2] for r in rows[1:]} <= {"allow", "watch", "throttle", "block"}
    doc = orjson.loads((tmp_path / "out" / "campaigns.json").read_bytes())
    assert len(doc["campaigns"]) == len(result.campaigns)
    assert (tmp_path / "out" / "report.html").stat().st_size > 1000
    context = orjson.loads((tmp_path / "out" / "context.json").read_bytes())
    assert context["baselines"]["cohorts"], "the deployment's baselines go to the gateway"
    # every account at watch or above that no campaign lists says why; "member of" only for listed members
    header = rows[0]
    listed = {a for c in doc["campaigns"] for a in (*c["accounts"], *c["watched"])}
    for row in (dict(zip(header, r, strict=True)) for r in rows[1:]):
        if row["verdict"] != "allow" and not row["campaign_id"]:
            assert row["campaign_note"], row
        if "member of campaign-" in row["signals"]:
            assert row["account_id"] in listed, row


def test_detect_cli_from_logs_and_usage_errors(tmp_path: Path, sim: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "out"
    result = runner.invoke(main, ["detect", str(sim / "exchanges"), "--accounts", str(sim / "accounts.jsonl"),
                                  "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "accounts.csv").exists() and (out / "report.html").exists()
    assert runner.invoke(main, ["detect", "--out", str(out)]).exit_code == 2
    assert runner.invoke(main, ["detect", "--store", str(tmp_path / "nope"), "--out", str(out)]).exit_code == 1


def test_no_content_store_detects_like_a_content_store(sim: Path, tmp_path: Path) -> None:
    """Signals derived at ingest (the only copy in a --no-content store) carry what detection reads."""
    from distillguard.ingest import ingest
    from distillguard.signals import SIGNALS
    from distillguard.store import Store

    results = {}
    for content in (True, False):
        store = Store.open(tmp_path / f"store-{content}", content=content)
        ingest([sim / "exchanges"], store, accounts=sim / "accounts.jsonl", derive=None if content else SIGNALS)
        out = tmp_path / f"out-{content}"
        run_detection(store, out)
        with (out / "accounts.csv").open(newline="") as handle:
            results[content] = sorted((r["account_id"], r["risk"], r["verdict"], r["campaign_id"])
                                      for r in csv.DictReader(handle))
    assert results[True] == results[False]
