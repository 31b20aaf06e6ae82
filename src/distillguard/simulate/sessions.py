"""Real sessions replayed from the corpus: chat turns, agent tool loops and the text helpers both sides share.

A chat session replays one real conversation: request *k* carries the conversation's first ``2k - 1``
turns (the user turns and the answers the account really received earlier in the session) and the
response is the corpus's assistant turn. When the account keeps going after the conversation ends it
opens a new one (a new chat). History beyond :data:`HISTORY_CHARS` is trimmed oldest-first, as chat
clients trim it to fit a context window.
"""

from __future__ import annotations

import functools
import random
import re
from collections.abc import Callable
from typing import Any

from distillguard.simulate import lexicon as lx
from distillguard.simulate.accounts import Account, Reply, turn_of
from distillguard.simulate.config import Model
from distillguard.simulate.corpus import Chat, Corpus
from distillguard.simulate.text import Fill, image_part, pick, reasoning, tool_call, vary

HISTORY_CHARS = 12_000
Params = Callable[[random.Random, dict], None]
_WORDS = re.compile(r"[^\s`*#>|]+")


@functools.lru_cache(maxsize=16_384)
def topic_of(text: str) -> str:
    """A short noun-ish phrase naming what a text is about (fills reasoning traces on both sides)."""
    return " ".join(_WORDS.findall(text[:200])[:7]).strip(".,:;?!\"'") or "the question"


def noisy(text: str, r: random.Random, p: float = 0.5) -> str:
    """Light human variation on short typed turns (casing, politeness, a typo); long pastes stay verbatim."""
    if len(text) < 300 and r.random() < p:
        return vary(text, r, typo=0.08, polite=0.15, lower=0.1)
    return text


def trim(messages: list[dict], budget: int = HISTORY_CHARS) -> list[dict]:
    """Drop the oldest exchanges (never the system prompt or the last message) until the text fits."""
    size = sum(len(m["content"]) for m in messages if m.get("content").__class__ is str)
    if size <= budget:
        return messages
    head = 1 if messages and messages[0]["role"] == "system" else 0
    out = list(messages)
    while size > budget and len(out) - head > 1:
        gone = out.pop(head)
        if gone.get("content").__class__ is str:
            size -= len(gone["content"])
        while len(out) - head > 1 and out[head]["role"] != "user":  # keep the history starting on a user turn
            gone = out.pop(head)
            if gone.get("content").__class__ is str:
                size -= len(gone["content"])
    return out


def _forget(state: dict, tag: int, value: object) -> None:
    run, _, last = turn_of(tag)
    if last:
        state.pop(run, None)
    else:
        state[run] = value


def chat_turn(acct: Account, tag: int, model: Model, r: random.Random, state: dict, pool: tuple[Chat, ...],
              params: Params, system: str | None = None, image: float = 0.0, noise: float = 0.5,
              wrap: Callable[[random.Random, str], str] | None = None, effort_chars: tuple[int, int] = (300, 1200),
              longer: float = 0.0) -> Reply:
    """One request of a replayed chat session (see the module docstring).

    ``wrap`` rewrites the opening user turn (an app's framing, a harvester's ask); ``image`` attaches a
    picture to it with that probability; ``longer`` is the chance the answer runs on into the next
    assistant turn (users who ask for long, detailed answers get them).
    """
    sid, turn, _ = turn_of(tag)
    prev = state.get(sid) if turn else None
    if prev is None or prev[2] >= prev[1].pairs:
        chat = pick(r, pool)
        k = 0
        history: list[dict] = [{"role": "system", "content": system}] if system else []
    else:
        history, chat, k = prev
    text = chat.turns[2 * k]
    if k == 0:
        text = wrap(r, text) if wrap else noisy(text, r, noise)
    user: str | list = text
    if k == 0 and image and r.random() < image:
        user = [{"type": "text", "text": text}, image_part(r)]
    messages = trim([*history, {"role": "user", "content": user}])
    request: dict = {"model": model.name, "messages": messages}
    params(r, request)
    content = chat.turns[2 * k + 1]
    if longer and r.random() < longer and 2 * k + 3 < len(chat.turns):
        content = content + "\n\n" + chat.turns[2 * k + 3]
    trace = None
    if request.get("reasoning_effort"):
        trace = reasoning(r, topic_of(chat.turns[2 * k]), effort_chars[0] + int(r.random() * effort_chars[1]))
    _forget(state, tag, ([*messages, {"role": "assistant", "content": content}], chat, k + 1))
    return request, content, trace, None


# --- tools with real code ------------------------------------------------------------------------------

_LISTING = ("total {n}\n-rw-r--r-- 1 dev dev 2311 {f}\n-rw-r--r-- 1 dev dev  954 utils.{x}\n"
            "drwxr-xr-x 2 dev dev 4096 tests\n-rw-r--r-- 1 dev dev  611 README.md")
