"""``kill -9`` of an ingest mid-run leaves no process behind: not the forkserver, not a worker (they used to
live on, ~600 MB, each holding a pipe that kept the others waiting)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from conftest import make_record

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process table in /proc")


def _session(sid: int) -> dict[int, str]:
    """Processes of session ``sid``: pid -> command line."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[3]) == sid and fields[0] != "Z":
            out[int(entry)] = cmdline
    return out


def _big_log(path: Path, megabytes: int) -> None:
    """A canonical log of Responses API lines (decoded in Python: slow enough to be caught mid-run)."""
    record = make_record(0, endpoint="/v1/responses")
    record["request"] = {"model": "o4-mini", "instructions": "Grade it.", "input": "Explain recursion. " * 20}
    record["response"] = {"status": "completed", "output": [{"type": "message", "content": [
        {"type": "output_text", "text": "Recursion is... " * 20}]}], "usage": {"input_tokens": 9, "output_tokens": 99}}
    line = orjson.dumps(record)
    block = b"".join(line.replace(b'"req_000000"', b'"r%07d"' % i) + b"\n" for i in range(20_000))
    with path.open("wb") as handle:
        for k in range(megabytes * 2**20 // len(block) + 1):
            handle.write(block.replace(b'"r', b'"%d-' % k))


def test_kill_9_leaves_no_worker_or_forkserver(tmp_path: Path) -> None:
    log = tmp_path / "big.jsonl"
    _big_log(log, 120)
    cli = shutil.which("distillguard", path=str(Path(sys.executable).parent)) or "distillguard"
    proc = subprocess.Popen([cli, "ingest", str(log), "--store", str(tmp_path / "store")], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            workers = [pid for pid, cmd in _session(proc.pid).items() if "multiprocessing.forkserver" in cmd]
            if len(workers) >= 3:  # the forkserver and two workers, parsing
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the ingest ended before its workers were seen: make the log bigger"
        assert len(workers) >= 3
        time.sleep(0.5)  # mid-block
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and (left := _session(proc.pid)):
            time.sleep(0.1)
        assert not left, f"still running after the ingest was killed: {left}"
    finally:
        for pid in _session(proc.pid):
            os.kill(pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
