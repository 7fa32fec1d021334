"""einsearch.storage."""
