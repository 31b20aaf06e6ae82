"""Security regressions for the hub's password checks: argon2id off the event loop, rehash of legacy hashes on
login, the same work for unknown user names, and a limit on failed attempts (finding 4, first bullet)."""

from __future__ import annotations

import statistics
import threading
import time
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.testclient import TestClient

from distillguard.intel.hub import create_app
from distillguard.intel.hub.config import check_password, hash_password
from test_intel_fixtures import PASSWORD, hub_config, member_keys
from test_intel_hub import database  # noqa: F401 - the SQLite / PostgreSQL fixture

TAXII = "application/taxii+json;version=2.1"


@pytest.fixture(scope="module")
def keys():
    return member_keys()


@pytest.fixture(scope="module")
def real_hash():
    return hash_password(PASSWORD)  # the hash `distillguard intel passwd` writes


@pytest.fixture()
def app(database, keys, real_hash):  # noqa: F811 - pytest fixture argument
    """A hub whose members have production-cost password hashes (the shared fixtures use cheap legacy ones)."""
    config = hub_config(keys, database, auth_failures_per_user=5)
    for member in config.members.values():
        member.password_hash = real_hash
    application = create_app(config)
    yield application
    application.state.hub.db.close()


def discovery(app, user: str, password: str = PASSWORD) -> httpx.Response:
    http = TestClient(app, base_url="http://hub", headers={"Accept": TAXII})
    return http.get("/taxii2/", auth=(user, password))


def test_argon2id_hashes_and_legacy_hashes_upgraded_on_login(database, keys):  # noqa: F811
    encoded = hash_password(PASSWORD)
    assert encoded.startswith("$argon2id$") and check_password(PASSWORD, encoded)
    assert not check_password("wrong", encoded)
    config = hub_config(keys, database)  # the shared fixtures' members have PBKDF2 hashes
    legacy = config.members["p1"].password_hash
    assert legacy.startswith("pbkdf2_sha256$")
    app = create_app(config)
    try:
        assert discovery(app, "p1", "wrong").status_code == 401
        assert config.members["p1"].password_hash == legacy  # a failed login changes nothing
        assert discovery(app, "p1").status_code == 200
        upgraded = config.members["p1"].password_hash
        assert upgraded.startswith("$argon2id$") and check_password(PASSWORD, upgraded)
        assert discovery(app, "p1").status_code == 200
    finally:
        app.state.hub.db.close()


def _median_failure_s(app, user: str, n: int = 5) -> float:  # 5: within the failed-login limit
    times = []
    for i in range(n):
        start = time.perf_counter()
        assert discovery(app, user, f"guess-{i}").status_code == 401
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def test_unknown_user_names_do_not_show_by_timing(app):
    known = _median_failure_s(app, "p1")
    unknown = _median_failure_s(app, "nobody-by-this-name")
    assert unknown > 0.5 * known, (unknown, known)  # the same hashing work, not a shortcut


@pytest.fixture()
def served(database, keys, real_hash):  # noqa: F811 - pytest fixture argument
    """The hub on a real socket (uvicorn, 127.0.0.1), failed-login limits out of the way."""
    config = hub_config(keys, database, auth_failures_per_ip=100_000, auth_failures_per_user=100_000)
    for member in config.members.values():
        member.password_hash = real_hash
    application = create_app(config)
    server = uvicorn.Server(uvicorn.Config(application, host="127.0.0.1", port=0, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "hub did not start within 10 s"
    yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}/taxii2/"
    server.should_exit = True
    thread.join(timeout=10)
    application.state.hub.db.close()


def test_password_checks_run_off_the_event_loop(served, monkeypatch):
    """While guessers' password checks run (made to take 0.4 s each here), a member already logged in is answered
    at once (the issue: PBKDF2 on the event loop took a member's p50 from 2 ms to 87 ms under 8 guessers)."""
    import distillguard.intel.hub.app as hub_app

    returns_pair = hasattr(hub_app, "verify_password")
    codes: list[int] = []
    checking = threading.Event()

    def slow(password: str, encoded: str) -> Any:
        checking.set()
        time.sleep(0.4)
        return (False, None) if returns_pair else False

    with httpx.Client(headers={"Accept": TAXII}, timeout=30) as http:
        assert http.get(served, auth=("p2", PASSWORD)).status_code == 200  # p2 has logged in before
        monkeypatch.setattr(hub_app, "verify_password", slow, raising=False)
        monkeypatch.setattr(hub_app, "check_password", slow, raising=False)  # the name before the fix

        guessers = [httpx.Client(headers={"Accept": TAXII}, timeout=30) for _ in range(4)]

        def guess(n: int) -> None:
            codes.append(guessers[n].get(served, auth=(f"p{n % 3 + 1}", f"guess-{n}")).status_code)

        threads = [threading.Thread(target=guess, args=(n,), daemon=True) for n in range(4)]
        for thread in threads:
            thread.start()
        assert checking.wait(10)  # a guess is being checked now
        start = time.perf_counter()
        assert http.get(served, auth=("p2", PASSWORD)).status_code == 200
        latency = time.perf_counter() - start
        for thread in threads:
            thread.join(timeout=10)
        for guesser in guessers:
            guesser.close()
    assert codes == [401] * 4
    assert latency < 0.2, latency


def test_failed_logins_are_limited(app):
    assert discovery(app, "p1").status_code == 200  # p1 logs in from this address before the attack
    for i in range(5):
        assert discovery(app, "p3", f"guess-{i}").status_code == 401
    r = discovery(app, "p3")  # even the right password: the attempt is refused without checking it
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0
    assert r.headers["content-type"].startswith("application/taxii+json") and r.json()["http_status"] == "429"
    for i in range(5):  # unknown names are limited the same way (no enumeration by lockout behaviour)
        assert discovery(app, "ghost", f"guess-{i}").status_code == 401
    assert discovery(app, "ghost").status_code == 429
    assert discovery(app, "p1").status_code == 200  # a member who logged in from here before is not locked out
    hub = app.state.hub
    hub._limiter.window_s = 0  # the window has passed
    assert discovery(app, "p3").status_code == 200
