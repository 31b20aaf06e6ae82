"""Gateway overhead and state size: latency added over calling the upstream directly, memory per account.

Starts the fake OpenAI-compatible upstream and the gateway (enforce mode, online
scoring on, audit + spool on) as uvicorn processes on 127.0.0.1, then drives the
same fixed request rate (open loop: latency counts from the scheduled send time,
so queueing shows) first straight at the upstream, then through the gateway, in
the same run. Memory: bytes kept per tracked account after 20 exchanges each (serialised
state in the scorer process, published risk in the proxy, GCRA budgets), counted object by
object, against live ``AccountState`` objects (baseline).
With ``--replay DIR`` it also backtests simulated traffic (``distillguard simulate``
output) and checks: attackers throttled/blocked within 200 requests, no benign account blocked.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import random
import select
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import orjson

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
START, END = "<!-- gateway:start -->", "<!-- gateway:end -->"
BIN = Path(sys.executable).parent
POLICY = """version: 2
mode: enforce
tiers:
  - {name: block, verdict: block, action: block}
  - {name: suspect, verdict: throttle, action: throttle, requests_per_minute: 10, perturb: true}
  - {name: watch, verdict: watch, action: perturb}
  - {name: default, verdict: allow, action: allow, requests_per_minute: 60000, tokens_per_minute: 1000000000}
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


class _Conn:
    """One keep-alive connection of the load generator: at most one request in flight, no pipelining."""

    __slots__ = ("sock", "buf", "need", "index")

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.setblocking(False)
        self.buf = b""
        self.need = -1
        self.index = -1

    def feed(self, data: bytes) -> int | None:
        """Returns the status once a whole response (content-length framed) is in."""
        self.buf += data
        if self.need < 0:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return None
            length = 0
            for line in self.buf[:end].split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            self.need = end + 4 + length
        if len(self.buf) < self.need:
            return None
        status = int(self.buf[9:12])
        self.buf, self.need = self.buf[self.need:], -1
        return status


def load(port: int, rate: float, seconds: float, accounts: int, connections: int = 64, offset: int = 0) -> dict:
    """Fixed-rate open-loop load: request i is due at ``start + i / rate`` whatever came back before it.

    The calling thread only sends (``time.sleep`` to each due time, ~60 us precision, no event-loop timer
    granularity); a second thread waits on epoll and reads responses. Latency is counted from the *scheduled*
    time, so a stalled server, a busy generator or a request queued for a free connection all show
    (no coordinated omission); ``service`` latency, from the actual send, is kept for comparison.
    """
    total = int(rate * seconds)
    requests = [_request(f"key-{(offset + i) % accounts}", offset + i) for i in range(total)]
    conns = [_Conn(port) for _ in range(connections)]
    by_fd = {c.sock.fileno(): c for c in conns}
    free = list(conns)
    backlog: list[int] = []
    guard = threading.Lock()
    due = np.zeros(total)
    sent = np.zeros(total)
    done = np.full(total, np.nan)
    status = np.zeros(total, dtype=np.int32)
    ep = select.epoll()
    for conn in conns:
        ep.register(conn.sock.fileno(), select.EPOLLIN)
    clock = time.perf_counter

    def fire(conn: _Conn, i: int) -> None:
        conn.index = i
        sent[i] = clock()
        conn.sock.sendall(requests[i])

    def receive() -> None:
        finished = 0
        while finished < total:
            for fd, _ in ep.poll(0.5):
                conn = by_fd[fd]
                data = conn.sock.recv(1 << 16)
                if not data:
                    raise RuntimeError("server closed a keep-alive connection")
                code = conn.feed(data)
                if code is None:
                    continue
                done[conn.index], status[conn.index] = clock(), code
                finished += 1
                with guard:
                    if backlog:
                        fire(conn, backlog.pop(0))
                    else:
                        free.append(conn)

    reader = threading.Thread(target=receive, daemon=True)
    reader.start()
    start = clock() + 0.02
    for i in range(total):
        due[i] = at = start + i / rate
        delay = at - clock()
        if delay > 0:
            time.sleep(delay)
        with guard:
            if free:
                fire(free.pop(0), i)  # round robin: no connection idles past the keep-alive timeout
            else:
                backlog.append(i)
    reader.join(timeout=seconds + 120)
    ep.close()
    for conn in conns:
        conn.sock.close()
    ok = ~np.isnan(done)
    ms = (done[ok] - due[ok]) * 1000
    service = (done[ok] - sent[ok]) * 1000
    late = (sent - due) * 1000
    codes, counts = np.unique(status[ok], return_counts=True)
    return {"p50": float(np.percentile(ms, 50)), "p99": float(np.percentile(ms, 99)),
            "p999": float(np.percentile(ms, 99.9)), "max": float(ms.max()), "mean": float(ms.mean()),
            "service_p50": float(np.percentile(service, 50)), "service_p99": float(np.percentile(service, 99)),
            "send_late_p99": float(np.percentile(late, 99)), "n": int(ok.sum()), "lost": int((~ok).sum()),
            "statuses": {int(c): int(n) for c, n in zip(codes, counts, strict=True)}}


