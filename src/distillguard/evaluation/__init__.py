"""Evaluation of detection on simulated ground truth: held-out seeds and leave-one-campaign-type-out."""

from distillguard.evaluation.metrics import campaign_ari, recall_at_fpr, roc_auc, threshold_at_fpr
from distillguard.evaluation.run import evaluate, evaluate_held_out, harvest_before_flag, leave_one_type_out

__all__ = ["campaign_ari", "evaluate", "evaluate_held_out", "harvest_before_flag", "leave_one_type_out",
           "recall_at_fpr", "roc_auc", "threshold_at_fpr"]
