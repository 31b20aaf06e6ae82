"""Train, calibrate, evaluate and export the text heads.

    python -m distillguard.textlab.train --out src/distillguard/data/models/text-v1.npz \\
        --report docs/text-classifiers.json

Data (all deterministic from ``--seed``):
- negatives: ShareGPT odd-half human turns of the *train* split (a turn matching a head's STRICT pattern is
  not a negative for that head), generated hard negatives and benign prompts in 15 languages, and the other
  heads' positives;
- positives: the training phrase family (:mod:`.lexicon_train`) composed with train-split payloads.
Thresholds and Platt calibration are fitted on the *validation* split (human turns + training-family
positives on validation payloads). The *test* report uses test-split human turns (never trained or tuned on),
and the held-out phrase family (:mod:`.lexicon_heldout`, incl. 4 languages absent from training) on
test-split payloads.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections import Counter
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.metrics import roc_auc_score

from distillguard.signals import text_model as tm
from distillguard.textlab import corpus, lexicon_heldout, lexicon_train
from distillguard.textlab.generate import Composer, Sample, capability_seeds

HEADS = tm.HEADS
CAPS = tm.CAPABILITIES
FPR_STRONG = 0.005
FPR_WEAK = 0.02
VERSION = "text-v1"
DOCUMENTS = 6000  # pasted-document negatives (real assistant answers, alone or with an ordinary task) in train


def human_samples(turns: tuple[corpus.HumanTurn, ...], family: str) -> list[Sample]:
    out = []
    for t in turns:
        skip = corpus.strict_heads(t.text)
        out.append(Sample(t.text, {h: 0 for h in HEADS}, corpus.weak_capability(t.text),
                          corpus.language_group(t.text), "human", family, skip))
    return out


def generated(lexicon: dict, langs: tuple[str, ...], composer: Composer, n_pos: dict[str, int],
              n_hard: dict[str, int], n_benign: dict[str, int]) -> list[Sample]:
    out: list[Sample] = []
    for lang in langs:
        other = "other"
        for head in HEADS:
            if lexicon[lang].get(head):
                out += [composer.positive(lang, head) for _ in range(n_pos.get(lang, n_pos[other]))]
        if lexicon[lang].get("hardneg"):
            out += [composer.hard_negative(lang) for _ in range(n_hard.get(lang, n_hard[other]))]
        if lexicon[lang].get("benign"):
            out += [composer.benign(lang) for _ in range(n_benign.get(lang, n_benign[other]))]
    return out


def build(seed: int) -> dict[str, list[Sample]]:
    turns = corpus.human_turns()
    answers = corpus.assistant_turns()
    data: dict[str, list[Sample]] = {}
    for split, fam_seed in (("train", 1), ("validation", 2)):
        humans = [t.text for t in turns[split]]
        caps = [corpus.weak_capability(t) for t in humans]
        comp = Composer(lexicon_train.L, humans, answers[split], caps, "train", seed * 100 + fam_seed)
        scale = 1.0 if split == "train" else 0.25
        n_pos = {"en": int(1200 * scale), "other": int(220 * scale)}
        n_hard = {"en": int(2500 * scale), "other": int(300 * scale)}
        n_ben = {"en": int(400 * scale), "other": int(200 * scale)}
        samples = human_samples(turns[split], "human")
        samples += generated(lexicon_train.L, lexicon_train.LANGS, comp, n_pos, n_hard, n_ben)
        samples += capability_seeds(comp, int(3000 * scale))
        samples += [comp.document(lexicon_train.DOC_TASKS) for _ in range(int(DOCUMENTS * scale))]
        data[split] = samples
    humans = [t.text for t in turns["test"]]
    caps = [corpus.weak_capability(t) for t in humans]
    held = Composer(lexicon_heldout.L, humans, answers["test"], caps, "heldout", seed * 100 + 3)
    data["test_human"] = human_samples(turns["test"], "human")
    data["test_heldout"] = generated(lexicon_heldout.L, lexicon_heldout.LANGS, held, {"en": 400, "other": 80},
                                     {"en": 400, "other": 80}, {"en": 100, "other": 40})
    data["test_documents"] = [held.document(lexicon_heldout.DOC_TASKS) for _ in range(2000)]
    infam = Composer(lexicon_train.L, humans, answers["test"], caps, "train", seed * 100 + 4)
    data["test_infamily"] = generated(lexicon_train.L, lexicon_train.LANGS, infam, {"en": 300, "other": 60},
                                      {"en": 300, "other": 60}, {"en": 50, "other": 30})
    return data


def fit_heads(x, samples: list[Sample], alpha: float, seed: int, human_weight: float = 1.0,
              verbose: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(2**BITS, heads + caps) weights and biases."""
    table = np.zeros((1 << tm.BITS, len(HEADS) + len(CAPS)), dtype=np.float32)
    bias = np.zeros(len(HEADS) + len(CAPS), dtype=np.float32)
    kind_w = {"human": human_weight, "document": 1.0, "hardneg": 1.0, "benign": 1.0, "pos": 1.0}
    for i, head in enumerate(HEADS):
        rows = np.array([j for j, s in enumerate(samples) if head not in s.skip])
        y = np.array([samples[j].labels[head] for j in rows])
        w = np.array([kind_w[samples[j].kind] for j in rows])
        pos = y.sum()
        w = np.where(y == 1, w * (len(y) - pos) / max(pos, 1) * 0.5, w)
        clf = SGDClassifier(loss="log_loss", alpha=alpha, max_iter=30, tol=1e-4, random_state=seed)
        clf.fit(x[rows], y, sample_weight=w)
        table[:, i] = clf.coef_[0]
        bias[i] = clf.intercept_[0]
        print(f"  {head}: {int(pos)} positives / {len(y)} rows", flush=True)
    rows = np.array([j for j, s in enumerate(samples) if s.cap is not None])
    y = np.array([CAPS.index(samples[j].cap) for j in rows])
    counts = np.bincount(y, minlength=len(CAPS))
    w = (len(y) / (len(CAPS) * np.maximum(counts, 1)))[y] ** 0.5  # soften imbalance
    clf = SGDClassifier(loss="log_loss", alpha=alpha, max_iter=30, tol=1e-4, random_state=seed)
    clf.fit(x[rows], y, sample_weight=w)
    k = len(HEADS)
    for j, c in enumerate(clf.classes_):
        table[:, k + c] = clf.coef_[j]
        bias[k + c] = clf.intercept_[j]
    print(f"  capability: {dict(zip(CAPS, counts.tolist(), strict=True))}", flush=True)
    return table, bias


