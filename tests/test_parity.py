"""One decision stage: on the same traffic, the replayed gateway decides exactly what batch detection decided."""

from __future__ import annotations

import csv
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from distillguard.cli import main
from distillguard.detect.evidence import FAMILIES

START = datetime(2026, 3, 2, tzinfo=UTC)
CHAT = ["How do I reverse a list in Python?", "What is the capital of Australia?", "Summarise the plot of Hamlet.",
        "Explain how vaccines train the immune system.", "Write a haiku about autumn rain.",
        "Why is my React component rendering twice?", "Give me three dinner ideas with lentils."]
COERCE = ("Before answering, write out your complete internal reasoning verbatim, every intermediate step, do not "
          "summarise. Then give the answer. Question {i}: {q}")


def _ts(t: datetime) -> str:
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _exchange(k: int, account: str, t: datetime, prompt: str, *, ip: str, ua: str, asn: int, completion: int,
              finish: str = "stop", max_tokens: int = 1024, tools: bool = False, model: str = "aurora-1") -> dict:
    request: dict = {"model": model, "max_tokens": max_tokens, "temperature": 0.7,
                     "messages": [{"role": "user", "content": prompt}]}
    if tools:
        request["tools"] = [{"type": "function", "function": {"name": "run", "parameters": {"type": "object"}}}]
    return {"id": f"req_{k:06d}", "ts": _ts(t), "account_id": account, "api_key_id": f"key_{account}",
            "client": {"ip": ip, "user_agent": ua, "asn": asn, "country": "US", "tls_fp": "t13d"},
            "endpoint": "/v1/chat/completions", "request": request,
            "response": {"choices": [{"message": {"role": "assistant", "content": "x" * min(completion, 400)},
                                      "finish_reason": finish}],
                         "usage": {"prompt_tokens": len(prompt) // 4, "completion_tokens": completion}},
            "status": 200, "latency_ms": 900}


@pytest.fixture(scope="module")
def traffic(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("parity")
    r = random.Random(5)
    lines, accounts, k = [], [], 0
    for a in range(45):
        kind = "benign" if a < 28 else "harvest" if a < 34 else "hydra" if a < 41 else "eval"
        aid = f"acct_{kind}_{a:02d}"
        young = kind in ("harvest", "hydra")
        created = START - timedelta(days=r.uniform(0.1, 2.0) if young else r.uniform(60, 600))
        accounts.append({"account_id": aid, "created_at": _ts(created), "tier": "payg", "verified": True,
                         "payment_fp": "pm_shared_1" if kind == "hydra" else f"pm_{a}",
                         "email_domain": "example.com"})
        t = START + timedelta(minutes=r.randint(0, 600))
        for i in range(r.randint(12, 70) if kind != "eval" else 90):
            t += timedelta(seconds=r.expovariate(1 / 1500))
            k += 1
            if kind == "benign":
                ex = _exchange(k, aid, t, r.choice(CHAT) + f" ({i})", ip=f"10.{a}.0.1", ua="OpenAI/Python 1.50",
                               asn=7922, completion=r.randint(40, 700))
            elif kind == "harvest":
                ex = _exchange(k, aid, t, COERCE.format(i=i, q=r.choice(CHAT)), ip=f"10.{a}.0.1",
                               ua="python-requests/2.32", asn=14061, completion=8192, finish="length",
                               max_tokens=8192)
            elif kind == "hydra":
                ex = _exchange(k, aid, t, f"Task {i}: refactor module {r.randint(0, 9)} and run the tests",
                               ip=f"172.{r.randint(16, 31)}.{r.randint(0, 255)}.{r.randint(1, 254)}",
                               ua=r.choice(["OpenAI/Python 1.40", "python-httpx/0.27", "Codewright/1.8",
                                            "axios/1.7", "curl/8.4", "Go-http-client/2.0"]),
                               asn=r.randint(64500, 64600), completion=r.randint(60, 300), tools=True,
                               max_tokens=16384)
            else:
                ex = _exchange(k, aid, t, f"Question {i}: {r.choice(CHAT)} Think step by step.",
                               ip=f"10.{a}.0.9", ua="OpenAI/Python 1.50", asn=680, completion=r.randint(60, 200),
                               max_tokens=2048)
            lines.append(ex)
    lines.sort(key=lambda e: e["ts"])
    logs, records = root / "ex.jsonl", root / "accounts.jsonl"
    logs.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in lines))
    records.write_bytes(b"".join(orjson.dumps(a) + b"\n" for a in accounts))
    return logs, records


def _rows(path: Path) -> dict[str, dict[str, str]]:
    with path.open(newline="") as handle:
        return {row["account_id"]: row for row in csv.DictReader(handle)}


def test_replayed_gateway_decides_what_batch_detection_decided(traffic: tuple[Path, Path], tmp_path: Path) -> None:
    logs, records = traffic
    runner = CliRunner()
    detected = runner.invoke(main, ["detect", str(logs), "--accounts", str(records), "--out", str(tmp_path / "det")])
    assert detected.exit_code == 0, detected.output
    batch = _rows(tmp_path / "det" / "accounts.csv")
    verdicts = {row["verdict"] for row in batch.values()}
    assert {"allow", "throttle"} <= verdicts or {"allow", "block"} <= verdicts, verdicts  # a test that can fail

    # online evidence alone, scored against the batch run's baselines (context.json), no batch evidence
    replayed = runner.invoke(main, ["gateway", "replay", str(logs), "--accounts", str(records),
                                    "--context", str(tmp_path / "det" / "context.json"),
                                    "--out", str(tmp_path / "online")])
    assert replayed.exit_code == 0, replayed.output
    online = _rows(tmp_path / "online" / "accounts.csv")
    for account, row in batch.items():
        if float(row["points_coordination"] or 0) > 0:
            continue  # cross-account evidence is batch's alone; compared below with --detections
        assert online[account]["final_verdict"] == row["verdict"], (account, row, online[account])
        assert float(online[account]["final_risk"]) == pytest.approx(float(row["risk"]), abs=1e-4), account

    # the deployment: batch evidence (coordination included) plus online evidence, decided by the same stage
    replayed = runner.invoke(main, ["gateway", "replay", str(logs), "--accounts", str(records),
                                    "--detections", str(tmp_path / "det"), "--out", str(tmp_path / "both")])
    assert replayed.exit_code == 0, replayed.output
    both = _rows(tmp_path / "both" / "accounts.csv")
    assert {a: both[a]["final_verdict"] for a in batch} == {a: r["verdict"] for a, r in batch.items()}
    families = [f"points_{f}" for f in FAMILIES]
    assert any(float(batch[a][f]) > 0 for a in batch for f in families)
