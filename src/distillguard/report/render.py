"""The analyst report: one self-contained HTML file (inline CSS, base64 PNG plots, no scripts)."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import jinja2
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from distillguard.attribution import ATLAS_NAMES, Campaign
from distillguard.attribution.campaign import producer
from distillguard.report import plots

MAX_TIMELINES = 8  # campaigns drawn in the timeline figure
MAX_GRAPHS = 6  # campaigns with a linking graph
MAX_HEATMAP = 25  # campaigns in the capability heatmap
TOP_ACCOUNTS = 50

_ENV = jinja2.Environment(loader=jinja2.PackageLoader("distillguard.report", "templates"),
                          autoescape=jinja2.select_autoescape(["html", "j2"]), trim_blocks=True, lstrip_blocks=True)


def write_report(out_dir: Path, accounts: pa.Table, campaigns: list[Campaign], con: duckdb.DuckDBPyConnection
                 ) -> Path:
    """Write ``out_dir/report.html`` and return its path.

    ``accounts`` has the columns of ``accounts.csv`` (account_id, risk, verdict, campaign_id,
    signals, exchanges, first_seen, last_seen); ``con`` has the ``exchanges`` view.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    risk = np.nan_to_num(accounts.column("risk").to_numpy(zero_copy_only=False).astype(float))
    verdicts = np.asarray(accounts.column("verdict").to_pylist(), dtype=object).astype(str)
    campaigns = sorted(campaigns, key=lambda c: (-c.score, c.id))
    shown = campaigns[:MAX_TIMELINES]
    context: dict[str, Any] = {
        "generated": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "producer": producer(),
        "headline": _headline(con, accounts, verdicts, campaigns),
        "risk_plot": plots.risk_histogram(risk, verdicts),
        "timeline_plot": plots.timelines(_series(con, shown), _releases(con)) if shown else None,
        "heatmap_plot": plots.capability_heatmap(campaigns[:MAX_HEATMAP]) if campaigns else None,
        "campaigns": [_campaign_view(c, i < MAX_GRAPHS) for i, c in enumerate(campaigns)],
        "top_accounts": _top_accounts(accounts),
        "atlas_names": ATLAS_NAMES,
    }
    html = _ENV.get_template("report.html.j2").render(**context)
    write_links(out_dir, campaigns)
    path = out_dir / "report.html"
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(html, encoding="utf-8")
    os.replace(tmp, path)
    return path


def write_links(out_dir: Path, campaigns: list[Campaign]) -> Path:
    """``OUT/links.json``: each campaign's linking edges (account index pairs, evidence kind, weight), the data
    of its evidence graph, for the analyst console (``campaigns.json`` carries no edges)."""
    import orjson

    doc: dict[str, Any] = {"campaigns": {}}
    for c in campaigns:
        ids = sorted(c.accounts)
        index = {a: i for i, a in enumerate(ids)}
        doc["campaigns"][c.id] = {"accounts": ids, "edges": [(index[a], index[b], kind, round(float(w), 4))
                                                            for a, b, kind, w in c.edges if a in index and b in index]}
    path = out_dir / "links.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_bytes(orjson.dumps(doc))
    os.replace(tmp, path)
    return path


def _headline(con: duckdb.DuckDBPyConnection, accounts: pa.Table, verdicts: np.ndarray,
              campaigns: list[Campaign]) -> list[tuple[str, str]]:
    total, first, last = con.execute("SELECT count(*), min(ts), max(ts) FROM exchanges").fetchall()[0]
    in_campaigns = sum(len(c.accounts) for c in campaigns)
    harvested = sum(c.exchanges for c in campaigns)
    flagged = int((verdicts != "allow").sum())
    span = f"{first:%Y-%m-%d} → {last:%Y-%m-%d}" if first is not None else "–"
    return [
        ("exchanges", f"{total:,}"), ("span", span), ("accounts", f"{len(accounts):,}"),
        ("flagged accounts", f"{flagged:,}"), ("campaigns", f"{len(campaigns):,}"),
        ("accounts in campaigns", f"{in_campaigns:,}"),
        ("exchanges harvested by campaigns", f"{harvested:,}" + (f" ({harvested / total:.1%})" if total else "")),
    ]


def _series(con: duckdb.DuckDBPyConnection, campaigns: list[Campaign]) -> dict[str, dict[str, tuple]]:
    """Hourly exchange counts per campaign and model."""
    members = pa.table({"account_id": [a for c in campaigns for a in c.accounts],
                        "cid": [c.id for c in campaigns for _ in c.accounts]})
    con.register("_report_members", members)
    try:
        rows = con.execute("""
            SELECT m.cid, coalesce(e.model, 'unknown'), date_trunc('hour', e.ts) AS h, count(*)
            FROM exchanges e JOIN _report_members m USING (account_id) GROUP BY ALL ORDER BY h""").fetchall()
    finally:
        con.unregister("_report_members")
    raw: dict[str, dict[str, tuple[list, list]]] = {c.id: {} for c in campaigns}
    for cid, model, hour, n in rows:
        hours, counts = raw[cid].setdefault(model, ([], []))
        hours.append(hour)
        counts.append(n)
    return {cid: {m: (np.asarray(h), np.asarray(n)) for m, (h, n) in per.items()} for cid, per in raw.items()}


def _releases(con: duckdb.DuckDBPyConnection) -> dict[str, datetime]:
    """First appearance of each model after the first day of traffic: a release as the traffic shows it."""
    rows = con.execute("""
        WITH f AS (SELECT model, min(ts) AS first FROM exchanges WHERE model IS NOT NULL GROUP BY model)
        SELECT model, first FROM f WHERE first > (SELECT min(ts) FROM exchanges) + INTERVAL 1 DAY""").fetchall()
    return dict(rows)


def _campaign_view(c: Campaign, with_graph: bool) -> dict[str, Any]:
    data = c.to_json()
    data["graph_plot"] = plots.link_graph(c) if with_graph and c.edges else None
    data["n_accounts"] = len(c.accounts)
    data["account_sample"] = data["accounts"][:20]
    return data


def _top_accounts(accounts: pa.Table) -> list[dict[str, Any]]:
    if len(accounts) == 0:
        return []
    order = pc.sort_indices(accounts, sort_keys=[("risk", "descending"), ("account_id", "ascending")])
    rows = accounts.take(order[:TOP_ACCOUNTS]).to_pylist()
    for row in rows:
        row["reasons"] = [r.strip() for r in str(row.get("signals") or "").split(";") if r.strip()]
    return rows
