"""The traffic simulator: determinism, the canonical contract, ground truth and the planted traps."""

from __future__ import annotations

import csv
import gzip
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path

import orjson
import pytest
import zstandard
from click.testing import CliRunner

from distillguard.cli import main
from distillguard.model import flatten, parse_ts
from distillguard.simulate import BENIGN_POPULATIONS, CAMPAIGN_TYPES, SimulationResult, simulate

SEED = 7


def read_lines(path: Path) -> list[bytes]:
    raw = path.read_bytes()
    if path.suffix == ".zst":
        raw = zstandard.ZstdDecompressor().stream_reader(raw).read()
    elif path.suffix == ".gz":
        raw = gzip.decompress(raw)
    return raw.splitlines()


def exchanges(where: Path) -> dict[Path, list[dict]]:
    return {p: [orjson.loads(line) for line in read_lines(p)] for p in sorted((where / "exchanges").iterdir())}


def labels(where: Path) -> dict[str, dict[str, str]]:
    with (where / "labels.csv").open(newline="") as handle:
        return {row["account_id"]: row for row in csv.DictReader(handle)}


def tree(where: Path) -> dict[str, bytes]:
    return {str(p.relative_to(where)): p.read_bytes() for p in sorted(where.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> SimulationResult:
    return simulate(tmp_path_factory.mktemp("tiny"), "tiny", SEED)


@pytest.fixture(scope="module")
def tiny_records(tiny: SimulationResult) -> dict[Path, list[dict]]:
    return exchanges(tiny.out)


def test_same_seed_is_byte_identical_and_seeds_differ(tiny: SimulationResult, tmp_path: Path) -> None:
    again = simulate(tmp_path / "again", "tiny", SEED, workers=2)  # parallel days, same bytes
    other = simulate(tmp_path / "other", "tiny", SEED + 1)
    first, second, third = tree(tiny.out), tree(again.out), tree(other.out)
    assert first.keys() == second.keys()
    assert all(first[name] == second[name] for name in first)
    assert first["labels.csv"] != third["labels.csv"]
    assert first["exchanges/2026-02-10.jsonl.zst"] != third["exchanges/2026-02-10.jsonl.zst"]


def test_tiny_has_every_population_and_campaign_type(tiny: SimulationResult) -> None:
    assert 3_000 <= tiny.exchanges <= 8_000
    (provider,) = tiny.providers
    for name in (*BENIGN_POPULATIONS, *CAMPAIGN_TYPES):
        assert provider.populations[name]["exchanges"] > 0, name
    meta = orjson.loads((tiny.out / "meta.json").read_bytes())
    assert {c["type"] for c in meta["campaigns"]} == set(CAMPAIGN_TYPES)
    assert all(c["n_exchanges"] > 0 and c["first_ts"] for c in meta["campaigns"])
    assert meta["exchanges"] == tiny.exchanges
    rows = labels(tiny.out).values()
    assert {r["population"] for r in rows} == {*BENIGN_POPULATIONS, *CAMPAIGN_TYPES}
    for row in rows:
        attack = row["population"] in CAMPAIGN_TYPES
        assert row["label"] == ("attack" if attack else "benign")
        assert bool(row["campaign"]) == attack and bool(row["actor"]) == attack


def test_every_line_is_a_valid_canonical_record(tiny: SimulationResult,
                                                tiny_records: dict[Path, list[dict]]) -> None:
    meta = orjson.loads((tiny.out / "meta.json").read_bytes())
    start, end = parse_ts(meta["start"]), parse_ts(meta["end"])
    ids: set[str] = set()
    assert len(tiny_records) == 28
    for path, records in tiny_records.items():
        day = path.name.split(".")[0]
        stamps = []
        for record in records:
            flatten(record)  # the shared validator: required fields, types, shapes
            assert record["id"].startswith("req_") and record["client"]["ip"]
            assert record["ts"].endswith("Z") and datetime.fromisoformat(record["ts"][:-1])
            ts = parse_ts(record["ts"])
            assert start <= ts < end and record["ts"].startswith(day)
            stamps.append(ts)
            ids.add(record["id"])
            if record["status"] == 200:
                message = record["response"]["choices"][0]["message"]
                assert message["content"] or message.get("tool_calls")
            else:
                assert record["response"] is None
        assert stamps == sorted(stamps), path
    assert len(ids) == tiny.exchanges


def test_labels_cover_accounts_and_exchanges(tiny: SimulationResult, tiny_records: dict[Path, list[dict]]) -> None:
    truth = labels(tiny.out)
    accounts = [orjson.loads(line) for line in (tiny.out / "accounts.jsonl").read_bytes().splitlines()]
    assert {a["account_id"] for a in accounts} == set(truth)
    assert {a["tier"] for a in accounts} <= {"free", "payg", "startup", "edu", "research", "enterprise"}
    seen = {r["account_id"] for records in tiny_records.values() for r in records}
    assert seen <= set(truth)


def test_hydra_pivots_to_the_new_model_within_a_day(tiny: SimulationResult,
                                                     tiny_records: dict[Path, list[dict]]) -> None:
    meta = orjson.loads((tiny.out / "meta.json").read_bytes())
    release = parse_ts(meta["model_release"])
    truth = labels(tiny.out)
    window: Counter[str] = Counter()
    for records in tiny_records.values():
        for r in records:
            ts, model = parse_ts(r["ts"]), r["request"]["model"]
            assert ts >= release or model != meta["new_model"], "new model used before its release"
            if truth[r["account_id"]]["population"] == "hydra_agentic" and release <= ts < release + 86_400_000:
                window[model] += 1
    assert sum(window.values()) >= 20
    assert window[meta["new_model"]] / sum(window.values()) >= 0.4


def test_some_benign_account_outweighs_every_attacker(tiny: SimulationResult,
                                                      tiny_records: dict[Path, list[dict]]) -> None:
    truth = labels(tiny.out)
    volume = Counter(r["account_id"] for records in tiny_records.values() for r in records)
    benign = max(n for a, n in volume.items() if truth[a]["label"] == "benign")
    attack = max(n for a, n in volume.items() if truth[a]["label"] == "attack")
    assert benign > attack


def test_attack_traffic_shows_its_planted_traits(tiny: SimulationResult,
                                                 tiny_records: dict[Path, list[dict]]) -> None:
    truth = labels(tiny.out)
    by_pop: dict[str, list[dict]] = defaultdict(list)
    for records in tiny_records.values():
        for r in records:
            by_pop[truth[r["account_id"]]["population"]].append(r)
    assert any(r["request"].get("tools") for r in by_pop["hydra_agentic"])
    assert any(isinstance(m["content"], list) for r in by_pop["capability_sweep"] for m in r["request"]["messages"])
    hydra_ips = {r["client"]["ip"] for r in by_pop["hydra_agentic"]}
    assert len(hydra_ips) > len({r["account_id"] for r in by_pop["hydra_agentic"]})  # rotation
    rubric = [r["request"]["messages"][-1]["content"] for r in by_pop["cot_rubric"]]
    assert all("1" in text and "10" in text for text in rubric)
    scripts = {r["request"]["messages"][-1]["content"][:2] for r in by_pop["multilingual_cot"]}
    assert len(scripts) >= 3  # several languages
    # shared payment fingerprints among hydra accounts, never among unrelated casual users
    accounts = [orjson.loads(line) for line in (tiny.out / "accounts.jsonl").read_bytes().splitlines()]
    cards = Counter(a["payment_fp"] for a in accounts if truth[a["account_id"]]["population"] == "hydra_agentic")
    assert cards.most_common(1)[0][1] >= 3


def test_multi_provider_shares_actor_with_staggered_starts(tmp_path: Path) -> None:
    result = simulate(tmp_path, "tiny", SEED, providers=2, exchanges=2_500, compress="gz")
    top = orjson.loads((tmp_path / "meta.json").read_bytes())
    assert [p["name"] for p in top["providers"]] == ["provider-1", "provider-2"]
    first = [parse_ts(p["first_attack_ts"]) for p in top["providers"]]
    assert first[1] - first[0] >= 3 * 86_400_000
    truth = [labels(tmp_path / p.name) for p in result.providers]
    assert not set(truth[0]) & set(truth[1])
    assert all(a.startswith(f"acct_p{k}_") for k, t in enumerate(truth, 1) for a in t)
    actors = [{row["actor"] for row in t.values() if row["actor"]} for t in truth]
    assert actors[0] & actors[1] and {a["name"] for a in top["actors"]} == actors[0] | actors[1]
    fingerprints = []
    for where, t in zip((tmp_path / "provider-1", tmp_path / "provider-2"), truth, strict=True):
        records = [r for rs in exchanges(where).values() for r in rs]
        assert all(p.suffix == ".gz" for p in (where / "exchanges").iterdir())
        fingerprints.append({r["client"]["tls_fp"] for r in records if t[r["account_id"]]["label"] == "attack"})
    assert fingerprints[0] & fingerprints[1]  # shared client stack across providers


def test_cli_writes_and_reports(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "cli"
    args = ["simulate", "--scale", "tiny", "--seed", "3", "--exchanges", "1200", "--compress", "none",
            "--out", str(out)]
    ok = runner.invoke(main, args)
    assert ok.exit_code == 0, ok.output
    assert (out / "exchanges" / "2026-02-02.jsonl").is_file() and (out / "labels.csv").is_file()
    assert runner.invoke(main, args).exit_code == 1  # refuses to overwrite without --force
    assert runner.invoke(main, [*args, "--force"]).exit_code == 0
    assert runner.invoke(main, [*args[:-2], "--providers", "0", "--out", str(tmp_path / "x")]).exit_code == 2
    assert runner.invoke(main, ["simulate", "--scale", "huge", "--out", str(tmp_path / "y")]).exit_code == 2


# --- real text and the adaptive campaigns -------------------------------------------------------------


def by_population(tiny: SimulationResult, tiny_records: dict[Path, list[dict]]) -> dict[str, list[dict]]:
    truth = labels(tiny.out)
    out: dict[str, list[dict]] = defaultdict(list)
    for records in tiny_records.values():
        for r in records:
            out[truth[r["account_id"]]["population"]].append(r)
    return out


def test_benign_user_turns_are_real_odd_half_conversations(tiny: SimulationResult,
                                                           tiny_records: dict[Path, list[dict]]) -> None:
    from distillguard.corpus import sharegpt

    human = {t.text.strip()[:6_000] for c in sharegpt.conversations() for t in c.turns if t.role == "human"}
    pops = by_population(tiny, tiny_records)
    for name in ("casual", "power_user", "proxy_user", "company_team", "reseller", "app_backend"):
        turns = [m["content"] for r in pops[name] for m in r["request"]["messages"]
                 if m["role"] == "user" and isinstance(m["content"], str)]
        assert turns, name
        # real turns, verbatim (some short typed ones carry a typo or a "please")
        assert sum(t in human for t in turns) / len(turns) >= 0.75, name
    # multi-turn sessions: later requests carry earlier answers as history
    assert any(sum(m["role"] == "assistant" for m in r["request"]["messages"]) >= 2 for r in pops["casual"])
    meta = orjson.loads((tiny.out / "meta.json").read_bytes())
    assert meta["corpus"]["split"] == "train" and "odd-hash half" in meta["corpus"]["source"]


def test_corpus_is_the_odd_half_only() -> None:
    from distillguard.corpus import sharegpt
    from distillguard.simulate.corpus import Corpus, language

    corpus = Corpus("validation")
    ids = {c.id for c in sharegpt.conversations("validation")}
    assert ids and all(sharegpt.is_odd(i) for i in ids)
    assert {"all", "code", "en", "long"} <= set(corpus.pools)
    assert corpus.code_blocks and corpus.documents
    assert language("请一步一步地思考这个问题，并给出详细的推理过程和最终答案。") == "zh"
    assert language("The quick brown fox jumps over the lazy dog and it is fine.") == "en"
    with pytest.raises(ValueError):
        Corpus("even")


def test_benign_traps_look_like_harvesting_on_single_axes(tiny: SimulationResult,
                                                          tiny_records: dict[Path, list[dict]]) -> None:
    pops = by_population(tiny, tiny_records)
    requests = {name: [r["request"] for r in rs] for name, rs in pops.items()}
    assert any(q.get("reasoning_effort") == "high" for q in requests["power_user"])
    assert any(q.get("logprobs") or q.get("n", 1) > 1 for q in requests["ranking_app"])
    assert all(q.get("max_tokens", 1) <= 64 for q in requests["ranking_app"])
    assert any("[[" in q["messages"][-1]["content"] or "Score" in q["messages"][-1]["content"]
               or q.get("logprobs") or q.get("n") for q in requests["eval_runner"])
    assert any(len(q["messages"]) > 6 and any(m["role"] == "tool" for m in q["messages"])
               for q in requests["coding_agent"])
    assert any(q.get("response_format") or q.get("temperature") == 0 for q in requests["batch_job"])
    # proxy users exit through the residential-proxy pools attackers rent (home ISP ASNs, shared addresses)
    from distillguard.simulate.infra import ISP, RESI_POOLS, residential_pool

    exits = {e.ip for k in range(RESI_POOLS) for e in residential_pool(SEED, k)}
    proxied = [r["client"] for r in pops["proxy_user"]]
    assert proxied and all(c["ip"] in exits for c in proxied)
    assert {c["asn"] for c in proxied} <= {row[0] for row in ISP}
    attack_exits = {r["client"]["ip"] for name in ("aged_sleeper", "agentic_trajectory", "hydra_agentic")
                    for r in pops[name]}
    assert attack_exits & exits


def test_adaptive_campaigns_avoid_the_old_traits(tiny: SimulationResult,
                                                 tiny_records: dict[Path, list[dict]]) -> None:
    pops = by_population(tiny, tiny_records)
    truth = labels(tiny.out)
    accounts = {a["account_id"]: a for a in map(orjson.loads, (tiny.out / "accounts.jsonl").read_bytes().splitlines())}
    meta = orjson.loads((tiny.out / "meta.json").read_bytes())
    start = parse_ts(meta["start"])

    def members(population: str) -> list[dict]:
        return [a for a in accounts.values() if truth[a["account_id"]]["population"] == population]

    logit = [r["request"] for r in pops["logit_harvest"]]
    assert logit and all(q.get("logprobs") and q.get("top_logprobs") for q in logit)
    assert not any(q.get("reasoning_effort") for q in logit)
    sleepers = members("aged_sleeper")
    assert all(start - parse_ts(a["created_at"]) >= 365 * 86_400_000 and a["verified"] for a in sleepers)
    assert len({a["payment_fp"] for a in sleepers}) == len(sleepers)  # their own cards
    assert any(len(r["request"]["messages"]) >= 3 for r in pops["aged_sleeper"])  # real multi-turn sessions
    front = members("enterprise_front")
    assert len({a["org_id"] for a in front}) == 1 and {a["tier"] for a in front} == {"enterprise"}
    mixed = [r["request"] for r in pops["reseller_mixed"]]
    assert any(q.get("reasoning_effort") == "high" for q in mixed) and any("reasoning_effort" not in q for q in mixed)
    assert any(sum(m["role"] == "tool" for m in r["request"]["messages"]) >= 2 for r in pops["agentic_trajectory"])
    judge = members("judge_harvest")
    assert len({a["payment_fp"] for a in judge}) <= 2
    assert not any("1-10" in r["request"]["messages"][-1]["content"] for r in pops["judge_harvest"])
    for name in ("hydra_agentic", "capability_sweep", "low_and_slow", "enterprise_front"):
        texts = {r["request"]["messages"][-1]["content"] for r in pops[name]
                 if isinstance(r["request"]["messages"][-1]["content"], str)}
        assert len(texts) >= 0.8 * len(pops[name]) * 0.5, name  # varied text, not a handful of templates


def test_campaign_types_can_be_held_out(tiny: SimulationResult, tmp_path: Path) -> None:
    kept = ("hydra_agentic", "aged_sleeper")
    held = simulate(tmp_path / "held", "tiny", SEED, campaigns=kept)
    full, part = labels(tiny.out), labels(held.out)
    assert {r["population"] for r in part.values() if r["label"] == "attack"} == set(kept)
    assert {a: r for a, r in full.items() if r["population"] in (*kept, *BENIGN_POPULATIONS)} == part
    meta = orjson.loads((held.out / "meta.json").read_bytes())
    assert meta["campaign_types"] == list(kept)
    with pytest.raises(ValueError):
        simulate(tmp_path / "bad", "tiny", SEED, campaigns=["nope"])
    runner = CliRunner()
    bad = runner.invoke(main, ["simulate", "--scale", "tiny", "--hold-out", "nope", "--out", str(tmp_path / "c")])
    assert bad.exit_code == 2


def test_histories_answer_only_calls_the_account_received(tmp_path: Path) -> None:
    """A client answers only tool calls it received: a failed request's calls never enter its session (it retries),
    so every benign tool result cites a call an earlier successful response issued to the same account; only the
    campaigns that fabricate trajectories cite calls nobody issued. (Small scale: a few hundred failed requests of
    coding agents, enough to see one mid-session.)"""
    result = simulate(tmp_path, "small", SEED, campaigns=["agentic_trajectory"], workers=2)
    truth = labels(result.out)
    rows = sorted((r for records in exchanges(result.out).values() for r in records), key=lambda r: (r["ts"], r["id"]))
    issued: dict[str, set[str]] = {}
    foreign: dict[str, int] = {}
    failed_mid_session = 0
    for r in rows:
        account = r["account_id"]
        for m in r["request"].get("messages") or []:
            if m.get("role") == "tool" and m["tool_call_id"] not in issued.get(account, set()):
                population = truth[account]["population"]
                foreign[population] = foreign.get(population, 0) + 1
        failed_mid_session += r["response"] is None and any(m.get("role") == "tool" for m in r["request"]["messages"])
        for choice in (r.get("response") or {}).get("choices") or []:
            for call in choice["message"].get("tool_calls") or []:
                issued.setdefault(account, set()).add(call["id"])
    assert failed_mid_session > 10
    benign = {v["population"] for v in truth.values() if v["label"] == "benign"}
    assert not benign & set(foreign), foreign
    assert foreign.get("agentic_trajectory", 0) > 0
