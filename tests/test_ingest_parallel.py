"""Worker-process parsing must give exactly what the in-process path gives, errors included."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from conftest import make_record
from distillguard.ingest import ingest
from distillguard.store import Store


def _varied() -> list:
    plain = make_record(1)
    plain["request"]["messages"] = [{"role": "developer", "content": "Be brief. ünïcödé ✓ 𝔘"},
                                    {"role": "user", "content": "hi"}, {"role": "assistant", "content": None},
                                    {"role": "user", "content": [{"type": "input_text", "text": "a"},
                                                                 {"type": "text", "text": 5}, {"type": "image"}]}]
    tools = make_record(2, region="eu", tags=["x"])
    tools["request"].update(tools=[{"type": "function", "function": {"name": "f"}}], stream=True, top_p=1,
                            max_completion_tokens=99, reasoning_effort="high", unknown={"k": [1, 2.5]})
    tools["response"]["choices"][0]["message"]["tool_calls"] = [{"id": "c1"}, {"id": "c2"}]
    no_response = make_record(3, response=None, status=None)
    minimal = {"id": "m", "ts": "2026-02-02T10:00:00+05:30", "account_id": "a", "client": {"ip": "1.2.3.4"}}
    empty = make_record(4, request={}, response={"choices": []})
    floats = make_record(5, latency_ms=0)
    floats["request"].update(temperature=1.5e-3, max_tokens=-1)
    floats["response"]["choices"][0]["message"]["content"] = [{"type": "output_text", "text": "x"}]
    return [plain, tools, no_response, minimal, empty, floats, make_record(6, ts="2026-02-02T10:00:00.1234Z")]


def _bad() -> list:
    return [b'{"id": "t", "ts": ', make_record(7, ts="2026-02-02T10:00:00"), make_record(8, client={}),
            make_record(9, status="200"), b'{"id": "n", "x": NaN}', make_record(10, latency_ms=1.0),
            b'{"id": "d", "id": "e", "ts": "2026-02-02T10:00:00Z", "account_id": "a", "client": {"ip": "1.2.3.4"}}',
            make_record(11, request={"messages": [None]})]


def _write(path: Path, records: list) -> Path:
    with path.open("wb") as handle:
        for record in records:
            handle.write(record if isinstance(record, bytes) else orjson.dumps(record))
            handle.write(b"\n")
    return path


def _ingest(tmp_path: Path, name: str, path: Path, workers: int, monkeypatch, strict: bool = False):
    import distillguard.ingest.parallel as parallel

    monkeypatch.setattr(parallel, "CHUNK_BYTES", 1500)  # a few lines per chunk
    store = Store.open(tmp_path / name)
    try:
        report = ingest([path], store, workers=workers, strict=strict)
    except Exception as exc:  # strict mode: compare the exception and what was kept
        report = exc
    rows = store.connect().execute("SELECT * EXCLUDE (request_json, response_json, extra_json), request_json,"
                                   " response_json, extra_json FROM exchanges ORDER BY id").fetchall()
    quarantine = sorted((tmp_path / name / "quarantine").glob("*"))
    return report, rows, [q.read_bytes() for q in quarantine]


def test_worker_processes_match_in_process_path(tmp_path: Path, monkeypatch) -> None:
    records = _varied() + _bad() + [make_record(i) for i in range(20, 60)]
    path = _write(tmp_path / "mixed.jsonl", records)
    serial, serial_rows, serial_q = _ingest(tmp_path, "a", path, 1, monkeypatch)
    parallel, parallel_rows, parallel_q = _ingest(tmp_path, "b", path, 2, monkeypatch)
    assert serial.balanced and parallel.balanced
    assert (serial.read, serial.ingested, serial.quarantined) == (parallel.read, parallel.ingested,
                                                                  parallel.quarantined)
    assert serial.errors == parallel.errors and serial.quarantined == 7
    assert serial_rows == parallel_rows and len(serial_rows) == serial.ingested
    assert serial_q == parallel_q


def test_python_only_ingest_matches_the_compiled_decoder(tmp_path: Path, monkeypatch) -> None:
    """A machine without a C compiler ingests exactly the same exchanges, errors and quarantine."""
    import distillguard.ingest.decode as decode

    if not decode.NATIVE:
        pytest.skip("compiled decoder not built")
    records = _varied() + _bad() + [make_record(i) for i in range(20, 60)]
    path = _write(tmp_path / "mixed.jsonl", records)
    native, native_rows, native_q = _ingest(tmp_path, "a", path, 1, monkeypatch)
    monkeypatch.setattr(decode, "NATIVE", False)
    python, python_rows, python_q = _ingest(tmp_path, "b", path, 1, monkeypatch)
    assert (native.read, native.ingested, native.quarantined, native.errors) == (
        python.read, python.ingested, python.quarantined, python.errors)
    parsed = [[row[:-3] + tuple(orjson.loads(v) if v else v for v in row[-3:]) for row in rows]
              for rows in (native_rows, python_rows)]
    assert parsed[0] == parsed[1] and len(parsed[0]) == native.ingested == 48
    assert native_q == python_q


def test_strict_mode_with_workers_keeps_lines_before_the_bad_one(tmp_path: Path, monkeypatch) -> None:
    records = [make_record(i) for i in range(7)] + [b"{broken"] + [make_record(i) for i in range(10, 20)]
    path = _write(tmp_path / "strict.jsonl", records)
    error, rows, _ = _ingest(tmp_path, "s", path, 2, monkeypatch, strict=True)
    assert "strict.jsonl:8: <record>" in str(error)
    assert len(rows) == 7


def test_workers_dedupe_within_and_across_chunks_and_runs(tmp_path: Path, monkeypatch) -> None:
    """Staged chunks with some repeated ids are rewritten before publication; first occurrence wins."""
    records = [make_record(i) for i in range(10)] + [make_record(i, account="other") for i in (3, 4, 11, 12, 3)]
    path = _write(tmp_path / "dups.jsonl", records)
    serial, serial_rows, _ = _ingest(tmp_path, "a", path, 1, monkeypatch)
    parallel, parallel_rows, _ = _ingest(tmp_path, "b", path, 2, monkeypatch)
    assert (parallel.ingested, parallel.duplicates) == (serial.ingested, serial.duplicates) == (12, 3)
    assert parallel_rows == serial_rows
    assert {r[0]: r[3] for r in parallel_rows}["req_000003"] == "acct_1"  # id, account_id: the first one kept
    again = ingest([path], Store.open(tmp_path / "b"), workers=2)
    assert (again.ingested, again.duplicates) == (0, 15)
    assert not list((tmp_path / "b" / "_staging").iterdir())  # nothing left behind


def test_workers_derive_signals_for_a_no_content_store(tmp_path: Path, monkeypatch) -> None:
    import distillguard.ingest.parallel as parallel
    from distillguard.signals import SIGNALS

    monkeypatch.setattr(parallel, "CHUNK_BYTES", 2000)
    records = [make_record(i) for i in range(12)] + [make_record(5), make_record(6)]
    path = _write(tmp_path / "nc.jsonl", records)
    stores = {}
    for workers in (1, 2):
        store = Store.open(tmp_path / f"nc{workers}", content=False)
        report = ingest([path], store, workers=workers, derive=SIGNALS)
        assert (report.ingested, report.duplicates) == (12, 2)
        con = store.connect()
        con.execute(f"CREATE VIEW derived AS SELECT * FROM read_parquet({store.derived(SIGNALS)!r})")
        stores[workers] = (con.execute("SELECT count(*), count(user_text) FROM exchanges").fetchone(),
                           con.execute("SELECT * FROM derived ORDER BY id").fetchall())
    assert stores[1] == stores[2]
    assert stores[2][0] == (12, 0) and len(stores[2][1]) == 12


@pytest.mark.parametrize("native", [True, False])
def test_blocks_cover_every_line_once_with_its_number(tmp_path: Path, native: bool) -> None:
    """Spans (plain files) and blocks (compressed) split only at newlines, whatever the line lengths;
    both decoders number every non-blank line (here all bad) by its place in the file."""
    import gzip
    import random

    from distillguard.ingest.decode import NATIVE, decode_block
    from distillguard.ingest.parallel import LineNumbers, load, read_blocks

    if native and not NATIVE:
        pytest.skip("compiled decoder not built")

    rng = random.Random(3)
    lines = [b"x" * rng.choice([0, 1, 5, 40, 99, 100, 101, 350]) for _ in range(300)]
    lines[7] = b"   "
    for ending in (b"\n", b""):
        data = b"\n".join(lines) + ending
        plain = tmp_path / "blocks.jsonl"
        plain.write_bytes(data)
        packed = tmp_path / "blocks.jsonl.gz"
        packed.write_bytes(gzip.compress(data))
        expected = [(n, raw) for n, raw in enumerate(lines, 1) if raw.strip()]
        for path in (plain, packed):
            got = []
            numbers = LineNumbers()
            for source, block in read_blocks([path], size=100):
                decoded = decode_block(load(block), native=native)
                assert decoded.lines == len(decoded.bad) and len(decoded.table) == 0
                first = numbers.take(source, decoded.newlines)
                got += [(first + offset, raw) for _, offset, _, _, raw in decoded.bad]
            assert got == expected, (path, ending)
