from __future__ import annotations

import json
import os
import uuid

import numpy as np
import orjson
import pytest
from starlette.testclient import TestClient

from distillguard.decide import DEFAULT_POLICY, Record, decide
from distillguard.intel.client import State, TaxiiClient
from distillguard.intel.export import ExportOptions, export_bundle
from distillguard.intel.hub import create_app
from distillguard.intel.hub.db import open_db
from distillguard.intel.match import match
from distillguard.intel.sightings import link_campaigns, sightings
from distillguard.intel.signing import sign
from test_intel_fixtures import COLLECTION, GROUP_KEY, PASSWORD, campaigns_doc, hub_config, member_keys, small_store

TAXII = "application/taxii+json;version=2.1"
URL = "http://hub/taxii2/"


@pytest.fixture(scope="module")
def keys():
    return member_keys()


# Every hub test runs against both backends. PostgreSQL needs a server: DISTILLGUARD_POSTGRES_URL (a database
# the tests may create schemas in); .ci/run starts one and sets DISTILLGUARD_REQUIRE_POSTGRES=1 so that a missing
# server or driver fails rather than skips.
POSTGRES_URL = os.environ.get("DISTILLGUARD_POSTGRES_URL")
REQUIRE_POSTGRES = bool(os.environ.get("DISTILLGUARD_REQUIRE_POSTGRES"))


