"""Per-exchange signals, vectorised over Arrow.

The same :data:`SIGNALS` object runs over 16M stored exchanges in batch (via
``Store.derived``) and over a 1-row table per request in the gateway, so it is
pure pyarrow.compute / numpy. What a prompt asks for (step-by-step reasoning, the hidden trace, grading,
maximal length, training data; its capability) comes from the learned multilingual text classifiers
(:mod:`distillguard.signals.text_model`, trained on real human conversation), scored on the last user
message and the system prompt (the larger of the two per head), each distinct text once. Refusal probing,
scripts and the template fingerprint remain patterns (RE2 over a bounded head+tail slice), and xxhash runs
only over the *unique* normalised strings (dictionary encoding).
With ``--no-content`` stores these columns are all detection ever sees of the text.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

from distillguard._cpu import usable_cpus
from distillguard.signals import cues
from distillguard.signals.style import STYLE_K, style_hashes
from distillguard.signals.text_model import SPEC_HASH, default_model, shipped_digest

# the text classifiers' feature spec and shipped weights are part of the signal definitions
VERSION = f"9-{SPEC_HASH[:6]}{shipped_digest()[:6]}"
TEXT_HEAD = 480  # characters of a prompt scanned from the start ...
TEXT_TAIL = 240  # ... and from the end (instructions sit at either end of a template)
TEMPLATE_CHARS = 48  # normalised characters hashed from each end for the template fingerprint
TEMPLATE_SCAN = 256  # raw characters of the prompt normalised from each end for it
BIG_BUDGET = 4096  # max_tokens at or above this asks for long outputs
LONG_OUTPUT = 1024  # completion tokens at or above this make an output cut at the limit a harvested one
LOGIT_OUTPUT = 256  # completion tokens at or above which log-probabilities come with a generation, not a score
TEXT_DIMS = 4  # dimensions of the text representation kept per exchange (the distribution test)

SIGNAL_SCHEMA = pa.schema([
    ("id", pa.string()),
    # what the prompt asks for: the text classifiers' decisions at their operating thresholds
    ("cot", pa.bool_()),  # step-by-step reasoning (weak evidence: ordinary prompts ask for it too)
    ("coerce", pa.bool_()),  # the hidden reasoning trace itself, in full
    ("rubric", pa.bool_()),  # grading against criteria, reward-model or preference judging
    ("length", pa.bool_()),  # maximal length / exhaustiveness
    ("synth", pa.bool_()),  # training or benchmark data (variants, examples, worked solutions)
    ("probe", pa.bool_()),  # refusal-boundary probing (jailbreak framing or a refused answer)
    ("logits", pa.bool_()),  # token log-probabilities of a generation (>= LOGIT_OUTPUT tokens)
    ("cap", pa.int8()),  # capability category, index into cues.CAPABILITIES
    ("script", pa.int8()),  # script of the prompt, index into cues.SCRIPTS
    ("tpl", pa.uint64()),  # template fingerprint: normalised prompt head + tail
    *((f"style{k}", pa.uint32()) for k in range(STYLE_K)),  # phrasing min-hashes (0: too short), signals/style.py
    # where the user text sits in the text classifiers' representation: TEXT_DIMS projections x 127 (distribution)
    *((f"temb{k}", pa.int8()) for k in range(TEXT_DIMS)),
    ("sys_fp", pa.uint64()),  # system prompt fingerprint (0 = none)
    ("params_fp", pa.uint64()),  # sampling parameters fingerprint (fixed params repeat it)
    ("hit_cap", pa.bool_()),  # a long output (>= LONG_OUTPUT tokens) stopped at the token limit
    ("big_budget", pa.bool_()),  # max_tokens >= BIG_BUDGET
    ("single_turn", pa.bool_()),  # no earlier assistant turn: not a conversation
])

_EFFORTS = {"minimal": 1, "low": 2, "medium": 3, "high": 4}


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: a cheap vectorised 64-bit hash of integers."""
    x = x.astype(np.uint64, copy=True)
    with np.errstate(over="ignore"):
        x ^= x >> np.uint64(30)
        x *= np.uint64(0xBF58476D1CE4E5B9)
        x ^= x >> np.uint64(27)
        x *= np.uint64(0x94D049BB133111EB)
        x ^= x >> np.uint64(31)
    return x


