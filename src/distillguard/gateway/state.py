"""Where the gateway keeps what must outlive one request: budgets (GCRA TATs) and per-account scoring state.

Backends are registered by URL scheme (:func:`register_state_backend`) and opened by :func:`open_state` from
``--state``: ``memory`` (or ``memory://``) is one process's dicts; ``redis://``, ``rediss://`` and
``unix://`` share budgets and scoring state between gateway replicas, with the GCRA step done atomically by a
server-side script so two replicas cannot both spend the last unit of a budget.

A backend implements :class:`StateBackend`; :class:`BaseState` gives the optional parts their defaults, and
:func:`check_state_backend` is the conformance check every backend passes (tests run it on memory and on a
real Redis)::

    @register_state_backend("etcd")
    class EtcdState(BaseState):
        shared = True

        @classmethod
        def from_url(cls, url: str) -> EtcdState: ...
        async def limit(self, key, now_ms, rate, cost=1.0): ...
        async def charge(self, key, now_ms, rate, cost): ...
        async def get_blob(self, key): ...
        async def put_blob(self, key, value): ...
"""

from __future__ import annotations

import asyncio
import inspect
import uuid
from collections.abc import Callable
from typing import Any, ClassVar, Protocol, Self, TypeVar, cast, runtime_checkable

from distillguard.errors import DistillguardError
from distillguard.gateway.registry import ConformanceError, Registry
from distillguard.gateway.throttle import Rate, charge, gcra


class StateError(DistillguardError, RuntimeError):
    """The state backend is unreachable; the policy's ``fail`` mode decides what happens."""


class StateConfigError(DistillguardError, ValueError):
    """``--state`` names no registered backend, or a backend's URL is invalid."""


@runtime_checkable
class StateBackend(Protocol):
    """Everything the gateway (engine, analysts' shared decisions, console) asks of its state."""

    @property
    def shared(self) -> bool:
        """Replicas see each other's budgets and blobs (risk and analysts' decisions are shared through it)."""
        ...

    @property
    def synchronous(self) -> bool:
        """``charge_sync`` works: the state is in this process, the proxy completes exchanges without a task."""
        ...

    async def limit(self, key: str, now_ms: float, rate: Rate, cost: float = 1.0) -> tuple[bool, float]:
        """Take ``cost`` from the budget ``key``: ``(allowed, retry_after_ms)``."""
        ...

    async def charge(self, key: str, now_ms: float, rate: Rate, cost: float) -> None:
        """Charge ``cost`` after the fact (tokens used), possibly into debt."""
        ...

    def charge_sync(self, key: str, now_ms: float, rate: Rate, cost: float) -> None:
        """:meth:`charge` without awaiting; only called when ``synchronous`` is true."""
        ...

    async def get_blob(self, key: str) -> bytes | None: ...

    async def put_blob(self, key: str, value: bytes) -> None: ...

    async def close(self) -> None: ...


class BaseState:
    """Defaults for the optional parts of :class:`StateBackend`: not shared, not synchronous, nothing to close."""

    shared: ClassVar[bool] = False
    synchronous: ClassVar[bool] = False

    @classmethod
    def from_url(cls, url: str) -> Self:
        """The backend for ``url`` (what :func:`open_state` calls); by default ``cls()``, ignoring the URL."""
        return cls()

    def charge_sync(self, key: str, now_ms: float, rate: Rate, cost: float) -> None:
        raise NotImplementedError(f"{type(self).__name__} is not synchronous: await charge()")

    async def close(self) -> None:
        return None


S = TypeVar("S", bound=type)
_BACKENDS: Registry[type] = Registry("state backend", "distillguard.state_backends")


def register_state_backend(*schemes: str) -> Callable[[S], S]:
    """Class decorator: ``open_state("SCHEME://...")`` builds the class with ``from_url(url)``."""
    return cast(Callable[[S], S], _BACKENDS.register(*schemes))  # the class comes back unchanged


def state_backends() -> dict[str, type]:
    """Registered backends by URL scheme."""
    return dict(_BACKENDS.items())


def unregister_state_backend(scheme: str) -> None:
    _BACKENDS.unregister(scheme)


@register_state_backend("memory")
class MemoryState(BaseState):
    """Single-process state: the default, and what replay uses."""

    synchronous = True

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


@register_state_backend("redis", "rediss", "unix")
class RedisState(BaseState):
    """Shared state for several replicas. Keys are prefixed so one Redis can serve several gateways."""

    shared = True
    blob_ttl_s = 3600  # shared risk fades if no replica refreshes it

    def __init__(self, url: str, prefix: str = "distillguard:", timeout_s: float = 0.25) -> None:
        import redis.asyncio as aioredis

        self.prefix = prefix
        self.client = aioredis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
        self._script = self.client.register_script(_GCRA_LUA)

    @classmethod
    def from_url(cls, url: str) -> RedisState:
        return cls(url)

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
            value = await self.client.get(self.prefix + "s:" + key)
        except (RedisError, OSError) as exc:
            raise StateError(f"redis unavailable: {exc}") from exc
        return value if value is None or isinstance(value, bytes) else str(value).encode()

    async def put_blob(self, key: str, value: bytes) -> None:
        from redis.exceptions import RedisError

        try:
            await self.client.set(self.prefix + "s:" + key, value, ex=self.blob_ttl_s)
        except (RedisError, OSError) as exc:
            raise StateError(f"redis unavailable: {exc}") from exc

    async def close(self) -> None:
        await self.client.aclose()


