"""Distillation lab benchmark: runs `distillguard lab --config full`, measures the generation cost of the watermark
and antidistillation processors on a GPT-2-small-sized model, and writes the lab section of RESULTS.md.

    python benchmarks/lab.py                       # lab (about 30 min on 2 idle cores) + overhead + RESULTS.md
    python benchmarks/lab.py --reuse lab-out       # overhead only, lab numbers from lab-out/results.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

BEGIN, END = "<!-- lab:begin -->", "<!-- lab:end -->"


def overhead(threads: int, steps: int = 48, batch: int = 4, reps: int = 3) -> dict:
    """Seconds per generated token, plain vs KeyedWatermark vs transformers' own processor vs antidistillation.

    Model: GPT-2 small's shape (12 x 768, vocab 50,257), random weights (nothing downloaded); proxy: 2 x 256 on the
    same vocabulary. Token frequencies of real text are Zipfian, which decides the green-list cache's hit rate, so the
    runs are made twice: a Zipf(1.1) prior on the logits (like text) and none (a random model's near-uniform tokens:
    every step a cache miss, the worst case). Arms are interleaved so that load changes hit all alike; medians."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, LogitsProcessor, LogitsProcessorList, WatermarkLogitsProcessor

    from distillguard.resist.decode import AntidistillationProcessor, KeyedWatermark, perturbed_proxy
    from distillguard.resist.keys import random_key

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    vocab = 50257
    model = GPT2LMHeadModel(GPT2Config(vocab_size=vocab, n_layer=12, n_embd=768, n_head=12)).eval()
    proxy = GPT2LMHeadModel(GPT2Config(vocab_size=vocab, n_layer=2, n_embd=256, n_head=4)).eval()
    data = torch.randint(0, vocab, (4, 32))
    moved = perturbed_proxy(proxy, lambda m: m(input_ids=data, labels=data).loss, 0.05)
    key = random_key("bench", rng_seed=0)

    class Zipf(LogitsProcessor):
        prior = -1.1 * torch.log(torch.arange(1, vocab + 1, dtype=torch.float32)) * 3.0

        def __call__(self, input_ids, scores):
            return scores + self.prior

    prompt = torch.randint(0, vocab, (batch, 16))
    arms = {
        "plain": lambda: [],
        "watermark (KeyedWatermark)": lambda: [KeyedWatermark(key, vocab)],
        "watermark (transformers WatermarkLogitsProcessor)": lambda: [WatermarkLogitsProcessor(
            vocab_size=vocab, device="cpu", greenlist_ratio=0.25, bias=2.0, hashing_key=key.hashing_key)],
        "antidistillation (2 x 256 proxy)": lambda: [AntidistillationProcessor(proxy, moved, 1.0, 0.05)],
    }
    out: dict[str, dict[str, float]] = {}
    for prior in ("zipf", "uniform"):
        times: dict[str, list[float]] = {name: [] for name in arms}
        wm_cached = KeyedWatermark(key, vocab)  # a serving process keeps its cache across requests
        for rep in range(reps):
            for name, make in arms.items():
                procs = ([Zipf()] if prior == "zipf" else []) + (
                    [wm_cached] if name.startswith("watermark (Keyed") and rep > 0 else make())
                torch.manual_seed(rep)
                t = time.perf_counter()
                with torch.no_grad():
                    model.generate(prompt, attention_mask=torch.ones_like(prompt), do_sample=True, top_k=0,
                                   max_new_tokens=steps, min_new_tokens=steps, pad_token_id=0,
                                   logits_processor=LogitsProcessorList(procs))
                times[name].append((time.perf_counter() - t) / steps)
        out[prior] = {name: statistics.median(v[1:] if len(v) > 1 else v) for name, v in times.items()}
        # Each arm against plain in the same repetition (interleaved, so a load change hits both), then the median of
        # those ratios: steadier than a ratio of medians on a shared machine. The first repetition warms caches.
        out[f"{prior} vs plain"] = {
            name: statistics.median(a / p for a, p in zip(v[1:], times["plain"][1:], strict=True)) - 1
            for name, v in times.items() if name != "plain" and len(v) > 1}
    return out


