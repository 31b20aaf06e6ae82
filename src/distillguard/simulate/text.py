"""The synthetic text that remains next to the real corpus, drawn by both sides alike.

Task and tool-call grammars (templates x slot fillers x paraphrase noise), reasoning traces
(``reasoning_content``) stitched from pre-built step paragraphs, textbook math problems with computed
answers, benchmark-style multiple-choice items, tool schemas and tiny images. User turns and answers
come from real conversations (simulate/corpus.py); see docs/simulator.md, "Where the text comes from".
"""

from __future__ import annotations

import base64
import math
import random
import re
import struct
import zlib
from collections.abc import Sequence
from typing import Any

import orjson

from distillguard.simulate import lexicon as lx


def pick(r: random.Random, seq: Sequence):
    return seq[int(r.random() * len(seq))]


_SLOTS = {**lx.SLOTS, **{f"{k}2": v for k, v in lx.SLOTS.items()}}


class Fill(dict):
    """A ``format_map`` mapping that draws a missing slot once (``{subject2}`` draws from ``subject``)."""

    __slots__ = ("r",)

    def __init__(self, r: random.Random, **fixed: str) -> None:
        dict.__init__(self, fixed)
        self.r = r

    def __missing__(self, key: str) -> str:
        values = _SLOTS[key]
        value = self[key] = values[int(self.r.random() * len(values))]
        return value


def fill(template: str, r: random.Random, **fixed: str) -> str:
    return template.format_map(Fill(r, **fixed))


class Template:
    """Text with ``{name}`` slots, pre-split so that filling it is a single join (``str.replace`` and
    ``str.format`` rescan the whole text, which dominates the cost of long responses)."""

    __slots__ = ("parts",)

    def __init__(self, text: str) -> None:
        self.parts = re.split(r"\{(\w+)\}", text)  # literal, name, literal, name, ..., literal

    def __call__(self, values: dict[str, str]) -> str:
        parts = self.parts[:]
        for i in range(1, len(parts), 2):
            parts[i] = values[parts[i]]
        return "".join(parts)


_PRE = ("please ", "hey, ", "hi! ", "quick q: ", "ok so ", "hello, ", "question: ", "help - ")
_POST = (" thanks", " thx", " please", "?", " :)", "!", " ty", "??")


def vary(text: str, r: random.Random, typo: float = 0.12, polite: float = 0.3, lower: float = 0.2) -> str:
    """Human noise: politeness, casing and an adjacent-letter swap, each with its own probability."""
    u = r.random()
    if u < polite * 0.5:
        text = pick(r, _PRE) + (text[:1].lower() + text[1:] if text[1:2].islower() else text)
    elif u < polite:
        text += pick(r, _POST)
    if r.random() < lower:
        text = text.lower()
    elif text[:1].islower():
        text = text[0].upper() + text[1:]
    if len(text) > 6 and r.random() < typo:
        i = 1 + int(r.random() * (len(text) - 3))
        text = text[:i] + text[i + 1] + text[i] + text[i + 2:]
    return text


def _pool(sentences: Sequence[str], n: int, lo: int, hi: int, seed: int, sep: str = " ") -> tuple[list[str], ...]:
    """``n`` paragraphs of ``lo``-``hi`` sentences, each pre-split on ``{t}`` (filled by one join)."""
    rnd = random.Random(seed)
    return tuple(sep.join(rnd.sample(list(sentences), rnd.randint(lo, hi))).split("{t}") for _ in range(n))


PARAS = _pool(lx.BODY, 300, 3, 5, 1)
STEP_PARAS = _pool(lx.STEPS, 300, 4, 7, 2, sep="\n")
OPENERS = tuple(Template(o) for o in lx.OPENERS)
_AVG = {id(pool): sum(map(len, map("".join, pool))) / len(pool) for pool in (PARAS, STEP_PARAS)}


def _stitch(r: random.Random, pool: tuple[list[str], ...], topic: str, n_chars: int) -> list[str]:
    """About ``n_chars`` of paragraphs from ``pool`` with ``topic`` filled in."""
    rnd = r.random
    size = len(pool)
    return [topic.join(pool[int(rnd() * size)]) for _ in range(int(n_chars / _AVG[id(pool)] + rnd()) or 1)]