def _hash_strings(arr: pa.Array) -> np.ndarray:
    """xxh3 of each string (0 for null/empty), hashing each distinct value once."""
    if len(arr) == 0:
        return np.zeros(0, dtype=np.uint64)
    encoded = _chunk(pc.dictionary_encode(arr))
    uniques = encoded.dictionary.cast(pa.binary()).to_pylist()
    table = np.fromiter((xxhash.xxh3_64_intdigest(s) if s else 0 for s in uniques), dtype=np.uint64,
                        count=len(uniques))
    indices = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False)
    table = np.append(table, np.uint64(0))  # index -1 -> 0 for nulls
    return table[indices]


PARALLEL_ROWS = 32_768  # larger tables are split across threads (Arrow kernels release the GIL)
SMALL = 16  # tables up to this many rows use Python's re: Arrow recompiles RE2 patterns on every call


class _Rx:
    """A pattern valid in both RE2 (batch, via Arrow) and Python ``re`` with ASCII classes (tiny tables)."""

    _cache: dict[str, _Rx] = {}

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self.compiled = re.compile(pattern, re.ASCII)

    @classmethod
    def of(cls, pattern: str) -> _Rx:
        rx = cls._cache.get(pattern)
        if rx is None:
            rx = cls._cache[pattern] = cls(pattern)
        return rx

    def search(self, text: pa.Array) -> np.ndarray:
        if len(text) <= SMALL:
            search = self.compiled.search
            return np.array([s is not None and search(s) is not None for s in text.to_pylist()], dtype=bool)
        return pc.match_substring_regex(text, self.pattern).fill_null(False).to_numpy(zero_copy_only=False)

    def sub(self, text: pa.Array, replacement: str) -> pa.Array:
        if len(text) <= SMALL:
            sub = self.compiled.sub
            return pa.array([None if s is None else sub(replacement, s) for s in text.to_pylist()], pa.string())
        return pc.replace_substring_regex(text, self.pattern, replacement)


def _match(text: pa.Array, pattern: str) -> np.ndarray:
    return _Rx.of(pattern).search(text)


def _chunk(arr: pa.Array | pa.ChunkedArray) -> pa.Array:
    return arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr


def _col(table: pa.Table, name: str) -> pa.ChunkedArray | pa.Array:
    index = table.schema.get_field_index(name)
    return table.column(index) if index >= 0 else pa.nulls(len(table))


def _num(table: pa.Table, name: str, fill: float = 0.0) -> np.ndarray:
    return pc.fill_null(pc.cast(_col(table, name), pa.float64()), fill).to_numpy()


