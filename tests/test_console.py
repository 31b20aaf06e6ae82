"""The analyst console through HTTP (Starlette's TestClient): sessions and CSRF, queues, decisions that reach the
gateways' shared state and the decisions file, dismissals as labels, the append-only audit log, cases (merge,
criteria) and the escalation package (hashes, STIX, CASE/UCO validated with case-utils)."""

from __future__ import annotations

import asyncio
import csv
import io
import os
import shutil
import sqlite3
import subprocess
import sys
import uuid
import zipfile
from pathlib import Path

import numpy as np
import orjson
import pytest
from starlette.testclient import TestClient

from distillguard.console.data import _EMAIL, _IP, Filters
from distillguard.decide import Record, decide
from distillguard.decide.analyst import columns, load_decisions
from test_console_fixtures import PASSWORD, built, csrf, login, make_world


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return make_world(tmp_path_factory.mktemp("console-world"))


@pytest.fixture()
def app(world, tmp_path):
    b = built(world, tmp_path / "console", state="memory")
    yield b
    b.db.close()


def client_for(b, role: str) -> TestClient:
    c = TestClient(b.app, base_url="http://127.0.0.1")
    assert login(c, role).status_code == 303
    return c


def attackers(b) -> list[str]:
    return [r[0] for r in b.data._q("SELECT account_id FROM acc WHERE verdict = 'block' ORDER BY risk DESC, "
                                    "account_id")]


def test_login_sessions_and_csrf(app):
    c = TestClient(app.app, base_url="http://127.0.0.1")
    assert c.get("/campaigns", follow_redirects=False).headers["location"].startswith("/login")
    assert login(c, "lead", "wrong-password").status_code == 401
    r = login(c, "lead")
    assert r.status_code == 303
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    assert c.get("/campaigns").status_code == 200
    cid = next(iter(app.data.campaigns))
    # no CSRF token, a wrong one, or another origin: refused, nothing recorded
    assert c.post(f"/campaigns/{cid}/decide", data={"action": "dismiss", "note": "x"}).status_code == 403
    wrong = {"action": "dismiss", "note": "x", "csrf": "nope"}
    assert c.post(f"/campaigns/{cid}/decide", data=wrong).status_code == 403
    token = csrf(c)
    assert c.post(f"/campaigns/{cid}/decide", data={"action": "dismiss", "note": "x", "csrf": token},
                  headers={"origin": "http://evil.example"}).status_code == 403
    assert app.db.decisions() == []
    # the login form is CSRF-protected too
    assert c.post("/login", data={"name": "lead", "password": PASSWORD, "login_token": "forged"}).status_code == 403
    # sessions expire: idle, and absolutely
    token_cookie = c.cookies.get("dg_session")
    assert app.auth.session(token_cookie) is not None
    import time

    assert app.auth.session(token_cookie, now=time.time() + app.auth.idle_s + 1) is None
    assert app.auth.session(token_cookie) is None  # an expired session is gone for good
    assert c.get("/campaigns", follow_redirects=False).status_code == 303
    actions = [e.action for e in app.db.audit_entries()]
    assert "login-failed" in actions and "login" in actions
    # security headers: nothing but this origin
    r = c.get("/login")
    assert "default-src 'self'" in r.headers["content-security-policy"] and r.headers["x-frame-options"] == "DENY"


