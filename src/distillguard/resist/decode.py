"""Decode-time defences as logits processors (needs the ``lab`` extra: PyTorch and ``transformers``).

* :class:`KeyedWatermark`: transformers' own ``WatermarkLogitsProcessor`` (KGW, left-hash seeding), keyed by a
  :class:`~distillguard.resist.keys.WatermarkKey`. Green lists are computed by the parent class
  (``_get_greenlist_ids``: same seed, same permutation, so ``WatermarkDetector`` and our provenance test agree);
  this subclass only caches them per context token and adds the bias for a whole batch in one ``scatter_add``
  instead of a Python loop over rows (the parent's cost grows with batch size; tested equal to the parent).
* :class:`AntidistillationProcessor`: antidistillation sampling (Savani et al., arXiv 2504.13146), finite-difference
  form. A proxy student ``θ`` and a copy moved one step ``ε`` along the gradient of the proxy's downstream loss
  ``g = ∇ℓ(θ)/|∇ℓ(θ)|``; the teacher's logits get ``λ · (log p_{θ+εg}(t|x) − log p_θ(t|x)) / ε`` added: tokens a
  student would learn to predict more *if it were getting worse* at the task are favoured. Two proxy forward passes
  per step (key-value cached here).

Both are ``transformers.LogitsProcessor``\\ s (pass them in ``model.generate(logits_processor=[...])``); the vLLM
adapter is :mod:`distillguard.resist.vllm_plugin`. Per-request switching: :func:`processors_for` turns an
:class:`~distillguard.resist.directive.EngineDirective` (what the gateway sent) into the list for that request.
"""

from __future__ import annotations

import copy
import inspect
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import torch
from transformers import LogitsProcessor, WatermarkLogitsProcessor

from distillguard.resist.directive import EngineDirective
from distillguard.resist.keys import KeyRing, WatermarkKey


class KeyedWatermark(WatermarkLogitsProcessor):
    """``WatermarkLogitsProcessor`` for one key; green lists cached per context token, applied batch-wide."""

    def __init__(self, key: WatermarkKey, vocab_size: int, device: str | torch.device = "cpu",
                 cache_size: int = 4096) -> None:
        super().__init__(vocab_size=vocab_size, device=device, greenlist_ratio=key.greenlist_ratio, bias=key.bias,
                         hashing_key=key.hashing_key, seeding_scheme="lefthash", context_width=1)
        self.key = key
        self.cache_size = cache_size
        self._cache: OrderedDict[int, torch.Tensor] = OrderedDict()

    def greenlist(self, context_token: int) -> torch.Tensor:
        """The green token ids after ``context_token`` (int32, cached: ``cache_size`` x gamma x vocab x 4 bytes,
        about 200 MB for 4,096 contexts of a 50k vocabulary; one ``randperm(vocab)`` per miss)."""
        ids = self._cache.get(context_token)
        if ids is None:
            seq = cast(torch.LongTensor, torch.tensor([context_token], dtype=torch.long))
            ids = self._get_greenlist_ids(seq).to(torch.int32)
            self._cache[context_token] = ids
            if len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(context_token)
        return ids

    def green_mask(self, context_token: int) -> torch.Tensor:
        mask = torch.zeros(self.vocab_size, dtype=torch.bool)
        mask[self.greenlist(context_token).long()] = True
        return mask

    def __call__(self, input_ids: torch.LongTensor, scores: torch.Tensor) -> torch.Tensor:
        if input_ids.shape[-1] < 1:
            return scores
        index = torch.stack([self.greenlist(t) for t in input_ids[:, -1].tolist()]).to(scores.device, torch.long)
        return scores.scatter_add(1, index, torch.full(index.shape, self.bias, dtype=scores.dtype,
                                                       device=scores.device))

    def apply_row(self, context_token: int | None, logits: torch.Tensor) -> torch.Tensor:
        """One request's logits row (the vLLM per-request path)."""
        if context_token is None:
            return logits
        ids = self.greenlist(context_token).to(logits.device, torch.long)
        return logits.index_add(0, ids, torch.full(ids.shape, self.bias, dtype=logits.dtype, device=logits.device))


def perturbed_proxy(proxy: torch.nn.Module, loss_fn: Callable[[torch.nn.Module], torch.Tensor],
                    epsilon: float) -> torch.nn.Module:
    """A copy of ``proxy`` moved ``epsilon`` along the unit gradient of ``loss_fn(proxy)`` (the downstream loss)."""
    proxy.zero_grad(set_to_none=True)
    loss = loss_fn(proxy)
    loss.backward()
    grads = [p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p) for p in proxy.parameters()]
    proxy.zero_grad(set_to_none=True)
    norm = float(sum(float((g.double() ** 2).sum()) for g in grads)) ** 0.5 or 1.0
    moved = copy.deepcopy(proxy)
    with torch.no_grad():
        for p, g in zip(moved.parameters(), grads, strict=True):
            p.add_(g, alpha=epsilon / norm)
    moved.eval()
    return moved


