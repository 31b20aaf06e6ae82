"""``distillguard train``: refit the decision weights of the evidence families on labelled accounts.

Labels come from simulations (``--data SIMDIR``, their ground truth) or from analysts (``--store DIR --decisions
FILE``: confirmed accounts are attacks, dismissed ones benign, as the console records them).
"""

from __future__ import annotations

from pathlib import Path

import click

from distillguard.cli._common import EXIT_BAD_INPUT, EXIT_USAGE, console, fail


@click.command()
@click.option("--data", "data", multiple=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Simulation directory (repeatable), from `distillguard simulate`.")
@click.option("--store", "store_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="A store whose accounts analysts judged (with --decisions).")
@click.option("--decisions", "decisions_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Analysts' decisions (JSON Lines from the console): confirm = attack, dismiss = benign.")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Artifact to write (the shipped one is src/distillguard/data/models/detector-v2.json).")
@click.option("--exclude-type", "exclude", multiple=True, help="Leave a campaign type out of training (--data).")
def command(data: tuple[Path, ...], store_dir: Path | None, decisions_path: Path | None, out: Path,
            exclude: tuple[str, ...]) -> None:
    """Refit the evidence families' weights on labelled accounts; write a versioned artifact."""
    if bool(data) == bool(store_dir or decisions_path):
        fail("give simulations (--data) or analysts' labels (--store and --decisions), not both", EXIT_USAGE)
    if bool(store_dir) != bool(decisions_path):
        fail("--store and --decisions go together", EXIT_USAGE)
    try:
        with console.status("training"):
            if data:
                from distillguard.detect.train import train

                model = train(list(data), out, exclude_types=exclude)
            else:
                from distillguard.cases.labels import fit_analyst

                assert store_dir is not None and decisions_path is not None  # checked above: both or neither
                model = fit_analyst(store_dir, decisions_path, out)
    except (ValueError, FileNotFoundError) as exc:
        fail(str(exc), EXIT_BAD_INPUT)
        return
    size = out.stat().st_size
    console.print(f"wrote {out} ({size / 1024:.0f} KiB): {model.meta['accounts']:,} accounts, "
                  f"{model.meta['attack_accounts']:,} attackers; family weights "
                  f"{', '.join(f'{k} {w:.2f}' for k, w in model.policy.weights.items())}")