def test_queues_filters_and_search(app):
    c = client_for(app, "viewer")
    blocked = attackers(app)
    page = c.get("/accounts?verdict=block").text
    assert all(a in page for a in blocked[:20])
    assert "v-allow" not in page
    cid, camp = next(iter(app.data.campaigns.items()))
    page = c.get(f"/accounts?campaign={cid}").text
    assert all(a in page for a in camp["accounts"])
    account = camp["accounts"][0]
    info = app.data.account(account)
    for q in (account, info["keys"][0], info["ips"][0], info["payment_fp"]):
        rows, _ = app.data.account_queue(Filters(q=q))
        assert account in [r["account_id"] for r in rows], q
        assert account in c.get("/accounts", params={"q": q}).text
    assert cid in c.get("/campaigns", params={"q": account}).text
    model = next(iter(camp["models"]))
    assert cid in c.get("/campaigns", params={"model": model}).text
    assert "No campaign matches" in c.get("/campaigns", params={"until": "1999-01-01"}).text
    assert "No account matches" in c.get("/accounts", params={"since": "2099-01-01"}).text
    tier = app.data.tiers[0]
    page = c.get("/accounts", params={"tier": tier}).text
    assert page.count(f"<td>{tier}</td>") >= 1


def test_campaign_page_graph_and_timeline(app):
    c = client_for(app, "viewer")
    cid = max(app.data.campaigns, key=lambda k: len(app.data.campaigns[k]["accounts"]))
    page = c.get(f"/campaigns/{cid}").text
    for part in ("Evidence graph", "Timeline", "Capability coverage", "Models", "Infrastructure",
                 "Matched shared intel", "Member accounts", "gaps are hours without traffic"):
        assert part in page
    assert "withheld for your role" in page or "Repeated templates" not in page
    g = c.get(f"/campaigns/{cid}/graph.json").json()
    assert g["accounts"] == len(app.data.campaigns[cid]["accounts"])
    # readable: hubs stand for shared evidence, no edge between two accounts
    ids = {e["data"]["id"]: e for e in g["elements"] if "source" not in e["data"]}
    edges = [e["data"] for e in g["elements"] if "source" in e["data"]]
    assert all(ids[e["target"]]["classes"].startswith("hub") for e in edges)
    assert len(edges) <= g["account_nodes"] * max(g["hubs"], 1) + g["account_nodes"]


def test_evidence_graph_stays_small_at_hundreds_of_accounts():
    from distillguard.console.data import evidence_graph

    accounts = [f"a{i:03d}" for i in range(400)]
    edges = [(i, j, "shared_payment", 1.0) for i in range(0, 400, 100) for j in range(i + 1, i + 100)]
    edges += [(i, i + 1, "synchronised_activity", 1.0) for i in range(399)]
    edges += [(i, j, "shared_ip_prefix", 1.0) for i in range(0, 400, 200) for j in range(i + 1, i + 200)]
    g = evidence_graph(accounts, edges)
    assert g["accounts"] == 400
    assert g["account_nodes"] <= 10 and g["hubs"] == 4 + 1 + 2  # 4 cards, 1 sync group, 2 prefixes
    assert len(g["elements"]) < 60  # instead of ~40k pairwise edges
    assert any("infra-collapsed" in e.get("classes", "") for e in g["elements"])


def test_confirm_reaches_gateways_and_undo_lifts_it(app):
    from distillguard.gateway.analyst import SharedDecisions
    from distillguard.gateway.scoring import FusedScorer

    c = client_for(app, "analyst")
    cid, camp = next(iter(app.data.campaigns.items()))
    r = c.post(f"/campaigns/{cid}/decide", data={"action": "confirm-block", "note": "same card, same script",
                                                  "csrf": csrf(c)}, follow_redirects=False)
    assert r.status_code == 303
    state = app.console.state
    shared = SharedDecisions(state, ttl_s=0.0)
    account = camp["accounts"][0]
    decision = asyncio.run(shared.fetch(account))
    assert decision is not None and decision.action == "confirm-block" and decision.analyst == "analyst"
    verdict = FusedScorer(analyst=lambda a: decision if a == account else None).score(account, {}, 0).verdict
    assert verdict == "block"
    on_file = load_decisions(app.console.decisions_out)  # what detect/gateway --decisions read
    assert set(camp["accounts"]) <= set(on_file) and on_file[account].points > 0
    assert c.get("/decisions.jsonl").content == app.console.decisions_out.read_bytes()
    # every decision audited, one entry per account plus the campaign
    targets = {e.target for e in app.db.audit_entries(limit=1000) if e.action == "decision:confirm-block"}
    assert {f"account:{a}" for a in camp["accounts"]} | {f"campaign:{cid}"} <= targets
    c.post(f"/accounts/{account}/decide", data={"action": "undo", "note": "wrong call", "csrf": csrf(c)})
    assert asyncio.run(SharedDecisions(state, ttl_s=0.0).fetch(account)) is None
    assert account not in load_decisions(app.console.decisions_out)
    assert "wrong call" in c.get(f"/accounts/{account}").text  # the history keeps both


