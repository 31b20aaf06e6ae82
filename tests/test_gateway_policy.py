"""Policy loading (errors name file, line and field), GCRA budgets, audit durability."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from distillguard.decide import DecisionPolicy
from distillguard.gateway.audit import AuditLog, read_audit
from distillguard.gateway.policy import PolicyError, load_policy, parse_policy
from distillguard.gateway.throttle import Rate, charge, gcra


def test_default_policy_starts_in_shadow_with_one_tier_per_verdict():
    policy = load_policy()
    assert policy.mode == "shadow" and policy.fail == "open"
    assert [t.action for t in policy.tiers] == ["block", "throttle", "perturb", "allow"]
    assert policy.tier_for("block").name == "block" and policy.tier_for("allow").name == "default"
    assert policy.decide == DecisionPolicy()  # the file states the defaults of the one decision stage


TIERS = ("  - {name: b, verdict: block, action: block}\n  - {name: t, verdict: throttle, action: throttle}\n"
         "  - {name: w, verdict: watch, action: perturb}\n")


@pytest.mark.parametrize(("text", "expected"), [
    ("tiers:\n  - name: a\n    verdict: allow\n    requests_per_minute: -3\n",
     "p.yaml:4: tiers[0].requests_per_minute"),
    ("mode: loud\ntiers:\n" + TIERS + "  - {name: a, verdict: allow}\n",
     "p.yaml:1: mode: must be one of shadow, enforce"),
    ("tiers:\n  - {name: a, verdict: allow, action: nuke}\n", "p.yaml:2: tiers[0].action: must be one of"),
    ("tiers:\n  - {name: a, verdict: allow}\n", "p.yaml:1: tiers: every verdict needs a tier; missing watch"),
    ("tiers:\n" + TIERS + "  - {name: a, verdict: allow}\n  - {name: c, verdict: allow}\n",
     "p.yaml:1: tiers[4].verdict: 'allow' already has tier 3"),
    ("tiers:\n  - {name: a, min_risk: 0.5}\n", "p.yaml:2: tiers[0].min_risk: tiers select accounts by verdict"),
    ("tierz: []\n", "p.yaml:1: tierz: unknown field"),
    ("tiers:\n" + TIERS + "  - {name: a, verdict: allow}\nperturb:\n  reasoning: hide\n",
     "p.yaml:7: perturb.reasoning"),
    ("decide:\n  throttle: 2\ntiers:\n" + TIERS + "  - {name: a, verdict: allow}\n", "p.yaml:1: decide: "),
    ("version: 1\n", "p.yaml:1: version: only version 2"),
    ("tiers: [\n", "p.yaml:"),
])
def test_policy_errors_name_file_line_and_field(text, expected):
    with pytest.raises(PolicyError, match="^" + expected.replace("[", r"\[").replace("]", r"\]")):
        parse_policy(text, "p.yaml")


def test_missing_policy_file_is_a_clear_error(tmp_path):
    with pytest.raises(PolicyError, match="cannot read policy"):
        load_policy(tmp_path / "nope.yaml")


def test_gcra_admits_burst_then_spaces_requests():
    rate = Rate(per_minute=60, burst_s=3)  # one a second, three at once
    tat, allowed = None, []
    for _ in range(5):
        ok, new_tat, retry = gcra(tat, 0.0, rate)
        allowed.append(ok)
        tat = new_tat
    assert allowed == [True, True, True, False, False]
    ok, _, retry = gcra(tat, 0.0, rate)
    assert not ok and retry == pytest.approx(1000.0)
    assert gcra(tat, 1000.0, rate)[0]


def test_token_budget_goes_into_debt_after_the_fact():
    rate = Rate(per_minute=6000, burst_s=1)  # 100 tokens a second
    tat = charge(None, 0.0, rate, 500)  # a 500-token answer: 4 s of debt beyond the burst
    ok, _, retry = gcra(tat, 0.0, rate, cost=0)
    assert not ok and retry == pytest.approx(4000.0)
    assert gcra(tat, 4000.0, rate, cost=0)[0]


def test_audit_lines_survive_sigkill(tmp_path):
    path = tmp_path / "audit.jsonl"
    code = (f"from distillguard.gateway.audit import AuditLog\nimport os, signal\nlog = AuditLog({str(path)!r})\n"
            "print(log._syncer.pid, flush=True)\n"
            "for i in range(100):\n    log.write({'id': i})\nos.kill(os.getpid(), signal.SIGKILL)\n")
    proc = subprocess.run([sys.executable, "-c", code], timeout=30, capture_output=True)
    assert proc.returncode == -9
    assert [e["id"] for e in read_audit(path)] == list(range(100))
    syncer = int(proc.stdout.split()[0])  # the fsync process notices its parent is gone, syncs and exits
    deadline = time.monotonic() + 10
    while os.path.exists(f"/proc/{syncer}") and time.monotonic() < deadline:
        with open(f"/proc/{syncer}/stat") as handle:
            if handle.read().rsplit(")", 1)[1].split()[0] == "Z":
                break  # exited; a zombie until init reaps it
        time.sleep(0.05)
    assert not os.path.exists(f"/proc/{syncer}") or time.monotonic() < deadline


def test_audit_group_commit_runs_in_a_syncer_process(tmp_path):
    log = AuditLog(tmp_path / "audit.jsonl", fsync_ms=10)
    assert log._syncer is not None and log._syncer.poll() is None
    log.write({"id": 1})
    time.sleep(0.2)
    assert log._syncer.poll() is None
    log.close()
    assert log._syncer is None and read_audit(tmp_path / "audit.jsonl") == [{"id": 1}]


def test_audit_is_append_only_and_skips_a_torn_tail(tmp_path):
    path = tmp_path / "audit.jsonl"
    for run in range(2):
        log = AuditLog(path, fsync_ms=0)
        log.write({"run": run})
        log.close()
    with open(path, "ab") as handle:
        handle.write(b'{"run": 2')  # crash mid-line
    assert [e["run"] for e in read_audit(path)] == [0, 1]
    assert os.stat(path).st_size > 0


def test_batch_evidence_reloads_and_is_decided_like_batch(tmp_path):
    from distillguard.gateway.scoring import BatchRisk, FusedScorer

    header = "account_id,risk,verdict,campaign_id,signals,exchanges,points_harvest,points_elicitation,points_identity\n"
    path = tmp_path / "accounts.csv"
    path.write_text(header + "a,0.97,block,campaign-1,x,50,4,3,3\nb,0.59,watch,,y,50,9,0,0\n")
    clock = [0.0]
    batch = BatchRisk(tmp_path, check_every_s=1.0, clock=lambda: clock[0])
    scorer = FusedScorer(batch=batch)
    a = scorer.score("a", {}, 0)
    assert a.verdict == "block" and a.campaign_id == "campaign-1"
    assert scorer.score("b", {}, 0).verdict == "watch"  # one family only: never restricted
    path.write_text(header + "a,0.10,allow,,,50,0.5,0,0\n")
    os.utime(path, (1e9, 1e9))
    clock[0] = 5.0
    assert scorer.score("a", {}, 0).verdict == "allow"
    path.write_text("account_id,risk\na,lots\n")  # a broken file keeps the last good detections
    os.utime(path, (2e9, 2e9))
    clock[0] = 10.0
    assert scorer.score("a", {}, 0).verdict == "allow"
