"""einsearch: neural architecture search over a grammar of sequence models."""
from einsearch.grammar import Arch, ArchError, build, check, parse, sample

__version__ = "0.1.0"
__all__ = ["Arch", "ArchError", "build", "check", "parse", "sample", "__version__"]