def test_dismiss_is_a_label_and_an_exemption(app):
    c = client_for(app, "analyst")
    fp = [r[0] for r in app.data._q("SELECT account_id FROM acc WHERE verdict = 'throttle'")][0]
    bad = attackers(app)[0]
    c.post(f"/accounts/{fp}/decide", data={"action": "dismiss", "note": "known customer", "csrf": csrf(c)})
    c.post(f"/accounts/{bad}/decide", data={"action": "confirm-throttle", "note": "harvesting", "csrf": csrf(c)})
    rows = list(csv.DictReader(io.StringIO(c.get("/labels.csv").text)))
    assert {(r["account_id"], r["label"]) for r in rows} == {(fp, "benign"), (bad, "attack")}
    decisions = load_decisions(app.console.decisions_out)
    action, points, families = columns([fp], decisions)
    # the decision stage holds the dismissed account below throttle on the same evidence, re-judges on more
    row = app.data.account(fp)
    fams = {k: np.array([v]) for k, v in row["points"].items() if k != "coordination"}
    same = decide(Record(np.array([50.0]), fams, analyst=action, analyst_points=points, analyst_families=families))
    assert same.verdicts[0] in ("allow", "watch")
    more = {k: v + 3.0 for k, v in fams.items()}
    grown = decide(Record(np.array([50.0]), more, analyst=action, analyst_points=points, analyst_families=families))
    assert grown.verdicts[0] in ("throttle", "block") and "re-judged" in " ".join(grown.reasons[0])


def test_reveal_raw_content_is_audited_and_role_bound(app):
    account = attackers(app)[0]
    viewer = client_for(app, "viewer")
    assert "characters withheld" in viewer.get(f"/accounts/{account}").text
    assert viewer.post(f"/accounts/{account}/reveal", data={"why": "x", "csrf": csrf(viewer)}).status_code == 403
    analyst = client_for(app, "analyst")
    r = analyst.post(f"/accounts/{account}/reveal", data={"why": "", "csrf": csrf(analyst)})
    assert r.status_code == 400  # a reason is required
    r = analyst.post(f"/accounts/{account}/reveal", data={"why": "check the prompts", "csrf": csrf(analyst)})
    assert r.status_code == 200 and 'class="raw"' in r.text
    views = [e for e in app.db.audit_entries(f"account:{account}") if e.action == "view-content"]
    assert views and views[0].actor == "analyst" and views[0].why == "check the prompts"
    assert views[0].detail["exchanges"]


def test_audit_log_is_append_only_and_chained(app, tmp_path):
    app.db.audit("lead", "lead", "test", "x", "why", {"a": 1})
    app.db.add_decisions([{"at": "2026-01-01T00:00:00Z", "account_id": "a", "action": "dismiss"}], [])
    app.db.add_case_events([("case-0001", "lead", "open", "why", {"title": "t"})], [])
    assert app.db.verify_audit()[0]
    raw = sqlite3.connect(app.db.url[len("sqlite:///"):] if app.db.url.startswith("sqlite") else app.db.url)
    for sql in ("UPDATE dg_console_audit SET why = 'edited'", "DELETE FROM dg_console_audit",
                "DELETE FROM dg_console_decisions", "UPDATE dg_console_case_events SET why = 'x'"):
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            raw.execute(sql)
    # an edit made behind the database's back (trigger dropped) shows in the chain
    raw.execute("DROP TRIGGER dg_console_audit_no_update")
    raw.execute("UPDATE dg_console_audit SET why = 'edited' WHERE seq = (SELECT max(seq) FROM dg_console_audit)")
    raw.commit()
    ok, _, problem = app.db.verify_audit()
    assert not ok and "altered" in problem
    raw.close()


