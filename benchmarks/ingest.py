"""Ingest throughput and memory: distillguard's ingest against a naive json + pandas baseline.

Each contender runs in its own subprocess so peak RSS (``ru_maxrss`` of the child) is its own.
Two input sizes show whether memory grows with the input. Usage::

    python benchmarks/ingest.py [--sizes 250000 1000000] [--no-write]

Inputs are cached under ``bench-data/`` (gitignored). The project simulator is used when it
is available; otherwise records of realistic shape and size (~2 KB) are generated here.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import sys
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "bench-data"
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
START, END = "<!-- ingest:start -->", "<!-- ingest:end -->"

_WORDS = (
    "model", "data", "explain", "the", "quickly", "reason", "step", "proof", "code", "function", "value", "list",
    "train", "answer", "verify", "optimise", "graph", "tensor", "loss", "gradient", "layer", "token", "prompt",
    "output", "format", "json", "rubric", "because", "therefore", "consider", "first", "second", "finally",
    "compute", "result", "error", "test", "case",
)


def _text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(words))


def synth_record(i: int, rng: random.Random) -> dict:
    """One canonical record with the variety ingest must handle (parts, images, tools, reasoning)."""
    turns = rng.choice((1, 1, 1, 2, 3))
    messages: list[dict] = [{"role": "system", "content": _text(rng, rng.randint(10, 40))}]
    for t in range(turns):
        if rng.random() < 0.3:
            content: object = [{"type": "text", "text": _text(rng, rng.randint(20, 120))}]
            if rng.random() < 0.2:
                content.append({"type": "image_url", "image_url": {"url": "https://img.example/x.png"}})
        else:
            content = _text(rng, rng.randint(20, 120))
        messages.append({"role": "user", "content": content})
        if t < turns - 1:
            messages.append({"role": "assistant", "content": _text(rng, rng.randint(20, 60))})
    request: dict = {"model": rng.choice(("aurora-2", "aurora-2-mini", "nimbus-r1")), "messages": messages,
                     "temperature": rng.choice((0, 0.2, 0.7, 1)), "max_tokens": rng.choice((512, 1024, 4096))}
    if rng.random() < 0.2:
        request["tools"] = [{"type": "function", "function": {"name": "search", "parameters": {"type": "object"}}}]
    if rng.random() < 0.3:
        request["reasoning_effort"] = "high"
    message: dict = {"role": "assistant", "content": _text(rng, rng.randint(40, 160))}
    if rng.random() < 0.4:
        message["reasoning_content"] = _text(rng, rng.randint(20, 80))
    if "tools" in request and rng.random() < 0.5:
        message["tool_calls"] = [{"id": "call_1", "type": "function",
                                  "function": {"name": "search", "arguments": "{\"q\": \"x\"}"}}]
    prompt = rng.randint(50, 2000)
    completion = rng.randint(20, 2000)
    record = {
        "id": f"req_{i:09d}",
        "ts": f"2026-03-{1 + i % 7:02d}T{i % 24:02d}:{i % 60:02d}:{(i // 60) % 60:02d}.{i % 1000:03d}Z",
        "account_id": f"acct_{rng.randint(0, 20_000)}",
        "api_key_id": f"key_{rng.randint(0, 40_000)}",
        "client": {"ip": f"203.0.{rng.randint(0, 255)}.{rng.randint(0, 255)}", "user_agent": "python-httpx/0.27",
                   "asn": rng.choice((14061, 16509, 13335)), "country": rng.choice(("SG", "US", "DE", "BR"))},
        "endpoint": "/v1/chat/completions",
        "request": request,
        "response": {"choices": [{"message": message, "finish_reason": rng.choice(("stop", "length"))}],
                     "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                               "total_tokens": prompt + completion}},
        "status": 200,
        "latency_ms": rng.randint(200, 30_000),
    }
    if rng.random() < 0.05:
        record["region"] = "ap-southeast-1"  # an unknown top-level field, kept in extra_json
    return record


def make_input(size: int) -> Path:
    """The cached input of ``size`` exchanges (simulator output when available)."""
    DATA.mkdir(exist_ok=True)
    path = DATA / f"ingest-{size}.jsonl"
    if path.exists():
        return path
    try:
        from distillguard.simulate import simulate  # type: ignore[attr-defined]
    except ImportError:
        simulate = None
    if simulate is not None:
        out = DATA / f"sim-{size}"
        simulate(out, scale="medium", seed=7, exchanges=size)
        logs = sorted((out / "exchanges").glob("*.jsonl*"))
        with path.open("wb") as handle:
            for log in logs:
                handle.write(_read_all(log))
        return path
    rng = random.Random(7)
    tmp = path.with_suffix(".tmp")
    with tmp.open("wb", buffering=1 << 22) as handle:
        for i in range(size):
            handle.write(orjson.dumps(synth_record(i, rng)) + b"\n")
    tmp.rename(path)
    return path


def _read_all(path: Path) -> bytes:
    from distillguard.ingest import open_binary

    with open_binary(path) as handle:
        return handle.read()


def run_ours(path: str, store: str) -> None:
    from distillguard.ingest import ingest
    from distillguard.store import Store

    report = ingest([path], Store.open(store))
    assert report.balanced and report.quarantined == 0, report


def run_naive(path: str, store: str) -> None:
    import json

    import pandas as pd

    with open(path, encoding="utf-8") as handle:
        records = [json.loads(line) for line in handle if line.strip()]
    frame = pd.json_normalize(records, max_level=1)
    for column in frame.columns:  # nested lists/dicts as JSON text, as a naive pipeline would store them
        if frame[column].dtype == object:
            frame[column] = frame[column].map(lambda v: json.dumps(v) if isinstance(v, list | dict) else v)
    Path(store).mkdir(parents=True, exist_ok=True)
    frame.to_parquet(Path(store) / "exchanges.parquet", compression="zstd")


def measure(kind: str, path: Path, lines: int) -> dict[str, float]:
    """Run one contender in a fresh subprocess; wall seconds, exchanges/s and its peak RSS."""
    store = DATA / f"store-{kind}"
    shutil.rmtree(store, ignore_errors=True)
    bench = str(ROOT / "benchmarks")
    code = f"import sys; sys.path.insert(0, {bench!r}); import ingest; ingest.run_{kind}(*sys.argv[1:])"
    started = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # a child per contender: RUSAGE of the waited-for pid is that contender's alone
        os.execv(sys.executable, [sys.executable, "-c", code, str(path), str(store)])
    _, status, usage = os.wait4(pid, 0)
    seconds = time.perf_counter() - started
    shutil.rmtree(store, ignore_errors=True)
    if status != 0:
        raise RuntimeError(f"{kind} failed with status {status}")
    return {"seconds": seconds, "rate": lines / seconds, "rss_mib": usage.ru_maxrss / 1024}


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB RAM, Python {platform.python_version()}, {platform.system()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[250_000, 1_000_000])
    parser.add_argument("--no-write", action="store_true", help="do not update benchmarks/RESULTS.md")
    args = parser.parse_args()
    rows = []
    for size in args.sizes:
        path = make_input(size)
        mib = path.stat().st_size / 2**20
        with path.open("rb") as handle:
            size = sum(1 for line in handle if line.strip())  # the simulator's total is approximate
        ours, naive = measure("ours", path, size), measure("naive", path, size)
        rows.append((size, mib, ours, naive))
        print(f"{size:>9,} exchanges ({mib:,.0f} MiB): "
              f"distillguard {ours['rate']:>9,.0f}/s {ours['rss_mib']:>7,.0f} MiB"
              f" | naive {naive['rate']:>8,.0f}/s {naive['rss_mib']:>7,.0f} MiB"
              f" | speed x{ours['rate'] / naive['rate']:.1f}", flush=True)
    if not args.no_write:
        write_results(rows, " ".join(sys.argv[1:]))


def write_results(rows: list, argv: str) -> None:
    lines = [START, "## Ingest", "",
             f"Machine: {machine()}.  ",
             f"Command: `python benchmarks/ingest.py {argv}`".rstrip() + f" ({time.strftime('%Y-%m-%d')}).", "",
             "| exchanges | input | distillguard exch/s | distillguard peak RSS | naive exch/s | naive peak RSS "
             "| speed ratio |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    for size, mib, ours, naive in rows:
        lines.append(f"| {size:,} | {mib:,.0f} MiB | {ours['rate']:,.0f} | {ours['rss_mib']:,.0f} MiB "
                     f"| {naive['rate']:,.0f} | {naive['rss_mib']:,.0f} MiB | {ours['rate'] / naive['rate']:.1f}x |")
    lines += ["", "Naive baseline: `json.loads` per line, `pandas.json_normalize`, `to_parquet` (zstd). "
              "Peak RSS is the child process's `ru_maxrss`.", END]
    section = "\n".join(lines)
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    if START in text and END in text:
        text = text[: text.index(START)] + section + text[text.index(END) + len(END):]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    RESULTS.write_text(text)


if __name__ == "__main__":
    main()
