"""Security regressions for the TAXII hub and its consumers: object hijack and squatting (producer binding,
keyed ids), malformed and hostile envelopes (per-object failures, never a 500), granular markings, bounds.

Every hub test runs against SQLite and, with DISTILLGUARD_POSTGRES_URL, PostgreSQL (``database`` fixture).
"""

from __future__ import annotations

import json
import random
import sqlite3
from typing import Any

import httpx
import orjson
import pytest
from starlette.testclient import TestClient

from distillguard.intel.client import State, TaxiiClient, reject_reason
from distillguard.intel.export import ExportOptions, export_bundle, member_identity_id
from distillguard.intel.hub import create_app
from distillguard.intel.indicators import collect
from distillguard.intel.refdata import tlp_markings
from distillguard.intel.signing import generate_key, sign
from test_intel_fixtures import COLLECTION, GROUP_KEY, PASSWORD, campaigns_doc, hub_config, member_keys
from test_intel_hub import database  # noqa: F401 - the SQLite / PostgreSQL fixture

TAXII = "application/taxii+json;version=2.1"
OBJECTS = f"/intel/collections/{COLLECTION}/objects/"
LATER = "2026-03-09T00:00:00.000Z"


@pytest.fixture(scope="module")
def keys():
    return member_keys()


@pytest.fixture(scope="module")
def bundle(keys):
    return export_bundle(campaigns_doc(), ExportOptions("p1", GROUP_KEY, keys["p1"]))


@pytest.fixture()
def app(database, keys):  # noqa: F811 - pytest fixture argument
    """A hub with the default limits (10 MB posts, 1000 objects per envelope); p3 is cleared for green only."""
    application = create_app(hub_config(keys, database, clearance={"p3": "green"}))
    yield application
    application.state.hub.db.close()


def raw(app, user: str = "p1") -> TestClient:
    http = TestClient(app, base_url="http://hub", headers={"Accept": TAXII})
    http.auth = (user, PASSWORD)
    return http


def post(app, user: str, objects: Any) -> httpx.Response:
    body = objects if isinstance(objects, bytes) else json.dumps({"objects": objects}).encode()
    return raw(app, user).post(OBJECTS, content=body, headers={"Content-Type": TAXII})


def latest(app, user: str, object_id: str) -> dict[str, Any] | None:
    r = raw(app, user).get(f"{OBJECTS}{object_id}/")
    return r.json()["objects"][0] if r.status_code == 200 else None


def hijacked(obj: dict[str, Any], keys, by: str = "p2", **changes: Any) -> dict[str, Any]:
    """``by``'s own signed version of another member's object (created_by_ref ``by``, so the hub's old checks pass)."""
    return sign(dict(obj, created_by_ref=member_identity_id(by), **changes), keys[by], by)


def indicators_of(bundle) -> list[dict[str, Any]]:
    return [o for o in bundle["objects"] if o["type"] == "indicator"]


def is_taxii_error(r: httpx.Response, code: int) -> bool:
    body = r.json()
    return (r.status_code == code and r.headers["content-type"].startswith("application/taxii+json")
            and body.get("http_status") == str(code) and isinstance(body.get("title"), str))


# ---- finding 2: hijack and squatting ------------------------------------------------------------------------------

def test_other_member_cannot_post_versions_of_my_object(app, keys, bundle):
    """p2 posting p1's indicator id, later and revoked, under its own signature is refused; p1 keeps its object."""
    assert post(app, "p1", bundle["objects"]).json()["failure_count"] == 0
    target = indicators_of(bundle)[0]
    status = post(app, "p2", [hijacked(target, keys, modified=LATER, revoked=True)]).json()
    assert status["success_count"] == 0 and status["failure_count"] == 1
    assert "another producer" in status["failures"][0]["message"]
    for reader in ("p1", "p2"):  # both still read p1's version as the latest
        got = latest(app, reader, target["id"])
        assert got == target and not got.get("revoked")
    versions = raw(app, "p2").get(f"{OBJECTS}{target['id']}/versions/").json()["versions"]
    assert versions == [target["modified"]]
    assert raw(app, "p2").delete(f"{OBJECTS}{target['id']}/").status_code == 403  # not p2's to delete
    assert raw(app, "p1").delete(f"{OBJECTS}{target['id']}/").status_code == 200  # p1's own DELETE works
    assert latest(app, "p1", target["id"]) is None
    # the binding outlives the delete: p2 cannot take the id over afterwards
    assert post(app, "p2", [hijacked(target, keys, modified=LATER)]).json()["failure_count"] == 1


