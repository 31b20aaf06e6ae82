"""Attribution: accounts -> campaigns, against a small hand-built world with known campaigns and benign traps."""

from __future__ import annotations

import csv
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import igraph as ig
import orjson
import pyarrow as pa
import pytest
from sklearn.metrics import adjusted_rand_score

from distillguard.attribution import Campaign, campaign_id, campaigns_to_json, find_campaigns
from distillguard.attribution.columns import resolve
from distillguard.attribution.communities import communities
from distillguard.ingest.pipeline import ingest
from distillguard.store import Store

T0 = datetime(2026, 2, 2, tzinfo=UTC)
RELEASE = T0 + timedelta(days=14)
CAMPAIGN_KEYS = {"id", "score", "strength", "accounts", "watched", "exchanges", "first_seen", "last_seen",
                 "capabilities", "models", "evidence", "atlas", "infrastructure", "identifiers", "templates",
                 "behaviour"}


def _iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def build_world(root: Path, seed: int = 3) -> Path:
    """Canonical logs + accounts + labels.csv for three campaigns and four benign trap populations.

    Benign traps share infrastructure the way real customers do: a campus behind one NAT with
    one email domain, a company team on one card and one system prompt, casual users on webmail.
    """
    r = random.Random(seed)
    accounts, exchanges, labels = [], [], []
    words = ("river", "prime", "graph", "cache", "poem", "tax", "recipe", "visa", "chess", "sql", "essay", "loan")

    def account(aid: str, label: str, campaign: str, population: str, created: datetime | None = None, **kw) -> None:
        created = created or T0 - timedelta(days=r.uniform(10, 400))
        if str(kw.get("payment_fp", "")).startswith("pfp_"):  # the issuer a processor reports: the card's BIN
            kw["payment_issuer"] = kw["payment_fp"][4:10]
        accounts.append({"account_id": aid, "created_at": _iso(created), **kw})
        labels.append({"account_id": aid, "label": label, "campaign": campaign, "population": population})

    def exchange(aid: str, t: datetime, ip: str, prompt: str, system: str | None = None,
                 ua: str = "OpenAI/Python 1.59.7") -> None:
        msgs = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
        exchanges.append({
            "id": f"x{len(exchanges)}", "ts": _iso(t), "account_id": aid,
            "client": {"ip": ip, "user_agent": ua, "asn": 7922, "tls_fp": "t13d_" + ua.split("/")[0]},
            "request": {"model": "aurora-3" if t >= RELEASE else "aurora-2", "messages": msgs, "max_tokens": 2048},
            "response": {"choices": [{"message": {"content": "ok"}, "finish_reason": "stop"}]}})

    def anytime() -> datetime:
        return T0 + timedelta(minutes=r.uniform(0, 28 * 1440))

    def chatter() -> str:
        return " ".join(r.choice(words) for _ in range(r.randint(3, 9)))

    for i in range(120):
        aid = f"casual{i}"
        account(aid, "benign", "", "casual", email_domain=r.choice(["gmail.com", "outlook.com"]),
                payment_fp=f"pfp_4a1f{r.randrange(40):02d}{i:010x}", signup_ip=f"73.12.{r.randrange(255)}.9")
        ip = f"73.12.{r.randrange(255)}.{r.randrange(2, 255)}"
        for _ in range(r.randrange(3, 15)):
            exchange(aid, anytime(), ip, chatter())
    for i in range(16):  # one NAT, one domain, one signup network
        aid = f"campus{i}"
        account(aid, "benign", "", "campus", email_domain="stateu.edu", payment_fp=f"pfp_4a1f{i:02d}{i:010x}",
                signup_ip=f"128.32.5.{i + 2}")
        for _ in range(15):
            exchange(aid, anytime(), "128.32.5.1", chatter())
    for i in range(8):  # one card, one org, one system prompt: a customer, not a hydra
        aid = f"team{i}"
        account(aid, "benign", "", "company_team", email_domain="northlabs.io", payment_fp="pfp_4a1f25aaaaaaaaaa",
                org_id="org_north", signup_ip="98.207.1.3")
        for _ in range(20):
            exchange(aid, anytime(), f"98.207.1.{r.randrange(2, 9)}", chatter(), system="You are NorthLabs' helper")
    for i in range(30):  # hydra: prepaid cards, look-alike domains, batch-created, rotating proxies, one harness
        aid = f"hydra{i}"
        account(aid, "attack", "hydra-1", "hydra_agentic", created=T0 - timedelta(days=3, minutes=r.uniform(0, 8)),
                email_domain=f"mailbox{r.randrange(6)}.xyz", payment_fp=f"pfp_53d2a1{r.randrange(3):010x}",
                signup_ip=f"185.107.{r.randrange(3)}.{r.randrange(2, 255)}")
        for _ in range(40):
            net = r.choice(["185.107", "149.102", "45.87"])
            exchange(aid, anytime(), f"{net}.{r.randrange(60)}.{r.randrange(2, 255)}",
                     f"You are an autonomous coding agent. Task {r.randrange(10**6)}: implement the function",
                     system="agent harness v2", ua="python-httpx/0.27.2")
    slots = [T0 + timedelta(days=5, minutes=37 * k) for k in range(60)]
    for i in range(8):  # rubric harvesting: synchronised, load-balanced, one grading template
        aid = f"rubric{i}"
        account(aid, "attack", "rubric-1", "cot_rubric", email_domain="gmail.com",
                payment_fp=f"pfp_4a1f{r.randrange(40):02d}{i + 900:010x}", signup_ip=f"43.128.1.{i + 2}")
        for slot in slots:
            if r.random() < 0.85:
                exchange(aid, slot + timedelta(seconds=r.uniform(0, 50)), f"43.128.{i}.7",
                         f"Grade this answer against the rubric, think step by step. Item {r.randrange(10**6)}")
    for i in range(10):  # capability sweep: batch-created, look-alike domains, rotating task templates
        aid = f"sweep{i}"
        account(aid, "attack", "sweep-1", "capability_sweep", created=T0 - timedelta(days=1, minutes=r.uniform(0, 5)),
                email_domain=f"dev-mail{i}.net", payment_fp=f"pfp_4a1f{r.randrange(40):02d}{i + 500:010x}",
                signup_ip=f"94.74.{i}.3")
        for _ in range(30):
            exchange(aid, anytime(), f"94.74.{i}.3", r.choice(
                ["Solve the integral of", "Click the button in this screenshot:", "Write python code that"])
                + f" {r.randrange(10**6)}")

    root.mkdir(parents=True, exist_ok=True)
    (root / "exchanges.jsonl").write_bytes(b"\n".join(orjson.dumps(e) for e in exchanges) + b"\n")
    (root / "accounts.jsonl").write_bytes(b"\n".join(orjson.dumps(a) for a in accounts) + b"\n")
    with (root / "labels.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, ["account_id", "label", "campaign", "population"])
        writer.writeheader()
        writer.writerows(labels)
    return root


def load_labels(root: Path) -> dict[str, dict[str, str]]:
    with (root / "labels.csv").open() as fh:
        return {row["account_id"]: row for row in csv.DictReader(fh)}


def scores_from(labels: dict[str, dict[str, str]], flagged_benign: set[str] = frozenset()) -> pa.Table:
    """A perfect detector, plus chosen benign false positives."""
    ids = sorted(labels)
    bad = [labels[a]["label"] == "attack" or a in flagged_benign for a in ids]
    return pa.table({"account_id": ids, "risk": [0.9 if b else 0.05 for b in bad],
                     "verdict": ["block" if b else "allow" for b in bad], "reasons": [""] * len(ids)})


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Store, dict[str, dict[str, str]]]:
    root = build_world(tmp_path_factory.mktemp("world"))
    store = Store.open(root / "store")
    report = ingest([root / "exchanges.jsonl"], store, accounts=root / "accounts.jsonl")
    assert report.quarantined == 0 and report.accounts_quarantined == 0
    return store, load_labels(root)


