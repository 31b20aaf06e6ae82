"""The lab end to end at smoke size (the issue's budget: <= 2 minutes): skipped without the lab extra."""

from __future__ import annotations

import json
import time

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from click.testing import CliRunner  # noqa: E402

from distillguard.cli import main  # noqa: E402
from distillguard.lab import task  # noqa: E402


def test_task_and_text_defences_keep_the_answer():
    import numpy as np

    p = task.problems(1, 3, np.random.default_rng(1))[0]
    full = p.completion()
    assert task.correct(p, full)
    for rewrite in (task.withhold, task.summarise, task.restructure):
        assert task.correct(p, rewrite(full)), rewrite.__name__
    assert task.restructure(full).startswith(p.answer + ",")
    assert task.withhold(full) == "#" + p.answer + "$"


def test_lab_smoke_runs_within_budget_and_reports(tmp_path):
    started = time.perf_counter()
    res = CliRunner().invoke(main, ["lab", "--config", "smoke", "--threads", "1", "--out", str(tmp_path)])
    elapsed = time.perf_counter() - started
    assert res.exit_code == 0, res.output
    results = json.loads((tmp_path / "results.json").read_text())
    defences = {s["defence"] for s in results["settings"]}
    assert {"none", "withhold", "summarise", "restructure", "temperature", "antidistillation",
            "watermark"} <= defences
    for s in results["settings"]:
        assert 0.0 <= s["teacher_accuracy"] <= 1.0 and 0.0 <= s["student_accuracy"] <= 1.0
    text_level = [s for s in results["settings"] if s["defence"] in ("withhold", "summarise", "restructure")]
    none = next(s for s in results["settings"] if s["defence"] == "none")
    assert all(s["teacher_accuracy"] == none["teacher_accuracy"] for s in text_level)  # answers untouched
    assert results["provenance"] and results["controls"]
    html = (tmp_path / "lab.html").read_text()
    assert html.count("data:image/png;base64,") == 2
    assert (tmp_path / "teacher_student.png").stat().st_size > 1000
    assert elapsed < 240, f"smoke lab took {elapsed:.0f}s"  # budget 2 min on 2 idle cores; slack for shared CI
