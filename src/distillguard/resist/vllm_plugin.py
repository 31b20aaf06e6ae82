"""vLLM engine plugin: the decode-time defences, switched per request by the gateway's directive.

vLLM's OpenAI server copies a request's ``vllm_xargs`` into ``SamplingParams.extra_args``; the gateway (resistance
profile ``engine.transport: vllm_xargs``) puts its directive there under ``distillguard_resist``. This module
builds a subclass of vLLM's ``AdapterLogitsProcessor`` (the documented wrapper for per-request logits processors in
the V1 engine, ``vllm.v1.sample.logits_processor``) whose ``new_req_logits_processor`` returns, for a request with
a directive, a callable ``(prompt_ids, output_ids, logits_row) -> logits_row`` applying antidistillation and the
watermark; requests without one are left untouched (``None``).

Load it in vLLM with ``--logits-processors distillguard.resist.vllm_plugin:DistillGuardResist`` after configuring
the engine side (keys, proxy, shared secret) through environment variables read at start:

* ``DISTILLGUARD_KEYS``: the keys file (secrets via ``secret_env``),
* ``DISTILLGUARD_PROXY``: a local Hugging Face directory of the proxy student (same tokenizer as the served model)
  and ``DISTILLGUARD_PROXY_DATA``: a JSON Lines file of ``{"prompt": ..., "completion": ...}`` on which its
  downstream loss is taken (optional: without them antidistillation directives are refused at validation),
* ``DISTILLGUARD_RESIST_SECRET``: shared with the gateway; directives must then be signed.

The per-request callable (:class:`RequestDefence`) does not need vLLM and is what the tests exercise. vLLM itself is
not a dependency of distillguard: its logits-processor interface is still marked as changing, so check the class
against the vLLM version you deploy.
"""

from __future__ import annotations

import os
from typing import Any, cast

import torch

from distillguard.resist.decode import AntidistillationProcessor, EngineResources
from distillguard.resist.directive import DirectiveError, EngineDirective, from_request


class RequestDefence:
    """One request's defences on one logits row (vLLM calls it once per decoding step)."""

    def __init__(self, directive: EngineDirective, resources: EngineResources) -> None:
        self.watermark = resources.watermark(directive.watermark_key) if directive.watermark_key else None
        self.ad = None
        if directive.antidistillation > 0:
            pair = resources.proxies.get(directive.proxy or "default")
            if pair is None:
                raise ValueError(f"proxy {directive.proxy or 'default'!r} is not loaded in this engine")
            self.ad = AntidistillationProcessor(pair[0], pair[1], directive.antidistillation, resources.epsilon)

    def __call__(self, prompt_ids: list[int], output_ids: list[int], logits: torch.Tensor) -> torch.Tensor:
        if self.ad is not None:
            ids = cast(torch.LongTensor, torch.tensor([list(prompt_ids) + list(output_ids)], dtype=torch.long))
            logits = self.ad(cast(torch.LongTensor, ids.to(logits.device)), logits.unsqueeze(0)).squeeze(0)
        if self.watermark is not None:
            context = output_ids[-1] if output_ids else (prompt_ids[-1] if prompt_ids else None)
            logits = self.watermark.apply_row(context, logits)
        return logits


def resources_from_env(vocab_size: int) -> EngineResources:
    from distillguard.resist.keys import load_keyring

    keys = os.environ.get("DISTILLGUARD_KEYS")
    res = EngineResources(keyring=load_keyring(keys) if keys else None, vocab_size=vocab_size)
    proxy_dir = os.environ.get("DISTILLGUARD_PROXY")
    if proxy_dir:
        res.proxies["default"] = load_proxy(proxy_dir, os.environ.get("DISTILLGUARD_PROXY_DATA"), res.epsilon)
    return res


def load_proxy(path: str, data: str | None, epsilon: float) -> tuple[torch.nn.Module, torch.nn.Module]:
    """A local proxy student and its copy moved along the gradient of its loss on ``data`` (no download)."""
    import json

    from transformers import AutoModelForCausalLM, AutoTokenizer

    from distillguard.resist.decode import perturbed_proxy

    model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True).eval()
    tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    if not data:
        raise ValueError("DISTILLGUARD_PROXY needs DISTILLGUARD_PROXY_DATA (prompt/completion pairs)")
    with open(data, encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh if line.strip()][:64]

    def loss_fn(m: torch.nn.Module) -> torch.Tensor:
        total = torch.zeros(())
        for row in rows:
            p = tok(row["prompt"], return_tensors="pt").input_ids
            c = tok(row["completion"], return_tensors="pt", add_special_tokens=False).input_ids
            ids = torch.cat([p, c], dim=1)
            labels = ids.clone()
            labels[:, :p.shape[1]] = -100
            total = total + m(input_ids=ids, labels=labels).loss
        return total / max(len(rows), 1)

    return model, perturbed_proxy(model, loss_fn, epsilon)


def _secret() -> bytes | None:
    value = os.environ.get("DISTILLGUARD_RESIST_SECRET")
    return value.encode() if value else None


def _build_adapter() -> type | None:
    try:
        from vllm.v1.sample.logits_processor import AdapterLogitsProcessor
    except ImportError:  # vLLM not installed (or an engine without the V1 adapter)
        return None

    class DistillGuardResist(AdapterLogitsProcessor):
        """Antidistillation + keyed watermark per request, from the gateway's directive."""

        def __init__(self, vllm_config: Any, device: torch.device, is_pin_memory: bool) -> None:
            super().__init__(vllm_config, device, is_pin_memory)
            self.resources = resources_from_env(vllm_config.model_config.get_vocab_size())
            self.secret = _secret()

        @classmethod
        def validate_params(cls, params: Any) -> None:
            extra = getattr(params, "extra_args", None) or {}
            from_request(extra_args=extra, secret=None)  # raises DirectiveError (a ValueError) when malformed

        def is_argmax_invariant(self) -> bool:
            return False  # both defences can change the most likely token

        def new_req_logits_processor(self, params: Any) -> RequestDefence | None:
            try:
                directive = from_request(extra_args=getattr(params, "extra_args", None) or {}, secret=self.secret)
            except DirectiveError:  # unsigned or forged: this engine's defaults (no per-request defence)
                return None
            if directive is None or not directive.active:
                return None
            return RequestDefence(directive, self.resources)

    return DistillGuardResist


DistillGuardResist = _build_adapter()
