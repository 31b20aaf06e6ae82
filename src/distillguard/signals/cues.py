"""Multilingual cue patterns (RE2 syntax, applied to lower-cased text).

Each family is a set of *weak* cues: paraphrases defeat any single keyword, so
the signal is a weighted sum of several independent families (explicit phrase,
reasoning vocabulary, output-format demands) plus structure (reasoning effort,
token budget). Patterns cover English, Chinese, Japanese, Korean, Spanish,
Portuguese, French, German, Italian, Russian, Arabic, Hindi, Turkish, Vietnamese
and Indonesian because coercion prompts were observed in all of them.
"""

from __future__ import annotations

# explicit step-by-step / chain-of-thought elicitation
COT_STRONG = "|".join([
    r"step[- ]by[- ]step", r"chain[- ]of[- ]thought", r"\bcot\b", r"show (all )?(your|the) (work|reasoning|steps)",
    r"think (it )?through", r"reason (it )?(out|through)", r"walk (me )?through", r"let'?s think",
    r"explain (your|the) (reasoning|thought|logic)", r"before (giving|answering|you answer)",
    r"逐步", r"一步一步", r"一步步", r"思维链", r"推理过程", r"思考过程", r"分步", r"段階的", r"ステップ",
    r"順を追って", r"思考の過程", r"단계별", r"단계적", r"차근차근", r"paso a paso", r"passo a passo",
    r"étape par étape", r"pas à pas", r"schritt für schritt", r"schrittweise", r"passo dopo passo",
    r"шаг за шагом", r"пошагов", r"خطوة بخطوة", r"चरण दर चरण", r"कदम दर कदम", r"adım adım",
    r"từng bước", r"langkah demi langkah", r"langkah-langkah",
])
# vocabulary of reasoning and thinking (weaker: common in ordinary prompts)
COT_WEAK = "|".join([
    r"reasoning", r"\bthink", r"thought process", r"\brationale", r"justify", r"derivation", r"carefully",
    r"in detail", r"detailed", r"intermediate", r"推理", r"思考", r"理由", r"详细", r"考え", r"推論", r"詳しく",
    r"추론", r"생각", r"이유", r"razonamiento", r"razona", r"piensa", r"raciocínio", r"pense", r"raisonnement",
    r"réfléchi", r"begründ", r"überleg", r"denk", r"ragionamento", r"рассужд", r"обоснуй", r"подробно",
    r"استدلال", r"فكر", r"तर्क", r"सोच", r"akıl yürüt", r"düşün", r"suy luận", r"penalaran",
])
# demands to emit the hidden reasoning trace itself, in full (trace coercion)
COERCE = "|".join([
    r"(internal|inner|hidden|private|full|complete|entire|raw|verbatim|unabridged|whole) "
    r"(reasoning|thoughts?|thinking|monologue|deliberation|scratchpad|chain)",
    r"(reasoning|thinking) (trace|tokens|process) (verbatim|in full|completely|without)",
    r"do not (summari[sz]e|skip|omit|abbreviate)", r"don'?t (summari[sz]e|skip|omit|abbreviate)",
    r"every (single )?(step|thought)", r"nothing (left out|omitted)", r"<think>", r"scratchpad",
    r"完整的?(思考|推理|思维)", r"全部(思考|推理)", r"内部(推理|思考)", r"不要(省略|总结)", r"原始(思考|推理)",
    r"思考(過程|プロセス)を(すべて|全て|省略せず)", r"内部の(推論|思考)", r"전체 (사고|추론)", r"내부 (추론|사고)",
    r"razonamiento (interno|completo)", r"pensamiento (interno|completo)", r"raciocínio (interno|completo)",
    r"raisonnement (interne|complet)", r"pensée (interne|complète)", r"(interne|vollständige)n? (überlegung|gedank)",
    r"ragionamento (interno|completo)", r"(внутренн|полн)\S* (рассужд|ход мысл)", r"الاستدلال الداخلي",
    r"التفكير الكامل", r"आंतरिक तर्क", r"पूरी सोच", r"iç akıl", r"tüm düşünce",
])
# rubric, grading and reward-model style requests
RUBRIC = "|".join([
    r"rubric", r"grad(e|ing) (the|this|each|following)", r"score (the|this|each|following)", r"on a scale (of|from)",
    r"\b(1|0)\s*(-|to)\s*(5|10|100)\b", r"reward model", r"preference", r"which (response|answer|completion) is better",
    r"response [ab]\b", r"assistant [ab]\b", r"evaluat(e|ion) (the|this|each|following) (response|answer|output)",
    r"criteria", r"rate (the|this|each|following)", r"judge", r"评分", r"打分", r"评分标准", r"评估(以下|这个|该)",
    r"哪个(回答|回复)更好", r"採点", r"評価基準", r"채점", r"평가 기준", r"rúbrica", r"puntúa", r"califica",
    r"evalúa", r"avalie", r"pontu", r"barème", r"évalue", r"note (de|sur)", r"bewerte", r"bewertungs",
    r"valuta", r"оцени", r"критери", r"قيّم", r"معايير", r"मूल्यांकन", r"puanla", r"değerlendir", r"chấm điểm",
])
# refusal-boundary probing: jailbreak framing and policy-edge requests
PROBE = "|".join([
    r"ignore (all |any )?(previous|prior|above) (instructions|rules)", r"\bdan\b", r"developer mode",
    r"jailbreak", r"without (any )?(restrictions|filters|censorship|limits)", r"no (ethical|moral) (guidelines|limits)",
    r"hypothetical(ly)?", r"for (research|educational|academic) purposes", r"pretend (you are|to be)",
    r"roleplay as", r"uncensored", r"bypass", r"would you refuse", r"refuse", r"policy", r"not allowed to",
    r"忽略(之前|以上)", r"越狱", r"无限制", r"假设", r"制限なし", r"脱獄", r"제한 없이", r"sin restricciones",
    r"ignora (las )?instrucciones", r"sans restriction", r"ohne einschränkung", r"без ограничений",
    r"игнорируй", r"بدون قيود", r"बिना प्रतिबंध", r"kısıtlama olmadan",
])
REFUSAL = "|".join([
    r"^(i'?m sorry|i am sorry|i can(no|')t|i won'?t|i am unable|i'm unable|sorry, (but )?i)",
    r"^(抱歉|对不起|我不能|我无法|申し訳|죄송|lo siento|no puedo|je ne peux|désolé|es tut mir leid|"
    r"ich kann nicht|извините|я не могу)",
])

