"""The LiteLLM guardrail in a real LiteLLM proxy (``litellm --config``), configured as docs/gateway.md says.

The guardrail block is read out of docs/gateway.md itself and completed with what any LiteLLM deployment has
(a model list pointing at distillguard's fake upstream, a master key, and a custom auth module mapping three keys
to three accounts). Requests go through the real ``openai`` SDK and raw HTTP; the audit log shows what the
guardrail decided. Blocking, and perturbation of JSON answers and of streams (chat chunks and Responses API
events), are checked on what the client actually receives.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import orjson
import pytest
import yaml

openai = pytest.importorskip("openai")
pytest.importorskip("litellm")
for _module in ("websockets", "backoff", "apscheduler", "jwt", "fastapi_sso", "mcp", "nacl", "multipart"):
    pytest.importorskip(_module, reason="the LiteLLM proxy's own dependencies (the test extra)")

from conftest import free_port  # noqa: E402
from distillguard.gateway import fake_upstream  # noqa: E402
from distillguard.gateway.audit import read_audit  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
MASTER = "sk-master-" + "5f1e" * 12
AUTH = '''
from litellm.proxy._types import UserAPIKeyAuth

KEYS = {"sk-good": "good", "sk-watch": "watch", "sk-bad": "bad"}


async def user_api_key_auth(request, api_key: str) -> UserAPIKeyAuth:
    key = api_key.removeprefix("Bearer ").strip()
    if key not in KEYS:
        raise Exception("unknown key")
    return UserAPIKeyAuth(api_key=key, user_id=KEYS[key])
'''
DETECTIONS = ("account_id,risk,verdict,campaign_id,signals,exchanges,points_harvest,points_elicitation\n"
              "bad,0.99,block,campaign-1,batch: harvesting,200,20,20\n"
              "watch,0.59,watch,,batch: one family,50,9,0\n")
MESSAGES = [{"role": "user", "content": "what is 6*7?"}]


def documented_guardrails() -> dict:
    """The LiteLLM ``config.yaml`` block of docs/gateway.md, as a provider would paste it."""
    text = (ROOT / "docs" / "gateway.md").read_text()
    section = text.split("## LiteLLM", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```yaml\n(.*?)```", section, re.S)
    config = next(yaml.safe_load(b) for b in blocks if "litellm_hook.DistillGuardGuardrail" in b)
    assert set(config) == {"guardrails"}
    return config


def _wait(url: str, proc: subprocess.Popen, seconds: float, log: Path) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"{url} did not come up in {seconds:g} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def proxy(tmp_path_factory):
    work = tmp_path_factory.mktemp("litellm")
    up_port, proxy_port = free_port(), free_port()
    config = documented_guardrails()
    config["guardrails"][0]["litellm_params"]["audit"] = str(work / "audit.jsonl")  # a documented option
    config["model_list"] = [{"model_name": "fake-1", "litellm_params": {
        "model": "openai/fake-1", "api_base": f"http://127.0.0.1:{up_port}/v1", "api_key": "sk-upstream"}}]
    config["general_settings"] = {"master_key": MASTER, "custom_auth": "auth.user_api_key_auth"}
    (work / "config.yaml").write_text(yaml.safe_dump(config))
    (work / "auth.py").write_text(AUTH)
    (work / "det").mkdir()
    (work / "det" / "accounts.csv").write_text(DETECTIONS)
    policy = (ROOT / "src" / "distillguard" / "data" / "policy-default.yaml").read_text()
    (work / "policy.yaml").write_text(policy.replace("\nmode: shadow", "\nmode: enforce"))
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "DISTILLGUARD_POLICY": str(work / "policy.yaml"),
           "DISTILLGUARD_DETECTIONS": str(work / "det"), "PYTHONUNBUFFERED": "1"}
    env.pop("DISTILLGUARD_AUDIT", None)
    logs = [work / "upstream.log", work / "proxy.log"]
    procs = []
    try:
        procs.append(subprocess.Popen(
            [str(BIN / "python"), "-m", "uvicorn", "distillguard.gateway.fake_upstream:app", "--host", "127.0.0.1",
             "--port", str(up_port), "--log-level", "warning"], stdout=logs[0].open("wb"), stderr=subprocess.STDOUT,
            start_new_session=True))
        _wait(f"http://127.0.0.1:{up_port}/v1/models", procs[0], 30, logs[0])
        procs.append(subprocess.Popen(
            [str(BIN / "litellm"), "--config", str(work / "config.yaml"), "--host", "127.0.0.1", "--port",
             str(proxy_port)], cwd=work, env=env, stdout=logs[1].open("wb"), stderr=subprocess.STDOUT,
            start_new_session=True))
        _wait(f"http://127.0.0.1:{proxy_port}/health/liveliness", procs[1], 150, logs[1])
        yield f"http://127.0.0.1:{proxy_port}", work / "audit.jsonl"
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)


def _client(proxy, key: str) -> openai.OpenAI:
    return openai.OpenAI(api_key=key, base_url=proxy[0] + "/v1", max_retries=0, timeout=30)


def _audit(proxy, account: str) -> list[dict]:
    return [e for e in read_audit(proxy[1]) if e["account_id"] == account]


def test_the_documented_config_runs_the_guardrail_on_every_request(proxy):
    answer = _client(proxy, "sk-good").chat.completions.create(model="fake-1", messages=MESSAGES)
    assert answer.choices[0].message.content == fake_upstream.ANSWER
    assert answer.choices[0].message.reasoning_content == fake_upstream.REASONING  # an allowed account: untouched
    entries = _audit(proxy, "good")
    assert entries and entries[-1]["action"] == "allow" and entries[-1]["endpoint"] == "/v1/chat/completions"


def test_a_blocked_account_is_refused_on_chat_and_responses(proxy):
    for call in (lambda c: c.chat.completions.create(model="fake-1", messages=MESSAGES),
                 lambda c: c.responses.create(model="fake-1", input="what is 6*7?"),
                 lambda c: c.chat.completions.create(model="fake-1", messages=MESSAGES, stream=True)):
        with pytest.raises(openai.PermissionDeniedError) as info:
            call(_client(proxy, "sk-bad"))
        assert "not permitted" in info.value.message
    assert [e["action"] for e in _audit(proxy, "bad")] == ["block"] * 3
    assert {e["endpoint"] for e in _audit(proxy, "bad")} == {"/v1/chat/completions", "/v1/responses"}


def test_perturbed_account_gets_no_reasoning_in_json_answers(proxy):
    chat = _client(proxy, "sk-watch").chat.completions.create(model="fake-1", messages=MESSAGES, logprobs=True)
    assert chat.choices[0].message.content == fake_upstream.ANSWER
    assert getattr(chat.choices[0].message, "reasoning_content", None) is None
    assert chat.choices[0].logprobs is None
    responses = _client(proxy, "sk-watch").responses.create(model="fake-1", input="what is 6*7?")
    assert [item.type for item in responses.output] == ["message"]
    assert responses.output_text == fake_upstream.ANSWER
    assert all(e["perturb"] for e in _audit(proxy, "watch"))


def test_perturbed_account_gets_no_reasoning_deltas_in_chat_streams(proxy):
    raw = httpx.post(proxy[0] + "/v1/chat/completions", timeout=30,
                     headers={"authorization": "Bearer sk-good"}, json={"model": "fake-1", "messages": MESSAGES,
                                                                        "stream": True})
    assert "reasoning_content" in raw.text  # the upstream streams reasoning, and LiteLLM relays it
    raw = httpx.post(proxy[0] + "/v1/chat/completions", timeout=30,
                     headers={"authorization": "Bearer sk-watch"}, json={"model": "fake-1", "messages": MESSAGES,
                                                                         "stream": True})
    assert raw.status_code == 200 and "reasoning" not in raw.text and "thinking" not in raw.text
    chunks = list(_client(proxy, "sk-watch").chat.completions.create(model="fake-1", messages=MESSAGES,
                                                                     stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == fake_upstream.ANSWER
    for chunk in chunks:
        assert "reasoning" not in orjson.dumps(chunk.model_dump()).decode()


def test_perturbed_account_gets_no_reasoning_events_in_responses_streams(proxy):
    with _client(proxy, "sk-good").responses.stream(model="fake-1", input="hi") as stream:
        assert any("reasoning_summary_text" in event.type for event in stream)
    with _client(proxy, "sk-watch").responses.stream(model="fake-1", input="hi") as stream:
        events = list(stream)
        final = stream.get_final_response()
    assert events and not [e.type for e in events if "reasoning" in e.type]
    assert not [e for e in events if getattr(e, "item", None) is not None and e.item.type == "reasoning"]
    assert {getattr(e, "output_index", 0) for e in events} == {0}
    assert [item.type for item in final.output] == ["message"] and final.output_text == fake_upstream.ANSWER
    streamed = [e for e in _audit(proxy, "watch") if e["endpoint"] == "/v1/responses"]
    assert streamed and all(e["action"] == "perturb" for e in streamed)