def _ari(campaigns: list[Campaign], labels: dict[str, dict[str, str]]) -> float:
    pred = {a: c.id for c in campaigns for a in c.accounts}
    attackers = sorted(a for a, row in labels.items() if row["label"] == "attack")
    return adjusted_rand_score([labels[a]["campaign"] for a in attackers],
                               [pred.get(a, f"none:{a}") for a in attackers])


def _benign_inside(campaigns: list[Campaign], labels: dict[str, dict[str, str]]) -> list[str]:
    return sorted(a for c in campaigns for a in c.accounts if labels[a]["label"] != "attack")


def test_recovers_campaigns_with_benign_false_positives_left_out(world):
    store, labels = world
    false_positives = {"team0", "team1", "team2", "campus0", "campus1", "campus2", "casual0", "casual1"}
    campaigns = find_campaigns(store.connect(), scores_from(labels, false_positives))
    assert _ari(campaigns, labels) == pytest.approx(1.0)
    assert _benign_inside(campaigns, labels) == []
    assert len(campaigns) == 3


@pytest.mark.parametrize("population", ["campus", "casual"])
def test_shared_infrastructure_alone_never_makes_a_campaign(world, population):
    """Even with every member flagged, a NAT, an email domain and a signup network are not a campaign."""
    store, labels = world
    everyone = {a for a, row in labels.items() if row["population"] == population}
    campaigns = find_campaigns(store.connect(), scores_from(labels, everyone))
    assert _benign_inside(campaigns, labels) == []


