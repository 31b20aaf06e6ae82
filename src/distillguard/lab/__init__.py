"""The distillation lab: train a small teacher from scratch, distil students from its outputs under each defence,
and measure teacher accuracy, student accuracy and watermark radioactivity (``distillguard lab``).

Needs the ``lab`` extra (PyTorch CPU and ``transformers``); nothing is downloaded at run time.
"""
