"""The study report (trial path step: report): tables, figures and report.pdf from stored trials only.

Modules: ``_model`` (trials by state, axes, labels, colours), ``_analysis`` (the numbers per configuration, axis value
and baseline comparison, from :mod:`ablate.stats`), ``_notes`` (the sentences under tables), ``_tables`` (the tables
in report order), ``_paper`` (the method paper's layouts), ``_format`` (a table's text, Markdown and LaTeX),
``_plots`` (figures), ``_pdf`` (pages), ``_write`` (the files).
"""

from ablate._report._write import write_report

__all__ = ["write_report"]