def test_only_suspicious_accounts_seed_campaigns(world):
    store, labels = world
    quiet = pa.table({"account_id": sorted(labels), "risk": [0.05] * len(labels), "verdict": ["allow"] * len(labels),
                      "reasons": [""] * len(labels)})
    assert find_campaigns(store.connect(), quiet) == []


def test_campaign_json_matches_the_documented_object(world):
    store, labels = world
    campaigns = find_campaigns(store.connect(), scores_from(labels))
    by_truth = {labels[c.accounts[0]]["campaign"]: c for c in campaigns}
    doc = campaigns_to_json(campaigns)
    assert set(doc) == {"generated", "producer", "campaigns"}
    for obj in doc["campaigns"]:
        assert set(obj) == CAMPAIGN_KEYS
        assert obj["id"] == campaign_id(obj["accounts"])
        assert obj["atlas"][0] == "AML.T0024.002" and "AML.T0040" in obj["atlas"]
        assert sum(obj["capabilities"].values()) == pytest.approx(1.0, abs=1e-3)
        assert all({"kind", "detail", "weight"} == set(e) for e in obj["evidence"])
        assert all({"fingerprint", "example", "count"} == set(t) for t in obj["templates"])
        assert obj["first_seen"].endswith("Z") and obj["first_seen"] <= obj["last_seen"]
        orjson.dumps(obj)  # JSON-serialisable as is
    hydra = by_truth["hydra-1"].to_json()
    # moving to the new model keeps it one campaign; proxy rotation maps to AI Service Proxies
    assert set(hydra["models"]) == {"aurora-2", "aurora-3"}
    assert "AML.T0008.005" in hydra["atlas"]
    assert hydra["exchanges"] == 30 * 40
    assert {e["kind"] for e in hydra["evidence"]} >= {"shared_payment", "shared_template", "batch_creation"}
    rubric = by_truth["rubric-1"].to_json()
    assert "synchronised_activity" in {e["kind"] for e in rubric["evidence"]}
    assert "AML.T0008.005" not in rubric["atlas"]
    assert max(by_truth["sweep-1"].capabilities.values()) < 0.6  # a sweep spreads over capabilities


def test_ids_are_stable_across_runs_and_input_order(world):
    store, labels = world
    first = [c.id for c in find_campaigns(store.connect(), scores_from(labels))]
    shuffled = scores_from(labels)
    shuffled = shuffled.take(list(reversed(range(len(shuffled)))))
    assert [c.id for c in find_campaigns(store.connect(), shuffled)] == first
    assert campaign_id(["b", "a"]) == campaign_id(["a", "b"]) != campaign_id(["a", "c"])


