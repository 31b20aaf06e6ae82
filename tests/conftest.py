"""Shared fixtures: small canonical records written by hand, independent of the simulator."""

from __future__ import annotations

import asyncio
import copy
import json
import random
import socket
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import pytest

if TYPE_CHECKING:
    import uvicorn


def make_record(i: int, account: str = "acct_1", **over: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": f"req_{i:06d}",
        "ts": f"2026-02-{2 + i % 3:02d}T10:{i % 60:02d}:00.000Z",
        "account_id": account,
        "api_key_id": "key_1",
        "client": {"ip": "203.0.113.7", "user_agent": "python-httpx/0.27", "asn": 14061, "country": "SG"},
        "endpoint": "/v1/chat/completions",
        "request": {
            "model": "aurora-2",
            "messages": [
                {"role": "system", "content": "You are helpful."},
                {"role": "user", "content": [{"type": "text", "text": f"Question {i}: explain recursion"},
                                             {"type": "image_url", "image_url": {"url": "data:,"}}]},
            ],
            "max_tokens": 4096,
            "temperature": 0.7,
        },
        "response": {
            "choices": [{"message": {"role": "assistant", "content": "Recursion is...",
                                     "reasoning_content": "Let me think."}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 20, "completion_tokens": 100, "total_tokens": 120,
                      "completion_tokens_details": {"reasoning_tokens": 40}},
        },
        "status": 200,
        "latency_ms": 1830,
    }
    record.update(over)
    return record


@pytest.fixture
def write_jsonl(tmp_path: Path) -> Callable[..., Path]:
    def write(name: str, lines: list[Any]) -> Path:
        path = tmp_path / name
        with path.open("wb") as handle:
            for line in lines:
                handle.write(line if isinstance(line, bytes) else orjson.dumps(line))
                handle.write(b"\n")
        return path

    return write


# values of every JSON kind, including the awkward ones, put in place of a field by the mutations
ODD_VALUES: list[Any] = [None, True, False, 0, -1, 7, 2**31, 2**63, -(2**63) - 1, 10**30, 1.5, "", "x", "é€😀",
                         "2026-02-02T10:00:00Z", [], [1], [{}], [{"type": "text", "text": 3}], {}, {"a": 1},
                         {"role": "user", "content": "q"}, [{"type": "text", "text": "a\u0000b"}]]


def mutated_lines(base: dict[str, Any], seed: int, count: int = 400) -> list[bytes]:
    """``count`` copies of ``base`` as JSON lines, each with 1-3 fields (at any depth) set to one of
    :data:`ODD_VALUES` or deleted, half of them with non-ASCII text escaped: for decoders that must agree."""
    rng = random.Random(seed)

    def paths(value: Any, prefix: tuple = ()) -> list[tuple]:
        out = [prefix]
        if isinstance(value, dict):
            for key, item in value.items():
                out += paths(item, prefix + (key,))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                out += paths(item, prefix + (index,))
        return out

    targets = [p for p in paths(base) if p]
    lines = []
    for _ in range(count):
        record = copy.deepcopy(base)
        for _ in range(rng.randint(1, 3)):
            path = rng.choice(targets)
            try:
                parent = record
                for key in path[:-1]:
                    parent = parent[key]
                if rng.random() < 0.15 and isinstance(path[-1], str):
                    parent.pop(path[-1], None)
                else:
                    parent[path[-1]] = copy.deepcopy(rng.choice(ODD_VALUES))
            except (KeyError, IndexError, TypeError, AttributeError):
                continue  # an earlier mutation removed the path
        lines.append(json.dumps(record, ensure_ascii=rng.random() < 0.5).encode())
    return lines


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (servers in tests bind there only)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def start_server(config: uvicorn.Config) -> tuple[uvicorn.Server, asyncio.Task]:
    """A uvicorn server running in this event loop, started (bounded wait: 5 s)."""
    import uvicorn

    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(500):
        if server.started:
            break
        await asyncio.sleep(0.01)
    assert server.started
    return server, task


def tiny_store(root: Path) -> Path:
    """A store of the simulator's ``tiny`` preset (seed 11, campaigns included) under ``root``; its directory."""
    from distillguard.ingest.pipeline import ingest
    from distillguard.simulate import simulate
    from distillguard.store import Store

    simulate(root / "sim", "tiny", seed=11)
    ingest([root / "sim" / "exchanges"], Store.open(root / "store"), accounts=root / "sim" / "accounts.jsonl")
    return root / "store"
