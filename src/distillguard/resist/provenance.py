"""Provenance: was a suspect model trained on our watermarked outputs? (watermark radioactivity)

The test of Sander et al. ("Watermarking makes language models radioactive", NeurIPS 2024, arXiv 2402.14904) for
the KGW watermark our engines apply (:class:`~distillguard.resist.decode.KeyedWatermark`):

1. Collect the suspect's tokens with their watermark window (the previous token, for left-hash width 1):
   *generation mode* (closed model: an endpoint or a file of its generations, prompted with our prompts) or
   *reading mode* (open model: a local model reads our watermarked texts; each position's top-1 prediction is
   scored against the text's previous token).
2. **De-duplicate**: each {window, token} tuple is scored once, however often the suspect repeats it; without
   this, repetitive but clean models look radioactive.
3. **Exclude copies of the prompt**: a tuple that already occurs in the suspect's input (our watermarked prompt
   or text) is not scored: a clean model that copies it would inherit our green tokens without any training.
   Context token 0 is never scored (transformers seeds it with 0 for every key).
4. Optionally **filter** (supervised setting): score only tuples whose window occurs in the watermarked outputs we
   served to the suspected accounts (the windows the suspect can have trained on).
5. Under H0 (the suspect is independent of our key) each scored tuple is green with probability gamma, so the
   number of green tuples is Binomial(N, gamma) and the p-value is its upper tail.

*Reading mode with the suspect's probabilities* (an open model we can run, :func:`reading_masses`): instead of its
top-1 guess, each position contributes the suspect's next-token distribution (its ``top_k`` most likely tokens).
Per distinct window the distributions are averaged (positions sharing a window share one green list, so they are
one observation, the de-duplication of step 2), tokens that already followed that window earlier in the text are
left out (step 3), and the statistic is the probability mass on green tokens above gamma, summed over windows
(each weighed by the square root of its positions, its exposure ``e_w``):
``S = sum_w e_w sum_v p_wv (green_wv - gamma)``. Under H0 the green flags are independent of the suspect's
probabilities (gamma each, negatively associated within a window), so ``S`` has mean 0 and variance at most
``gamma (1 - gamma) sum (e_w p_wv)^2``, and the p-value is Chernoff's bound on its upper tail with the exact
Bernoulli moment generating function (valid at any sample size, conservative). A model that learned our watermarked
texts leans towards their green tokens everywhere, not only where its top-1 guess flips, so this uses far more of
what it absorbed than the top-1 test.

*Paired with a reference model* (``reading_masses(reference=...)``): most of the plain statistic's variance is the
language itself (which next tokens are plausible at all), which the suspect shares with any model of it. Given a
model that never trained on our watermarked outputs reading the same texts (our own serving model's
distribution before the watermark, or any model with the same tokenizer), each tuple weighs the suspect's probability
*minus* the reference's (each window read at its first position in each text only: a later one follows a token its
own green list chose, and excluding those tokens would tie the weights to the key), and
``S = sum_w e_w sum_v (p_wv - r_wv) (green_wv - k/N)``. Under H0 the green lists are
independent of both models, so ``S`` has mean 0; its weights are signed, so negative association no longer bounds
it, but a green list is a uniformly random k-subset of the N-token vocabulary, and a sum over a sample without
replacement is dominated in convex order by one with replacement (Hoeffding 1963): Chernoff's bound with that
moment generating function is valid at any sample size (:class:`PairedNull`). In the lab, a student with 5 % of
its fine-tuning set our watermarked texts reads z 1.6 on the plain statistic and z 6.4 (p 2.3e-7) paired with our
teacher's own unwatermarked distribution, while random keys and clean students stay near 0 with unit spread.

Controls: the same tuples scored with ``control_keys`` random keys (p-values must be uniform: a suspect that only
looks radioactive because of how it writes fails here too), and, when given, a clean control model or text scored
with our key.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from distillguard.resist.keys import WatermarkKey, random_key

SKIP_CONTEXTS = frozenset({0})


def binomial_pvalue(green: int, n: int, gamma: float) -> float:
    """P(X >= green) for X ~ Binomial(n, gamma): the one-sided p-value of the green count."""
    if n <= 0 or green <= 0:
        return 1.0
    if green > n:
        raise ValueError("green > n")
    from scipy.special import betainc

    return float(betainc(green, n - green + 1, gamma))


def z_score(green: int, n: int, gamma: float) -> float:
    return (green - gamma * n) / math.sqrt(n * gamma * (1 - gamma)) if n else 0.0


@dataclass
class Tuples:
    """The de-duplicated {window, token} tuples to score, and what was left out and why."""

    pairs: list[tuple[int, int]] = field(default_factory=list)
    seen_tokens: int = 0
    duplicates: int = 0
    in_prompt: int = 0
    filtered: int = 0
    skipped_context: int = 0
    order: list[int] = field(default_factory=list)  # index of the sequence each pair came from
    weights: list[float] | None = None  # probability mass per pair (reading_masses); None: each pair counts once
    # with a reference model (reading_masses(reference=...)): the weights are the suspect's probability minus the
    # reference's (signed), scored by the paired statistic, which needs the vocabulary size
    paired: bool = False
    vocab_size: int | None = None

    def counts(self) -> dict[str, int]:
        return {"tokens": self.seen_tokens, "scored": len(self.pairs), "duplicates": self.duplicates,
                "in_prompt": self.in_prompt, "filtered": self.filtered, "context_0": self.skipped_context}


def _bigrams(ids: Sequence[int]) -> set[tuple[int, int]]:
    return {(ids[i], ids[i + 1]) for i in range(len(ids) - 1)}


def generation_tuples(items: Iterable[tuple[Sequence[int], Sequence[int]]], *,
                      filter_contexts: set[int] | None = None,
                      skip_contexts: frozenset[int] = SKIP_CONTEXTS) -> Tuples:
    """Tuples from (prompt ids, generated ids) pairs (generation mode). The first generated token's window is the
    prompt's last token; tuples found in the prompt are excluded."""
    out, seen = Tuples(), set()
    for n, (prompt, generated) in enumerate(items):
        prompt_pairs = _bigrams(list(prompt))
        ids = list(prompt[-1:]) + list(generated)
        for i in range(1, len(ids)):
            out.seen_tokens += 1
            pair = (ids[i - 1], ids[i])
            if pair[0] in skip_contexts:
                out.skipped_context += 1
            elif pair in prompt_pairs:
                out.in_prompt += 1
            elif filter_contexts is not None and pair[0] not in filter_contexts:
                out.filtered += 1
            elif pair in seen:
                out.duplicates += 1
            else:
                seen.add(pair)
                out.pairs.append(pair)
                out.order.append(n)
    return out


