"""Resistance profile, key ring and engine directives: plain Python, no torch."""

from __future__ import annotations

import textwrap

import pytest

from distillguard.resist.directive import (
    HEADER,
    STORE_FIELD,
    VLLM_XARGS,
    XARG_KEY,
    DirectiveError,
    EngineDirective,
    from_request,
)
from distillguard.resist.keys import KeyError_, derive_hashing_key, load_keyring, parse_keyring
from distillguard.resist.profile import ProfileError, load_profile, parse_profile

SECRET = "11" * 32


def _keys(tmp_path, extra: str = "") -> None:
    (tmp_path / "keys.yaml").write_text(textwrap.dedent(f"""\
        version: 1
        provider: acme
        keys:
          - id: acme-2026-01
            secret: "{'22' * 32}"
            active: false
          - id: acme-2026-03
            secret_env: DG_TEST_WM
            active: true
            bias: 2.5
        {extra}"""))


PROFILE = """\
distillguard_resistance: 1
name: acme-default
provider: acme
watermark:
  keys: keys.yaml
  apply_to: restricted
antidistillation:
  proxy: small
engine:
  transport: both
tiers:
  allow: {reasoning: keep}
  watch: {antidistillation: 0.5, reasoning: restructure}
  throttle: {antidistillation: 1.5, reasoning: summarise}
  block: {}
"""


@pytest.fixture
def profile_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("DG_TEST_WM", SECRET)
    _keys(tmp_path)
    (tmp_path / "resistance.yaml").write_text(PROFILE)
    return tmp_path


def test_keyring_active_key_and_rotation(profile_dir):
    ring = load_keyring(profile_dir / "keys.yaml")
    assert ring.active.id == "acme-2026-03"
    assert ring.active.bias == 2.5
    assert ring.active.hashing_key == derive_hashing_key(bytes.fromhex(SECRET), "acme-2026-03")
    assert ring.get("acme-2026-01").hashing_key != ring.active.hashing_key  # retired key kept for old outputs
    assert 0 < ring.active.hashing_key < 2 ** 62
    assert "secret" not in ring.active.public() and "hashing_key" not in ring.active.public()


def test_keyring_errors(tmp_path, monkeypatch):
    monkeypatch.delenv("DG_TEST_WM", raising=False)
    _keys(tmp_path)
    with pytest.raises(KeyError_, match="DG_TEST_WM is not set"):
        load_keyring(tmp_path / "keys.yaml")
    with pytest.raises(KeyError_, match="more than one key is active"):
        parse_keyring({"keys": [{"id": "a", "secret": "00", "active": True},
                                {"id": "b", "secret": "01", "active": True}]}, "k.yaml")
    with pytest.raises(KeyError_, match=r"keys\[0\].greenlist_ratio"):
        parse_keyring({"keys": [{"id": "a", "secret": "00", "greenlist_ratio": 1.5}]}, "k.yaml")


def test_profile_tiers_and_directives(profile_dir):
    p = load_profile(profile_dir / "resistance.yaml")
    assert p.watermark_key == "acme-2026-03"  # the active key by default
    allow, watch, throttle = p.directive("allow"), p.directive("watch"), p.directive("throttle")
    assert not allow.active  # apply_to: restricted leaves allowed traffic unmarked
    assert watch == EngineDirective(antidistillation=0.5, proxy="small", watermark_key="acme-2026-03", tier="watch")
    assert throttle.antidistillation == 1.5
    assert p.defence("watch").reasoning == "restructure"
    assert p.record("throttle", "suspect") == {"profile": "acme-default", "profile_version": 1,
                                               "watermark_key": "acme-2026-03", "antidistillation": 1.5,
                                               "reasoning": "summarise", "tier": "suspect"}


def test_gateway_hook_marks_upstream_request_and_stored_exchange(profile_dir):
    p = load_profile(profile_dir / "resistance.yaml")
    body = {"model": "m", "messages": [], VLLM_XARGS: {XARG_KEY: "v=1;ad=0;wm=-", "other": 1}}  # client's forgery
    headers: dict[str, str] = {}
    record: dict = {}
    d = p.on_request("watch", "watch", body, headers, record)
    assert from_request(headers=headers) == d
    assert from_request(extra_args=body[VLLM_XARGS]) == d
    assert body[VLLM_XARGS]["other"] == 1
    assert record[STORE_FIELD]["watermark_key"] == "acme-2026-03"
    # allowed traffic under apply_to: restricted: nothing attached, the client's directive still removed
    body2 = {"model": "m", VLLM_XARGS: {XARG_KEY: "v=1;ad=9;wm=x"}}
    headers2: dict[str, str] = {}
    p.on_request("allow", "default", body2, headers2, None)
    assert VLLM_XARGS not in body2 and HEADER not in headers2


