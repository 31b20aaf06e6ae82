"""Evaluation metrics and the `eval` / `train` commands on held-out simulations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pytest
from click.testing import CliRunner

from distillguard.cli import main
from distillguard.detect import Model
from distillguard.evaluation import campaign_ari, recall_at_fpr, roc_auc, threshold_at_fpr
from distillguard.simulate import simulate


def test_roc_auc_and_recall_at_fpr() -> None:
    y = np.array([0, 0, 0, 0, 1, 1])
    assert roc_auc(y, np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])) == 1.0
    assert roc_auc(y, np.array([0.6, 0.5, 0.4, 0.3, 0.2, 0.1])) == 0.0
    assert roc_auc(y, np.full(6, 0.5)) == 0.5
    benign = np.linspace(0, 1, 1000)
    y2 = np.r_[np.zeros(1000), np.ones(4)]
    s2 = np.r_[benign, [0.995, 0.9995, 2.0, 3.0]]
    assert threshold_at_fpr(y2, s2, 0.001) == pytest.approx(benign[-2])
    assert recall_at_fpr(y2, s2, 0.001) == 0.75  # 0.995 is below the 2nd-highest benign score


def test_campaign_ari_penalises_benign_members_and_splits() -> None:
    truth = np.array(["a", "a", "b", "b", ""], dtype=object)
    label = np.array([1, 1, 1, 1, 0])
    assert campaign_ari(truth, label, ["x", "x", "y", "y", None]) == 1.0
    assert campaign_ari(truth, label, ["x", "x", "y", "y", "y"]) < 1.0
    assert campaign_ari(truth, label, ["x", "z", "y", "y", None]) < 1.0


@pytest.fixture(scope="module")
def sims(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("evalsims")
    simulate(root / "a", "tiny", seed=21)
    simulate(root / "b", "tiny", seed=22)
    return root / "a", root / "b"


def test_train_command_writes_a_loadable_small_artifact(tmp_path: Path, sims: tuple[Path, Path]) -> None:
    out = tmp_path / "model.json.gz"
    result = CliRunner().invoke(main, ["train", "--data", str(sims[0]), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.stat().st_size < 2 * 1024 * 1024
    model = Model.load(out)
    weights = model.policy.weights
    assert model.meta["attack_accounts"] > 0 and weights and all(w >= 0 for w in weights.values())


def test_eval_command_on_held_out_seed(tmp_path: Path, sims: tuple[Path, Path]) -> None:
    out = tmp_path / "eval.json"
    result = CliRunner().invoke(main, ["eval", "--train", str(sims[0]), "--test", str(sims[1]), "--json", str(out),
                                       "--no-loco"])
    assert result.exit_code == 0, result.output
    report = orjson.loads(out.read_bytes())
    entry = report["test"][str(sims[1])]
    for key in ("roc_auc", "recall_at_fpr_1pct", "recall_at_fpr_0.1pct", "fpr_by_population",
                "recall_by_campaign_type", "campaign_ari", "harvest", "benign_in_campaigns"):
        assert key in entry
    assert entry["roc_auc"] > 0.9
    assert all(0 <= h["share"] <= 1 for h in entry["harvest"].values())


def test_eval_refuses_testing_on_training_data(sims: tuple[Path, Path]) -> None:
    result = CliRunner().invoke(main, ["eval", "--train", str(sims[0]), "--test", str(sims[0])])
    assert result.exit_code == 1
