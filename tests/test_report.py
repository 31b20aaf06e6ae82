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


# ---- the plot defects a new user met (issue: the report misleads) --------------------------------------------------
def test_timeline_shows_gaps_as_gaps():
    """3 exchanges in 3 hours a week apart are three one-hour bars, not a band across two weeks."""
    from datetime import UTC, datetime

    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.patches import Rectangle

    from distillguard.report import plots

    hours = np.array([datetime(2026, 2, 2, 10, tzinfo=UTC), datetime(2026, 2, 9, 3, tzinfo=UTC),
                      datetime(2026, 2, 16, 20, tzinfo=UTC)])
    fig = plots.timeline_figure({"campaign-x": {"aurora-2": (hours, np.array([1, 1, 1]))}}, {})
    ax = fig.axes[0]
    bars = [p for p in ax.patches if isinstance(p, Rectangle) and p.get_height() > 0]
    assert len(bars) == 3
    assert sum(b.get_width() for b in bars) == pytest.approx(3 / 24)  # three hours of ink over a 14-day axis
    assert any("active 3 of" in t.get_text() for t in ax.texts)
    plt.close(fig)


def test_risk_histogram_keeps_flagged_accounts_visible():
    import matplotlib.pyplot as plt
    import numpy as np

    from distillguard.report import plots

    rng = np.random.default_rng(1)
    risk = np.concatenate([rng.uniform(0, 0.1, 100_000), [0.95], [0.7, 0.72]])
    verdicts = np.array(["allow"] * 100_000 + ["block"] + ["throttle"] * 2)
    fig = plots.risk_figure(risk, verdicts)
    full, zoom = fig.axes[:2]
    assert full.get_ylim()[0] == pytest.approx(0.5)  # a bin of one account is a visible bar on the log axis
    legend = [t.get_text() for t in full.get_legend().get_texts()]
    assert "block (1)" in legend and "throttle (2)" in legend
    assert zoom.get_yscale() == "linear"
    tall = [p for p in zoom.patches if p.get_height() >= 1]
    assert sum(p.get_height() for p in tall) == 3  # the zoom panel holds the flagged accounts only
    plt.close(fig)


def test_link_graph_is_readable_and_colours_are_distinct():
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection

    from distillguard.attribution import KINDS, Campaign
    from distillguard.report import plots

    colours = list(plots.KIND_COLOURS.values())
    assert len(set(colours)) == len(KINDS)  # one colour per evidence kind
    assert not any(c.lstrip("#")[0:2] == c.lstrip("#")[2:4] == c.lstrip("#")[4:6] for c in colours)  # no greys
    accounts = [f"a{i:03d}" for i in range(120)]
    edges = [(a, b, "shared_payment", 0.5) for i, a in enumerate(accounts) for b in accounts[i + 1:]]
    edges += [(accounts[i], accounts[i + 1], "synchronised_activity", 0.3) for i in range(0, 119, 2)]
    fig = plots.link_figure(Campaign("campaign-x", accounts, 0.9, edges=edges))
    lines = sum(len(c.get_segments()) for c in fig.axes[0].collections if isinstance(c, LineCollection))
    assert lines == 120 + 120  # one spoke per account and hub, instead of 7,200 pairwise lines
    plt.close(fig)
