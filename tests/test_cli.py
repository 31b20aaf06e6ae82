"""The command line as a user meets it: help everywhere, exit codes, summaries, the quick-start job."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import make_record
from distillguard.cli import _COMMANDS, main


def test_every_command_has_help() -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["--help"])
    assert result.exit_code == 0
    for name in _COMMANDS:
        assert name in result.output
        sub = runner.invoke(main, [name, "--help"])
        assert sub.exit_code == 0, (name, sub.output)
        assert "Usage:" in sub.output


def test_ingest_exit_codes_and_summary(tmp_path: Path, write_jsonl) -> None:
    runner = CliRunner()
    clean = write_jsonl("clean.jsonl", [make_record(i) for i in range(5)])
    result = runner.invoke(main, ["ingest", str(clean), "--store", str(tmp_path / "s")])
    assert result.exit_code == 0, result.output
    assert "read 5 = ingested 5 + duplicates 0 + quarantined 0: holds" in result.output.replace("\n", " ")

    dirty = write_jsonl("dirty.jsonl", [make_record(10), b"{oops", make_record(11)])
    result = runner.invoke(main, ["ingest", str(dirty), "--store", str(tmp_path / "s")])
    assert result.exit_code == 1
    assert "dirty.jsonl:2" in result.output

    assert runner.invoke(main, ["ingest", str(clean)]).exit_code == 2  # --store missing
    assert runner.invoke(main, ["ingest", str(clean), "--store", str(tmp_path / "s"),
                                "--format", "nope"]).exit_code == 2

    summary = runner.invoke(main, ["summary", "--store", str(tmp_path / "s")])
    assert summary.exit_code == 0 and "exchanges" in summary.output and "7" in summary.output


@pytest.mark.slow
def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = CliRunner().invoke(main, ["demo", "--out", str(out), "--scale", "tiny", "--seed", "5"])
    assert result.exit_code == 0, result.output
    with (out / "detect" / "accounts.csv").open() as handle:
        header = next(csv.reader(handle))
    assert header[:5] == ["account_id", "risk", "verdict", "campaign_id", "signals"]
    assert (out / "detect" / "campaigns.json").exists() and (out / "detect" / "report.html").exists()
    assert "campaign ARI" in result.output


def test_detect_hands_spark_settings_to_the_engine_and_rejects_malformed_ones(tmp_path: Path, write_jsonl,
                                                                             monkeypatch) -> None:
    from distillguard.engine import EngineError
    from distillguard.engine.base import ENGINES

    runner = CliRunner()
    log = write_jsonl("log.jsonl", [make_record(i) for i in range(3)])
    seen: list[dict] = []

    def recording(**options):  # stands in for Spark: records what the command asks for, then declines
        seen.append(options)
        raise EngineError("no Spark in this test")

    monkeypatch.setitem(ENGINES, "spark", recording)
    args = ["detect", str(log), "--out", str(tmp_path / "out"), "--engine", "spark", "--master", "local[2]",
            "--spark-conf", "spark.driver.memory=8g", "--spark-conf", "spark.sql.shuffle.partitions = 64"]
    result = runner.invoke(main, args)
    assert result.exit_code == 2 and "no Spark in this test" in result.output
    assert seen == [{"master": "local[2]",
                     "conf": {"spark.driver.memory": "8g", "spark.sql.shuffle.partitions": "64"}}]

    for bad in ("spark.driver.memory", "=8g", "spark.driver.memory="):
        result = runner.invoke(main, args[:-1] + [bad])
        assert result.exit_code == 2 and "expected KEY=VALUE" in result.output, (bad, result.output)
    result = runner.invoke(main, ["detect", str(log), "--out", str(tmp_path / "o2"),
                                  "--spark-conf", "spark.driver.memory=8g"])
    assert result.exit_code == 2 and "--spark-conf goes with --engine spark" in result.output
    assert len(seen) == 1  # no malformed or misplaced setting reached an engine