def test_signals_view_is_used_when_present(world):
    from distillguard.features import attach_signals
    from distillguard.signals import SIGNALS

    store, labels = world
    con = store.connect()
    attach_signals(con, store, store.derived(SIGNALS))
    assert resolve(con).from_sql == "ex e" and "e.tpl" in resolve(con).template_fp
    campaigns = find_campaigns(con, scores_from(labels))
    assert _ari(campaigns, labels) == pytest.approx(1.0)
    assert _benign_inside(campaigns, labels) == []


def test_leiden_keeps_one_dense_group_whole_and_splits_weakly_joined_ones():
    random.seed(5)  # igraph draws from Python's random; an unlucky draw leaves a vertex isolated (~12 % of draws)
    one = ig.Graph.Erdos_Renyi(n=400, m=1600)
    groups = communities([str(i) for i in range(400)], one.get_edgelist(), [1.0] * one.ecount())
    assert len(groups) == 1 and len(groups[0]) == 400
    a, b = ig.Graph.Erdos_Renyi(n=100, m=500), ig.Graph.Erdos_Renyi(n=80, m=400)
    edges = a.get_edgelist() + [(x + 100, y + 100) for x, y in b.get_edgelist()] + [(0, 100), (1, 101)]
    groups = communities([str(i) for i in range(180)], edges, [1.0] * len(edges))
    assert sorted(len(g) for g in groups) == [80, 100]


def test_small_campaign_hanging_off_a_large_one_by_weak_edges_stays_apart():
    """High conductance alone would fold a 6-account group into a 120-account one; the density test keeps it."""
    random.seed(6)
    big = ig.Graph.Erdos_Renyi(n=120, m=900)
    edges = big.get_edgelist() + [(120 + i, 120 + j) for i in range(6) for j in range(i + 1, 6)]
    weights = [0.7] * big.ecount() + [0.5] * 15
    weak = [(120 + i % 6, i * 7) for i in range(9)]  # "same actor" dialect edges: batch + card issuer, 0.3 each
    args = ([str(i) for i in range(126)], edges + weak, weights + [0.3] * len(weak))
    assert sorted(len(g) for g in communities(*args)) == [6, 120]
    assert sorted(len(g) for g in communities(*args, merge_density=0)) == [126]  # conductance alone folds it in


def test_stragglers_attach_on_operation_evidence_and_never_on_infrastructure(world):
    """The hand-built world with every trap population flagged: attaching must not pull any of them in."""
    store, labels = world
    traps = {a for a, row in labels.items() if row["population"] == "campus"}
    traps |= {f"casual{i}" for i in range(30)} | {"team0", "team1", "team2"}
    campaigns = find_campaigns(store.connect(), scores_from(labels, traps))
    assert _benign_inside(campaigns, labels) == []
    assert _ari(campaigns, labels) == pytest.approx(1.0)


def test_a_members_tie_counts_its_links_to_the_accounts_the_campaign_restricts():
    """Leiden puts bystanders linked with each other (eval runners sharing public benchmark prompts) into an
    operation's community when one of them shares phrasing with it. In the first round every link counts; from
    the second on, a member's coordination comes only from its links to accounts the round before restricted."""
    import numpy as np

    from distillguard.attribution.campaign import tie_weights
    from distillguard.pipeline import TIED, coordination_evidence

    ops, evals = ["op1", "op2", "op3"], ["ev1", "ev2", "ev3"]
    links = [(a, b, 1.0, True) for i, a in enumerate(ops) for b in ops[i + 1:]]  # cards and proxy pool
    links += [(a, b, 0.6, True) for i, a in enumerate(evals) for b in evals[i + 1:]]  # templates and phrasing
    links.append(("ev1", "op1", 0.31, False))  # public judge prompts the operation also sends: phrasing only
    camp = Campaign(id="c", accounts=ops + evals, score=1.0, strength=1.0, links=links)
    ids = np.array(ops + evals)
    first, _ = coordination_evidence(ids, [camp], 5.0)
    assert first[3] == pytest.approx(5.0)  # ev1: 1.2 of multi-kind links to ev2 and ev3, 0.31 to op1
    later, _ = coordination_evidence(ids, [camp], 5.0, restricted={"op1", "op2", "op3", "ev1"})
    assert later[0] == pytest.approx(5.0) and later[1] == pytest.approx(5.0)  # the operation's own ties hold
    assert later[3] == pytest.approx(5.0 * 0.31 / TIED)  # ev1: only its one phrasing link to op1 is left
    assert later[4] == pytest.approx(5.0 * 0.6 / TIED)  # ev2: its link to ev1, restricted the round before
    last, _ = coordination_evidence(ids, [camp], 5.0, restricted={"op1", "op2", "op3"})
    assert last[4] == 0.0 and last[5] == 0.0 and last[3] == pytest.approx(later[3])  # no link to the operation
    assert tie_weights(links, {"op1"})["~ev1"] == pytest.approx(0.31) and "ev2" not in tie_weights(links, {"op1"})


