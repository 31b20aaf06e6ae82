"""``distillguard demo``: the main job end to end on embedded data, nothing to install by hand.

simulate -> ingest -> detect (accounts.csv, campaigns.json, report.html) -> evaluation against the
simulator's ground truth, so a new user sees every stage and its output in one command.
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path
from typing import Any

import click
import numpy as np
from rich.table import Table

from distillguard.cli._common import console
from distillguard.cli.ingest import print_report, run_ingest
from distillguard.evaluation import campaign_ari, roc_auc
from distillguard.simulate.config import SCALES
from distillguard.store import Store

FLAGGED = ("throttle", "block")


def score_against_labels(accounts_csv: Path, labels_csv: Path) -> dict[str, Any]:
    """Headline quality of a detect run on simulated data: what a new user wants to see first."""
    with labels_csv.open(newline="") as handle:
        labels = {row["account_id"]: row for row in csv.DictReader(handle)}
    with accounts_csv.open(newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row["account_id"] in labels]
    attack = np.array([labels[r["account_id"]]["label"] == "attack" for r in rows])
    risk = np.array([float(r["risk"]) for r in rows])
    flagged = np.array([r["verdict"] in FLAGGED for r in rows])
    truth = np.array([labels[r["account_id"]]["campaign"] or "" for r in rows])
    found = [r["campaign_id"] or None for r in rows]
    benign_in_campaigns = sum(1 for r, a in zip(found, attack, strict=True) if r and not a)
    fp_populations = sorted({labels[r["account_id"]]["population"] for r, f, a in
                             zip(rows, flagged, attack, strict=True) if f and not a})
    return {
        "accounts (attackers / benign)": f"{int(attack.sum())} / {int((~attack).sum())}",
        "ROC-AUC": roc_auc(attack, risk),
        "attackers throttled or blocked": float(flagged[attack].mean()) if attack.any() else float("nan"),
        "benign throttled or blocked": f"{int(flagged[~attack].sum())} ({', '.join(fp_populations) or 'none'})",
        "campaign ARI": campaign_ari(truth, attack.astype(int), found),
        "benign accounts inside campaigns": benign_in_campaigns,
    }


@click.command("demo")
@click.option("--out", "out_dir", default="demo", show_default=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--scale", default="small", show_default=True, type=click.Choice(list(SCALES)),
              help="Simulator scale preset.")
@click.option("--seed", default=7, show_default=True, type=int, help="Simulator seed (the shipped model was "
              "trained on other seeds).")
@click.pass_context
def command(ctx: click.Context, out_dir: Path, scale: str, seed: int) -> None:
    """Simulate traffic with hidden campaigns, ingest it, detect, report and score against ground truth."""
    from distillguard.cli.detect import command as detect_command
    from distillguard.simulate import simulate

    if out_dir.exists():
        shutil.rmtree(out_dir)
    sim_dir, store_dir, detect_dir = out_dir / "sim", out_dir / "store", out_dir / "detect"
    console.rule("[bold]1/4 simulate")
    simulate(sim_dir, scale=scale, seed=seed)
    console.rule("[bold]2/4 ingest")
    store = Store.open(store_dir)
    report = run_ingest([str(sim_dir / "exchanges")], store, accounts=sim_dir / "accounts.jsonl")
    print_report(report, store)
    console.rule("[bold]3/4 detect")
    ctx.invoke(detect_command, logs=(), store_dir=store_dir, accounts=None, out=detect_dir, model_path=None)
    console.rule("[bold]4/4 score against ground truth")
    table = Table(title="demo result against the simulator's ground truth", show_header=False)
    for key, value in score_against_labels(detect_dir / "accounts.csv", sim_dir / "labels.csv").items():
        table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    table.add_row("accounts.csv", str(detect_dir / "accounts.csv"))
    table.add_row("campaigns.json", str(detect_dir / "campaigns.json"))
    table.add_row("report", str(detect_dir / "report.html"))
    console.print(table)
