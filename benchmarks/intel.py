"""Cross-provider intel, measured per exchange (issue 4, section 5).

One actor attacks K simulated providers, later providers later (``simulate --providers K``).
Provider 1 detects on its own traffic up to the day provider j is first attacked (exchanges before
that midnight, accounts signed up before it) and exports a bundle (``intel export --store`` with
detect's accounts.csv: infrastructure and identifiers of accounts that are in no exported campaign
and not restricted by provider 1's detector are withheld). Provider j's traffic is then replayed
through the gateway's decision path (``gateway replay``: timestamp order, one decision per exchange,
online model scoring from a cold start, default tiers enforced) twice: without intel, and with
provider 1's bundle matched per request (``gateway --intel``). The replays are independent and run
``--jobs`` at a time in separate processes (same code, same inputs, so the same decisions).

Harvested before detection (per attack account): exchanges the gateway served to it (decisions
allow or perturb that it did not refuse) before its first throttle or block decision; all of them
if it never reached one. Benign FPR: benign accounts ever throttled or blocked / benign accounts.
Attribution: batch detection over provider j's whole window with the intel matched, campaigns
linked to provider 1's intrusion sets, checked against the simulator's actor labels.

    .venv/bin/python benchmarks/intel.py --scale small --seed 21 --providers 3

Nothing here is tuned on the reported seed: matching weights were set on the hand-made unit-test data;
the export and template-matching fixes of issue 4 were developed on seeds 22 and 23.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import multiprocessing as mp
import shutil
import tempfile
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from distillguard.attribution import campaigns_to_json
from distillguard.decide import flagged
from distillguard.detect import Model, score_accounts
from distillguard.features import account_features, attach_signals
from distillguard.ingest.pipeline import ingest
from distillguard.intel.export import ExportOptions, benign_exclusions, export_bundle
from distillguard.intel.extension import EXTENSION_ID
from distillguard.intel.match import match
from distillguard.intel.sightings import link_campaigns
from distillguard.intel.signing import generate_key
from distillguard.pipeline import attribute
from distillguard.signals import SIGNALS
from distillguard.simulate import simulate
from distillguard.store import Store

GROUP_KEY = bytes(range(32))


def labels(path: Path) -> dict[str, dict[str, str]]:
    with path.open(newline="") as handle:
        return {row["account_id"]: row for row in csv.DictReader(handle)}


def substore(store: Store, root: Path, cutoff_ms: int) -> Store:
    """The store as it was at ``cutoff_ms``: whole earlier days symlinked, the current day filtered (signals too)."""
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    shutil.copy(store.root / "store.json", root / "store.json")
    cut_day = datetime.fromtimestamp(cutoff_ms / 1000, UTC).strftime("%Y-%m-%d")
    derived = [p.relative_to(store.root) for p in (store.root / "derived").glob("v*")]
    for part in (store.root / "exchanges").glob("day=*"):
        day = part.name.removeprefix("day=")
        if day < cut_day:
            for sub in (Path("exchanges"), *derived):
                (root / sub).mkdir(parents=True, exist_ok=True)
                (root / sub / part.name).symlink_to(store.root / sub / part.name, target_is_directory=True)
        elif day == cut_day:
            for file in part.glob("*.parquet"):
                table = pq.read_table(file)
                keep = pc.less(pc.cast(table.column("ts"), pa.int64()), cutoff_ms)
                for sub, data in ((Path("exchanges"), table), *((d, pq.read_table(store.root / d / part.name /
                                                                                file.name)) for d in derived)):
                    (root / sub / part.name).mkdir(parents=True, exist_ok=True)
                    pq.write_table(data.filter(keep), root / sub / part.name / file.name)
    (root / "accounts").mkdir()
    accounts = pq.read_table(store.root / "accounts" / "accounts.parquet")  # only accounts signed up by then
    pq.write_table(accounts.filter(pc.less(pc.cast(accounts.column("created_at"), pa.int64()), cutoff_ms)),
                   root / "accounts" / "accounts.parquet")
    return Store.open(root, create=False)


def detect(store: Store, model: Model, intel: pa.Table | None = None, campaigns: bool = False):
    """run_detection's scoring stages without its file outputs (the report is too slow for many checkpoints)."""
    con = store.connect()
    attach_signals(con, store, store.derived(SIGNALS))
    ft = account_features(con)
    fitted = model.with_baselines(Model(model.detectors, model.policy).fit(ft.features).baselines)
    first = score_accounts(ft.account_ids, ft.features, fitted, intel, fit=False)
    if campaigns and len(ft):
        scores, found = attribute(con, ft, fitted, first, intel)
    else:
        scores, found = first, []
    flagged_ids = {str(a) for a, v in zip(scores.account_ids, scores.verdicts, strict=True) if flagged(str(v))}
    return flagged_ids, found, con