def _loadgen_main(argv: list[str]) -> None:
    """``gateway.py --loadgen PORT RATE SECONDS ACCOUNTS OFFSET``: one measurement, JSON on stdout."""
    port, rate, seconds, accounts, offset = int(argv[0]), float(argv[1]), float(argv[2]), int(argv[3]), int(argv[4])
    sys.setswitchinterval(0.0001)  # the sender thread must get the GIL back promptly
    print(orjson.dumps(load(port, rate, seconds, accounts, offset=offset), option=orjson.OPT_NON_STR_KEYS).decode())


class Servers:
    """Fake upstream and gateway as uvicorn processes, pinned to cores when asked."""

    def __init__(self, work: Path, accounts: int, extra: list[str], pin: bool) -> None:
        self.up_port, self.gw_port = _port(), _port()
        self.pin = pin and len(os.sched_getaffinity(0)) >= 2
        cores = sorted(os.sched_getaffinity(0))
        # gateway alone on one core; fake upstream and load generator share the other
        self.gw_cores, self.other_cores = ({cores[-1]}, set(cores[:-1])) if self.pin else (set(cores), set(cores))
        self.accounts = accounts
        keys = work / "keys.jsonl"
        keys.write_bytes(b"".join(orjson.dumps({"api_key": f"key-{i}", "account_id": f"acct-{i}"}) + b"\n"
                                  for i in range(accounts)))
        (work / "policy.yaml").write_text(POLICY)
        self.audit = work / "audit.jsonl"
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.upstream = self._spawn([str(BIN / "python"), "-m", "uvicorn", "distillguard.gateway.fake_upstream:app",
                                     "--host", "127.0.0.1", "--port", str(self.up_port), "--log-level", "warning",
                                     "--no-access-log"], env, self.other_cores)
        self.gateway = self._spawn([str(BIN / "distillguard"), "gateway", "--upstream",
                                    f"http://127.0.0.1:{self.up_port}", "--port", str(self.gw_port), "--policy",
                                    str(work / "policy.yaml"), "--keys", str(keys), "--store", str(work / "store"),
                                    "--audit", str(self.audit), *extra], env, self.gw_cores)
        self.sent = self.via_sent = 0
        try:
            _wait(self.up_port, self.upstream)
            _wait(self.gw_port, self.gateway)
        except BaseException:
            self.close()
            raise

    @staticmethod
    def _spawn(args: list[str], env: dict, cores: set[int]) -> subprocess.Popen:
        proc = subprocess.Popen(args, env=env)
        os.sched_setaffinity(proc.pid, cores)  # before it starts any thread: they inherit it
        return proc

    def cpu_s(self) -> tuple[float, float]:
        """CPU seconds (user + system) used so far by the gateway process (event loop and its threads) and by
        its children (online scorer, spool ingest worker: idle CPU priority)."""
        totals, pids = [0.0, 0.0], [(self.gateway.pid, 0)]
        while pids:
            pid, which = pids.pop()
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                totals[which] += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
                for task in Path(f"/proc/{pid}/task").iterdir():
                    pids.extend((int(c), 1) for c in (task / "children").read_text().split())
            except (OSError, IndexError, ValueError):
                continue
        return totals[0], totals[1]

    def run(self, port: int, rate: float, seconds: float) -> dict:
        args = [str(BIN / "python"), str(Path(__file__).resolve()), "--loadgen", str(port), str(rate), str(seconds),
                str(self.accounts), str(self.sent)]
        self.sent += int(rate * seconds)
        self.via_sent += int(rate * seconds) if port == self.gw_port else 0
        main_cpu, child_cpu = self.cpu_s()
        proc = subprocess.Popen(args, stdout=subprocess.PIPE)
        os.sched_setaffinity(proc.pid, self.other_cores)
        out, _ = proc.communicate(timeout=seconds * 20 + 120)
        if proc.returncode:
            raise RuntimeError(f"load generator failed ({proc.returncode})")
        result = orjson.loads(out.splitlines()[-1])
        # gateway CPU per request: independent of how busy the machine is (includes generator start-up idle time)
        main_after, child_after = self.cpu_s()
        result["cpu_us"] = (main_after + child_after - main_cpu - child_cpu) / max(1, result["n"]) * 1e6
        result["loop_cpu_us"] = (main_after - main_cpu) / max(1, result["n"]) * 1e6
        return result

    def close(self) -> None:
        for proc in (self.gateway, self.upstream):
            proc.terminate()
            proc.wait(timeout=30)


