"""Leiden communities on the linking graph, merged back where modularity over-splits.

Modularity finds structure even in a homogeneous random graph, so a large hydra
(linked by a sparse random circulant) would come back as several pieces. After
Leiden, two communities are merged when the weight between them is a large share
of the smaller one's volume (high conductance: they are not separable groups) **and**
the weight density between them (cut weight per member pair) is comparable to the
density inside them: pieces of one over-split group are about as tightly knit to each
other as within, while a small campaign hanging off a large one by a handful of weak
"same actor" edges is orders of magnitude sparser across than inside and stays apart.
"""

from __future__ import annotations

import igraph as ig
import leidenalg
import numpy as np


def communities(names: list[str], edges: list[tuple[int, int]], weights: list[float], *,
                merge_conductance: float = 0.1, merge_density: float = 0.1, seed: int = 7) -> list[list[int]]:
    """Vertex index groups (size >= 2) of the weighted undirected graph, largest first."""
    graph = ig.Graph(n=len(names), edges=edges, directed=False)
    graph.es["weight"] = weights
    part = leidenalg.find_partition(graph, leidenalg.ModularityVertexPartition, weights="weight",
                                    n_iterations=-1, seed=seed)
    membership = np.asarray(part.membership)
    k = int(membership.max()) + 1 if len(membership) else 0
    if k > 1 and edges:
        membership = _merge(membership, k, np.asarray(edges), np.asarray(weights, dtype=float), merge_conductance,
                            merge_density)
    groups: dict[int, list[int]] = {}
    for vertex, label in enumerate(membership.tolist()):
        groups.setdefault(label, []).append(vertex)
    return sorted((g for g in groups.values() if len(g) >= 2), key=len, reverse=True)


def _merge(membership: np.ndarray, k: int, edges: np.ndarray, weights: np.ndarray, threshold: float,
           density_ratio: float = 0.0) -> np.ndarray:
    """Greedily merge the community with the highest conductance into its strongest eligible neighbour.

    Conductance here is cut(c, other communities) / volume(c); a real campaign that is
    a separate group has a conductance near zero, a piece of an over-split one has a high one.
    A neighbour d is eligible when cut(c, d) / (|c| |d|) >= ``density_ratio`` x the smaller
    internal density (internal weight per member pair) of c and d; a single vertex has no
    internal density and is always eligible.
    """
    ca, cb = membership[edges[:, 0]], membership[edges[:, 1]]
    volume = dict(enumerate((np.bincount(ca, weights, k) + np.bincount(cb, weights, k)).tolist()))
    size = dict(enumerate(np.bincount(membership, minlength=k).tolist()))
    same = ca == cb
    inner = dict(enumerate(np.bincount(ca[same], weights[same], k).tolist()))
    adj: dict[int, dict[int, float]] = {c: {} for c in range(k)}
    cross = ~same
    for a, b, w in zip(ca[cross].tolist(), cb[cross].tolist(), weights[cross].tolist(), strict=True):
        adj[a][b] = adj[a].get(b, 0.0) + w
        adj[b][a] = adj[b].get(a, 0.0) + w

    def density(c: int) -> float | None:
        return inner[c] / (size[c] * (size[c] - 1) / 2) if size[c] > 1 else None

    def eligible(c: int, d: int) -> bool:
        own = [x for x in (density(c), density(d)) if x is not None]
        return not own or adj[c][d] / (size[c] * size[d]) >= density_ratio * min(own)

    parent = list(range(k))
    while True:
        worst, into, worst_phi = -1, -1, threshold
        for c, nbrs in adj.items():
            phi = sum(nbrs.values()) / volume[c] if nbrs and volume[c] > 0 else 0.0
            if phi < worst_phi:
                continue
            ok = [d for d in nbrs if eligible(c, d)]
            if ok:
                worst, into, worst_phi = c, max(ok, key=nbrs.__getitem__), phi
        if worst < 0:
            break
        inner[into] += inner.pop(worst) + adj[worst][into]
        for nbr, w in adj.pop(worst).items():
            del adj[nbr][worst]
            if nbr != into:
                adj[into][nbr] = adj[into].get(nbr, 0.0) + w
                adj[nbr][into] = adj[nbr].get(into, 0.0) + w
        volume[into] += volume.pop(worst)
        size[into] += size.pop(worst)
        parent[worst] = into

    def find(x: int) -> int:
        while parent[x] != x:
            x = parent[x]
        return x

    return np.asarray([find(c) for c in range(k)])[membership]
