"""Calibration of the provenance test with *our* key: clean students (the attacker's base model fine-tuned without any
of our watermarked outputs, one seed each) read our watermarked texts, and every statistic of the lab's provenance
experiment is scored with our key. Under H0 their z should centre on 0 with at most unit spread and no p-value should
fall below 0.01. Random keys test a different thing (a suspect that would look radioactive for every key); this
tests whether reading *our* texts, watermarked with *our* key, biases a model that never trained on them, which is
where the reading modes' copy exclusions (and the paired statistic's first-position rule) matter.

    python benchmarks/provenance_clean.py [--students 16] [--cache DIR]   # ~1 min a student on 2 cores
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--students", type=int, default=16)
    ap.add_argument("--cache", type=Path, default=Path("lab-cache"), help="trained teachers are kept and reused here")
    args = ap.parse_args()
    import torch

    from distillguard.lab.run import CONFIGS, LabResult, provenance
    from distillguard.resist.keys import random_key

    torch.set_num_threads(2)
    cfg = replace(CONFIGS["full"], shares=(0.05,), clean_students=args.students, control_keys_per_clean=0,
                  text_controls=0, threads=2)
    key = random_key("lab-key", rng_seed=cfg.seed, greenlist_ratio=cfg.greenlist_ratio, bias=cfg.lm_bias)
    result = LabResult(config={})
    t = time.perf_counter()
    provenance(cfg, key, result, lambda _m: None, args.cache)
    print(f"{args.students} clean students, our key ({time.perf_counter() - t:.0f} s)")
    print(f"{'statistic':58s} mean z  spread  largest z  smallest p  p < 0.01")
    kinds: dict[str, list[dict[str, float]]] = {}
    for c in result.controls:
        kinds.setdefault(c["kind"], []).append(c)
    for kind, rows in kinds.items():
        zs = [r["z"] for r in rows]
        print(f"{kind.replace('clean student ', ''):58s} {statistics.mean(zs):6.2f}  {statistics.pstdev(zs):6.2f}  "
              f"{max(zs):9.2f}  {min(r['pvalue'] for r in rows):10.3f}  {sum(r['pvalue'] < 0.01 for r in rows):8d}")
    row = result.provenance[0]
    print(f"for scale, the 5 % student: paired z {row['paired_z']:.1f} (p {row['paired_pvalue']:.1e}), "
          f"probabilities z {row['mass_z']:.1f}")


if __name__ == "__main__":
    main()
