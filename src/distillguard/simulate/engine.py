"""The day-by-day generator for one provider.

Per day: every population draws its accounts' event timestamps as numpy arrays (one generator
per population-day), the arrays are concatenated and argsorted, then events are rendered in
timestamp order, each from its account-day's own random stream, and streamed to the day's shard
in chunks. Memory is bounded by the account tables, one day's timestamp arrays and the open
multi-turn sessions; it does not grow with the number of days or exchanges.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import pickle
import random
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import orjson
import xxhash

from distillguard.model import format_ts
from distillguard.simulate.accounts import Account, Population, World, turn_of
from distillguard.simulate.campaigns import CAMPAIGNS, make_actor
from distillguard.simulate.config import CAMPAIGN_TYPES, CampaignSpec, Scale, Timeline, benign_plan, plan_campaigns
from distillguard.simulate.exchange import ERRORS, complete
from distillguard.simulate.populations import BENIGN
from distillguard.simulate.writer import ShardWriter

CHUNK = 4096  # events converted to Python objects, rendered and written at a time (bounds memory)
ENDPOINT = "/v1/chat/completions"
Progress = Callable[[int], None]  # called with the number of exchanges just written


def provider_offset(provider: int, providers: int, days: int) -> int:
    """Days after provider-1 that provider-k is first attacked: 5 per provider, squeezed (to no less
    than one) so that the last provider still sees a few days of attack."""
    return (provider - 1) * max(1, min(5, (days - 3) // providers))


def build_provider(seed: int, scale: Scale, exchanges: int, timeline: Timeline, provider: int,
                   providers: int, types: tuple[str, ...] = CAMPAIGN_TYPES,
                   corpus: str = "train") -> tuple[World, list[Population], list[CampaignSpec]]:
    """All populations of one provider: its own benign customers plus the campaigns aimed at it."""
    world = World(seed, provider, f"p{provider}_" if providers > 1 else "", timeline, timeline.models(), corpus)
    pops: list[Population] = []
    for name, (n, budget) in benign_plan(scale, exchanges).items():
        pop = BENIGN[name](world)
        pop.build(n, budget)
        pops.append(pop)
    n_actors = min(2, scale.actors) if providers > 1 else scale.actors
    specs = plan_campaigns(scale, exchanges, timeline.days, n_actors,
                           provider_offset(provider, providers, timeline.days), types)
    actors = {name: make_actor(world, name) for name in sorted({s.actor for s in specs})}
    for spec in specs:
        campaign = CAMPAIGNS[spec.type](world, spec, actors[spec.actor])
        campaign.build(spec.n_accounts, spec.n_exchanges)
        pops.append(campaign)
    return world, pops, specs


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: a bijection, so distinct ordinals give distinct request ids."""
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


@dataclass
class DayStats:
    """What a provider run produced, accumulated day by day (for meta.json and the summary)."""

    per_account: np.ndarray
    first_ts: np.ndarray
    exchanges: int = 0
    files: list[Path] = field(default_factory=list)


DayResult = tuple[Path, np.ndarray, np.ndarray, np.ndarray]  # shard, accounts seen, their counts, first ts


class _Days:
    """Renders any single day of one provider on its own, so days can run in parallel processes."""

    def __init__(self, out: Path, world: World, pops: list[Population], compress: str) -> None:
        self.out, self.world, self.pops, self.compress = out, world, pops, compress
        self.accounts = [a for pop in pops for a in pop.accounts]
        self.offsets = np.cumsum([0] + [len(pop.accounts) for pop in pops])
        self.keys = np.array([xxhash.xxh64_intdigest(a.account_id.encode()) for a in self.accounts], np.uint64)
        self.salt = np.uint64(xxhash.xxh64_intdigest(f"{world.seed}:{world.provider}".encode()))

    def run(self, day: int, progress: Progress | None = None) -> DayResult:
        world = self.world
        writer = ShardWriter(self.out / "exchanges", self.compress)
        writer.open(world.timeline.day_name(day))
        per_pop = [(offset, pop.day_events(day, world.rng("day", pop.key, day)))
                   for offset, pop in zip(self.offsets, self.pops, strict=False)]
        chunks = [(offset, ev) for offset, ev in per_pop if ev is not None]
        empty = np.zeros(0, np.int64)
        if not chunks:
            writer.close()
            return writer.files[0], empty, empty, empty
        ts = np.concatenate([ev[1] for _, ev in chunks])
        order = np.argsort(ts, kind="stable")
        ts = ts[order]
        who = np.concatenate([ev[0] + offset for offset, ev in chunks])[order]
        tags = np.concatenate([ev[2] for _, ev in chunks])[order]
        model_idx = np.concatenate([ev[3] for _, ev in chunks])[order]
        ordinal = (np.uint64(day) << np.uint64(40)) + np.arange(ts.size, dtype=np.uint64)
        ids = _mix64(ordinal ^ self.salt)
        seeds = _mix64(self.keys ^ _mix64(np.array([day], np.uint64) ^ self.salt)).tolist()  # per account-day
        seen, first, counts = np.unique(who, return_index=True, return_counts=True)
        last = np.zeros(ts.size, bool)  # an account's last event of the day frees its stream
        last[ts.size - 1 - np.unique(who[::-1], return_index=True)[1]] = True
        streams: dict[int, tuple[random.Random, dict]] = {}
        for lo in range(0, ts.size, CHUNK):
            part = slice(lo, lo + CHUNK)
            writer.write(_render(self.accounts, streams, seeds, world.models, ts[part], who[part], tags[part],
                                 model_idx[part], ids[part], last[part]))
            if progress:
                progress(int(ts[part].size))
        writer.close()
        return writer.files[0], seen, counts, ts[first]


