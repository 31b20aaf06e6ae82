"""``kill -9`` of the gateway CLI leaves no child behind: online scorer, spool ingest worker (and multiprocessing's
resource tracker), audit fsync helper. A real ``distillguard gateway`` process, a real SIGKILL."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from conftest import free_port

BIN = Path(sys.executable).parent
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def _descendants(pid: int) -> dict[int, str]:
    """Every process below ``pid`` (children of all its threads, recursively) -> its command line."""
    found: dict[int, str] = {}
    todo = [pid]
    while todo:
        current = todo.pop()
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{current}/task").iterdir():
                for child in (task / "children").read_text().split():
                    child_pid = int(child)
                    if child_pid not in found:
                        with contextlib.suppress(OSError):
                            found[child_pid] = Path(f"/proc/{child_pid}/cmdline").read_bytes().replace(
                                b"\0", b" ").decode(errors="replace")
                        todo.append(child_pid)
    return found


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status  # a zombie has exited


def test_kill_9_of_the_gateway_takes_every_child_with_it(tmp_path):
    keys = tmp_path / "keys.jsonl"
    keys.write_text('{"api_key": "sk-1", "account_id": "a"}\n')
    port = free_port()
    log = tmp_path / "gateway.log"
    gateway = subprocess.Popen(
        [str(BIN / "distillguard"), "gateway", "--upstream", f"http://127.0.0.1:{free_port()}", "--keys", str(keys),
         "--port", str(port), "--store", str(tmp_path / "store"), "--audit", str(tmp_path / "audit.jsonl")],
        stdout=log.open("wb"), stderr=subprocess.STDOUT)
    children: dict[int, str] = {}
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert gateway.poll() is None, log.read_text()[-3000:]
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            time.sleep(0.3)
        else:
            pytest.fail(f"the gateway did not start:\n{log.read_text()[-3000:]}")
        # started: the online scorer, the audit fsync helper, the spool worker (and the resource tracker)
        for _ in range(100):
            children = _descendants(gateway.pid)
            if sum(any(mark in cmd for cmd in children.values())
                   for mark in ("worker_entry", "syncer_main", "spawn_main", "resource_tracker")) == 4:
                break
            time.sleep(0.1)
        kinds = " | ".join(children.values())
        for mark in ("worker_entry", "syncer_main", "spawn_main", "resource_tracker"):
            assert mark in kinds, kinds

        os.kill(gateway.pid, signal.SIGKILL)
        gateway.wait(10)
        deadline = time.monotonic() + 15  # the watchdogs poll every 0.5 s at worst; the kernel's signal is at once
        while time.monotonic() < deadline and any(_alive(pid) for pid in children):
            time.sleep(0.1)
        survivors = {pid: cmd for pid, cmd in children.items() if _alive(pid)}
        assert survivors == {}, survivors
    finally:
        if gateway.poll() is None:
            gateway.kill()
            gateway.wait(10)
        for pid in children:  # never leave anything behind, even when the test fails
            if _alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
