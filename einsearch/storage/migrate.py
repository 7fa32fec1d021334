"""Schema migrations, run from the installed package: Alembic configured in code, no alembic.ini.

`upgrade(engine)` brings a database to the head revision (creating the tables on first use) under
a lock, so two processes opening a new database at once do not both create it. A database whose
revision this code does not know (made by a newer einsearch) is refused, never touched.

For developers, a new revision after changing `models.py`:
    python -c "from einsearch.storage.migrate import revision; revision('sqlite:///dev.db', 'what changed')"
"""
from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Connection, Engine, text

from einsearch.storage.engine import WRITE_OPTION, StoreError, is_sqlite, make_engine, parse_url, with_lock_retries
from einsearch.storage.models import VERSION_TABLE

log = logging.getLogger(__name__)
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
PG_LOCK_KEY = 0x65696E7365617263  # pg_advisory_xact_lock key: "einsearc"


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic Config pointing inside the package; `connection` is what migrations run on."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = connection
    return cfg


def script_directory() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    return script_directory().get_current_head()


def current_revision(connection: Connection) -> str | None:
    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    return context.get_current_revision()


def check_known(revision: str | None, where: str) -> None:
    """StoreError when `revision` is not one of ours: the database is from a newer einsearch."""
    if revision is None:
        return
    try:
        known = script_directory().get_revision(revision) is not None
    except CommandError:
        known = False
    if not known:
        raise StoreError(f"{where}: database schema revision {revision!r} is newer than this einsearch knows "
                         f"(latest {head_revision()!r}); upgrade einsearch to use it")


def upgrade(engine: Engine, where: str, target: str = "head") -> None:
    """Migrate the database behind `engine` to `target`, holding the database's write lock."""

    def work() -> None:
        with engine.execution_options(**{WRITE_OPTION: True}).begin() as conn:
            if not is_sqlite(engine.url) and engine.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_LOCK_KEY})
            revision = current_revision(conn)
            check_known(revision, where)
            wanted = script_directory().get_current_head() if target == "head" else target
            if revision == wanted:
                return
            log.info("%s: migrating schema %s -> %s", where, revision, wanted)
            command.upgrade(alembic_config(conn), target)

    with_lock_retries(work, f"{where}: schema upgrade")


def revision(url: str, message: str) -> None:
    """Autogenerate a new revision from the difference between `models.py` and the database at `url`
    (which must be at head)."""
    engine = make_engine(parse_url(url))
    with engine.begin() as conn:
        command.revision(alembic_config(conn), message=message, autogenerate=True)
