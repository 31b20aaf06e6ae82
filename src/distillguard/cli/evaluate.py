"""``distillguard eval``: detection quality on held-out simulations (issue §6)."""

from __future__ import annotations

from pathlib import Path

import click
import orjson
from rich.table import Table

from distillguard.cli._common import EXIT_BAD_INPUT, console, fail


def _fmt(value: float | None) -> str:
    return "-" if value is None or value != value else f"{value:.3f}"


@click.command()
@click.option("--train", "train", multiple=True, required=True, type=click.Path(exists=True, file_okay=False,
              path_type=Path), help="Simulation directory to train on (repeatable).")
@click.option("--test", "test", multiple=True, required=True, type=click.Path(exists=True, file_okay=False,
              path_type=Path), help="Held-out simulation directory (other seed) to measure on (repeatable).")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), help="Write all figures here.")
@click.option("--no-loco", is_flag=True, help="Skip leave-one-campaign-type-out.")
@click.option("--no-harvest", is_flag=True, help="Skip the time-to-detection replay.")
@click.option("--seed", default=0, show_default=True)
def command(train: tuple[Path, ...], test: tuple[Path, ...], json_out: Path | None, no_loco: bool,
            no_harvest: bool, seed: int) -> None:
    """Train on --train simulations, detect on held-out --test simulations, print and save metrics."""
    from distillguard.evaluation import evaluate

    overlap = {p.resolve() for p in train} & {p.resolve() for p in test}
    if overlap:
        fail(f"test data is also training data: {', '.join(map(str, overlap))}", EXIT_BAD_INPUT)
    try:
        with console.status("evaluating") as status:
            report = evaluate(list(train), list(test), loco=not no_loco, harvest=not no_harvest, seed=seed,
                              log=lambda m: status.update(m))
    except (ValueError, FileNotFoundError) as exc:
        fail(str(exc), EXIT_BAD_INPUT)
    for name, entry in report["test"].items():
        table = Table(title=f"held-out {name}")
        table.add_column("metric")
        table.add_column("value", justify="right")
        for key in ("roc_auc", "recall_at_fpr_1pct", "recall_at_fpr_0.1pct", "flagged_recall", "flagged_fpr",
                    "campaign_ari", "max_harvest_share"):
            table.add_row(key, _fmt(entry.get(key)))
        table.add_row("benign_in_campaigns", str(entry["benign_in_campaigns"]))
        for pop, v in entry["fpr_by_population"].items():
            table.add_row(f"FPR {pop} ({v['accounts']})", _fmt(v["rate"]))
        for kind, v in entry["recall_by_campaign_type"].items():
            table.add_row(f"recall {kind} ({v['accounts']})", _fmt(v["rate"]))
        for camp, v in entry.get("harvest", {}).items():
            table.add_row(f"harvested before flag {camp}", f"{v['harvested_before_flag']:,} ({100 * v['share']:.2f}%)")
        for kind, v in entry.get("leave_one_type_out", {}).items():
            table.add_row(f"LOCO {kind} recall flagged / @0.1% (fused / floor)",
                          f"{_fmt(v['flagged_recall'])} / {_fmt(v['recall_at_fpr_0.1pct'])} "
                          f"({_fmt(v.get('fused_recall'))} / {_fmt(v.get('floor_recall'))})")
        console.print(table)
    if json_out:
        json_out.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))
        console.print(f"wrote {json_out}")
