"""einsearch.search."""
