"""Compose labelled prompts from a phrase family and real human payloads.

A positive is one instruction of a head (sometimes two heads), placed before, after or inside a payload (a
real ShareGPT odd-half human turn of the same split, or a benign prompt in the instruction's language),
sometimes framed as a system prompt, with casing / punctuation / typo noise. An instruction that the
runtime's head + tail cut would not show is moved to the front, so labels match what the model can see.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from distillguard.signals.text_model import HEAD, HEADS, TAIL
from distillguard.textlab.corpus import strict_heads

_ALT = re.compile(r"\[([^\[\]]*)\]")


@dataclass
class Sample:
    text: str
    labels: dict[str, int]  # head -> 0/1
    cap: str | None = None  # capability label (None: not used for the capability head)
    lang: str = "en"
    kind: str = "pos"  # pos / hardneg / benign / human / document
    family: str = "train"
    skip: set[str] = field(default_factory=set)  # heads this sample is not a training negative for


def expand(template: str, rng: random.Random, answers: Sequence[str] = ()) -> str:
    text = _ALT.sub(lambda m: rng.choice(m.group(1).split("|")), template)
    if "{n}" in text:
        text = text.replace("{n}", str(rng.choice([3, 5, 8, 10, 12, 15, 20, 25, 30, 50, 100])))
    for slot in ("{ra}", "{rb}"):
        if slot in text:
            text = text.replace(slot, _snippet(rng, answers))
    return text


def _snippet(rng: random.Random, answers: Sequence[str]) -> str:
    if not answers:
        return "The answer is 42."
    a = rng.choice(answers).strip()
    return a[: rng.randint(40, 160)]


def noisy(text: str, rng: random.Random) -> str:
    """Register / keyboard noise: case, punctuation, whitespace, one or two typos."""
    r = rng.random()
    if r < 0.15:
        text = text.lower()
    elif r < 0.2 and len(text) < 200:
        text = text.upper()
    if rng.random() < 0.2:
        text = text.rstrip(".!?。！？")
    if rng.random() < 0.25:
        for _ in range(rng.randint(1, 2)):
            if len(text) < 8:
                break
            i = rng.randrange(1, len(text) - 2)
            op = rng.random()
            if op < 0.4:
                text = text[:i] + text[i + 1:]
            elif op < 0.8:
                text = text[:i] + text[i + 1] + text[i] + text[i + 2:]
            else:
                text = text[:i] + text[i] + text[i:]
    if rng.random() < 0.1:
        text = re.sub(r" ", "  ", text, count=1)
    return text


def _visible(text: str) -> str:
    return text if len(text) <= HEAD + TAIL else text[:HEAD] + "\n" + text[-TAIL:]


def _cut(text: str, rng: random.Random) -> str:
    if len(text) > 200 and rng.random() < 0.6:
        return text[: rng.randint(100, 1500)]
    return text


class Composer:
    def __init__(self, lexicon: dict[str, dict[str, list]], humans: Sequence[str], answers: Sequence[str],
                 human_caps: Sequence[str], family: str, seed: int) -> None:
        self.lex = lexicon
        self.humans = humans
        self.human_caps = human_caps
        self.answers = answers
        self.family = family
        self.rng = random.Random(seed)

    def payload(self, lang: str) -> tuple[str, str | None]:
        rng = self.rng
        r = rng.random()
        benign = self.lex[lang].get("benign") or self.lex["en"]["benign"]
        if r < 0.12:
            return "", None
        if (lang == "en" and r < 0.8) or (lang != "en" and r < 0.4):
            i = rng.randrange(len(self.humans))
            return _cut(self.humans[i], rng), self.human_caps[i]
        pool = benign if (lang == "en" or r < 0.85) else self.lex["en"]["benign"]
        cap, q = rng.choice(pool)
        return expand(q, rng, self.answers), cap

    def positive(self, lang: str, head: str) -> Sample:
        rng = self.rng
        heads = [head]
        if rng.random() < 0.25:
            other = rng.choice([h for h in HEADS if h != head and self.lex[lang].get(h)])
            heads.append(other)
        parts = [expand(rng.choice(self.lex[lang][h]), rng, self.answers) for h in heads]
        instruction = (" " if rng.random() < 0.5 else "\n").join(parts)
        if rng.random() < 0.3:
            instruction = noisy(instruction, rng)
        payload, cap = self.payload(lang)
        if rng.random() < 0.12:  # system-prompt framing: persona + instruction, no payload
            persona = rng.choice(self.lex[lang].get("persona") or self.lex["en"]["persona"])
            text, cap = f"{persona} {instruction}", None
        elif not payload:
            text = instruction
        else:
            sep = rng.choice(["\n\n", "\n", " ", "\n\n---\n", "\n\nQ: ", " : "])
            where = rng.random()
            if where < 0.45:
                text = instruction + sep + payload
            elif where < 0.9:
                text = payload + sep + instruction
            else:
                k = rng.randrange(len(payload) + 1)
                text = payload[:k] + sep + instruction + sep + payload[k:]
            probe = instruction[:30]
            if probe not in _visible(text):
                text = instruction + sep + payload
        labels = {h: int(h in heads) for h in HEADS}
        if labels["coerce"]:
            labels["cot"] = 1  # demanding the reasoning trace also elicits reasoning
        return Sample(text, labels, cap, lang, "pos", self.family)

    def hard_negative(self, lang: str) -> Sample:
        rng = self.rng
        text = expand(rng.choice(self.lex[lang]["hardneg"]), rng, self.answers)
        if rng.random() < 0.3:
            text = noisy(text, rng)
        if rng.random() < 0.25:
            payload, _ = self.payload(lang)
            if payload:
                text = payload + rng.choice(["\n\n", " "]) + text if rng.random() < 0.5 else text + "\n\n" + payload
        return Sample(text, {h: 0 for h in HEADS}, None, lang, "hardneg", self.family)

    def document(self, tasks: dict[str, list[str]]) -> Sample:
        """Ordinary work on a pasted document: a real assistant answer of this split, alone (a batch job or an app
        backend sends the text itself) or with a task from ``tasks`` (summarise, translate, reply, ...).
        A negative for every head, except a head whose strict pattern the text itself matches."""
        rng = self.rng
        doc = _cut(rng.choice(self.answers), rng) if self.answers else "The meeting is moved to Friday."
        lang = "en"
        if rng.random() < 0.25:
            text = doc
        else:
            lang = "en" if rng.random() < 0.75 else rng.choice(sorted(tasks))
            task = rng.choice(tasks.get(lang) or tasks["en"])
            if "{doc}" not in task:
                task += rng.choice(["\n\n", "\n", " "]) + "{doc}"
            before, _, after = task.partition("{doc}")
            if rng.random() < 0.3:  # noise on the task's words, never on the placeholder
                before, after = (noisy(before, rng), after) if before.strip() else (before, noisy(after, rng))
            text = before + doc + after
        return Sample(text, {h: 0 for h in HEADS}, None, lang, "document", self.family, strict_heads(text))

    def benign(self, lang: str) -> Sample:
        rng = self.rng
        cap, q = rng.choice(self.lex[lang]["benign"])
        text = expand(q, rng, self.answers)
        if rng.random() < 0.3:
            text = noisy(text, rng)
        if rng.random() < 0.2:
            text = rng.choice(self.lex[lang].get("persona") or self.lex["en"]["persona"]) + "\n" + text
        return Sample(text, {h: 0 for h in HEADS}, cap, lang, "benign", self.family)


# --- capability seeds (training only): structures the corpus rarely has ---
_LANG_NAMES = ["French", "German", "Spanish", "Japanese", "Chinese", "Korean", "Russian", "Italian", "Portuguese",
               "Arabic", "Hindi", "English", "Dutch", "Turkish", "Vietnamese"]
_TOOLS = ["get_weather(city: str)", "search_web(query: str)", "send_email(to: str, subject: str, body: str)",
          "run_sql(query: str)", "create_event(title: str, start: str)", "lookup_order(order_id: int)",
          "calculator(expression: str)", "get_stock_price(ticker: str)"]


def capability_seeds(composer: Composer, n: int) -> list[Sample]:
    rng = composer.rng
    out: list[Sample] = []
    zero = {h: 0 for h in HEADS}
    for _ in range(n):
        kind = rng.choice(["tool_use", "computer_use", "translation", "data_extraction", "reasoning", "math"])
        payload = _cut(rng.choice(composer.humans), rng)[:600]
        if kind == "tool_use":
            tools = rng.sample(_TOOLS, rng.randint(1, 3))
            if rng.random() < 0.5:
                spec = "\n".join(f"- {t}" for t in tools)
                text = f"You have access to the following tools:\n{spec}\nUse them when needed.\n\nUser: {payload}"
            else:
                name = tools[0].split("(")[0]
                text = ('{"type": "function", "function": {"name": "' + name + '", "parameters": {"type": "object", '
                        '"properties": {}}}}\n' + rng.choice(["Call the right function to answer: ", "Task: "])
                        + payload)
        elif kind == "computer_use":
            act = rng.choice(["Click the 'Submit' button", "Scroll down and click on Settings",
                              "Take a screenshot of the current window", "Open the browser and go to the login page",
                              "Type the email into the username field and press Enter",
                              "Move the mouse to the top-right menu and click Log out"])
            text = rng.choice([f"{act}.", f"You control a desktop computer. {act}, then report what you see.",
                               f"Current screen: a web form. Next action: {act.lower()}."])
        elif kind == "translation":
            text = rng.choice(["Translate the following into {l}:\n", "Please translate this to {l}: ",
                               "Can you translate this text into {l}?\n\n"]).format(l=rng.choice(_LANG_NAMES))
            text += payload
        elif kind == "data_extraction":
            text = rng.choice(["Extract all names, dates and amounts from the text below as JSON:\n",
                               "From the following text, pull out the key entities into a table:\n",
                               "Parse this and return a CSV of the fields mentioned:\n"]) + payload
        elif kind == "reasoning":
            text = rng.choice([
                "Riddle: what has keys but can't open locks?",
                "Logic puzzle: Alice, Bob and Carol each own a different pet. Alice does not own the cat; Bob owns "
                "the dog. Who owns the fish?",
                "If some doctors are teachers and all teachers are patient, must some doctors be patient?",
                "Brain teaser: a bat and a ball cost $1.10 in total; the bat costs $1 more than the ball. How much "
                "is the ball?",
                "Three boxes are labelled wrongly: apples, oranges, mixed. You may pick one fruit from one box. "
                "How do you fix the labels?"])
        else:
            a, b, c = rng.randint(2, 99), rng.randint(2, 99), rng.randint(2, 999)
            text = rng.choice([f"Solve {a}x + {b} = {c}.", f"What is the integral of x^{a % 7 + 1} dx?",
                               f"Compute the probability of rolling a sum of {a % 11 + 2} with two dice.",
                               f"Find the derivative of sin({a}x) * e^x.", f"Simplify ({a}/{b}) + ({c}/{a})."])
        out.append(Sample(text, dict(zero), kind, "en", "benign", composer.family))
    return out