_EXT = {"python": "py", "py": "py", "javascript": "js", "js": "js", "typescript": "ts", "ts": "ts", "java": "java",
        "go": "go", "rust": "rs", "cpp": "cpp", "c++": "cpp", "c": "c", "csharp": "cs", "c#": "cs", "php": "php",
        "ruby": "rb", "sql": "sql", "bash": "sh", "sh": "sh", "shell": "sh", "html": "html", "css": "css",
        "kotlin": "kt", "swift": "swift", "jsx": "jsx", "tsx": "tsx", "yaml": "yaml", "json": "json"}


def code_block(r: random.Random, corpus: Corpus) -> tuple[str, str]:
    """(file extension, real code) from the corpus's fenced code blocks."""
    lang, code = pick(r, corpus.code_blocks)
    return _EXT.get(lang, "txt"), code


@functools.lru_cache(maxsize=16_384)
def _numbered(code: str) -> str:
    """A code block as ``cat -n`` shows it (at most 60 lines)."""
    return "\n".join(f"{i + 1:>4}\t{ln}" for i, ln in enumerate(code.splitlines()[:60]))


def tool_result(r: random.Random, name: str, corpus: Corpus, f: Fill) -> str:
    """What a tool returned: real code for reads and searches, test and shell output otherwise."""
    if name in ("read_file", "edit_file", "str_replace_editor", "write_file", "search_code", "grep_search"):
        ext, code = code_block(r, corpus)
        path = f"src/{f['module']}/{pick(r, ('core', 'main', 'utils', 'handlers', 'models', 'index'))}.{ext}"
        if name in ("grep_search", "search_code"):
            lines = [ln for ln in code.splitlines() if ln.strip()]
            start = int(r.random() * max(len(lines) - 4, 1))
            return "\n".join(f"{path}:{start + i + 1}:{ln}" for i, ln in enumerate(lines[start:start + 5]))
        if name == "read_file":
            return _numbered(code)
        return f"The file {path} has been edited.\n" + code[:600]
    if name == "list_dir":
        return _LISTING.format(n=int(r.random() * 90) + 8, f=f"{f['module']}.py", x="py")
    return pick(r, lx.TOOL_RESULTS).format_map(f)


def agent_turn(acct: Account, tag: int, model: Model, r: random.Random, state: dict, corpus: Corpus,
               pool: tuple[Chat, ...], system: str, tools: list[dict], names: tuple[str, ...], params: Params,
               p_tool: float = 0.7, max_loop: int = 12, effort_chars: tuple[int, int] = (400, 1400),
               wrap: Callable[[random.Random, str], str] | None = None, image: float = 0.0,
               prefix: Callable[[random.Random], list[dict]] | None = None) -> Reply:
    """One request of an agent session over a real coding conversation.

    The user's turns are the conversation's; between them the agent calls tools (reads real code, runs
    commands) and each tool result goes back in the next request; when it stops calling tools it answers
    with the conversation's assistant turn, and the next request brings the next user turn. ``prefix`` adds
    messages after the opening user turn of a session (a trajectory the session did not really produce).
    """
    sid, turn, _ = turn_of(tag)
    prev = state.get(sid) if turn else None
    f = Fill(r, module=pick(r, lx.MODULES))
    if prev is None or (prev[3] == 0 and prev[2] >= prev[1].pairs):
        chat = pick(r, pool)
        k, loop = 0, 0
        text = chat.turns[0]
        text = wrap(r, text) if wrap else noisy(text, r, 0.2)
        first: str | list = [{"type": "text", "text": text}, image_part(r)] if image and r.random() < image else text
        messages: list[dict[str, Any]] = [{"role": "system", "content": system}, {"role": "user", "content": first}]
        if prefix:
            messages += prefix(r)
    else:
        history, chat, k, loop = prev
        calls = history[-1].get("tool_calls")
        follow: list[dict[str, Any]]
        if calls:
            follow = [{"role": "tool", "tool_call_id": c["id"],
                       "content": tool_result(r, c["function"]["name"], corpus, f)} for c in calls]
        else:
            follow = [{"role": "user", "content": chat.turns[2 * k]}]
        messages = trim([*history, *follow])
    request: dict = {"model": model.name, "messages": messages, "tools": tools}
    params(r, request)
    trace = None
    if request.get("reasoning_effort"):
        trace = reasoning(r, topic_of(chat.turns[2 * k]), effort_chars[0] + int(r.random() * effort_chars[1]))
    if loop < max_loop and r.random() < p_tool * (0.92 ** loop):
        calls = [tool_call(r, pick(r, names), f) for _ in range(1 + (r.random() < 0.15))]
        content = pick(r, (None, None, "Let me look at the relevant code first.", "I'll check the tests.",
                           "Let me search for where this is defined."))
        reply: dict = {"role": "assistant", "content": content, "tool_calls": calls}
        _forget(state, tag, ([*messages, reply], chat, k, loop + 1))
        return request, content, trace, calls
    content = chat.turns[2 * k + 1]
    _forget(state, tag, ([*messages, {"role": "assistant", "content": content}], chat, k + 1, 0))
    return request, content, trace, None