# capability categories, most specific first (index = code)
# capability categories: the text classifier's (signals/text_model.py) plus vision, decided from structure
CAPABILITIES = ("chat", "coding", "tool_use", "computer_use", "math", "vision", "writing", "reasoning", "translation",
                "data_extraction")
COMPUTER_USE = "|".join([
    r"screenshot", r"click", r"mouse", r"cursor", r"browser", r"desktop", r"scroll", r"keyboard", r"type into",
    r"navigate to", r"button", r"web ?page", r"xdotool", r"computer use", r"截图", r"点击", r"浏览器",
    r"クリック", r"スクリーンショット", r"클릭", r"haz clic", r"captura de pantalla", r"cliquez", r"klicke",
    r"нажми", r"скриншот",
])
CODING = "|".join([
    r"```", r"\bdef ", r"function", r"\bclass ", r"\bcode", r"python", r"javascript", r"typescript", r"\brust\b",
    r"golang", r"\bjava\b", r"c\+\+", r"\bsql\b", r"\bbug", r"compile", r"refactor", r"unit test", r"regex",
    r"stack ?trace", r"exception", r"implement", r"algorithm", r"repository", r"\bapi\b", r"script", r"debug",
    r"代码", r"函数", r"编程", r"程序", r"コード", r"関数", r"プログラム", r"코드", r"함수", r"código", r"función",
    r"programa", r"fonction", r"programm", r"funktion", r"код", r"функци", r"программ", r"برمج", r"कोड",
])
MATH = "|".join([
    r"solve", r"equation", r"integral", r"derivative", r"prove", r"theorem", r"probability", r"matrix",
    r"polynomial", r"\d\s*[\+\*/\^=]\s*\d", r"calculate", r"compute the", r"how many", r"geometry", r"lemma",
    r"数学", r"方程", r"证明", r"计算", r"確率", r"証明", r"방정식", r"증명", r"ecuación", r"demuestra", r"calcula",
    r"équation", r"démontre", r"gleichung", r"beweise", r"уравнени", r"докажи", r"вычисли", r"معادلة", r"समीकरण",
])
WRITING = "|".join([
    r"\bwrite\b", r"essay", r"story", r"poem", r"email", r"blog", r"summari[sz]e", r"translate", r"letter",
    r"rewrite", r"paraphrase", r"headline", r"slogan", r"写一", r"翻译", r"总结", r"書いて", r"翻訳", r"써 ?줘",
    r"번역", r"escribe", r"redacta", r"traduce", r"écris", r"rédige", r"traduis", r"schreib", r"übersetze",
    r"напиши", r"переведи", r"اكتب", r"लिखो"
])
PUZZLE = "|".join([
    r"puzzle", r"riddle", r"logic", r"deduce", r"brain ?teaser", r"syllogism", r"谜题", r"逻辑", r"論理", r"논리",
    r"acertijo", r"lógica", r"énigme", r"logique", r"rätsel", r"logik", r"загадк", r"логик",
])

# script classes of the prompt text (index = code); Latin is the default
SCRIPTS = ("latin", "cjk", "cyrillic", "arabic", "indic", "other")
# explicit code-point ranges (not \p{..} classes) so RE2 and Python's re read them alike
SCRIPT_PATTERNS = (
    "[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]",
    "[\u0400-\u04ff]",
    "[\u0600-\u06ff]",
    "[\u0900-\u0bff\u0c00-\u0c7f]",
    "[\u0370-\u03ff\u0590-\u05ff\u0e00-\u0e7f]",
)
# punctuation and symbols removed from template skeletons
PUNCT = "[!-/:-@\\[-`{-~\u00a1-\u00bf\u2010-\u205f\u3000-\u303f\uff01-\uff0f\uff1a-\uff20]"
