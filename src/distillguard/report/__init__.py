"""The analyst report (``OUT/report.html``)."""

from distillguard.report.render import write_report

__all__ = ["write_report"]