def test_bystanders_linked_only_with_each_other_do_not_vouch_for_each_other():
    """At 16M exchanges five eval runners stayed restricted round after round inside a rubric-harvesting campaign:
    one shared habit (public judge prompts) linked them only with each other, and each counted the others, restricted
    the round before. Only restricted members connected to the campaign's core (restricted on their own evidence, or
    linked by two kinds of evidence) tie others in the next round; a campaign without a core is left as it was."""
    from distillguard.pipeline import anchored

    ops, evals = ["op1", "op2", "op3"], ["ev1", "ev2", "ev3"]
    links = [(a, b, 1.0, True) for i, a in enumerate(ops) for b in ops[i + 1:]]  # cards and proxy pool
    links += [(a, b, 0.35, False) for i, a in enumerate(evals) for b in evals[i + 1:]]  # phrasing only
    links.append(("ev1", "op1", 0.31, False))  # ev1 also shares phrasing with the operation
    camp = Campaign(id="c", accounts=ops + evals, score=1.0, strength=1.0, links=links)
    every = set(ops + evals)
    assert anchored([camp], every, set()) == every  # ev1 reaches the operation: the bystanders still count
    assert anchored([camp], every - {"ev1"}, set()) == set(ops)  # ev2 and ev3 reach nobody but each other
    assert anchored([camp], every - {"ev1"}, {"ev2"}) == every - {"ev1"}  # restricted on its own: a core
    alone = Campaign(id="d", accounts=evals, score=1.0, strength=1.0, links=links[3:6])
    assert anchored([alone], set(evals), set()) == set(evals)  # no core at all: unchanged


def test_only_the_accounts_a_campaign_lists_are_called_its_members():
    """A linked account the campaign does not list (neither restricted nor watched) keeps its coordination points,
    but its reason says it is linked to the campaign, not a member of it (accounts.csv names no campaign for it)."""
    import numpy as np

    from distillguard.pipeline import coordination_evidence

    ops = ["op1", "op2", "op3", "weak"]
    links = [(a, b, 1.0, True) for i, a in enumerate(ops) for b in ops[i + 1:]]
    camp = Campaign(id="campaign-00", accounts=ops[:2], watched=["op3"], score=1.0, strength=1.0, links=links)
    points, why = coordination_evidence(np.array(ops), [camp], 5.0, linked={id(camp): ops})
    assert all(p > 0 for p in points)
    assert why[0].startswith("member of campaign-00: 2 linked accounts") and why[2].startswith("member of")
    assert why[3].startswith("linked to campaign-00: 2 linked accounts") and "not listed as a member" in why[3]