POLICY_ENFORCE = ("mode: shadow", "mode: enforce")


def enforce_policy():
    from importlib import resources

    from distillguard.gateway.policy import load_policy

    text = resources.files("distillguard").joinpath("data", "policy-default.yaml").read_text()
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as handle:
        handle.write(text.replace(*POLICY_ENFORCE))
    return load_policy(handle.name)


def replay_provider(pdir: Path, out: Path, bundle: dict | None, model: Model) -> dict[str, dict]:
    """``gateway replay`` of one provider's logs, cold start (no batch detections); per-account outcome."""
    from distillguard.gateway.config import load_accounts
    from distillguard.gateway.engine import Engine
    from distillguard.gateway.intel import RequestIntel
    from distillguard.gateway.online import OnlineFeatures
    from distillguard.gateway.replay import replay
    from distillguard.gateway.scoring import FusedScorer

    policy = enforce_policy()
    accounts = load_accounts(pdir / "accounts.jsonl")
    records = {a: info.record for a, info in accounts.items()}
    intel = RequestIntel(bundle, GROUP_KEY, accounts=records) if bundle else None
    scorer = FusedScorer(online=OnlineFeatures(accounts=records, model=model, policy=policy.decide),
                         policy=policy.decide, intel=intel)
    engine = Engine(policy, scorer, accounts=accounts)
    asyncio.run(replay([pdir / "exchanges"], engine, out))
    outcome: dict[str, dict] = {}
    with open(out / "decisions.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            o = outcome.setdefault(row["account_id"], {"served_before": 0, "detected": False, "exchanges": 0,
                                                       "intel_reason": False, "intel_any": False})
            o["exchanges"] += 1
            o["intel_any"] = o["intel_any"] or "intel " in row["reasons"]
            if row["action"] in ("throttle", "block"):
                if not o["detected"]:
                    o["intel_reason"] = "intel " in row["reasons"]
                o["detected"] = True
            elif not o["detected"] and not row["status"]:
                o["served_before"] += 1
    return outcome


def _replay_task(pdir: Path, out: Path, bundle: dict | None, model_path: Path | None) -> tuple[dict, float]:
    """One replay in a worker process: per-account outcome and its wall time."""
    t0 = time.perf_counter()
    outcome = replay_provider(pdir, out, bundle, Model.load(model_path))
    return outcome, round(time.perf_counter() - t0, 1)


