"""Provenance (radioactivity) test: p-values, de-duplication, prompt exclusion, controls, report, CLI."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from distillguard.resist import provenance as prov

VOCAB = 64


def test_binomial_pvalue_is_the_upper_tail():
    stats = pytest.importorskip("scipy.stats")
    for green, n, gamma in [(30, 100, 0.25), (1, 1, 0.25), (0, 10, 0.25), (500, 1000, 0.25), (26, 100, 0.25)]:
        expect = 1.0 if green == 0 else stats.binom.sf(green - 1, n, gamma)
        assert prov.binomial_pvalue(green, n, gamma) == pytest.approx(expect, rel=1e-9, abs=1e-300)
    assert prov.binomial_pvalue(0, 0, 0.25) == 1.0


def test_chernoff_bound_is_never_below_the_exact_tail():
    for green, n in [(30, 100), (40, 100), (300, 1000), (1, 1), (26, 100), (100, 100)]:
        exact = prov.binomial_pvalue(green, n, 0.25)
        bound = prov.chernoff_pvalue(green - 0.25 * n, [1.0] * n, 0.25)
        assert exact <= bound * (1 + 1e-9) <= 1.0
    assert prov.chernoff_pvalue(0.0, [0.5, 0.2], 0.25) == 1.0


def test_generation_tuples_dedup_prompt_and_context_zero():
    items = [([5, 6, 7], [8, 9, 8, 9]),  # (7,8) (8,9) (9,8) (8,9)dup
             ([1, 2], [3, 0, 4, 1, 2])]  # (2,3) (3,0) (0,4)ctx0 (4,1) (1,2) in prompt
    t = prov.generation_tuples(items)
    assert t.pairs == [(7, 8), (8, 9), (9, 8), (2, 3), (3, 0), (4, 1)]
    assert t.counts() == {"tokens": 9, "scored": 6, "duplicates": 1, "in_prompt": 1, "filtered": 0, "context_0": 1}
    f = prov.generation_tuples(items, filter_contexts={7, 8})
    assert f.pairs == [(7, 8), (8, 9)] and f.filtered == 4


def test_reading_tuples_exclude_pairs_already_in_the_text():
    text = [5, 6, 5, 6, 9]
    preds = [6, 5, 6, 7, 1]  # predictions for positions 1..5: (5,6) (6,5) (5,6)seen-in-text (6,7)
    t = prov.reading_tuples([text], [preds])
    assert t.pairs == [(5, 6), (6, 5), (6, 7)]
    assert t.in_prompt == 1


torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from distillguard.resist.decode import KeyedWatermark  # noqa: E402
from distillguard.resist.keys import random_key  # noqa: E402


def _texts(n: int, length: int, key=None, seed: int = 0) -> list[tuple[list[int], list[int]]]:
    """Sequences from a uniform 'model', watermarked with ``key`` when given."""
    g = torch.Generator().manual_seed(seed)
    wm = KeyedWatermark(key, VOCAB) if key is not None else None
    out = []
    for _ in range(n):
        seq = [int(torch.randint(1, VOCAB, (1,), generator=g))]
        for _ in range(length):
            scores = torch.zeros(1, VOCAB)
            if wm is not None:
                scores = wm(torch.tensor([seq]), scores)
            seq.append(int(torch.multinomial(torch.softmax(scores[0], -1), 1, generator=g)))
        out.append((seq[:1], seq[1:]))
    return out


def test_watermarked_text_detected_clean_text_not_and_controls_calibrated():
    key = random_key("ours", rng_seed=1, bias=2.0)
    green = prov.torch_green(VOCAB)
    marked = prov.test(prov.generation_tuples(_texts(40, 40, key)), key, green, suspect="marked", mode="generation",
                       n_control_keys=50)
    assert marked.score.pvalue < 1e-10 and marked.radioactive
    assert marked.control_false_positive_rate <= 0.05
    clean_tuples = prov.generation_tuples(_texts(40, 40, None, seed=1))
    clean = prov.test(clean_tuples, key, green, suspect="clean", mode="generation", n_control_keys=50,
                      clean=clean_tuples)
    assert clean.score.pvalue > 1e-3 and not clean.radioactive
    assert clean.verdict().startswith("no evidence")
    # someone else's watermark is not ours
    other = random_key("theirs", rng_seed=2, bias=2.0)
    theirs = prov.test(prov.generation_tuples(_texts(40, 40, other, seed=2)), key, green, suspect="other",
                       mode="generation", n_control_keys=0)
    assert theirs.score.pvalue > 1e-3


def test_without_dedup_a_repetitive_clean_text_would_look_radioactive():
    key = random_key("ours", rng_seed=1)
    green = prov.torch_green(VOCAB)
    # a clean "model" that repeats one green pair a thousand times
    wm = KeyedWatermark(key, VOCAB)
    ctx = 9
    tok = int(wm.greenlist(ctx)[0])
    items = [([ctx], [tok, ctx] * 500)]
    t = prov.generation_tuples(items)
    assert len(t.pairs) <= 2  # (ctx,tok) and (tok,ctx) once each
    assert prov.score(t, key, green)[0].pvalue > 0.01


def test_reading_masses_average_per_window_and_leave_out_earlier_pairs():
    import numpy as np

    text = [5, 6, 5, 7]
    dist = np.full((4, 8), 0.0)
    dist[0, 6], dist[0, 7] = 0.75, 0.25  # after 5: mostly 6
    dist[1, 5] = 1.0  # after 6: 5
    dist[2, 6], dist[2, 7] = 0.25, 0.75  # after 5 again: (5, 6) occurred earlier in the text, left out
    t = prov.reading_masses([text], [dist], top_k=2, weigh="mean")
    pairs = dict(zip(t.pairs, t.weights or [], strict=True))
    assert pairs[(5, 6)] == pytest.approx(0.75 / 2) and pairs[(5, 7)] == pytest.approx(0.5)
    assert pairs[(6, 5)] == pytest.approx(1.0) and t.in_prompt == 1 and t.duplicates == 1
    exposed = dict(zip(*(lambda e: (e.pairs, e.weights))(prov.reading_masses([text], [dist], top_k=2)), strict=True))
    assert exposed[(5, 7)] == pytest.approx(0.5 * 2 ** 0.5) and exposed[(6, 5)] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="weigh"):
        prov.reading_masses([text], [dist], weigh="sum")


def test_reading_masses_read_the_top_probabilities_as_the_full_distributions():
    """The CLI keeps only each position's most likely tokens (a real vocabulary's full distributions do not fit in
    memory): the tuples are the same as from the full distributions."""
    import numpy as np
    import torch

    rng = np.random.default_rng(3)
    texts = [[int(x) for x in rng.integers(1, VOCAB, 30)] for _ in range(5)]
    full = [rng.dirichlet(np.full(VOCAB, 0.3), size=30) for _ in texts]
    dense = prov.reading_masses(texts, full, top_k=8)
    sparse = prov.reading_masses(texts, [prov.top_probabilities(torch.tensor(d), 8) for d in full], top_k=8)
    a = dict(zip(dense.pairs, dense.weights or [], strict=True))
    b = dict(zip(sparse.pairs, sparse.weights or [], strict=True))
    assert a and a.keys() == b.keys() and [a[k] for k in a] == pytest.approx([b[k] for k in a], rel=1e-6)
    assert (dense.in_prompt, dense.duplicates) == (sparse.in_prompt, sparse.duplicates)


def test_the_probability_mass_test_finds_a_lean_the_top1_test_misses_and_stays_calibrated():
    """A suspect that leans towards our green tokens without changing its top-1 guess: the top-1 reading test sees
    nothing, the mass test does; a suspect independent of the key is not flagged by our key or by random keys."""
    import numpy as np

    key = random_key("ours", rng_seed=1)
    green = prov.torch_green(VOCAB)
    wm = KeyedWatermark(key, VOCAB)
    rng = np.random.default_rng(0)
    texts, leaning, clean = [], [], []
    for _ in range(60):
        text = [int(x) for x in rng.integers(1, VOCAB, 40)]
        base = rng.dirichlet(np.full(VOCAB, 0.3), size=len(text))
        lean = base.copy()
        for i, ctx in enumerate(text):
            mask = wm.green_mask(ctx).numpy().astype(bool)
            top = int(base[i].argmax())
            lean[i, mask] *= 2.0  # twice as likely if green ...
            lean[i, top] = base[i, top] * 20  # ... while the top-1 guess stays what it was
            lean[i] /= lean[i].sum()
        texts.append(text)
        leaning.append(lean)
        clean.append(base)
    top1 = prov.reading_tuples(texts, [d.argmax(-1).tolist() for d in leaning])
    assert prov.score(top1, key, green)[0].pvalue > 1e-2
    radioactive = prov.score(prov.reading_masses(texts, leaning), key, green)[0]
    assert radioactive.statistic == "mass" and radioactive.pvalue < 1e-3 and radioactive.green_fraction > 0.25
    result = prov.test(prov.reading_masses(texts, clean), key, green, suspect="clean", mode="reading",
                       n_control_keys=40)
    assert result.score.pvalue > 0.01 and result.control_false_positive_rate <= 0.05
    assert all(c.pvalue > 1e-3 for c in result.control_keys)


def test_the_paired_null_bound_is_never_below_the_tail_of_random_green_lists():
    """The paired statistic's p-value (signed weights, green lists drawn as random k-subsets) is a valid upper
    bound on the tail: compared with the empirical tail over many random green lists, and its mean and variance
    with theirs."""
    import numpy as np

    rng = np.random.default_rng(3)
    n_vocab, gamma, windows = 40, 0.25, 30
    pairs = [(c, v) for c in range(1, windows + 1) for v in rng.choice(n_vocab, 12, replace=False).tolist()]
    weights = rng.normal(0, 1, len(pairs)).tolist()
    null = prov.PairedNull(pairs, weights, n_vocab, gamma)
    k = prov.green_size(n_vocab, gamma)
    by_ctx: dict[int, list[tuple[int, float]]] = {}
    for (c, v), w in zip(pairs, weights, strict=True):
        by_ctx.setdefault(c, []).append((v, w))
    draws = np.empty(20_000)
    for t in range(len(draws)):
        total = 0.0
        for items in by_ctx.values():
            chosen = set(rng.choice(n_vocab, k, replace=False).tolist())
            total += sum(w for v, w in items if v in chosen)
        draws[t] = total - null.expected
    assert abs(draws.mean()) < 4 * draws.std() / np.sqrt(len(draws))
    assert draws.var() == pytest.approx(null.variance, rel=0.05)
    for z in (1.0, 2.0, 3.0):
        excess = z * np.sqrt(null.variance)
        assert (draws >= excess).mean() <= null.pvalue(excess) * 1.02 + 1e-4
    assert null.pvalue(0.0) == 1.0 and null.pvalue(-1.0) == 1.0


def test_pairing_with_a_reference_model_finds_a_faint_lean_and_stays_calibrated():
    """A suspect that leans faintly towards our green tokens on top of a language it shares with our own model:
    the unpaired probability test misses it (the language's own variance hides it), the paired test against a
    reference that never saw our outputs finds it; a suspect without the lean is not flagged by our key, nor is the
    lean by random keys."""
    import numpy as np

    key = random_key("ours", rng_seed=1)
    green = prov.torch_green(VOCAB)
    wm = KeyedWatermark(key, VOCAB)
    rng = np.random.default_rng(0)
    texts, suspect, clean, reference = [], [], [], []
    language = rng.dirichlet(np.full(VOCAB, 0.1), size=VOCAB)  # the next-token law both models learned
    for _ in range(40):
        text = [int(x) for x in rng.integers(1, VOCAB, 40)]
        ref = np.stack([language[c] for c in text])
        noise = rng.dirichlet(np.full(VOCAB, 50.0), size=len(text))  # the suspect is another model of it
        base = 0.9 * ref + 0.1 * noise
        lean = base.copy()
        for i, ctx in enumerate(text):
            lean[i, wm.green_mask(ctx).numpy().astype(bool)] *= 1.05
            lean[i] /= lean[i].sum()
        texts.append(text)
        suspect.append(lean)
        clean.append(base)
        reference.append(ref)
    plain = prov.score(prov.reading_masses(texts, suspect), key, green)[0]
    paired_t = prov.reading_masses(texts, suspect, reference=reference, vocab_size=VOCAB)
    paired = prov.score(paired_t, key, green)[0]
    assert paired_t.paired and paired.statistic == "paired"
    assert prov.green_size(VOCAB, key.greenlist_ratio) == wm.greenlist_size  # the null's k is the engine's
    assert plain.pvalue > 1e-3 and paired.pvalue < 1e-4 and paired.z > 4 > plain.z
    result = prov.test(prov.reading_masses(texts, clean, reference=reference, vocab_size=VOCAB), key, green,
                       suspect="clean", mode="reading", n_control_keys=40)
    assert result.score.pvalue > 0.01 and result.control_false_positive_rate <= 0.05
    leaning = prov.test(paired_t, key, green, suspect="s", mode="reading", n_control_keys=40)
    assert all(c.pvalue > 1e-3 for c in leaning.control_keys)  # the lean is towards our key only
    with pytest.raises(ValueError, match="vocab_size"):
        prov.reading_masses(texts, suspect, reference=reference)
    # paired, only a window's first position in each text is read: later ones follow a token its own green list
    # chose (the text is ours, watermarked), so which weights count would depend on the key
    text, dist = [3, 5, 3, 7], np.full((4, VOCAB), 1.0 / VOCAB)
    dist[0, 9], dist[2, 11] = 0.5, 0.5
    one = prov.reading_masses([text], [dist], reference=[np.full((4, VOCAB), 1.0 / VOCAB)], vocab_size=VOCAB,
                              weigh="mean")
    assert dict(zip(one.pairs, one.weights, strict=True))[(3, 9)] > 0 and (3, 11) not in one.pairs
    assert one.in_prompt == 1 and one.duplicates == 0
    with pytest.raises(ValueError, match="fewer texts"):
        prov.reading_masses(texts, suspect, reference=reference[:-1], vocab_size=VOCAB)


def test_report_is_self_contained(tmp_path):
    from distillguard.resist.report import write_html

    key = random_key("ours", rng_seed=1, bias=2.0)
    r = prov.test(prov.generation_tuples(_texts(20, 30, key)), key, prov.torch_green(VOCAB), suspect="s",
                  mode="generation", n_control_keys=20)
    html = write_html(r, tmp_path / "r.html").read_text()
    assert "data:image/png;base64," in html and "radioactive" in html
    assert "src=\"http" not in html and "hashing_key" not in html


def test_cli_keygen_and_test(tmp_path):
    from distillguard.cli import main
    from distillguard.resist.keys import load_keyring

    runner = CliRunner()
    keys = tmp_path / "keys.yaml"
    assert runner.invoke(main, ["provenance", "keygen", "--id", "k1", "--keys", str(keys)]).exit_code == 0
    assert runner.invoke(main, ["provenance", "keygen", "--id", "k2", "--keys", str(keys)]).exit_code == 0
    ring = load_keyring(keys)
    assert ring.active.id == "k2" and len(ring.keys) == 2
    gens = tmp_path / "gens.jsonl"
    gens.write_text("".join(json.dumps({"prompt_ids": p, "token_ids": c}) + "\n"
                            for p, c in _texts(30, 40, ring.get("k1"))))
    out = tmp_path / "out"
    res = runner.invoke(main, ["provenance", "test", "--keys", str(keys), "--key", "k1", "--generations", str(gens),
                               "--vocab-size", str(VOCAB), "--control-keys", "20", "--out", str(out)])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert summary["radioactive"] and summary["pvalue"] < 1e-6
    assert (out / "provenance.html").exists()
    assert json.loads((out / "provenance.json").read_text())["key"]["id"] == "k1"
    res2 = runner.invoke(main, ["provenance", "test", "--keys", str(keys), "--generations", str(gens),
                                "--vocab-size", str(VOCAB), "--control-keys", "20", "--out", str(out)])
    assert res2.exit_code == 0 and not json.loads(res2.stdout.strip().splitlines()[-1])["radioactive"]  # k2


def test_cli_local_model_generation_and_reading_modes(tmp_path):
    """A local transformers model directory (saved here, never downloaded), prompted and reading our texts."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from distillguard.cli import main
    from distillguard.resist.keys import load_keyring

    torch.manual_seed(0)
    model_dir = tmp_path / "suspect"
    GPT2LMHeadModel(GPT2Config(vocab_size=VOCAB, n_positions=64, n_embd=16, n_layer=1, n_head=2)).save_pretrained(
        model_dir)
    runner = CliRunner()
    keys = tmp_path / "keys.yaml"
    assert runner.invoke(main, ["provenance", "keygen", "--id", "k1", "--keys", str(keys)]).exit_code == 0
    key = load_keyring(keys).active
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt_ids": [i + 1, i + 2]}) + "\n" for i in range(10)))
    texts = tmp_path / "served.jsonl"
    texts.write_text("".join(json.dumps({"token_ids": p + c}) + "\n" for p, c in _texts(10, 30, key)))
    reference_dir = tmp_path / "reference"
    GPT2LMHeadModel(GPT2Config(vocab_size=VOCAB, n_positions=64, n_embd=16, n_layer=1, n_head=2)).save_pretrained(
        reference_dir)
    for mode in (["--prompts", str(prompts), "--max-tokens", "20"], ["--read", str(texts)],
                 ["--read", str(texts), "--reading-statistic", "top1"],
                 ["--read", str(texts), "--reference", str(reference_dir)]):
        res = runner.invoke(main, ["provenance", "test", "--keys", str(keys), "--hf-model", str(model_dir), *mode,
                                   "--control-keys", "10", "--out", str(tmp_path / "out")])
        assert res.exit_code == 0, res.output
        summary = json.loads(res.stdout.strip().splitlines()[-1])
        assert summary["scored"] > 0 and not summary["radioactive"]  # a random model never saw our outputs
    report = json.loads((tmp_path / "out" / "provenance.json").read_text())
    assert report["score"]["statistic"] == "paired" and "paired with the reference model" in report["notes"][0]
    assert "reference" in (tmp_path / "out" / "provenance.html").read_text()
    res = runner.invoke(main, ["provenance", "test", "--keys", str(keys), "--hf-model", str(model_dir), "--prompts",
                               str(prompts), "--reference", str(reference_dir), "--out", str(tmp_path / "out2")])
    assert res.exit_code == 2 and "--reference needs --hf-model and --read" in res.output