def _cache_arg(model: torch.nn.Module) -> str:
    """``cache`` (transformers >= 5.2x) or ``past_key_values`` (earlier), whichever ``forward`` takes."""
    params = inspect.signature(model.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


class AntidistillationProcessor(LogitsProcessor):
    """Adds ``strength`` × the finite-difference poisoning direction of a proxy student to the teacher's logits.

    ``proxy`` and ``moved`` (from :func:`perturbed_proxy`) must share the teacher's vocabulary; they are run on the
    same token ids as the teacher, with their own key-value caches (re-primed when the batch changes). Stateful:
    build one per ``generate`` call (or per request).
    """

    def __init__(self, proxy: torch.nn.Module, moved: torch.nn.Module, strength: float, epsilon: float,
                 answer_guard: Callable[[torch.LongTensor], torch.Tensor] | None = None) -> None:
        self.proxy, self.moved = proxy, moved
        self.strength, self.epsilon = float(strength), float(epsilon)
        self.answer_guard = answer_guard
        self._state: dict[str, Any] = {}

    def reset(self) -> None:
        self._state = {}

    @torch.no_grad()
    def delta(self, input_ids: torch.LongTensor) -> torch.Tensor:
        length, past = self._state.get("length"), self._state.get("past")
        rows = self._state.get("rows")
        incremental = past is not None and length == input_ids.shape[1] - 1 and rows == input_ids.shape[0]
        feed = input_ids[:, -1:] if incremental else input_ids
        outs = []
        new_past = []
        for i, model in enumerate((self.proxy, self.moved)):
            name = _cache_arg(model)
            out = model(input_ids=feed, use_cache=True, **{name: past[i] if incremental and past else None})
            outs.append(torch.log_softmax(out.logits[:, -1].float(), dim=-1))
            new_past.append(getattr(out, "cache", None) or getattr(out, "past_key_values", None))
        self._state = {"length": input_ids.shape[1], "past": new_past, "rows": input_ids.shape[0]}
        return (outs[1] - outs[0]) / self.epsilon

    def __call__(self, input_ids: torch.LongTensor, scores: torch.Tensor) -> torch.Tensor:
        if self.strength == 0:
            return scores
        d = self.delta(input_ids).to(scores.dtype)
        vocab = scores.shape[-1]
        if d.shape[-1] != vocab:  # the proxy's head may be padded differently: align on the shared ids
            width = min(vocab, d.shape[-1])
            pad = torch.zeros(d.shape[0], vocab, dtype=scores.dtype, device=scores.device)
            pad[:, :width] = d[:, :width]
            d = pad
        if self.answer_guard is not None:
            d = d * self.answer_guard(input_ids).unsqueeze(-1).to(d.dtype)
        return scores + self.strength * d


@dataclass
class EngineResources:
    """What an engine plugin holds to honour directives: the key ring and, per proxy name, the proxy pair."""

    keyring: KeyRing | None = None
    proxies: dict[str, tuple[torch.nn.Module, torch.nn.Module]] = field(default_factory=dict)
    epsilon: float = 1e-2
    vocab_size: int = 0
    _watermarks: dict[str, KeyedWatermark] = field(default_factory=dict)

    def watermark(self, key_id: str) -> KeyedWatermark:
        wm = self._watermarks.get(key_id)
        if wm is None:
            if self.keyring is None:
                raise ValueError("directive asks for a watermark but the engine has no key ring")
            wm = KeyedWatermark(self.keyring.get(key_id), self.vocab_size)
            self._watermarks[key_id] = wm
        return wm


def processors_for(directive: EngineDirective | None, resources: EngineResources) -> list[LogitsProcessor]:
    """The logits processors one request gets (antidistillation first, the watermark last)."""
    if directive is None:
        return []
    procs: list[LogitsProcessor] = []
    if directive.antidistillation > 0:
        pair = resources.proxies.get(directive.proxy or "default")
        if pair is None:
            raise ValueError(f"directive names proxy {directive.proxy or 'default'!r}, which the engine has not loaded")
        procs.append(AntidistillationProcessor(pair[0], pair[1], directive.antidistillation, resources.epsilon))
    if directive.watermark_key:
        procs.append(resources.watermark(directive.watermark_key))
    return procs