def reading_tuples(texts: Iterable[Sequence[int]], predictions: Iterable[Sequence[int]], *,
                   filter_contexts: set[int] | None = None,
                   skip_contexts: frozenset[int] = SKIP_CONTEXTS) -> Tuples:
    """Tuples from a model reading our texts (reading mode): ``predictions[i]`` is its top-1 guess for ``text[i+1]``,
    scored against the window ``text[i]``; a tuple that already occurred in the text before is excluded."""
    out, seen = Tuples(), set()
    for n, (text, preds) in enumerate(zip(texts, predictions, strict=True)):
        earlier: set[tuple[int, int]] = set()
        for i in range(len(text) - 1):
            out.seen_tokens += 1
            pair = (text[i], preds[i])
            if pair[0] in skip_contexts:
                out.skipped_context += 1
            elif pair in earlier:
                out.in_prompt += 1
            elif filter_contexts is not None and pair[0] not in filter_contexts:
                out.filtered += 1
            elif pair in seen:
                out.duplicates += 1
            else:
                seen.add(pair)
                out.pairs.append(pair)
                out.order.append(n)
            earlier.add((text[i], text[i + 1]))
    return out


WINDOW_WEIGHTS = ("exposure", "mean")
READING_TOP_K = 64  # tokens per position the probability statistic reads