def test_directive_signature():
    d = EngineDirective(antidistillation=1.0, proxy="p", watermark_key="k", tier="suspect")
    secret = b"shared"
    value = d.encode(secret)
    assert EngineDirective.decode(value, secret) == d
    assert EngineDirective.decode(d.encode()) == d
    with pytest.raises(DirectiveError):
        EngineDirective.decode(d.encode(), secret)  # unsigned
    with pytest.raises(DirectiveError):
        EngineDirective.decode(value.replace("ad=1", "ad=0"), secret)  # tampered
    with pytest.raises(DirectiveError):
        EngineDirective.decode("v=2;ad=1")


@pytest.mark.parametrize(("edit", "message"), [
    (("apply_to: restricted", "apply_to: sometimes"), r"resistance.yaml:6: watermark.apply_to: must be one of"),
    (("  watch: {antidistillation: 0.5", "  watch: {antidistillation: -1"),
     r"resistance.yaml:13: tiers.watch.antidistillation: expected a number >= 0"),
    (("reasoning: restructure", "reasoning: rewrite"), r"resistance.yaml:13: tiers.watch.reasoning: must be one of"),
    (("  block: {}", "  blocked: {}"), r"resistance.yaml:15: tiers.blocked: unknown field"),
    (("distillguard_resistance: 1", "distillguard_resistance: 2"),
     r"resistance.yaml:1: distillguard_resistance: required, the format version"),
    (("transport: both", "transport: carrier-pigeon"), r"resistance.yaml:10: engine.transport: must be one of"),
])
def test_profile_errors_are_located(profile_dir, edit, message):
    path = profile_dir / "resistance.yaml"
    path.write_text(PROFILE.replace(*edit))
    with pytest.raises(ProfileError, match=message):
        load_profile(path)


def test_profile_without_watermark_key():
    p = parse_profile("distillguard_resistance: 1\ntiers:\n  throttle: {antidistillation: 1}\n", "r.yaml")
    assert p.directive("throttle").watermark_key is None
    assert p.directive("throttle").antidistillation == 1.0
    with pytest.raises(ProfileError, match=r"r.yaml:3: tiers.watch.watermark: true but"):
        parse_profile("distillguard_resistance: 1\ntiers:\n  watch: {watermark: true}\n", "r.yaml")


def test_key_id_recorded_per_exchange_survives_ingest(tmp_path, profile_dir):
    """The gateway hook's `resistance` record is kept by ingest (extra_json) and found again per key."""
    import json

    from click.testing import CliRunner

    from distillguard.cli import main
    from distillguard.resist.served import served_under_key

    p = load_profile(profile_dir / "resistance.yaml")
    lines = []
    for i, (account, verdict) in enumerate([("acct_a", "watch"), ("acct_b", "allow"), ("acct_a", "throttle")]):
        record = {"id": f"gw-{i}", "ts": f"2026-03-01T10:00:0{i}Z", "account_id": account,
                  "client": {"ip": "10.0.0.1", "user_agent": "t"}, "endpoint":
                  "/v1/chat/completions", "request": {"model": "m", "messages": [{"role": "user", "content": f"q{i}"}]},
                  "response": {"id": "r", "object": "chat.completion", "model": "m", "choices": [
                      {"index": 0, "message": {"role": "assistant", "content": f"a{i}"}, "finish_reason": "stop"}]},
                  "status": 200}
        p.on_request(verdict, verdict, record["request"], {}, record)
        lines.append(json.dumps(record))
    (tmp_path / "ex.jsonl").write_text("\n".join(lines) + "\n")
    res = CliRunner().invoke(main, ["ingest", "--store", str(tmp_path / "st"), str(tmp_path / "ex.jsonl")])
    assert res.exit_code == 0, res.output
    rows = list(served_under_key(tmp_path / "st", "acme-2026-03"))
    assert [(r["exchange_id"], r["prompt"], r["completion"]) for r in rows] == [("gw-0", "q0", "a0"),
                                                                                 ("gw-2", "q2", "a2")]
    assert [r["exchange_id"] for r in served_under_key(tmp_path / "st", "acme-2026-03", ["acct_b"])] == []


def test_shadow_mode_keeps_only_the_watermark(profile_dir):
    p = load_profile(profile_dir / "resistance.yaml")
    d = p.directive("throttle", "suspect", enforced=False)
    assert d.antidistillation == 0 and d.watermark_key == "acme-2026-03"
    assert p.reasoning("watch", enforced=False) == "keep"
    assert p.record("watch", "watch", enforced=False)["reasoning"] == "keep"
