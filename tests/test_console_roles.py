"""Roles are enforced on every route: every route of the app is in the access table, and each is walked with every
role (and without a session); a denied request changes nothing and is audited."""

from __future__ import annotations

import pytest
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

from distillguard.console.app import ROUTES
from distillguard.console.auth import PERMISSIONS
from test_console_fixtures import ROLES, built, csrf, login, make_world


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    root = tmp_path_factory.mktemp("console-roles")
    b = built(make_world(root), root / "console")
    yield b
    b.db.close()


def test_every_route_has_an_access_rule(app):
    declared = {(r.path, r.method) for r in ROUTES}
    served = set()
    for route in app.app.routes:
        if isinstance(route, Mount):
            assert route.path == "/static"  # assets only: public, no data
            continue
        assert isinstance(route, Route)
        for method in route.methods or ():
            if method != "HEAD":
                served.add((route.path, method))
    assert served == declared


def test_every_route_with_every_role(app):
    cid = next(iter(app.data.campaigns))
    aid = app.data.campaigns[cid]["accounts"][0]
    lead = TestClient(app.app, base_url="http://127.0.0.1")
    login(lead, "lead")
    r = lead.post("/cases", data={"title": "t", "campaigns": cid, "why": "w", "csrf": csrf(lead)},
                  follow_redirects=False)
    case_id = r.headers["location"].rsplit("/", 1)[1]
    params = {"cid": cid, "aid": aid, "case_id": case_id, "name": "none.zip"}
    checked = 0
    for role in (None, *ROLES):
        client = TestClient(app.app, base_url="http://127.0.0.1")
        token = ""
        if role is not None:
            assert login(client, role).status_code == 303
            token = csrf(client)
        decisions_before = len(app.db.decisions())
        for spec in sorted(ROUTES, key=lambda s: s.path == "/logout"):  # log out last
            path = spec.path.format(**params)
            if spec.method == "GET":
                response = client.get(path, follow_redirects=False)
            else:
                response = client.post(path, data={"csrf": token}, follow_redirects=False)
            allowed = spec.permission is None or (role is not None and spec.permission in PERMISSIONS[role])
            where = f"{spec.method} {spec.path} as {role}"
            if spec.permission is None:
                assert response.status_code < 500, where
            elif role is None:
                assert response.status_code in (303, 401), where
                if response.status_code == 303:
                    assert response.headers["location"].startswith("/login"), where
            elif allowed:
                assert response.status_code not in (401, 403, 500), f"{where}: {response.status_code}"
            else:
                assert response.status_code == 403, f"{where}: {response.status_code}"
            checked += 1
        if role in ("viewer", "legal"):
            assert len(app.db.decisions()) == decisions_before  # a denied decision recorded nothing
    assert checked == len(ROUTES) * (len(ROLES) + 1)
    denied = [e for e in app.db.audit_entries(limit=1000) if e.action == "denied"]
    assert {e.actor for e in denied} == {"viewer", "analyst", "legal"}
