"""``distillguard ingest``: logs into the embedded store, with an exact account of every line."""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from distillguard.cli._common import EXIT_BAD_INPUT, EXIT_OK, console, fail, progress
from distillguard.ingest import FORMATS, IngestReport, StrictModeError, UnknownFormat, ingest
from distillguard.ingest.base import DamagedFile
from distillguard.ingest.decode import NATIVE
from distillguard.store import Store, StoreError


def _parse_options(values: tuple[str, ...]) -> dict[str, str]:
    options = {}
    for value in values:
        key, sep, val = value.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected key=value, got {value!r}", param_hint="--option")
        options[key] = val
    return options


def run_ingest(paths: list[str], store: Store, *, fmt: str = "auto", accounts: Path | None = None,
               strict: bool = False, options: dict[str, str] | None = None) -> IngestReport:
    """Ingest with a progress bar; shared by ``ingest``, ``detect LOGS...`` and ``demo``."""
    derive = None
    if not store.content:
        from distillguard.signals import SIGNALS

        derive = SIGNALS
    with progress() as bar:
        task = bar.add_task("ingest", total=None)
        report = ingest(paths, store, fmt=fmt, accounts=accounts, strict=strict, options=options,
                        derive=derive, on_progress=lambda n: bar.update(task, completed=n))
    return report


def print_report(report: IngestReport, store: Store) -> None:
    table = Table(title="ingest summary", show_header=False)
    table.add_row("lines read", f"{report.read:,}")
    table.add_row("ingested", f"{report.ingested:,}")
    table.add_row("duplicates (already stored)", f"{report.duplicates:,}")
    table.add_row("quarantined", f"{report.quarantined:,}")
    if report.skipped:
        table.add_row("skipped (not exchanges, e.g. non-GenAI spans)", f"{report.skipped:,}")
    table.add_row("account records", f"{report.accounts:,} (+{report.accounts_quarantined:,} quarantined)")
    rate = report.read / report.seconds if report.seconds else 0.0
    table.add_row("time", f"{report.seconds:.1f} s ({rate:,.0f} lines/s)")
    table.add_row("canonical decoder", "compiled (ingest/_native)" if NATIVE else
                  "Python only: the C extension was not built (no compiler at install?); ~3x slower")
    table.add_row("store", f"{store.root} ({'content kept' if store.content else 'no content'})")
    console.print(table)
    identity = "holds" if report.balanced else "[bold red]BROKEN[/]"
    console.print(f"read {report.read:,} = ingested {report.ingested:,} + duplicates {report.duplicates:,}"
                  f" + quarantined {report.quarantined:,}: {identity}")
    for message in report.errors[:10]:
        console.print(f"[yellow]bad line[/] {message}")
    if report.quarantine_file:
        console.print(f"rejected lines are in {report.quarantine_file} (verbatim copies beside it)")
    for message in report.file_problems:
        console.print(f"[bold red]file problem[/] {message}", highlight=False)
    if report.files_file:
        console.print(f"file problems are listed in {report.files_file}")
    if report.empty_files:
        console.print(f"empty files (nothing to read): {', '.join(report.empty_files[:5])}"
                      + (f" and {len(report.empty_files) - 5} more" if len(report.empty_files) > 5 else ""),
                      highlight=False)


@click.command("ingest")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--store", "store_dir", required=True, type=click.Path(file_okay=False), help="Store directory.")
@click.option("--accounts", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Account records (JSON Lines).")
@click.option("--format", "fmt", default="auto", show_default=True,
              type=click.Choice(["auto", *sorted(FORMATS)]), help="Input format (auto-detected by content).")
@click.option("--strict", is_flag=True, help="Abort on the first bad line (records before it are kept).")
@click.option("--no-content", is_flag=True, help="Keep derived fingerprints and lengths, not raw text.")
@click.option("--option", "options", multiple=True, metavar="KEY=VALUE",
              help="Format-specific option, e.g. account_attribute=app.account for otel.")
def command(paths: tuple[str, ...], store_dir: str, accounts: Path | None, fmt: str, strict: bool,
            no_content: bool, options: tuple[str, ...]) -> None:
    """Ingest API logs (canonical JSONL, OpenAI Batch, OTel GenAI, LiteLLM) into a store."""
    try:
        store = Store.open(store_dir, content=False if no_content else None)
        report = run_ingest(list(paths), store, fmt=fmt, accounts=accounts, strict=strict,
                            options=_parse_options(options))
    except (StoreError, UnknownFormat, FileNotFoundError, DamagedFile) as exc:
        fail(str(exc))
    except StrictModeError as exc:
        fail(f"--strict: {exc}")
    print_report(report, store)
    raise click.exceptions.Exit(EXIT_OK if report.clean else EXIT_BAD_INPUT)
