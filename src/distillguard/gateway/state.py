"""Where the gateway keeps what must outlive one request: budgets (GCRA TATs) and per-account scoring state.

``memory`` is one process's dicts; ``redis://`` shares budgets and scoring state
between gateway replicas, with the GCRA step done atomically by a server-side
script so two replicas cannot both spend the last unit of a budget.
"""

from __future__ import annotations

from typing import Protocol

from distillguard.errors import DistillguardError
from distillguard.gateway.throttle import Rate, charge, gcra


class StateError(DistillguardError, RuntimeError):
    """The state backend is unreachable; the policy's ``fail`` mode decides what happens."""


class StateBackend(Protocol):
    async def limit(self, key: str, now_ms: float, rate: Rate, cost: float = 1.0) -> tuple[bool, float]:
        """Take ``cost`` from the budget ``key``: ``(allowed, retry_after_ms)``."""
        ...

    async def charge(self, key: str, now_ms: float, rate: Rate, cost: float) -> None:
        """Charge ``cost`` after the fact (tokens used), possibly into debt."""
        ...

    async def get_blob(self, key: str) -> bytes | None: ...

    async def put_blob(self, key: str, value: bytes) -> None: ...

    async def close(self) -> None: ...


class MemoryState:
    """Single-process state: the default, and what replay uses."""

    shared = False

    def __init__(self) -> None:
        self.tats: dict[str, float] = {}
        self.blobs: dict[str, bytes] = {}

    async def limit(self, key: str, now_ms: float, rate: Rate, cost: float = 1.0) -> tuple[bool, float]:
        return self.limit_sync(key, now_ms, rate, cost)

    def limit_sync(self, key: str, now_ms: float, rate: Rate, cost: float = 1.0) -> tuple[bool, float]:
        allowed, tat, retry = gcra(self.tats.get(key), now_ms, rate, cost)
        if allowed:
            self.tats[key] = tat
        return allowed, retry

    async def charge(self, key: str, now_ms: float, rate: Rate, cost: float) -> None:
        self.charge_sync(key, now_ms, rate, cost)

    def charge_sync(self, key: str, now_ms: float, rate: Rate, cost: float) -> None:
        self.tats[key] = charge(self.tats.get(key), now_ms, rate, cost)

    async def get_blob(self, key: str) -> bytes | None:
        return self.blobs.get(key)

    async def put_blob(self, key: str, value: bytes) -> None:
        self.blobs[key] = value

    async def close(self) -> None:
        return None


# KEYS[1]=budget key; ARGV: now_ms, interval_ms, tolerance_ms, cost, mode (1 = limit, 0 = charge), ttl_ms
_GCRA_LUA = """
local tat = tonumber(redis.call('GET', KEYS[1]))
local now = tonumber(ARGV[1])
local base = now
if tat and tat > now then base = tat end
local new_tat = base + tonumber(ARGV[4]) * tonumber(ARGV[2])
if ARGV[5] == '1' then
  local allow_at = new_tat - tonumber(ARGV[3])
  if allow_at > now then return tostring(allow_at - now) end
end
redis.call('SET', KEYS[1], tostring(new_tat), 'PX', math.max(1, math.ceil(new_tat - now + tonumber(ARGV[6]))))
return '0'
"""


class RedisState:
    """Shared state for several replicas. Keys are prefixed so one Redis can serve several gateways."""

    shared = True
    blob_ttl_s = 3600  # shared risk fades if no replica refreshes it

    def __init__(self, url: str, prefix: str = "distillguard:", timeout_s: float = 0.25) -> None:
        import redis.asyncio as aioredis

        self.prefix = prefix
        self.client = aioredis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
        self._script = self.client.register_script(_GCRA_LUA)

    async def _run(self, key: str, now_ms: float, rate: Rate, cost: float, mode: str) -> float:
        from redis.exceptions import RedisError

        try:
            out = await self._script(keys=[self.prefix + "b:" + key],
                                     args=[now_ms, rate.interval_ms, rate.tolerance_ms, cost, mode, 60_000])
        except (RedisError, OSError) as exc:
            raise StateError(f"redis unavailable: {exc}") from exc
        return float(out)

    async def limit(self, key: str, now_ms: float, rate: Rate, cost: float = 1.0) -> tuple[bool, float]:
        retry = await self._run(key, now_ms, rate, cost, "1")
        return retry == 0.0, retry

    async def charge(self, key: str, now_ms: float, rate: Rate, cost: float) -> None:
        await self._run(key, now_ms, rate, cost, "0")

    async def get_blob(self, key: str) -> bytes | None:
        from redis.exceptions import RedisError

        try:
            return await self.client.get(self.prefix + "s:" + key)
        except (RedisError, OSError) as exc:
            raise StateError(f"redis unavailable: {exc}") from exc

    async def put_blob(self, key: str, value: bytes) -> None:
        from redis.exceptions import RedisError

        try:
            await self.client.set(self.prefix + "s:" + key, value, ex=self.blob_ttl_s)
        except (RedisError, OSError) as exc:
            raise StateError(f"redis unavailable: {exc}") from exc

    async def close(self) -> None:
        await self.client.aclose()


def open_state(spec: str) -> MemoryState | RedisState:
    """``memory`` or a ``redis://``/``rediss://``/``unix://`` URL."""
    if spec == "memory":
        return MemoryState()
    if spec.startswith(("redis://", "rediss://", "unix://")):
        return RedisState(spec)
    raise ValueError(f"--state: expected 'memory' or a redis:// URL, got {spec!r}")
