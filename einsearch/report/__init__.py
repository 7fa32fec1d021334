"""The interactive HTML report of one or more searches (`einsearch report`)."""
from einsearch.report.page import write_html_report

__all__ = ["write_html_report"]
