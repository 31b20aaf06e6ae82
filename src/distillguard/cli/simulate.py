"""``distillguard simulate``: write provider traffic with hidden distillation campaigns and ground truth."""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from distillguard.cli._common import EXIT_BAD_INPUT, console, fail, progress
from distillguard.simulate import (
    BENIGN_POPULATIONS,
    CAMPAIGN_TYPES,
    COMPRESSIONS,
    CORPUS_SPLITS,
    SCALES,
    SimulationResult,
    simulate,
)

# What a previous run may have left in OUT; --force removes exactly these and nothing else.
_OUTPUTS = ("exchanges/*.jsonl*", "accounts.jsonl", "labels.csv", "meta.json")


def _previous_outputs(out: Path) -> list[Path]:
    found: list[Path] = []
    for base in (out, *sorted(out.glob("provider-*"))):
        for pattern in _OUTPUTS:
            found += [p for p in base.glob(pattern) if p.is_file()]
    return found


def _summary(result: SimulationResult) -> Table:
    accounts = sum(row["accounts"] for p in result.providers for row in p.populations.values())
    table = Table(title=f"simulated {result.scale} seed={result.seed} -> {result.out}", show_footer=True)
    table.add_column("population", footer="total")
    table.add_column("label")
    table.add_column("accounts", justify="right", footer=f"{accounts:,}")
    table.add_column("exchanges", justify="right", footer=f"{result.exchanges:,}")
    for name in (*BENIGN_POPULATIONS, *CAMPAIGN_TYPES):
        accounts = sum(p.populations.get(name, {}).get("accounts", 0) for p in result.providers)
        exchanges = sum(p.populations.get(name, {}).get("exchanges", 0) for p in result.providers)
        table.add_row(name, "benign" if name in BENIGN_POPULATIONS else "attack", f"{accounts:,}", f"{exchanges:,}")
    return table


def _types(value: str, hint: str) -> list[str]:
    names = [v.strip() for v in value.split(",") if v.strip()]
    unknown = [n for n in names if n not in CAMPAIGN_TYPES]
    if unknown:
        raise click.BadParameter(f"unknown campaign type(s) {', '.join(unknown)}; choose from "
                                 f"{', '.join(CAMPAIGN_TYPES)}", param_hint=hint)
    return names


@click.command("simulate")
@click.option("--scale", type=click.Choice(list(SCALES)), default="tiny", show_default=True,
              help="Size preset (tiny ~5k exchanges ... public ~24k attacker accounts, ~16M attack exchanges).")
@click.option("--seed", type=int, default=0, show_default=True, help="Same seed, byte-identical output.")
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Output directory.")
@click.option("--providers", type=click.IntRange(1, 16), default=1, show_default=True,
              help="Write K providers attacked by the same actor(s), each first hit days after the previous.")
@click.option("--exchanges", type=click.IntRange(min=1), default=None,
              help="Override the preset's total exchanges per provider.")
@click.option("--compress", type=click.Choice(COMPRESSIONS), default="zst", show_default=True)
@click.option("--days", type=click.IntRange(8, 366), default=28, show_default=True, help="Length of the span.")
@click.option("--release-day", type=click.IntRange(1, 366), default=15, show_default=True,
              help="Day of the span (1-based) on which the new model is released.")
@click.option("--workers", type=click.IntRange(1, 256), default=1, show_default=True,
              help="Render days in this many processes (output is byte-identical for any value).")
@click.option("--campaigns", default=None, metavar="TYPES",
              help="Comma-separated campaign types to include (default: all). Instances kept are those of a full run.")
@click.option("--hold-out", "hold_out", default=None, metavar="TYPES",
              help="Comma-separated campaign types to leave out (e.g. for leave-one-type-out evaluation).")
@click.option("--corpus", type=click.Choice(CORPUS_SPLITS), default="train", show_default=True,
              help="Split of the odd-half ShareGPT corpus that texts come from (train for training runs; "
                   "validation/test for held-out evaluation runs).")
@click.option("--force", is_flag=True, help="Overwrite simulator outputs already in OUT.")
def command(scale: str, seed: int, out: Path, providers: int, exchanges: int | None, compress: str, days: int,
            release_day: int, workers: int, campaigns: str | None, hold_out: str | None, corpus: str,
            force: bool) -> None:
    """Write realistic provider traffic with hidden distillation campaigns and ground-truth labels.

    OUT gets exchanges/<day>.jsonl.zst (canonical exchange log), accounts.jsonl, labels.csv and
    meta.json; with --providers K, one such directory per provider plus a top-level meta.json.
    """
    if release_day > days:
        raise click.BadParameter(f"must be <= --days ({days})", param_hint="--release-day")
    types = _types(campaigns, "--campaigns") if campaigns else list(CAMPAIGN_TYPES)
    dropped = _types(hold_out, "--hold-out") if hold_out else []
    types = [t for t in types if t not in dropped]
    stale = _previous_outputs(out) if out.exists() else []
    if stale and not force:
        fail(f"{out} already holds simulator output ({len(stale)} files); pass --force to overwrite it",
             EXIT_BAD_INPUT)
    for path in stale:
        path.unlink()
    with progress() as bar:
        task = bar.add_task("simulating", total=None)
        try:
            result = simulate(out, scale=scale, seed=seed, providers=providers, exchanges=exchanges,
                              compress=compress, days=days, release_day=release_day, workers=workers,
                              campaigns=types, corpus=corpus,
                              progress=lambda done, total: bar.update(task, completed=done, total=total))
        except (ValueError, OSError) as exc:
            fail(str(exc), EXIT_BAD_INPUT)
    console.print(_summary(result))
    rate = result.exchanges / result.seconds if result.seconds else 0.0
    console.print(f"{result.exchanges:,} exchanges, {result.attackers:,} attacker accounts in "
                  f"{sum(len(p.campaigns) for p in result.providers)} campaigns, {len(result.files)} files written "
                  f"in {result.seconds:.1f} s ({rate:,.0f} exchanges/s)")
