"""``distillguard train``: refit the decision weights of the evidence families on labelled accounts."""

from __future__ import annotations

from pathlib import Path

import click

from distillguard.cli._common import EXIT_BAD_INPUT, console, fail


@click.command()
@click.option("--data", "data", multiple=True, required=True, type=click.Path(exists=True, file_okay=False,
              path_type=Path), help="Simulation directory (repeatable), from `distillguard simulate`.")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Artifact to write (the shipped one is src/distillguard/data/models/detector-v2.json).")
@click.option("--exclude-type", "exclude", multiple=True, help="Leave a campaign type out of training.")
def command(data: tuple[Path, ...], out: Path, exclude: tuple[str, ...]) -> None:
    """Refit the evidence families' weights on simulations with ground truth; write a versioned artifact."""
    from distillguard.detect.train import train

    try:
        with console.status("training"):
            model = train(list(data), out, exclude_types=exclude)
    except (ValueError, FileNotFoundError) as exc:
        fail(str(exc), EXIT_BAD_INPUT)
    size = out.stat().st_size
    console.print(f"wrote {out} ({size / 1024:.0f} KiB): {model.meta['accounts']:,} accounts, "
                  f"{model.meta['attack_accounts']:,} attackers; family weights "
                  f"{', '.join(f'{k} {w:.2f}' for k, w in model.policy.weights.items())}")