def test_cases_merge_criteria_and_history(app):
    lead = client_for(app, "lead")
    a1, a2 = client_for(app, "analyst"), client_for(app, "analyst2")
    c1, c2 = sorted(app.data.campaigns)[:2]
    r = lead.post("/cases", data={"title": "actor A", "campaigns": c1, "why": "start", "csrf": csrf(lead)},
                  follow_redirects=False)
    case_a = r.headers["location"].rsplit("/", 1)[1]
    r = a1.post(f"/campaigns/{c2}/escalate", data={"note": "same templates", "csrf": csrf(a1)}, follow_redirects=False)
    case_b = r.headers["location"].rsplit("/", 1)[1]
    assert case_a != case_b
    page = lead.get(f"/cases/{case_a}").text
    assert "confirmed by two analysts" in page and "Not ready" in page
    for c in (a1, a2):
        c.post(f"/campaigns/{c1}/decide", data={"action": "confirm-block", "note": "confirmed", "csrf": csrf(c)})
    ready, results = app.console.criteria(app.console.cases()[case_a])
    met = {r.criterion.kind: r.met for r in results}
    assert met["confirmed_by"] and "analyst, analyst2" in results[0].measured
    # merge: both histories keep an entry, the survivor records where things came from
    assert lead.post(f"/cases/{case_b}/merge", data={"into": case_b, "why": "x", "csrf": csrf(lead)}).status_code == 400
    assert lead.post(f"/cases/{case_b}/merge", data={"into": case_a, "why": "", "csrf": csrf(lead)}).status_code == 400
    r = lead.post(f"/cases/{case_b}/merge", data={"into": case_a, "why": "one actor", "csrf": csrf(lead)})
    assert r.status_code == 200
    cases = app.console.cases()
    assert cases[case_b].state == "merged" and cases[case_b].merged_into == case_a
    assert cases[case_a].campaigns == {c1: "", c2: case_b}
    assert [e["kind"] for e in cases[case_b].history][-1] == "merge-into"
    assert [e["kind"] for e in cases[case_a].history][-1] == "absorb"
    # a merged case cannot change any more; every state change needs a reason and is logged
    r = lead.post(f"/cases/{case_b}/change", data={"kind": "note", "why": "late", "csrf": csrf(lead)})
    assert r.status_code == 400 and "merged into" in r.text
    assert lead.post(f"/cases/{case_a}/change", data={"kind": "state", "to": "closed", "why": "",
                                                     "csrf": csrf(lead)}).status_code == 400
    lead.post(f"/cases/{case_a}/change", data={"kind": "state", "to": "review", "why": "ready", "csrf": csrf(lead)})
    events = app.db.case_events()
    audit = [e for e in app.db.audit_entries(limit=1000) if e.action.startswith("case:")]
    assert len(audit) == len(events)  # every case event has its audit entry
    # the legal role cannot decide on accounts
    legal = client_for(app, "legal")
    assert legal.post(f"/campaigns/{c1}/decide", data={"action": "dismiss", "note": "x",
                                                       "csrf": csrf(legal)}).status_code == 403


def test_escalation_criteria_policy_errors(tmp_path):
    from distillguard.cases.criteria import CriteriaError, load_policy

    bad = tmp_path / "p.yaml"
    bad.write_text("escalation:\n  criteria:\n    - {name: a, kind: confirmed_by}\n    - {name: b, kind: nope}\n")
    with pytest.raises(CriteriaError, match=r"p.yaml:4: escalation.criteria\[1\].kind"):
        load_policy(bad)
    good = tmp_path / "g.yaml"
    good.write_text("escalation:\n  require: 1\n  criteria:\n    - {name: cyber, kind: targets_capability, "
                    "capabilities: [coding], min_share: 0.3}\n")
    assert load_policy(good).needed() == 1