def test_conflicting_id_and_version_is_a_failure_never_a_silent_success(app, keys, bundle):
    target = indicators_of(bundle)[1]
    squat = hijacked(target, keys, name="squatted")  # p2 somehow knows p1's (id, version) and posts first
    assert post(app, "p2", [squat]).json()["success_count"] == 1
    status = post(app, "p1", [target]).json()  # p1's genuine post is reported as failed, not silently dropped
    assert status["success_count"] == 0 and status["failure_count"] == 1
    assert status["failures"][0]["id"] == target["id"] and status["failures"][0]["version"] == target["modified"]
    # the same producer: identical content again is an idempotent success, different content a failure
    assert post(app, "p2", [squat]).json()["success_count"] == 1
    changed = hijacked(target, keys, name="changed")
    status = post(app, "p2", [changed]).json()
    assert status["failure_count"] == 1 and "different object" in status["failures"][0]["message"]
    assert latest(app, "p2", target["id"])["name"] == "squatted"
    # ... also inside one envelope
    fresh = sign(dict(target, id="indicator--0b0b0b0b-0000-4000-8000-000000000001"), keys["p1"], "p1")
    other = sign(dict(fresh, name="other"), keys["p1"], "p1")
    status = post(app, "p1", [fresh, fresh, other]).json()
    assert (status["success_count"], status["failure_count"]) == (2, 1)


def test_member_identity_ids_are_reserved_to_their_member(app, keys, bundle):
    p1_identity = next(o for o in bundle["objects"] if o["id"] == member_identity_id("p1"))
    fake = hijacked(p1_identity, keys, name="p1 (not really)")
    status = post(app, "p2", [fake]).json()
    assert status["success_count"] == 0 and "belongs to another member" in status["failures"][0]["message"]
    assert post(app, "p1", [p1_identity]).json()["success_count"] == 1


def test_identity_squatted_before_its_member_joined_goes_to_the_member(database, keys):  # noqa: F811
    """p2 posts the (computable) identity id of a provider that has not joined yet; once it joins, it is its own."""
    newcomer = generate_key()
    identity = next(o for o in export_bundle(campaigns_doc(), ExportOptions("p4", GROUP_KEY, newcomer))["objects"]
                    if o["id"] == member_identity_id("p4"))
    before = create_app(hub_config(keys, database))
    try:
        assert post(before, "p2", [hijacked(identity, keys, name="p4 (not really)")]).json()["success_count"] == 1
    finally:
        before.state.hub.db.close()
    after = create_app(hub_config({**keys, "p4": newcomer}, database))  # p4 joins the group
    try:
        assert latest(after, "p1", identity["id"]) is None  # the squatter's copy is no longer served
        assert post(after, "p4", [identity]).json()["success_count"] == 1
        assert latest(after, "p1", identity["id"]) == identity
    finally:
        after.state.hub.db.close()


def test_object_ids_are_keyed_by_the_producers_own_key(keys):
    """Re-exports keep their ids; anyone without p1's signing key (other members) cannot predict them."""
    def ids(key) -> set[str]:
        made = export_bundle(campaigns_doc(), ExportOptions("p1", GROUP_KEY, key))
        return {o["id"] for o in made["objects"] if o["type"] not in ("identity", "marking-definition",
                                                                      "extension-definition")}

    mine = ids(keys["p1"])
    assert len(mine) > 5 and ids(keys["p1"]) == mine  # idempotent re-export
    assert not mine & ids(generate_key())  # same member name, campaign and group key, another key: other ids
    assert not mine & ids(None)  # nor the group key alone (which every member holds)


