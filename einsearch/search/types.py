"""The candidate and result types the search exchanges with executors and the store."""
from __future__ import annotations

from typing import Any

from einsearch.evaluators.types import Candidate, Result

__all__ = ["Candidate", "Result", "succeeded"]


def succeeded(result: Any) -> bool:
    return result is not None and result.status == "ok" and result.metric is not None
