"""Report figures, drawn with matplotlib (Agg) and embedded as base64 PNG data URIs.

Every plot is capped (campaigns, nodes, bins) so drawing stays fast on 100k-account runs.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from datetime import datetime

import igraph as ig
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import numpy as np  # noqa: E402
from matplotlib.collections import LineCollection  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from distillguard.attribution import KINDS, Campaign  # noqa: E402

VERDICT_COLOURS = {"allow": "#8fb996", "watch": "#f2c14e", "throttle": "#f78154", "block": "#b23a48"}
# one distinct colour per evidence kind (the console uses the same); no greys, so no two kinds look alike
KIND_PALETTE = ("#d62728", "#ff9896", "#9467bd", "#8c564b", "#e377c2", "#1f77b4", "#17becf", "#2ca02c", "#bcbd22",
                "#ff7f0e", "#c5b0d5", "#98df8a", "#aec7e8", "#393b79", "#637939", "#7b4173")
KIND_COLOURS = dict(zip(list(KINDS), KIND_PALETTE, strict=False))
assert len(KIND_COLOURS) == len(KINDS), "every evidence kind needs its own colour"


def data_uri(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=96, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def risk_histogram(risk: np.ndarray, verdicts: np.ndarray) -> str:
    return data_uri(risk_figure(risk, verdicts))


def risk_figure(risk: np.ndarray, verdicts: np.ndarray) -> Figure:
    """Risk distribution by verdict, in two panels so the flagged accounts stay visible.

    Left: every account, count axis logarithmic from 0.5 (a bin of one account is a visible bar), verdicts side
    by side rather than stacked (a stacked bar on a log axis shrinks the top segments to nothing). Right: only
    the accounts at or above the watch threshold, on a linear axis. The legend gives each verdict's count.
    """
    fig, (ax, zoom) = plt.subplots(1, 2, figsize=(10, 3.2), gridspec_kw={"width_ratios": [3, 2]})
    bins = np.linspace(0, 1, 41)
    names = [v for v in VERDICT_COLOURS if (verdicts == v).any()]
    others = sorted(set(verdicts.tolist()) - set(names))
    order = names + others
    groups = [risk[verdicts == v] for v in order]
    colours = [VERDICT_COLOURS.get(v, "#555555") for v in order]
    labels = [f"{v} ({len(g):,})" for v, g in zip(order, groups, strict=True)]
    if groups:
        ax.hist(groups, bins=bins, stacked=False, color=colours, label=labels, histtype="bar", rwidth=1.0,
                log=True, bottom=0.5)
        ax.legend(title="verdict (accounts)", fontsize=8, title_fontsize=8)
    ax.set_ylim(bottom=0.5)
    ax.set_xlabel("risk")
    ax.set_ylabel("accounts (log)")
    ax.set_xlim(0, 1)
    ax.set_title("all accounts", fontsize=9)
    high = risk >= 0.3
    zbins = np.linspace(0.3, 1, 29)
    zgroups = [risk[(verdicts == v) & high] for v in order]
    if any(len(g) for g in zgroups):
        zoom.hist(zgroups, bins=zbins, stacked=True, color=colours, label=order)
    else:
        zoom.text(0.5, 0.5, "no account at or above watch", ha="center", va="center", transform=zoom.transAxes)
    zoom.set_xlim(0.3, 1)
    zoom.set_xlabel("risk")
    zoom.set_ylabel("accounts")
    zoom.set_title("watch and above (linear)", fontsize=9)
    fig.tight_layout()
    return fig


def timelines(series: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]], releases: dict[str, datetime]) -> str:
    return data_uri(timeline_figure(series, releases))


def timeline_figure(series: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]], releases: dict[str, datetime]
                    ) -> Figure:
    """Exchanges per hour for each campaign (rows), one bar per active hour stacked by model; dashed lines mark
    model releases. Hours without traffic are drawn as nothing: a gap shows as a gap (a filled step curve
    would join two lone hours a week apart into a band across the week)."""
    import matplotlib.dates as mdates

    models = sorted({m for per in series.values() for m in per})
    # Set2 is a ListedColormap (a qualitative map: a list of colours); get_cmap is typed as the base class
    palette = dict(zip(models, plt.get_cmap("Set2").colors, strict=False))  # type: ignore[attr-defined]
    n = max(len(series), 1)
    fig, axes = plt.subplots(n, 1, figsize=(9, 1.6 * n + 0.6), sharex=True, squeeze=False)
    hour = 1.0 / 24.0
    for ax, (name, per_model) in zip(axes[:, 0], series.items(), strict=False):
        base: dict[float, float] = {}
        active: set[float] = set()
        for model, (hours, counts) in sorted(per_model.items()):
            x = mdates.date2num(list(hours)) if len(hours) else np.zeros(0)
            bottom = np.array([base.get(float(v), 0.0) for v in x])
            ax.bar(x, counts, width=hour, bottom=bottom, align="edge", color=palette[model], linewidth=0)
            for v, c in zip(x, counts, strict=True):
                base[float(v)] = base.get(float(v), 0.0) + float(c)
                active.add(float(v))
        for model, when in releases.items():
            ax.axvline(when, color=palette.get(model, "k"), linestyle="--", linewidth=1)
        if active:
            span_h = (max(active) - min(active)) * 24 + 1
            ax.text(0.995, 0.9, f"active {len(active):,} of {span_h:,.0f} h", transform=ax.transAxes, ha="right",
                    va="top", fontsize=7, color="#444")
        ax.set_ylabel(name, rotation=0, ha="right", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.xaxis_date()
    handles = [Line2D([0], [0], color=palette[m], linewidth=6) for m in models]
    if handles:
        axes[0, 0].legend(handles, models, fontsize=7, ncol=len(models), loc="upper left", title="model (-- release)",
                          title_fontsize=7)
    axes[-1, 0].set_xlabel("time (UTC), exchanges per hour (one bar per hour with traffic)")
    fig.autofmt_xdate()
    return fig


def capability_heatmap(campaigns: Sequence[Campaign]) -> str:
    """Share of each campaign's exchanges per capability."""
    caps = sorted({c for camp in campaigns for c in camp.capabilities})
    grid = np.array([[camp.capabilities.get(c, 0.0) for c in caps] for camp in campaigns]) if caps else np.zeros((0, 0))
    fig, ax = plt.subplots(figsize=(1.0 + 0.8 * max(len(caps), 1), 0.9 + 0.35 * max(len(campaigns), 1)))
    if grid.size:
        image = ax.imshow(grid, cmap="viridis", vmin=0, vmax=1, aspect="auto")
        fig.colorbar(image, ax=ax, label="share of exchanges")
        for (i, j), v in np.ndenumerate(grid):
            if v >= 0.005:
                ax.text(j, i, f"{v:.0%}", ha="center", va="center", fontsize=7, color="white" if v < 0.6 else "black")
    ax.set_xticks(range(len(caps)), caps, rotation=35, ha="right", fontsize=8)
    ax.set_yticks(range(len(campaigns)), [c.id for c in campaigns], fontsize=8)
    return data_uri(fig)


