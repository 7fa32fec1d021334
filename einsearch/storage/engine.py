"""Database connections: URL checking, SQLite set-up (WAL, busy timeout, write locks) and retries.

SQLite allows one writer at a time. Write transactions start with `BEGIN IMMEDIATE`, so a writer
waits for the lock up front (busy timeout) instead of failing half way through when a read turns
into a write; on top of that, a whole unit of work is retried when SQLite still reports the
database as locked.
"""
from __future__ import annotations

import logging
import random
import time
from pathlib import Path
from typing import Callable, TypeVar

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError
from sqlalchemy.pool import StaticPool

from einsearch.errors import EinsearchError

log = logging.getLogger(__name__)
T = TypeVar("T")

BUSY_TIMEOUT_MS = 30_000
LOCK_RETRIES = 8
WRITE_OPTION = "einsearch_write"  # execution option: this connection's transactions will write


# The driver each database URL kind needs, as the install command to give when it is missing.
DRIVER_PACKAGES = {"postgresql+psycopg": "it with: pip install 'einsearch[postgres]' (psycopg 3)"}


class StoreError(EinsearchError, ValueError):
    """Bad database input or state (URL, schema, id, artifact); the message is one line."""


def parse_url(text: str) -> URL:
    """A SQLAlchemy URL, or StoreError naming what is wrong with `text`."""
    example = "e.g. sqlite:///einsearch.db or postgresql+psycopg://user@host/dbname"
    if not isinstance(text, str) or "://" not in text:
        raise StoreError(f"malformed database URL {text!r}: expected {example}")
    try:
        url = make_url(text)
    except ArgumentError:
        raise StoreError(f"malformed database URL {text!r}: expected {example}") from None
    if url.drivername == "postgresql":  # psycopg 3, the `postgres` extra (SQLAlchemy 2.0 would pick psycopg2)
        url = url.set(drivername="postgresql+psycopg")
    try:
        dialect = url.get_dialect()
        dialect.import_dbapi()  # the driver package, so a missing one is named here and not mid-connect
    except NoSuchModuleError:
        raise StoreError(f"database URL {text!r}: unknown database kind {url.drivername!r} ({example})") from None
    except ImportError as err:
        package = DRIVER_PACKAGES.get(url.drivername, f"the Python package {err.name or 'of its driver'}")
        raise StoreError(f"database URL {text!r}: the {url.drivername} driver is not installed; "
                         f"install {package}") from None
    return url


def is_sqlite(url: URL) -> bool:
    return url.get_backend_name() == "sqlite"


def sqlite_path(url: URL) -> Path | None:
    """The database file of a SQLite URL; None for an in-memory database or another backend."""
    if not is_sqlite(url) or url.database in (None, "", ":memory:") or url.database.startswith("file:"):
        return None
    return Path(url.database)


def make_engine(url: URL) -> Engine:
    if not is_sqlite(url):
        return create_engine(url, pool_pre_ping=True)
    if sqlite_path(url) is None:  # in-memory: one shared connection, or every session sees a new database
        engine = create_engine(url, poolclass=StaticPool, connect_args={"check_same_thread": False})
    else:
        engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:
        dbapi_conn.isolation_level = None  # the driver's own BEGIN is replaced by ours (below)
        cursor = dbapi_conn.cursor()
        if sqlite_path(url) is not None:
            cursor.execute("PRAGMA journal_mode=WAL")  # readers never block the writer, nor it them
            cursor.execute("PRAGMA synchronous=NORMAL")  # durable at each checkpoint; safe with WAL
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn) -> None:
        write = conn.get_execution_options().get(WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def is_locked(err: OperationalError) -> bool:
    text = str(err.orig).lower()
    return "database is locked" in text or "database table is locked" in text or "busy" in text


def with_lock_retries(work: Callable[[], T], what: str) -> T:
    """Run `work`, retrying (with jittered backoff) while SQLite reports the database as locked."""
    for attempt in range(LOCK_RETRIES):
        try:
            return work()
        except OperationalError as err:
            if not is_locked(err) or attempt == LOCK_RETRIES - 1:
                raise
            delay = min(2.0, 0.05 * 2 ** attempt) * (0.5 + random.random())
            log.warning("%s: database is locked, retrying in %.2f s", what, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")
