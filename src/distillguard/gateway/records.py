"""Recording: every exchange the gateway serves, as a canonical record spooled to the store and folded into its
account's online state once the client has its answer (never on the request's critical path)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from typing import TYPE_CHECKING, Any

from distillguard.gateway.asgi import CHAT
from distillguard.gateway.engine import Decision, Engine
from distillguard.model import COLUMNS, FieldError, flatten, format_ts

if TYPE_CHECKING:
    from distillguard.gateway.spool import Spool

log = logging.getLogger("distillguard.gateway")


class Recorder:
    """The gateway's recording side: the spool (moved into the store every ``flush_every_s`` without blocking the
    event loop) and the engine's ``complete`` (online state, token charges), batched per loop iteration."""

    def __init__(self, engine: Engine, spool: Spool | None = None, flush_every_s: float = 5.0) -> None:
        self.engine = engine
        self.spool = spool
        self.flush_every_s = flush_every_s
        self._flusher: asyncio.Task | None = None
        self._background: set[asyncio.Task] = set()
        self._completions: list[tuple[Decision, dict[str, Any]]] = []

    async def start(self) -> None:
        if self.spool is not None and self.flush_every_s > 0:
            if self.spool.can_use_worker:
                # started from this (the main) thread: the worker's parent-death signal is tied to the thread
                # that started it, and a pool thread may exit before the gateway does
                await asyncio.wrap_future(self.spool.ingest_in_worker())
            self._flusher = asyncio.create_task(self._flush_loop())

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self.flush_every_s)
            await self.flush()

    async def flush(self) -> int:
        """Move spooled exchanges into the store without blocking the event loop."""
        if self.spool is None:
            return 0
        self.spool.rotate()
        try:
            if self.spool.can_use_worker:  # a child process: ingest never holds this process's GIL
                return await asyncio.wrap_future(self.spool.ingest_in_worker())
            return await asyncio.to_thread(self.spool.ingest_ready)
        except Exception:  # noqa: BLE001 - files stay in the spool and are retried next time
            return 0

    async def stop_flushing(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        self._flusher = None

    async def drain(self) -> None:
        """Wait for the exchanges being completed."""
        while self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    async def close(self) -> None:
        """Wait for the exchanges being completed, then close the spool."""
        await self.drain()
        if self.spool is not None:
            await asyncio.to_thread(self.spool.close)

    def record(self, record: dict[str, Any], decision: Decision, response: dict | None, status: int,
                started: float, request_row: dict[str, Any] | None = None, note: str | None = None) -> None:
        """Spool the exchange and fold it into online state, after the client has its answer."""
        row = finish_record(record, decision, response, status, started, request_row, note)
        if self.spool is not None:
            self.spool.append(record)
        try:
            if self.engine.complete_now(decision, row):  # in-process state: no task, no await
                return
        except Exception:  # noqa: BLE001 - online state must never fail a request already served
            log.exception("completing exchange %s failed", decision.id)
            return
        # one task completes every exchange finished in this loop iteration, not a task per request
        self._completions.append((decision, row))
        if len(self._completions) == 1:
            task = asyncio.ensure_future(self._complete_batch())
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _complete_batch(self) -> None:
        batch, self._completions = self._completions, []
        for decision, row in batch:
            try:
                await self.engine.complete(decision, row)
            except Exception:  # noqa: BLE001 - online state must never fail a request already served
                log.exception("completing exchange %s failed", decision.id)



def new_record(account: str, api_key_id: str | None, ip: str, user_agent: str | None, request: dict[str, Any],
               now_ms: int, org_id: str | None = None, exchange_id: str | None = None,
               endpoint: str = CHAT) -> dict[str, Any]:
    """The canonical exchange for a request (the response is added by :func:`finish_record`).

    Ids are unique per gateway process start (random prefix + counter: no ``uuid4`` syscall per request).
    """
    record: dict[str, Any] = {"id": exchange_id or "gw-" + uuid.uuid4().hex, "ts": format_ts(now_ms),
                              "account_id": account, "api_key_id": api_key_id,
                              "client": {"ip": ip, "user_agent": user_agent}, "endpoint": endpoint, "request": request}
    if org_id:
        record["org_id"] = org_id
    return record


def record_row(record: dict[str, Any]) -> dict[str, Any]:
    """The canonical record as a row dict (raises :class:`FieldError` on an invalid request)."""
    return dict(zip(COLUMNS, flatten(record), strict=True))


def finish_record(record: dict[str, Any], decision: Decision, response: dict | None, status: int,
                  started: float, request_row: dict[str, Any] | None = None, note: str | None = None
                  ) -> dict[str, Any]:
    """Complete the record with the upstream answer and the decision; returns its row.

    With ``request_row`` (the row the decision was made on) only the response side is flattened
    again (same ``flatten``, on the record without its request), saving a full flatten per exchange.
    """
    record["response"] = response
    record["status"] = status
    record["latency_ms"] = int((time.perf_counter() - started) * 1000)
    record["gateway"] = {"action": decision.action, "tier": decision.tier, "enforced": decision.enforced}
    if note:
        record["gateway"]["error"] = note  # e.g. the upstream cut the stream
    try:
        if request_row is None:
            return record_row(record)
        row = dict(request_row)
        row.update(zip(_AFTER, _after(flatten({**record, "request": None})), strict=True))
        return row
    except FieldError:
        record["response"] = None  # an upstream answer we cannot parse is not the client's fault
        return record_row(record)


# columns only the response fills: the rest is the request's (the replay blanks these for the pre-call decision)
RESPONSE_COLUMNS = ("response_text", "reasoning_text", "response_chars", "reasoning_chars", "n_tool_calls",
                    "finish_reason", "prompt_tokens", "completion_tokens", "reasoning_tokens", "status",
                    "latency_ms", "response_json", "issued_call")
_AFTER = (*RESPONSE_COLUMNS, "extra_json")  # ... and the decision, under extra_json
_AFTER_INDEX = [COLUMNS.index(c) for c in _AFTER]


def _after(values: tuple) -> list:
    return [values[i] for i in _AFTER_INDEX]
