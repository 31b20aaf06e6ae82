"""Text-level trace rewriting for providers who cannot touch decoding (pure Python, no model).

A *structural rewrite* keeps every fact a human reader needs and the final answer untouched, but changes the
order a student would learn to produce: the conclusion comes first, then the supporting steps, and self-talk
("wait", "hmm", "let me double-check") is removed. A student fine-tuned on such traces learns to state its
conclusion before deriving it, the order in which autoregressive models reason worst (the idea of PART,
arXiv 2510.11545, which also removes self-talk and reorders sub-conclusions). Measured in the lab
(``distillguard lab``): the ``restructure`` defence.
"""

from __future__ import annotations

import re

# sentences that are the model talking to itself rather than a step of the argument
SELF_TALK = re.compile(
    r"^\s*(?:wait|hmm+|hm+|oh|uh|um|ok(?:ay)?|alright|right|so,?\s+let me|let me (?:double[- ]?)?check|"
    r"let me (?:think|see|verify|re-?check|reconsider)|let's see|actually,?\s+(?:wait|no|hold on)|hold on|"
    r"no,? wait|i think i|maybe i|but wait)\b[^.!?\n]*[.!?]?\s*$",
    re.IGNORECASE,
)
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(\[])")
CONCLUSION_LABEL = "Conclusion: "


def conclusion_first(steps: list[str], conclusion: str | None = None) -> list[str]:
    """``conclusion`` (default: the last step) moved before the other steps, whose order is kept."""
    if conclusion is None:
        if len(steps) < 2:
            return list(steps)
        return [steps[-1], *steps[:-1]]
    return [conclusion, *steps]


def steps_of(text: str) -> list[str]:
    """A trace's steps: its non-empty lines, or its sentences when it is one paragraph."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) > 1:
        return lines
    return [s.strip() for s in _SENTENCE.split(text.strip()) if s.strip()]


def drop_self_talk(steps: list[str]) -> list[str]:
    kept = [s for s in steps if not SELF_TALK.match(s)]
    return kept or steps


def restructure_trace(text: str) -> str:
    """The trace with self-talk removed and its last step (the conclusion) stated first."""
    steps = drop_self_talk(steps_of(text))
    if len(steps) < 2:
        return "\n".join(steps)
    first, *rest = conclusion_first(steps)
    return "\n".join([CONCLUSION_LABEL + first, *rest])