def run(scale: str, seed: int, providers: int, work: Path, model: Model, model_path: Path | None = None,
        jobs: int = 2, with_linking: bool = True) -> dict:
    t0 = time.perf_counter()
    sim = work / "sim"
    if not (sim / "meta.json").exists():
        simulate(sim, scale, seed, providers=providers)
    meta = orjson.loads((sim / "meta.json").read_bytes())
    stores, truth = [], []
    for i in range(1, providers + 1):
        pdir = sim / f"provider-{i}"
        store = Store.open(work / f"store-{i}")
        if not store.exchange_files():
            ingest(sorted(str(p) for p in (pdir / "exchanges").glob("*")), store,
                   accounts=pdir / "accounts.jsonl", derive=SIGNALS)
        stores.append(store)
        truth.append(labels(pdir / "labels.csv"))
    key = generate_key()
    report = {"scale": scale, "seed": seed, "providers": providers, "later": []}
    bundles, docs, rows = {}, {}, {}
    for j in range(1, providers):
        first_attack = meta["providers"][j]["first_attack_ts"]
        day = datetime.fromisoformat(first_attack.replace("Z", "+00:00")).replace(hour=0, minute=0, second=0,
                                                                                   microsecond=0)
        cutoff = int(day.timestamp() * 1000)
        # provider 1's bundle as published the night before provider j+1 is first attacked
        p1_flagged, found, con = detect(substore(stores[0], work / "ck" / "p1", cutoff), model, campaigns=True)
        doc = orjson.loads(orjson.dumps(campaigns_to_json(found)))
        bundle = None
        if doc.get("campaigns"):
            # as `intel export --store` with detect's accounts.csv: accounts our detector restricts are no customers
            ex = benign_exclusions(con, {a for c in doc["campaigns"] for a in c["accounts"]} | p1_flagged)
            bundle = export_bundle(doc, ExportOptions("provider-1", GROUP_KEY, key, exclusions=ex))
            (work / f"bundle-p{j + 1}.json").write_bytes(orjson.dumps(bundle))
        bundles[j], docs[j] = bundle, doc
        rows[j] = {"provider": j + 1, "bundle_cutoff": day.strftime("%Y-%m-%d"),
                   "p1_campaigns": len(doc.get("campaigns", [])),
                   "indicators": sum(1 for o in (bundle or {}).get("objects", []) if o["type"] == "indicator")}
    # the replays are independent: without and with intel for every later provider, `jobs` at a time
    tasks = [(j, mode, sim / f"provider-{j + 1}", work / f"replay-p{j + 1}-{mode}", b)
             for j in range(1, providers) for mode, b in (("without", None), ("with", bundles[j]))]
    with ProcessPoolExecutor(max_workers=max(1, jobs), mp_context=mp.get_context("spawn")) as pool:
        futures = {(j, mode): pool.submit(_replay_task, pdir, out, b, model_path)
                   for j, mode, pdir, out, b in tasks}
        outcomes = {k: f.result() for k, f in futures.items()}
    for j in range(1, providers):
        row, lab = rows[j], truth[j]
        attack = {a for a, r in lab.items() if r["label"] == "attack"}
        benign = {a for a, r in lab.items() if r["label"] != "attack"}
        for mode in ("without", "with"):
            outcome, row[f"replay_s_{mode}"] = outcomes[(j, mode)]
            att = [outcome[a] for a in attack if a in outcome]
            ben = [outcome[a] for a in benign if a in outcome]
            row["attack_accounts"], row["benign_accounts"] = len(att), len(ben)
            row["attack_exchanges"] = sum(o["exchanges"] for o in att)
            row[f"harvested_{mode}"] = sum(o["served_before"] for o in att)
            row[f"attack_flagged_{mode}"] = sum(o["detected"] for o in att) / max(len(att), 1)
            row[f"fpr_{mode}"] = sum(o["detected"] for o in ben) / max(len(ben), 1)
            row[f"benign_flagged_{mode}"] = sum(o["detected"] for o in ben)
            row[f"first_by_intel_{mode}"] = sum(o["detected"] and o["intel_reason"] for o in att)
            row[f"benign_intel_matched_{mode}"] = sum(o["intel_any"] for o in ben)
            per_type: dict[str, list[int]] = {}
            for a in attack:
                if a in outcome:
                    per_type.setdefault(lab[a]["population"], []).append(outcome[a]["served_before"])
            row[f"per_type_{mode}"] = {t: sum(v) for t, v in sorted(per_type.items())}
        row["reduction"] = 1 - row["harvested_with"] / max(row["harvested_without"], 1)
        # attribution: batch detection over provider j's window with provider 1's intel matched
        bundle = bundles[j]
        if bundle and with_linking:
            intel = match(stores[j].connect(), bundle, GROUP_KEY)
            found_j, _, _ = detect_all(stores[j], model, intel.table)
            row["linking"] = linking(found_j, intel, bundle, docs[j], truth[0], lab)
        else:
            row["linking"] = {"campaigns": 0, "linked": 0, "correct": 0}
        report["later"].append(row)
    report["seconds"] = round(time.perf_counter() - t0, 1)
    return report


def detect_all(store: Store, model: Model, intel: pa.Table | None):
    flagged_ids, found, con = detect(store, model, intel, campaigns=True)
    return found, flagged_ids, con


def linking(found: list, intel, bundle: dict, p1_doc: dict, lab1: dict, labj: dict) -> dict:
    """Later-provider campaigns linked to a provider-1 intrusion set, and whether it is the same actor.

    The bundle names no accounts, so the benchmark maps each shared intrusion set back to provider 1's own
    campaigns.json (ground truth side only) to learn which actor it really was.
    """
    if intel is None or not found:
        return {"campaigns": len(found), "linked": 0, "correct": 0}
    local_id = {o["id"]: o["extensions"][EXTENSION_ID]["local_id"]
                for o in bundle["objects"] if o["type"] == "campaign"}
    p1_accounts = {c["id"]: c["accounts"] for c in p1_doc["campaigns"]}
    actor_of = {rel["target_ref"]: _majority(p1_accounts.get(local_id.get(rel["source_ref"]), []), lab1)
                for rel in bundle["objects"] if rel.get("relationship_type") == "attributed-to"}
    campaigns = [{"id": c.id, "accounts": list(c.accounts)} for c in found]
    links = link_campaigns(intel, campaigns)
    linked = correct = 0
    for camp in campaigns:
        if links.get(camp["id"]):
            linked += 1
            correct += int(actor_of.get(links[camp["id"]][0][0]) == _majority(camp["accounts"], labj))
    return {"campaigns": len(campaigns), "linked": linked, "correct": correct}


def _majority(accounts: list[str], lab: dict[str, dict[str, str]]) -> str | None:
    actors = Counter(lab[a]["actor"] for a in accounts if a in lab and lab[a].get("actor"))
    return actors.most_common(1)[0][0] if actors else None


