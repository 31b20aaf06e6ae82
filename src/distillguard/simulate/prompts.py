"""Request parameters as people and pass-through proxies set them.

The prompts themselves are real (simulate/corpus.py, simulate/sessions.py); only parameter habits live here.
"""

from __future__ import annotations

import random

from distillguard.simulate.text import pick


def sampling(r: random.Random, request: dict, high_tokens: float = 0.1) -> None:
    """Varied, human-chosen parameters (or SDK defaults) written into ``request``."""
    t = pick(r, (None, None, 0.7, 1.0, 0.5, 0.2, 1.2, 0.9))
    if t is not None:
        request["temperature"] = t
    u = r.random()
    if u < high_tokens:
        request["max_tokens"] = pick(r, (8192, 16000, 16384))
    elif u < 0.45:
        request["max_tokens"] = pick(r, (256, 512, 1000, 1024, 2048, 4096))
    if r.random() < 0.55:
        request["stream"] = True
    if r.random() < 0.1:
        request["top_p"] = pick(r, (0.9, 0.95, 1.0))