def reading_masses(texts: Iterable[Sequence[int]], distributions: Iterable[Any], *, top_k: int = READING_TOP_K,
                   weigh: str = "exposure", filter_contexts: set[int] | None = None,
                   skip_contexts: frozenset[int] = SKIP_CONTEXTS, reference: Iterable[Any] | None = None,
                   vocab_size: int | None = None) -> Tuples:
    """Weighted tuples from a model reading our texts with its probabilities (see the module docstring):
    ``distributions[i]`` is an array ``[len(text) - 1, vocab]`` (or longer) of its next-token probabilities at each
    position of ``texts[i]``, or, for a large vocabulary, the pair ``(token_ids, probabilities)`` of arrays
    ``[positions, k]`` holding only each position's ``k >= top_k`` most likely tokens (:func:`top_probabilities`).
    One tuple per (window, token) with the token's probability averaged over the
    positions that share the window; tokens that followed the window earlier in the same text are left out.

    ``weigh``: how windows count against each other. ``exposure`` (default) weighs a window by the square root of
    the number of positions it has in the texts read (a model that trained on the texts saw the window's green
    tokens that often, so its lean grows with it, while one window's weight stays bounded); ``mean``: every
    window once. Any weights fixed before the key is applied keep the test valid.

    ``reference`` (the same shape as ``distributions``, with ``vocab_size``): a model that never trained on our
    watermarked outputs reading the same texts, e.g. our own serving model's distribution before the watermark is
    applied. Each tuple's weight is then the suspect's probability *minus* the reference's (over the tokens either
    ranks in its top ``top_k``), and :func:`score` uses the paired statistic: what the two models share (the
    language itself, most of the variance of the plain statistic) cancels, and what is left is how far the suspect
    leans towards our green tokens beyond a model that never saw them (module docstring, "paired")."""
    if weigh not in WINDOW_WEIGHTS:
        raise ValueError(f"weigh: expected one of {', '.join(WINDOW_WEIGHTS)}, got {weigh!r}")
    if reference is not None and not vocab_size:
        raise ValueError("reading_masses: a reference needs vocab_size (the watermark's vocabulary)")
    import numpy as np

    def row_tokens(dist: Any, i: int) -> tuple[list[int], list[float]]:
        if isinstance(dist, tuple):
            ids, probs = np.asarray(dist[0][i]), np.asarray(dist[1][i], dtype=np.float64)
        else:
            ids, probs = None, np.asarray(dist[i], dtype=np.float64)
        k = min(top_k, probs.shape[-1])
        top = np.argpartition(-probs, k - 1)[:k] if k < len(probs) else np.arange(len(probs))
        tokens = (ids[top] if ids is not None else top).tolist()
        return tokens, probs[top].tolist()

    acc: dict[int, dict[int, float]] = {}
    positions: dict[int, int] = defaultdict(int)
    first: dict[int, int] = {}  # window -> the first text it occurs in
    out = Tuples(paired=reference is not None, vocab_size=vocab_size)
    refs = iter(reference) if reference is not None else None
    for n, (text, dist) in enumerate(zip(texts, distributions, strict=True)):
        ref = next(refs, None) if refs is not None else None
        if refs is not None and ref is None:
            raise ValueError(f"reading_masses: the reference has fewer texts than the suspect ({n})")
        earlier: set[tuple[int, int]] = set()
        windows: set[int] = set()  # windows met earlier in this text
        for i in range(len(text) - 1):
            out.seen_tokens += 1
            ctx = int(text[i])
            if ctx in skip_contexts:
                out.skipped_context += 1
            elif filter_contexts is not None and ctx not in filter_contexts:
                out.filtered += 1
            elif out.paired and ctx in windows:
                # paired: only a window's first position in each text is read. Later ones follow a token the
                # window's own green list chose earlier in the text (a model may copy it); leaving out those
                # tokens instead would make which weights are zero depend on the key, and signed weights would
                # turn that into a bias either way
                out.in_prompt += 1
            else:
                tokens, masses = row_tokens(dist, i)
                if ref is not None:  # the suspect's probability minus the reference's, over either's top tokens
                    mine = dict(zip(tokens, masses, strict=True))
                    theirs = dict(zip(*row_tokens(ref, i), strict=True))
                    tokens = list(mine.keys() | theirs.keys())
                    masses = [mine.get(v, 0.0) - theirs.get(v, 0.0) for v in tokens]
                sums = acc.setdefault(ctx, {})
                first.setdefault(ctx, n)
                positions[ctx] += 1
                for v, mass in zip(tokens, masses, strict=True):
                    if (ctx, v) in earlier:
                        out.in_prompt += 1
                        continue
                    sums[v] = sums.get(v, 0.0) + mass
            earlier.add((int(text[i]), int(text[i + 1])))
            windows.add(ctx)
    if refs is not None and next(refs, None) is not None:
        raise ValueError("reading_masses: the reference has more texts than the suspect")
    out.weights = []
    for ctx, sums in acc.items():
        for v, total in sums.items():
            if total > 0 or (out.paired and total != 0):
                out.pairs.append((ctx, v))
                out.order.append(first[ctx])
                mean = total / positions[ctx]
                out.weights.append(mean * math.sqrt(positions[ctx]) if weigh == "exposure" else mean)
    out.duplicates = sum(positions.values()) - len(acc)
    return out


