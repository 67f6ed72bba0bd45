"""The study report (trial path step: report): tables, figures and report.pdf from stored trials only.

Modules: ``_model`` (trials by state, axes, labels, colours), ``_tables`` (statistics and tables),
``_plots`` (figures), ``_pdf`` (pages), ``_write`` (the files).
"""

from ablate._report._write import write_report

__all__ = ["write_report"]