def quantise(table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scale = np.abs(table).max(axis=0) / 127.0
    scale[scale == 0] = 1.0
    q = np.clip(np.rint(table / scale[None, :]), -127, 127).astype(np.int8)
    return q, scale.astype(np.float32)


def threshold_at(neg: np.ndarray, fpr: float) -> float:
    """Smallest threshold t with mean(neg >= t) <= fpr."""
    s = np.sort(neg)[::-1]
    k = int(np.floor(fpr * len(s)))
    t = float(np.nextafter(np.float32(s[k]), np.float32(2))) if k < len(s) else 0.0
    return min(max(t, 1e-6), 1.0)


def export(path: Path, q: np.ndarray, scale: np.ndarray, bias: np.ndarray, platt: np.ndarray, temp: float,
           thresholds: dict, extra: dict) -> None:
    meta = {"format": tm.FORMAT, "spec": tm.SPEC, "spec_hash": tm.SPEC_HASH, "version": VERSION,
            "heads": list(HEADS), "capabilities": list(CAPS), "thresholds": thresholds, "cap_temperature": temp,
            **extra}
    path.parent.mkdir(parents=True, exist_ok=True)
    cap_bias = bias.copy()
    np.savez_compressed(path, q=q, scale=scale, bias=cap_bias, platt=platt, meta=np.array(json.dumps(meta)))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("src/distillguard/data/models/text-v1.npz"))
    ap.add_argument("--report", type=Path, default=Path("docs/text-classifiers.json"))
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--alpha", type=float, default=2e-6)
    ap.add_argument("--human-weight", type=float, default=3.0, help="weight of real human negatives")
    args = ap.parse_args(argv)
    t0 = time.time()
    random.seed(args.seed)
    data = build(args.seed)
    print({k: len(v) for k, v in data.items()}, f"{time.time() - t0:.0f}s", flush=True)
    feats = {k: tm.features([s.text for s in v]) for k, v in data.items()}
    print(f"features {time.time() - t0:.0f}s, train nnz {feats['train'].nnz}", flush=True)
    table, bias = fit_heads(feats["train"], data["train"], args.alpha, args.seed, args.human_weight)
    print(f"fit {time.time() - t0:.0f}s", flush=True)
    q, scale = quantise(table)
    raw = tm.TextModel(q.astype(np.float32) * scale[None, :], bias, np.tile([1.0, 0.0], (len(HEADS), 1)), {},
                       HEADS, CAPS, VERSION)

    # ---- calibration and thresholds on validation
    val = data["validation"]
    zv, _ = raw.logits([s.text for s in val])
    platt = np.zeros((len(HEADS), 2), dtype=np.float32)
    thresholds: dict[str, dict[str, float]] = {}
    for i, head in enumerate(HEADS):
        keep = np.array([head not in s.skip for s in val])
        y = np.array([s.labels[head] for s in val])[keep]
        z = zv[keep, i].astype(np.float64)
        lr = LogisticRegression(class_weight="balanced", C=100.0).fit(z[:, None], y)
        platt[i] = (lr.coef_[0, 0], lr.intercept_[0])
        p = 1 / (1 + np.exp(-(platt[i, 0] * z + platt[i, 1])))
        human = np.array([s.kind == "human" for s in val])[keep]
        thresholds[head] = {"strong": threshold_at(p[human & (y == 0)], FPR_STRONG),
                            "weak": threshold_at(p[human & (y == 0)], FPR_WEAK)}
    capv = np.array([s.cap is not None for s in val])
    yc = np.array([CAPS.index(s.cap) for s in val if s.cap is not None])
    zc = zv[capv][:, len(HEADS):].astype(np.float64)
    best = (1e9, 1.0)
    for temp in np.geomspace(0.05, 20, 60):
        a = zc * temp
        a -= a.max(axis=1, keepdims=True)
        nll = -(a[np.arange(len(yc)), yc] - np.log(np.exp(a).sum(axis=1))).mean()
        best = min(best, (nll, float(temp)))
    temp = best[1]
    # the runtime's softmax has no temperature: fold it into the capability columns
    q2, scale2 = quantise(np.concatenate([table[:, :len(HEADS)], table[:, len(HEADS):] * temp], axis=1))
    bias2 = bias.copy()
    bias2[len(HEADS):] *= temp
    export(args.out, q2, scale2, bias2, platt, temp, thresholds,
           {"trained": {"seed": args.seed, "alpha": args.alpha, "human_weight": args.human_weight,
                        "rows": len(data["train"])}})
    model = tm.TextModel.load(args.out)
    print(f"calibrated, exported {args.out} ({args.out.stat().st_size / 1e6:.2f} MB) {time.time() - t0:.0f}s")
    report = evaluate(model, data, args)
    report["weights_bytes"] = args.out.stat().st_size
    report["thresholds"] = thresholds
    report["seconds"] = round(time.time() - t0, 1)
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    print_table(report)


