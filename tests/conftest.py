"""Shared fixtures: small canonical records written by hand, independent of the simulator."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest


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
