"""einspace's fundamental operations (`compose(...)` in the grammar)."""
