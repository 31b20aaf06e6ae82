"""Small inline SVG charts drawn on the server: no chart library, nothing for the browser to fetch.

Timelines draw one bar per active time bucket and nothing in between, so hours without traffic show as gaps
(a campaign with 3 exchanges in 3 hours a week apart is three thin bars, never a band across the week).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from html import escape

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2", "#bcbd22",
           "#393b79", "#637939", "#843c39")


def colours(names: list[str]) -> dict[str, str]:
    return {n: PALETTE[i % len(PALETTE)] for i, n in enumerate(names)}


def timeline(points: list[tuple[datetime, str, int]], bucket: timedelta = timedelta(hours=1), width: int = 860,
             height: int = 150, model_order: list[str] | None = None) -> str:
    """Stacked bars per ``bucket`` and model; only buckets with traffic are drawn."""
    if not points:
        return '<p class="muted">no traffic</p>'
    models = model_order or sorted({m for _, m, _ in points})
    palette = colours(models)
    per: dict[datetime, dict[str, int]] = defaultdict(dict)
    for when, model, n in points:
        per[when][model] = per[when].get(model, 0) + n
    start, end = min(per), max(per) + bucket
    span = (end - start).total_seconds() or 1.0
    left, right, top, bottom = 44, 8, 8, 26
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max(sum(v.values()) for v in per.values())
    bar_w = max(1.5, plot_w * bucket.total_seconds() / span)
    out = [f'<svg class="chart timeline" viewBox="0 0 {width} {height}" width="100%" role="img" '
           f'aria-label="exchanges per {_bucket_name(bucket)}">']
    out.append(f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#999"/>')
    out.append(f'<text x="{left - 4}" y="{top + 8}" text-anchor="end" class="tick">{peak:,}</text>')
    out.append(f'<text x="{left - 4}" y="{top + plot_h}" text-anchor="end" class="tick">0</text>')
    for when in sorted(per):
        x = left + plot_w * (when - start).total_seconds() / span
        y: float = top + plot_h
        for model in models:
            n = per[when].get(model, 0)
            if not n:
                continue
            h = max(1.0, plot_h * n / peak)
            y -= h
            out.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" fill="{palette[model]}">'
                       f'<title>{escape(when.strftime("%Y-%m-%d %H:%M"))} {escape(model)}: {n:,}</title></rect>')
    for i in range(5):
        t = start + (end - start) * i / 4
        x = left + plot_w * i / 4
        out.append(f'<text x="{x:.0f}" y="{height - 8}" text-anchor="middle" class="tick">'
                   f'{escape(t.strftime("%m-%d %H:00"))}</text>')
    out.append("</svg>")
    active = len(per)
    total = int(span // bucket.total_seconds())
    legend = " ".join(f'<svg class="swatch" width="10" height="10"><rect width="10" height="10" '
                      f'fill="{palette[m]}"/></svg>{escape(m)}' for m in models)
    return "".join(out) + (f'<div class="legend">{legend} · active {active:,} of {total:,} '
                           f'{_bucket_name(bucket)}s (gaps are hours without traffic)</div>')


def _bucket_name(bucket: timedelta) -> str:
    return "day" if bucket >= timedelta(days=1) else "hour"


def bars(values: list[tuple[str, float]], fmt: str = "{:.0%}", width: int = 420) -> str:
    """Horizontal bars (capability coverage, evidence points)."""
    if not values:
        return '<p class="muted">none</p>'
    peak = max(v for _, v in values) or 1.0
    row = 20
    out = [f'<svg class="chart bars" viewBox="0 0 {width} {row * len(values) + 4}" width="{width}" role="img">']
    for i, (name, value) in enumerate(values):
        w = (width - 200) * value / peak
        y = i * row + 2
        out.append(f'<text x="0" y="{y + 13}" class="tick">{escape(name)}</text>'
                   f'<rect x="130" y="{y + 3}" width="{max(w, 1):.1f}" height="{row - 8}" fill="#1f77b4"/>'
                   f'<text x="{136 + w:.1f}" y="{y + 13}" class="tick">{escape(fmt.format(value))}</text>')
    out.append("</svg>")
    return "".join(out)