def section(results: dict, ov: dict, lab_cmd: str, load: tuple[float, float], elapsed: float | None) -> str:
    clean = results["teacher_clean_accuracy"]
    und = results["undistilled_accuracy"]
    rows = []
    best = None
    for s in results["settings"]:
        rel = s["teacher_accuracy"] / clean if clean else 0.0
        below = s["student_accuracy"] < und
        if rel >= 0.9 and below and (best is None or s["student_accuracy"] < best["student_accuracy"]):
            best = s
        strength = "" if s["strength"] is None else f"{s['strength']:g}"
        serve = "" if s["generation_seconds"] is None else f"{s['generation_seconds']:.1f}"
        rows.append(f"| {s['defence']} | {strength} | {s['teacher_accuracy']:.3f} | {rel:.0%} | "
                    f"{s['student_accuracy']:.3f} | {'yes' if below else 'no'} | {serve} |")
    ad = [s for s in results["settings"] if s["defence"] == "antidistillation"]
    ad_ok = [s for s in ad if clean and s["teacher_accuracy"] / clean >= 0.9 and s["student_accuracy"] < und]
    prov = results["provenance"]
    at5 = [p for p in prov if abs(p["share"] - 0.05) < 1e-9]
    controls = results["controls"]
    fp = sum(c["pvalue"] < 0.01 for c in controls)
    kinds: dict[str, list[float]] = {}
    for c in controls:
        kinds.setdefault(c["kind"], []).append(c["pvalue"])
    none_s = next(s for s in results["settings"] if s["defence"] == "none")
    lines = [BEGIN, "## Distillation lab (benchmarks/lab.py, `distillguard lab`)", "",
             f"Command: `{lab_cmd}` (seed {results['config']['seed']}, {results['config']['threads']} PyTorch "
             "threads). "
             f"Lab wall time {results['seconds'] / 60:.1f} min"
             + (f" ({elapsed / 60:.1f} min with start-up)" if elapsed else "")
             + f"; machine load average {load[0]:.1f} before, {load[1]:.1f} after (2 cores shared with other "
             "engineers' jobs: times are upper bounds). Task, models and controls: docs/resistance.md, \"The lab\".",
             "", f"Clean teacher: {clean:.3f} (sampled at temperature 1; greedy "
             f"{results['teacher_greedy_accuracy']:.3f}). Undistilled student: **{und:.3f}**. Student distilled from "
             f"clean outputs: {none_s['student_accuracy']:.3f}. Provider's proxy student: "
             f"{results['proxy_accuracy']:.3f}.", "",
             "| defence | strength | teacher accuracy | of clean | distilled student | below undistilled | "
             "serve 2,000 (s) |", "|---|---|---|---|---|---|---|", *rows, "",
             "### Targets", "", "| target | measured | met |", "|---|---|---|"]
    if best is not None:
        lines.append(f"| a defence keeps the teacher >= 90 % of clean while the student falls below the undistilled "
                     f"one | {best['defence']} {'' if best['strength'] is None else best['strength']}: teacher "
                     f"{best['teacher_accuracy'] / clean:.0%} of clean, student {best['student_accuracy']:.3f} < "
                     f"{und:.3f} | yes |")
    else:
        lines.append("| a defence keeps the teacher >= 90 % of clean while the student falls below the undistilled "
                     "one | none | no |")
    lines.append("| ... with antidistillation sampling itself | "
                 + (", ".join(f"strength {s['strength']:g}: teacher {s['teacher_accuracy'] / max(clean, 1e-9):.0%}, "
                              f"student {s['student_accuracy']:.3f}" for s in ad)) + f" | {'yes' if ad_ok else 'no'} |")
    if at5:
        a = at5[0]
        met5 = "yes" if min(a["pvalue"], a.get("reading_pvalue", 1.0), a.get("mass_pvalue", 1.0),
                            a.get("paired_pvalue", 1.0)) < 1e-5 else "no"
        lines.append(f"| student with 5 % watermarked data detected at p < 1e-5 | generation mode p = "
                     f"{a['pvalue']:.1e} (z {a['z']:.1f}, {a['scored']} pairs); reading mode p = "
                     f"{a.get('reading_pvalue', float('nan')):.1e} ({a.get('reading_scored', 0)} pairs); reading mode "
                     f"with the student's probabilities p = {a.get('mass_pvalue', float('nan')):.1e} "
                     f"(z {a.get('mass_z', float('nan')):.1f}, {a.get('mass_scored', 0)} pairs); **paired with our "
                     f"teacher's unwatermarked probabilities p = {a.get('paired_pvalue', float('nan')):.1e}** "
                     f"(z {a.get('paired_z', float('nan')):.1f}, {a.get('paired_scored', 0)} pairs) | {met5} |")
    met_fp = "yes" if len(controls) >= 100 and fp <= 0.01 * len(controls) else "no"
    lines.append(f"| <= 1 % of >= 100 clean controls at p < 0.01 | {fp} of {len(controls)} "
                 f"({fp / max(len(controls), 1):.1%}) | {met_fp} |")
    if not ov:  # generation cost not measured in this run: the lab's own timings only
        ov = {"zipf": {}, "uniform": {}}
    z, u = ov["zipf"], ov["uniform"]
    t = results.get("timings", {})
    by = {(s["defence"], s["strength"]): s for s in results["settings"]}
    none_t = by.get(("none", None), {}).get("generation_seconds")
    wm_t = next((s["generation_seconds"] for s in results["settings"] if s["defence"] == "watermark"), None)
    lab_wm = ""
    if none_t and wm_t:
        lab_wm += f"lab arithmetic teacher: {wm_t / none_t - 1:+.0%}; "
    if t.get("lm_generate_plain_s") and t.get("lm_generate_watermark_s"):
        lab_wm += f"lab text teacher: {t['lm_generate_watermark_s'] / t['lm_generate_plain_s'] - 1:+.0%}; "
    def vs_plain(prior: str, name: str) -> float:
        """An arm's cost over plain: the paired per-repetition median when measured, else the ratio of medians."""
        paired = ov.get(f"{prior} vs plain", {})
        return paired[name] if name in paired else ov[prior][name] / ov[prior]["plain"] - 1

    if z:
        wm_z = vs_plain("zipf", "watermark (KeyedWatermark)")
        lines.append(f"| watermark adds <= 5 % to generation time | GPT-2-small shape: {wm_z:+.1%} (Zipf tokens), "
                     f"{vs_plain('uniform', 'watermark (KeyedWatermark)'):+.1%} (uniform, every step a cache miss); "
                     f"{lab_wm}| {'yes' if wm_z <= 0.05 else 'no'} (text-like tokens) |")
        lines.append(f"| cost of antidistillation measured | "
                     f"{vs_plain('zipf', 'antidistillation (2 x 256 proxy)'):+.1%} per token with a 2 x 256 proxy | "
                     "stated |")
    else:
        lines.append(f"| watermark adds <= 5 % to generation time | {lab_wm}(tiny lab models: the forward pass is "
                     "cheap, so this is an upper bound) | see text |")
    ad_t = [s for s in results["settings"] if s["defence"] == "antidistillation" and s["generation_seconds"]]
    if none_t and ad_t:
        lines.append(f"| cost of antidistillation (lab) | serving 2,000 answers: {none_t:.1f} s plain, "
                     + ", ".join(f"{s['generation_seconds']:.1f} s at {s['strength']:g}" for s in ad_t)
                     + " (a proxy as large as the teacher: two extra forward passes per token) | stated |")
    lines.append(f"| full lab <= 30 min on 2 cores | {results['seconds'] / 60:.1f} min (load {load[0]:.1f}) | "
                 f"{'yes' if results['seconds'] <= 1800 else 'no'} |")
    lines += ["", "Provenance p-values (our key) against the share of watermarked data in the student's fine-tuning "
              "set:",
              "", "| watermarked share | generation p | z | scored pairs | reading p | z | scored pairs | "
              "reading p (probabilities) | z | scored pairs | paired with our teacher p | z | scored pairs |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {p['share']:.0%} | {p['pvalue']:.1e} | {p['z']:.1f} | {p['scored']} | "
              f"{p.get('reading_pvalue', float('nan')):.1e} | {p.get('reading_z', float('nan')):.1f} | "
              f"{p.get('reading_scored', 0)} | {p.get('mass_pvalue', float('nan')):.1e} | "
              f"{p.get('mass_z', float('nan')):.1f} | {p.get('mass_scored', 0)} | "
              f"{p.get('paired_pvalue', float('nan')):.1e} | {p.get('paired_z', float('nan')):.1f} | "
              f"{p.get('paired_scored', 0)} |" for p in prov]
    lines += ["", "Controls (H0 true):", "", "| control | tests | p < 0.01 | smallest p |", "|---|---|---|---|"]
    lines += [f"| {k} | {len(v)} | {sum(x < 0.01 for x in v)} | {min(v):.2g} |" for k, v in kinds.items()]
    if z:
        lines += ["", "Generation cost per token, GPT-2-small shape (12 x 768, vocab 50,257, random weights), batch 4, "
                  f"48 new tokens, {results['config']['threads']} threads, median of interleaved runs:", "",
                  "| processor | Zipf tokens (ms/token) | vs plain | uniform tokens (ms/token) | vs plain |",
                  "|---|---|---|---|---|"]
        for name in z if z else ():
            lines.append(f"| {name} | {1000 * z[name]:.1f} | {vs_plain('zipf', name):+.1%} | {1000 * u[name]:.1f} | "
                         f"{vs_plain('uniform', name):+.1%} |")
    lines += ["", "Figures: `lab-out/teacher_student.png`, `lab-out/provenance.png`, page `lab-out/lab.html`.", END]
    return "\n".join(lines)


