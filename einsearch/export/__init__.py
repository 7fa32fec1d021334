"""Export: an architecture as one standalone Python file that needs torch alone."""
from einsearch.export.exporter import export_source
from einsearch.export.safetensors_io import load_weights, read_safetensors
from einsearch.export.source import ExportError

__all__ = ["ExportError", "export_source", "load_weights", "read_safetensors"]
