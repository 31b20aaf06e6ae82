"""Accounts, the population base class and the vectorised timing models they share.

A population decides three things for its accounts: who they are (identity and network), *when*
they send requests on a given day, and *what* each request says. Timing is drawn for all of a
population's accounts at once (numpy, one generator per (seed, provider, population, day)); text is
rendered one event at a time from a stream keyed by (seed, provider, account, day). Neither depends
on the order in which populations, accounts or days are visited.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import xxhash

from distillguard.simulate.config import DAY_MS, MINI, NEW, OLD, Model, Timeline
from distillguard.simulate.infra import Network, issuer_of


def _cdf(weights: list[float]) -> np.ndarray:
    w = np.cumsum(np.asarray(weights, dtype=float))
    return w / w[-1]


# Cumulative local-hour activity profiles (index = local hour), sampled by inverse CDF.
CURVES = {
    "human": _cdf([3, 2, 1, 1, 1, 1, 2, 4, 6, 7, 7, 7, 8, 8, 7, 7, 7, 8, 9, 10, 11, 11, 9, 6]),
    "student": _cdf([6, 4, 2, 1, 1, 1, 1, 2, 4, 6, 7, 7, 7, 7, 8, 8, 8, 8, 9, 10, 11, 12, 12, 9]),
    "work": _cdf([1, 1, 1, 1, 1, 1, 2, 4, 9, 12, 12, 11, 8, 11, 12, 12, 11, 9, 5, 3, 2, 2, 1, 1]),
    "app": _cdf([5, 4, 3, 3, 3, 3, 4, 6, 7, 8, 8, 8, 8, 8, 8, 8, 8, 8, 9, 9, 9, 8, 7, 6]),
    "flat": _cdf([1] * 24),
}


@dataclass(frozen=True)
class World:
    """What every population needs to know about the run it is part of."""

    seed: int
    provider: int  # 1-based
    prefix: str  # account-id prefix ("" for a single provider, "p2_" for provider-2)
    timeline: Timeline
    models: tuple[Model, ...]
    corpus: str = "train"  # which split of the odd-half ShareGPT corpus texts come from

    def rng(self, *keys: int | str) -> np.random.Generator:
        """A generator for one (provider, key...) scope: draws never collide between scopes."""
        return np.random.default_rng([self.seed, self.provider, *(key64(k) for k in keys)])

    def shared_rng(self, *keys: int | str) -> np.random.Generator:
        """Like :meth:`rng` but the same in every provider: actor infrastructure is shared."""
        return np.random.default_rng([self.seed, *(key64(k) for k in keys)])

    def ident(self, kind: str, *keys: int | str) -> str:
        h = xxhash.xxh3_64_hexdigest(":".join(map(str, (self.seed, self.provider, kind, *keys))).encode())
        return f"{kind}_{self.prefix}{h}"


def key64(value: int | str) -> int:
    return value if isinstance(value, int) else xxhash.xxh64_intdigest(value.encode())


@dataclass(slots=True, eq=False)
class Account:
    account_id: str
    behaviour: Population
    created_at: int
    email_domain: str
    payment_fp: str | None
    country: str
    signup_ip: str
    org_id: str
    tier: str
    verified: bool
    net: Network
    keys: tuple[str, ...]
    tz: float = 0.0
    p_mini: float = 0.0  # share of requests on the small model
    p_new: float = 0.9  # share on the new model once adopted
    adopt_ms: int = 0  # when the account starts using the new model
    shard: int = 0  # position in its group: coverage offset, round-robin slot
    sess: float = 0.0  # mean requests per session (0: the population's ``session_len``)
    gap: float = 0.0  # median seconds between requests of a session (0: the population's ``gap_s``)
    campaign: str = ""
    actor: str = ""
    profile: dict = field(default_factory=dict)  # fixed per-account choices (system prompt, language, ...)

    def record(self) -> dict:
        return {"account_id": self.account_id, "created_at": self.created_at, "email_domain": self.email_domain,
                "payment_fp": self.payment_fp, "country": self.country, "signup_ip": self.signup_ip,
                "org_id": self.org_id, "tier": self.tier, "verified": self.verified,
                "payment_issuer": issuer_of(self.payment_fp)}


# One population-day of events: owner (index into the population's accounts), ts (epoch ms),
# tag (population-defined int64: session/turn or coverage position), model index (int8).
Events = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
# request, content, reasoning_content, tool_calls[, the other choices of an ``n > 1`` request]
Reply = tuple[dict, str | None, str | None, list | None] | tuple[dict, str | None, str | None, list | None, list[str]]


def diurnal(rng: np.random.Generator, tz: np.ndarray, cdf: np.ndarray) -> np.ndarray:
    """Seconds into the UTC day for one event per entry of ``tz``, following a local-hour ``cdf``."""
    hours = np.searchsorted(cdf, rng.random(tz.size), side="right")
    return ((hours - tz) * 3600 + rng.random(tz.size) * 3600) % 86_400


def runs(rng: np.random.Generator, owner: np.ndarray, p_break: float | np.ndarray, gaps: np.ndarray,
         place: Callable[[np.ndarray, np.ndarray], np.ndarray], max_len: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Group each owner's events into runs (chat sessions, job bursts) and place them in the day.

    Events arrive grouped by owner. A run breaks at each owner's first event and with probability
    ``p_break`` elsewhere (mean length 1/p); ``gaps`` separate consecutive events of a run;
    ``place(first_index, span)`` returns each run's start second. Returns seconds (from the start of
    the day, unclipped) and tags ``run << 10 | turn << 1 | is_last``, run ids unique in the population-day.
    """
    n = owner.size
    start = np.ones(n, bool)
    start[1:] = (owner[1:] != owner[:-1]) | (rng.random(n - 1) < np.broadcast_to(p_break, n)[1:])
    run, first, turn = _segments(start)
    if (turn >= max_len).any():
        start |= turn % max_len == 0
        run, first, turn = _segments(start)
    gaps = np.where(start, 0.0, gaps)
    total = np.cumsum(gaps)
    offset = total - total[first][run]
    last_index = np.append(first[1:] - 1, n - 1)
    sec = place(first, offset[last_index])[run] + offset
    last = np.zeros(n, bool)
    last[last_index] = True
    return sec, (run << 10) | (np.minimum(turn, 511) << 1) | last