def top_probabilities(probabilities: Any, k: int = READING_TOP_K) -> tuple[Any, Any]:
    """A suspect's next-token probabilities ``[positions, vocab]`` (a torch tensor) reduced to the ``(token_ids,
    probabilities)`` of each position's ``k`` most likely tokens, as :func:`reading_masses` reads them: a model's
    full distributions over a real vocabulary take gigabytes per hundred texts, the top ``k`` a few hundred kB."""
    values, ids = probabilities.topk(min(k, probabilities.shape[-1]), dim=-1)
    return ids.numpy(), values.float().numpy()


def chernoff_pvalue(excess: float, weights: Sequence[float], gamma: float) -> float:
    """Upper bound on P(S >= excess) for ``S = sum w_i (g_i - gamma)`` with ``g_i`` Bernoulli(gamma), independent or
    negatively associated (one key's green list in a window): Chernoff's bound with the exact Bernoulli moment
    generating function, ``inf_l exp(-l excess) prod E exp(l w_i (g_i - gamma))``. Valid at any sample size; for
    equal weights it is the binomial's Chernoff (Kullback-Leibler) bound."""
    import numpy as np
    from scipy.optimize import minimize_scalar

    w = np.asarray(weights, dtype=np.float64)
    w = w[w > 0]
    if excess <= 0 or not len(w):
        return 1.0
    if excess >= (1.0 - gamma) * w.sum():
        return float(np.exp(np.log(gamma) * len(w))) if excess <= (1.0 - gamma) * w.sum() + 1e-12 else 0.0

    def log_bound(lam: float) -> float:
        a, b = -lam * gamma * w, lam * (1.0 - gamma) * w
        return float(-lam * excess + np.sum(np.logaddexp(np.log(1.0 - gamma) + a, np.log(gamma) + b)))

    scale = excess / max(float(np.sum(w * w)) * gamma * (1.0 - gamma), 1e-300)  # the Gaussian optimum, roughly
    hi = max(scale * 8.0, 1.0)
    best = minimize_scalar(log_bound, bounds=(0.0, hi), method="bounded", options={"xatol": 1e-9 * hi})
    return float(min(1.0, math.exp(min(0.0, best.fun))))


def green_size(vocab_size: int, gamma: float) -> int:
    """Tokens in one green list (transformers' ``WatermarkLogitsProcessor``: ``int(vocab_size * gamma)``)."""
    return int(vocab_size * gamma)


