from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from conftest import make_record
from distillguard.ingest import StrictModeError, ingest
from distillguard.store import IdIndex, Store


def _mixed_lines() -> list:
    good = [make_record(i, account=f"acct_{i % 4}") for i in range(40)]
    lines: list = list(good)
    lines.insert(5, b'{"id": "req_bad", "ts": ')  # truncated JSON
    lines.insert(10, orjson.dumps({**make_record(999), "ts": "not-a-time"}))
    missing_ip = make_record(998)
    missing_ip["client"] = {}
    lines.insert(20, missing_ip)
    lines.append(good[0])  # duplicate id within the file
    return lines


def test_identity_quarantine_and_idempotence(tmp_path: Path, write_jsonl) -> None:
    path = write_jsonl("mixed.jsonl", _mixed_lines())
    store = Store.open(tmp_path / "store")
    report = ingest([path], store)
    assert (report.read, report.ingested, report.duplicates, report.quarantined) == (44, 40, 1, 3)
    assert report.balanced
    errors = [orjson.loads(x) for x in Path(report.quarantine_file).read_bytes().splitlines()]
    assert [(e["line"], e["field"]) for e in errors] == [(6, "<record>"), (11, "ts"), (21, "client.ip")]
    assert all(e["file"] == str(path) for e in errors)
    bad = Path(report.quarantine_file.replace(".errors.jsonl", ".bad")).read_bytes().splitlines()
    assert bad[0] == b'{"id": "req_bad", "ts": '
    assert store.count() == 40

    again = ingest([path], Store.open(tmp_path / "store"))
    assert (again.ingested, again.duplicates, again.quarantined) == (0, 41, 3)
    assert again.balanced
    assert Store.open(tmp_path / "store").count() == 40


