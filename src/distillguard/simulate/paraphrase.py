"""Phrase families: many ways (and languages) to ask for reasoning, to follow up, to judge.

Benign power users, eval harnesses and IDE agents ask for step-by-step reasoning too, so the same
families are drawn by both sides; harvesters differ in how systematically and how much they ask, not in
which words they use. Each family mixes registers (terse, polite, instruction-style) and languages.
"""

from __future__ import annotations

import random

from distillguard.simulate.text import pick

REASON: dict[str, tuple[str, ...]] = {
    "en": (
        "Think step by step.", "Let's think step by step.", "Show your work.", "Walk me through your reasoning.",
        "Explain each step.", "Reason carefully before answering.", "Don't skip any steps.",
        "Lay out your full chain of thought, then give the answer.", "Be thorough and explain why at each step.",
        "Please explain your reasoning in detail.", "Take it slowly and reason it out.",
        "Work through it systematically and justify every step.", "Think it through out loud.",
        "Go through the logic one step at a time.", "I want the full derivation, not just the result.",
        "Explain like a tutor would, every step.", "Before the final answer, reason about the edge cases.",
        "Give a detailed, rigorous explanation.", "Include your intermediate reasoning.",
        "First plan, then solve, then verify your answer.",
    ),
    "zh": ("请一步一步地思考。", "请写出详细的推理过程。", "请逐步解释每一步。", "先分析再回答，不要跳过步骤。",
           "请给出完整的思考过程和最终答案。"),
    "es": ("Piensa paso a paso.", "Explica tu razonamiento en detalle.", "Muestra todos los pasos.",
           "Razona con cuidado antes de responder."),
    "de": ("Denke Schritt für Schritt.", "Erkläre deinen Lösungsweg ausführlich.", "Zeige alle Zwischenschritte."),
    "fr": ("Réfléchis étape par étape.", "Explique ton raisonnement en détail.", "Montre toutes les étapes."),
    "ja": ("ステップバイステップで考えてください。", "推論の過程を詳しく説明してください。"),
    "ko": ("단계별로 생각해 주세요.", "추론 과정을 자세히 설명해 주세요."),
    "ru": ("Рассуждай шаг за шагом.", "Подробно объясни ход решения."),
    "pt": ("Pense passo a passo.", "Explique seu raciocínio em detalhes."),
}
LANGS = tuple(REASON)

# Generic follow-ups a user (or a script pretending to be one) sends to keep a session going.
DEEPER: dict[str, tuple[str, ...]] = {
    "en": (
        "go deeper", "now the edge cases", "can you go deeper on the hardest step?", "ok, now explain why",
        "walk me through that last part again, slower", "what if the assumptions change?",
        "expand on point 2", "give a more detailed version", "now do it more rigorously",
        "what are the failure modes?", "continue", "keep going", "and the counterarguments?",
        "how would an expert approach this differently?", "prove it", "show the full reasoning for that",
        "now generalise it", "what did you assume there?", "compare the alternatives in depth",
        "write the complete version, no placeholders",
    ),
    "zh": ("继续", "请更深入地解释", "那边界情况呢？", "请详细展开第二点", "再严谨一点"),
    "es": ("continúa", "profundiza más", "¿y los casos límite?", "explícalo con más detalle"),
    "de": ("weiter", "geh tiefer darauf ein", "und die Randfälle?", "ausführlicher bitte"),
    "fr": ("continue", "approfondis", "et les cas limites ?", "plus de détails s'il te plaît"),
    "ja": ("続けて", "もっと詳しく", "境界条件は？"),
    "ko": ("계속", "더 자세히", "예외 상황은?"),
    "ru": ("продолжай", "подробнее", "а крайние случаи?"),
    "pt": ("continue", "aprofunde mais", "e os casos extremos?"),
}

