"""Damaged and unreadable files: every complete line kept, the damage reported with file and byte offset, the
other files of the run still read, exit code 1. Archives are damaged for real: written by gzip/zstandard and
then cut or corrupted."""

from __future__ import annotations

import gzip
from pathlib import Path

import orjson
import pytest
import zstandard
from click.testing import CliRunner

from conftest import make_record
from distillguard.cli import main
from distillguard.ingest import ingest
from distillguard.ingest.base import DamagedFile, open_binary
from distillguard.ingest.canonical import CanonicalFormat
from distillguard.store import Store

N = 3000


def _log(start: int = 0, n: int = N) -> bytes:
    return b"".join(orjson.dumps(make_record(i)) + b"\n" for i in range(start, start + n))


def _truncated_gz(data: bytes) -> bytes:
    packed = gzip.compress(data)
    return packed[: len(packed) * 2 // 3]


def _crc_gz(data: bytes) -> bytes:
    packed = bytearray(gzip.compress(data))
    packed[-8] ^= 0x01  # the CRC32 in the trailer
    return bytes(packed)


def _corrupt_zst(data: bytes) -> bytes:
    packed = bytearray(zstandard.ZstdCompressor(level=3, write_checksum=True).compress(data))  # as the zstd CLI
    packed[len(packed) // 2] ^= 0xFF
    return bytes(packed)


def _truncated_zst(data: bytes) -> bytes:
    packed = zstandard.ZstdCompressor(level=3).compress(data)
    return packed[: len(packed) * 2 // 3]


def _intact_lines(path: Path) -> tuple[list[bytes], list]:
    damages: list = []
    with open_binary(path, damages.append) as handle:
        return list(handle), damages


@pytest.mark.parametrize("damage", [_truncated_gz, _crc_gz, _corrupt_zst, _truncated_zst])
def test_reader_keeps_complete_lines_and_reports_the_damage(tmp_path: Path, damage) -> None:
    data = _log()
    suffix = ".gz" if "gz" in damage.__name__ else ".zst"
    path = tmp_path / f"log.jsonl{suffix}"
    path.write_bytes(damage(data))
    lines, damages = _intact_lines(path)
    [found] = damages
    assert all(line.endswith(b"\n") for line in lines)
    assert b"".join(lines) == data[: len(b"".join(lines))]  # exactly the leading whole lines
    assert found.line == len(lines) + 1 and found.offset == len(b"".join(lines)) + len(found.partial)
    assert data[found.offset - len(found.partial): found.offset] == found.partial
    if damage is _crc_gz:
        assert b"".join(lines) == data and "CRC" in found.reason  # all decompressed; the check failed at the end
    else:
        assert 0 < len(lines) < N or damage is _corrupt_zst
    assert str(path) in found.message() and f"byte {found.offset:,}" in found.message()
    with pytest.raises(DamagedFile, match="damaged at byte"), open_binary(path) as handle:
        handle.read()


def test_multi_frame_zstd_and_multi_member_gzip_are_read_whole(tmp_path: Path) -> None:
    data = _log()
    zst = tmp_path / "a.zst"
    frames = [zstandard.ZstdCompressor().compress(data[i:i + 40000]) for i in range(0, len(data), 40000)]
    zst.write_bytes(b"".join(frames))
    gz = tmp_path / "a.gz"
    gz.write_bytes(gzip.compress(data[:50000]) + gzip.compress(data[50000:]))
    for path in (zst, gz):
        lines, damages = _intact_lines(path)
        assert b"".join(lines) == data and not damages


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("damage", [_truncated_gz, _crc_gz, _corrupt_zst, _truncated_zst])
def test_ingest_goes_on_with_the_other_files(tmp_path: Path, damage, workers: int, monkeypatch) -> None:
    import distillguard.ingest.parallel as parallel

    monkeypatch.setattr(parallel, "CHUNK_BYTES", 200_000)  # several blocks per file
    suffix = ".gz" if "gz" in damage.__name__ else ".zst"
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / f"a{suffix}").write_bytes(damage(_log(0)))
    (logs / "b.jsonl").write_bytes(_log(10_000, 50))
    (logs / "c.jsonl.gz").write_bytes(gzip.compress(_log(20_000, 50)))
    intact, [found] = _intact_lines(logs / f"a{suffix}")
    store = Store.open(tmp_path / "store")
    report = ingest([logs], store, workers=workers)
    assert report.balanced and not report.clean
    assert report.ingested == len(intact) + 100
    assert report.quarantined == (1 if found.partial else 0)
    [problem] = report.file_problems
    assert problem == found.message() and f"{logs / f'a{suffix}'}: damaged at byte" in problem
    [entry] = [orjson.loads(x) for x in Path(report.files_file).read_bytes().splitlines()]
    assert entry == {"file": str(logs / f"a{suffix}"), "problem": "damaged", "offset": found.offset,
                     "line": found.line, "reason": found.reason}
    if found.partial:
        [error] = [orjson.loads(x) for x in Path(report.quarantine_file).read_bytes().splitlines()]
        assert (error["line"], error["field"]) == (found.line, "<file>")
        assert error["reason"].startswith("incomplete line: the file is damaged here")
        bad = Path(report.quarantine_file.replace(".errors.jsonl", ".bad")).read_bytes()
        assert bad == found.partial + b"\n"


def test_other_formats_report_damage_once(tmp_path: Path) -> None:
    """Batch reads its files twice (index, then join); the damage is reported once, the joined lines kept."""
    inputs = b"".join(orjson.dumps({"custom_id": f"r{i}", "method": "POST", "url": "/v1/chat/completions",
                                    "body": {"model": "m", "messages": [{"role": "user", "content": f"q{i}"}]}})
                      + b"\n" for i in range(400))
    outputs = b"".join(orjson.dumps({"id": f"b{i}", "custom_id": f"r{i}", "response": {
        "status_code": 200, "request_id": f"req_{i}", "body": {"created": 1771855391, "choices": []}}}) + b"\n"
        for i in range(400))
    (tmp_path / "in.jsonl").write_bytes(inputs)
    (tmp_path / "out.jsonl.gz").write_bytes(_truncated_gz(outputs))
    store = Store.open(tmp_path / "store")
    report = ingest([tmp_path / "in.jsonl", tmp_path / "out.jsonl.gz"], store,
                    options={"account_id": "a", "ip": "10.0.0.1", "ts": "2026-02-23T00:00:00Z"})
    assert len(report.file_problems) == 1 and "out.jsonl.gz: damaged" in report.file_problems[0]
    assert report.balanced and report.read == 400 + 1  # joined + inputs without output, and the cut line
    assert store.count() == 400  # those without their output line kept as exchanges without a response


def test_accounts_file_damage_is_reported(tmp_path: Path, write_jsonl) -> None:
    log = write_jsonl("log.jsonl", [make_record(1)])
    accounts = b"".join(orjson.dumps({"account_id": f"a{i}", "tier": "free"}) + b"\n" for i in range(3000))
    (tmp_path / "accounts.jsonl.gz").write_bytes(_truncated_gz(accounts))
    report = ingest([str(log)], Store.open(tmp_path / "store"), accounts=str(tmp_path / "accounts.jsonl.gz"))
    assert 0 < report.accounts < 3000 and "accounts.jsonl.gz: damaged" in report.file_problems[0]


def test_replay_reader_sees_the_damage_as_an_error_line(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl.gz"
    path.write_bytes(_truncated_gz(_log()))
    lines = list(CanonicalFormat().read([path]))
    assert lines[-1].error.startswith("<file>: ") and "damaged at byte" in lines[-1].error
    assert all(line.error is None for line in lines[:-1])


def test_unrecognisable_and_empty_files_do_not_stop_the_run(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "README.txt").write_text("These are the API logs of February.\n")
    (logs / "binary.dat").write_bytes(bytes(range(256)) * 10)
    (logs / "empty.jsonl").write_bytes(b"")
    (logs / "blank.jsonl").write_bytes(b"\n  \n")
    (logs / "empty.jsonl.gz").write_bytes(gzip.compress(b""))
    (logs / "z-log.jsonl").write_bytes(_log(0, 20))
    report = ingest([logs], Store.open(tmp_path / "store"))
    assert report.ingested == 20 and report.balanced
    assert sorted(Path(p).name for p in report.empty_files) == ["blank.jsonl", "empty.jsonl", "empty.jsonl.gz"]
    assert len(report.file_problems) == 2 and all("cannot tell the log format" in p for p in report.file_problems)
    entries = [orjson.loads(x) for x in Path(report.files_file).read_bytes().splitlines()]
    assert {(Path(e["file"]).name, e["problem"]) for e in entries} == {("README.txt", "unrecognised"),
                                                                      ("binary.dat", "unrecognised")}


def test_a_file_damaged_before_its_first_line(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl.gz"
    path.write_bytes(gzip.compress(_log(0, 1))[:30])
    (tmp_path / "not-gzip.gz").write_bytes(b"plain text, not gzip\n")
    report = ingest([path, tmp_path / "not-gzip.gz"], Store.open(tmp_path / "store"))
    assert report.ingested == 0 and report.balanced and len(report.file_problems) == 2
    assert any("Not a gzipped file" in p for p in report.file_problems)


def test_cli_reports_damage_and_unknown_files_without_a_traceback(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "a.jsonl.gz").write_bytes(_truncated_gz(_log(0)))
    (logs / "b.jsonl.zst").write_bytes(_corrupt_zst(_log(5000)))
    (logs / "notes.md").write_text("# notes\n")
    (logs / "c.jsonl").write_bytes(_log(9000, 10))
    result = CliRunner().invoke(main, ["ingest", str(logs), "--store", str(tmp_path / "store")])
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    text = " ".join(result.output.split())
    assert "Traceback" not in text and "Aborted" not in text
    assert "a.jsonl.gz: damaged at byte" in text and "b.jsonl.zst: damaged at byte" in text
    assert "notes.md: cannot tell the log format" in text
    assert "holds" in text
    store = Store.open(tmp_path / "store")
    assert store.count() >= 10  # c.jsonl, read after the damaged files


def test_strict_mode_stops_at_a_damaged_file(tmp_path: Path) -> None:
    from distillguard.ingest import StrictModeError

    path = tmp_path / "a.jsonl.gz"
    path.write_bytes(_truncated_gz(_log(0)))
    with pytest.raises(StrictModeError, match="damaged at byte"):
        ingest([path], Store.open(tmp_path / "store"), strict=True)