def answer(r: random.Random, topic: str, n_chars: int) -> str:
    """A plausible prose reply of roughly ``n_chars`` characters about ``topic``."""
    opener = pick(r, OPENERS)({"t": topic, "T": topic[:1].upper() + topic[1:]})
    return "\n\n".join([opener, *_stitch(r, PARAS, topic, n_chars), pick(r, lx.CLOSERS)])


def reasoning(r: random.Random, topic: str, n_chars: int, opener: str = "Let me think about this step by step.") -> str:
    """A chain-of-thought trace: hedges, self-corrections and checks, as reasoning models emit."""
    parts = _stitch(r, STEP_PARAS, topic, n_chars)
    return "\n".join([opener, *parts]) if opener else "\n".join(parts)


# --- code -------------------------------------------------------------------------------------------


# Languages without a template of their own borrow the closest syntax, under their own fence.



# --- math -------------------------------------------------------------------------------------------

MATH_KINDS = ("linear equation", "quadratic", "derivative", "integral", "probability", "rates", "combinatorics",
              "number theory", "geometry", "interest")


def math_problem(r: random.Random, kind: int) -> tuple[str, str]:
    """A problem of family ``kind`` with fresh numbers, and its answer."""
    a, b, c = 2 + int(r.random() * 18), 1 + int(r.random() * 40), 3 + int(r.random() * 90)
    k = kind % len(MATH_KINDS)
    if k == 0:
        return f"Solve for x: {a}x + {b} = {c}.", f"x = {(c - b) / a:.4g}"
    if k == 1:
        return f"Find all real roots of x^2 - {a + b}x + {a * b} = 0.", f"x = {a} or x = {b}"
    if k == 2:
        return f"Differentiate f(x) = {a}x^{b % 6 + 2} + {c}x - {b}.", f"f'(x) = {a * (b % 6 + 2)}x^{b % 6 + 1} + {c}"
    if k == 3:
        return f"Evaluate the integral of {a}x^2 from 0 to {b % 9 + 1}.", f"{a * (b % 9 + 1) ** 3 / 3:.4g}"
    if k == 4:
        return (f"A bag has {a} red and {b} blue marbles. Two are drawn without replacement. What is the "
                f"probability both are red?", f"{a * (a - 1) / ((a + b) * (a + b - 1)):.4f}")
    if k == 5:
        return (f"Two trains {c * 10} km apart travel towards each other at {a * 10} km/h and {b + 20} km/h. "
                f"When do they meet?", f"{c * 10 / (a * 10 + b + 20):.3g} hours")
    if k == 6:
        return (f"In how many ways can a committee of {a % 5 + 2} be chosen from {a + 8} people?",
                str(math.comb(a + 8, a % 5 + 2)))
    if k == 7:
        return f"Find the remainder when {a}^{c} is divided by {b + 6}.", f"{pow(a, c, b + 6)}"
    if k == 8:
        return f"A rectangle has perimeter {2 * (a + b)} and one side {a}. What is its area?", f"{a * b}"
    years = b % 15 + 2
    return f"${c * 100} is invested at {a / 2:.1f}% compounded yearly. What is it worth after {years} years?", \
        f"{c * 100 * (1 + a / 200) ** years:.2f}"


# --- images and tools -------------------------------------------------------------------------------


def _png(rgb: tuple[int, int, int]) -> str:
    """A 2x2 PNG as a data URL: real image parts, tiny payloads."""
    raw = b"".join(b"\x00" + bytes(rgb) * 2 for _ in range(2))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    return "data:image/png;base64," + base64.b64encode(png).decode()


IMAGES = tuple(_png(((i * 53) % 256, (i * 97) % 256, (i * 151) % 256)) for i in range(12))


def image_part(r: random.Random) -> dict:
    return {"type": "image_url", "image_url": {"url": pick(r, IMAGES)}}


