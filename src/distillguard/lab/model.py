"""Tiny causal transformers for the lab: Hugging Face GPT-2 architecture, randomly initialised, trained here.

Nothing is downloaded: the configuration is built in code and the weights start random (seeded). Generation goes
through ``transformers``' own ``generate``, so the decode-time defences are exercised exactly as a serving stack
built on ``transformers`` would run them (``logits_processor=``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from transformers import GPT2Config, GPT2LMHeadModel, LogitsProcessorList


@dataclass(frozen=True)
class Arch:
    n_embd: int = 64
    n_layer: int = 2
    n_head: int = 4
    n_positions: int = 64


def new_model(vocab_size: int, arch: Arch, seed: int, pad_id: int, eos_id: int) -> GPT2LMHeadModel:
    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=vocab_size, n_positions=arch.n_positions, n_embd=arch.n_embd,
                        n_layer=arch.n_layer, n_head=arch.n_head, bos_token_id=eos_id, eos_token_id=eos_id,
                        pad_token_id=pad_id, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    model = GPT2LMHeadModel(config)
    model.generation_config.pad_token_id = pad_id
    model.generation_config.eos_token_id = eos_id
    return model


def batches(prompts: Sequence[Sequence[int]], completions: Sequence[Sequence[int]], pad_id: int,
            batch_size: int, rng: np.random.Generator, max_len: int = 1 << 30):
    """Endless shuffled batches of (input_ids, labels); labels are -100 on the prompt and the padding; sequences
    longer than ``max_len`` (the model's positions) are cut."""
    n = len(prompts)
    order = rng.permutation(n)
    pos = 0
    while True:
        if pos + batch_size > n:
            order, pos = rng.permutation(n), 0
        idx = order[pos:pos + batch_size] if n >= batch_size else rng.integers(0, n, batch_size)
        pos += batch_size
        seqs = [(list(prompts[i]) + list(completions[i]))[:max_len] for i in idx]
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
        labels = torch.full((len(seqs), width), -100, dtype=torch.long)
        for row, i in enumerate(idx):
            p = prompts[i]
            seq = seqs[row]
            ids[row, :len(seq)] = torch.tensor(seq)
            if len(seq) > len(p):
                labels[row, len(p):len(seq)] = torch.tensor(seq[len(p):], dtype=torch.long)
        yield ids, labels


def train(model: GPT2LMHeadModel, prompts: Sequence[Sequence[int]], completions: Sequence[Sequence[int]], *,
          steps: int, batch_size: int, lr: float, seed: int, pad_id: int, warmup: int = 50) -> dict[str, float]:
    """AdamW with linear warm-up and cosine decay; returns the last loss and the seconds taken."""
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01, betas=(0.9, 0.98))
    started = time.perf_counter()
    loss_value = float("nan")
    stream = batches(prompts, completions, pad_id, batch_size, rng, model.config.n_positions)
    for step in range(steps):
        scale = min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * step / max(steps, 1)))
        for group in opt.param_groups:
            group["lr"] = lr * max(scale, 0.02)
        ids, labels = next(stream)
        logits = model(input_ids=ids).logits[:, :-1]
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1),
                                                 ignore_index=-100)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        loss_value = float(loss.detach())
    model.eval()
    return {"loss": loss_value, "seconds": time.perf_counter() - started}


def trained(cache: Path | None, name: str, make: Callable[[], GPT2LMHeadModel],
            fit: Callable[[GPT2LMHeadModel], object]) -> tuple[GPT2LMHeadModel, bool]:
    """``make()`` then ``fit(model)``, or the weights saved under ``cache/name.pt`` by an earlier run with the same
    name (the name must encode everything that determines the weights). Returns (model, loaded)."""
    model = make()
    path = cache / f"{name}.pt" if cache is not None else None
    if path is not None and path.exists():
        model.load_state_dict(torch.load(path, weights_only=True))
        model.eval()
        return model, True
    fit(model)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), path)
    return model, False


@torch.no_grad()
def generate(model: GPT2LMHeadModel, prompts: Sequence[Sequence[int]], *, max_new_tokens: int, seed: int,
             temperature: float = 1.0, greedy: bool = False, processors: Sequence = (), batch_size: int = 512,
             make_processors=None) -> list[list[int]]:
    """Completions (without the prompt) for equal-length prompts, through ``model.generate``.

    ``make_processors`` (called once per batch) builds fresh stateful processors; ``processors`` are shared.
    """
    out: list[list[int]] = []
    eos = model.generation_config.eos_token_id
    for start in range(0, len(prompts), batch_size):
        chunk = torch.tensor([list(p) for p in prompts[start:start + batch_size]], dtype=torch.long)
        procs = list(processors) + (list(make_processors()) if make_processors else [])
        torch.manual_seed(seed + start)
        kwargs = {"do_sample": False} if greedy else {"do_sample": True, "temperature": temperature, "top_k": 0,
                                                     "top_p": 1.0}
        gen = model.generate(chunk, attention_mask=torch.ones_like(chunk), max_new_tokens=max_new_tokens,
                             logits_processor=LogitsProcessorList(procs), **kwargs)
        for row in gen[:, chunk.shape[1]:].tolist():
            out.append(row[:row.index(eos) + 1] if eos in row else row)
    return out


@torch.no_grad()
def mean_nll(model: GPT2LMHeadModel, prompts: Sequence[Sequence[int]], completions: Sequence[Sequence[int]],
             pad_id: int, batch_size: int = 256) -> float:
    total, count = 0.0, 0
    stream = batches(prompts, completions, pad_id, min(batch_size, len(prompts)), np.random.default_rng(0),
                     model.config.n_positions)
    for _ in range(max(1, len(prompts) // batch_size)):
        ids, labels = next(stream)
        logits = model(input_ids=ids).logits[:, :-1]
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1),
                                                 ignore_index=-100, reduction="sum")
        total += float(loss)
        count += int((labels[:, 1:] != -100).sum())
    return total / max(count, 1)
