"""einsearch.export."""
