"""einsearch.storage: every search, architecture, evaluation and lineage edge in one database.

`Store(url)` is the only thing that talks SQL; it returns the frozen records of `records.py`.
"""
from einsearch.storage.engine import StoreError
from einsearch.storage.records import (ArchRecord, EvaluationRecord, FidelityRecord, LeaderboardRow, LineageRecord,
                                       SearchRecord, SearchSummary)
from einsearch.storage.store import Store, code_version

__all__ = ["ArchRecord", "EvaluationRecord", "FidelityRecord", "LeaderboardRow", "LineageRecord", "SearchRecord",
           "SearchSummary", "Store", "StoreError", "code_version"]
