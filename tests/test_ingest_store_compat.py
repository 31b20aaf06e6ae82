"""Stores written before a column was appended to EXCHANGE_SCHEMA (or ACCOUNT_SCHEMA) keep working: missing
columns read as nulls.

``fixtures/ingest/exchanges-before-n-logprobs.parquet`` is an exchange file as the ingest of commit 97681ed wrote
it (12 exchanges of ``conftest.make_record``, ids ``old_000``..``old_011``, accounts ``acct_old_0``..``2``, on
2026-01-15; every fourth asked for ``n: 4, logprobs: true, top_logprobs: 20``, which that layout kept only in
``request_json``): it has no ``n_choices``, ``logprobs`` or ``top_logprobs`` column, nor the history provenance
columns ``cited_call`` and ``issued_call`` appended after them.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from conftest import make_record
from distillguard.ingest import ingest
from distillguard.model import ACCOUNT_SCHEMA, EXCHANGE_SCHEMA
from distillguard.signals import LOGIT_OUTPUT, SIGNALS
from distillguard.store import Store
from distillguard.store.store import read_exchange_file

OLD_FILE = Path(__file__).parent / "fixtures" / "ingest" / "exchanges-before-n-logprobs.parquet"
NEW = ("n_choices", "logprobs", "top_logprobs", "cited_call", "issued_call")


def _old_store(root: Path) -> Store:
    store = Store.open(root)
    day = root / "exchanges" / "day=2026-01-15"
    day.mkdir(parents=True)
    shutil.copy(OLD_FILE, day / "part-0db17470f95c4f88afaa2d06b92a83c1.parquet")
    return store


def _ingest_new(store: Store, tmp_path: Path) -> None:
    records = []
    for i in range(6):
        record = make_record(i, account=f"acct_new_{i % 2}", id=f"new_{i:03d}")
        if i % 2 == 0:
            record["request"].update(n=2 + i, logprobs=i == 0, top_logprobs=i)
            # log-probabilities with a generation (not a 1-token score): the logits signal needs LOGIT_OUTPUT tokens
            record["response"]["usage"].update(completion_tokens=LOGIT_OUTPUT, total_tokens=20 + LOGIT_OUTPUT)
        records.append(record)
    path = tmp_path / "new.jsonl"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    report = ingest([path], store)
    assert report.ingested == 6 and report.quarantined == 0


def test_the_fixture_is_the_old_layout() -> None:
    names = pq.read_schema(OLD_FILE).names
    assert names == [n for n in EXCHANGE_SCHEMA.names if n not in NEW]


def test_old_files_read_the_new_columns_as_nulls(tmp_path: Path) -> None:
    table = read_exchange_file(OLD_FILE)
    assert table.schema == EXCHANGE_SCHEMA
    assert all(table.column(name).null_count == 12 for name in NEW)
    part = read_exchange_file(OLD_FILE, ["top_logprobs", "id", "n_choices"])
    assert part.column_names == ["top_logprobs", "id", "n_choices"]
    assert part.column("id").to_pylist()[:2] == ["old_000", "old_001"]
    assert orjson.loads(table.column("request_json")[0].as_py())["top_logprobs"] == 20  # still in the body


def test_a_store_of_old_files_only_has_the_new_columns_in_its_view(tmp_path: Path) -> None:
    con = _old_store(tmp_path / "store").connect()
    types = {name: kind for name, kind, *_ in con.execute("DESCRIBE exchanges").fetchall()}
    assert (types["n_choices"], types["logprobs"], types["top_logprobs"]) == ("INTEGER", "BOOLEAN", "INTEGER")
    assert types["ts"] == "TIMESTAMP WITH TIME ZONE"
    assert con.execute("SELECT count(*), count(n_choices), count(logprobs), count(top_logprobs) FROM exchanges"
                       ).fetchone() == (12, 0, 0, 0)


def test_old_and_new_files_in_one_store(tmp_path: Path) -> None:
    """DuckDB alone refuses a glob whose files differ in columns (or drops the newer columns, by file order)."""
    store = _old_store(tmp_path / "store")
    _ingest_new(store, tmp_path)
    con = store.connect()
    rows = con.execute("SELECT id, n_choices, logprobs, top_logprobs FROM exchanges ORDER BY id").fetchall()
    assert len(rows) == 18
    assert rows[:3] == [("new_000", 2, True, 0), ("new_001", None, None, None), ("new_002", 4, False, 2)]
    assert all(row[1:] == (None, None, None) for row in rows if row[0].startswith("old_"))
    assert store.summary()["exchanges"] == 18
    assert len(store.exchanges(["id", "n_choices"], con).filter("n_choices IS NOT NULL").fetchall()) == 3
    # a re-ingest of the old exchanges is a duplicate: the dedupe index reads the old file's id hashes
    again = tmp_path / "again.jsonl"
    again.write_bytes(orjson.dumps(make_record(0, account="acct_old_0", ts="2026-01-15T09:00:00.000Z",
                                               id="old_000")) + b"\n")
    assert ingest([again], store).duplicates == 1


def test_signals_and_detection_run_on_an_old_store(tmp_path: Path) -> None:
    """``Store.derived`` reads ``SIGNALS.inputs`` (which name the new columns) from files that lack them."""
    from distillguard.pipeline import run_detection

    assert set(NEW[:3]) <= set(SIGNALS.inputs)
    store = _old_store(tmp_path / "store")
    _ingest_new(store, tmp_path)
    files = store.derived(SIGNALS)
    assert len(files) == len(store.exchange_files())
    logits = {}
    for path in files:
        table = pq.read_table(path, columns=["id", "logits"])
        logits.update(zip(table.column("id").to_pylist(), table.column("logits").to_pylist(), strict=True))
    assert not any(v for k, v in logits.items() if k.startswith("old_"))  # the old layout recorded none
    assert [k for k, v in sorted(logits.items()) if v] == ["new_000", "new_002", "new_004"]
    result = run_detection(store, tmp_path / "out")
    assert len(result.accounts) == 5  # acct_old_0..2, acct_new_0..1


def test_account_records_written_before_payment_issuer_read_it_as_null_and_merge(tmp_path: Path) -> None:
    """``accounts.parquet`` from before ``payment_issuer`` was appended: the view reads it as null, and a newer
    ingest merges its records (with issuers) into the old file without losing the old ones."""
    store = _old_store(tmp_path / "store")
    old_schema = pa.schema([f for f in ACCOUNT_SCHEMA if f.name != "payment_issuer"])
    ids, cards = ["acct_old_0", "acct_old_1"], ["card_a", "card_b"]
    old = pa.table({f.name: pa.array(ids if f.name == "account_id" else cards if f.name == "payment_fp"
                                     else [None, None], f.type) for f in old_schema}, schema=old_schema)
    (tmp_path / "store" / "accounts").mkdir(exist_ok=True)
    pq.write_table(old, tmp_path / "store" / "accounts" / "accounts.parquet")
    rows = store.connect().execute("SELECT account_id, payment_issuer FROM accounts ORDER BY 1").fetchall()
    assert rows == [("acct_old_0", None), ("acct_old_1", None)]

    records = tmp_path / "accounts.jsonl"
    records.write_bytes(orjson.dumps({"account_id": "acct_old_1", "payment_fp": "card_c", "payment_issuer": "411111"})
                        + b"\n" + orjson.dumps({"account_id": "acct_new_0", "payment_issuer": "53d2a1"}) + b"\n")
    ingest([], store, accounts=records)
    rows = store.connect().execute(
        "SELECT account_id, payment_fp, payment_issuer FROM accounts ORDER BY 1").fetchall()
    assert rows == [("acct_new_0", None, "53d2a1"), ("acct_old_0", "card_a", None), ("acct_old_1", "card_c", "411111")]
