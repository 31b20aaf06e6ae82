"""Interop on real sockets: OASIS taxii2-client against our hub, our client against OASIS medallion."""

from __future__ import annotations

import json
import threading
import time

import pytest
import uvicorn
from taxii2client.v21 import Server, as_pages

from distillguard.intel.client import State, TaxiiClient
from distillguard.intel.export import ExportOptions, export_bundle
from distillguard.intel.hub import create_app
from test_intel_fixtures import COLLECTION, GROUP_KEY, PASSWORD, campaigns_doc, hub_config, member_keys


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


def test_our_client_against_medallion(medallion_url, keys, tmp_path):
    bundle = export_bundle(campaigns_doc(), ExportOptions("p1", GROUP_KEY, keys["p1"]))
    # medallion 3.0 sorts by a "version" property and so fails (HTTP 500) on extension-definition objects,
    # whose "version" is the extension's semver: peers using medallion register our extension out of band
    bundle["objects"] = [o for o in bundle["objects"] if o["type"] != "extension-definition"]
    pub = TaxiiClient(medallion_url, MEDALLION_COLLECTION, "member", PASSWORD)
    counts = pub.publish(bundle["objects"], State.load(tmp_path / "pub.json"))
    assert counts["failed"] == 0 and counts["accepted"] == len(bundle["objects"])
    keyring = {name: key.public_key() for name, key in keys.items()}
    sub = TaxiiClient(medallion_url, MEDALLION_COLLECTION, "member", PASSWORD)
    state = State.load(tmp_path / "sub.json")
    pulled = sub.pull(state, keyring, page_size=10)
    assert not pulled.rejected and pulled.pages > 1
    assert {o["id"] for o in pulled.accepted} == {o["id"] for o in bundle["objects"]}
    assert sub.pull(State.load(tmp_path / "sub.json"), keyring).accepted == []  # added_after remembered
