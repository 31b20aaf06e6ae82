"""``distillguard provenance``: was a suspect model trained on our watermarked outputs? (and key generation)"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import click
import yaml

from distillguard.cli._common import console, fail


@click.group("provenance")
def command() -> None:
    """Watermark provenance: keys for the engines, and the radioactivity test of a suspect model."""


@command.command("keygen")
@click.option("--id", "key_id", required=True, help="key id, recorded with every exchange served under it")
@click.option("--keys", "keys_path", type=click.Path(dir_okay=False), required=True,
              help="keys file to create or add to (the new key becomes the active one)")
@click.option("--provider", default="", help="provider name (new files)")
@click.option("--greenlist-ratio", type=float, default=0.25, show_default=True)
@click.option("--bias", type=float, default=2.0, show_default=True)
def keygen(key_id: str, keys_path: str, provider: str, greenlist_ratio: float, bias: float) -> None:
    """Add a fresh key (256-bit secret) to KEYS and make it active; older keys stay for testing old outputs.

    The secret is written into the file: keep the file out of the store and the repository, or move the secret
    to an environment variable (``secret_env``)."""
    from distillguard.resist.keys import KeyError_, new_key_entry, parse_keyring

    path = Path(keys_path)
    data: dict[str, Any] = (yaml.safe_load(path.read_text()) if path.exists()
                            else {"version": 1, "provider": provider, "keys": []})
    for entry in data.get("keys") or []:
        if entry.get("id") == key_id:
            fail(f"{path}: key {key_id!r} already exists")
        entry["active"] = False
    data.setdefault("keys", []).append(new_key_entry(key_id, greenlist_ratio=greenlist_ratio, bias=bias,
                                                     created=date.today().isoformat()))
    try:
        parse_keyring(data, str(path))
    except KeyError_ as exc:
        fail(str(exc))
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    path.chmod(0o600)
    console.print(f"{path}: key {key_id} added and active")


@command.command("served")
@click.option("--store", "store_dir", type=click.Path(exists=True, file_okay=False), required=True)
@click.option("--key", "key_id", required=True, help="watermark key id, as recorded per exchange")
@click.option("--account", "accounts", multiple=True, help="only these accounts (repeat), e.g. a campaign's")
@click.option("--limit", type=int, default=None)
@click.option("--out", "out_path", type=click.Path(dir_okay=False), required=True)
def served(store_dir: str, key_id: str, accounts: tuple[str, ...], limit: int | None, out_path: str) -> None:
    """Export the exchanges served under KEY (prompt/completion JSON Lines): prompts for `provenance test
    --prompts` and the served outputs for `--filter-served`."""
    from distillguard.resist.served import served_under_key, write_jsonl
    from distillguard.store import StoreError

    try:
        n = write_jsonl(served_under_key(store_dir, key_id, accounts or None, limit), out_path)
    except StoreError as exc:
        fail(str(exc))
    console.print(f"{out_path}: {n} exchanges served under key {key_id}")


def _tokenizer(path: str | None):
    if path is None:
        return None
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    return tok


def _lines(path: str) -> list[dict]:
    p = Path(path)
    out = []
    for lineno, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        if p.suffix == ".txt":
            out.append({"prompt": line})
            continue
        try:
            out.append(json.loads(line))
        except ValueError as exc:
            fail(f"{path}:{lineno}: not JSON: {exc}")
    return out


@command.command("test")
@click.option("--keys", "keys_path", type=click.Path(exists=True, dir_okay=False), required=True)
@click.option("--key", "key_id", default=None, help="key id (default: the active key)")
@click.option("--generations", type=click.Path(exists=True, dir_okay=False),
              help="the suspect's generations: JSON Lines (prompt/completion or prompt_ids/token_ids) or .txt")
@click.option("--endpoint", help="the suspect as an OpenAI-compatible endpoint (base URL), with --model and --prompts")
@click.option("--model", "model_name", help="model name at --endpoint")
@click.option("--api-key-env", default=None, help="environment variable holding the endpoint's API key")
@click.option("--hf-model", type=click.Path(exists=True, file_okay=False),
              help="the suspect as a local transformers model directory (never downloaded)")
@click.option("--prompts", type=click.Path(exists=True, dir_okay=False),
              help="prompts to send (JSON Lines with prompt, or .txt): use prompts like the ones we served")
@click.option("--read", "read_path", type=click.Path(exists=True, dir_okay=False),
              help="with --hf-model: reading mode on our watermarked texts (JSON Lines text/token_ids)")
@click.option("--reading-statistic", type=click.Choice(["probabilities", "top1"]), default="probabilities",
              show_default=True, help="reading mode: score the suspect's next-token probabilities (green mass, more "
              "powerful) or only its top-1 guesses (the radioactivity paper's count)")
@click.option("--reference", "reference_model", type=click.Path(exists=True, file_okay=False),
              help="with --hf-model --read: a local model that never trained on our watermarked outputs (our own "
              "serving model: the watermark is added after its logits; or any model with our tokenizer) reading the "
              "same texts; the suspect's probabilities are scored against it (the paired statistic, far more "
              "powerful: what both models know of the language cancels)")
@click.option("--tokenizer", type=click.Path(exists=True, file_okay=False),
              help="our serving model's tokenizer directory (the token ids the watermark was applied to)")
@click.option("--vocab-size", type=int, default=None, help="our serving model's vocabulary size (default: tokenizer)")
@click.option("--control-generations", type=click.Path(exists=True, dir_okay=False),
              help="a clean control: generations of a model known not to have seen our outputs")
@click.option("--filter-served", type=click.Path(exists=True, dir_okay=False),
              help="supervised filter: our watermarked outputs served to the suspected accounts (JSON Lines)")
@click.option("--alpha", type=float, default=1e-3, show_default=True, help="significance level")
@click.option("--control-keys", type=int, default=100, show_default=True, help="random keys for the control")
@click.option("--max-tokens", type=int, default=256, show_default=True)
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="provenance-out", show_default=True)
def test_cmd(keys_path: str, key_id: str | None, generations: str | None, endpoint: str | None,
             model_name: str | None, api_key_env: str | None, hf_model: str | None, prompts: str | None,
             read_path: str | None, reading_statistic: str, reference_model: str | None, tokenizer: str | None,
             vocab_size: int | None,
             control_generations: str | None,
             filter_served: str | None, alpha: float, control_keys: int, max_tokens: int, out_dir: str) -> None:
    """Test whether a suspect model was trained on outputs watermarked with our key (radioactivity p-value, random-key
    and clean-model controls); writes OUT/provenance.json and a self-contained OUT/provenance.html.

    Exit code 0 when the test ran (whatever its verdict), 1 on bad input."""
    import os

    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError:
        fail("the provenance test needs PyTorch and transformers (the watermark's green lists): "
             "pip install 'distillguard[lab]'")
    from distillguard.resist import provenance as prov
    from distillguard.resist.keys import KeyError_, load_keyring
    from distillguard.resist.report import write_html

    sources = [s for s in (generations, endpoint, hf_model) if s]
    if len(sources) != 1:
        fail("give exactly one suspect: --generations FILE, --endpoint URL, or --hf-model DIR", 2)
    try:
        ring = load_keyring(keys_path)
        key = ring.get(key_id) if key_id else ring.active
    except KeyError_ as exc:
        fail(str(exc))
    if reference_model and not (hf_model and read_path and reading_statistic == "probabilities"):
        fail("--reference needs --hf-model and --read (reading mode with the suspect's probabilities)", 2)
    tok = _tokenizer(tokenizer)
    model = None
    if hf_model:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        model = AutoModelForCausalLM.from_pretrained(hf_model, local_files_only=True).eval()
        if tok is None:
            try:
                tok = AutoTokenizer.from_pretrained(hf_model, local_files_only=True)
            except (OSError, ValueError):  # a model directory without a tokenizer: token ids only
                tok = None
    vocab = vocab_size or (len(tok) if tok is not None else (model.config.vocab_size if model else None))
    if vocab is None:
        fail("--vocab-size is needed when neither --tokenizer nor --hf-model gives it", 2)

    def encode(text: str) -> list[int]:
        if tok is None:
            raise ValueError("text input needs --tokenizer (our serving model's tokenizer), or give token ids")
        return list(tok(text, add_special_tokens=False)["input_ids"])

    enc = encode if tok is not None else None
    filt = None
    if filter_served:
        filt = {t for _, ids in prov.read_generations(filter_served, enc) for t in ids}
    suspect, mode = "", "generation"
    notes: list[str] = []
    try:
        if generations:
            items = prov.read_generations(generations, enc)
            suspect = f"generations in {generations}"
        elif endpoint:
            if not model_name or not prompts:
                fail("--endpoint needs --model and --prompts", 2)
            if enc is None:
                fail("--endpoint needs --tokenizer (our serving model's tokenizer)", 2)
            texts = [row["prompt"] for row in _lines(prompts)]
            api_key = os.environ.get(api_key_env) if api_key_env else None
            completions = prov.query_endpoint(endpoint, model_name, texts, api_key=api_key, max_tokens=max_tokens)
            items = [(enc(p), enc(c)) for p, c in zip(texts, completions, strict=True)]
            suspect = f"{model_name} at {endpoint}"
        else:
            suspect = f"local model {hf_model}"
            items = None
            if read_path:
                mode = "reading"
                texts_ids = [row["token_ids"] if "token_ids" in row else encode(row.get("text") or row["completion"])
                             for row in _lines(read_path)]
                preds, dists = _read_predictions(model, texts_ids, reading_statistic == "probabilities")
                if reference_model:
                    from transformers import AutoModelForCausalLM

                    reference = AutoModelForCausalLM.from_pretrained(reference_model, local_files_only=True).eval()
                    reference_dists = _read_predictions(reference, texts_ids, True)[1]
            elif prompts:
                rows = _lines(prompts)
                items = _hf_generate(model, [row.get("prompt_ids") or encode(row["prompt"]) for row in rows],
                                     max_tokens)
            else:
                fail("--hf-model needs --prompts (generation mode) or --read (reading mode)", 2)
    except (OSError, ValueError) as exc:
        fail(str(exc))
    if mode == "reading" and reading_statistic == "probabilities":
        try:
            tuples = prov.reading_masses(texts_ids, dists, filter_contexts=filt,
                                         reference=reference_dists if reference_model else None, vocab_size=vocab)
        except ValueError as exc:
            fail(str(exc))
        notes.append(f"reading mode with the suspect's next-token probabilities, paired with the reference model "
                     f"{reference_model} (the suspect's probability minus the reference's, per window and token)"
                     if reference_model else
                     "reading mode with the suspect's next-token probabilities (green probability mass per window)")
    elif mode == "reading":
        tuples = prov.reading_tuples(texts_ids, preds, filter_contexts=filt)
    else:
        assert items is not None  # every generation-mode branch above sets them (or fails)
        tuples = prov.generation_tuples(items, filter_contexts=filt)
    clean = None
    if control_generations:
        clean = prov.generation_tuples(prov.read_generations(control_generations, enc), filter_contexts=filt)
    result = prov.test(tuples, key, prov.torch_green(vocab), suspect=suspect, mode=mode, alpha=alpha,
                       n_control_keys=control_keys, clean=clean,
                       clean_name=f"clean control ({control_generations})" if control_generations else "",
                       notes=notes)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "provenance.json").write_text(json.dumps(result.to_json(), indent=2))
    write_html(result, out / "provenance.html")
    console.print(result.verdict(), highlight=False)
    console.print(f"report: {out / 'provenance.html'}")
    click.echo(json.dumps({"pvalue": result.score.pvalue, "scored": result.score.scored,
                           "radioactive": result.radioactive,
                           "control_false_positive_rate": result.control_false_positive_rate}))


def _hf_generate(model, prompts: list[list[int]], max_tokens: int) -> list[tuple[list[int], list[int]]]:
    import torch

    out = []
    with torch.no_grad():
        for ids in prompts:
            x = torch.tensor([ids], dtype=torch.long)
            gen = model.generate(x, attention_mask=torch.ones_like(x), do_sample=True, max_new_tokens=max_tokens,
                                 top_k=0, top_p=1.0)
            out.append((list(ids), gen[0, len(ids):].tolist()))
    return out


def _read_predictions(model, texts: list[list[int]], probabilities: bool) -> tuple[list[list[int]], list[Any]]:
    """Top-1 guesses at every position of each text and, with ``probabilities``, the next-token distributions (their
    most likely tokens only, as the probability statistic reads them)."""
    import torch

    from distillguard.resist import provenance as prov

    preds, dists = [], []
    with torch.no_grad():
        for ids in texts:
            logits = model(input_ids=torch.tensor([ids], dtype=torch.long)).logits[0]
            preds.append(logits.argmax(-1).tolist())
            if probabilities:
                dists.append(prov.top_probabilities(torch.softmax(logits.float(), -1)))
    return preds, dists
