"""The lab's plots and self-contained HTML page (PNG embedded) next to ``results.json``."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from distillguard.resist.report import png

COLORS = {"temperature": "#1f77b4", "antidistillation": "#d62728", "watermark": "#9467bd", "withhold": "#7f7f7f",
          "summarise": "#8c564b", "restructure": "#2ca02c", "none": "#000000"}


def teacher_student_plot(result: Any):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5))
    by_defence: dict[str, list] = {}
    for s in result.settings:
        by_defence.setdefault(s.defence, []).append(s)
    none = by_defence.get("none", [None])[0]
    for name, points in by_defence.items():
        pts = sorted(points, key=lambda s: -s.teacher_accuracy)
        if name in ("temperature", "antidistillation") and none is not None:
            pts = [none, *pts]
        xs = [p.teacher_accuracy for p in pts]
        ys = [p.student_accuracy for p in pts]
        ax.plot(xs, ys, "-o" if len(pts) > 1 else "o", color=COLORS.get(name, "#17becf"), label=name, ms=6)
        for p in pts:
            if p.strength is not None:
                ax.annotate(f"{p.strength:g}", (p.teacher_accuracy, p.student_accuracy), fontsize=7,
                            xytext=(3, 3), textcoords="offset points")
    ax.axhline(result.undistilled_accuracy, color="k", ls="--", lw=1, label="undistilled student")
    ax.axvline(0.9 * result.teacher_clean_accuracy, color="grey", ls=":", lw=1, label="90 % of clean teacher")
    ax.set_xlabel("teacher accuracy (answers served under the defence)")
    ax.set_ylabel("distilled student accuracy")
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=8, loc="upper left")
    ax.set_title("Teacher vs distilled student (numbers: temperature / strength)", fontsize=10)
    return fig


FLOOR = 1e-30  # p-values below are drawn at the floor: 1e-100 beside 1e-5 would flatten every other curve


def provenance_plot(result: Any):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 4.8))
    if result.provenance:
        xs = [p["share"] * 100 for p in result.provenance]
        ys = [max(p["pvalue"], FLOOR) for p in result.provenance]
        ax.plot(xs, ys, "-o", color="#d62728", label="students with our watermarked data: generation mode")
        if "reading_pvalue" in result.provenance[0]:
            ax.plot(xs, [max(p["reading_pvalue"], FLOOR) for p in result.provenance], "-s", color="#ff7f0e",
                    label="students with our watermarked data: reading mode")
        if "mass_pvalue" in result.provenance[0]:
            ax.plot(xs, [max(p["mass_pvalue"], FLOOR) for p in result.provenance], "-^", color="#9467bd",
                    label="students with our watermarked data: reading mode, probabilities")
        if "paired_pvalue" in result.provenance[0]:
            ax.plot(xs, [max(p["paired_pvalue"], FLOOR) for p in result.provenance], "-D", color="#2ca02c",
                    label="students with our watermarked data: probabilities paired with our teacher")
    kinds: dict[str, list[float]] = {}
    for c in result.controls:
        kinds.setdefault(c["kind"], []).append(max(c["pvalue"], FLOOR))
    markers = ["x", "+", "1", "2", "3"]
    for i, (kind, ps) in enumerate(kinds.items()):
        jitter = [0.3 + 0.4 * (j / max(len(ps) - 1, 1)) for j in range(len(ps))]
        ax.plot([0.1 * (1 + j) for j in jitter], ps, markers[i % len(markers)], ms=4, alpha=0.6,
                label=f"control: {kind}")
    ax.set_xscale("symlog", linthresh=0.5)
    ax.set_yscale("log")
    ax.axhline(1e-5, color="red", ls="--", lw=1, label="p = 1e-5")
    ax.axhline(0.01, color="orange", ls=":", lw=1, label="p = 0.01")
    ax.invert_yaxis()
    ax.set_xlabel("share of watermarked data in the student's training set (%); controls at 0")
    ax.set_ylabel(f"provenance p-value (our key; below {FLOOR:.0e} drawn at it)")
    ax.legend(fontsize=6.5, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.tight_layout()
    return fig


def table(result: Any) -> list[dict[str, Any]]:
    return [{"defence": s.defence, "strength": "" if s.strength is None else f"{s.strength:g}",
             "teacher": s.teacher_accuracy, "teacher_rel": s.teacher_accuracy / max(result.teacher_clean_accuracy,
                                                                                    1e-9),
             "student": s.student_accuracy, "below": s.student_accuracy < result.undistilled_accuracy,
             "seconds": s.generation_seconds} for s in result.settings]


def write_report(result: Any, out: Path) -> Path:
    figs = [("Teacher accuracy against distilled-student accuracy, per defence and strength.",
             png(teacher_student_plot(result))),
            ("Provenance p-value against the share of watermarked data, with clean controls.",
             png(provenance_plot(result)))]
    rows = "".join(
        f"<tr><td>{html.escape(r['defence'])}</td><td>{r['strength']}</td><td>{r['teacher']:.3f}</td>"
        f"<td>{r['teacher_rel']:.0%}</td><td>{r['student']:.3f}</td><td>{'yes' if r['below'] else ''}</td></tr>"
        for r in table(result))
    prov_rows = "".join(f"<tr><td>{p['share']:.0%}</td><td>{p['pvalue']:.2e}</td><td>{p['z']:.1f}</td>"
                        f"<td>{p['scored']}</td><td>{p.get('reading_pvalue', float('nan')):.2e}</td>"
                        f"<td>{p.get('reading_scored', 0)}</td><td>{p.get('mass_pvalue', float('nan')):.2e}</td>"
                        f"<td>{p.get('mass_scored', 0)}</td><td>{p.get('paired_pvalue', float('nan')):.2e}</td>"
                        f"<td>{p.get('paired_z', float('nan')):.1f}</td></tr>" for p in result.provenance)
    fp = sum(c["pvalue"] < 0.01 for c in result.controls)
    page = f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>distillguard lab</title>
<style>body{{font:15px/1.5 system-ui,sans-serif;max-width:62rem;margin:2rem auto;padding:0 1rem}}
td,th{{padding:.2rem .6rem;border-bottom:1px solid #eee;text-align:left}}table{{border-collapse:collapse}}
img{{max-width:100%}}</style></head><body>
<h1>Distillation lab ({html.escape(str(result.config.get('name')))}, seed {result.config.get('seed')})</h1>
<p>Clean teacher accuracy {result.teacher_clean_accuracy:.3f} (sampled at temperature 1; greedy
{result.teacher_greedy_accuracy:.3f}); undistilled student {result.undistilled_accuracy:.3f}; provider's proxy
student {result.proxy_accuracy:.3f}. Ran in {result.seconds:.0f} s.</p>
{''.join(f'<figure><img alt="{html.escape(t)}" src="data:image/png;base64,{p}"><figcaption>{html.escape(t)}'
         f'</figcaption></figure>' for t, p in figs)}
<h2>Defences</h2><table><tr><th>defence</th><th>strength</th><th>teacher</th><th>of clean</th><th>student</th>
<th>below undistilled</th></tr>{rows}</table>
<h2>Provenance</h2><table><tr><th>watermarked share</th><th>p (generation)</th><th>z</th><th>scored pairs</th>
<th>p (reading)</th><th>scored pairs</th><th>p (reading, probabilities)</th><th>scored pairs</th>
<th>p (probabilities paired with our teacher)</th><th>z</th></tr>
{prov_rows}</table><p>Controls: {fp} of {len(result.controls)} give p &lt; 0.01.</p></body></html>"""
    path = out / "lab.html"
    path.write_text(page, encoding="utf-8")
    for name, (_, data) in zip(("teacher_student.png", "provenance.png"), figs, strict=True):
        import base64

        (out / name).write_bytes(base64.b64decode(data))
    return path