def _load_average() -> float:
    return os.getloadavg()[0]


def latency(rates: list[float], seconds: float, repeats: int, accounts: int, work: Path, extra: list[str],
            pin: bool) -> tuple[list[dict], bool]:
    """Per rate: ``repeats`` x (direct, through the gateway), interleaved; medians of each percentile."""
    servers = Servers(work, accounts, extra, pin)
    out = []
    try:
        servers.run(servers.gw_port, 300, 3.0)  # warm up: imports, first online batches, connection pools
        servers.run(servers.up_port, 300, 1.0)
        for rate in rates:
            runs = []
            for _ in range(repeats):
                load1 = _load_average()
                direct = servers.run(servers.up_port, rate, seconds)
                via = servers.run(servers.gw_port, rate, seconds)
                runs.append({"direct": direct, "via": via, "load": (load1 + _load_average()) / 2})
                print(f"  {rate:>6.0f} req/s  direct p50 {direct['p50']:7.2f} p99 {direct['p99']:7.2f}   gateway p50 "
                      f"{via['p50']:7.2f} p99 {via['p99']:7.2f}   added p99 {via['p99'] - direct['p99']:7.2f} ms  "
                      f"gateway CPU {via['cpu_us']:.0f} us/req "
                      f"(proxy process {via['loop_cpu_us']:.0f})  load {runs[-1]['load']:.1f}", flush=True)
            out.append(summarise(rate, runs))
    finally:
        servers.close()
    with open(servers.audit, "rb") as handle:
        audited = sum(1 for _ in handle)
    for row in out:
        row["audited"], row["sent_via"] = audited, servers.via_sent
    return out, servers.pin


def summarise(rate: float, runs: list[dict]) -> dict:
    def med(path: str, key: str) -> float:
        return float(np.median([r[path][key] for r in runs]))

    row = {"rate": rate, "repeats": len(runs), "load": float(np.median([r["load"] for r in runs]))}
    for path in ("direct", "via"):
        for key in ("p50", "p99", "p999", "service_p50", "service_p99", "send_late_p99"):
            row[f"{path}_{key}"] = med(path, key)
        row[f"{path}_n"] = sum(r[path]["n"] for r in runs)
        row[f"{path}_lost"] = sum(r[path]["lost"] for r in runs)
        statuses: dict[int, int] = {}
        for r in runs:
            for code, n in r[path]["statuses"].items():
                statuses[int(code)] = statuses.get(int(code), 0) + n
        row[f"{path}_statuses"] = statuses
    row["gateway_cpu_us"] = float(np.median([r["via"]["cpu_us"] for r in runs]))
    row["loop_cpu_us"] = float(np.median([r["via"]["loop_cpu_us"] for r in runs]))
    row["added_p50"] = float(np.median([r["via"]["p50"] - r["direct"]["p50"] for r in runs]))
    row["added_p99"] = float(np.median([r["via"]["p99"] - r["direct"]["p99"] for r in runs]))
    return row


def memory(accounts: int, per_account: int = 20) -> dict:
    """Bytes per tracked account: what online scoring keeps (serialised state in the scorer process, the published
    risk and its reasons in the proxy) vs live AccountState objects (baseline)."""
    from distillguard.features.state import AccountState
    from distillguard.gateway.online import OnlineFeatures
    from distillguard.gateway.state import MemoryState
    from distillguard.gateway.throttle import Rate
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
    warm = OnlineFeatures()  # loads the shipped model once
    online = OnlineFeatures(model=warm.scorer.model)
    for row in rows:
        online.observe(row)
    online.flush()
    # the scorer process keeps the serialised states; the proxy keeps the published evidence (keys in both)
    scorer = deep_size(online.blobs) / accounts
    proxy = (deep_size(online.latest) + deep_size(online.links.__dict__)) / accounts
    objects = deep_size({k: AccountState.from_bytes(v) for k, v in online.blobs.items()}) / accounts
    budgets = MemoryState()  # GCRA: a request budget and a token budget per account (the benchmark policy)
    for row in rows:
        budgets.limit_sync(row["account_id"] + ":r", row["ts"], Rate(6000, 1.0))
        budgets.charge_sync(row["account_id"] + ":t", row["ts"], Rate(100_000_000, 1.0), 220)
    budget_bytes = deep_size(budgets.tats) / accounts
    kept = online.blobs
    blob = float(np.mean([len(v) for v in kept.values()]))
    return {"accounts": accounts, "blob_bytes": blob, "serialised_bytes": scorer + proxy, "scorer_bytes": scorer,
            "proxy_bytes": proxy, "object_bytes": objects, "budget_bytes": budget_bytes}


