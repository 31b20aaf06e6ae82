"""``distillguard eval``: detection quality on labelled traffic, or on held-out simulations.

Two modes:

* ``--labels labels.csv --detections OUT [--replay R]``: score any labelled traffic (an independent sample, a
  provider's analyst labels, a simulation's ``labels.csv``) against ``detect`` output and ``gateway replay``
  decisions;
* ``--train SIM... --test SIM...``: retrain on simulations and measure on held-out seeds (with
  leave-one-campaign-type-out and time to detection).
"""

from __future__ import annotations

from pathlib import Path

import click
import orjson
from rich.table import Table

from distillguard.cli._common import EXIT_BAD_INPUT, EXIT_USAGE, console, fail


def _fmt(value: float | None) -> str:
    return "-" if value is None or value != value else f"{value:.3f}"


def _rate_rows(table: Table, prefix: str, groups: dict[str, dict[str, float]]) -> None:
    for name, v in groups.items():
        table.add_row(f"{prefix} {name} ({v['accounts']})", f"{v['flagged']} ({100 * v['rate']:.1f} %)")


def _labelled(labels_path: Path, detections: Path | None, replay: Path | None, within: int,
              json_out: Path | None) -> None:
    from distillguard.evaluation.external import (
        LabelsError,
        load_labels,
        score_detections,
        score_replay,
        verdict_on_targets,
    )

    try:
        labels = load_labels(labels_path)
        det = score_detections(labels, detections) if detections else None
        rep = score_replay(labels, replay, within) if replay else None
    except (LabelsError, FileNotFoundError) as exc:
        fail(str(exc), EXIT_BAD_INPUT)
        return
    if det:
        table = Table(title=f"detect: {detections} ({det['attack_accounts']} attack / {det['benign_accounts']} benign)")
        table.add_column("metric")
        table.add_column("value", justify="right")
        for key in ("roc_auc", "recall_at_fpr_1pct", "recall_at_fpr_0.1pct", "flagged_recall", "flagged_fpr",
                    "campaign_ari"):
            table.add_row(key, _fmt(det[key]))
        for key in ("benign_blocked", "campaigns_found", "benign_in_campaigns", "attackers_in_no_campaign",
                    "labelled_without_detection"):
            table.add_row(key, str(det[key]))
        _rate_rows(table, "benign flagged:", det["flagged_fpr_by_population"])
        _rate_rows(table, "attack flagged:", det["flagged_recall_by_campaign"])
        for kind, value in det["recall_at_fpr_0.1pct_by_kind"].items():
            table.add_row(f"recall at 0.1 % FPR: {kind}", _fmt(value))
        console.print(table)
    if rep:
        table = Table(title=f"gateway replay: {replay}")
        table.add_column("metric")
        table.add_column("value", justify="right")
        table.add_row(f"attackers restricted within {within} requests", _fmt(rep["attackers_restricted_within"]))
        table.add_row("benign ever throttled or blocked", _fmt(rep["benign_ever_restricted"]))
        table.add_row("benign ever blocked", str(rep["benign_ever_blocked"]))
        _rate_rows(table, "attack restricted:", rep["attackers_restricted_by_campaign"])
        _rate_rows(table, "benign throttled:", rep["benign_ever_throttled_by_population"])
        console.print(table)
    targets = Table(title="targets")
    targets.add_column("target")
    targets.add_column("measured", justify="right")
    targets.add_column("met")
    for name, measured, met in verdict_on_targets(det, rep):
        targets.add_row(name, measured, "[green]yes[/]" if met else "[red]no[/]")
    console.print(targets)
    if json_out:
        json_out.write_bytes(orjson.dumps({"labels": str(labels_path), "detections": det, "replay": rep},
                                          option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))
        console.print(f"wrote {json_out}")


@click.command()
@click.option("--labels", "labels_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="labels.csv (account_id,label,campaign,population) of the traffic to score.")
@click.option("--detections", type=click.Path(exists=True, path_type=Path),
              help="`distillguard detect` output directory (accounts.csv, campaigns.json) to score with --labels.")
@click.option("--replay", type=click.Path(exists=True, path_type=Path),
              help="`distillguard gateway replay` output directory to score with --labels.")
@click.option("--within", default=200, show_default=True,
              help="Replay: an attacker counts as restricted if first throttled or blocked by this request.")
@click.option("--train", "train", multiple=True, type=click.Path(exists=True, file_okay=False,
              path_type=Path), help="Simulation directory to train on (repeatable).")
@click.option("--test", "test", multiple=True, type=click.Path(exists=True, file_okay=False,
              path_type=Path), help="Held-out simulation directory (other seed) to measure on (repeatable).")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), help="Write all figures here.")
@click.option("--no-loco", is_flag=True, help="Skip leave-one-campaign-type-out.")
@click.option("--no-harvest", is_flag=True, help="Skip the time-to-detection replay.")
def command(labels_path: Path | None, detections: Path | None, replay: Path | None, within: int,
            train: tuple[Path, ...], test: tuple[Path, ...], json_out: Path | None, no_loco: bool,
            no_harvest: bool) -> None:
    """Score labelled traffic (--labels with --detections and/or --replay), or train on --train simulations
    and measure on held-out --test simulations."""
    from distillguard.evaluation import evaluate

    if labels_path is not None:
        if not detections and not replay:
            fail("--labels needs --detections and/or --replay", EXIT_USAGE)
        if train or test:
            fail("--labels scores existing outputs; it does not take --train/--test", EXIT_USAGE)
        _labelled(labels_path, detections, replay, within, json_out)
        return
    if not train or not test:
        fail("give --labels with --detections/--replay, or --train and --test simulations", EXIT_USAGE)

    overlap = {p.resolve() for p in train} & {p.resolve() for p in test}
    if overlap:
        fail(f"test data is also training data: {', '.join(map(str, overlap))}", EXIT_BAD_INPUT)
    try:
        with console.status("evaluating") as status:
            report = evaluate(list(train), list(test), loco=not no_loco, harvest=not no_harvest,
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
            table.add_row(f"LOCO {kind} recall flagged / @0.1%",
                          f"{_fmt(v['flagged_recall'])} / {_fmt(v['recall_at_fpr_0.1pct'])}")
        console.print(table)
    if json_out:
        json_out.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))
        console.print(f"wrote {json_out}")