_PARAMS: dict[str, tuple[dict[str, Any], str]] = {
    "bash": ({"command": {"type": "string"}}, "Run a shell command"),
    "read_file": ({"path": {"type": "string"}}, "Read a file from the workspace"),
    "write_file": ({"path": {"type": "string"}, "content": {"type": "string"}}, "Write a file"),
    "str_replace_editor": ({"path": {"type": "string"}, "old_str": {"type": "string"}, "new_str": {"type": "string"}},
                           "Replace text in a file"),
    "search_code": ({"query": {"type": "string"}}, "Search the codebase"),
    "run_tests": ({"target": {"type": "string"}}, "Run the test suite"),
    "web_search": ({"query": {"type": "string"}}, "Search the web"),
    "browser_open": ({"url": {"type": "string"}}, "Open a URL in the browser"),
    "list_dir": ({"path": {"type": "string"}}, "List a directory"),
    "python": ({"code": {"type": "string"}}, "Execute Python code"),
    "edit_file": ({"target_file": {"type": "string"}, "code_edit": {"type": "string"}}, "Edit a file"),
    "run_terminal_cmd": ({"command": {"type": "string"}, "is_background": {"type": "boolean"}}, "Run a command"),
    "grep_search": ({"query": {"type": "string"}, "include_pattern": {"type": "string"}}, "Regex search"),
    "computer": ({"action": {"type": "string", "enum": ["screenshot", "left_click", "type", "key", "scroll"]},
                  "coordinate": {"type": "array", "items": {"type": "integer"}}, "text": {"type": "string"}},
                 "Control the mouse and keyboard of a desktop and take screenshots"),
}
TOOL_SCHEMAS = {
    name: {"type": "function", "function": {"name": name, "description": desc,
                                            "parameters": {"type": "object", "properties": props,
                                                           "required": [next(iter(props))]}}}
    for name, (props, desc) in _PARAMS.items()
}
_COMMANDS = ("pytest -x -q", "git status", "ls -la src", "grep -rn TODO src", "npm test", "cargo build", "make lint",
             "python -m mypy src", "go test ./...", "cat setup.cfg")


def tool_call(r: random.Random, name: str, f: Fill) -> dict:
    """One OpenAI ``tool_calls`` entry with arguments that fit the tool."""
    if name in ("bash", "run_terminal_cmd"):
        args: dict = {"command": pick(r, _COMMANDS)}
    elif name in ("read_file", "list_dir", "write_file", "edit_file", "str_replace_editor"):
        args = {"path": pick(r, lx.FILES).format_map(f)}
        if name != "read_file" and name != "list_dir":
            args["content" if name == "write_file" else "new_str"] = f"# fix {f['bug']}\n"
    elif name == "computer":
        args = {"action": pick(r, ("left_click", "type", "screenshot", "scroll")),
                "coordinate": [int(r.random() * 1280), int(r.random() * 800)]}
    elif name == "python":
        args = {"code": f"import math\nprint(math.comb({int(r.random() * 40) + 5}, 3))"}
    else:
        args = {"query": fill("{subject} {lang} {module}", r, module=pick(r, lx.MODULES))}
    return {"id": f"call_{r.getrandbits(64):016x}", "type": "function",
            "function": {"name": name, "arguments": orjson.dumps(args).decode()}}



def mc_question(r: random.Random, subject: str, item: int) -> str:
    """A benchmark-style multiple-choice item; the stem depends on the item number, options on the RNG."""
    topic = subject.replace("_", " ")
    stem = pick(r, _STEMS).format(topic=topic, x=3 + item % 97, y=2 * (3 + item % 97))
    rnd = r.random
    opts = "\n".join(f"{letter}. {pick(r, _OPTIONS).format(topic=topic, n=int(rnd() * 90) + 2)}" for letter in "ABCD")
    return f"Q{item}. {stem}\n{opts}"


_STEMS = ("Which statement about {topic} is most accurate?", "In {topic}, what follows if the quantity doubles from "
          "{x} to {y}?", "Which of the following best explains a core result of {topic}?",
          "A textbook exercise in {topic} gives the values {x} and {y}. Which conclusion is valid?",
          "Which option is NOT consistent with standard {topic}?")
_OPTIONS = ("it increases by a factor of {n}", "the effect is unchanged", "it depends only on the boundary conditions",
            "the classical account of {topic} applies", "none of the above", "it decreases monotonically",
            "it holds only when n > {n}", "the relationship is linear", "both effects cancel out",
            "the answer is {n}")
