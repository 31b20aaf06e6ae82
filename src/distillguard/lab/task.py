"""The lab's checkable task: multi-digit addition with a step-by-step trace, one character a token.

``347+589=`` is the prompt; the teacher answers with a reasoning trace, one step per column from the units up
(``7+9+0=16,4+8+1=13,3+5+1=09``), then ``#`` and the answer (``0936``) and ``$`` (end). Every answer can be
checked, so teacher and student accuracy are exact. Operands are zero-padded: every prompt has the same length,
so batched generation needs no padding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from distillguard.resist.text import conclusion_first

PAD, EOS, ANSWER = "_", "$", "#"
CHARS = "0123456789+=,#$_"
STOI = {c: i for i, c in enumerate(CHARS)}
PAD_ID, EOS_ID = STOI[PAD], STOI[EOS]
MAX_ANSWER = 8  # a garbled sample's "answer" is cut when restated (it must fit the model's positions)


def encode(text: str) -> list[int]:
    return [STOI[c] for c in text]


def decode(ids: list[int] | np.ndarray) -> str:
    return "".join(CHARS[int(i)] for i in ids)


@dataclass(frozen=True)
class Problem:
    a: int
    b: int
    digits: int

    @property
    def prompt(self) -> str:
        return f"{self.a:0{self.digits}d}+{self.b:0{self.digits}d}="

    @property
    def answer(self) -> str:
        return f"{self.a + self.b:0{self.digits + 1}d}"

    def steps(self) -> list[str]:
        out, carry = [], 0
        a, b = f"{self.a:0{self.digits}d}"[::-1], f"{self.b:0{self.digits}d}"[::-1]
        for da, db in zip(a, b, strict=True):
            s = int(da) + int(db) + carry
            out.append(f"{da}+{db}+{carry}={s:02d}")
            carry = s // 10
        return out

    def completion(self) -> str:
        """The teacher's clean output: trace, answer, end."""
        return ",".join(self.steps()) + ANSWER + self.answer + EOS


def problems(n: int, digits: int, rng: np.random.Generator) -> list[Problem]:
    hi = 10 ** digits
    a, b = rng.integers(0, hi, n), rng.integers(0, hi, n)
    return [Problem(int(x), int(y), digits) for x, y in zip(a, b, strict=True)]


def completion_length(digits: int) -> int:
    return digits * 10 - 1 + 1 + digits + 1 + 1  # steps and commas, '#', answer, '$'


def split(completion: str) -> tuple[str, str]:
    """(trace, answer) of a completion; the answer is what follows the last ``#`` up to ``$``."""
    body = completion.split(EOS, 1)[0]
    if ANSWER not in body:
        return body, ""
    trace, _, answer = body.rpartition(ANSWER)
    return trace, answer


def correct(problem: Problem, completion: str) -> bool:
    return split(completion)[1] == problem.answer


# -- text-level defences applied to a completion (what a gateway does to the served text) --------------------------

def withhold(completion: str) -> str:
    """Reasoning withheld: the answer alone."""
    _, answer = split(completion)
    return ANSWER + answer + EOS


def summarise(completion: str, keep_steps: int = 1) -> str:
    """Reasoning cut to its first step(s), as ``perturb.summarise`` cuts a trace to its first sentences."""
    trace, answer = split(completion)
    return ",".join(trace.split(",")[:keep_steps]) + ANSWER + answer + EOS


def restructure(completion: str) -> str:
    """Conclusion first (the trace's last sub-conclusion, the answer, stated before the steps); answer intact."""
    trace, answer = split(completion)
    steps = conclusion_first(trace.split(","), answer[:MAX_ANSWER])
    return ",".join(steps) + ANSWER + answer + EOS
