"""Interop on real sockets: OASIS taxii2-client against our hub, our client against OASIS medallion."""

from __future__ import annotations

import http.server
import json
import re
import socket
import threading
import time
from pathlib import Path

import pytest
import uvicorn
from click.testing import CliRunner
from taxii2client.v21 import Server, as_pages

from distillguard.cli import main
from distillguard.intel.client import State, TaxiiClient, TaxiiClientError, load_keyring, reject_reason
from distillguard.intel.export import ExportOptions, export_bundle
from distillguard.intel.hub import create_app
from distillguard.intel.indicators import collect
from test_intel_fixtures import COLLECTION, GROUP_KEY, PASSWORD, campaigns_doc, hub_config, member_keys, small_store


@pytest.fixture(scope="module")
def keys():
    return member_keys()


@pytest.fixture()
def hub_url(tmp_path, keys):
    config = hub_config(keys, str(tmp_path / "hub.sqlite"), page_size=50)
    server = uvicorn.Server(uvicorn.Config(create_app(config), host="127.0.0.1", port=0, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "hub did not start within 10 s"
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}/taxii2/"
    server.should_exit = True
    thread.join(timeout=10)


def test_oasis_taxii2_client_against_our_hub(hub_url, keys):
    bundle = export_bundle(campaigns_doc(), ExportOptions("p1", GROUP_KEY, keys["p1"]))
    server = Server(hub_url, user="p1", password=PASSWORD)
    root = server.api_roots[0]
    assert root.max_content_length > 0
    collection = next(c for c in root.collections if c.id == COLLECTION)
    assert collection.can_read and collection.can_write
    status = collection.add_objects(json.dumps({"objects": bundle["objects"]}))
    assert status.status == "complete" and status.success_count == len(bundle["objects"])
    reader = next(c for c in Server(hub_url, user="p2", password=PASSWORD).api_roots[0].collections
                  if c.id == COLLECTION)
    pages = list(as_pages(reader.get_objects, per_request=10))
    assert len(pages) > 1
    assert {o["id"] for p in pages for o in p.get("objects", [])} == {o["id"] for o in bundle["objects"]}
    manifest = reader.get_manifest()
    assert len(manifest["objects"]) == len(bundle["objects"])
    one = reader.get_object(bundle["objects"][-1]["id"])
    assert one["objects"][0]["id"] == bundle["objects"][-1]["id"]


MEDALLION_COLLECTION = "91a7b528-80eb-42ed-a74d-c6fbd5a26116"


@pytest.fixture()
def medallion_url():
    from medallion import application_instance, register_blueprints, set_config
    from werkzeug.serving import make_server

    data = {
        "/discovery": {"title": "medallion", "default": "http://127.0.0.1/api1/", "api_roots": []},
        "api1": {"information": {"title": "api1", "versions": ["application/taxii+json;version=2.1"],
                                 "max_content_length": 9_765_625},
                 "status": [],
                 "collections": [{"id": MEDALLION_COLLECTION, "title": "intel", "can_read": True, "can_write": True,
                                  "media_types": ["application/stix+json;version=2.1"], "objects": [],
                                  "manifest": []}]}}
    config = {"backend": {"module_class": "MemoryBackend", "module": "medallion.backends.memory_backend",
                          "data": None},
              "users": {"member": PASSWORD}, "taxii": {"max_page_size": 100}}
    set_config(application_instance, "users", config)
    set_config(application_instance, "taxii", config)
    backend_conf = dict(config["backend"])
    backend_conf.pop("data")
    set_config(application_instance, "backend", {"backend": backend_conf})
    application_instance.medallion_backend.data = data
    if "discovery" not in {bp.name for bp in application_instance.blueprints.values()}:
        register_blueprints(application_instance)
    server = make_server("127.0.0.1", 0, application_instance, threaded=True)
    port = server.server_port
    data["/discovery"]["default"] = f"http://127.0.0.1:{port}/api1/"
    data["/discovery"]["api_roots"] = [f"http://127.0.0.1:{port}/api1/"]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}/taxii2/"
    server.shutdown()
    thread.join(timeout=10)


def _export_cli(tmp_path: Path) -> tuple[Path, Path, Path]:
    """keygen and `intel export --store` through the CLI, as a member runs them: (bundle, keys, group.yaml)."""
    runner = CliRunner()
    keys = tmp_path / "keys"
    result = runner.invoke(main, ["intel", "keygen", "--member", "p1", "--out", str(keys), "--group-key"])
    assert result.exit_code == 0, result.output
    det = tmp_path / "det"
    det.mkdir()
    (det / "campaigns.json").write_text(json.dumps(campaigns_doc()))
    store = small_store(tmp_path / "store")
    bundle = tmp_path / "bundle.json"
    result = runner.invoke(main, ["intel", "export", "--detections", str(det), "--out", str(bundle), "--member", "p1",
                                  "--group-key", str(keys / "group.key"), "--sign-key", str(keys / "p1.key"),
                                  "--store", str(store.root)])
    assert result.exit_code == 0, result.output
    group = tmp_path / "group.yaml"
    group.write_text("members:\n  p1:\n    public_key: |\n" + "".join(
        f"      {line}\n" for line in (keys / "p1.pub").read_text().splitlines()))
    return bundle, keys, group


