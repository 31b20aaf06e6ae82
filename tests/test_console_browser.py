"""End to end in a real browser (Debian's chromium driven by Playwright): log in, filter, open a campaign, confirm
it, see a running gateway (distillguard's fake upstream, Redis shared state) refuse the account, escalate, export
the escalation package and verify its hashes; no request leaves 127.0.0.1.

Skips only when chromium (or Playwright) is absent and DISTILLGUARD_REQUIRE_BROWSER is unset (.ci/run sets it).
Set DISTILLGUARD_SCREENSHOTS=DIR to keep screenshots of the main pages (docs/screenshots was made this way).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from test_console_fixtures import PASSWORD, free_port, make_world, start_redis, wait_port

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
REQUIRE = bool(os.environ.get("DISTILLGUARD_REQUIRE_BROWSER"))
try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - only without the test extra
    sync_playwright = None
if REQUIRE:
    assert CHROMIUM, "DISTILLGUARD_REQUIRE_BROWSER is set but chromium is not installed"
    assert sync_playwright is not None, "DISTILLGUARD_REQUIRE_BROWSER is set but playwright is not installed"
    assert shutil.which("redis-server"), "DISTILLGUARD_REQUIRE_BROWSER is set but redis-server is not installed"
pytestmark = pytest.mark.skipif(not REQUIRE and (CHROMIUM is None or sync_playwright is None
                                                 or not shutil.which("redis-server")),
                                reason="chromium/playwright/redis-server not installed (.ci/run installs them)")
DISTILLGUARD = shutil.which("distillguard", path=str(Path(sys.executable).parent)) or "distillguard"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]

GATEWAY = """
import dataclasses, sys
from distillguard.gateway import server
from distillguard.gateway.analyst import SharedDecisions
from distillguard.gateway.app import Gateway
from distillguard.gateway.engine import Engine
from distillguard.gateway.policy import load_policy
from distillguard.gateway.scoring import FusedScorer
from distillguard.gateway.state import RedisState

