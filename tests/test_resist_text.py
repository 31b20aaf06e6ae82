"""Structural trace rewrite: pure text, non-streaming and streaming chat completions."""

from __future__ import annotations

import orjson

from distillguard.resist.gateway_text import StreamRestructurer, restructure_response
from distillguard.resist.text import CONCLUSION_LABEL, restructure_trace

TRACE = ("First, 17 * 3 = 51.\nWait, let me double-check that.\nThen 51 + 4 = 55.\nHmm.\n"
         "So the answer is 55.")


def test_restructure_keeps_steps_moves_conclusion_drops_self_talk():
    out = restructure_trace(TRACE)
    lines = out.splitlines()
    assert lines[0] == CONCLUSION_LABEL + "So the answer is 55."
    assert lines[1:] == ["First, 17 * 3 = 51.", "Then 51 + 4 = 55."]
    assert "Wait" not in out and "Hmm" not in out


def test_restructure_one_paragraph_and_degenerate():
    assert restructure_trace("A is 2. B is 3. So A+B is 5.").splitlines()[0] == CONCLUSION_LABEL + "So A+B is 5."
    assert restructure_trace("Just one step.") == "Just one step."
    assert restructure_trace("Hmm.") == "Hmm."  # all self-talk: kept rather than emptied


def _chunk(delta: dict, finish=None, index=0) -> bytes:
    obj = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
           "choices": [{"index": index, "delta": delta, "finish_reason": finish}]}
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def _events(raw: bytes) -> list[dict]:
    out = []
    for block in raw.split(b"\n\n"):
        if block.startswith(b"data: ") and block != b"data: [DONE]":
            out.append(orjson.loads(block[6:]))
    return out


def test_non_streaming_answer_untouched():
    body = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "55", "reasoning_content": TRACE}}]}
    assert restructure_response(body)
    msg = body["choices"][0]["message"]
    assert msg["content"] == "55"
    assert msg["reasoning_content"] == restructure_trace(TRACE)


def test_stream_reasoning_released_rewritten_before_answer_in_any_chunking():
    stream = _chunk({"role": "assistant"})
    for piece in [TRACE[i:i + 7] for i in range(0, len(TRACE), 7)]:
        stream += _chunk({"reasoning_content": piece})
    stream += _chunk({"content": "5"}) + _chunk({"content": "5"}) + _chunk({}, "stop") + b"data: [DONE]\n\n"
    for size in (1, 13, 200, len(stream)):
        r = StreamRestructurer()
        out = b"".join(r.feed(stream[i:i + size]) for i in range(0, len(stream), size)) + r.close()
        events = _events(out)
        reasoning = [e["choices"][0]["delta"].get("reasoning_content") for e in events]
        reasoning = [x for x in reasoning if x]
        assert reasoning == [restructure_trace(TRACE)]
        content = "".join(e["choices"][0]["delta"].get("content") or "" for e in events)
        assert content == "55"
        kinds = [("r" if e["choices"][0]["delta"].get("reasoning_content") else
                  "c" if e["choices"][0]["delta"].get("content") else "o") for e in events]
        assert kinds.index("r") < kinds.index("c")
        assert out.endswith(b"data: [DONE]\n\n")
        assert events[1]["id"] == "c1" and events[1]["model"] == "m"


def test_stream_without_answer_flushes_at_end():
    r = StreamRestructurer()
    out = r.feed(_chunk({"reasoning": "Step one.\nSo it is 4."})) + r.close()
    events = _events(out)
    assert events[-1]["choices"][0]["delta"]["reasoning"] == restructure_trace("Step one.\nSo it is 4.")


def test_chained_after_the_gateway_stream_perturber():
    """The hook the gateway's Degrade action uses: StreamPerturber (logprobs stripped, reasoning kept), then us."""
    from distillguard.gateway.perturb import StreamPerturber
    from distillguard.gateway.policy import Perturb

    first, second = StreamPerturber(Perturb(reasoning="keep", strip_logprobs=True)), StreamRestructurer()
    stream = b"".join(_chunk({"reasoning_content": part}) for part in ("Hmm.\n", "A is 2.\n", "So A is 2."))
    obj = orjson.loads(_chunk({"content": "2"})[6:])
    obj["choices"][0]["logprobs"] = {"content": [{"token": "2", "logprob": -0.1}]}
    stream += b"data: " + orjson.dumps(obj) + b"\n\n" + b"data: [DONE]\n\n"
    out = second.feed(first.feed(stream)) + second.feed(first.close()) + second.close()
    events = _events(out)
    assert [e["choices"][0]["delta"].get("reasoning_content") for e in events][0] == restructure_trace(
        "Hmm.\nA is 2.\nSo A is 2.")
    assert all("logprobs" not in e["choices"][0] for e in events)
    assert events[-1]["choices"][0]["delta"]["content"] == "2"
