"""``distillguard summary``: what a store holds."""

from __future__ import annotations

import click
from rich.table import Table

from distillguard.cli._common import console, fail
from distillguard.store import Store, StoreError


@click.command("summary")
@click.option("--store", "store_dir", required=True, type=click.Path(exists=True, file_okay=False))
def command(store_dir: str) -> None:
    """Headline figures of a store: exchanges, accounts, span, models, quarantine."""
    try:
        store = Store.open(store_dir, create=False)
    except StoreError as exc:
        fail(str(exc))
    figures = store.summary()
    table = Table(title=f"store {store_dir}", show_header=False)
    for key in ("exchanges", "accounts_seen", "account_records", "distinct_ips", "first_ts", "last_ts",
                "quarantined", "content"):
        value = figures[key]
        table.add_row(key.replace("_", " "), f"{value:,}" if isinstance(value, int) and not isinstance(
            value, bool) else str(value))
    for model, count in figures["models"].items():
        table.add_row(f"model {model}", f"{count:,}")
    console.print(table)