@pytest.fixture(params=["sqlite", "postgres"])
def database(request, tmp_path):
    """The hub's ``database`` setting: a SQLite file, or a fresh schema in the test PostgreSQL database."""
    if request.param == "sqlite":
        yield str(tmp_path / "hub.sqlite")
        return
    if not POSTGRES_URL:
        if REQUIRE_POSTGRES:
            pytest.fail("DISTILLGUARD_REQUIRE_POSTGRES is set but DISTILLGUARD_POSTGRES_URL is not")
        pytest.skip("DISTILLGUARD_POSTGRES_URL not set (.ci/run starts a PostgreSQL server)")
    psycopg = pytest.importorskip("psycopg") if not REQUIRE_POSTGRES else __import__("psycopg")
    schema = f"dg_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as con:
        con.execute(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in POSTGRES_URL else "?"
    try:
        yield f"{POSTGRES_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as con:
            con.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture()
def hub(database, keys):
    config = hub_config(keys, database, clearance={"p3": "green"}, max_content_length=200_000, page_size=7)
    app = create_app(config)
    yield config, app
    app.state.hub.db.close()


def client(app, user: str) -> TaxiiClient:
    return TaxiiClient(URL, COLLECTION, user, PASSWORD, http=TestClient(app, base_url="http://hub"))


def raw(app, user: str = "p1") -> TestClient:
    http = TestClient(app, base_url="http://hub", headers={"Accept": TAXII})
    http.auth = (user, PASSWORD)
    return http


def test_end_to_end_publish_pull_match_sight(hub, keys, tmp_path):
    _, app = hub
    bundle = export_bundle(campaigns_doc(), ExportOptions("p1", GROUP_KEY, keys["p1"]))
    state1 = State.load(tmp_path / "p1.json")
    counts = client(app, "p1").publish(bundle["objects"], state1)
    shared = [o for o in bundle["objects"] if o["type"] != "extension-definition"]  # ships out of band
    assert counts["failed"] == 0 and counts["accepted"] == len(shared) and counts["out_of_band"] == 1
    assert client(app, "p1").publish(bundle["objects"], State.load(tmp_path / "p1.json"))["skipped"] == counts[
        "accepted"]  # incremental: nothing re-posted

    keyring = {name: key.public_key() for name, key in keys.items()}
    state2 = State.load(tmp_path / "p2.json")
    pulled = client(app, "p2").pull(state2, keyring, page_size=5)
    assert pulled.pages > 1 and not pulled.rejected
    assert {o["id"] for o in pulled.accepted} == {o["id"] for o in shared}
    assert client(app, "p2").pull(State.load(tmp_path / "p2.json"), keyring).accepted == []  # remembers

    con = small_store(tmp_path / "store2").connect()
    result = match(con, pulled.accepted, GROUP_KEY)
    rows = {r["account_id"]: r for r in result.table.to_pylist()}
    assert set(rows) == {"acct_a1", "acct_a2", "acct_a3", "acct_a4"}  # no benign account matched
    assert all("from p1" in r["intel_reasons"] and "TLP:AMBER" in r["intel_reasons"] for r in rows.values())
    assert not any(r["corroborated"] for r in rows.values())  # one member alone never corroborates
    links = link_campaigns(result, [{"id": "local-1", "accounts": ["acct_a1", "acct_a2", "acct_a3"]}])
    assert links["local-1"] and links["local-1"][0][0].startswith("intrusion-set--")

    seen = sightings(result, "p2", keys["p2"], local={"acct_a1"})
    assert seen and all(s["type"] == "sighting" for s in seen)
    assert "acct_a" not in json.dumps(seen)
    assert client(app, "p2").publish(seen, State.load(None))["failed"] == 0
    back = client(app, "p1").pull(State.load(None), keyring)
    assert any(o["type"] == "sighting" for o in back.accepted)
    # a sighting with an independent local detection at p2 corroborates p1's indicators
    again = match(con, back.accepted, GROUP_KEY)
    assert all(again.table.column("corroborated").to_pylist())


def test_malicious_member_cannot_get_benign_customers_blocked(hub, keys, tmp_path):
    _, app = hub
    doc = campaigns_doc()
    camp = doc["campaigns"][0]
    camp["infrastructure"] = {"ip_prefixes": ["192.0.2.0/24"], "asns": [7922], "tls_fps": ["t13d_benign"],
                              "user_agents": ["Mozilla/5.0"]}  # all of it belongs to p2's benign customers
    camp["identifiers"] = {"payment_fps": [f"pay_benign_{i}" for i in range(16)], "email_domains": ["gmail.com"]}
    bad = export_bundle(doc, ExportOptions("p3", GROUP_KEY, keys["p3"]))
    assert client(app, "p3").publish(bad["objects"], State.load(None))["failed"] == 0
    pulled = client(app, "p2").pull(State.load(None), {n: k.public_key() for n, k in keys.items()})
    con = small_store(tmp_path / "store").connect()
    table = match(con, pulled.accepted, GROUP_KEY).table.to_pylist()
    benign = [r for r in table if r["account_id"].startswith("acct_b")]
    assert benign  # the lie does reach p2's matcher ...
    for row in benign:  # ... but can at most raise risk, never block: corroboration needs k distinct members
        assert not row["corroborated"]
        assert row["intel_score"] < 0.6  # over-broad indicators (hitting most customers) are damped below throttle
    # even undamped (score 0.99), one member's intel raises risk up to intel_max_risk and no further
    decided = decide(Record(n=np.full(len(benign), 100), families={}, intel_score=np.full(len(benign), 0.99),
                            intel_corroborated=np.array([r["corroborated"] for r in benign])))
    assert "block" not in decided.verdicts and decided.risk.max() <= DEFAULT_POLICY.intel_max_risk + 1e-9


def test_hub_rejects_forged_unsigned_and_unmarked(hub, keys):
    _, app = hub
    bundle = export_bundle(campaigns_doc(), ExportOptions("p1", GROUP_KEY, keys["p1"]))
    indicator = next(o for o in bundle["objects"] if o["type"] == "indicator")
    forged = dict(indicator, pattern="[ipv4-addr:value = '192.0.2.1']")
    unsigned = export_bundle(campaigns_doc(), ExportOptions("p1", GROUP_KEY, None))["objects"][-1]
    unmarked = sign({k: v for k, v in indicator.items() if k != "object_marking_refs"}, keys["p1"], "p1")
    impostor = sign(indicator, keys["p2"], "p2")  # p2 re-signs p1's object and posts it as p2
    r = raw(app, "p1").post(f"/intel/collections/{COLLECTION}/objects/", content=orjson.dumps(
        {"objects": [forged, unsigned, unmarked]}), headers={"Content-Type": TAXII})
    assert r.status_code == 202
    status = r.json()
    assert status["success_count"] == 0 and status["failure_count"] == 3
    messages = " ".join(f["message"] for f in status["failures"])
    assert "bad signature" in messages and "unsigned" in messages and "TLP" in messages
    r = raw(app, "p2").post(f"/intel/collections/{COLLECTION}/objects/", content=orjson.dumps(
        {"objects": [impostor]}), headers={"Content-Type": TAXII})
    assert r.json()["failures"][0]["message"].startswith("created_by_ref must be")
    assert raw(app, "p1").get(f"/intel/status/{status['id']}/").json()["failure_count"] == 3


@pytest.mark.parametrize(("body", "ctype", "code"), [
    (b"{not json", TAXII, 400), (b'{"objects": 5}', TAXII, 422), (b"[]", TAXII, 422),
    (b'{"objects": []}', "text/plain", 415), (b"x" * 300_000, TAXII, 413)])
def test_malformed_posts_get_taxii_errors(hub, body, ctype, code):
    _, app = hub
    r = raw(app).post(f"/intel/collections/{COLLECTION}/objects/", content=body, headers={"Content-Type": ctype})
    assert r.status_code == code
    assert r.headers["content-type"].startswith("application/taxii+json") and r.json()["http_status"] == str(code)


def test_auth_groups_and_tlp_enforcement(hub, keys):
    _, app = hub
    assert TestClient(app).get("/taxii2/").status_code == 401
    assert raw(app, "p1").get("/taxii2/", auth=("p1", "wrong")).status_code == 401
    assert raw(app, "outsider").get(f"/intel/collections/{COLLECTION}/objects/").status_code == 404
    titles = [c["title"] for c in raw(app, "outsider").get("/intel/collections/").json()["collections"]]
    assert titles == ["others"]
    for day, level in ((3, "green"), (4, "amber"), (5, "red")):
        b = export_bundle(campaigns_doc(), ExportOptions("p1", GROUP_KEY, keys["p1"], tlp=level))
        camp = next(o for o in b["objects"] if o["type"] == "campaign")
        camp = sign(dict(camp, name=f"c-{level}", modified=f"2026-03-0{day}T00:00:00.000Z"),
                    keys["p1"], "p1")
        assert client(app, "p1").publish([camp], State.load(None))["failed"] == 0

    def campaigns(user: str, version: str) -> set[str]:
        r = raw(app, user).get(f"/intel/collections/{COLLECTION}/objects/",
                               params={"match[version]": version, "match[type]": "campaign"})
        return {o["name"] for o in r.json().get("objects", [])}

    # p3 (clearance green) never sees amber; nobody but the producer p1 sees red
    assert campaigns("p1", "all") == {"c-green", "c-amber", "c-red"}
    assert campaigns("p2", "all") == {"c-green", "c-amber"}
    assert campaigns("p3", "all") == {"c-green"}
    assert campaigns("p2", "last") == {"c-amber"}  # the latest version the member may read


def test_paging_added_after_and_manifest(hub, keys):
    _, app = hub
    bundle = export_bundle(campaigns_doc(), ExportOptions("p1", GROUP_KEY, keys["p1"]))
    client(app, "p1").publish(bundle["objects"], State.load(None))
    http = raw(app, "p2")
    url = f"/intel/collections/{COLLECTION}/manifest/"
    first = http.get(url, params={"limit": 3})
    assert first.json()["more"] is True and len(first.json()["objects"]) == 3
    ids = [o["id"] for o in first.json()["objects"]]
    nxt = http.get(url, params={"limit": 3, "next": first.json()["next"]}).json()
    assert not set(ids) & {o["id"] for o in nxt["objects"]}
    after = http.get(f"/intel/collections/{COLLECTION}/objects/",
                     params={"added_after": first.headers["X-TAXII-Date-Added-Last"]}).json()
    assert len(after["objects"]) == min(7, len(bundle["objects"]) - 3)  # page_size caps the page
    obj_id = ids[0]
    assert http.get(f"/intel/collections/{COLLECTION}/objects/{obj_id}/").json()["objects"][0]["id"] == obj_id
    assert http.get(f"/intel/collections/{COLLECTION}/objects/{obj_id}/versions/").json()["versions"]
    assert http.get(f"/intel/collections/{COLLECTION}/objects/", params={"added_after": "garbage"}).status_code == 400
    assert http.get("/intel/nowhere/").status_code == 404


def test_nothing_accepted_is_lost_on_restart(database, keys):
    config = hub_config(keys, database)
    app = create_app(config)
    bundle = export_bundle(campaigns_doc(), ExportOptions("p1", GROUP_KEY, keys["p1"]))
    shared = [o for o in bundle["objects"] if o["type"] != "extension-definition"]  # ships out of band
    assert client(app, "p1").publish(bundle["objects"], State.load(None))["accepted"] == len(shared)
    app.state.hub.db.close()
    db = open_db(config.database)
    again = create_app(config, db)
    pulled = client(again, "p2").pull(State.load(None), None)
    assert {o["id"] for o in pulled.accepted} == {o["id"] for o in shared}
    # date_added keeps increasing after the restart, so added_after polling sees new objects only
    last = max(r.added_us for r in db.query(COLLECTION))
    assert client(again, "p1").publish(bundle["objects"], State.load(None))["failed"] == 0
    assert db.query(COLLECTION, added_after=last) == []  # re-posting the same versions stores nothing new
    camp = next(o for o in bundle["objects"] if o["type"] == "campaign")
    newer = sign(dict(camp, modified="2026-03-09T00:00:00.000Z"), keys["p1"], "p1")
    assert client(again, "p1").publish([newer], State.load(None))["failed"] == 0
    assert [r.version for r in db.query(COLLECTION, added_after=last)] == ["2026-03-09T00:00:00.000Z"]
    db.close()


def test_database_setting_picks_the_backend(tmp_path):
    from distillguard.intel.hub.db import HubDB, redact

    assert isinstance(open_db(str(tmp_path / "a.sqlite")), HubDB)
    assert isinstance(open_db(f"sqlite:///{tmp_path}/b.sqlite"), HubDB)
    with pytest.raises(ValueError, match="unsupported scheme 'mysql'"):
        open_db("mysql://u:pw@host/db")
    assert redact("postgresql://dg:hunter2@db.example:5432/hub") == "postgresql://dg:***@db.example:5432/hub"
    assert redact("hub.sqlite") == "hub.sqlite"
    with pytest.raises(ValueError, match="cannot connect|needs psycopg"):  # a clear error, not a traceback
        open_db("postgresql://nobody:pw@127.0.0.1:1/none?connect_timeout=2")


@pytest.mark.parametrize("database", ["postgres"], indirect=True)
def test_postgres_hubs_sharing_one_database_keep_one_order(database, keys):
    """Two hub processes on one PostgreSQL database: seq and date_added increase together; a lost connection
    is reopened."""
    import threading

    import psycopg

    a, b = open_db(database), open_db(database)
    bundle = export_bundle(campaigns_doc(), ExportOptions("p1", GROUP_KEY, keys["p1"]))
    objs = [o for o in bundle["objects"] if o["type"] != "marking-definition"]

    def post(db, offset):
        for i, obj in enumerate(objs):
            db.add(COLLECTION, [(dict(obj, modified=f"2026-03-{offset + i % 20:02d}T00:00:00.{i:03d}Z"),
                                 f"v{offset}-{i}", "amber", "p1")])

    threads = [threading.Thread(target=post, args=(db, n)) for n, db in ((1, a), (2, b))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rows = a.query(COLLECTION)
    assert len(rows) == 2 * len(objs)
    added = [r.added_us for r in rows]  # in seq order
    assert added == sorted(added) and len(set(added)) == len(added)
    pid = b._con.info.backend_pid
    with psycopg.connect(database, autocommit=True) as admin:  # the server drops b's connection
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])
    assert len(b.query(COLLECTION)) == len(rows)
    assert b._con.info.backend_pid != pid
    a.close()
    b.close()
