"""Shared helpers for the console tests: a small simulated provider with detections from its ground truth."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

from click.testing import CliRunner

PASSWORD = "correct-horse-1"
ROLES = ("viewer", "analyst", "lead", "legal")


def make_world(root: Path, seed: int = 3) -> dict[str, Path]:
    """simulate (tiny) -> ingest -> detections made from the labels (every attack campaign a campaign)."""
    from distillguard.cli import main
    from distillguard.console.sample import labelled_detections

    runner = CliRunner()
    sim, store, det = root / "sim", root / "store", root / "det"
    result = runner.invoke(main, ["simulate", "--scale", "tiny", "--seed", str(seed), "--out", str(sim)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(main, ["ingest", str(sim / "exchanges"), "--accounts", str(sim / "accounts.jsonl"),
                                  "--store", str(store)])
    assert result.exit_code == 0, result.output
    labelled_detections(store, sim / "labels.csv", det)
    return {"sim": sim, "store": store, "det": det, "labels": sim / "labels.csv"}


def built(world: dict[str, Path], data_dir: Path, **kw):
    from distillguard.console import build

    b = build(world["store"], world["det"], data_dir=data_dir, **kw)
    for role in ROLES:
        b.auth.add_user(role, role, PASSWORD)
    b.auth.add_user("analyst2", "analyst", PASSWORD)
    return b


def login(client, name: str, password: str = PASSWORD):
    page = client.get("/login")
    token = re.search(r'name="login_token" value="([^"]+)"', page.text).group(1)
    response = client.post("/login", data={"name": name, "password": password, "login_token": token},
                           follow_redirects=False)
    return response


def csrf(client, path: str = "/campaigns") -> str:
    return re.search(r'name="csrf" value="([^"]+)"', client.get(path).text).group(1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port}")


def start_redis() -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([shutil.which("redis-server") or "/usr/bin/redis-server", "--port", str(port),
                             "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
    wait_port(port)
    return proc, f"redis://127.0.0.1:{port}/0"