def deep_size(obj: object, seen: set[int] | None = None) -> int:
    """Bytes held by ``obj`` and everything it references (each object once; classes and modules excluded)."""
    seen = set() if seen is None else seen
    if id(obj) in seen or isinstance(obj, type) or type(obj).__name__ == "module":
        return 0
    seen.add(id(obj))
    size = sys.getsizeof(obj)
    if isinstance(obj, dict):
        size += sum(deep_size(k, seen) + deep_size(v, seen) for k, v in obj.items())
    elif isinstance(obj, (list, tuple, set, frozenset)):
        size += sum(deep_size(v, seen) for v in obj)
    elif isinstance(obj, np.ndarray):
        pass  # getsizeof includes the data of an owning array
    elif hasattr(obj, "__dict__"):
        size += deep_size(vars(obj), seen)
    elif hasattr(obj, "__slots__"):
        size += sum(deep_size(getattr(obj, a), seen) for a in obj.__slots__ if hasattr(obj, a))
    return size


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


def _metrics(port: int) -> dict[str, float]:
    """The gateway's /metrics as ``{'name{labels}': value}`` (the text format; no client library needed)."""
    import urllib.request

    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def _online(m: dict[str, float], outcome: str) -> float:
    return m.get(f'distillguard_online_exchanges_total{{outcome="{outcome}"}}', 0.0)


def online_load(rates: list[float], seconds: float, accounts: int, work: Path, pin: bool) -> dict[str, list[dict]]:
    """Online scoring at rates up to the proxy's own limit, ``--online-shed off`` (fold everything, drop when the
    64 MiB buffer is full) vs ``sample`` (the default): per rate, what the scorer folded, shed (sampled out,
    counted and audited) and dropped, how far behind it fell and how long it took to catch up."""
    results: dict[str, list[dict]] = {}
    for mode in ("off", "sample"):
        sub = work / f"online-{mode}"
        sub.mkdir()
        servers = Servers(sub, accounts, ["--online-shed", mode], pin)
        rows = []
        try:
            servers.run(servers.gw_port, 300, 3.0)  # warm up: imports, the scorer's model, connection pools
            _drain(servers.gw_port, 120)
            for rate in rates:
                before = _metrics(servers.gw_port)
                peak = {"lag": 0.0, "backlog": 0.0, "shedding": 0.0}
                stop = threading.Event()

                def sample(peak: dict = peak, stop: threading.Event = stop, port: int = servers.gw_port) -> None:
                    while not stop.wait(0.25):
                        try:
                            m = _metrics(port)
                        except OSError:
                            continue
                        peak["lag"] = max(peak["lag"], m.get("distillguard_online_lag_seconds", 0.0))
                        peak["backlog"] = max(peak["backlog"], m.get("distillguard_online_backlog_bytes", 0.0))
                        peak["shedding"] = max(peak["shedding"], m.get("distillguard_online_shedding", 0.0))

                sampler = threading.Thread(target=sample, daemon=True)
                sampler.start()
                result = servers.run(servers.gw_port, rate, seconds)
                drain_s = _drain(servers.gw_port, 300)
                stop.set()
                sampler.join()
                after = _metrics(servers.gw_port)
                delta = {k: _online(after, k) - _online(before, k)
                         for k in ("sent", "folded", "shed", "shed_in_proxy", "dropped")}
                rows.append({"rate": rate, "seconds": seconds, "p50": result["p50"], "p99": result["p99"],
                             "served": result["n"], "statuses": result["statuses"], "cpu_us": result["cpu_us"],
                             "loop_cpu_us": result["loop_cpu_us"], **delta, "lag_peak_s": peak["lag"],
                             "backlog_peak_mb": peak["backlog"] / 2**20, "shedding": bool(peak["shedding"]),
                             "drain_s": drain_s})
                r = rows[-1]
                print(f"  shed={mode:<6} {rate:>6.0f} req/s  served {r['served']}  p99 {r['p99']:8.1f} ms  proxy "
                      f"{r['loop_cpu_us']:.0f} us/req  online: sent {r['sent']:.0f} folded {r['folded']:.0f} "
                      f"shed {r['shed']:.0f} (+{r['shed_in_proxy']:.0f} in the proxy) dropped {r['dropped']:.0f}  "
                      f"lag peak {r['lag_peak_s']:.1f} s  "
                      f"backlog peak {r['backlog_peak_mb']:.1f} MiB  caught up {drain_s:.1f} s after", flush=True)
        finally:
            servers.close()
        audit = [orjson.loads(line) for line in servers.audit.read_bytes().splitlines() if line.endswith(b"}")]
        noted = {e["account_id"] for e in audit if any("online scoring under load" in r for r in e.get("reasons", ()))}
        events = [e["event"] for e in audit if e.get("event")]
        for r in rows:
            r["accounts_noted"], r["audit_events"] = len(noted), events
        results[mode] = rows
    return results