def test_compressed_inputs_and_partitions(tmp_path: Path) -> None:
    lines = b"".join(orjson.dumps(make_record(i)) + b"\n" for i in range(30))
    (tmp_path / "a.jsonl.gz").write_bytes(gzip.compress(lines[: len(lines) // 2]))
    (tmp_path / "b.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(lines))
    store = Store.open(tmp_path / "store")
    report = ingest([tmp_path / "a.jsonl.gz", tmp_path / "b.jsonl.zst"], store)
    assert report.ingested == 30 and report.balanced
    days = sorted(p.name for p in (tmp_path / "store" / "exchanges").iterdir())
    assert days == ["day=2026-02-02", "day=2026-02-03", "day=2026-02-04"]
    con = store.connect()
    assert con.execute("SELECT count(DISTINCT id), min(max_tokens) FROM exchanges").fetchone() == (30, 4096)
    # the read-back API later stages use: relations, convertible to Arrow
    arrow = store.exchanges(["id", "account_id"]).to_arrow_table()
    assert arrow.num_rows == 30 and arrow.column_names == ["id", "account_id"]
    assert store.accounts().to_arrow_table().num_rows == 0


def test_strict_mode_keeps_records_before_the_bad_line(tmp_path: Path, write_jsonl) -> None:
    path = write_jsonl("mixed.jsonl", _mixed_lines())
    store = Store.open(tmp_path / "store")
    with pytest.raises(StrictModeError, match=r"mixed.jsonl:6: <record>"):
        ingest([path], store, strict=True)
    assert Store.open(tmp_path / "store").count() == 5


def test_crash_mid_write_keeps_committed_data(tmp_path: Path, write_jsonl, monkeypatch) -> None:
    store = Store.open(tmp_path / "store")
    ingest([write_jsonl("one.jsonl", [make_record(i) for i in range(10)])], store)
    calls = {"n": 0}
    real = pq.write_table

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(pq, "write_table", flaky)
    with pytest.raises(KeyboardInterrupt):
        ingest([write_jsonl("two.jsonl", [make_record(i) for i in range(10, 40)])], store)
    monkeypatch.setattr(pq, "write_table", real)
    reopened = Store.open(tmp_path / "store")
    assert not any((tmp_path / "store" / "_staging").iterdir())
    assert reopened.count() == 10  # the interrupted batch was never made visible
    report = ingest([tmp_path / "two.jsonl"], reopened)
    assert report.ingested == 30 and reopened.count() == 40


def test_accounts_merge_last_record_wins(tmp_path: Path, write_jsonl) -> None:
    store = Store.open(tmp_path / "store")
    accounts = write_jsonl("acc.jsonl", [
        {"account_id": "a", "tier": "free", "created_at": "2026-01-01T00:00:00Z"},
        {"account_id": "b", "tier": "edu", "campus": "x"},
        {"account_id": "a", "tier": "payg"},
        {"account_id": "c", "tier": "platinum"},
    ])
    report = ingest([write_jsonl("e.jsonl", [make_record(1)])], store, accounts=accounts)
    assert report.accounts == 3 and report.accounts_quarantined == 1
    rows = dict(store.connect().execute("SELECT account_id, tier FROM accounts").fetchall())
    assert rows == {"a": "payg", "b": "edu"}


class _LengthSignals:
    version = "test1"
    inputs = ("id", "user_text")

    def derive(self, exchanges: pa.Table) -> pa.Table:
        return pa.table({"id": exchanges.column("id"),
                         "user_len": pa.array([len(t or "") for t in exchanges.column("user_text").to_pylist()])})


def test_no_content_store_keeps_derived_signals_only(tmp_path: Path, write_jsonl) -> None:
    store = Store.open(tmp_path / "store", content=False)
    ingest([write_jsonl("e.jsonl", [make_record(i) for i in range(5)])], store, derive=_LengthSignals())
    con = store.connect()
    assert con.execute("SELECT count(user_text), count(response_json), count(*) FROM exchanges").fetchone() == (0, 0, 5)
    files = Store.open(tmp_path / "store").derived(_LengthSignals())
    lengths = pq.read_table(files).column("user_len").to_pylist()
    assert sorted(lengths) == sorted(len(f"Question {i}: explain recursion") for i in range(5))
    with pytest.raises(Exception, match="no-content"):
        Store.open(tmp_path / "store", content=True)


def test_content_store_derives_lazily_and_caches(tmp_path: Path, write_jsonl) -> None:
    store = Store.open(tmp_path / "store")
    ingest([write_jsonl("e.jsonl", [make_record(i) for i in range(5)])], store)
    first = store.derived(_LengthSignals())
    mtimes = [Path(f).stat().st_mtime_ns for f in first]
    assert store.derived(_LengthSignals()) == first
    assert [Path(f).stat().st_mtime_ns for f in first] == mtimes


def test_id_index_matches_a_set() -> None:
    rng = np.random.default_rng(7)
    index, seen = IdIndex(), set()
    for _ in range(30):
        batch = rng.integers(0, 5000, size=rng.integers(1, 400)).astype(np.uint64)
        keep = index.claim(batch)
        expected = []
        for value in batch.tolist():
            expected.append(value not in seen)
            seen.add(value)
        assert keep.tolist() == expected
    assert len(index) == len(seen)


def test_no_content_store_from_before_carried_columns_is_upgraded(tmp_path: Path, write_jsonl) -> None:
    """Derived files written before they carried exchange columns gain them from the exchange files."""
    from distillguard.store.store import CARRIED

    store = Store.open(tmp_path / "store", content=False)
    ingest([write_jsonl("e.jsonl", [make_record(i) for i in range(5)])], store, derive=_LengthSignals())
    current = store.derived(_LengthSignals())
    before = pq.read_table(current).sort_by("id")
    for name in current:  # rewrite as the old layout: signals only, under derived/v<version>/
        path = Path(name)
        legacy = tmp_path / "store" / "derived" / "vtest1" / path.parent.name / path.name
        legacy.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pq.read_table(path).drop_columns(list(CARRIED)), legacy)
        path.unlink()
    upgraded = pq.read_table(Store.open(tmp_path / "store").derived(_LengthSignals())).sort_by("id")
    assert set(CARRIED) <= set(upgraded.column_names)
    assert upgraded.select(before.column_names).equals(before)


def test_open_leaves_a_running_writer_and_live_readers_alone(tmp_path: Path) -> None:
    """Opening a store cleans ``_staging`` only of leftovers: not under a writer, not a live process's scratch."""
    store = Store.open(tmp_path / "store")
    staging = tmp_path / "store" / "_staging"
    with store.writing():
        (staging / "part-inflight.parquet").write_bytes(b"staged")
        Store.open(tmp_path / "store")  # e.g. `distillguard detect` started while an ingest runs
        assert (staging / "part-inflight.parquet").exists()
    mine, dead = staging / f"pid-{os.getpid()}", staging / "pid-999999999"
    for scratch in (mine, dead):
        scratch.mkdir()
        (scratch / "derived-x.parquet").write_bytes(b"x")
    Store.open(tmp_path / "store")
    assert not (staging / "part-inflight.parquet").exists()  # no writer any more: a crash leftover
    assert (mine / "derived-x.parquet").exists() and not dead.exists()


def test_writer_reloads_ids_published_by_another_process(tmp_path: Path, write_jsonl) -> None:
    first = write_jsonl("a.jsonl", [make_record(i) for i in range(3)])
    second = write_jsonl("b.jsonl", [make_record(i) for i in range(3, 6)])
    gateway = Store.open(tmp_path / "store")  # a long-lived process with its dedupe index loaded
    assert ingest([first], gateway).ingested == 3
    assert ingest([second], Store.open(tmp_path / "store")).ingested == 3  # another process
    report = ingest([second], gateway)
    assert (report.ingested, report.duplicates) == (0, 3)
    assert gateway.count() == 6
