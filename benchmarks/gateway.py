"""Gateway overhead and state size: latency added over calling the upstream directly, memory per account.

Starts the fake OpenAI-compatible upstream and the gateway (enforce mode, online
scoring on, audit + spool on) as uvicorn processes on 127.0.0.1, then drives the
same fixed request rate (open loop: latency counts from the scheduled send time,
so queueing shows) first straight at the upstream, then through the gateway, in
the same run. Memory: bytes of state per tracked account after 20 exchanges each,
serialised (what the gateway keeps) against live ``AccountState`` objects (baseline).
With ``--replay DIR`` it also backtests simulated traffic (``distillguard simulate``
output) and checks: attackers throttled/blocked within 200 requests, no benign account blocked.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import platform
import random
import socket
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import orjson

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
START, END = "<!-- gateway:start -->", "<!-- gateway:end -->"
BIN = Path(sys.executable).parent
POLICY = """mode: enforce
tiers:
  - {name: block, min_risk: 0.9, action: block}
  - {name: suspect, min_risk: 0.6, action: throttle, requests_per_minute: 10, perturb: true}
  - {name: default, min_risk: 0, action: allow, requests_per_minute: 6000, tokens_per_minute: 100000000}
"""


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait(port: int, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server on port {port} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"server on port {port} did not start")


def _request(key: str, i: int) -> bytes:
    body = orjson.dumps({"model": "fake-1", "max_tokens": 512, "messages": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": f"Question {i}: what is {i} times {i % 97}?"}]})
    return (b"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
            b"authorization: Bearer " + key.encode() + b"\r\ncontent-length: " + str(len(body)).encode()
            + b"\r\n\r\n" + body)


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    await reader.readexactly(length)
    return status


async def load(port: int, rate: float, seconds: float, accounts: int, connections: int = 96) -> dict:
    """Open-loop load at ``rate`` req/s over keep-alive connections; latency from the scheduled time."""
    pool: asyncio.Queue = asyncio.Queue()
    for _ in range(connections):
        pool.put_nowait(await asyncio.open_connection("127.0.0.1", port))
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    total = int(rate * seconds)
    requests = [_request(f"key-{i % accounts}", i) for i in range(total)]

    async def one(i: int, due: float) -> None:
        reader, writer = await pool.get()
        writer.write(requests[i])
        status = await _read_response(reader)
        latencies.append(time.perf_counter() - due)
        statuses[status] = statuses.get(status, 0) + 1
        pool.put_nowait((reader, writer))

    start = time.perf_counter() + 0.05
    tasks = []
    for i in range(total):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, due)))
    await asyncio.gather(*tasks)
    while not pool.empty():
        _, writer = pool.get_nowait()
        writer.close()
    ms = np.array(latencies) * 1000
    return {"p50": float(np.percentile(ms, 50)), "p99": float(np.percentile(ms, 99)),
            "mean": float(ms.mean()), "n": len(ms), "statuses": statuses}


def latency(rate: float, seconds: float, accounts: int, work: Path, extra: list[str]) -> tuple[dict, dict]:
    up_port, gw_port = _port(), _port()
    keys = work / "keys.jsonl"
    keys.write_bytes(b"".join(orjson.dumps({"api_key": f"key-{i}", "account_id": f"acct-{i}"}) + b"\n"
                              for i in range(accounts)))
    (work / "policy.yaml").write_text(POLICY)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    upstream = subprocess.Popen([str(BIN / "python"), "-m", "uvicorn", "distillguard.gateway.fake_upstream:app",
                                 "--host", "127.0.0.1", "--port", str(up_port), "--log-level", "warning",
                                 "--no-access-log"], env=env)
    gateway = subprocess.Popen([str(BIN / "distillguard"), "gateway", "--upstream", f"http://127.0.0.1:{up_port}",
                                "--port", str(gw_port), "--policy", str(work / "policy.yaml"), "--keys", str(keys),
                                "--store", str(work / "store"), "--audit", str(work / "audit.jsonl"), *extra], env=env)
    try:
        _wait(up_port, upstream)
        _wait(gw_port, gateway)
        asyncio.run(load(gw_port, 200, 1.0, accounts))  # warm up both hops
        direct = asyncio.run(load(up_port, rate, seconds, accounts))
        via = asyncio.run(load(gw_port, rate, seconds, accounts))
    finally:
        for proc in (gateway, upstream):
            proc.terminate()
            proc.wait(timeout=30)
    with open(work / "audit.jsonl", "rb") as handle:
        via["audited"] = sum(1 for _ in handle)
    return direct, via


def memory(accounts: int, per_account: int = 20) -> dict:
    """Bytes per tracked account: serialised state (gateway) vs live AccountState objects (baseline)."""
    from distillguard.features.state import AccountState
    from distillguard.gateway.online import OnlineFeatures
    from distillguard.model import COLUMNS, flatten, format_ts

    rng = random.Random(7)
    rows = []
    for i in range(accounts * per_account):
        record = {"id": f"m{i}", "ts": format_ts(1_772_323_200_000 + 997 * i),
                  "account_id": f"acct-{i % accounts}",
                  "client": {"ip": f"10.{rng.randrange(4)}.{rng.randrange(256)}.{rng.randrange(256)}",
                             "user_agent": f"client/{rng.randrange(5)}", "asn": 64500 + rng.randrange(8)},
                  "request": {"model": "m1", "max_tokens": 256 * rng.randrange(1, 9), "messages": [
                      {"role": "user", "content": f"task {rng.randrange(1000)}: explain step by step"}]},
                  "response": {"choices": [{"message": {"content": "ok"}, "finish_reason": "stop"}],
                               "usage": {"prompt_tokens": 20, "completion_tokens": 200}}}
        rows.append(dict(zip(COLUMNS, flatten(record), strict=True)))
    warm = OnlineFeatures(risk_fn=lambda f: (0.0, ()))  # first use compiles patterns, imports modules
    for row in rows[:256]:
        warm.observe(row)
    warm.flush()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    online = OnlineFeatures(risk_fn=lambda f: (0.0, ()))
    for row in rows:
        online.observe(row)
    online.flush()
    serialised = (tracemalloc.get_traced_memory()[0] - before) / accounts  # blobs, counters, keys: all of it
    before = tracemalloc.get_traced_memory()[0]
    live = {k: AccountState.from_bytes(v) for k, v in online.blobs.items()}
    objects = (tracemalloc.get_traced_memory()[0] - before) / accounts
    tracemalloc.stop()
    del live
    kept = online.blobs
    blob = float(np.mean([len(v) for v in kept.values()]))
    return {"accounts": accounts, "blob_bytes": blob, "serialised_bytes": serialised, "object_bytes": objects}


def replay_check(sim: Path, work: Path, detections: Path | None) -> dict:
    """Backtest simulated traffic with the default tiers enforced; per trap population and campaign type."""
    out = work / ("replay-detections" if detections else "replay-online")
    policy = work / "replay-policy.yaml"
    default = (ROOT / "src" / "distillguard" / "data" / "policy-default.yaml").read_text()
    policy.write_text(default.replace("mode: shadow", "mode: enforce"))
    args = [str(BIN / "distillguard"), "gateway", "replay", str(sim / "exchanges"), "--policy", str(policy),
            "--out", str(out)]
    if (sim / "accounts.jsonl").exists():
        args += ["--accounts", str(sim / "accounts.jsonl")]
    if detections:
        args += ["--detections", str(detections)]
    started = time.perf_counter()
    subprocess.run(args, check=True)
    seconds = time.perf_counter() - started
    with open(sim / "labels.csv", newline="") as handle:
        labels = {r["account_id"]: r for r in csv.DictReader(handle)}
    with open(out / "accounts.csv", newline="") as handle:
        summary = list(csv.DictReader(handle))
    by_group: dict[str, dict[str, int]] = {}
    for row in summary:
        label = labels.get(row["account_id"])
        if label is None:
            continue
        group = by_group.setdefault(f"{label['label']}:{label['population']}",
                                    {"accounts": 0, "restricted_200": 0, "blocked": 0, "throttled": 0})
        group["accounts"] += 1
        first = int(row["first_restricted"]) if row["first_restricted"] else None
        group["restricted_200"] += first is not None and first <= 200
        group["blocked"] += int(row["block"]) > 0
        group["throttled"] += int(row["throttle"]) > 0
    exchanges = sum(int(r["exchanges"]) for r in summary)
    return {"groups": by_group, "seconds": seconds, "exchanges": exchanges}


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return f"{cpu}, {len(os.sched_getaffinity(0))} cores usable, Python {platform.python_version()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--accounts", type=int, default=200, help="API keys the load is spread over")
    parser.add_argument("--memory-accounts", type=int, default=5000)
    parser.add_argument("--gateway-arg", action="append", default=[], help="extra `distillguard gateway` option")
    parser.add_argument("--replay", type=Path, help="a `distillguard simulate` output dir to backtest")
    parser.add_argument("--detections", type=Path, help="`distillguard detect` output for --replay (run both ways)")
    parser.add_argument("--no-write", action="store_true", help="do not update benchmarks/RESULTS.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        direct, via = latency(args.rate, args.seconds, args.accounts, work, args.gateway_arg)
        mem = memory(args.memory_accounts)
        replayed = {}
        if args.replay:
            replayed["online scoring only"] = replay_check(args.replay, work, None)
            if args.detections:
                replayed["online + batch detections"] = replay_check(args.replay, work, args.detections)
    added50, added99 = via["p50"] - direct["p50"], via["p99"] - direct["p99"]
    print(f"direct   p50 {direct['p50']:.2f} ms  p99 {direct['p99']:.2f} ms  ({direct['n']} req, {direct['statuses']})")
    print(f"gateway  p50 {via['p50']:.2f} ms  p99 {via['p99']:.2f} ms  ({via['n']} req, {via['statuses']}, "
          f"{via['audited']} audited)")
    print(f"added    p50 {added50:.2f} ms  p99 {added99:.2f} ms  (target p99 <= 2 ms)")
    print(f"memory   {mem['serialised_bytes']:.0f} B/account kept (state {mem['blob_bytes']:.0f} B) vs "
          f"{mem['object_bytes']:.0f} B as live objects  (target <= 1024 B)")
    for name, result in replayed.items():
        for group, g in sorted(result["groups"].items()):
            print(f"replay   {name:<26} {group:<28} accounts {g['accounts']:>5}  "
                  f"restricted<=200 {g['restricted_200']:>5}  blocked {g['blocked']:>5}")
    if not args.no_write:
        write_results(args, direct, via, mem, replayed)


def write_results(args: argparse.Namespace, direct: dict, via: dict, mem: dict, replayed: dict) -> None:
    added99 = via["p99"] - direct["p99"]
    lines = [START, "## Gateway", "", f"Machine: {machine()}.  ",
             f"Command: `python benchmarks/gateway.py {' '.join(sys.argv[1:])}`".rstrip()
             + f" ({time.strftime('%Y-%m-%d')}). Fake upstream and gateway are uvicorn processes on 127.0.0.1; "
             f"open-loop load at {args.rate:.0f} req/s for {args.seconds:.0f} s over {args.accounts} keys; gateway in "
             "enforce mode with online scoring, audit log and spool on.", "",
             "| path | p50 ms | p99 ms | requests | statuses |", "|---|---:|---:|---:|---|",
             f"| direct to upstream (baseline) | {direct['p50']:.2f} | {direct['p99']:.2f} | {direct['n']:,} "
             f"| {direct['statuses']} |",
             f"| through the gateway | {via['p50']:.2f} | {via['p99']:.2f} | {via['n']:,} | {via['statuses']} |",
             f"| **added** | **{via['p50'] - direct['p50']:.2f}** | **{added99:.2f}** | | |", "",
             f"Target p99 added <= 2 ms: **{'PASS' if added99 <= 2 else 'FAIL'}**.", "",
             f"State per tracked account after 20 exchanges ({mem['accounts']:,} accounts): "
             f"{mem['serialised_bytes']:.0f} B kept (serialised `AccountState`, {mem['blob_bytes']:.0f} B payload) "
             f"vs {mem['object_bytes']:.0f} B as live Python objects (baseline). Target <= 1 KiB: "
             f"**{'PASS' if mem['serialised_bytes'] <= 1024 else 'FAIL'}**."]
    if replayed:
        names = list(replayed)
        first = replayed[names[0]]
        lines += ["", f"Replay of simulated traffic (`{args.replay}`, {first['exchanges']:,} exchanges, "
                  f"{first['seconds']:.0f} s wall), default tiers enforced"
                  + (f", batch detections from `{args.detections}`" if args.detections else "") + ". "
                  "Cells: accounts throttled or blocked within their first 200 requests / accounts ever blocked.",
                  "", "| population | accounts | " + " | ".join(names) + " |",
                  "|---|---:|" + "---:|" * len(names)]
        for group in sorted(first["groups"]):
            cells = [f"{r['groups'][group]['restricted_200']} / {r['groups'][group]['blocked']}"
                     for r in replayed.values()]
            lines.append(f"| {group} | {first['groups'][group]['accounts']} | " + " | ".join(cells) + " |")
    lines.append(END)
    section = "\n".join(lines)
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    if START in text and END in text:
        text = text[: text.index(START)] + section + text[text.index(END) + len(END):]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    RESULTS.write_text(text)


if __name__ == "__main__":
    main()
