"""Speed of the learned text heads (distillguard.signals.text_model) on one core.

    python benchmarks/text_model.py [--n 100000] [--chars 500]

Batch: texts/s of ``TextModel.predict`` over ~``--chars``-character texts (real ShareGPT odd-half human turns,
repeated/cut to length, 15 % of them in CJK / Cyrillic / Arabic scripts), pinned to one CPU core, best of 3,
with the split between Arrow preparation, n-gram hashing and the sparse x dense product. Gateway: latency of
one-text ``predict`` calls (p50 / p99 over 2,000 calls).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import time

import numpy as np
import pyarrow as pa

from distillguard.signals import text_model as tm

_OTHER = ["请一步一步地思考这个问题，并给出详细的推理过程，然后告诉我最终的答案是多少。",
          "Пожалуйста, объясни подробно, как работает этот алгоритм сортировки и почему он быстрый.",
          "اشرح لي بالتفصيل كيف تعمل هذه الخوارزمية ولماذا هي سريعة في معظم الحالات العملية."]


def corpus_texts(n: int, chars: int) -> list[str]:
    try:
        from distillguard.textlab import corpus
        pool = [t.text for t in corpus.human_turns()["train"]]
    except Exception:  # noqa: BLE001 - the benchmark still runs without the corpus package
        pool = ["Explain how a hash map works and when I should use one instead of a sorted tree."]
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        base = _OTHER[i % 3] if rng.random() < 0.15 else pool[int(rng.integers(len(pool)))]
        text = base
        while len(text) < chars:
            text = text + " " + pool[int(rng.integers(len(pool)))]
        out.append(text[:chars])
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--chars", type=int, default=500)
    args = ap.parse_args()
    with contextlib.suppress(AttributeError, OSError):  # not Linux: unpinned
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    model = tm.TextModel.load()
    texts = corpus_texts(args.n, args.chars)
    arr = pa.array(texts)
    mb = pa.compute.sum(pa.compute.binary_length(arr)).as_py() / 1e6
    model.predict(arr.slice(0, 1000))
    best = best_cpu = float("inf")
    for _ in range(3):
        t, c = time.perf_counter(), time.process_time()
        model.predict(arr)
        best = min(best, time.perf_counter() - t)
        best_cpu = min(best_cpu, time.process_time() - c)
    prep = hashing = matmul = 0.0
    for lo, hi in tm._blocks(arr):
        part = arr.slice(lo, hi - lo)
        t0 = time.process_time()
        prepared = tm.prepare(part)
        t1 = time.process_time()
        tm._buckets(prepared)
        t2 = time.process_time()
        counts, _, _ = tm._raw(part)
        t3 = time.process_time()
        counts @ model._table
        t4 = time.process_time()
        prep += t1 - t0
        hashing += t2 - t1
        matmul += t4 - t3
    print(f"batch: {args.n} texts of {args.chars} chars ({mb:.1f} MB UTF-8), one core: CPU {best_cpu:.3f} s = "
          f"{args.n / best_cpu:,.0f} texts/s ({mb / best_cpu:.1f} MB/s); wall {best:.3f} s = {args.n / best:,.0f}/s "
          f"(wall > CPU means the core was shared)")
    print(f"  split, CPU s (one pass): arrow prepare {prep:.3f}, n-gram hashing {hashing:.3f}, "
          f"sparse x dense {matmul:.3f}")
    one = [texts[7]]
    for _ in range(200):
        model.predict(one)
    lat, cpu = [], []
    for i in range(2000):
        t, c = time.perf_counter(), time.process_time()
        model.predict([texts[i % len(texts)]])
        lat.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    lat.sort()
    print(f"gateway: one text per call, wall p50 {statistics.median(lat) * 1e3:.3f} ms, "
          f"p99 {lat[int(0.99 * len(lat))] * 1e3:.3f} ms; CPU mean {statistics.fmean(cpu) * 1e3:.3f} ms")
    t = time.perf_counter()
    model.embed(arr.slice(0, 20_000))
    print(f"embed: {20_000 / (time.perf_counter() - t):,.0f} texts/s")


if __name__ == "__main__":
    main()