def test_cli_publish_to_medallion_then_pull_with_our_client_and_taxii2_client(medallion_url, tmp_path, monkeypatch):
    """Before: `intel publish` to medallion succeeded, then every read of the collection was HTTP 500 (medallion
    parses the extension-definition's semver `version` as a timestamp). The unedited exported bundle now
    publishes, and both our client and OASIS taxii2-client read, page and collect it."""
    bundle_path, keys, group = _export_cli(tmp_path)
    bundle = json.loads(bundle_path.read_text())
    assert any(o["type"] == "extension-definition" for o in bundle["objects"])  # the file still carries it
    shared = [o for o in bundle["objects"] if o["type"] != "extension-definition"]
    monkeypatch.setenv("DG_TAXII_PASSWORD", PASSWORD)
    common = ["--url", medallion_url, "--collection", MEDALLION_COLLECTION, "--user", "member"]
    result = CliRunner().invoke(main, ["intel", "publish", *common, "--state", str(tmp_path / "pub.json"),
                                       "--bundle", str(bundle_path)])
    assert result.exit_code == 0, result.output
    assert f"accepted {len(shared)}" in result.output and "out_of_band 1" in result.output

    result = CliRunner().invoke(main, ["intel", "pull", *common, "--state", str(tmp_path / "sub.json"),
                                       "--group", str(group), "--out", str(tmp_path / "pulled")])
    assert result.exit_code == 0, result.output
    [pulled_file] = (tmp_path / "pulled").iterdir()
    pulled = json.loads(pulled_file.read_text())["objects"]
    assert {o["id"] for o in pulled} == {o["id"] for o in shared}
    mine = {i.id: i.kind for i in collect(shared)}
    assert set(mine.values()) == {"infrastructure", "identifiers", "templates", "behaviour"}
    assert {i.id: i.kind for i in collect(pulled)} == mine

    keyring = load_keyring(group)
    reader = next(c for c in Server(medallion_url, user="member", password=PASSWORD).api_roots[0].collections
                  if c.id == MEDALLION_COLLECTION)
    pages = list(as_pages(reader.get_objects, per_request=10))
    assert len(pages) > 1
    objects = [o for page in pages for o in page.get("objects", [])]
    assert {o["id"] for o in objects} == {o["id"] for o in shared}
    assert [reject_reason(o, keyring) for o in objects] == [None] * len(objects)  # signatures intact
    assert {i.id: i.kind for i in collect(objects)} == mine
    assert len(reader.get_manifest()["objects"]) == len(shared)
    result = CliRunner().invoke(main, ["intel", "match", "--store", str(small_store(tmp_path / "peer").root),
                                       "--bundle", str(pulled_file), "--group-key", str(keys / "group.key"),
                                       "--group", str(group), "--out", str(tmp_path / "matches.csv")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "matches.csv").read_text().count("acct_a") == 4


def test_our_client_against_medallion(medallion_url, keys, tmp_path):
    bundle = export_bundle(campaigns_doc(), ExportOptions("p1", GROUP_KEY, keys["p1"]))
    shared = [o for o in bundle["objects"] if o["type"] != "extension-definition"]  # never posted: out of band
    pub = TaxiiClient(medallion_url, MEDALLION_COLLECTION, "member", PASSWORD)
    counts = pub.publish(bundle["objects"], State.load(tmp_path / "pub.json"))
    assert counts["failed"] == 0 and counts["accepted"] == len(shared) and counts["out_of_band"] == 1
    keyring = {name: key.public_key() for name, key in keys.items()}
    sub = TaxiiClient(medallion_url, MEDALLION_COLLECTION, "member", PASSWORD)
    state = State.load(tmp_path / "sub.json")
    pulled = sub.pull(state, keyring, page_size=10)
    assert not pulled.rejected and pulled.pages > 1
    assert {o["id"] for o in pulled.accepted} == {o["id"] for o in shared}
    assert sub.pull(State.load(tmp_path / "sub.json"), keyring).accepted == []  # added_after remembered


def _refused_url() -> str:
    """A URL on 127.0.0.1 where nothing listens: the port is bound, then released."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/taxii2/"


def test_client_with_the_hub_down_names_the_url_and_the_cause(tmp_path):
    url = _refused_url()
    client = TaxiiClient(url, COLLECTION, "p2", PASSWORD, timeout=5)
    with pytest.raises(TaxiiClientError, match=rf"^{re.escape(url)}: cannot reach the TAXII hub \(ConnectError: "
                                               r".*[Cc]onnection refused"):
        client.pull(State.load(tmp_path / "state.json"), None)
    with pytest.raises(TaxiiClientError, match="cannot reach the TAXII hub"):
        client.publish([{"type": "identity", "id": "identity--0"}], State.load(None))
    assert not (tmp_path / "state.json").exists()  # nothing recorded as pulled


@pytest.fixture()
def not_taxii_url():
    """A real HTTP server that answers every GET with an HTML page (a wrong --url, a login portal)."""
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            body = b"<!doctype html><title>Welcome</title>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:  # noqa: ANN002
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/taxii2/"
    server.shutdown()
    thread.join(timeout=10)


def test_cli_pull_from_a_server_that_is_not_taxii(not_taxii_url, tmp_path, monkeypatch):
    _, _, group = _export_cli(tmp_path)
    monkeypatch.setenv("DG_TAXII_PASSWORD", PASSWORD)
    result = CliRunner().invoke(main, ["intel", "pull", "--url", not_taxii_url, "--collection", COLLECTION, "--user",
                                       "p2", "--state", str(tmp_path / "s.json"), "--group", str(group), "--out",
                                       str(tmp_path / "pulled")])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.exception
    text = " ".join(result.output.split())
    assert f"{not_taxii_url}: not a TAXII response (HTTP 200, text/html, not JSON)" in text