def _texts(table: pa.Table) -> tuple[pa.Array, pa.Array, np.ndarray | None]:
    """(system, user) texts to scan, each distinct pair once, and the row -> pair index (None: one per row).

    Prompts repeat (templates, shared system prompts, retries), so batch derivation
    scans each distinct pair once and broadcasts; tiny (gateway) tables skip the dedupe.
    """
    user = _chunk(pc.fill_null(pc.cast(_col(table, "user_text"), pa.string()), ""))
    system = _chunk(pc.fill_null(pc.cast(_col(table, "system_text"), pa.string()), ""))
    if len(table) <= SMALL:
        return system, user, None
    users = _chunk(pc.dictionary_encode(user))
    systems = _chunk(pc.dictionary_encode(system))
    n_users = len(users.dictionary)
    key = (systems.indices.to_numpy().astype(np.int64) * n_users + users.indices.to_numpy().astype(np.int64))
    pairs, inverse = np.unique(key, return_inverse=True)
    return (_chunk(systems.dictionary.take(pa.array(pairs // n_users))),
            _chunk(users.dictionary.take(pa.array(pairs % n_users))), inverse.ravel())


def _scan_text(system: pa.Array, user: pa.Array) -> pa.Array:
    """Lower-cased head and tail of system + last user message: where instructions live."""
    head = pc.utf8_slice_codeunits(user, 0, TEXT_HEAD)
    tail = pc.utf8_slice_codeunits(user, -TEXT_TAIL)
    long = pc.greater(pc.utf8_length(user), TEXT_HEAD)
    body = pc.if_else(long, pc.binary_join_element_wise(head, tail, "\n"), user)
    text = pc.binary_join_element_wise(pc.utf8_slice_codeunits(system, 0, TEXT_TAIL), body, "\n")
    return _chunk(pc.utf8_lower(text))


def _template_fp(user: pa.Array) -> np.ndarray:
    """Fingerprint of the prompt's skeleton: digits, quoted spans and whitespace normalised, both ends kept.

    Templated harvesting keeps an instruction prefix/suffix and swaps the payload in
    the middle, so head + tail collide across accounts while ordinary prompts do not.
    Only ``TEMPLATE_SCAN`` raw characters from each end are normalised (the skeleton
    keeps 48 of each), so the cost does not grow with the payload.
    """
    long = pc.greater(pc.utf8_length(user), 2 * TEMPLATE_SCAN)
    ends = pc.if_else(long, pc.binary_join_element_wise(pc.utf8_slice_codeunits(user, 0, TEMPLATE_SCAN),
                                                        pc.utf8_slice_codeunits(user, -TEMPLATE_SCAN), "\n"), user)
    norm = _Rx.of(r"[0-9]+").sub(_chunk(pc.utf8_lower(ends)), "0")
    norm = _Rx.of(r"[\"'`“”«»「」].{0,80}?[\"'`“”«»「」]").sub(norm, "Q")
    norm = _Rx.of(r"(?:\s|" + cues.PUNCT + ")+").sub(norm, " ")
    norm = pc.utf8_trim_whitespace(norm)
    skeleton = pc.binary_join_element_wise(pc.utf8_slice_codeunits(norm, 0, TEMPLATE_CHARS), "|",
                                           pc.utf8_slice_codeunits(norm, -TEMPLATE_CHARS), "")
    return _hash_strings(_chunk(skeleton))


class Signals:
    """The per-exchange signal definitions: the store's ``Derive`` protocol."""

    version = VERSION
    inputs: tuple[str, ...] = (
        "id", "model", "max_tokens", "temperature", "top_p", "reasoning_effort", "n_assistant_turns", "n_tools",
        "has_image", "system_text", "user_text", "response_text", "n_tool_calls", "finish_reason",
        "completion_tokens", "status", "n_choices", "logprobs", "top_logprobs",
    )
    schema = SIGNAL_SCHEMA

    def derive(self, table: pa.Table) -> pa.Table:
        workers = min(usable_cpus(), len(table) // PARALLEL_ROWS)
        if workers < 2:
            return self._derive(table)
        step = -(-len(table) // workers)
        with ThreadPoolExecutor(workers) as pool:
            parts = list(pool.map(self._derive, [table.slice(i, step) for i in range(0, len(table), step)]))
        return pa.concat_tables(parts)

    def _derive(self, table: pa.Table) -> pa.Table:
        n = len(table)
        system_u, user_u, inverse = _texts(table)
        text = _scan_text(system_u, user_u)

        def match(pattern: str) -> np.ndarray:
            hit = _match(text, pattern)
            return hit if inverse is None else hit[inverse]

        effort = pc.fill_null(pc.cast(_col(table, "reasoning_effort"), pa.string()), "")
        max_tokens = _num(table, "max_tokens")
        big_budget = max_tokens >= BIG_BUDGET
        asks = _ask(system_u, user_u)
        if inverse is not None:
            asks = {k: v[inverse] for k, v in asks.items()}

        response = _chunk(pc.utf8_lower(pc.utf8_slice_codeunits(
            pc.fill_null(pc.cast(_col(table, "response_text"), pa.string()), ""), 0, 80)))
        finish = pc.fill_null(pc.cast(_col(table, "finish_reason"), pa.string()), "")
        refused = _match(response, cues.REFUSAL) | pc.equal(finish, "content_filter").to_numpy(zero_copy_only=False)
        probe = match(cues.PROBE) | refused

        # token log-probabilities of a *generation* are soft labels for a student; scoring a choice with one token
        # (evals, rankers) is not, nor are several samples (n > 1: pass@k evaluations ask for them)
        logits = ((_num(table, "top_logprobs") > 0) | pc.fill_null(
            pc.cast(_col(table, "logprobs"), pa.bool_()), False).to_numpy(zero_copy_only=False)) & (
            _num(table, "completion_tokens") >= LOGIT_OUTPUT)

        n_tools = _num(table, "n_tools") + _num(table, "n_tool_calls")
        image = pc.fill_null(pc.cast(_col(table, "has_image"), pa.bool_()), False).to_numpy(zero_copy_only=False)
        cap = asks["cap"].copy()  # from the text; structure decides tools and images
        computer = cap == _CAP["computer_use"]
        cap[(n_tools > 0) & ~computer] = _CAP["tool_use"]
        cap[image & ~computer] = _CAP["vision"]

        script = np.zeros(n, dtype=np.int8)
        for code, pattern in enumerate(cues.SCRIPT_PATTERNS, 1):
            script[(script == 0) & match(pattern)] = code

        system = pc.cast(_col(table, "system_text"), pa.string())
        sys_fp = _hash_strings(_chunk(system))

        temperature = np.rint(_num(table, "temperature", -1.0) * 100).astype(np.int64)
        top_p = np.rint(_num(table, "top_p", -1.0) * 100).astype(np.int64)
        params = _mix(_mix(temperature.astype(np.uint64)) ^ _mix(top_p.astype(np.uint64) + np.uint64(1))
                      ^ _mix(max_tokens.astype(np.int64).astype(np.uint64) + np.uint64(2))
                      ^ (_effort_codes(effort).astype(np.uint64) << np.uint64(56)))

        completion = _num(table, "completion_tokens")
        # a *long* output cut at its limit: a classifier asking for one token with logprobs hits its limit too
        hit_cap = (pc.equal(finish, "length").to_numpy(zero_copy_only=False) | (
            (max_tokens > 0) & (completion >= 0.98 * max_tokens))) & (completion >= LONG_OUTPUT)
        assistant_turns = _num(table, "n_assistant_turns")

        tpl = _template_fp(user_u)
        style = style_hashes(user_u)
        if inverse is not None:
            tpl = tpl[inverse]
            style = style[inverse]
        arrays = [
            pc.cast(_col(table, "id"), pa.string()),
            *(pa.array(asks[head]) for head in ("cot", "coerce", "rubric", "length", "synth")),
            pa.array(probe), pa.array(logits), pa.array(cap),
            pa.array(script), pa.array(tpl), *(pa.array(style[:, k]) for k in range(STYLE_K)),
            *(pa.array(asks["temb"][:, k]) for k in range(TEXT_DIMS)), pa.array(sys_fp),
            pa.array(params), pa.array(hit_cap), pa.array(big_budget), pa.array(assistant_turns == 0),
        ]
        return pa.Table.from_arrays(arrays, schema=SIGNAL_SCHEMA)


_CAP = {name: i for i, name in enumerate(cues.CAPABILITIES)}


def _ask(system: pa.Array, user: pa.Array) -> dict[str, np.ndarray]:
    """What each (system, user) pair asks for: per head the classifier's decision on either text; the
    capability of the user text (of the system prompt when there is no user text)."""
    model = default_model()
    both = pa.concat_arrays([_chunk(user), _chunk(system)])
    scores = model.predict(both, embed_dims=TEXT_DIMS)
    n = len(user)
    out: dict[str, np.ndarray] = {}
    for head in model.heads:
        hit = scores[head] >= model.thresholds[head]["strong"]
        out[head] = hit[:n] | hit[n:]
    names = [_CAP[c] for c in model.capabilities]
    cap = np.asarray(names, dtype=np.int8)[scores["cap"]]
    out["cap"] = np.where(scores["cap_p"][:n] > 0, cap[:n], cap[n:]).astype(np.int8)
    out["temb"] = np.rint(scores["embed"][:n] * 127).astype(np.int8)
    return out


def _effort_codes(effort: pa.Array) -> np.ndarray:
    codes = np.zeros(len(effort), dtype=np.int64)
    for name, code in _EFFORTS.items():
        codes[pc.equal(effort, name).to_numpy(zero_copy_only=False)] = code
    return codes


SIGNALS = Signals()

__all__ = ["SIGNALS", "SIGNAL_SCHEMA", "Signals", "VERSION"]