def open_state(spec: str) -> StateBackend:
    """The backend for ``spec``: ``memory`` or a URL whose scheme is registered (``redis://``, ``rediss://``,
    ``unix://``, ``memory://``, or a plug-in's)."""
    scheme = spec.split("://", 1)[0] if "://" in spec else spec
    backend: Any = _BACKENDS.get(scheme) if scheme else None
    if backend is None or ("://" not in spec and scheme != "memory"):
        raise StateConfigError(f"--state: expected 'memory' or a URL with a registered scheme "
                               f"({', '.join(s + '://' for s in _BACKENDS.names())}), got {spec!r}")
    opened: StateBackend = backend.from_url(spec)
    return opened


def check_state_backend(factory: Callable[[], Any]) -> None:
    """The conformance check every state backend passes (like scikit-learn's ``check_estimator``).

    ``factory()`` returns a new backend on the same store each time (for a shared backend: two calls are two
    replicas). Runs its own event loop; raises :class:`ConformanceError` naming the broken rule. Keys are
    unique per call, so a real server can be checked repeatedly.
    """
    asyncio.run(check_state_backend_async(factory))


async def check_state_backend_async(factory: Callable[[], Any]) -> None:
    """:func:`check_state_backend` inside a running event loop."""
    run = uuid.uuid4().hex[:12]
    a = await _maybe_await(factory())
    b = await _maybe_await(factory())
    try:
        await _check_backend(a, b, f"conformance-{run}:")
    finally:
        for backend in (a, b):
            await backend.close()


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


def _require(ok: bool, rule: str) -> None:
    if not ok:
        raise ConformanceError(rule)


async def _check_backend(a: Any, b: Any, ns: str) -> None:
    name = type(a).__name__
    _require(isinstance(a, StateBackend), f"{name}: does not implement StateBackend (limit, charge, charge_sync, "
                                          "get_blob, put_blob, close, shared, synchronous)")
    _require(isinstance(a.shared, bool) and isinstance(a.synchronous, bool),
             f"{name}: shared and synchronous are bools")
    # budgets: the GCRA of distillguard.gateway.throttle, step by step
    now = 1_000_000.0
    rate = Rate(per_minute=60, burst_s=3)
    tat: float | None = None
    for i in range(6):
        want, tat, want_retry = gcra(tat, now, rate)
        got, retry = await a.limit(ns + "r", now, rate)
        _require(isinstance(got, bool) and got == want and isinstance(retry, float | int)
                 and abs(retry - want_retry) < 1.0,
                 f"{name}.limit: request {i + 1} at 60/min with 3 s burst gave {(got, retry)}, GCRA gives "
                 f"{(want, want_retry)}")
    ok, _ = await a.limit(ns + "other", now, rate)
    _require(ok, f"{name}.limit: budgets of different keys are independent")
    ok, retry = await a.limit(ns + "r", now + 1000.0, rate)
    _require(ok and retry == 0, f"{name}.limit: a budget refills with time (one unit a second at 60/min)")
    # token charges after the fact, into debt; a zero-cost check is refused while in debt
    tokens = Rate(6000, 1)
    await a.charge(ns + "t", now, tokens, 500)
    ok, retry = await a.limit(ns + "t", now, tokens, cost=0)
    _require(not ok and abs(retry - 4000.0) < 1.0,
             f"{name}.charge: 500 tokens at 6,000/min then a zero-cost check gave {(ok, retry)}, want "
             "(False, 4000.0)")
    if a.synchronous:
        a.charge_sync(ns + "ts", now, tokens, 500)
        ok, retry = await a.limit(ns + "ts", now, tokens, cost=0)
        _require(not ok and abs(retry - 4000.0) < 1.0, f"{name}.charge_sync: charges like charge()")
    # blobs: bytes in, the same bytes out; None when absent; the last write wins
    _require(await a.get_blob(ns + "none") is None, f"{name}.get_blob: None for a key never written")
    await a.put_blob(ns + "blob", b"\x00first")
    await a.put_blob(ns + "blob", b"\x00second\xff")
    got_blob = await a.get_blob(ns + "blob")
    _require(type(got_blob) is bytes and got_blob == b"\x00second\xff",
             f"{name}.get_blob: returns the bytes last put, as bytes (got {got_blob!r})")
    # shared: a second backend from the factory (another replica) sees the same budgets and blobs; else not
    seen = await b.get_blob(ns + "blob")
    ok, _ = await b.limit(ns + "r", now, rate)
    if a.shared:
        _require(seen == b"\x00second\xff", f"{name}: shared, but a second replica does not see its blobs")
        _require(not ok, f"{name}: shared, but a second replica does not see its budgets")
    else:
        _require(seen is None and ok, f"{name}: not shared, yet a second instance sees the first one's state")
