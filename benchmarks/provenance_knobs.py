"""What moves the provenance test at a 5 % watermarked share: the lab's provenance experiment (one share, one clean
student with 5 random control keys, 2 text controls) under four settings of the student's fine-tuning and the
watermark's strength. Prints each setting's reading-probabilities z and p-value (the statistic
`distillguard provenance test --read` uses) and the controls below p 0.01.

    python benchmarks/provenance_knobs.py [--cache DIR]     # ~9 min on 2 cores; PyTorch CPU (distillguard[lab])
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

SETTINGS = (  # (fine-tuning examples, fine-tuning steps, watermark bias)
    (4000, 200, 2.0),  # the full lab's setting
    (12000, 600, 2.0),  # three times the data, the same epochs
    (4000, 600, 2.0),  # three times the epochs
    (4000, 200, 3.0),  # a stronger watermark
    (4000, 600, 3.0),
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", type=Path, default=Path("lab-cache"), help="trained teachers are kept and reused here")
    args = ap.parse_args()
    import torch

    from distillguard.lab.run import CONFIGS, LabResult, provenance
    from distillguard.resist.keys import random_key

    torch.set_num_threads(2)
    print("examples steps bias   z      p        controls<0.01  seconds")
    for examples, steps, bias in SETTINGS:
        cfg = replace(CONFIGS["full"], lm_student_examples=examples, lm_student_steps=steps, lm_bias=bias,
                      shares=(0.05,), clean_students=1, control_keys_per_clean=5, text_controls=2, threads=2)
        key = random_key("lab-key", rng_seed=cfg.seed, greenlist_ratio=cfg.greenlist_ratio, bias=cfg.lm_bias)
        result = LabResult(config={})
        t = time.perf_counter()
        provenance(cfg, key, result, lambda _m: None, args.cache)
        row = result.provenance[0]
        low = sum(c["pvalue"] < 0.01 for c in result.controls)
        print(f"{examples:8d} {steps:5d} {bias:4.1f} {row['mass_z']:6.2f} {row['mass_pvalue']:8.1e} "
              f"{low:4d} of {len(result.controls):<6d} {time.perf_counter() - t:7.0f}", flush=True)


if __name__ == "__main__":
    main()
