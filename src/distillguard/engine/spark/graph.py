"""Communities without a single-machine graph: connected components in Spark, Leiden per component on executors.

Spark has no Leiden or Louvain (GraphFrames offers connected components and label propagation), so the
linking graph is split where it falls apart anyway -- its connected components, found with the
large-star/small-star iteration (Kiveris et al., "Connected Components in MapReduce and Beyond", SoCC 2014)
over DataFrames -- and :func:`distillguard.attribution.communities.communities`, the very function the DuckDB
engine calls, runs once per component inside ``applyInArrow`` on the executors.

Leiden never moves a vertex into a community it has no edge to, so no community spans two components; what
can differ from one Leiden run over the whole graph is (a) modularity's null model, which per component uses
the component's own total weight, and (b) the random visiting order. ``tests/test_spark.py`` and
``benchmarks/scale.py`` compare the campaigns with the driver-side run; the engine's default stays the
driver-side call (``SparkEngine(communities="driver")``), which is the DuckDB engine's computation exactly.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa

MAX_ROUNDS = 64


def connected_components(spark: Any, edges: Any) -> Any:
    """``(node, component)`` for every node of ``edges`` (DataFrame of ``src``, ``dst`` longs); the component
    is its smallest node. Large-star / small-star until no label changes (O(log n) rounds in practice)."""
    from pyspark.sql import functions as F

    e = edges.select(F.least("src", "dst").alias("u"), F.greatest("src", "dst").alias("v")) \
        .where(F.col("u") != F.col("v")).distinct()
    e = e.localCheckpoint(eager=True)
    for _ in range(MAX_ROUNDS):
        # large-star: every node links its larger neighbours to its smallest neighbour (or itself)
        both = e.select(F.col("u").alias("a"), F.col("v").alias("b")).unionAll(
            e.select(F.col("v").alias("a"), F.col("u").alias("b")))
        low = both.groupBy("a").agg(F.least(F.min("b"), F.first("a")).alias("m"))
        large = both.join(low, "a").where(F.col("b") > F.col("a")) \
            .select(F.least("b", "m").alias("u"), F.greatest("b", "m").alias("v")).where(F.col("u") != F.col("v"))
        large = large.distinct()
        # small-star: every node links itself and its smaller neighbours to the smallest of them
        low2 = large.groupBy("v").agg(F.min("u").alias("m"))
        small = large.join(low2, "v").select(F.col("m").alias("u"), F.col("u").alias("x"), F.col("v"))
        small = small.select(F.least("u", "x").alias("u"), F.greatest("u", "x").alias("v")).unionAll(
            low2.select(F.col("m").alias("u"), F.col("v"))).where(F.col("u") != F.col("v")).distinct()
        small = small.localCheckpoint(eager=True)
        changed = small.exceptAll(e).limit(1).count() + e.exceptAll(small).limit(1).count()
        e = small
        if changed == 0:
            break
    else:  # pragma: no cover - the iteration converges in O(log n) rounds
        raise RuntimeError("connected components did not converge")
    labels = e.groupBy("v").agg(F.min("u").alias("component")).select(F.col("v").alias("node"), "component")
    roots = e.select(F.col("u").alias("node")).distinct().join(labels, "node", "left_anti") \
        .select("node", F.col("node").alias("component"))
    return labels.unionByName(roots)


def _leiden_groups(merge_conductance: float, merge_density: float) -> Any:
    def run(table: pa.Table) -> pa.Table:
        from distillguard.attribution.communities import communities

        a = table.column("a").to_numpy()
        b = table.column("b").to_numpy()
        w = table.column("w").to_numpy()
        nodes = np.unique(np.concatenate([a, b]))  # ascending: the driver-side vertex order, restricted
        index = {int(n): i for i, n in enumerate(nodes.tolist())}
        order = np.lexsort((b, a))
        edges = [(index[int(x)], index[int(y)]) for x, y in zip(a[order], b[order], strict=True)]
        groups = communities([str(n) for n in nodes.tolist()], edges, w[order].tolist(),
                             merge_conductance=merge_conductance, merge_density=merge_density)
        members = [int(nodes[v]) for g in groups for v in g]
        local = [i for i, g in enumerate(groups) for _ in g]
        first = int(nodes[0]) if len(nodes) else 0
        return pa.table({"node": pa.array(members, pa.int64()),
                         "group": pa.array([first * 1_000_000 + i for i in local], pa.int64())})

    return run


def component_communities(spark: Any, names: list[str], edges: list[tuple[int, int]], weights: list[float], *,
                          merge_conductance: float = 0.1, merge_density: float = 0.1) -> list[list[int]]:
    """What :func:`distillguard.attribution.communities.communities` returns, computed per connected component
    on the executors (vertex indices into ``names``; groups of >= 2, largest first)."""
    from pyspark.sql import functions as F

    if not edges:
        return []
    frame = spark.createDataFrame(pa.table({
        "a": pa.array([e[0] for e in edges], pa.int64()), "b": pa.array([e[1] for e in edges], pa.int64()),
        "w": pa.array(weights, pa.float64())}))
    labels = connected_components(spark, frame.select(F.col("a").alias("src"), F.col("b").alias("dst")))
    tagged = frame.join(labels.withColumnRenamed("node", "a"), "a")
    found = tagged.groupBy("component").applyInArrow(
        _leiden_groups(merge_conductance, merge_density), "node long, group long").toArrow()
    groups: dict[int, list[int]] = {}
    for node, group in zip(found.column("node").to_pylist(), found.column("group").to_pylist(), strict=True):
        groups.setdefault(group, []).append(node)
    out = [sorted(g) for g in groups.values() if len(g) >= 2]
    return sorted(out, key=lambda g: (-len(g), g[0]))


@contextlib.contextmanager
def distributed_communities(spark: Any) -> Iterator[None]:
    """Within the block, attribution clusters with :func:`component_communities` instead of one Leiden run.

    ``find_campaigns`` calls the name ``communities`` it imported; this swaps that one reference for the block
    and restores it (a documented seam until ``find_campaigns`` takes the clustering function as a parameter,
    see docs/spark.md).
    """
    from distillguard.attribution import find

    original = find.communities

    def clustered(names: list[str], edges: list[tuple[int, int]], weights: list[float], **kw: Any) -> list:
        return component_communities(spark, names, edges, weights, **kw)

    find.communities = clustered
    try:
        yield
    finally:
        find.communities = original
