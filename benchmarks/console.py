"""Console page latency on a store of 1M exchanges and 100k accounts (target: every page <= 300 ms at p95).

The store is built by the simulator (a preset with 1M exchanges and 100k accounts: the ``medium`` campaign mix
with more benign accounts), ingested, and given detections from its ground truth
(:mod:`distillguard.console.sample`: every attack campaign a campaign). The console is served by uvicorn on
127.0.0.1 in this process; each page is requested ``--repeat`` times over HTTP (different accounts and campaigns
where the page takes one), after one warm-up request per page kind, and p50/p95/max are reported. The figures
go into benchmarks/RESULTS.md between ``<!-- console:begin -->`` and ``<!-- console:end -->``.

    .venv/bin/python benchmarks/console.py [--exchanges 1000000 --accounts 140000] [--repeat 40]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
TARGET_MS = 300.0


def build_store(data: Path, exchanges: int, accounts: int, workers: int) -> tuple[Path, Path, Path]:
    from distillguard.console.sample import labelled_detections
    from distillguard.ingest.pipeline import ingest
    from distillguard.simulate import simulate
    from distillguard.simulate.config import SCALES, Scale
    from distillguard.store import Store

    sim, store, det = data / "sim", data / "store", data / "det"
    if not (sim / "labels.csv").exists():
        medium = SCALES["medium"]
        attack = max(2_400, accounts // 25)
        SCALES["console-bench"] = Scale("console-bench", exchanges, medium.attack_share, accounts - attack, attack,
                                        medium.instances, medium.actors)
        started = time.perf_counter()
        simulate(sim, scale="console-bench", seed=11, workers=workers)
        print(f"simulated in {time.perf_counter() - started:.0f} s", flush=True)
    if not (store / ".complete").exists():
        started = time.perf_counter()
        ingest([sim / "exchanges"], Store.open(store), accounts=sim / "accounts.jsonl")
        (store / ".complete").touch()
        print(f"ingested in {time.perf_counter() - started:.0f} s", flush=True)
    if not (det / "links.json").exists():
        labelled_detections(store, sim / "labels.csv", det, false_positives=200)
    return sim, store, det


def serve(app, port: int):
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    return server, thread


def login(client: httpx.Client, name: str, password: str) -> str:
    page = client.get("/login")
    token = re.search(r'name="login_token" value="([^"]+)"', page.text).group(1)
    r = client.post("/login", data={"name": name, "password": password, "login_token": token})
    assert r.status_code in (200, 303), r.text[:200]
    return re.search(r'name="csrf" value="([^"]+)"', client.get("/cases").text).group(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--exchanges", type=int, default=1_000_000)
    # account records the simulator writes; ~70 % of them send traffic in 1M exchanges, so 140k gives ~100k
    # accounts with traffic (the queues' population)
    parser.add_argument("--accounts", type=int, default=140_000)
    parser.add_argument("--repeat", type=int, default=40)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--data", type=Path, default=ROOT / "bench-data" / "console")
    parser.add_argument("--no-write", action="store_true", help="do not update benchmarks/RESULTS.md")
    args = parser.parse_args()
    args.data.mkdir(parents=True, exist_ok=True)
    _, store, det = build_store(args.data, args.exchanges, args.accounts, args.workers)

    from distillguard.console import build

    started = time.perf_counter()
    built = build(store, det, data_dir=args.data / "console", state="memory")
    startup = time.perf_counter() - started
    built.auth.add_user("bench", "lead", "bench-password")
    data = built.data
    n_exchanges, n_accounts = data.total_exchanges, data.n_accounts
    print(f"console start-up: {startup:.1f} s for {n_exchanges:,} exchanges, {n_accounts:,} accounts, "
          f"{len(data.campaigns)} campaigns", flush=True)
    port = 18_000 + os.getpid() % 1000
    server, thread = serve(built.app, port)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
    csrf = login(client, "bench", "bench-password")

    campaigns = sorted(data.campaigns.values(), key=lambda c: -len(c["accounts"]))
    flagged = [r[0] for r in data._q("SELECT account_id FROM acc WHERE verdict IN ('block', 'throttle') "
                                     "ORDER BY account_id")]
    busiest = [r[0] for r in data._q("SELECT account_id FROM acc ORDER BY exchanges DESC LIMIT 50")]
    keys = [r[0] for r in data._q("SELECT value FROM keys USING SAMPLE 50 ROWS")]
    ips = [r[0] for r in data._q("SELECT value FROM ips USING SAMPLE 50 ROWS")]
    model = data.models[-1]
    tier = data.tiers[0] if data.tiers else ""
    r = client.post("/cases", data={"title": "bench", "campaigns": campaigns[0]["id"], "why": "bench", "csrf": csrf})
    case_id = r.headers["location"].rsplit("/", 1)[-1]

    def cycle(items: list[str], i: int) -> str:
        return items[i % len(items)]

    pages = {
        "campaign queue": lambda i: "/campaigns",
        "campaign queue, model filter": lambda i: f"/campaigns?model={model}",
        "account queue, flagged": lambda i: f"/accounts?verdict=flagged&page={i % 5}",
        "account queue, tier + dates": lambda i: f"/accounts?tier={tier}&since=2026-02-10&until=2026-02-20",
        "search by API key": lambda i: f"/accounts?q={cycle(keys, i)}",
        "search by IP": lambda i: f"/accounts?q={cycle(ips, i)}",
        "campaign page": lambda i: f"/campaigns/{cycle([c['id'] for c in campaigns], i)}",
        "campaign page, largest": lambda i: f"/campaigns/{campaigns[0]['id']}",
        "evidence graph (json)": lambda i: f"/campaigns/{cycle([c['id'] for c in campaigns], i)}/graph.json",
        "account page, flagged": lambda i: f"/accounts/{cycle(flagged, i * 7)}",
        "account page, busiest": lambda i: f"/accounts/{cycle(busiest, i)}",
        "cases": lambda i: "/cases",
        "case page": lambda i: f"/cases/{case_id}",
        "audit log": lambda i: "/audit",
    }
    rows = []
    for name, path_of in pages.items():
        first = time.perf_counter()
        r = client.get(path_of(10_000))  # warm-up (a different id from the measured ones)
        assert r.status_code == 200, (name, r.status_code, r.text[:300])
        cold = (time.perf_counter() - first) * 1000
        times = []
        for i in range(args.repeat):
            t0 = time.perf_counter()
            r = client.get(path_of(i))
            times.append((time.perf_counter() - t0) * 1000)
            assert r.status_code == 200, (name, path_of(i), r.status_code)
        times.sort()
        p95 = times[max(0, int(round(0.95 * len(times))) - 1)]
        rows.append((name, statistics.median(times), p95, times[-1], cold))
        print(f"{name:32s} p50 {rows[-1][1]:7.1f} ms  p95 {p95:7.1f} ms  max {times[-1]:7.1f} ms  "
              f"first {cold:7.1f} ms", flush=True)
    # decisions: a campaign confirmed (every member recorded, audited, exported, pushed) and undone
    t0 = time.perf_counter()
    r = client.post(f"/campaigns/{campaigns[0]['id']}/decide",
                    data={"action": "confirm-block", "note": "bench", "csrf": csrf})
    confirm_ms = (time.perf_counter() - t0) * 1000
    assert r.status_code == 303, r.status_code
    server.should_exit = True
    thread.join(timeout=10)
    worst = max(r[2] for r in rows)
    verdict = "PASS" if worst <= TARGET_MS else "FAIL"
    print(f"worst p95 {worst:.1f} ms: {verdict}; confirm a {len(campaigns[0]['accounts'])}-account campaign: "
          f"{confirm_ms:.0f} ms")
    if args.no_write:
        return
    lines = [
        "## console (benchmarks/console.py)", "",
        f"`.venv/bin/python benchmarks/console.py --exchanges {args.exchanges} --accounts {args.accounts} --repeat "
        f"{args.repeat}` ({datetime.now(UTC):%Y-%m-%d}, this 2-core machine, console served by uvicorn on 127.0.0.1,"
        f" requests over HTTP from the same process, one at a time). Store built by the simulator: "
        f"{n_exchanges:,} exchanges, {n_accounts:,} accounts with traffic ({args.accounts:,} account records), "
        f"{len(data.campaigns)} campaigns (detections from the "
        f"simulation's ground truth, console.sample). Console start-up (one scan of the store): {startup:.1f} s. "
        f"Target: every page <= {TARGET_MS:.0f} ms at p95: **{verdict}** (worst p95 {worst:.1f} ms).", "",
        "| page | p50 ms | p95 ms | max ms | first request ms |", "|---|---:|---:|---:|---:|",
        *[f"| {n} | {a:.1f} | {b:.1f} | {c:.1f} | {d:.1f} |" for n, a, b, c, d in rows], "",
        f"Confirming the largest campaign ({len(campaigns[0]['accounts'])} accounts: one decision and one audit entry "
        f"per account in one transaction, the decisions file rewritten, each decision pushed to the shared state): "
        f"{confirm_ms:.0f} ms (a POST, not a page).",
    ]
    write_results("\n".join(lines))


def write_results(section: str) -> None:
    path = ROOT / "benchmarks" / "RESULTS.md"
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    begin, end = "<!-- console:begin -->", "<!-- console:end -->"
    block = f"{begin}\n{section}\n{end}"
    if begin in text and end in text:
        text = text[:text.index(begin)] + block + text[text.index(end) + len(end):]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text)


if __name__ == "__main__":
    sys.exit(main())