def _drain(port: int, timeout: float) -> float:
    """Seconds until the online scorer has accounted for every row it was sent (folded or shed)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        m = _metrics(port)
        if m.get("distillguard_online_backlog_bytes", 0.0) == 0 and \
                _online(m, "folded") + _online(m, "shed") >= _online(m, "sent"):
            return time.monotonic() - started
        time.sleep(0.5)
    return float("inf")


def scorer_capacity(accounts_list: tuple[int, ...] = (200, 2000), rows_n: int = 16384) -> list[dict]:
    """Rows per second one core folds into online state (the scorer process's work, in process), by the number
    of accounts the rows spread over and the micro-batch size (each account's state is deserialised, updated,
    re-serialised and, at its rescoring points, scored once per batch)."""
    from distillguard.gateway import fake_upstream
    from distillguard.gateway.app import finish_record, new_record, record_row
    from distillguard.gateway.engine import Decision
    from distillguard.gateway.online import NOT_SHIPPED, OnlineFeatures

    out = []
    warm = OnlineFeatures()
    for accounts in accounts_list:
        rows = []
        for i in range(rows_n):
            body = orjson.loads(_request(f"key-{i % accounts}", i).split(b"\r\n\r\n", 1)[1])
            record = new_record(f"acct-{i % accounts}", "key", "127.0.0.1", None, body, 1_772_000_000_000 + i,
                                exchange_id=f"r{i}")
            row = finish_record(record, Decision(record["id"], record["account_id"], 0, "allow", "default", 0.0),
                                fake_upstream.completion("fake-1"), 200, time.perf_counter(), record_row(record))
            rows.append({**row, **dict.fromkeys(NOT_SHIPPED)})
        for batch in (512, 4096):
            online = OnlineFeatures(model=warm.scorer.model, batch_rows=batch, max_lag_ms=1 << 40)
            for row in rows[:2048]:
                online.observe(row)
            online.flush()
            started = time.process_time()
            for row in rows[2048:]:
                online.observe(row)
            online.flush()
            cpu = time.process_time() - started
            out.append({"accounts": accounts, "batch": batch, "rows_per_s": (rows_n - 2048) / cpu})
            print(f"  scorer capacity: {accounts} accounts, batch {batch}: {out[-1]['rows_per_s']:.0f} rows/s "
                  "per core", flush=True)
    return out


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return f"{cpu}, {len(os.sched_getaffinity(0))} cores usable, Python {platform.python_version()}"


def main() -> None:
    if sys.argv[1:2] == ["--loadgen"]:
        _loadgen_main(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rates", default="300,600,1000", help="comma-separated request rates to sweep")
    parser.add_argument("--seconds", type=float, default=5.0, help="per measurement")
    parser.add_argument("--repeats", type=int, default=3, help="direct/gateway pairs per rate (medians reported)")
    parser.add_argument("--accounts", type=int, default=200, help="API keys the load is spread over")
    parser.add_argument("--memory-accounts", type=int, default=5000)
    parser.add_argument("--gateway-arg", action="append", default=[], help="extra `distillguard gateway` option")
    parser.add_argument("--also-no-online", action="store_true", help="sweep again with `--no-online`")
    parser.add_argument("--no-pin", action="store_true", help="do not pin the gateway to its own core")
    parser.add_argument("--replay", type=Path, help="a `distillguard simulate` output dir to backtest")
    parser.add_argument("--detections", type=Path, help="`distillguard detect` output for --replay (run both ways)")
    parser.add_argument("--no-write", action="store_true", help="do not update benchmarks/RESULTS.md")
    parser.add_argument("--online-load", metavar="RATES",
                        help="instead of the latency sweep: online scoring at these rates, shedding off vs sample")
    args = parser.parse_args()
    if args.online_load:
        online_main(args)
        return
    rates = [float(r) for r in args.rates.split(",")]
    sweeps: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        variants = [("online scoring on", args.gateway_arg)]
        if args.also_no_online:
            variants.append(("online scoring off (`--no-online`)", [*args.gateway_arg, "--no-online"]))
        pinned = False
        for name, extra in variants:
            print(f"{name}:", flush=True)
            sub = work / str(len(sweeps))
            sub.mkdir()
            sweeps[name], pinned = latency(rates, args.seconds, args.repeats, args.accounts, sub, extra,
                                           not args.no_pin)
        mem = memory(args.memory_accounts)
        replayed = {}
        if args.replay:
            replayed["online scoring only"] = replay_check(args.replay, work, None)
            if args.detections:
                replayed["online + batch detections"] = replay_check(args.replay, work, args.detections)
    for name, rows in sweeps.items():
        for r in rows:
            print(f"{name:<36} {r['rate']:>6.0f} req/s  direct p50 {r['direct_p50']:.2f} p99 {r['direct_p99']:.2f}  "
                  f"gateway p50 {r['via_p50']:.2f} p99 {r['via_p99']:.2f}  added p50 {r['added_p50']:.2f} "
                  f"p99 {r['added_p99']:.2f} ms  CPU {r['gateway_cpu_us']:.0f} us/req (proxy {r['loop_cpu_us']:.0f})  "
                  f"(load {r['load']:.1f}, {r['via_statuses']}, "
                  f"{r['audited']}/{r['sent_via']} audited)")
    print(f"memory   {mem['serialised_bytes'] + mem['budget_bytes']:.0f} B/account kept "
          f"(scorer {mem['scorer_bytes']:.0f} B, state "
          f"{mem['blob_bytes']:.0f} B; proxy {mem['proxy_bytes']:.0f} B; budgets {mem['budget_bytes']:.0f} B) vs "
          f"{mem['object_bytes']:.0f} B as live objects  (target <= 1024 B)")
    for name, result in replayed.items():
        for group, g in sorted(result["groups"].items()):
            print(f"replay   {name:<26} {group:<28} accounts {g['accounts']:>5}  "
                  f"restricted<=200 {g['restricted_200']:>5}  blocked {g['blocked']:>5}")
    if not args.no_write:
        write_results(args, sweeps, pinned, mem, replayed)


def online_main(args: argparse.Namespace) -> None:
    rates = [float(r) for r in args.online_load.split(",")]
    print("scorer capacity (in process, one core):", flush=True)
    capacity = scorer_capacity()
    with tempfile.TemporaryDirectory() as tmp:
        print("online scoring under load:", flush=True)
        loads = online_load(rates, args.seconds, args.accounts, Path(tmp), not args.no_pin)
    if not args.no_write:
        write_section(ONL_START, ONL_END, online_section(args, capacity, loads))


ONL_START, ONL_END = "<!-- gateway-online:start -->", "<!-- gateway-online:end -->"


def online_section(args: argparse.Namespace, capacity: list[dict], loads: dict[str, list[dict]]) -> list[str]:
    setup = "gateway (and its scorer, at idle priority) pinned to one core" if not args.no_pin else "no pinning"
    lines = [ONL_START, "**Online scoring under load.** Machine: " + machine() + ".  ",
             f"Command: `python benchmarks/gateway.py {' '.join(sys.argv[1:])}` ({time.strftime('%Y-%m-%d')}); "
             f"{setup}; {args.accounts} keys; {args.seconds:g} s per rate through the gateway, then the time until "
             "the scorer has accounted for every row (*caught up*). *sent*: exchanges handed to the scorer; "
             "*folded*: folded into account state; *shed*: sampled out by the load policy in the scorer, *shed in "
             "proxy*: sampled out before shipping once 16 MiB are buffered (both counted per account, audited, named "
             "in the account's decisions); *dropped*: lost with the 64 MiB buffer full (counted and audited the same "
             "way since this change; before it, dropped and only logged). *lag peak*: the largest age of the rows "
             "the scorer read (sampled every 0.25 s). The scorer runs at idle CPU priority on the gateway's core: it "
             "only gets what the proxy leaves.", "",
             "Scorer capacity, one core, in process (the worker's own work per row: signals, state update, "
             "(de)serialisation once per account per batch, scoring at rescoring points):", "",
             "| accounts | batch 512 rows/s | batch 4,096 rows/s |", "|---:|---:|---:|"]
    for accounts in sorted({c["accounts"] for c in capacity}):
        cells = {c["batch"]: c["rows_per_s"] for c in capacity if c["accounts"] == accounts}
        lines.append(f"| {accounts} | {cells[512]:,.0f} | {cells[4096]:,.0f} |")
    lines += ["", "| shed mode | req/s offered | served | p99 ms | proxy CPU us/req | sent | folded | shed | "
              "shed in proxy | dropped | lag peak s | backlog peak MiB | caught up after s |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for mode, rows in loads.items():
        for r in rows:
            lines.append(f"| {mode} | {r['rate']:.0f} | {r['served']} | {r['p99']:.1f} | {r['loop_cpu_us']:.0f} | "
                         f"{r['sent']:.0f} | {r['folded']:.0f} | {r['shed']:.0f} | {r['shed_in_proxy']:.0f} | "
                         f"{r['dropped']:.0f} | "
                         f"{r['lag_peak_s']:.1f} | {r['backlog_peak_mb']:.1f} | {r['drain_s']:.1f} |")
    for mode, rows in loads.items():
        if rows:
            events = rows[-1]["audit_events"]
            lines.append(f"\n`{mode}`: audit events {', '.join(sorted(set(events))) or 'none'} "
                         f"({len(events)} in all); {rows[-1]['accounts_noted']} account(s) had decisions naming "
                         "unfolded exchanges.")
    lines.append(ONL_END)
    return lines


def write_section(start: str, end: str, lines: list[str]) -> None:
    """Put ``lines`` (between ``start`` and ``end``) into the gateway section of RESULTS.md, replacing them."""
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    block = "\n".join(lines)
    if start in text:
        text = text.split(start)[0] + block + text.split(end, 1)[1]
    elif END in text:
        head, tail = text.split(END, 1)
        text = head.rstrip("\n") + "\n\n" + block + "\n" + END + tail
    else:
        text = text.rstrip("\n") + "\n\n" + START + "\n## Gateway\n\n" + block + "\n" + END + "\n"
    RESULTS.write_text(text)


LAT_START, LAT_END = "<!-- gateway-latency:start -->", "<!-- gateway-latency:end -->"
REP_START, REP_END = "<!-- gateway-replay:start -->", "<!-- gateway-replay:end -->"


def latency_section(args: argparse.Namespace, sweeps: dict[str, list[dict]], pinned: bool, mem: dict) -> list[str]:
    setup = ("gateway pinned to one core, fake upstream and load generator to the other (`sched_setaffinity`)"
             if pinned else "no pinning")
    lines = [LAT_START, f"Machine: {machine()}.  ",
             f"Command: `python benchmarks/gateway.py {' '.join(sys.argv[1:])}`".rstrip()
             + f" ({time.strftime('%Y-%m-%d')}). Fake upstream and gateway (enforce mode, audit log and spool on) "
             f"are uvicorn processes (uvloop + httptools) on 127.0.0.1; {setup}. The load generator is a separate "
             f"process: fixed-rate open loop over 64 keep-alive connections, {args.accounts} keys, latency from each "
             "request's *scheduled* send time (no coordinated omission). Each rate: "
             f"{args.repeats} x ({args.seconds:g} s direct to the upstream, then {args.seconds:g} s through the "
             "gateway), interleaved; cells are medians over the repeats; *added* is the median of the per-pair "
             "differences. Gateway CPU is user + system time of the gateway process tree per request served (a "
             "machine-load-independent cost: 1,000 us/req would saturate one core at 1,000 req/s); *of which proxy "
             "process* is the event loop's process alone, the rest is its scorer and spool-ingest workers, which "
             "run at idle CPU priority (`SCHED_IDLE`) on the same core. "
             "Load is the 1-minute load average during the pair (the machine is shared with other "
             "jobs; 2.0 means both cores busy).", ""]
    target = None
    for name, rows in sweeps.items():
        lines += [f"**{name}**", "", "| req/s | direct p50 | direct p99 | gateway p50 | gateway p99 | added p50 "
                  "| added p99 | gateway p99.9 | gateway CPU us/req | of which proxy process | load "
                  "| gateway statuses |",
                  "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
        for r in rows:
            lines.append(f"| {r['rate']:.0f} | {r['direct_p50']:.2f} | {r['direct_p99']:.2f} | {r['via_p50']:.2f} "
                         f"| {r['via_p99']:.2f} | **{r['added_p50']:.2f}** | **{r['added_p99']:.2f}** "
                         f"| {r['via_p999']:.2f} | {r['gateway_cpu_us']:.0f} | {r['loop_cpu_us']:.0f} "
                         f"| {r['load']:.1f} | {r['via_statuses']} |")
            if target is None and r["rate"] == 1000:
                target = r
        lines.append("")
    if target is not None:
        lines += [f"Target p99 added <= 2 ms at 1,000 req/s (first configuration above): "
                  f"**{'PASS' if target['added_p99'] <= 2 else 'FAIL'}** ({target['added_p99']:.2f} ms).", ""]
    total = mem["serialised_bytes"] + mem["budget_bytes"]
    lines += [f"State per tracked account after 20 exchanges ({mem['accounts']:,} accounts), counted object by "
              f"object (keys, values, containers): **{total:.0f} B** = {mem['scorer_bytes']:.0f} B in the scorer "
              f"process (key and serialised `AccountState`, {mem['blob_bytes']:.0f} B payload, lossless) + "
              f"{mem['proxy_bytes']:.0f} B in the proxy (key, latest risk and reasons; shipped model as the risk) + "
              f"{mem['budget_bytes']:.0f} B of budgets (two GCRA times), vs {mem['object_bytes']:.0f} B for live "
              f"`AccountState` objects. Target <= 1 KiB: **{'PASS' if total <= 1024 else 'FAIL'}**.", LAT_END]
    return lines


def replay_section(args: argparse.Namespace, replayed: dict) -> list[str]:
    names = list(replayed)
    first = replayed[names[0]]
    lines = [REP_START, f"Replay of simulated traffic (`{args.replay}`, {first['exchanges']:,} exchanges, "
             f"{first['seconds']:.0f} s wall), default tiers enforced"
             + (f", batch detections from `{args.detections}`" if args.detections else "") + ". "
             "Cells: accounts throttled or blocked within their first 200 requests / accounts ever blocked.",
             "", "| population | accounts | " + " | ".join(names) + " |", "|---|---:|" + "---:|" * len(names)]
    for group in sorted(first["groups"]):
        cells = [f"{r['groups'][group]['restricted_200']} / {r['groups'][group]['blocked']}"
                 for r in replayed.values()]
        lines.append(f"| {group} | {first['groups'][group]['accounts']} | " + " | ".join(cells) + " |")
    lines.append(REP_END)
    return lines


def write_results(args: argparse.Namespace, sweeps: dict[str, list[dict]], pinned: bool, mem: dict,
                  replayed: dict) -> None:
    """Rewrite the latency part of the gateway section; the replay part only when ``--replay`` ran."""
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    latency_text = "\n".join(latency_section(args, sweeps, pinned, mem))
    replay_text = "\n".join(replay_section(args, replayed)) if replayed else None
    if START in text and END in text:
        head, rest = text.split(START, 1)
        body, tail = rest.split(END, 1)
        if REP_START not in body and "Replay of simulated traffic" in body:  # older layout: mark the replay part
            before, after = body.split("Replay of simulated traffic", 1)
            body = before.rstrip("\n") + "\n\n" + REP_START + "\nReplay of simulated traffic" + after.rstrip("\n")
            body += "\n" + REP_END + "\n"
        if replay_text is not None:
            body = (body.split(REP_START)[0] + replay_text + body.split(REP_END, 1)[1] if REP_START in body
                    else body.rstrip("\n") + "\n\n" + replay_text + "\n")
        if LAT_START in body:
            body = body.split(LAT_START)[0] + latency_text + body.split(LAT_END, 1)[1]
        else:  # older layout: everything between the heading and the replay part is the latency part
            heading = "## Gateway\n"
            after_heading = body.split(heading, 1)[1] if heading in body else body
            keep = after_heading[after_heading.index(REP_START):] if REP_START in after_heading else ""
            body = "\n" + heading + "\n" + latency_text + ("\n\n" + keep.rstrip("\n") if keep else "") + "\n"
        text = head + START + body + END + tail
    else:
        section = [START, "## Gateway", "", latency_text] + (["", replay_text] if replay_text else []) + [END]
        text = text.rstrip("\n") + "\n\n" + "\n".join(section) + "\n"
    RESULTS.write_text(text)


if __name__ == "__main__":
    main()