class PairedNull:
    """The paired statistic's null distribution for one set of signed weights, grouped by window.

    Under H0 each window's green list is a uniformly random subset of ``k`` of the ``N`` vocabulary tokens,
    independent across windows and of the weights. ``S_w = sum of w_v over the green v`` is then a sample of ``k``
    values drawn *without replacement* from the window's ``N`` weights (zeros for tokens not scored), which is
    dominated in convex order by ``k`` draws *with* replacement (Hoeffding 1963, theorem 4); so
    ``E exp(l S_w) <= (mean_v exp(l w_v))^k`` for any real weights, and Chernoff's bound over the product of
    windows is a valid p-value at any sample size, whatever the signs (``pvalue``). The weights are the key's
    only unknowns, so this object serves our key and every control key alike."""

    def __init__(self, pairs: Sequence[tuple[int, int]], weights: Sequence[float], vocab_size: int,
                 gamma: float) -> None:
        import numpy as np

        self.n_vocab, self.k = vocab_size, green_size(vocab_size, gamma)
        ctx = np.fromiter((c for c, _ in pairs), dtype=np.int64, count=len(pairs))
        w = np.asarray(weights, dtype=np.float64)
        order = np.argsort(ctx, kind="stable")
        self.w, ctx = w[order], ctx[order]
        self.starts = np.flatnonzero(np.r_[True, ctx[1:] != ctx[:-1]]) if len(ctx) else np.zeros(0, np.int64)
        self.sizes = np.diff(np.r_[self.starts, len(ctx)]) if len(ctx) else np.zeros(0, np.int64)
        sums = np.add.reduceat(self.w, self.starts) if len(ctx) else np.zeros(0)
        squares = np.add.reduceat(self.w * self.w, self.starts) if len(ctx) else np.zeros(0)
        n, k = self.n_vocab, self.k
        self.expected = float(k / n * sums.sum())  # E S under H0
        # the variance of a size-k sample without replacement from N values (zeros included)
        self.variance = float(np.sum(k * (n - k) / (n * (n - 1)) * (squares - sums * sums / n))) if n > 1 else 0.0
        self._mean = sums / n

    def log_mgf(self, lam: float) -> float:
        """``sum_w k (log mean_v exp(lam w_v) - lam mean_v w_v)``: the log of the bound on E exp(lam (S - E S))."""
        import numpy as np

        if not len(self.w):
            return 0.0
        x = lam * self.w
        shift = np.maximum(np.maximum.reduceat(x, self.starts), 0.0)
        total = np.add.reduceat(np.exp(x - np.repeat(shift, self.sizes)), self.starts)
        total = total + (self.n_vocab - self.sizes) * np.exp(-shift)  # the unscored tokens weigh 0
        log_mean = shift + np.log(total) - math.log(self.n_vocab)
        return float(self.k * np.sum(log_mean - lam * self._mean))

    def pvalue(self, excess: float) -> float:
        """Chernoff's bound on P(S - E S >= excess) under H0 (see the class docstring)."""
        from scipy.optimize import minimize_scalar

        if excess <= 0 or not len(self.w) or self.variance <= 0:
            return 1.0
        scale = excess / self.variance  # the Gaussian optimum
        hi = max(scale * 8.0, 1e-6)
        best = minimize_scalar(lambda lam: -lam * excess + self.log_mgf(lam), bounds=(0.0, hi), method="bounded",
                               options={"xatol": 1e-9 * hi})
        return float(min(1.0, math.exp(min(0.0, best.fun))))


GreenFn = Callable[[WatermarkKey, Sequence[tuple[int, int]]], list[bool]]


def torch_green(vocab_size: int) -> GreenFn:
    """Green membership from transformers' processor itself (the one the engine ran)."""
    from distillguard.resist.decode import KeyedWatermark

    def green(key: WatermarkKey, pairs: Sequence[tuple[int, int]]) -> list[bool]:
        wm = KeyedWatermark(key, vocab_size, cache_size=1 << 30)
        by_ctx: dict[int, list[int]] = defaultdict(list)
        for i, (ctx, _) in enumerate(pairs):
            by_ctx[ctx].append(i)
        out = [False] * len(pairs)
        for ctx, idx in by_ctx.items():
            mask = wm.green_mask(ctx)
            for i in idx:
                tok = pairs[i][1]
                out[i] = bool(mask[tok]) if 0 <= tok < vocab_size else False
        return out

    return green


@dataclass
class KeyScore:
    key_id: str
    gamma: float
    scored: int
    green: int
    pvalue: float
    z: float
    # or "mass": green probability mass (reading_masses), Chernoff's bound; or "paired": the suspect's probability
    # on green tokens beyond a reference model's (reading_masses(reference=...)), Hoeffding-Chernoff bound
    statistic: str = "binomial"
    mass: float = 0.0  # with "mass": total probability mass scored ...
    green_mass: float = 0.0  # ... and the part of it on green tokens; with "paired": the lean beyond chance

    @property
    def green_fraction(self) -> float:
        if self.statistic == "paired":
            return float("nan")
        if self.statistic == "mass":
            return self.green_mass / self.mass if self.mass else float("nan")
        return self.green / self.scored if self.scored else float("nan")


