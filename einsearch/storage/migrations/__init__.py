"""Alembic migrations of einsearch's schema (run by `einsearch.storage.migrate`)."""
