"""Analysts' decisions pushed by the console to running gateways through their shared state.

The console writes each decision as the blob ``analyst:<account_id>`` (an
:class:`~distillguard.decide.analyst.AnalystDecision` as JSON; an ``undo`` record removes it) on the same
:class:`~distillguard.gateway.state.StateBackend` the replicas share (Redis), and re-asserts the decisions in
force well within the backend's blob TTL. :class:`SharedDecisions` is the gateway's side: a provider for
:class:`~distillguard.gateway.scoring.FusedScorer`'s ``analyst`` argument.

The scorer is synchronous and the state is async, so the provider keeps a small in-process cache
(``ttl_s``): a call answers from the cache at once and, when the entry is stale, schedules a refresh on the
running event loop, so a decision reaches every replica within about ``ttl_s`` with no request waiting on
Redis. An engine that can await before scoring calls :meth:`SharedDecisions.fetch` first and sees the decision
on the very next request. Unreadable state keeps the last known decision (fail-safe both ways: a confirmed
account stays confirmed during a Redis outage, and an undo is not lost, only delayed).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

import orjson

from distillguard.decide.analyst import AnalystDecision, DecisionsError

PREFIX = "analyst:"


def blob_key(account_id: str) -> str:
    return PREFIX + account_id


def encode(decision: AnalystDecision) -> bytes:
    return orjson.dumps(decision.to_json())


def decode(blob: bytes | None) -> AnalystDecision | None:
    """The decision in force from a blob (None for no blob, an undo or an unreadable blob)."""
    if not blob:
        return None
    try:
        decision = AnalystDecision.from_json(orjson.loads(blob), "shared state")
    except (orjson.JSONDecodeError, DecisionsError):
        return None
    return None if decision.action == "undo" else decision


class SharedDecisions:
    """``analyst`` provider for FusedScorer: the decision in force for an account, from the shared state."""

    def __init__(self, state: Any, ttl_s: float = 1.0, clock: Callable[[], float] = time.monotonic,
                 max_entries: int = 200_000) -> None:
        self.state = state
        self.ttl_s = ttl_s
        self._clock = clock
        self.max_entries = max_entries
        self._cache: dict[str, tuple[float, AnalystDecision | None]] = {}
        self._pending: dict[str, asyncio.Task] = {}

    def __call__(self, account_id: str) -> AnalystDecision | None:
        now = self._clock()
        cached = self._cache.get(account_id)
        if cached is None or now - cached[0] >= self.ttl_s:
            self._schedule(account_id)
        return cached[1] if cached is not None else None

    def _schedule(self, account_id: str) -> None:
        if account_id in self._pending:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a synchronous caller): the cache is all there is
            return
        task = loop.create_task(self.fetch(account_id))
        self._pending[account_id] = task
        task.add_done_callback(lambda _t: self._pending.pop(account_id, None))

    async def fetch(self, account_id: str) -> AnalystDecision | None:
        """Read the account's blob now (when the cache is stale) and cache it."""
        now = self._clock()
        cached = self._cache.get(account_id)
        if cached is not None and now - cached[0] < self.ttl_s:
            return cached[1]
        try:
            blob = await self.state.get_blob(blob_key(account_id))
        except Exception:  # noqa: BLE001 - state unreachable: keep the last known decision, retry next time
            return cached[1] if cached is not None else None
        decision = decode(blob)
        if len(self._cache) >= self.max_entries:
            self._cache.clear()
        self._cache[account_id] = (now, decision)
        return decision

    async def close(self) -> None:
        for task in list(self._pending.values()):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


async def push(state: Any, decision: AnalystDecision) -> None:
    """Write one decision (an undo included) to the shared state, for every replica's :class:`SharedDecisions`."""
    await state.put_blob(blob_key(decision.account_id), encode(decision))