def score(tuples: Tuples, key: WatermarkKey, green_fn: GreenFn, null: PairedNull | None = None
          ) -> tuple[KeyScore, list[bool]]:
    """Our key's (or a control key's) score of ``tuples``; ``null``: the paired statistic's null distribution when
    already built for these tuples (it does not depend on the key)."""
    flags = green_fn(key, tuples.pairs)
    g, n, gamma = sum(flags), len(flags), key.greenlist_ratio
    if tuples.paired:
        if tuples.weights is None or not tuples.vocab_size:
            raise ValueError("paired tuples need weights and vocab_size (reading_masses(reference=...))")
        null = null or PairedNull(tuples.pairs, tuples.weights, tuples.vocab_size, gamma)
        lean = float(sum(w for w, f in zip(tuples.weights, flags, strict=True) if f))
        excess = lean - null.expected
        z = excess / math.sqrt(null.variance) if null.variance > 0 else 0.0
        return KeyScore(key.id, gamma, n, g, null.pvalue(excess), z, "paired", 0.0, excess), flags
    if tuples.weights is None:
        return KeyScore(key.id, gamma, n, g, binomial_pvalue(g, n, gamma), z_score(g, n, gamma)), flags
    weights = tuples.weights
    mass = float(sum(weights))
    green_mass = float(sum(w for w, f in zip(weights, flags, strict=True) if f))
    excess = green_mass - gamma * mass
    variance = gamma * (1.0 - gamma) * float(sum(w * w for w in weights))
    z = excess / math.sqrt(variance) if variance > 0 else 0.0
    return KeyScore(key.id, gamma, n, g, chernoff_pvalue(excess, weights, gamma), z, "mass", mass, green_mass), flags


def control_keys(key: WatermarkKey, count: int, seed: int = 0) -> list[WatermarkKey]:
    """``count`` random keys with our key's gamma (reproducible), for the random-key control."""
    return [random_key(f"control-{seed}-{i}", rng_seed=1_000_003 * (seed + 1) + i,
                       greenlist_ratio=key.greenlist_ratio, bias=key.bias) for i in range(count)]


