"""Decode-time defences on real transformers models (tiny, random, built here): skipped without the lab extra."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from transformers import GPT2Config, GPT2LMHeadModel, LogitsProcessorList, WatermarkLogitsProcessor  # noqa: E402

from distillguard.resist.decode import (  # noqa: E402
    AntidistillationProcessor,
    EngineResources,
    KeyedWatermark,
    perturbed_proxy,
    processors_for,
)
from distillguard.resist.directive import EngineDirective  # noqa: E402
from distillguard.resist.keys import KeyRing, random_key  # noqa: E402
from distillguard.resist.vllm_plugin import RequestDefence  # noqa: E402

VOCAB = 50


def _model(seed: int) -> GPT2LMHeadModel:
    torch.manual_seed(seed)
    m = GPT2LMHeadModel(GPT2Config(vocab_size=VOCAB, n_positions=32, n_embd=16, n_layer=1, n_head=2))
    return m.eval()


def test_keyed_watermark_equals_transformers_processor():
    key = random_key("k", rng_seed=3, bias=2.0)
    ours = KeyedWatermark(key, VOCAB)
    parent = WatermarkLogitsProcessor(vocab_size=VOCAB, device="cpu", greenlist_ratio=0.25, bias=2.0,
                                      hashing_key=key.hashing_key, seeding_scheme="lefthash")
    ids = torch.randint(0, VOCAB, (8, 5))
    scores = torch.randn(8, VOCAB)
    assert torch.allclose(ours(ids, scores), parent(ids, scores))
    assert torch.allclose(ours(ids, scores), parent(ids, scores))  # cached green lists: same answer again
    row = ours.apply_row(int(ids[2, -1]), scores[2])
    assert torch.allclose(row, parent(ids, scores)[2])
    assert int(ours.green_mask(7).sum()) == int(VOCAB * 0.25)


def test_watermark_in_generate_biases_green_tokens():
    model = _model(0)
    key = random_key("k", rng_seed=4, bias=4.0)
    wm = KeyedWatermark(key, VOCAB)
    prompt = torch.randint(1, VOCAB, (16, 2))
    torch.manual_seed(0)
    out = model.generate(prompt, attention_mask=torch.ones_like(prompt), do_sample=True, max_new_tokens=20,
                         top_k=0, logits_processor=LogitsProcessorList([wm]), pad_token_id=0)
    seq = out.tolist()
    pairs = [(s[i - 1], s[i]) for s in seq for i in range(2, len(s))]
    green = sum(bool(wm.green_mask(a)[b]) for a, b in pairs) / len(pairs)
    assert green > 0.5  # gamma 0.25 by chance; bias 4 on a random model pushes most tokens green


def test_antidistillation_processor_matches_definition_and_caches():
    proxy = _model(1)
    data = torch.randint(0, VOCAB, (4, 10))

    def loss(m):
        return m(input_ids=data, labels=data).loss

    moved = perturbed_proxy(proxy, loss, 0.1)
    delta_params = torch.cat([(a - b).flatten() for a, b in zip(moved.parameters(), proxy.parameters(),
                                                                strict=True)])
    assert abs(float(delta_params.detach().norm()) - 0.1) < 1e-4  # one step of size epsilon along the unit gradient
    ad = AntidistillationProcessor(proxy, moved, strength=2.0, epsilon=0.1)
    ids = torch.randint(0, VOCAB, (3, 4))
    scores = torch.zeros(3, VOCAB)
    first = ad(ids, scores)
    with torch.no_grad():
        expect = 2.0 * (torch.log_softmax(moved(input_ids=ids).logits[:, -1], -1)
                        - torch.log_softmax(proxy(input_ids=ids).logits[:, -1], -1)) / 0.1
    assert torch.allclose(first, expect, atol=1e-4)
    longer = torch.cat([ids, torch.randint(0, VOCAB, (3, 1))], dim=1)
    cached = ad(longer, scores)  # one new token: incremental, with the proxies' key-value caches
    fresh = AntidistillationProcessor(proxy, moved, strength=2.0, epsilon=0.1)(longer, scores)
    assert torch.allclose(cached, fresh, atol=1e-4)
    assert torch.equal(AntidistillationProcessor(proxy, moved, 0.0, 0.1)(ids, scores), scores)


def test_processors_per_request_and_vllm_row_path():
    key = random_key("acme-1", rng_seed=5)
    proxy = _model(2)
    moved = perturbed_proxy(proxy, lambda m: m(input_ids=torch.randint(0, VOCAB, (2, 6)),
                                               labels=torch.randint(0, VOCAB, (2, 6))).loss, 0.05)
    res = EngineResources(keyring=KeyRing("acme", (key,)), proxies={"default": (proxy, moved)}, epsilon=0.05,
                          vocab_size=VOCAB)
    assert processors_for(None, res) == []
    assert processors_for(EngineDirective(), res) == []
    procs = processors_for(EngineDirective(antidistillation=1.0, watermark_key="acme-1"), res)
    assert [type(p) for p in procs] == [AntidistillationProcessor, KeyedWatermark]
    with pytest.raises(ValueError, match="proxy 'other'"):
        processors_for(EngineDirective(antidistillation=1.0, proxy="other"), res)
    # vLLM's per-request callable gives the same row as the batch processors
    prompt, output = [3, 4, 5], [6, 7]
    logits = torch.randn(VOCAB)
    row = RequestDefence(EngineDirective(antidistillation=1.0, watermark_key="acme-1"), res)(prompt, output, logits)
    ids = torch.tensor([prompt + output])
    batch = logits.unsqueeze(0)
    for p in processors_for(EngineDirective(antidistillation=1.0, watermark_key="acme-1"), res):
        batch = p(ids, batch)
    assert torch.allclose(row, batch[0], atol=1e-5)


def test_vllm_adapter_class_with_a_stand_in_vllm(tmp_path, monkeypatch):
    """The adapter against a stand-in for vLLM's AdapterLogitsProcessor base (vLLM is not a dependency)."""
    import importlib
    import sys
    import types

    from distillguard.resist import vllm_plugin

    base = type("AdapterLogitsProcessor", (), {"__init__": lambda self, cfg, device, pin: None})
    mod = types.ModuleType("vllm.v1.sample.logits_processor")
    mod.AdapterLogitsProcessor = base
    for name in ("vllm", "vllm.v1", "vllm.v1.sample"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, "vllm.v1.sample.logits_processor", mod)
    keys = tmp_path / "keys.yaml"
    keys.write_text("version: 1\nkeys:\n  - {id: acme-1, secret: '" + "ab" * 32 + "', active: true}\n")
    monkeypatch.setenv("DISTILLGUARD_KEYS", str(keys))
    monkeypatch.setenv("DISTILLGUARD_RESIST_SECRET", "s3")
    try:
        plugin = importlib.reload(vllm_plugin)
        cls = plugin.DistillGuardResist
        assert cls is not None and issubclass(cls, base)
        cfg = types.SimpleNamespace(model_config=types.SimpleNamespace(get_vocab_size=lambda: VOCAB))
        proc = cls(cfg, torch.device("cpu"), False)
        assert not proc.is_argmax_invariant()
        signed = EngineDirective(watermark_key="acme-1").encode(b"s3")
        params = types.SimpleNamespace(extra_args={"distillguard_resist": signed})
        cls.validate_params(params)
        fn = proc.new_req_logits_processor(params)
        assert isinstance(fn, plugin.RequestDefence)  # the reloaded module's class
        logits = torch.zeros(VOCAB)
        assert int((fn([1, 2], [3], logits) > 0).sum()) == int(VOCAB * 0.25)
        unsigned = types.SimpleNamespace(extra_args={"distillguard_resist": EngineDirective(
            watermark_key="acme-1").encode()})
        assert proc.new_req_logits_processor(unsigned) is None  # forged or unsigned: engine defaults
        assert proc.new_req_logits_processor(types.SimpleNamespace(extra_args=None)) is None
    finally:
        monkeypatch.undo()
        importlib.reload(vllm_plugin)
