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
KIND_COLOURS = dict(zip(list(KINDS), plt.get_cmap("tab10").colors, strict=False))


def data_uri(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=96, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def risk_histogram(risk: np.ndarray, verdicts: np.ndarray) -> str:
    """Risk distribution stacked by verdict, log count axis (benign mass near 0 would hide the tail)."""
    fig, ax = plt.subplots(figsize=(8, 3.2))
    bins = np.linspace(0, 1, 41)
    names = [v for v in VERDICT_COLOURS if (verdicts == v).any()]
    others = sorted(set(verdicts.tolist()) - set(names))
    groups = [risk[verdicts == v] for v in names + others]
    colours = [VERDICT_COLOURS.get(v, "#999999") for v in names + others]
    if groups:
        ax.hist(groups, bins=bins, stacked=True, color=colours, label=names + others)
        ax.legend(title="verdict", fontsize=8)
    ax.set_yscale("log")
    ax.set_xlabel("risk")
    ax.set_ylabel("accounts (log)")
    ax.set_xlim(0, 1)
    return data_uri(fig)


def timelines(series: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]], releases: dict[str, datetime]) -> str:
    """Exchanges per hour for each campaign (rows), stacked by model colour; dashed lines mark model releases."""
    models = sorted({m for per in series.values() for m in per})
    palette = dict(zip(models, plt.get_cmap("Set2").colors, strict=False))
    n = max(len(series), 1)
    fig, axes = plt.subplots(n, 1, figsize=(9, 1.6 * n + 0.6), sharex=True, squeeze=False)
    for ax, (name, per_model) in zip(axes[:, 0], series.items(), strict=False):
        for model, (hours, counts) in sorted(per_model.items()):
            ax.fill_between(hours, counts, step="post", color=palette[model], alpha=0.85, linewidth=0)
        for model, when in releases.items():
            ax.axvline(when, color=palette.get(model, "k"), linestyle="--", linewidth=1)
        ax.set_ylabel(name, rotation=0, ha="right", fontsize=8)
        ax.tick_params(labelsize=7)
    handles = [Line2D([0], [0], color=palette[m], linewidth=6) for m in models]
    if handles:
        axes[0, 0].legend(handles, models, fontsize=7, ncol=len(models), loc="upper left", title="model (-- release)",
                          title_fontsize=7)
    axes[-1, 0].set_xlabel("time (UTC), exchanges per hour")
    fig.autofmt_xdate()
    return data_uri(fig)


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
    """The campaign's linking graph (its most connected accounts), edges coloured by dominant evidence kind."""
    degree: dict[str, float] = {}
    for a, b, _, w in campaign.edges:
        degree[a] = degree.get(a, 0.0) + w
        degree[b] = degree.get(b, 0.0) + w
    keep = sorted(degree, key=lambda n: (-degree[n], n))[:max_nodes]
    index = {n: i for i, n in enumerate(keep)}
    edges = [(index[a], index[b], kind) for a, b, kind, _ in campaign.edges if a in index and b in index]
    graph = ig.Graph(n=len(keep), edges=[(a, b) for a, b, _ in edges])
    layout = np.asarray(graph.layout_fruchterman_reingold(niter=300, seed=_seed_layout(len(keep), seed)).coords) \
        if len(keep) else np.zeros((0, 2))
    fig, ax = plt.subplots(figsize=(5, 4))
    if edges:
        segments = [layout[[a, b]] for a, b, _ in edges]
        colours = [KIND_COLOURS.get(kind, "#888888") for _, _, kind in edges]
        ax.add_collection(LineCollection(segments, colors=colours, linewidths=0.6, alpha=0.6, zorder=1))
    if len(keep):
        ax.scatter(layout[:, 0], layout[:, 1], s=18, color="#333333", zorder=2)
    kinds = sorted({k for _, _, k in edges})
    ax.legend([Line2D([0], [0], color=KIND_COLOURS.get(k, "#888888"), linewidth=2) for k in kinds],
              [k.replace("_", " ") for k in kinds], fontsize=7, loc="lower left", framealpha=0.8)
    shown = f"top {len(keep)} of {len(campaign.accounts)} accounts" if len(keep) < len(campaign.accounts) \
        else f"{len(campaign.accounts)} accounts"
    ax.set_title(f"{campaign.id}: {shown}", fontsize=9)
    ax.set_axis_off()
    return data_uri(fig)


def _seed_layout(n: int, seed: int) -> list[list[float]]:
    """A deterministic starting layout, so the same campaign is drawn the same way on every run."""
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, size=(n, 2)).tolist()
