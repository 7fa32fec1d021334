"""Training and executors: turn candidates into results."""
from einsearch.evaluators.types import Candidate, Result

__all__ = ["Candidate", "Result"]