def test_consumer_binds_ids_to_their_first_producer(keys, bundle):
    """collect() keeps p1's indicators although p2 signed later, revoked versions of them."""
    mine = indicators_of(bundle)
    attack = [hijacked(o, keys, modified=LATER, revoked=True) for o in mine]
    kept = collect(bundle["objects"] + attack)
    assert len(kept) == len(mine) and {i.producer for i in kept} == {"p1"}
    # a consumer also drops objects whose signer is not their creator (p2 signing "p1's" objects)
    keyring = {n: k.public_key() for n, k in keys.items()}
    forged_creator = sign(dict(mine[0], modified=LATER, revoked=True), keys["p2"], "p2")
    assert "created_by_ref" in (reject_reason(forged_creator, keyring) or "")
    assert reject_reason(mine[0], keyring) is None


def test_pull_remembers_who_produced_each_id(keys, bundle, tmp_path):
    """Across pulls (state file), a later version of a known id by another member is rejected, not accepted."""
    target = indicators_of(bundle)[0]
    pages = [[target], [hijacked(target, keys, modified=LATER, revoked=True)]]
    served: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/taxii2/":
            return httpx.Response(200, json={"default": "http://peer/api/", "api_roots": ["http://peer/api/"]})
        served.append(1)
        return httpx.Response(200, json={"more": False, "objects": pages[len(served) - 1]},
                              headers={"X-TAXII-Date-Added-Last": f"2026-03-0{len(served)}T00:00:00.000000Z"})

    http = httpx.Client(transport=httpx.MockTransport(handler))
    peer = TaxiiClient("http://peer/taxii2/", "c", "p3", PASSWORD, http=http)
    keyring = {n: k.public_key() for n, k in keys.items()}
    assert [o["id"] for o in peer.pull(State.load(tmp_path / "s.json"), keyring).accepted] == [target["id"]]
    second = peer.pull(State.load(tmp_path / "s.json"), keyring)
    assert second.accepted == [] and "belongs to 'p1'" in second.rejected[0]


OLD_SQLITE = """CREATE TABLE objects (seq INTEGER PRIMARY KEY AUTOINCREMENT, collection TEXT NOT NULL, id TEXT NOT NULL,
    version TEXT NOT NULL, added_us INTEGER NOT NULL, type TEXT NOT NULL, spec_version TEXT NOT NULL, tlp TEXT,
    producer TEXT NOT NULL, body BLOB NOT NULL, UNIQUE (collection, id, version))"""
OLD_POSTGRES = """CREATE TABLE dg_hub_objects (seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    collection TEXT NOT NULL, id TEXT NOT NULL, version TEXT NOT NULL, added_us BIGINT NOT NULL, type TEXT NOT NULL,
    spec_version TEXT NOT NULL, tlp TEXT, producer TEXT NOT NULL, body BYTEA NOT NULL,
    UNIQUE (collection, id, version))"""


