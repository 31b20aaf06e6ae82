"""Shared helpers for the intel tests (no tests here): a hand-made campaigns.json, keys, a hub, a tiny store."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from distillguard.intel.hub.config import hash_password, parse_config
from distillguard.intel.signing import generate_key, public_pem
from distillguard.model.account import accounts_to_table, flatten_account
from distillguard.model.exchange import flatten, rows_to_table
from distillguard.store import Store

GROUP_KEY = bytes(range(32))
PASSWORD = "s3cret-pass"
TEMPLATE = ("You are an expert software engineer. Solve the following task step by step, show your full reasoning, "
            "then output the final patch as a unified diff with tests. Task number {n}: refactor module {w}")
WORDS = ("parser", "cache", "scheduler", "router", "billing", "auth", "queue", "search", "upload", "metrics")


def campaigns_doc(with_private: bool = True) -> dict[str, Any]:
    """campaigns.json in the contract of docs/architecture.md."""
    return {
        "generated": "2026-03-02T00:00:00Z", "producer": "distillguard 0.1.0",
        "campaigns": [{
            "id": "campaign-3f2a9c01", "score": 0.97, "exchanges": 120345,
            "accounts": ["acct_a1", "acct_a2", "acct_a3", "acct_a4"],
            "first_seen": "2026-02-03T01:02:03Z", "last_seen": "2026-02-28T22:00:00Z",
            "capabilities": {"coding": 0.61, "tool_use": 0.30, "math": 0.09},
            "models": {"aurora-2": 60000, "aurora-3": 60345},
            "evidence": [{"kind": "shared_payment", "detail": "14 accounts share 3 payment fingerprints",
                          "weight": 0.3}],
            "atlas": ["AML.T0024.002", "AML.T0005.001", "AML.T0008.005", "AML.T0040"],
            "infrastructure": {"ip_prefixes": ["203.0.113.0/24", "10.0.0.0/8"], "asns": [64512],
                               "tls_fps": ["t13d1516h2_8daaf6152771"], "user_agents": ["python-httpx/0.27"]},
            "identifiers": {"payment_fps": ["pay_secret_fp_777"], "email_domains": ["mailbox-farm.example"],
                            "signup_ips": ["203.0.113.9"]} if with_private else {},
            "templates": [{"fingerprint": "9f1c", "example": TEMPLATE.format(n=1, w="parser"), "count": 5012},
                          {"fingerprint": "aa01", "example": "rare one off prompt text here", "count": 3}],
            "behaviour": {"median_max_tokens": 8192, "single_turn_share": 0.99, "cot_share": 0.8,
                          "inter_arrival_cv": 0.1},
        }],
    }


def member_keys(names: tuple[str, ...] = ("p1", "p2", "p3")) -> dict[str, Any]:
    return {name: generate_key() for name in names}


def hub_config(keys: dict[str, Any], db: str, clearance: dict[str, str] | None = None, **extra: Any):
    members = {name: {"password_hash": hash_password(PASSWORD, iterations=1000),
                      "public_key": public_pem(key.public_key()).decode(), "groups": ["frontier"],
                      "clearance": (clearance or {}).get(name, "amber")} for name, key in keys.items()}
    members["outsider"] = {"password_hash": hash_password(PASSWORD, iterations=1000),
                           "public_key": public_pem(generate_key().public_key()).decode(), "groups": ["other"]}
    doc = {"members": members, "database": db, "collections": [
        {"id": "9a1b2c3d-0000-4000-8000-000000000001", "title": "frontier labs", "group": "frontier"},
        {"id": "9a1b2c3d-0000-4000-8000-000000000002", "title": "others", "group": "other"}], **extra}
    return parse_config(doc, "test-config")


COLLECTION = "9a1b2c3d-0000-4000-8000-000000000001"


def _record(i: int, account: str, ts: datetime, ip: str, text: str, asn: int, ua: str, max_tokens: int) -> dict:
    return {"id": f"ex-{account}-{i}", "ts": ts.isoformat().replace("+00:00", "Z"), "account_id": account,
            "client": {"ip": ip, "asn": asn, "user_agent": ua, "tls_fp": "t13d_benign" if asn != 64512 else
                       "t13d1516h2_8daaf6152771"},
            "endpoint": "/v1/chat/completions",
            "request": {"model": "aurora-3", "max_tokens": max_tokens,
                        "messages": [{"role": "user", "content": text}]},
            "response": {"choices": [{"message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
                         "usage": {"prompt_tokens": 50, "completion_tokens": 900}}}


def small_store(root: Path, n_attack: int = 4, n_benign: int = 16, per_account: int = 12, seed: int = 7) -> Store:
    """Attack accounts (acct_a*) use the campaign's infrastructure and template; benign ones (acct_b*) do not."""
    rng = random.Random(seed)
    start = datetime(2026, 2, 10, tzinfo=UTC)
    records, accounts = [], []
    for a in range(n_attack):
        account = f"acct_a{a + 1}"
        accounts.append({"account_id": account, "payment_fp": "pay_secret_fp_777" if a < 2 else f"pay_{a}",
                         "email_domain": "mailbox-farm.example", "signup_ip": f"203.0.113.{a + 9}"})
        for i in range(per_account):
            text = TEMPLATE.format(n=rng.randint(1, 9999), w=rng.choice(WORDS))
            ip = f"203.0.113.{rng.randint(1, 254)}"
            records.append(_record(i, account, start + timedelta(seconds=60 * i + a), ip, text, 64512,
                                   "python-httpx/0.27", 8192))
    for b in range(n_benign):
        account = f"acct_b{b + 1}"
        accounts.append({"account_id": account, "payment_fp": f"pay_benign_{b}", "email_domain": "gmail.com",
                         "signup_ip": f"192.0.2.{b + 1}"})
        for i in range(per_account):
            text = f"{rng.choice(WORDS)} question {i}: how do I {rng.choice(WORDS)} my {rng.choice(WORDS)} in python"
            records.append(_record(i, account, start + timedelta(minutes=rng.randint(0, 5000)), f"192.0.2.{b + 1}",
                                   text, 7922, "Mozilla/5.0", rng.choice([256, 512, 1024])))
    store = Store.open(root)
    store.write_exchanges([rows_to_table([flatten(r) for r in records])])
    store.write_accounts(accounts_to_table([flatten_account(a) for a in accounts]))
    return store