def test_escalation_package_hashes_stix_and_case_uco(app, tmp_path):
    lead = client_for(app, "lead")
    cid = sorted(app.data.campaigns)[0]
    r = lead.post(f"/campaigns/{cid}/escalate", data={"note": "to police", "csrf": csrf(lead)}, follow_redirects=False)
    case_id = r.headers["location"].rsplit("/", 1)[1]
    r = lead.post(f"/cases/{case_id}/export", data={"audience": "law-enforcement", "why": "referral",
                                                     "csrf": csrf(lead)}, follow_redirects=False)
    assert r.status_code == 303
    page = lead.get(r.headers["location"]).text
    link = page.split('id="package-link" href="', 1)[1].split('"', 1)[0]
    blob = lead.get(link).content
    path = tmp_path / "package.zip"
    path.write_bytes(blob)
    from distillguard.cases.package import verify_package

    assert verify_package(path) == []
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        top = names[0].split("/")[0]
        assert {f"{top}/{n}" for n in ("summary.html", "summary.pdf", "stix-bundle.json", "custody.jsonl",
                                        "case-uco.jsonld", "manifest.json", "SHA256SUMS")} <= set(names)
        assert zf.read(f"{top}/summary.pdf").startswith(b"%PDF")
        exhibits = [n for n in names if "/exhibits/" in n]
        assert exhibits
        for n in exhibits:
            text = zf.read(n).decode()
            assert not _EMAIL.search(text) and not _IP.search(text)  # redacted
        bundle = orjson.loads(zf.read(f"{top}/stix-bundle.json"))
        custody = [orjson.loads(x) for x in zf.read(f"{top}/custody.jsonl").splitlines()]
        zf.extract(f"{top}/case-uco.jsonld", tmp_path)
    assert custody[-1]["what"] == "export-package" and any(s["what"] == "case:open" for s in custody)
    from stix2validator import ValidationOptions, validate_instance

    assert validate_instance(bundle, ValidationOptions(strict=False)).is_valid
    # CASE/UCO provenance validates against the ontology (case-utils)
    validator = shutil.which("case_validate") or str(Path(sys.executable).parent / "case_validate")
    out = subprocess.run([validator, str(tmp_path / top / "case-uco.jsonld")], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    # the export is in the case's history and the audit log with the zip's hash
    case = app.console.cases()[case_id]
    assert case.exports and case.exports[0]["sha256"] == __import__("hashlib").sha256(blob).hexdigest()
    # a tampered package fails verification
    tampered = tmp_path / "tampered.zip"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(tampered, "w") as dst:
        for n in src.namelist():
            data = src.read(n)
            dst.writestr(n, data + b" " if n.endswith("stix-bundle.json") else data)
    assert any("stix-bundle.json" in p for p in verify_package(tampered))


POSTGRES_URL = os.environ.get("DISTILLGUARD_POSTGRES_URL")


@pytest.mark.skipif(not POSTGRES_URL and not os.environ.get("DISTILLGUARD_REQUIRE_POSTGRES"),
                    reason="DISTILLGUARD_POSTGRES_URL not set (.ci/run starts a PostgreSQL server)")
def test_postgres_backend_is_append_only_too():
    import psycopg

    from distillguard.console.db import ConsoleDB

    schema = f"dg_console_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as con:
        con.execute(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in POSTGRES_URL else "?"
    url = f"{POSTGRES_URL}{sep}options=-csearch_path%3D{schema}"
    try:
        db = ConsoleDB(url)
        db.put_user("a", "lead", "hash")
        db.audit("a", "lead", "x", "t", "why")
        db.add_decisions([{"at": "2026-01-01T00:00:00Z", "account_id": "acct", "action": "dismiss"}],
                         [("a", "lead", "decision:dismiss", "account:acct", "w", {}, "")])
        db.add_case_events([("case-0001", "a", "open", "w", {"title": "t"})], [])
        assert db.verify_audit()[:2] == (True, 2)
        assert db.decisions()[0]["account_id"] == "acct" and db.case_events()[0]["kind"] == "open"
        with psycopg.connect(url, autocommit=True) as con:
            for sql in ("UPDATE dg_console_audit SET why = 'x'", "DELETE FROM dg_console_decisions"):
                with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
                    con.execute(sql)
        db.close()
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as con:
            con.execute(f"DROP SCHEMA {schema} CASCADE")


def test_train_on_analyst_labels(world, tmp_path):
    from distillguard.cases.labels import analyst_rows, fit_analyst
    from distillguard.detect.model import Model

    present = {r["account_id"] for r in csv.DictReader(io.StringIO((world["det"] / "accounts.csv").read_text()))}
    labels = [r for r in csv.DictReader(io.StringIO(world["labels"].read_text())) if r["account_id"] in present]
    attack = [r["account_id"] for r in labels if r["label"] == "attack"][:15]
    benign = [r["account_id"] for r in labels if r["label"] == "benign"][:15]
    path = tmp_path / "decisions.jsonl"
    with open(path, "wb") as handle:
        for a in attack:
            handle.write(orjson.dumps({"account_id": a, "action": "confirm-block", "analyst": "x"}) + b"\n")
        for a in benign:
            handle.write(orjson.dumps({"account_id": a, "action": "dismiss", "analyst": "x"}) + b"\n")
        handle.write(orjson.dumps({"account_id": benign[0], "action": "undo"}) + b"\n")
    names, x, y, ids = analyst_rows(world["store"], path)
    assert len(ids) == 29 and int(y.sum()) == 15 and x.shape == (29, len(names))
    model = fit_analyst(world["store"], path, tmp_path / "model.json")
    assert Model.load(tmp_path / "model.json").meta["accounts"] == 29 and set(model.policy.weights) == set(names)


def test_shared_decisions_cache_refresh_and_outage():
    """The gateway side: answers from its cache at once, refreshes on the event loop, keeps the last known
    decision when the state is unreachable, and an undo or a damaged blob means no decision."""
    from distillguard.decide.analyst import AnalystDecision
    from distillguard.gateway.analyst import SharedDecisions, push
    from distillguard.gateway.state import MemoryState, StateError

    async def scenario() -> None:
        state = MemoryState()
        now = [0.0]
        shared = SharedDecisions(state, ttl_s=1.0, clock=lambda: now[0])
        assert shared("acct") is None  # nothing cached yet: a refresh is scheduled, nothing waits
        await asyncio.sleep(0.01)
        await push(state, AnalystDecision("acct", "confirm-block", 7.0, frozenset({"harvest"}), "alice"))
        assert shared("acct") is None  # the cached answer is fresh for ttl_s
        now[0] = 2.0
        assert shared("acct") is None  # stale entry answered, refresh scheduled
        await asyncio.sleep(0.01)
        assert shared("acct").action == "confirm-block"
        # Redis down: the confirmed account stays confirmed

        async def down(key: str) -> bytes:
            raise StateError("redis unavailable")

        state.get_blob = down  # type: ignore[method-assign]
        now[0] = 4.0
        assert (await shared.fetch("acct")).action == "confirm-block"
        del state.get_blob
        await push(state, AnalystDecision("acct", "undo", analyst="alice"))
        now[0] = 6.0
        assert await shared.fetch("acct") is None
        await state.put_blob("analyst:acct", b"{not json")
        now[0] = 8.0
        assert await shared.fetch("acct") is None
        await shared.close()

    asyncio.run(scenario())