upstream, redis_url, port, keys = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
policy = dataclasses.replace(load_policy(), mode="enforce")
state = RedisState(redis_url)
scorer = FusedScorer(policy=policy.decide, analyst=SharedDecisions(state, ttl_s=0.2))
engine = Engine(policy, scorer, state=state)
app = Gateway(upstream, engine, keys=dict(k.split("=", 1) for k in keys.split(",")), flush_every_s=0)
server.run(app, "127.0.0.1", port, server.ServerLimits(), lifespan="on", proxy_headers=False)
"""


def _spawn(args: list[str], **kw) -> subprocess.Popen:
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kw)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    root = tmp_path_factory.mktemp("console-browser")
    world = make_world(root)
    procs: list[subprocess.Popen] = []
    redis, redis_url = start_redis()
    procs.append(redis)
    try:
        import orjson

        campaigns = orjson.loads((world["det"] / "campaigns.json").read_bytes())["campaigns"]
        camp = max(campaigns, key=lambda c: len(c["accounts"]))
        attacker = camp["accounts"][0]
        bystander = "acct_bystander"
        up_port, gw_port, console_port = free_port(), free_port(), free_port()
        procs.append(_spawn([sys.executable, "-m", "uvicorn", "distillguard.gateway.fake_upstream:app", "--host",
                             "127.0.0.1", "--port", str(up_port), "--log-level", "warning"]))
        procs.append(_spawn([sys.executable, "-c", GATEWAY, f"http://127.0.0.1:{up_port}", redis_url, str(gw_port),
                             f"key-attacker={attacker},key-bystander={bystander}"]))
        data_dir = root / "console"
        env = {**os.environ, "DG_CONSOLE_PASSWORD": PASSWORD}
        for name, role in (("alice", "analyst"), ("lena", "lead")):
            subprocess.run([DISTILLGUARD, "console", "--data", str(data_dir), "user", name,
                            "--role", role], env=env, check=True, capture_output=True, timeout=60)
        procs.append(_spawn([DISTILLGUARD, "console", "--store", str(world["store"]),
                             "--detections", str(world["det"]), "--data", str(data_dir), "--state", redis_url,
                             "--port", str(console_port)]))
        for port in (up_port, gw_port, console_port):
            wait_port(port, 60)
        yield {"console": f"http://127.0.0.1:{console_port}", "gateway": f"http://127.0.0.1:{gw_port}",
               "campaign": camp, "attacker": attacker, "data": data_dir, "root": root}
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def _chat(gateway: str, key: str) -> int:
    r = httpx.post(f"{gateway}/v1/chat/completions", headers={"authorization": f"Bearer {key}"},
                   json={"model": "m", "messages": [{"role": "user", "content": "hi"}]}, timeout=10)
    return r.status_code


def test_confirm_in_the_browser_and_the_gateway_refuses(stack, tmp_path):
    shots = os.environ.get("DISTILLGUARD_SCREENSHOTS")
    base, gateway, camp = stack["console"], stack["gateway"], stack["campaign"]
    assert _chat(gateway, "key-attacker") == 200 and _chat(gateway, "key-bystander") == 200
    hosts: set[str] = set()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)

        def record(route):
            host = urlsplit(route.request.url).hostname or ""
            hosts.add(host)
            if host == "127.0.0.1":
                route.continue_()
            else:
                route.abort()

        context.route("**/*", record)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))

        def shot(name: str) -> None:
            if shots:
                Path(shots).mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(Path(shots) / f"{name}.png"), full_page=False)

        page.goto(f"{base}/campaigns")
        assert "/login" in page.url
        shot("login")
        page.fill("input[name=name]", "alice")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"{base}/campaigns")
        # filter the queues
        model = next(iter(camp["models"]))
        page.select_option("select[name=model]", model)
        page.click(".filters button[type=submit]")
        page.wait_for_url(f"**model={model}**")
        assert page.locator(f"#campaign-queue >> text={camp['id']}").count() == 1
        shot("campaigns")
        page.goto(f"{base}/accounts?verdict=flagged")
        page.fill("input[name=q]", stack["attacker"])
        page.click(".filters button[type=submit]")
        page.wait_for_url("**q=**")
        assert page.locator("#account-queue tr").count() == 2  # header + the account
        shot("accounts")
        # the campaign: graph drawn, infrastructure collapsible
        page.goto(f"{base}/campaigns/{camp['id']}")
        page.wait_for_function("() => window.dgGraph && window.dgGraph.nodes().length > 0")
        assert "accounts drawn as" in page.inner_text("#graph-stats")
        visible = page.evaluate("window.dgGraph.nodes(':visible').length")
        page.uncheck("#collapse-infra")
        assert page.evaluate("window.dgGraph.nodes(':visible').length") >= visible
        page.check("#collapse-infra")
        shot("campaign")
        # confirm: block
        page.select_option("form.decide select[name=action]", "confirm-block")
        page.fill("form.decide input[name=note]", "one card, one script, 40 accounts")
        page.click("form.decide button[name=go]")
        page.wait_for_url("**decided=1")
        assert "confirm-block" in page.inner_text("body")
        # the running gateway refuses the account (pushed through Redis), and only that account
        deadline, status = time.monotonic() + 10, 200
        while time.monotonic() < deadline and status != 403:
            status = _chat(gateway, "key-attacker")
            time.sleep(0.1)
        assert status == 403
        assert _chat(gateway, "key-bystander") == 200
        page.goto(f"{base}/accounts/{stack['attacker']}")
        shot("account")
        # escalate into a case; a lead exports the package
        page.goto(f"{base}/campaigns/{camp['id']}")
        page.fill("form[action$='/escalate'] input[name=note]", "refer to law enforcement")
        page.click("form[action$='/escalate'] button")
        page.wait_for_url("**/cases/case-*")
        case_url = page.url
        page.click("form[action='/logout'] button")
        page.wait_for_url("**/login")
        page.fill("input[name=name]", "lena")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"{base}/campaigns")
        page.goto(case_url)
        page.fill("form[action$='/export'] input[name=why]", "referral")
        page.click("form[action$='/export'] button")
        page.wait_for_selector("#package-link")
        shot("case")
        with page.expect_download() as download:
            page.click("#package-link")
        target = tmp_path / "package.zip"
        download.value.save_as(target)
        page.goto(f"{base}/audit")
        shot("audit")
        browser.close()
    from distillguard.cases.package import verify_package

    assert verify_package(target) == []
    assert not errors, errors
    assert hosts == {"127.0.0.1"}
