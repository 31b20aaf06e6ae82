"""Cross-company validation of detectors, end to end with two simulated providers and a real TAXII hub (in
process): provider 1 publishes a detector (Sigma rules + model artifact + model card), provider 2 pulls it, runs
it on its own labelled traffic (detect + eval) and publishes a validation report (note + opinion carrying only
metrics); provider 1 pulls the report and sees how its detector does at provider 2. No exchange crosses."""

from __future__ import annotations

import csv
import io

import orjson
import pytest
import yaml
from click.testing import CliRunner
from starlette.testclient import TestClient

from distillguard.cases.validation import (
    detector_artifact,
    detector_objects,
    detectors_in,
    matrix,
    run_validation,
    shipped_artifact,
    sigma_rules,
    validation_objects,
)
from distillguard.cli import main
from distillguard.intel.client import State, TaxiiClient
from distillguard.intel.hub import create_app
from test_intel_fixtures import COLLECTION, PASSWORD, hub_config, member_keys

URL = "http://hub/taxii2/"


@pytest.fixture(scope="module")
def providers(tmp_path_factory):
    root = tmp_path_factory.mktemp("two-providers")
    runner = CliRunner()
    out = runner.invoke(main, ["simulate", "--scale", "tiny", "--seed", "5", "--providers", "2", "--out",
                               str(root / "sim")])
    assert out.exit_code == 0, out.output
    dirs = {}
    for i in (1, 2):
        sim = root / "sim" / f"provider-{i}"
        store = root / f"store-{i}"
        out = runner.invoke(main, ["ingest", str(sim / "exchanges"), "--accounts", str(sim / "accounts.jsonl"),
                                   "--store", str(store)])
        assert out.exit_code == 0, out.output
        dirs[i] = {"sim": sim, "store": store}
    return root, dirs


def test_detector_published_validated_and_reported_back(providers, tmp_path):
    root, dirs = providers
    keys = member_keys(("p1", "p2"))
    app = create_app(hub_config(keys, str(tmp_path / "hub.sqlite")))

    def client(member: str) -> TaxiiClient:
        return TaxiiClient(URL, COLLECTION, member, PASSWORD, http=TestClient(app, base_url="http://hub"))

    # provider 1: detect on its own traffic, publish the detector (rules from its campaigns, the shipped model)
    runner = CliRunner()
    out = runner.invoke(main, ["detect", "--store", str(dirs[1]["store"]), "--out", str(tmp_path / "det-1")])
    assert out.exit_code == 0, out.output
    rules = sigma_rules(tmp_path / "det-1", "dg-core")
    assert all(doc for doc in yaml.safe_load_all(rules))
    published = detector_objects("p1", keys["p1"], "dg-core", "2.0.0", shipped_artifact(), rules)
    counts = client("p1").publish(published, State(None))
    assert counts["failed"] == 0, client("p1").failures
    card = published[-1]["extensions"]
    assert "model_card" in str(card)

    # provider 2: pull, check the artifact's hash, run it on its own labelled traffic, publish the metrics
    keyring = {name: key.public_key() for name, key in keys.items()}
    pulled = client("p2").pull(State(None), keyring)
    assert not pulled.rejected
    (detector,) = detectors_in(pulled.accepted)
    raw, info = detector_artifact(detector)
    assert raw == shipped_artifact().read_bytes() and info["version"] == "2.0.0"
    metrics = run_validation(detector, dirs[2]["store"], dirs[2]["sim"] / "labels.csv", tmp_path / "p2-run")
    labels = list(csv.DictReader(io.StringIO((dirs[2]["sim"] / "labels.csv").read_text())))
    assert metrics["accounts"] == len(labels) and 0.0 <= metrics["roc_auc"] <= 1.0
    report = validation_objects("p2", keys["p2"], detector, metrics)
    counts = client("p2").publish(report, State(None))
    assert counts["failed"] == 0, client("p2").failures
    # nothing of provider 2's traffic is in what it published: no account id, no text
    sent = orjson.dumps(report).decode()
    assert not any(r["account_id"] in sent for r in labels)

    # provider 1 (and everyone in the group) sees how the detector does at provider 2
    seen = client("p1").pull(State(None), keyring)
    assert not seen.rejected
    rows = matrix(seen.accepted)
    assert len(rows) == 1
    row = rows[0]
    assert (row["detector"], row["version"], row["publisher"], row["validator"]) == ("dg-core", "2.0.0", "p1", "p2")
    assert row["roc_auc"] == pytest.approx(metrics["roc_auc"]) and row["opinion"]
    types = {o["type"] for o in seen.accepted}
    assert {"indicator", "note", "opinion"} <= types

    # the console shows the matrix
    bundle = tmp_path / "validations.json"
    bundle.write_bytes(orjson.dumps({"type": "bundle", "objects": seen.accepted}))
    from distillguard.cases.validation import load_matrix

    assert load_matrix(bundle) == rows
    app.state.hub.db.close()
