"""Distillation resistance: decode-time defences (antidistillation sampling, keyed watermark), text-level trace
rewriting, the provenance (watermark radioactivity) test and the versioned resistance profile.

The modules that need PyTorch / ``transformers`` (:mod:`.decode`, :mod:`.vllm_plugin`, the scoring in
:mod:`.provenance`) import them lazily; the rest (profile, keys, directives, text rewriting, p-values) is plain
Python and is what the gateway imports.
"""
