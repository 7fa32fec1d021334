"""Alembic environment for einsearch's tables. Run through `einsearch.storage.migrate` (no alembic.ini).

The caller passes an open connection in `config.attributes["connection"]`; only our tables are
considered, so Optuna's tables in the same database are left alone (also by autogenerate).
"""
from __future__ import annotations

from alembic import context

from einsearch.storage.models import VERSION_TABLE, Base

OUR_TABLES = set(Base.metadata.tables)


def include_name(name, type_, parent_names) -> bool:
    return type_ != "table" or name in OUR_TABLES


def run_migrations() -> None:
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("einsearch migrations run through einsearch.storage.migrate, with a connection")
    context.configure(connection=connection, target_metadata=Base.metadata, version_table=VERSION_TABLE,
                      include_name=include_name, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