def write(path: Path, text: str) -> None:
    old = path.read_text() if path.exists() else ""
    if BEGIN in old and END in old:
        before, _, rest = old.partition(BEGIN)
        _, _, after = rest.partition(END)
        new = before + text + after
    else:
        new = old.rstrip("\n") + "\n\n" + text + "\n"
    path.write_text(new)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path("lab-out"))
    ap.add_argument("--cache", type=Path, default=None)
    ap.add_argument("--reuse", action="store_true", help="take the lab numbers from OUT/results.json")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--results", type=Path, default=Path(__file__).with_name("RESULTS.md"))
    ap.add_argument("--overhead-json", type=Path, default=None,
                    help="take the generation-cost numbers from this file (written by --overhead-only)")
    ap.add_argument("--overhead-only", type=Path, default=None, help="measure generation cost, write it here, stop")
    ap.add_argument("--reps", type=int, default=3, help="interleaved repetitions of each generation-cost arm")
    args = ap.parse_args()
    if args.overhead_only:
        args.overhead_only.write_text(json.dumps(overhead(args.threads, reps=args.reps), indent=2))
        return
    load_before = os.getloadavg()[0]
    cmd = ["distillguard", "lab", "--config", "full", "--threads", str(args.threads), "--out", str(args.out)]
    if args.cache:
        cmd += ["--cache", str(args.cache)]
    elapsed = None
    if not args.reuse:
        t = time.perf_counter()
        subprocess.run([str(Path(sys.executable).with_name("distillguard")), *cmd[1:]], check=True)
        elapsed = time.perf_counter() - t
    results = json.loads((args.out / "results.json").read_text())
    ov = json.loads(args.overhead_json.read_text()) if args.overhead_json else overhead(args.threads, reps=args.reps)
    load_after = os.getloadavg()[0]
    write(args.results, section(results, ov, " ".join(cmd), (load_before, load_after), elapsed))
    print(json.dumps(ov, indent=2))


if __name__ == "__main__":
    main()
