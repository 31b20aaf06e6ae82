"""The lab's experiments: teacher vs student accuracy under each defence, and provenance p-values vs the share of
watermarked data (``distillguard lab``). Seeded: the same config and seed give the same numbers on the same
PyTorch build and thread count."""

from __future__ import annotations

import copy
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from distillguard.lab import lang, task
from distillguard.lab.model import Arch, generate, new_model, train, trained
from distillguard.resist import provenance as prov
from distillguard.resist.decode import AntidistillationProcessor, KeyedWatermark, perturbed_proxy
from distillguard.resist.keys import WatermarkKey, random_key


@dataclass(frozen=True)
class LabConfig:
    name: str = "full"
    seed: int = 0
    threads: int = 2
    parallel: bool = True  # with threads >= 2: the two experiments in two processes of one thread each
    experiments: tuple[str, ...] = ("arithmetic", "provenance")
    defences: tuple[str, ...] = ("none", "withhold", "summarise", "restructure", "temperature", "antidistillation",
                                 "watermark")
    # arithmetic: teacher, the attacker's undistilled student, the provider's proxy student
    digits: int = 3
    teacher_arch: Arch = Arch(64, 2, 4, 64)
    teacher_examples: int = 20000
    teacher_steps: int = 600
    student_arch: Arch = Arch(48, 2, 4, 64)
    base_examples: int = 300
    base_steps: int = 300
    harvest: int = 2000
    distil_steps: int = 300
    eval_examples: int = 400
    proxy_examples: int = 300
    proxy_steps: int = 300
    ad_epsilon: float = 0.05
    ad_strengths: tuple[float, ...] = (0.003, 0.01, 0.03, 0.1, 0.2, 0.4, 0.8)
    temperatures: tuple[float, ...] = (1.5, 2.0)
    text_defences: tuple[str, ...] = ("withhold", "summarise", "restructure")
    watermark_bias: float = 2.0
    # provenance: free text
    words: int = 1000
    successors: int = 64
    seq_len: int = 48
    lm_arch: Arch = Arch(96, 2, 4, 64)
    lm_teacher_examples: int = 8000
    lm_teacher_steps: int = 400
    lm_base_examples: int = 8000  # the attacker's base model: pretrained on other text of the same language
    lm_base_steps: int = 400
    lm_student_examples: int = 4000  # its fine-tuning set: watermarked share + other text
    lm_student_steps: int = 200
    shares: tuple[float, ...] = (0.01, 0.02, 0.05, 0.1, 0.2)
    clean_students: int = 4
    probes: int = 3000
    control_keys_per_clean: int = 25
    text_controls: int = 100
    greenlist_ratio: float = 0.25
    lm_bias: float = 2.0


CONFIGS: dict[str, LabConfig] = {
    "full": LabConfig(),
    "smoke": LabConfig(name="smoke", parallel=False, digits=2, teacher_arch=Arch(32, 1, 2, 48), teacher_examples=1000,
                       teacher_steps=30, student_arch=Arch(32, 1, 2, 48), base_examples=100, base_steps=15,
                       harvest=100, distil_steps=10, eval_examples=50, proxy_examples=100, proxy_steps=15,
                       ad_strengths=(0.2,), temperatures=(2.0,), words=200, successors=32, seq_len=16,
                       lm_arch=Arch(32, 1, 2, 32), lm_teacher_examples=300, lm_teacher_steps=15,
                       lm_base_examples=300, lm_base_steps=15, lm_student_examples=200, lm_student_steps=10,
                       shares=(0.05, 0.5), clean_students=1, probes=100, control_keys_per_clean=10,
                       text_controls=10),
}


@dataclass
class Setting:
    defence: str
    strength: float | None
    teacher_accuracy: float
    student_accuracy: float
    generation_seconds: float | None = None
    tokens: int = 0
    note: str = ""


