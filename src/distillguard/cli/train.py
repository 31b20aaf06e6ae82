"""``distillguard train``: retrain the supervised detector and fusion on simulator ground truth."""

from __future__ import annotations

from pathlib import Path

import click

from distillguard.cli._common import EXIT_BAD_INPUT, console, fail


@click.command()
@click.option("--data", "data", multiple=True, required=True, type=click.Path(exists=True, file_okay=False,
              path_type=Path), help="Simulation directory (repeatable), from `distillguard simulate`.")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Artifact to write (the shipped one is src/distillguard/data/models/detector-v1.json.gz).")
@click.option("--exclude-type", "exclude", multiple=True, help="Leave a campaign type out of training.")
@click.option("--seed", default=0, show_default=True, help="Random seed of the tree learner.")
def command(data: tuple[Path, ...], out: Path, exclude: tuple[str, ...], seed: int) -> None:
    """Train the detector on simulations with ground truth and write a versioned artifact."""
    from distillguard.detect.train import train

    try:
        with console.status("training"):
            model = train(list(data), out, exclude_types=exclude, seed=seed)
    except (ValueError, FileNotFoundError) as exc:
        fail(str(exc), EXIT_BAD_INPUT)
    size = out.stat().st_size
    console.print(f"wrote {out} ({size / 1024:.0f} KiB): {model.meta['accounts']:,} accounts, "
                  f"{model.meta['attack_accounts']:,} attackers; fusion weights "
                  f"{', '.join(f'{w:.2f}' for w in model.coef)}")
