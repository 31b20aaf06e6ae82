"""``Store.derived`` computes missing signal files in worker processes: the same files as in one process."""

from __future__ import annotations

import shutil
from pathlib import Path

import orjson
import pyarrow.parquet as pq

from conftest import make_record
from distillguard.ingest import ingest
from distillguard.signals import SIGNALS
from distillguard.store import Store
from distillguard.store import store as store_module
from distillguard.store.store import DERIVE_PARALLEL_FILES


def _store(root: Path, tmp_path: Path) -> Store:
    store = Store.open(root)
    for day in range(DERIVE_PARALLEL_FILES + 1):  # one exchange file per day, more than the parallel threshold
        path = tmp_path / f"day{day}.jsonl"
        records = [make_record(i, account=f"acct_{i % 3}", id=f"d{day}_{i:03d}",
                               ts=f"2026-03-{day + 1:02d}T10:{i % 60:02d}:00.000Z") for i in range(40)]
        path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
        assert ingest([path], store).ingested == 40
    return store


def test_parallel_derivation_writes_the_same_files_in_the_same_order(tmp_path: Path, monkeypatch) -> None:
    pools: list[int] = []
    real_pool = store_module._derive_pool
    monkeypatch.setattr(store_module, "_derive_pool", lambda workers: pools.append(workers) or real_pool(workers))
    one = _store(tmp_path / "one", tmp_path)
    many = tmp_path / "many"
    shutil.copytree(one.root, many)
    two = Store.open(many, create=False)
    ticks: list[int] = []
    sequential = one.derived(SIGNALS, workers=1)
    assert pools == []  # one worker: in this process
    parallel = two.derived(SIGNALS, workers=2, on_file=lambda: ticks.append(1))
    assert pools == [2]  # the files really went to two worker processes
    assert len(parallel) == len(sequential) == len(one.exchange_files()) > DERIVE_PARALLEL_FILES
    assert len(ticks) == len(parallel)
    for a, b in zip(sequential, parallel, strict=True):
        assert Path(a).relative_to(one.root) == Path(b).relative_to(two.root)
        assert pq.read_table(a).equals(pq.read_table(b))
    assert not list((two.root / "_staging").rglob("derived-*"))  # every staged file was published
    assert two.derived(SIGNALS, workers=2) == parallel  # cached: nothing recomputed


def test_a_derive_that_does_not_pickle_runs_in_this_process(tmp_path: Path, monkeypatch) -> None:
    store = _store(tmp_path / "store", tmp_path)

    class Local:  # defined in a function: cannot go to a worker process
        version = "local-1"
        inputs = ("id",)

        def derive(self, table):  # type: ignore[no-untyped-def]
            return table.select(["id"])

    pools: list[int] = []
    monkeypatch.setattr(store_module, "_derive_pool", lambda workers: pools.append(workers))
    files = store.derived(Local(), workers=2)
    assert pools == []
    assert len(files) == len(store.exchange_files()) > DERIVE_PARALLEL_FILES
    assert sum(pq.read_metadata(f).num_rows for f in files) == 40 * (DERIVE_PARALLEL_FILES + 1)
