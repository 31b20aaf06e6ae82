"""`distillguard eval --labels`: scoring detect output and replay decisions against any labelled traffic."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from distillguard.cli import main
from distillguard.evaluation.external import LabelsError, load_labels, score_detections, score_replay

LABELS = """account_id,label,campaign,population
a1,attack,op-1,hydra
a2,attack,op-1,hydra
a3,attack,op-1,hydra
a4,attack,op-2,sweep
a5,attack,op-2,sweep
b1,benign,,casual
b2,benign,,casual
b3,benign,,coding_agent
"""
ACCOUNTS = """account_id,risk,verdict
a1,0.95,block
a2,0.8,throttle
a3,0.4,watch
a4,0.7,throttle
a5,0.2,allow
b1,0.1,allow
b2,0.65,throttle
b3,0.0,allow
"""


def _write(tmp_path: Path, campaigns: list[dict]) -> tuple[Path, Path]:
    (tmp_path / "labels.csv").write_text(LABELS)
    det = tmp_path / "det"
    det.mkdir()
    (det / "accounts.csv").write_text(ACCOUNTS)
    (det / "campaigns.json").write_bytes(orjson.dumps({"campaigns": campaigns}))
    return tmp_path / "labels.csv", det


def test_detection_figures_and_watched_members_count_as_attributed(tmp_path: Path) -> None:
    labels_path, det = _write(tmp_path, [{"id": "c1", "accounts": ["a1", "a2"], "watched": ["a3"]}])
    out = score_detections(load_labels(labels_path), det)
    assert out["flagged_recall"] == pytest.approx(3 / 5)
    assert out["flagged_fpr"] == pytest.approx(1 / 3)
    assert out["flagged_fpr_by_population"]["casual"]["flagged"] == 1
    assert out["flagged_recall_by_campaign"]["op-1"]["rate"] == pytest.approx(2 / 3)
    assert out["benign_in_campaigns"] == 0
    assert out["attackers_in_no_campaign"] == 2  # a4, a5: the watched a3 is attributed to c1
    without_watched = tmp_path / "w"
    without_watched.mkdir()
    _, det2 = _write(without_watched, [{"id": "c1", "accounts": ["a1", "a2"]}])
    assert score_detections(load_labels(labels_path), det2)["attackers_in_no_campaign"] == 3
    assert out["campaign_ari"] > score_detections(load_labels(labels_path), det2)["campaign_ari"]


def test_a_benign_watched_member_counts_as_benign_in_a_campaign(tmp_path: Path) -> None:
    labels_path, det = _write(tmp_path, [{"id": "c1", "accounts": ["a1", "a2"], "watched": ["b1"]}])
    assert score_detections(load_labels(labels_path), det)["benign_in_campaigns"] == 1


def test_replay_restricted_within_n_requests(tmp_path: Path) -> None:
    labels_path, _ = _write(tmp_path, [])
    replay = tmp_path / "replay.csv"
    replay.write_text("account_id,exchanges,throttle,block,first_restricted\n"
                      "a1,500,10,300,150\na2,400,5,0,250\na3,3,0,0,\nb1,20,1,0,12\nb2,9,0,0,\n")
    out = score_replay(load_labels(labels_path), replay, within=200)
    assert out["accounts_replayed"] == 5
    assert out["attackers_restricted_within"] == pytest.approx(1 / 3)
    assert out["benign_ever_restricted"] == pytest.approx(1 / 2)
    assert out["benign_ever_blocked"] == 0


@pytest.mark.parametrize(("text", "where"), [
    ("account_id,label,campaign\n", "labels.csv:1: header"),
    ("account_id,label,campaign,population\na,maybe,,x\n", "labels.csv:2: label"),
    ("account_id,label,campaign,population\na,benign,,x\na,attack,c,y\n", "labels.csv:3: account_id"),
    ("account_id,label,campaign,population\n,benign,,x\n", "labels.csv:2: account_id"),
])
def test_bad_labels_name_file_line_and_field(tmp_path: Path, text: str, where: str) -> None:
    path = tmp_path / "labels.csv"
    path.write_text(text)
    with pytest.raises(LabelsError, match=where):
        load_labels(path)


def test_eval_cli_with_labels_prints_targets(tmp_path: Path) -> None:
    labels_path, det = _write(tmp_path, [{"id": "c1", "accounts": ["a1", "a2"], "watched": ["a3"]}])
    result = CliRunner().invoke(main, ["eval", "--labels", str(labels_path), "--detections", str(det),
                                       "--json", str(tmp_path / "out.json")])
    assert result.exit_code == 0, result.output
    assert "campaign ARI" in result.output
    doc = orjson.loads((tmp_path / "out.json").read_bytes())
    assert doc["detections"]["attackers_in_no_campaign"] == 2