# LLM-as-judge: grading prompts after the public MT-bench judge prompts (FastChat, Apache-2.0) and
# rubric graders; harnesses and preference harvesters both send them.
JUDGE_SINGLE = (
    "[Instruction]\nPlease act as an impartial judge and evaluate the quality of the response provided by an AI "
    "assistant to the user question displayed below. Your evaluation should consider factors such as the "
    "helpfulness, relevance, accuracy, depth, creativity, and level of detail of the response. Begin your "
    "evaluation by providing a short explanation. Be as objective as possible. After providing your explanation, "
    "you must rate the response on a scale of 1 to 10 by strictly following this format: \"[[rating]]\", for "
    "example: \"Rating: [[5]]\".\n\n[Question]\n{q}\n\n[The Start of Assistant's Answer]\n{a}\n"
    "[The End of Assistant's Answer]",
    "You are grading a model answer for an internal evaluation. Read the question and the answer, reason about "
    "correctness and completeness, then output a line 'Score: N' with N from 1 to 10.\n\nQuestion:\n{q}\n\n"
    "Answer:\n{a}",
    "Evaluate the following response for helpfulness and factual accuracy. Think briefly, then give a score "
    "between 1 and 10 as JSON {{\"score\": N, \"reason\": \"...\"}}.\n\n### Prompt\n{q}\n\n### Response\n{a}",
)
JUDGE_PAIR = (
    "[System]\nPlease act as an impartial judge and evaluate the quality of the responses provided by two AI "
    "assistants to the user question displayed below. You should choose the assistant that follows the user's "
    "instructions and answers the user's question better. Avoid any position biases. Begin your evaluation by "
    "comparing the two responses and provide a short explanation. After providing your explanation, output your "
    "final verdict by strictly following this format: \"[[A]]\" if assistant A is better, \"[[B]]\" if assistant "
    "B is better, and \"[[C]]\" for a tie.\n\n[User Question]\n{q}\n\n[The Start of Assistant A's Answer]\n{a}\n"
    "[The End of Assistant A's Answer]\n\n[The Start of Assistant B's Answer]\n{b}\n[The End of Assistant B's "
    "Answer]",
    "Which of the two responses below better answers the prompt? Compare them on correctness, helpfulness and "
    "clarity, explain your reasoning, and finish with 'Preferred: A' or 'Preferred: B'.\n\nPrompt: {q}\n\n"
    "Response A:\n{a}\n\nResponse B:\n{b}",
    "You are a preference annotator. Given a prompt and two completions, decide which completion a careful "
    "expert would prefer. Reason step by step about each, then output JSON {{\"winner\": \"A\"|\"B\", "
    "\"confidence\": 0-1}}.\n\n<prompt>\n{q}\n</prompt>\n<completion_a>\n{a}\n</completion_a>\n<completion_b>\n"
    "{b}\n</completion_b>",
)
_JUDGE_SENT = (
    "The response addresses the main question directly.", "It is mostly accurate, though one claim is imprecise.",
    "The answer is well organised and easy to follow.", "It misses an important caveat about the user's context.",
    "The level of detail is appropriate for the question.", "Some parts are generic and could be more specific.",
    "The example given is relevant and correct.", "It does not fully follow the requested format.",
    "The explanation of the key step is clear.", "There is a factual error in the second paragraph.",
    "Overall it is helpful but could be more concise.", "The reasoning is sound and the conclusion follows.",
    "Response A is more complete, while Response B is more concise.", "Both answers cover the basics.",
    "Response B contains an error that A avoids.", "A follows the instructions more closely.",
)


def reason_ask(r: random.Random, lang: str = "en") -> str:
    return pick(r, REASON.get(lang) or REASON["en"])


def deeper(r: random.Random, lang: str = "en") -> str:
    return pick(r, DEEPER.get(lang) or DEEPER["en"])


def judge_output(r: random.Random, pairwise: bool, n: int = 3) -> str:
    """A judge's short explanation and verdict (what both benign harnesses and harvesters receive)."""
    body = " ".join(pick(r, _JUDGE_SENT) for _ in range(n + int(r.random() * 3)))
    if pairwise:
        return body + "\n\n" + pick(r, ("[[A]]", "[[B]]", "[[C]]", "Preferred: A", "Preferred: B"))
    return body + f"\n\nRating: [[{1 + int(r.random() * 10)}]]"