def test_a_campaign_that_splits_a_capability_space_gives_its_specialists_coverage_evidence():
    """Coverage across accounts: members asking about one capability each, in a campaign covering several, get
    coverage-family points with words saying so; a campaign of one capability (a hydra of coding agents), members
    not eligible for cross-account evidence and members with too few requests of their own get none."""
    import numpy as np

    from distillguard.decide import Record
    from distillguard.features import FeatureTable
    from distillguard.features.compute import Context
    from distillguard.pipeline import SPLIT_MIN_N, SPLIT_POINTS, split_coverage
    from distillguard.signals.cues import CAPABILITIES

    specialists = {"s1": "coding", "s2": "math", "s3": "vision", "s4": "chat", "s5": "writing", "s6": "coding",
                   "s7": "translation"}
    hydra = ["h1", "h2", "h3"]
    ids = np.array([*specialists, *hydra], dtype=object)
    stats = {f"cap_{k}": np.zeros(len(ids)) for k in range(len(CAPABILITIES))}
    for i, cap in enumerate(specialists.values()):
        stats[f"cap_{CAPABILITIES.index(cap)}"][i] = 100.0
    for i in range(len(specialists), len(ids)):
        stats[f"cap_{CAPABILITIES.index('tool_use')}"][i] = 300.0
    stats["n"] = np.array([100.0] * 5 + [SPLIT_MIN_N - 1.0] + [100.0] + [300.0] * 3)
    ft = FeatureTable(ids, {}, stats, {}, Context())
    sweep = Campaign(id="sweep", accounts=list(specialists), score=1.0, strength=1.0)
    agents = Campaign(id="hydra", accounts=hydra, score=1.0, strength=1.0)
    eligible = np.array([True, True, True, False, True, True, True, True, True, True])
    group = split_coverage(ft, [sweep, agents], eligible, {})
    assert list(group.points[:3]) == [SPLIT_POINTS] * 3 and list(group.points[4:7:2]) == [SPLIT_POINTS] * 2
    assert group.points[3] == 0.0  # not eligible
    assert group.points[5] == 0.0  # too few requests of its own
    assert not group.points[7:].any()  # one capability between them: colleagues, or a hydra, not a sweep
    assert group.words[0].startswith("asks about coding while the 6 accounts linked with it cover 5 capabilities")
    record = Record(n=stats["n"], families={"coverage": np.full(len(ids), 2.0)}, explain=lambda i: [(0.5, "own")])
    group.apply(record)
    assert record.families["coverage"][0] == 2.5 and record.families["coverage"][3] == 2.0  # within the family cap
    assert record.explain is not None
    assert record.explain(0)[0][1] == group.words[0] and record.explain(3) == [(0.5, "own")]
    without = Record(n=stats["n"], families={"harvest": np.zeros(len(ids))})  # a model not running the coverage family
    group.apply(without)
    assert set(without.families) == {"harvest"} and without.explain is None


def _pool_world(tmp_path: Path, seed: int, customer_created: datetime, customer_n: int
                ) -> tuple[Store, dict[str, dict[str, str]]]:
    """A hydra of 12 accounts rotating over a 40-/24 residential pool (three shared cards, one sign-up burst two days
    before the data), one customer of the same pool, and 30 casual users on home networks; ingested into a store."""
    r = random.Random(seed)
    accounts, exchanges, labels = [], [], []
    pool = [f"91.{a}.{b}" for a in (200, 201) for b in range(20)]  # 40 residential /24s

    def add(aid: str, label: str, campaign: str, created: datetime, payment: str, prompts: list[str],
            nets: list[str], n: int) -> None:
        accounts.append({"account_id": aid, "created_at": _iso(created), "payment_fp": payment,
                         "email_domain": "gmail.com"})
        labels.append({"account_id": aid, "label": label, "campaign": campaign, "population": campaign or "proxy"})
        for _ in range(n):
            exchanges.append({
                "id": f"x{len(exchanges)}", "ts": _iso(T0 + timedelta(minutes=r.uniform(0, 28 * 1440))),
                "account_id": aid, "client": {"ip": f"{r.choice(nets)}.{r.randrange(2, 255)}",
                                              "user_agent": "python-httpx/0.27.2", "asn": 9009, "tls_fp": "t13d_x"},
                "request": {"model": "aurora-2", "messages": [{"role": "user", "content": r.choice(prompts)
                                                               + f" {r.randrange(10**6)}"}], "max_tokens": 2048},
                "response": {"choices": [{"message": {"content": "ok"}, "finish_reason": "stop"}]}})

    for i in range(12):  # the operation: three shared cards, one sign-up burst, the pool
        add(f"hydra{i}", "attack", "hydra-1", T0 - timedelta(days=2, minutes=r.uniform(0, 6)),
            f"pfp_77aa00{i % 3:010x}", ["You are an autonomous coding agent. Implement the function"], pool, 60)
    add("customer", "benign", "", customer_created, "pfp_4a1f0000000001",
        ["what should I cook tonight", "explain this poem", "help me plan a trip"], pool, customer_n)
    for i in range(30):
        add(f"casual{i}", "benign", "", T0 - timedelta(days=r.uniform(30, 400)), f"pfp_4a1f{i + 10:012x}",
            ["tell me a joke", "summarise this article"], [f"73.12.{r.randrange(255)}"], 8)
    (tmp_path / "x.jsonl").write_bytes(b"\n".join(orjson.dumps(e) for e in exchanges) + b"\n")
    (tmp_path / "a.jsonl").write_bytes(b"\n".join(orjson.dumps(a) for a in accounts) + b"\n")
    store = Store.open(tmp_path / "store")
    ingest([tmp_path / "x.jsonl"], store, accounts=tmp_path / "a.jsonl")
    return store, {row["account_id"]: row for row in labels}