def test_hijacked_rows_stored_before_the_fix_are_not_served(database, keys, bundle):  # noqa: F811
    """A hub database written by the old code (no owners table) that holds p2's hijack of p1's object."""
    target = indicators_of(bundle)[0]
    evil = hijacked(target, keys, modified=LATER, revoked=True)
    rows = [(COLLECTION, o["id"], o["modified"], 1_700_000_000_000_000 + i, "indicator", "2.1", "amber", who,
             orjson.dumps(o)) for i, (o, who) in enumerate(((target, "p1"), (evil, "p2")))]
    if "://" in database:
        import psycopg

        with psycopg.connect(database, autocommit=True) as con:
            con.execute(OLD_POSTGRES)
            for row in rows:
                con.execute("INSERT INTO dg_hub_objects (collection, id, version, added_us, type, spec_version, tlp,"
                            " producer, body) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)", row)
    else:
        with sqlite3.connect(database) as con:
            con.execute(OLD_SQLITE)
            con.executemany("INSERT INTO objects (collection, id, version, added_us, type, spec_version, tlp,"
                            " producer, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        con.close()
    application = create_app(hub_config(keys, database))
    try:
        assert latest(application, "p3", target["id"]) == target
        assert raw(application, "p1").delete(f"{OBJECTS}{target['id']}/").status_code == 200
    finally:
        application.state.hub.db.close()


# ---- finding 4: malformed objects, granular markings, bounds, never a 500 -----------------------------------------

def _nested(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = {"a": value}
    return value


def test_malformed_objects_are_per_object_failures_and_valid_ones_kept(app, keys, bundle):
    good = next(o for o in bundle["objects"] if o["type"] == "campaign")
    bad = [dict(good, extensions="x"), dict(good, object_marking_refs=5), dict(good, object_marking_refs=[{}]),
           dict(good, granular_markings="x"), dict(good, granular_markings=[{"selectors": "name"}]),
           dict(good, modified=5), dict(good, created={"a": 1}), dict(good, id="campaign--\x00"),
           dict(good, type="Campaign"), dict(good, description=_nested(300)), dict(good, external_references=[5]),
           dict(good, extensions={"x": [1, {"signature": None}]}), 7, None, "campaign", [good]]
    r = post(app, "p1", [*bad, good])
    assert r.status_code == 202
    status = r.json()
    assert status["success_count"] == 1 and status["successes"][0]["id"] == good["id"]
    assert status["failure_count"] == len(bad) and status["total_count"] == len(bad) + 1
    assert all(f["message"] for f in status["failures"])
    assert latest(app, "p2", good["id"]) == good
    assert raw(app, "p1").get(f"/intel/status/{status['id']}/").json()["failure_count"] == len(bad)
    assert is_taxii_error(raw(app, "p2").get(f"/intel/status/{status['id']}/"), 404)  # p1's status is p1's


def _mutations(rng: random.Random, obj: dict[str, Any]) -> dict[str, Any]:
    pool: list[Any] = [None, 0, -1, 2**70, 1.5, True, "", "x", "\x00", "a" * 3000, [], [None], [{}], [5], {},
                       {"a": []}, _nested(40), ["marking-definition--x"], "2026-13-45T99:99:99Z",
                       "0001-01-01T00:00:00.000Z", "campaign--" + "f" * 36, tlp_markings()["red"]["id"],
                       [{"selectors": ["name"], "marking_ref": tlp_markings()["red"]["id"]}],
                       [{"selectors": [], "marking_ref": 5}], {"extension-definition--x": "y"}]
    out = json.loads(json.dumps(obj))
    for _ in range(rng.randint(1, 3)):
        key = rng.choice([*out, "granular_markings", "extensions", "object_marking_refs", "modified", "id"])
        roll = rng.random()
        if roll < 0.15:
            out.pop(key, None)
        elif roll < 0.3 and isinstance(out.get("extensions"), dict):
            block = next(iter(out["extensions"].values()), None)
            if isinstance(block, dict):
                block[rng.choice(["signature", "kind", "extension_type"])] = rng.choice(pool)
        else:
            out[key] = rng.choice(pool)
    return out


def test_fuzzed_envelopes_and_queries_never_get_a_500(app, keys, bundle):
    rng = random.Random(20260306)
    bases = [o for o in bundle["objects"] if o["type"] != "marking-definition"]
    anchor = next(o for o in bundle["objects"] if o["type"] == "campaign")
    http = raw(app, "p1")
    for _ in range(300):
        objects: Any = [_mutations(rng, rng.choice(bases)) for _ in range(rng.randint(1, 3))] + [anchor]
        rng.shuffle(objects)
        roll = rng.random()
        body: Any = {"objects": objects}
        if roll < 0.05:
            body = {"objects": {"0": objects[0]}}
        elif roll < 0.1:
            body = objects
        text = json.dumps(body, allow_nan=True).encode()
        if roll > 0.95:
            text = text[: rng.randint(0, len(text))]
        r = http.post(OBJECTS, content=text, headers={"Content-Type": TAXII})
        assert r.status_code in (202, 400, 413, 422), r.text[:300]
        assert r.headers["content-type"].startswith("application/taxii+json")
        if r.status_code == 202:
            assert anchor["id"] in {s["id"] for s in r.json()["successes"]}
        else:
            assert is_taxii_error(r, r.status_code)
    odd = ["", "\x00", "a\x00b", "x" * 3000, ",".join(["indicator--" + "0" * 36] * 150), "campaign", "9" * 5000,
           "-1", "0", "1e9", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59Z", "last,first,all",
           anchor["id"], "2026-03-02T00:00:00.000Z"]
    params = ["match[id]", "match[type]", "match[version]", "match[spec_version]", "added_after", "limit", "next"]
    for user in ("p1", "p2", "p3"):
        for _ in range(40):
            query = {rng.choice(params): rng.choice(odd) for _ in range(rng.randint(1, 3))}
            for path in (OBJECTS, f"/intel/collections/{COLLECTION}/manifest/", f"{OBJECTS}{anchor['id']}/",
                         f"{OBJECTS}{anchor['id']}/versions/"):
                r = raw(app, user).get(path, params=query)
                assert r.status_code in (200, 400, 404), (path, query, r.text[:200])
                if r.status_code != 200:
                    assert is_taxii_error(r, r.status_code)
    for junk in ("%00", "a" * 3000, "indicator--%00", "x%20y", "%F0%9F%92%A5"):
        for path in (f"{OBJECTS}{junk}/", f"{OBJECTS}{junk}/versions/", f"/intel/status/{junk}/"):
            r = http.get(path)
            assert r.status_code in (404, 400), (path, r.status_code)
            assert is_taxii_error(r, r.status_code)
        r = http.delete(f"{OBJECTS}{junk}/")
        assert is_taxii_error(r, 404)
    many = ",".join(f"indicator--{i:08d}-0000-4000-8000-000000000000" for i in range(1000))
    assert is_taxii_error(http.get(OBJECTS, params={"match[id]": many}), 400)


def test_granular_red_marking_keeps_the_object_from_lower_clearances(app, keys, bundle):
    clear, red = tlp_markings()["clear"]["id"], tlp_markings()["red"]["id"]
    camp = next(o for o in bundle["objects"] if o["type"] == "campaign")
    marked = sign(dict(camp, object_marking_refs=[clear], description="red detail",
                       granular_markings=[{"selectors": ["description"], "marking_ref": red}]), keys["p1"], "p1")
    assert post(app, "p1", [marked]).json()["success_count"] == 1
    assert latest(app, "p1", camp["id"]) == marked  # the producer sees its own object
    for reader in ("p2", "p3"):  # amber and green clearance: the TLP:RED field never reaches them
        assert latest(app, reader, camp["id"]) is None
        listed = raw(app, reader).get(OBJECTS).json().get("objects", [])
        assert "red detail" not in json.dumps(listed)
    unknown = sign(dict(camp, granular_markings=[{"selectors": ["name"], "marking_ref":
                                                   "marking-definition--00000000-0000-4000-8000-000000000000"}]),
                   keys["p1"], "p1")
    status = post(app, "p1", [unknown]).json()
    assert status["failure_count"] == 1 and "granular" in status["failures"][0]["message"]


def test_envelope_size_and_status_are_bounded(app, keys, bundle):
    junk = b'{"objects":[' + b",".join([b"1"] * 300_000) + b"]}"  # 600 KB of non-objects
    r = post(app, "p1", junk)
    assert is_taxii_error(r, 413) and "1000" in r.json()["description"]
    # the most a single post can make the hub store as a status: 1000 failures with long ids and messages
    camp = next(o for o in bundle["objects"] if o["type"] == "campaign")
    long_type = "x" + "y" * 240 + "z"
    objects = []
    for i in range(1000):
        obj = dict(camp, type=long_type, id=f"{long_type}--{i:08d}-0000-4000-8000-000000000000")
        obj["extensions"] = {k: dict(v) for k, v in camp["extensions"].items()}
        block = next(iter(obj["extensions"].values()))
        block["signature"] = dict(block["signature"], key_id="k" * 5000)
        objects.append(obj)
    r = post(app, "p1", objects)
    assert r.status_code == 202 and r.json()["failure_count"] == 1000
    assert len(r.content) < 700_000
    assert len(raw(app, "p1").get(f"/intel/status/{r.json()['id']}/").content) < 700_000