_JOB: _Days | None = None  # the job a worker process renders days of


def _worker_init(parent: int, job: bytes) -> None:
    """Tie the worker's life to the simulator's (as ingest's workers are) and unpickle its job once."""
    from distillguard.ingest.parallel import _worker_init as tie

    global _JOB
    tie(parent)
    _JOB = pickle.loads(job)


def _run_day(day: int) -> DayResult:
    assert _JOB is not None
    return _JOB.run(day)


def generate(out: Path, world: World, pops: list[Population], compress: str, progress: Progress | None = None,
             workers: int = 1) -> DayStats:
    """Write ``out/exchanges/<day>.jsonl[.zst|.gz]`` for every day of the span.

    With ``workers`` > 1 days are rendered by worker processes, each rendering any day from its own copy of
    the job; the bytes are the same either way. Workers come from a forkserver, never a fork of this
    process: the caller may hold threads (pytest's, DuckDB's), and a forked child can inherit a lock one of
    them held and wait on it forever.
    """
    job = _Days(out, world, pops, compress)
    n = len(job.accounts)
    stats = DayStats(np.zeros(n, np.int64), np.full(n, np.iinfo(np.int64).max))

    def merge(result: DayResult) -> None:
        path, seen, counts, first = result
        stats.per_account[seen] += counts
        np.minimum.at(stats.first_ts, seen, first)
        stats.exchanges += int(counts.sum())
        stats.files.append(path)

    days = range(world.timeline.days)
    if workers > 1 and len(days) > 1:
        from distillguard.ingest import parallel

        context = mp.get_context("forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn")
        if context.get_start_method() == "forkserver":
            context.set_forkserver_preload(["distillguard.ingest._forkserver_lifeline", parallel.__name__])
        with ProcessPoolExecutor(min(workers, len(days)), mp_context=context, initializer=_worker_init,
                                 initargs=(os.getpid(), pickle.dumps(job))) as pool:
            for result in pool.map(_run_day, days):  # in day order: merging is order-free, progress is smooth
                merge(result)
                if progress:
                    progress(int(result[2].sum()))
    else:
        for day in days:
            merge(job.run(day, progress))
    stats.files.sort()
    return stats


_UNSET = object()


def _render(accounts: list[Account], streams: dict[int, tuple[random.Random, dict]], seeds: list[int],
            models: tuple, ts: np.ndarray, who: np.ndarray, tags: np.ndarray, model_idx: np.ndarray,
            ids: np.ndarray, last: np.ndarray) -> bytearray:
    """Render events in timestamp order; each draws only from its own account-day stream and state.

    Lines go straight into one buffer: orjson's output objects keep a large spare capacity, so
    holding thousands of them would cost ~10x their size in memory.
    """
    stamps = np.datetime_as_string(ts.astype("datetime64[ms]"), unit="ms").tolist()
    out = bytearray()
    dumps, known, newline = orjson.dumps, streams.get, orjson.OPT_APPEND_NEWLINE
    for t, stamp, ai, tag, m, rid, done in zip(ts.tolist(), stamps, who.tolist(), tags.tolist(), model_idx.tolist(),
                                               ids.tolist(), last.tolist(), strict=True):
        acct = accounts[ai]
        stream = known(ai)
        if stream is None:
            stream = streams[ai] = (random.Random(seeds[ai]), {})
        if done:
            del streams[ai]
        r, state = stream
        behaviour = acct.behaviour
        model = models[m]
        run = turn_of(tag)[0]
        before = state.get(run, _UNSET)
        reply = behaviour.render(acct, tag, model, r, state)
        request, content, trace, calls = reply[0], reply[1], reply[2], reply[3]
        hexid = f"{rid:016x}"
        if r.random() < behaviour.error_rate:
            status, response, latency = ERRORS[int(r.random() * len(ERRORS))], None, 40 + int(r.random() * 400)
            # the client never got this response: its session goes on from where it was (it retries), never from
            # tool calls or an answer it did not receive
            if before is _UNSET:
                state.pop(run, None)
            else:
                state[run] = before
        else:
            status = 200
            response, latency = complete(request, model, t // 1000, hexid, r, content, trace, calls,
                                         reply[4] if len(reply) > 4 else None)
        keys = acct.keys
        out += dumps({
            "id": "req_" + hexid, "ts": stamp + "Z", "account_id": acct.account_id,
            "api_key_id": keys[int(r.random() * len(keys))] if len(keys) > 1 else keys[0], "org_id": acct.org_id,
            "client": acct.net.client(r), "endpoint": ENDPOINT, "request": request, "response": response,
            "status": status, "latency_ms": latency,
        }, option=newline)
    return out


def campaign_meta(specs: list[CampaignSpec], accounts: list[Account], stats: DayStats) -> list[dict]:
    out = []
    for spec in specs:
        idx = [i for i, a in enumerate(accounts) if a.campaign == spec.id]
        first = int(stats.first_ts[idx].min()) if idx else None
        out.append({"id": spec.id, "type": spec.type, "actor": spec.actor, "n_accounts": len(idx),
                    "n_exchanges": int(stats.per_account[idx].sum()) if idx else 0,
                    "first_ts": format_ts(first) if first is not None and first < np.iinfo(np.int64).max else None,
                    "start_day": spec.start_day, "end_day": spec.end_day})
    return out
