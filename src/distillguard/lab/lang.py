"""The lab's open-ended text for provenance: a random word-level language with real entropy.

Arithmetic traces are nearly deterministic, so a watermark has no room in them (a logit bias cannot flip a token
the teacher is sure of): radioactivity is measured on free text, as in the radioactivity paper. The source is a
seeded first-order Markov chain over ``words`` tokens, each word followed by ``successors`` others with Zipf
weights (about 4 bits of entropy a token); the teacher is a small transformer trained on it from scratch.
Token 0 is padding (never a watermark window), 1 starts and ends a sequence.
"""

from __future__ import annotations

import numpy as np

PAD_ID, BOS_ID = 0, 1
FIRST_WORD = 2


class MarkovSource:
    def __init__(self, words: int, successors: int, seed: int, zipf: float = 1.1) -> None:
        rng = np.random.default_rng(seed)
        self.vocab_size = words + FIRST_WORD
        self.next = np.stack([rng.choice(words, successors, replace=False) + FIRST_WORD
                              for _ in range(self.vocab_size)])
        weights = 1.0 / np.arange(1, successors + 1) ** zipf
        self.probs = weights / weights.sum()

    def sample(self, n: int, length: int, rng: np.random.Generator) -> list[list[int]]:
        seqs = np.empty((n, length), dtype=np.int64)
        seqs[:, 0] = BOS_ID
        seqs[:, 1] = rng.integers(FIRST_WORD, self.vocab_size, n)
        choice = rng.choice(len(self.probs), size=(n, length), p=self.probs)
        for t in range(2, length):
            seqs[:, t] = self.next[seqs[:, t - 1], choice[:, t]]
        return seqs.tolist()

    def entropy_bits(self) -> float:
        return float(-(self.probs * np.log2(self.probs)).sum())


def prompts(n: int, vocab_size: int, rng: np.random.Generator) -> list[list[int]]:
    """Two-token prompts (start, a random word)."""
    return [[BOS_ID, int(w)] for w in rng.integers(FIRST_WORD, vocab_size, n)]
