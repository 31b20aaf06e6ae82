"""The analyst report: one self-contained HTML file with every section the analyst needs."""

from __future__ import annotations

import re
import time

import pyarrow as pa
import pytest

from distillguard.attribution import find_campaigns
from distillguard.ingest.pipeline import ingest
from distillguard.report import write_report
from distillguard.store import Store
from test_attribution import build_world, load_labels, scores_from


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory):
    root = build_world(tmp_path_factory.mktemp("report-world"), seed=5)
    store = Store.open(root / "store")
    ingest([root / "exchanges.jsonl"], store, accounts=root / "accounts.jsonl")
    labels = load_labels(root)
    scores = scores_from(labels, {"casual3"})
    con = store.connect()
    campaigns = find_campaigns(con, scores)
    member = {a: c.id for c in campaigns for a in c.accounts}
    ids = scores.column("account_id").to_pylist()
    accounts = scores.drop_columns(["reasons"]).append_column(
        "campaign_id", pa.array([member.get(a) for a in ids], pa.string())).append_column(
        "signals", pa.array(["template reuse; high volume" if member.get(a) else "" for a in ids])).append_column(
        "exchanges", pa.array([10] * len(ids))).append_column(
        "first_seen", pa.array(["2026-02-02T00:00:00Z"] * len(ids))).append_column(
        "last_seen", pa.array(["2026-03-01T00:00:00Z"] * len(ids)))
    return con, accounts, campaigns


def test_report_is_self_contained_and_complete(scored, tmp_path):
    con, accounts, campaigns = scored
    started = time.perf_counter()
    path = write_report(tmp_path / "out", accounts, campaigns, con)
    assert time.perf_counter() - started < 30
    html = path.read_text()
    assert path == tmp_path / "out" / "report.html"
    # nothing fetched at view time: no scripts, stylesheets or images from elsewhere
    assert "<script" not in html.lower()
    assert not re.search(r'(src|href)="(?!data:|#|https://atlas\.mitre\.org/)', html)
    images = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,', html)
    assert {"risk distribution", "campaign timelines", "capability heatmap"} <= set(images)
    assert sum(alt.startswith("linking graph of") for alt in images) == len(campaigns) == 3
    for c in campaigns:
        assert f'id="{c.id}"' in html
    assert "https://atlas.mitre.org/techniques/AML.T0024.002" in html
    assert "template reuse; high volume" in html  # top accounts carry their reasons
    assert "casual3" in html  # a flagged account outside any campaign is still listed


def test_report_without_campaigns(scored, tmp_path):
    con, accounts, _ = scored
    html = write_report(tmp_path, accounts, [], con).read_text()
    assert "No campaigns" in html
    assert 'alt="risk distribution"' in html
