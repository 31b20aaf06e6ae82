"""``distillguard lab``: measure every defence on CPU (needs the ``lab`` extra)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import click

from distillguard.cli._common import console, fail


def _require_lab() -> None:
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError:
        fail("the lab needs PyTorch and transformers: pip install 'distillguard[lab]'")


@click.command("lab")
@click.option("--config", "config_name", type=click.Choice(["smoke", "full"]), default="full", show_default=True,
              help="smoke: a minute or two, checks the pipeline; full: the measured lab (about 30 min on 2 cores)")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--threads", type=int, default=2, show_default=True, help="PyTorch CPU threads")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="lab-out", show_default=True)
@click.option("--cache", "cache_dir", type=click.Path(file_okay=False), default=None,
              help="keep trained teachers, proxy and undistilled student here and reuse them (same config, seed "
                   "and PyTorch version)")
@click.option("--only", "only", type=click.Choice(["arithmetic", "provenance"]), default=None,
              help="run one experiment only")
@click.option("--defences", default=None, help="comma-separated subset of the arithmetic defences "
              "(none, withhold, summarise, restructure, temperature, antidistillation, watermark)")
@click.option("--ad-strengths", default=None, help="comma-separated antidistillation strengths")
@click.option("--merge", "merge_path", type=click.Path(exists=True, dir_okay=False), default=None,
              help="an earlier results.json to add this run's settings to (settings not redone are kept)")
def command(config_name: str, seed: int, threads: int, out_dir: str, cache_dir: str | None, only: str | None,
            defences: str | None, ad_strengths: str | None, merge_path: str | None) -> None:
    """Train a small teacher from scratch on checkable arithmetic, distil students from its outputs under each
    defence (temperature, antidistillation, watermark, withheld / summarised / restructured traces), and test
    watermark radioactivity against the share of watermarked training data with clean controls.

    Writes OUT/results.json, OUT/lab.html (plots embedded), OUT/teacher_student.png, OUT/provenance.png.
    Nothing is downloaded; the same seed gives the same numbers on the same PyTorch build and thread count."""
    _require_lab()
    from distillguard.lab.run import CONFIGS, run

    cfg = replace(CONFIGS[config_name], seed=seed, threads=threads)
    if only:
        cfg = replace(cfg, experiments=(only,))
    if defences:
        cfg = replace(cfg, defences=tuple(d.strip() for d in defences.split(",") if d.strip()))
    if ad_strengths:
        try:
            cfg = replace(cfg, ad_strengths=tuple(float(x) for x in ad_strengths.split(",")))
        except ValueError:
            fail(f"--ad-strengths: not a list of numbers: {ad_strengths!r}", 2)
    result = run(cfg, Path(out_dir), log=lambda m: console.print(m, highlight=False),
                 cache=Path(cache_dir) if cache_dir else None, merge=Path(merge_path) if merge_path else None)
    summary = {"teacher_clean_accuracy": result.teacher_clean_accuracy,
               "undistilled_accuracy": result.undistilled_accuracy, "seconds": round(result.seconds, 1)}
    click.echo(json.dumps(summary))