def write_results(report: dict, path: Path) -> None:
    """Replace this benchmark's section of RESULTS.md (between its markers)."""
    lines = ["<!-- intel:begin -->",
             "## intel: shared intel at later providers, per exchange (benchmarks/intel.py)", "",
             f"`.venv/bin/python benchmarks/intel.py --scale {report['scale']} --seed {report['seed']} --providers "
             f"{report['providers']}` (detector: {report['model']}; {report['seconds']} s on 2 shared cores, "
             f"{report.get('jobs', 1)} replays at a time). "
             "Provider 1 exports what it detected up to the day before provider j is first attacked "
             "(`intel export --store` with detect's accounts.csv: what its customers use is withheld, accounts "
             "its detector restricts are no customers); provider j's traffic is replayed through the gateway "
             "(`gateway replay`, "
             "timestamp order, default tiers enforced, online model scoring from a cold start, no batch "
             "detections) without and with that bundle matched per request (`--intel`). Harvested = exchanges "
             "served to attack accounts (allow or perturb, not refused) before their first throttle or block "
             "decision (all of them if never); FPR = benign accounts ever throttled or blocked.", "",
             "| provider | bundle (cutoff, indicators) | attack accounts / exchanges | harvested without intel | "
             "harvested with intel | reduction | attack flagged without / with | benign FPR without / with | "
             "campaigns linked (correct actor) |",
             "|---|---|---|---:|---:|---:|---|---|---|"]
    for r in report["later"]:
        link = r["linking"]
        lines.append(f"| {r['provider']} | {r['bundle_cutoff']}, {r['indicators']} | {r['attack_accounts']} / "
                     f"{r['attack_exchanges']:,} | {r['harvested_without']:,} | {r['harvested_with']:,} | "
                     f"{r['reduction']:.0%} | {r['attack_flagged_without']:.0%} / {r['attack_flagged_with']:.0%} | "
                     f"{r['fpr_without']:.2%} ({r['benign_flagged_without']}) / {r['fpr_with']:.2%} "
                     f"({r['benign_flagged_with']}) | {link['linked']}/{link['campaigns']} ({link['correct']}) |")
    lines += ["", "Intel was the first reason for the restriction of "
              + " and ".join(f"{r['first_by_intel_with']} (provider {r['provider']})" for r in report["later"])
              + " attack accounts; benign accounts any shared indicator matched at all: "
              + " and ".join(f"{r['benign_intel_matched_with']} (provider {r['provider']})" for r in report["later"])
              + "."]
    lines += ["", "Harvested before detection per campaign type (without / with intel):", ""]
    for r in report["later"]:
        parts = [f"{t} {r['per_type_without'][t]:,} / {r['per_type_with'].get(t, 0):,}" for t in r["per_type_without"]]
        lines.append(f"- provider {r['provider']}: " + "; ".join(parts))
    met = all(r["reduction"] >= 0.5 and r["fpr_with"] <= r["fpr_without"] for r in report["later"])
    lines += ["", f"Target (>= 50 % fewer exchanges harvested before detection, no FPR rise): "
                  f"**{'met' if met else 'not met'}**.", "<!-- intel:end -->"]
    section = "\n".join(lines)
    text = path.read_text() if path.exists() else "# Benchmark results\n\n"
    if "<!-- intel:begin -->" in text and "<!-- intel:end -->" in text:
        before, _, rest = text.partition("<!-- intel:begin -->")
        _, _, after = rest.partition("<!-- intel:end -->")
        text = before + section + after
    elif "## intel: cross-provider attribution" in text:
        before, _, rest = text.partition("## intel: cross-provider attribution")
        after = rest[rest.find("\n<!-- "):] if "\n<!-- " in rest else ""
        text = before + section + "\n" + after
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", default="small")
    parser.add_argument("--seed", type=int, default=21)
    parser.add_argument("--providers", type=int, default=3)
    parser.add_argument("--work", type=Path, help="working directory, reused when it holds a simulation and stores "
                        "(default: a temporary one)")
    parser.add_argument("--model", type=Path, help="detector artifact trained on other seeds (default: shipped)")
    parser.add_argument("--results", type=Path, default=Path(__file__).with_name("RESULTS.md"))
    parser.add_argument("--jobs", type=int, default=2, help="replays run in parallel (default 2)")
    parser.add_argument("--no-linking", action="store_true", help="skip the attribution check (faster)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dg-intel-") as tmp:
        work = args.work or Path(tmp)
        model = Model.load(args.model)
        report = run(args.scale, args.seed, args.providers, work, model, args.model, args.jobs, not args.no_linking)
        report["model"] = str(args.model or "shipped")
        report["jobs"] = args.jobs
    for row in report["later"]:
        print(row)
    write_results(report, args.results)


if __name__ == "__main__":
    main()
