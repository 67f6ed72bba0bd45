"""Report writing (trial path step: report); filled in by the report module."""

from ablate._report._write import write_report

__all__ = ["write_report"]