@dataclass
class LabResult:
    config: dict[str, Any]
    teacher_clean_accuracy: float = 0.0
    teacher_greedy_accuracy: float = 0.0
    undistilled_accuracy: float = 0.0
    proxy_accuracy: float = 0.0
    settings: list[Setting] = field(default_factory=list)
    provenance: list[dict[str, Any]] = field(default_factory=list)
    controls: list[dict[str, Any]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _acc(problems: list[task.Problem], completions: list[list[int]]) -> float:
    return float(np.mean([task.correct(p, task.decode(c)) for p, c in zip(problems, completions, strict=True)]))


def _encode_all(texts: list[str]) -> list[list[int]]:
    return [task.encode(t) for t in texts]


def arithmetic(cfg: LabConfig, key: WatermarkKey, result: LabResult, log: Callable[[str], None],
               cache: Path | None = None) -> None:
    d, pad, eos = cfg.digits, task.PAD_ID, task.EOS_ID
    vocab = len(task.CHARS)
    ss = np.random.SeedSequence(cfg.seed)
    r_teacher, r_eval, r_base, r_harvest, r_proxy, r_val = (np.random.default_rng(s) for s in ss.spawn(6))
    teacher_data = task.problems(cfg.teacher_examples, d, r_teacher)
    evals = task.problems(cfg.eval_examples, d, r_eval)
    base = task.problems(cfg.base_examples, d, r_base)
    harvest = task.problems(cfg.harvest, d, r_harvest)
    proxy_data = task.problems(cfg.proxy_examples, d, r_proxy)
    proxy_val = task.problems(256, d, r_val)
    max_new = task.completion_length(d) + d + 4

    def prompts(ps: list[task.Problem]) -> list[list[int]]:
        return [task.encode(p.prompt) for p in ps]

    def fit(model, ps: list[task.Problem], completions: list[str], steps: int, seed: int, lr: float) -> None:
        train(model, prompts(ps), _encode_all(completions), steps=steps, batch_size=64 if steps < 1000 else 128,
              lr=lr, seed=seed, pad_id=pad, warmup=min(50, max(steps // 5, 1)))

    t0 = time.perf_counter()
    teacher, loaded = trained(cache, _name(cfg, "arith-teacher"),
                              lambda: new_model(vocab, cfg.teacher_arch, cfg.seed, pad, eos),
                              lambda m: train(m, prompts(teacher_data),
                                              _encode_all([p.completion() for p in teacher_data]),
                                              steps=cfg.teacher_steps, batch_size=128, lr=3e-3, seed=cfg.seed,
                                              pad_id=pad))
    result.timings["teacher_train_s" if not loaded else "teacher_loaded_s"] = time.perf_counter() - t0
    result.teacher_greedy_accuracy = _acc(evals, generate(teacher, prompts(evals), max_new_tokens=max_new,
                                                          seed=cfg.seed, greedy=True))
    log(f"teacher {'loaded' if loaded else 'trained'} in {time.perf_counter() - t0:.0f}s: greedy accuracy "
        f"{result.teacher_greedy_accuracy:.3f}")

    undistilled, _ = trained(cache, _name(cfg, "arith-undistilled"),
                             lambda: new_model(vocab, cfg.student_arch, cfg.seed + 1, pad, eos),
                             lambda m: fit(m, base, [p.completion() for p in base], cfg.base_steps, cfg.seed + 1,
                                           3e-3))
    result.undistilled_accuracy = _acc(evals, generate(undistilled, prompts(evals), max_new_tokens=max_new,
                                                       seed=cfg.seed, greedy=True))
    proxy, _ = trained(cache, _name(cfg, "arith-proxy"),
                       lambda: new_model(vocab, cfg.student_arch, cfg.seed + 2, pad, eos),
                       lambda m: fit(m, proxy_data, [p.completion() for p in proxy_data], cfg.proxy_steps,
                                     cfg.seed + 2, 3e-3))
    result.proxy_accuracy = _acc(evals, generate(proxy, prompts(evals), max_new_tokens=max_new, seed=cfg.seed,
                                                 greedy=True))
    log(f"undistilled student accuracy {result.undistilled_accuracy:.3f}, proxy {result.proxy_accuracy:.3f}")

    val_ids = torch.tensor([task.encode(p.prompt + p.completion()) for p in proxy_val])
    plen = len(proxy_val[0].prompt)

    def downstream_loss(model: torch.nn.Module) -> torch.Tensor:
        logits = model(input_ids=val_ids).logits[:, plen - 1:-1]
        return torch.nn.functional.cross_entropy(logits.reshape(-1, vocab), val_ids[:, plen:].reshape(-1))

    moved = perturbed_proxy(proxy, downstream_loss, cfg.ad_epsilon)

    def serve(temperature: float = 1.0, make=None, processors=()) -> tuple[list[str], float, int]:
        t = time.perf_counter()
        out = generate(teacher, prompts(harvest), max_new_tokens=max_new, seed=cfg.seed + 7, temperature=temperature,
                       make_processors=make, processors=processors)
        seconds = time.perf_counter() - t
        return [task.decode(c) for c in out], seconds, sum(len(c) for c in out)

    def distil(name: str, strength: float | None, served: list[str], seconds: float | None, tokens: int,
               note: str = "") -> Setting:
        teacher_acc = float(np.mean([task.correct(p, c) for p, c in zip(harvest, served, strict=True)]))
        student = copy.deepcopy(undistilled)
        fit(student, harvest, [c if c.endswith(task.EOS) else c + task.EOS for c in served], cfg.distil_steps,
            cfg.seed + 3, 2e-3)
        student_acc = _acc(evals, generate(student, prompts(evals), max_new_tokens=max_new, seed=cfg.seed,
                                           greedy=True))
        setting = Setting(name, strength, teacher_acc, student_acc, seconds, tokens, note)
        log(f"  {name:<17} {'' if strength is None else strength:<5} teacher {teacher_acc:.3f}  "
            f"student {student_acc:.3f}" + (f"  ({seconds:.1f}s to serve)" if seconds is not None else ""))
        result.settings.append(setting)
        return setting

    on = set(cfg.defences)
    clean, clean_s, clean_tokens = serve()
    result.teacher_clean_accuracy = float(np.mean([task.correct(p, c) for p, c in zip(harvest, clean, strict=True)]))
    if "none" in on:
        distil("none", None, clean, clean_s, clean_tokens, "temperature 1")
    for name in (d for d in cfg.text_defences if d in on):
        rewrite = {"withhold": task.withhold, "summarise": task.summarise, "restructure": task.restructure}[name]
        distil(name, None, [rewrite(c) for c in clean], None, 0, "text-level, on the temperature-1 outputs")
    for tau in cfg.temperatures if "temperature" in on else ():
        distil("temperature", tau, *serve(temperature=tau))
    for lam in cfg.ad_strengths if "antidistillation" in on else ():
        distil("antidistillation", lam, *serve(make=lambda lam=lam: [
            AntidistillationProcessor(proxy, moved, lam, cfg.ad_epsilon)]))
    if "watermark" in on:
        wm_key = replace(key, bias=cfg.watermark_bias)
        distil("watermark", cfg.watermark_bias, *serve(processors=[KeyedWatermark(wm_key, vocab)]))


def provenance(cfg: LabConfig, key: WatermarkKey, result: LabResult, log: Callable[[str], None],
               cache: Path | None = None) -> None:
    ss = np.random.SeedSequence(cfg.seed + 100)
    r_teacher, r_served, r_other, r_probe, r_text = (np.random.default_rng(s) for s in ss.spawn(5))
    src = lang.MarkovSource(cfg.words, cfg.successors, cfg.seed + 100)
    vocab, length = src.vocab_size, cfg.seq_len
    t0 = time.perf_counter()
    corpus = src.sample(cfg.lm_teacher_examples, length, r_teacher)
    teacher, _ = trained(cache, _name(cfg, "text-teacher"),
                         lambda: new_model(vocab, cfg.lm_arch, cfg.seed + 100, lang.PAD_ID, lang.BOS_ID),
                         lambda m: train(m, [s[:1] for s in corpus], [s[1:] for s in corpus],
                                         steps=cfg.lm_teacher_steps, batch_size=64, lr=3e-3, seed=cfg.seed + 100,
                                         pad_id=lang.PAD_ID))
    log(f"text teacher trained in {time.perf_counter() - t0:.0f}s (source entropy {src.entropy_bits():.2f} bits)")
    wm = KeyedWatermark(key, vocab)
    n_wm = max(1, int(round(max(cfg.shares) * cfg.lm_student_examples)))
    served_prompts = lang.prompts(n_wm, vocab, r_served)

    def gen(prompts: list[list[int]], seed: int, processors=()) -> list[list[int]]:
        return generate(teacher, prompts, max_new_tokens=length - 2, seed=seed, processors=processors)

    t = time.perf_counter()
    served = [p + c for p, c in zip(served_prompts, gen(served_prompts, cfg.seed + 101), strict=True)]
    plain_s = time.perf_counter() - t
    t = time.perf_counter()
    served = [p + c for p, c in zip(served_prompts, gen(served_prompts, cfg.seed + 101, [wm]), strict=True)]
    result.timings["lm_generate_plain_s"] = plain_s
    result.timings["lm_generate_watermark_s"] = time.perf_counter() - t
    green = prov.torch_green(vocab)
    own = prov.test(prov.generation_tuples([(s[:2], s[2:]) for s in served]), key, green, suspect="served outputs",
                    mode="generation", n_control_keys=0)
    log(f"served watermarked text: green {own.score.green_fraction:.3f} (gamma {key.greenlist_ratio}), "
        f"p {own.score.pvalue:.1e}")
    probe_prompts = lang.prompts(cfg.probes, vocab, r_probe)

    base_corpus = src.sample(cfg.lm_base_examples, length, np.random.default_rng(cfg.seed + 150))
    base, _ = trained(cache, _name(cfg, "text-student-base"),
                      lambda: new_model(vocab, cfg.lm_arch, cfg.seed + 150, lang.PAD_ID, lang.BOS_ID),
                      lambda m: train(m, [s[:1] for s in base_corpus], [s[1:] for s in base_corpus],
                                      steps=cfg.lm_base_steps, batch_size=64, lr=3e-3, seed=cfg.seed + 150,
                                      pad_id=lang.PAD_ID))

    n_read_default = max(1, int(round(0.05 * cfg.lm_student_examples)))

    def read(model: torch.nn.Module, texts: list[list[int]]) -> tuple[list[list[int]], list[np.ndarray]]:
        """A model reading texts: its top-1 guess and its next-token distribution at every position."""
        width = max(len(t) for t in texts)
        padded = torch.tensor([t + [lang.PAD_ID] * (width - len(t)) for t in texts])
        preds: list[list[int]] = []
        dists: list[np.ndarray] = []
        with torch.no_grad():
            for i in range(0, len(texts), 256):
                logits = model(input_ids=padded[i:i + 256]).logits
                probs = torch.softmax(logits.float(), -1).numpy()
                for t, row, dist in zip(texts[i:i + 256], logits.argmax(-1).tolist(), probs, strict=True):
                    preds.append(row[:len(t)])
                    dists.append(dist[:len(t)])
        return preds, dists

    # the provider's reference for the paired statistic: its own teacher's distribution before the watermark
    # (the logits processor adds the bias after the model), read once over the served texts; each student reads a
    # prefix of them
    reference = read(teacher, served)[1]

    def student(share: float, seed: int) -> tuple[prov.Tuples, prov.Tuples, prov.Tuples, prov.Tuples, prov.Tuples]:
        """The attacker's base model fine-tuned on a set with ``share`` of our watermarked outputs; its tuples in
        generation mode (prompted, closed model) and reading mode (reading the watermarked texts we served to it,
        or as many of them as a 5 % share holds for a clean student: open model, supervised), by its top-1 guesses
        and by its probabilities."""
        n_marked = int(round(share * cfg.lm_student_examples))
        other = src.sample(cfg.lm_student_examples - n_marked, length, np.random.default_rng(seed))
        data = served[:n_marked] + other
        model = copy.deepcopy(base)
        train(model, [s[:1] for s in data], [s[1:] for s in data], steps=cfg.lm_student_steps, batch_size=64,
              lr=1e-3, seed=seed, pad_id=lang.PAD_ID, warmup=10)
        outs = generate(model, probe_prompts, max_new_tokens=length - 2, seed=seed + 1)
        n_read = n_marked or n_read_default
        texts = served[:n_read]
        preds, dists = read(model, texts)
        return (prov.generation_tuples(list(zip(probe_prompts, outs, strict=True))),
                prov.reading_tuples(texts, preds), prov.reading_masses(texts, dists),
                prov.reading_masses(texts, dists, weigh="mean"),
                prov.reading_masses(texts, dists, reference=reference[:n_read], vocab_size=vocab))

    for i, share in enumerate(cfg.shares):
        gen_t, read_t, mass_t, mean_t, paired_t = student(share, cfg.seed + 200 + i)
        g, _ = prov.score(gen_t, key, green)
        r, _ = prov.score(read_t, key, green)
        m, _ = prov.score(mass_t, key, green)
        mm, _ = prov.score(mean_t, key, green)
        pr, _ = prov.score(paired_t, key, green)
        result.provenance.append({"share": share, "pvalue": g.pvalue, "z": g.z, "scored": g.scored,
                                  "green_fraction": g.green_fraction, "reading_pvalue": r.pvalue, "reading_z": r.z,
                                  "reading_scored": r.scored, "mass_pvalue": m.pvalue, "mass_z": m.z,
                                  "mass_scored": m.scored, "mass_green_fraction": m.green_fraction,
                                  "mass_mean_pvalue": mm.pvalue, "mass_mean_z": mm.z,
                                  "paired_pvalue": pr.pvalue, "paired_z": pr.z, "paired_scored": pr.scored})
        log(f"  student with {share:>5.1%} watermarked data: generation p {g.pvalue:.1e} (z {g.z:.1f}, "
            f"{g.scored} pairs); reading p {r.pvalue:.1e} (z {r.z:.1f}, {r.scored} pairs); reading probabilities "
            f"p {m.pvalue:.1e} (z {m.z:.1f}, {m.scored} pairs; every window once: z {mm.z:.1f}); paired with the "
            f"teacher p {pr.pvalue:.1e} (z {pr.z:.1f}, {pr.scored} pairs)")
    for j in range(cfg.clean_students):
        gen_t, read_t, mass_t, mean_t, paired_t = student(0.0, cfg.seed + 300 + j)
        for mode, tuples in (("generation", gen_t), ("reading", read_t), ("reading probabilities", mass_t),
                             ("reading probabilities, every window once", mean_t),
                             ("reading probabilities, paired with the teacher", paired_t)):
            res = prov.test(tuples, key, green, suspect=f"clean student {j}", mode=mode,
                            n_control_keys=cfg.control_keys_per_clean)
            result.controls.append({"kind": f"clean student ({mode}), our key", "pvalue": res.score.pvalue,
                                    "z": res.score.z})
            for c in res.control_keys:
                result.controls.append({"kind": f"clean student ({mode}), random key", "pvalue": c.pvalue,
                                        "z": c.z})
            log(f"  clean student {j} ({mode}): p {res.score.pvalue:.2f}; random keys below 0.01: "
                f"{res.control_false_positive_rate:.0%}")
    # unwatermarked texts: the source itself and the teacher's own unwatermarked outputs, in probe-sized chunks
    for k in range(cfg.text_controls):
        if k % 2 == 0:
            seqs = src.sample(max(cfg.probes // 10, 20), length, r_text)
            kind = "unwatermarked text (source)"
        else:
            ps = lang.prompts(max(cfg.probes // 10, 20), vocab, r_text)
            seqs = [p + c for p, c in zip(ps, gen(ps, cfg.seed + 400 + k), strict=True)]
            kind = "unwatermarked text (teacher, no watermark)"
        tuples = prov.generation_tuples([(s[:2], s[2:]) for s in seqs])
        ks, _ = prov.score(tuples, key, green)
        result.controls.append({"kind": kind, "pvalue": ks.pvalue, "z": ks.z})
    fp = sum(c["pvalue"] < 0.01 for c in result.controls)
    log(f"controls: {fp} of {len(result.controls)} below p 0.01")


def _provenance_job(cfg: LabConfig, key: WatermarkKey, cache: Path | None) -> dict[str, Any]:
    """The provenance experiment in a worker process (one PyTorch thread), returning its part of the result."""
    torch.set_num_threads(1)
    part = LabResult(config={})
    t = time.perf_counter()
    provenance(cfg, key, part, lambda m: print(m, flush=True), cache)
    part.timings["provenance_s"] = time.perf_counter() - t
    return {"provenance": part.provenance, "controls": part.controls, "timings": part.timings}


def run(cfg: LabConfig, out: Path, log: Callable[[str], None] = print, cache: Path | None = None,
        merge: Path | None = None) -> LabResult:
    """Both experiments; ``cache`` keeps trained teachers, proxies and undistilled students between runs.

    With ``parallel`` and ``threads`` >= 2 the two experiments run side by side, each in its own process with one
    PyTorch thread (no intra-op spinning: on 2 busy cores this is faster than one process with 2 threads);
    otherwise one after the other. ``merge``: an earlier ``results.json`` whose settings (and experiments) this
    run did not redo are kept, so a sweep can be added to a full run; ``seconds`` then adds both runs' times."""
    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    result = LabResult(config=_config_json(cfg))
    key = random_key("lab-key", rng_seed=cfg.seed, greenlist_ratio=cfg.greenlist_ratio, bias=cfg.lm_bias)
    future = None
    run_arith, run_prov = "arithmetic" in cfg.experiments, "provenance" in cfg.experiments
    parallel = cfg.parallel and cfg.threads >= 2 and run_arith and run_prov
    if parallel:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
        future = pool.submit(_provenance_job, cfg, key, cache)
    torch.set_num_threads(1 if parallel else cfg.threads)
    t = time.perf_counter()
    if run_arith:
        arithmetic(cfg, key, result, log, cache)
        result.timings["arithmetic_s"] = time.perf_counter() - t
    if future is not None:
        part = future.result()
        pool.shutdown()
        result.provenance, result.controls = part["provenance"], part["controls"]
        result.timings.update(part["timings"])
    elif run_prov:
        t = time.perf_counter()
        provenance(cfg, key, result, log, cache)
        result.timings["provenance_s"] = time.perf_counter() - t
    result.seconds = time.perf_counter() - started
    if merge is not None:
        _merge(result, json.loads(merge.read_text()), run_arith, run_prov)
    (out / "results.json").write_text(json.dumps(result.to_json(), indent=2, default=_json_default))
    from distillguard.lab.report import write_report

    write_report(result, out)
    log(f"lab done in {result.seconds:.0f}s: {out / 'lab.html'}")
    return result


def _merge(result: LabResult, old: dict[str, Any], ran_arith: bool, ran_prov: bool) -> None:
    done = {(s.defence, s.strength) for s in result.settings}
    kept = [Setting(**s) for s in old.get("settings", []) if (s["defence"], s["strength"]) not in done]
    result.settings = kept + result.settings if ran_arith else [Setting(**s) for s in old.get("settings", [])]
    if not ran_arith:
        for name in ("teacher_clean_accuracy", "teacher_greedy_accuracy", "undistilled_accuracy", "proxy_accuracy"):
            setattr(result, name, old.get(name, 0.0))
    if not ran_prov:
        result.provenance, result.controls = old.get("provenance", []), old.get("controls", [])
    result.timings = {**{f"earlier_{k}": v for k, v in old.get("timings", {}).items()}, **result.timings}
    result.seconds += float(old.get("seconds", 0.0))
    result.config["merged_from"] = old.get("config")


_ROLE_FIELDS = {
    "arith-teacher": ("digits", "teacher_arch", "teacher_examples", "teacher_steps"),
    "arith-undistilled": ("digits", "student_arch", "base_examples", "base_steps"),
    "arith-proxy": ("digits", "student_arch", "proxy_examples", "proxy_steps"),
    "text-teacher": ("words", "successors", "seq_len", "lm_arch", "lm_teacher_examples", "lm_teacher_steps"),
    "text-student-base": ("words", "successors", "seq_len", "lm_arch", "lm_base_examples", "lm_base_steps"),
}


def _name(cfg: LabConfig, role: str) -> str:
    """Cache name: the role and a hash of the fields that determine its weights, the seed and torch's version."""
    import hashlib

    conf = _config_json(cfg)
    blob = json.dumps({k: conf[k] for k in ("seed", *_ROLE_FIELDS[role])}, sort_keys=True) + torch.__version__
    return f"{role}-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"


def _config_json(cfg: LabConfig) -> dict[str, Any]:
    return json.loads(json.dumps(asdict(cfg), default=_json_default))


def _json_default(obj: Any) -> Any:
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if hasattr(obj, "__dataclass_fields__"):
        return asdict(obj)
    raise TypeError(type(obj))