@dataclass
class ProvenanceResult:
    suspect: str
    key: dict[str, Any]
    mode: str
    counts: dict[str, int]
    score: KeyScore
    alpha: float
    control_keys: list[KeyScore] = field(default_factory=list)
    clean_control: dict[str, Any] | None = None
    cumulative_z: list[tuple[int, float]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def radioactive(self) -> bool:
        return self.score.pvalue < self.alpha and self.controls_ok

    @property
    def control_false_positive_rate(self) -> float:
        if not self.control_keys:
            return float("nan")
        return sum(c.pvalue < 0.01 for c in self.control_keys) / len(self.control_keys)

    @property
    def controls_ok(self) -> bool:
        """Random-key controls behave as H0 says (<= 5 % below 0.01 allows for chance on a few dozen keys), and
        the clean control, if any, is not radioactive."""
        keys_ok = not self.control_keys or self.control_false_positive_rate <= 0.05
        clean_ok = self.clean_control is None or self.clean_control["score"]["pvalue"] >= 0.01
        return keys_ok and clean_ok

    @property
    def empirical_pvalue(self) -> float:
        """(1 + number of control keys scoring at least our z) / (1 + number of control keys)."""
        if not self.control_keys:
            return float("nan")
        return (1 + sum(c.z >= self.score.z for c in self.control_keys)) / (1 + len(self.control_keys))

    def verdict(self) -> str:
        if self.score.scored == 0:
            return "inconclusive: no token could be scored"
        if not self.controls_ok:
            return "inconclusive: the controls do not behave as a clean model should (see below)"
        if self.radioactive:
            return (f"radioactive: the suspect's text carries our watermark (key {self.key['id']}), evidence that it "
                    f"was trained on our watermarked outputs (p = {self.score.pvalue:.2e} < {self.alpha:g})")
        return (f"no evidence: p = {self.score.pvalue:.2e} >= {self.alpha:g}; this does not prove the suspect was "
                "not trained on our outputs (too few tokens, paraphrasing, or watermark neutralisation)")

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["verdict"] = self.verdict()
        out["radioactive"] = self.radioactive
        out["control_false_positive_rate"] = self.control_false_positive_rate
        out["empirical_pvalue"] = self.empirical_pvalue
        return out


def cumulative(flags: list[bool], gamma: float, points: int = 60,
               weights: Sequence[float] | None = None) -> list[tuple[int, float]]:
    n = len(flags)
    if n == 0:
        return []
    step = max(1, n // points)
    out: list[tuple[int, float]] = []
    green = 0.0
    excess = variance = 0.0
    for i, f in enumerate(flags, 1):
        if weights is None:
            green += f
            if i % step == 0 or i == n:
                out.append((i, z_score(int(green), i, gamma)))
        else:
            w = weights[i - 1]
            excess += w * (float(f) - gamma)
            variance += gamma * (1.0 - gamma) * w * w
            if i % step == 0 or i == n:
                out.append((i, excess / math.sqrt(variance) if variance > 0 else 0.0))
    return out


def test(tuples: Tuples, key: WatermarkKey, green_fn: GreenFn, *, suspect: str, mode: str, alpha: float = 1e-3,
         n_control_keys: int = 100, clean: Tuples | None = None, clean_name: str = "clean control",
         notes: Sequence[str] = ()) -> ProvenanceResult:
    null = (PairedNull(tuples.pairs, tuples.weights, tuples.vocab_size, key.greenlist_ratio)
            if tuples.paired and tuples.weights is not None and tuples.vocab_size else None)
    main, flags = score(tuples, key, green_fn, null)
    controls = [score(tuples, k, green_fn, null)[0] for k in control_keys(key, n_control_keys)]
    clean_result = None
    if clean is not None:
        clean_score, _ = score(clean, key, green_fn)
        clean_result = {"name": clean_name, "counts": clean.counts(), "score": asdict(clean_score)}
    return ProvenanceResult(suspect=suspect, key=key.public(), mode=mode, counts=tuples.counts(), score=main,
                            alpha=alpha, control_keys=controls, clean_control=clean_result,
                            cumulative_z=cumulative(flags, key.greenlist_ratio, weights=tuples.weights),
                            notes=list(notes))


# -- where the suspect's tokens come from ---------------------------------------------------------------------------

def read_generations(path: str | Path, encode: Callable[[str], list[int]] | None) -> list[tuple[list[int], list[int]]]:
    """A file of the suspect's generations: JSON Lines with ``prompt``/``completion`` (or ``text``) strings, or
    ``prompt_ids``/``token_ids`` lists; a ``.txt`` file is one generation per line without prompt."""
    path = Path(path)
    out: list[tuple[list[int], list[int]]] = []
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            if path.suffix == ".txt":
                if encode is None:
                    raise ValueError(f"{path}: a text file needs --tokenizer")
                out.append(([], encode(line.rstrip("\n"))))
                continue
            try:
                obj = json.loads(line)
            except ValueError as exc:
                raise ValueError(f"{path}:{lineno}: not JSON: {exc}") from None
            if "token_ids" in obj:
                out.append((list(obj.get("prompt_ids") or []), list(obj["token_ids"])))
                continue
            text = obj.get("completion", obj.get("text"))
            if not isinstance(text, str):
                raise ValueError(f"{path}:{lineno}: completion: expected a string (or token_ids)")
            if encode is None:
                raise ValueError(f"{path}:{lineno}: text generations need --tokenizer (our model's tokenizer)")
            prompt = obj.get("prompt") or ""
            out.append((encode(prompt) if prompt else [], encode(text)))
    return out


def query_endpoint(base_url: str, model: str, prompts: Sequence[str], *, api_key: str | None = None,
                   max_tokens: int = 256, temperature: float = 1.0, timeout: float = 120.0) -> list[str]:
    """Completions from an OpenAI-compatible endpoint (``/v1/chat/completions``), one per prompt."""
    import httpx

    headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
    url = base_url.rstrip("/") + ("/chat/completions" if base_url.rstrip("/").endswith("/v1")
                                  else "/v1/chat/completions")
    out = []
    with httpx.Client(timeout=timeout, headers=headers) as client:
        for prompt in prompts:
            resp = client.post(url, json={"model": model, "messages": [{"role": "user", "content": prompt}],
                                          "max_tokens": max_tokens, "temperature": temperature})
            resp.raise_for_status()
            message = resp.json()["choices"][0]["message"]
            out.append((message.get("reasoning_content") or "") + (message.get("content") or ""))
    return out
