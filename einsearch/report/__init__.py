"""The interactive HTML report of one or more searches (`einsearch report`).

`write_html_report` is imported on first use: the tables of `leaderboard` and `searches` use
`report.facts` alone and must not pay for plotly, matplotlib and networkx.
"""
from __future__ import annotations

from typing import Any

__all__ = ["write_html_report"]


def __getattr__(name: str) -> Any:
    if name == "write_html_report":
        from einsearch.report.page import write_html_report

        return write_html_report
    raise AttributeError(f"module 'einsearch.report' has no attribute {name!r}")