def _rate(x: np.ndarray) -> dict[str, float | int | None]:
    return {"n": int(len(x)), "rate": round(float(x.mean()), 5) if len(x) else None, "hits": int(x.sum())}


def evaluate(model: tm.TextModel, data: dict[str, list[Sample]], args: argparse.Namespace) -> dict:
    rep: dict = {"command": "python -m distillguard.textlab.train --out " + str(args.out) + " --report "
                 + str(args.report), "heads": {}, "data": {k: len(v) for k, v in data.items()}}
    preds = {k: model.predict([s.text for s in data[k]])
             for k in ("test_human", "test_heldout", "test_infamily", "test_documents")}
    docs = data["test_documents"]
    hum = data["test_human"]
    lang_h = np.array([s.lang for s in hum])
    held = data["test_heldout"]
    lang_g = np.array([s.lang for s in held])
    heldout_langs = set(lexicon_heldout.HELDOUT_LANGS)
    group = np.array(["en" if lg == "en" else "heldout-lang" if lg in heldout_langs else "other-train-lang"
                      for lg in lang_g])
    inf = data["test_infamily"]
    for head in HEADS:
        r: dict = {"threshold": model.thresholds[head]}
        ph = preds["test_human"][head]
        strict = np.array([head in s.skip for s in hum])
        for level in ("strong", "weak"):
            t = model.thresholds[head][level]
            hit = ph >= t
            entry = {"human_all": _rate(hit), "human_en": _rate(hit[lang_h == "en"]),
                     "human_non_en": _rate(hit[lang_h != "en"]),
                     "human_minus_strict_pattern": _rate(hit[~strict])}
            pg = preds["test_heldout"][head]
            yg = np.array([s.labels[head] for s in held])
            neg_g = np.array([s.kind in ("hardneg", "benign") for s in held])
            for g in ("en", "other-train-lang", "heldout-lang"):
                m = group == g
                entry[f"heldout_recall_{g}"] = _rate((pg >= t)[m & (yg == 1)])
                entry[f"heldout_hardneg_fpr_{g}"] = _rate((pg >= t)[m & neg_g])
            entry["heldout_recall_all"] = _rate((pg >= t)[yg == 1])
            pi = preds["test_infamily"][head]
            yi = np.array([s.labels[head] for s in inf])
            entry["infamily_recall"] = _rate((pi >= t)[yi == 1])
            entry["infamily_hardneg_fpr"] = _rate((pi >= t)[np.array([s.kind == "hardneg" for s in inf])])
            pd_ = preds["test_documents"][head]
            entry["documents_fpr"] = _rate((pd_ >= t)[np.array([head not in s.skip for s in docs])])
            r[level] = entry
        pg = preds["test_heldout"][head]
        yg = np.array([s.labels[head] for s in held])
        negs = np.concatenate([ph, pg[yg == 0]])
        r["auc_heldout_pos_vs_human_and_hardneg"] = round(float(roc_auc_score(
            np.r_[np.zeros(len(negs)), np.ones(int(yg.sum()))], np.r_[negs, pg[yg == 1]])), 5)
        top = np.argsort(-ph)[:15]
        r["top_human_negatives"] = [{"p": round(float(ph[j]), 4), "cid": _cid(hum, j),
                                     "strict_pattern": bool(strict[j]), "text": _clip(hum[j].text)} for j in top]
        missed = [j for j in np.argsort(pg) if yg[j] == 1][:8]
        r["lowest_heldout_positives"] = [{"p": round(float(pg[j]), 4), "lang": held[j].lang,
                                          "text": _clip(held[j].text)} for j in missed]
        rep["heads"][head] = r
    cap = preds["test_human"]["cap"]
    weak = np.array([CAPS.index(s.cap) for s in hum])
    rep["capability"] = {"agreement_with_weak_labels": round(float((cap == weak).mean()), 4),
                         "predicted": dict(Counter(CAPS[c] for c in cap)),
                         "weak": dict(Counter(CAPS[c] for c in weak))}
    hand = Path(__file__).with_name("capability_handcheck.json")
    if hand.exists():
        labels = json.loads(hand.read_text())
        idx = {(t.cid, t.index): j for j, t in enumerate(corpus.human_turns()["test"])}
        pairs = [(CAPS.index(v), int(cap[idx[(k.split("#")[0], int(k.split("#")[1]))]]))
                 for k, v in labels["labels"].items() if (k.split("#")[0], int(k.split("#")[1])) in idx]
        if pairs:
            a = np.array(pairs)
            rep["capability"]["handcheck"] = {"n": len(a), "accuracy": round(float((a[:, 0] == a[:, 1]).mean()), 4),
                                              "weak_label_accuracy": labels.get("weak_label_accuracy")}
    return rep


