"""Training and evaluation of the learned text heads (``distillguard.signals.text_model``).

Imported only by training / evaluation commands, never by detection at run time:

- :mod:`.corpus`: real human turns (ShareGPT V3, odd-hash half only, via ``distillguard.corpus.sharegpt``),
  weak capability labels and the strict "a human really asked for it" patterns used to audit label noise;
- :mod:`.lexicon_train` / :mod:`.lexicon_heldout`: two independently written phrase families (the held-out one
  also covers languages absent from training) of positives, hard negatives and benign prompts;
- :mod:`.generate`: composes them with real human payloads (prefix / suffix / middle, system-prompt framing,
  casing, typos);
- :mod:`.train`: ``python -m distillguard.textlab.train --out ... --report ...`` trains, picks thresholds on
  validation, evaluates on test and held-out families, writes the weights and the JSON report.
"""