def _segments(start: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run id, index of each run's first event, and position within the run, from run-start flags."""
    run = np.cumsum(start) - 1
    first = np.flatnonzero(start)
    return run, first, np.arange(start.size) - first[run]


def turn_of(tag: int) -> tuple[int, int, bool]:
    """(run, turn, is_last) from a :func:`runs` tag."""
    return tag >> 10, (tag >> 1) & 511, bool(tag & 1)


def remember(state: dict, tag: int, messages: list, reply: dict, topic: object) -> None:
    """Keep a session's history for its next turn; forget it after the last one (bounded memory)."""
    run, _, last = turn_of(tag)
    if last:
        state.pop(run, None)
    else:
        state[run] = ([*messages, reply], topic)


class Population:
    """A behaviour shared by a set of accounts; subclasses say who they are, when and what they send."""

    name = ""
    label = "benign"
    campaign = ""  # campaign instance id and actor: ground truth for attackers, empty for benign
    actor_name = ""
    curve = CURVES["human"]
    weekend = 0.8  # weekend volume multiplier
    sigma = 1.0  # lognormal spread of per-account volume
    session_len = 1.0  # mean turns per session; 1 = single-turn
    gap_s = 60.0  # median seconds between turns of a session
    error_rate = 0.004
    adopt_days = 5.0  # mean delay after the release before an account moves to the new model
    burst = 0.0  # gamma shape of day-to-day activity (humans skip days and binge on others); 0 = steady

    def __init__(self, world: World) -> None:
        self.world = world
        self.tl = world.timeline
        self.key = self.name
        self.accounts: list[Account] = []
        self.rates = np.zeros((0, self.tl.days), np.float32)  # expected exchanges per account and day

    # --- who -------------------------------------------------------------------------------------
    def build(self, n: int, budget: float) -> list[Account]:
        """Make ``n`` accounts sharing ``budget`` expected exchanges over the span."""
        rng = self.world.rng("population", self.key)
        accounts = self.make_accounts(rng, n)
        for i, acct in enumerate(accounts):
            acct.shard, acct.campaign, acct.actor = i, self.campaign, self.actor_name
        self.finalise(rng, accounts, budget)
        return accounts

    def make_accounts(self, rng: np.random.Generator, n: int) -> list[Account]:
        raise NotImplementedError

    def factors(self, acct: Account, rng: np.random.Generator) -> np.ndarray:
        """Relative volume per day of the span (0 = inactive); weekends and sign-up date by default."""
        f = np.array([self.weekend if self.tl.weekday(d) >= 5 else 1.0 for d in range(self.tl.days)])
        if self.burst:
            f *= rng.gamma(self.burst, 1 / self.burst, self.tl.days)
        first = (acct.created_at - self.tl.start_ms) // DAY_MS + 1
        if first > 0:
            f[: int(first)] = 0
        return f

    def weights(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.lognormal(0, self.sigma, n)

    def finalise(self, rng: np.random.Generator, accounts: list[Account], budget: float) -> None:
        """Split ``budget`` over accounts (heavy-tailed) and days, draw model adoption, and keep the
        per-account parameters as arrays for the vectorised day loop."""
        w = self.weights(rng, len(accounts))
        w = w / w.sum()
        rates = np.zeros((len(accounts), self.tl.days), np.float32)
        for i, acct in enumerate(accounts):
            f = self.factors(acct, rng)
            total = f.sum()
            if total:
                rates[i] = budget * w[i] * f / total
            if not acct.adopt_ms:
                acct.adopt_ms = self.tl.release_ms + int(rng.exponential(self.adopt_days) * DAY_MS)
        self.accounts = accounts
        self.rates = rates
        self.tz = np.array([a.tz for a in accounts])
        self.p_mini = np.array([a.p_mini for a in accounts])
        self.p_new = np.array([a.p_new for a in accounts])
        self.adopt = np.array([a.adopt_ms for a in accounts], np.int64)
        self.shards = np.array([a.shard for a in accounts], np.int64)
        self.p_break = 1 / np.maximum([a.sess or self.session_len for a in accounts], 1.0)
        self.gap_med = np.array([a.gap or self.gap_s for a in accounts], float)
        self.before = np.concatenate([np.zeros((len(accounts), 1)), np.cumsum(rates, axis=1)], axis=1)

    # --- when ------------------------------------------------------------------------------------
    def day_events(self, day: int, rng: np.random.Generator) -> Events | None:
        """All of this population's events on ``day``: Poisson counts, then timing and models."""
        counts = rng.poisson(self.rates[:, day])
        if not counts.any():
            return None
        owner = np.repeat(np.arange(counts.size), counts)
        sec, tag = self.times(owner, day, rng)
        ts = self.tl.day_ms(day) + (sec * 1000).astype(np.int64)
        return owner, ts, tag, self.models(owner, ts, rng)

    def times(self, owner: np.ndarray, day: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        tz = self.tz[owner]
        if self.session_len <= 1 and (self.p_break >= 1).all():
            return diurnal(rng, tz, self.curve), np.zeros(owner.size, np.int64)

        def place(first: np.ndarray, span: np.ndarray) -> np.ndarray:
            return np.clip(diurnal(rng, tz[first], self.curve), 0, np.maximum(86_399 - span, 0))

        gaps = rng.lognormal(np.log(self.gap_med[owner]), 0.8, owner.size)
        sec, tag = runs(rng, owner, self.p_break[owner], gaps, place)
        return np.minimum(sec, 86_399.999), tag

    def models(self, owner: np.ndarray, ts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        u = rng.random(owner.size)
        mini = u < self.p_mini[owner]
        out = np.where(mini, MINI, OLD).astype(np.int8)
        adopted = ts >= self.adopt[owner]
        if adopted.any():
            out[adopted & ~mini & (rng.random(owner.size) < self.p_new[owner])] = NEW
        return out

    def positions(self, owner: np.ndarray, ts: np.ndarray, day: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Events re-ordered by (owner, ts) with each one's place in its account's systematic plan."""
        order = np.lexsort((ts, owner))
        owner, ts = owner[order], ts[order]
        first = np.searchsorted(owner, owner)
        base = self.before[owner, day].astype(np.int64) + self.shards[owner] * 7919
        return owner, ts, base + np.arange(owner.size) - first

    # --- what ------------------------------------------------------------------------------------
    def render(self, acct: Account, tag: int, model: Model, r: random.Random, state: dict) -> Reply:
        raise NotImplementedError