def link_graph(campaign: Campaign, max_nodes: int = 150, seed: int = 1) -> str:
    return data_uri(link_figure(campaign, max_nodes, seed))


def link_figure(campaign: Campaign, max_nodes: int = 150, seed: int = 1) -> Figure:
    """The campaign's linking graph, drawn so a hundred accounts stay readable.

    Per evidence kind, each connected group of accounts the kind links is drawn as a hub (a diamond in the kind's
    colour, sized by its members) joined to its members: n + 1 lines instead of up to n(n-1)/2, so a payment card
    shared by 90 accounts is one star, not a hairball. Every kind has its own colour.
    """
    degree: dict[str, float] = {}
    for a, b, _, w in campaign.edges:
        degree[a] = degree.get(a, 0.0) + w
        degree[b] = degree.get(b, 0.0) + w
    keep = sorted(degree, key=lambda n: (-degree[n], n))[:max_nodes]
    index = {n: i for i, n in enumerate(keep)}
    by_kind: dict[str, list[tuple[int, int]]] = {}
    for a, b, kind, _ in campaign.edges:
        if a in index and b in index:
            by_kind.setdefault(kind, []).append((index[a], index[b]))
    hubs: list[tuple[str, list[int]]] = []
    for kind in sorted(by_kind):
        g = ig.Graph(n=len(keep), edges=by_kind[kind])
        hubs += [(kind, comp) for comp in g.connected_components() if len(comp) >= 2]
    n_acc = len(keep)
    star = [(n_acc + h, i) for h, (_, comp) in enumerate(hubs) for i in comp]
    graph = ig.Graph(n=n_acc + len(hubs), edges=star)
    layout = np.asarray(graph.layout_fruchterman_reingold(niter=500, seed=_seed_layout(graph.vcount(), seed)).coords) \
        if graph.vcount() else np.zeros((0, 2))
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    if star:
        segments = [layout[[h, i]] for h, i in star]
        colours = [KIND_COLOURS.get(hubs[h - n_acc][0], "#333333") for h, _ in star]
        ax.add_collection(LineCollection(segments, colors=colours, linewidths=0.7, alpha=0.55, zorder=1))
    if n_acc:
        ax.scatter(layout[:n_acc, 0], layout[:n_acc, 1], s=14, color="#333333", zorder=2)
    for h, (kind, comp) in enumerate(hubs):
        x, y = layout[n_acc + h]
        ax.scatter([x], [y], s=30 + 4 * min(len(comp), 60), marker="D", color=KIND_COLOURS.get(kind, "#333333"),
                   edgecolors="white", linewidths=0.8, zorder=3)
    kinds = sorted(by_kind)
    ax.legend([Line2D([0], [0], marker="D", color=KIND_COLOURS.get(k, "#333333"), linewidth=2) for k in kinds],
              [k.replace("_", " ") for k in kinds], fontsize=7, loc="lower left", framealpha=0.8)
    shown = f"top {len(keep)} of {len(campaign.accounts)} accounts" if len(keep) < len(campaign.accounts) \
        else f"{len(campaign.accounts)} accounts"
    ax.set_title(f"{campaign.id}: {shown}; diamonds: shared evidence", fontsize=9)
    ax.set_axis_off()
    return fig


def _seed_layout(n: int, seed: int) -> list[list[float]]:
    """A deterministic starting layout, so the same campaign is drawn the same way on every run."""
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, size=(n, 2)).tolist()
