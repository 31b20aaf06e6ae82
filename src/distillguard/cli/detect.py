"""``distillguard detect``: score accounts, find campaigns, write accounts.csv / campaigns.json / report.html."""

from __future__ import annotations

import tempfile
from pathlib import Path

import click
from rich.progress import TaskID
from rich.table import Table

from distillguard.cli._common import EXIT_BAD_INPUT, EXIT_USAGE, ByteSize, console, fail, progress


@click.command()
@click.argument("logs", nargs=-1, type=click.Path(path_type=Path))
@click.option("--store", "store_dir", type=str, metavar="DIR_OR_URI",
              help="Detect over an existing store. With --engine spark also a store URI (s3a://..., hdfs://...) "
                   "or tables: table:NAMESPACE (NAMESPACE.exchanges, NAMESPACE.accounts), delta:PATH, iceberg:PATH.")
@click.option("--accounts", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Account records (JSONL) to ingest with LOGS.")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Output directory.")
@click.option("--model", "model_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Detector artifact (default: the one shipped with distillguard).")
@click.option("--decisions", "decisions_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Analysts' decisions (JSON Lines: confirm-block, confirm-throttle, dismiss, undo) applied by "
                   "the decision stage; written by the console.")
@click.option("--memory-limit", default=None, metavar="SIZE", type=ByteSize(),
              help="Cap on the query engine's memory, e.g. 5GB; beyond it, work spills to disk in the store "
                   "(default: 6GB or half the RAM, whichever is less).")
@click.option("--engine", "engine_name", type=click.Choice(["duckdb", "spark"]), default="duckdb", show_default=True,
              help="Where signals, features, scores and attribution's joins run: DuckDB in this process, or Spark "
                   "(pip install 'distillguard[spark]'; Java 17). See docs/spark.md.")
@click.option("--master", default=None, metavar="URL",
              help="Spark master (local[4], spark://host:7077, yarn); default: the active session (spark-submit, "
                   "Databricks) or local[*]. Only with --engine spark.")
@click.option("--spark-conf", "spark_conf", multiple=True, metavar="KEY=VALUE",
              help="A Spark setting for the session detection builds, e.g. spark.driver.memory=8g or "
                   "spark.sql.shuffle.partitions=64 (repeatable; local defaults: 4g, 8). Only with --engine spark.")
def command(logs: tuple[Path, ...], store_dir: str | None, accounts: Path | None, out: Path,
            model_path: Path | None, decisions_path: Path | None, memory_limit: str | None, engine_name: str,
            master: str | None, spark_conf: tuple[str, ...]) -> None:
    """Detect distillation in a store (--store DIR) or directly in log files (LOGS...)."""
    from distillguard.detect import Model
    from distillguard.ingest.pipeline import ingest
    from distillguard.pipeline import run_detection
    from distillguard.signals import SIGNALS
    from distillguard.store import Store
    from distillguard.store.store import StoreError

    if bool(logs) == bool(store_dir):
        fail("give either --store DIR or log files, not both or neither", EXIT_USAGE)
    if accounts and not logs:
        fail("--accounts goes with log files (a store already holds its accounts)", EXIT_USAGE)
    if master and engine_name != "spark":
        fail("--master goes with --engine spark", EXIT_USAGE)
    if spark_conf and engine_name != "spark":
        fail("--spark-conf goes with --engine spark", EXIT_USAGE)
    conf: dict[str, str] = {}
    for item in spark_conf:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            fail(f"--spark-conf {item!r}: expected KEY=VALUE, e.g. spark.driver.memory=8g", EXIT_USAGE)
        conf[key.strip()] = value.strip()
    from distillguard.decide.analyst import load_decisions
    from distillguard.engine import EngineError, get_engine
    from distillguard.engine.source import is_local_store

    try:
        model = Model.load(model_path)
        decisions = load_decisions(decisions_path) if decisions_path else None
    except (ValueError, OSError) as exc:
        fail(str(exc), EXIT_BAD_INPUT)
    with tempfile.TemporaryDirectory(prefix="distillguard-") as tmp:
        store: Store | str
        try:
            if store_dir and engine_name == "spark" and not is_local_store(store_dir):
                store = store_dir  # a URI or tables: only Spark reads it
            elif store_dir:
                if not (Path(store_dir) / "store.json").exists():
                    fail(f"{store_dir}: not a distillguard store (no store.json)", EXIT_BAD_INPUT)
                store = Store.open(Path(store_dir), create=False)
            else:
                store = Store.open(Path(tmp) / "store")
                with progress() as bar:
                    task = bar.add_task("ingest", total=None)
                    report = ingest(list(logs), store, accounts=accounts, derive=SIGNALS,
                                    on_progress=lambda n: bar.update(task, completed=n))
                console.print(f"ingested {report.ingested:,} exchanges ({report.quarantined:,} quarantined)")
                for message in report.errors[:5]:
                    console.print(f"  [yellow]{message}[/]")
            with progress() as bar:
                tasks: dict[str, TaskID] = {}

                def on_progress(stage: str, done: float) -> None:
                    if stage not in tasks:
                        tasks[stage] = bar.add_task(stage, total=100)
                    bar.update(tasks[stage], completed=round(100 * done))

                if engine_name == "duckdb":
                    assert isinstance(store, Store)  # only Spark reads a URI or tables
                    result = run_detection(store, out, model=model, progress=on_progress, memory_limit=memory_limit,
                                           decisions=decisions)
                else:
                    with get_engine(engine_name, master=master, conf=conf) as engine:
                        result = engine.detect(store if isinstance(store, str) else store.root, out, model=model,
                                               progress=on_progress, decisions=decisions)
        except EngineError as exc:
            fail(str(exc), EXIT_USAGE)
        except (FileNotFoundError, StoreError, ValueError) as exc:
            fail(str(exc), EXIT_BAD_INPUT)
    counts = result.verdict_counts()
    table = Table(title=f"distillguard detect -> {out}")
    table.add_column("verdict")
    table.add_column("accounts", justify="right")
    for name in ("block", "throttle", "watch", "allow"):
        table.add_row(name, f"{counts.get(name, 0):,}")
    table.add_row("campaigns", f"{len(result.campaigns):,}")
    console.print(table)