def test_a_customer_of_the_proxy_pool_an_operation_rents_is_not_attached_to_it(tmp_path):
    """A commercial residential pool is shared by its customers: a user of the pool a hydra rotates over shares
    many of its /24s with every member (each pair falls short of an edge), but sharing the pool is no evidence that
    it is one of the operation's accounts. Summed over a large campaign's members, the pool used to attach such
    customers as stragglers (at 16M exchanges, casual users and power users on the pool were restricted as members)."""
    store, truth = _pool_world(tmp_path, 5, T0 - timedelta(days=300), 40)
    campaigns = find_campaigns(store.connect(), scores_from(truth, {"customer"}))
    assert [sorted(c.accounts) for c in campaigns] == [sorted(f"hydra{i}" for i in range(12))]


def test_links_a_customer_shares_with_an_operation_by_chance_tie_no_member_that_shows_no_use():
    """A days-old account on the pool a hydra rents, signed up in the hour of one of its bursts, is linked to the
    hydra by the pool and the burst: evidence a customer shares with an operation by chance. Such links are marked
    coincidental; they tie no member that shows no use of its own (only young, only behind a proxy), while a member
    that takes, asks for or covers something keeps them (16M exchanges: three casual users were throttled so)."""
    import numpy as np

    from distillguard.pipeline import coordination_evidence

    ops = ["op1", "op2", "op3"]
    links = [(a, b, 1.0, True) for i, a in enumerate(ops) for b in ops[i + 1:]]  # cards and templates
    links += [("new", b, 0.45, True) for b in ops]  # the pool and a sign-up burst
    camp = Campaign(id="c", accounts=[*ops, "new"], score=1.0, strength=1.0, links=links,
                    coincidental={("new", b) for b in ops})
    ids = np.array([*ops, "new"])
    everyone, _ = coordination_evidence(ids, [camp], 5.0)
    assert everyone[3] > 0  # without knowing who shows use, every link counts
    no_use = np.array([False, False, False, True])
    points, why = coordination_evidence(ids, [camp], 5.0, no_use=no_use)
    assert points[3] == 0.0 and why[3] == "" and np.allclose(points[:3], everyone[:3])
    assert coordination_evidence(ids, [camp], 5.0, no_use=np.zeros(4, dtype=bool))[0][3] == everyone[3]


def test_campaign_marks_the_pairs_linked_only_by_a_proxy_pool_and_a_sign_up_burst(tmp_path):
    """find_campaigns names the member pairs whose link rests only on coincidental kinds (linking.COINCIDENTAL):
    the customer on the operation's pool who signed up in its burst, never the operation's own card-sharing pairs."""
    store, truth = _pool_world(tmp_path, 7, T0 - timedelta(days=2, minutes=3), 200)  # signed up in the burst
    campaigns = find_campaigns(store.connect(), scores_from(truth, {"customer"}))
    assert len(campaigns) == 1 and "customer" in campaigns[0].accounts
    camp = campaigns[0]
    linked = {tuple(sorted((a, b))) for a, b, _, _ in camp.links}
    mine = {p for p in linked if "customer" in p}
    assert mine and mine <= camp.coincidental  # the customer's links: pool and burst only
    assert not (linked - mine) & camp.coincidental  # the operation's pairs share cards: none coincidental
