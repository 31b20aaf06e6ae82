"""Self-contained HTML report of a provenance test (plots embedded as PNG), for a buyer, a partner lab or a
lawyer: what was tested, the answer, how sure, the controls, and the caveats."""

from __future__ import annotations

import base64
import io
import math
from pathlib import Path

import jinja2

from distillguard.resist.provenance import ProvenanceResult

TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Provenance test: {{ r.suspect }}</title>
<style>
body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
h1{font-size:1.5rem} h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #ddd}
.verdict{padding:1rem;border-radius:6px;font-size:1.1rem}
.yes{background:#fde8e8;border:1px solid #e0a0a0} .no{background:#eef6ee;border:1px solid #9c9}
.unk{background:#fff6e0;border:1px solid #e0c070}
table{border-collapse:collapse} td,th{padding:.25rem .75rem;border-bottom:1px solid #eee;text-align:left}
img{max-width:100%} .small{color:#555;font-size:.9rem}
</style></head><body>
<h1>Was this model trained on our watermarked outputs?</h1>
<p class="small">Suspect: <b>{{ r.suspect }}</b> &middot; watermark key id <b>{{ r.key.id }}</b>
({{ r.key.scheme }}, gamma {{ r.key.greenlist_ratio }}, provider {{ r.key.provider or "-" }}) &middot;
mode: {{ r.mode }} &middot; significance level {{ r.alpha }}</p>
<div class="verdict {{ css }}">{{ r.verdict() }}</div>

<h2>In plain words</h2>
<p>Every answer we served under this key was generated with a secret watermark: at each word, a secret,
key-dependent {{ gamma }} % of the vocabulary ("green" words) was made slightly more likely. A model that never
saw our outputs picks green words about {{ gamma }} % of the time, by chance. A model trained on enough of our
outputs inherits the preference: its own text contains more green words than chance allows ("radioactivity").</p>
{% if r.score.statistic == "paired" %}<p>We read our watermarked texts with the suspect model and with a reference
model that never trained on them (see the notes below), and compared how likely each finds each next word. Beyond
the reference, the suspect put <b>{{ "%.3f"|format(r.score.green_mass) }}</b> more probability (summed over
{{ r.score.scored }} distinct (previous word, word) pairs, each window weighed by its exposure) on green words than
chance allows. The probability of at least this much by chance, for a model that never saw our watermarked text,
is at most <b>p = {{ "%.2e"|format(r.score.pvalue) }}</b> (z = {{ "%.1f"|format(r.score.z) }}; Chernoff's bound
for green lists drawn at random, valid at any sample size). What both models know of the language cancels in the
comparison; what is left is the suspect's lean towards our key.</p>
{% elif r.score.statistic == "mass" %}<p>We read our watermarked texts with the suspect model and measured how
likely it finds each next word: it put <b>{{ "%.1f"|format(100*r.score.green_fraction) if r.score.scored else "-" }}
%</b> of its probability on green words, over {{ r.score.scored }} distinct (previous word, word) pairs, against
{{ gamma }} % expected by chance. The probability of at least this much by chance, for a model that never saw our
watermarked text, is at most <b>p = {{ "%.2e"|format(r.score.pvalue) }}</b> (z = {{ "%.1f"|format(r.score.z) }};
Chernoff's bound, valid at any sample size).</p>{% else %}
<p>We counted <b>{{ r.score.green }}</b> green out of <b>{{ r.score.scored }}</b> distinct scored word pairs
({{ "%.1f"|format(100*r.score.green_fraction) if r.score.scored else "-" }} % against {{ gamma }} % expected
by chance).
The probability of at least this many by chance, for a model that never saw our watermarked text, is
<b>p = {{ "%.2e"|format(r.score.pvalue) }}</b> (z = {{ "%.1f"|format(r.score.z) }}).</p>{% endif %}

<h2>Controls</h2>
<table>
<tr><th>control</th><th>result</th><th>what it should be</th></tr>
{% if r.control_keys %}<tr>
<td>the same text scored with {{ r.control_keys|length }} random keys that were never used</td>
<td>{{ "%.0f"|format(100*r.control_false_positive_rate) }} % give p &lt; 0.01; our key ranks above
{{ "%.0f"|format(100*(1-r.empirical_pvalue)) }} % of them (empirical p = {{ "%.3f"|format(r.empirical_pvalue) }})</td>
<td>about 1 % (a suspect that merely writes oddly would look "radioactive" for every key)</td></tr>{% endif %}
{% if r.clean_control %}<tr><td>{{ r.clean_control.name }} scored with our key</td>
<td>p = {{ "%.2e"|format(r.clean_control.score.pvalue) }}</td><td>not significant (p &ge; 0.01)</td></tr>{% endif %}
</table>

<h2>Plots</h2>
{% for title, png in plots %}<figure><img alt="{{ title }}" src="data:image/png;base64,{{ png }}">
<figcaption class="small">{{ title }}</figcaption></figure>{% endfor %}

<h2>Method</h2>
<ul>
<li>Test of Sander et al., "Watermarking makes language models radioactive" (NeurIPS 2024): the number of green
tokens among N scored tokens is Binomial(N, gamma) under the null hypothesis; the p-value is its upper tail.
{% if r.score.statistic == "mass" %}Here, with the suspect's weights at hand, each distinct pair contributes the
suspect's probability of the word (averaged over the positions sharing the previous word, which share one green
list) instead of a count: under the null hypothesis the green probability mass exceeds gamma only by chance,
with variance at most gamma (1 - gamma) times the sum of squared probabilities.{% elif r.score.statistic == "paired"
%}Here each distinct pair contributes the suspect's probability of the word minus the reference model's (averaged
over the positions sharing the previous word). The green list of each previous word is a random subset of the
vocabulary independent of both models, so under the null hypothesis the sum has mean zero; a sum over a subset
drawn without replacement is bounded by one drawn with replacement (Hoeffding, 1963), which gives the p-value.
{% endif %}</li>
<li>De-duplication: each (previous token, token) pair is scored once, however often the suspect repeats it
({{ r.counts.duplicates }} repeats not scored). Without it a clean but repetitive model looks radioactive.</li>
<li>Pairs that occur in the text the suspect was given (our prompts or texts, which may themselves be
watermarked) are not scored ({{ r.counts.in_prompt }}): a clean model copying them would inherit green words
without training. {% if r.counts.filtered %}Filter: {{ r.counts.filtered }} pairs outside the windows of our served
outputs left out.{% endif %} Context token 0 is never scored ({{ r.counts.context_0 }}).</li>
<li>Tokens read: {{ r.counts.tokens }}; scored: {{ r.counts.scored }}.</li>
</ul>

<h2>Limits</h2>
<ul>
<li>A significant result shows the suspect's text carries the statistical trace of our key: the usual cause is
training (fine-tuning or distillation) on text we served under it. It does not say how much was used.</li>
<li>"No evidence" is not proof of innocence: too few scored tokens, heavy paraphrasing of our outputs before
training, or deliberate watermark neutralisation (Pan et al., ACL 2025) weaken the signal.</li>
<li>The key's secret is not in this report; the key id and the parameters are. An independent expert given the
key can recompute every number here with <code>distillguard provenance test</code>.</li>
</ul>
{% for n in r.notes %}<p class="small">{{ n }}</p>{% endfor %}
</body></html>
"""


def png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def plots(r: ProvenanceResult) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = []
    if r.cumulative_z:
        fig, ax = plt.subplots(figsize=(7, 3.2))
        xs, zs = zip(*r.cumulative_z, strict=True)
        ax.plot(xs, zs, label="suspect, our key")
        ax.axhline(4.26, color="red", ls="--", lw=1, label="z for p = 1e-5")
        ax.axhline(2.33, color="orange", ls=":", lw=1, label="z for p = 0.01")
        ax.set_xlabel("scored pairs")
        ax.set_ylabel("z-score")
        ax.legend(loc="upper left", fontsize=8)
        out.append(("Evidence accumulates with the number of scored pairs (z-score of the green count).", png(fig)))
    if r.control_keys:
        fig, ax = plt.subplots(figsize=(7, 3.2))
        ax.hist([c.z for c in r.control_keys], bins=20, color="#999", label="random keys (never used)")
        ax.axvline(r.score.z, color="red", lw=2, label=f"our key {r.key['id']}")
        if r.clean_control:
            ax.axvline(r.clean_control["score"]["z"], color="green", ls="--", label=r.clean_control["name"])
        ax.set_xlabel("z-score")
        ax.set_ylabel("keys")
        ax.legend(fontsize=8)
        out.append(("Our key against random keys on the same text: only our key should stand out.", png(fig)))
        fig, ax = plt.subplots(figsize=(4.5, 4.5))
        ps = sorted(max(c.pvalue, 1e-300) for c in r.control_keys)
        n = len(ps)
        ax.plot([(i + 1) / (n + 1) for i in range(n)], ps, "o", ms=3, label="random keys")
        ax.plot([0, 1], [0, 1], "k:", lw=1)
        ax.set_xlabel("expected p (uniform)")
        ax.set_ylabel("observed p")
        ax.set_title("control p-values should lie on the diagonal", fontsize=9)
        out.append(("Calibration: p-values of the random-key controls against the uniform distribution.", png(fig)))
    return out


def write_html(r: ProvenanceResult, path: str | Path) -> Path:
    path = Path(path)
    css = "unk" if r.score.scored == 0 or not r.controls_ok else ("yes" if r.radioactive else "no")
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    html = env.from_string(TEMPLATE).render(r=r, plots=plots(r), css=css, math=math,
                                            gamma=f"{100 * r.key['greenlist_ratio']:.0f}")
    path.write_text(html, encoding="utf-8")
    return path