def _cid(hum: list[Sample], j: int) -> str:
    t = corpus.human_turns()["test"][j]
    return f"{t.cid}#{t.index}"


def _clip(text: str, n: int = 220) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[:150] + " ... " + text[-60:]


def print_table(rep: dict) -> None:
    print(f"{'head':8} {'lvl':6} {'FPR hum':>8} {'FPR en':>8} {'FPR !en':>8} {'FPR-strict':>10} "
          f"{'R en':>6} {'R oth':>6} {'R held':>6} {'HN fpr':>7} {'R infam':>7} {'AUC':>7} {'FPR doc':>8}")
    for head, r in rep["heads"].items():
        for level in ("strong", "weak"):
            e = r[level]
            hn = (e["heldout_hardneg_fpr_en"]["hits"] + e["heldout_hardneg_fpr_other-train-lang"]["hits"]
                  + e["heldout_hardneg_fpr_heldout-lang"]["hits"]) / max(1, e["heldout_hardneg_fpr_en"]["n"]
                  + e["heldout_hardneg_fpr_other-train-lang"]["n"] + e["heldout_hardneg_fpr_heldout-lang"]["n"])
            print(f"{head:8} {level:6} {e['human_all']['rate']:8.4f} {e['human_en']['rate']:8.4f} "
                  f"{e['human_non_en']['rate']:8.4f} {e['human_minus_strict_pattern']['rate']:10.4f} "
                  f"{e['heldout_recall_en']['rate']:6.3f} {e['heldout_recall_other-train-lang']['rate']:6.3f} "
                  f"{e['heldout_recall_heldout-lang']['rate']:6.3f} {hn:7.4f} {e['infamily_recall']['rate']:7.3f} "
                  f"{r['auc_heldout_pos_vs_human_and_hardneg']:7.4f} {e['documents_fpr']['rate']:8.4f}")
    print("capability", rep["capability"])


if __name__ == "__main__":
    main()
