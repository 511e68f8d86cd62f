"""Engines, transactions and the one place database errors become domain errors.

SQLite (the embedded default) runs in WAL mode with foreign keys on, a busy
timeout, and `synchronous=FULL` so that a commit survives power loss; write
transactions start with `BEGIN IMMEDIATE`, which takes SQLite's single write
lock up front instead of failing half-way on an upgrade from a read lock.
PostgreSQL runs through psycopg 3 at READ COMMITTED; a write serialises on
its chain by `SELECT … FOR UPDATE` of the head row (see `ledger.chain`).
"""

from __future__ import annotations

import operator
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from ledger import errors

DATABASE_URL_VARIABLE = "JIFEN_DATABASE_URL"
DEFAULT_SQLITE_PATH = Path("var") / "jifen.sqlite3"
SQLITE_BUSY_TIMEOUT_MS = 30_000
SQLITE_SYNCHRONOUS = os.environ.get("JIFEN_SQLITE_SYNCHRONOUS", "FULL").upper()


def database_url() -> str:
    """The configured database URL: `JIFEN_DATABASE_URL`, else ./var/jifen.sqlite3."""
    configured = os.environ.get(DATABASE_URL_VARIABLE)
    if configured:
        return configured
    return f"sqlite:///{DEFAULT_SQLITE_PATH.resolve()}"


def create_engine(url: str | None = None) -> Engine:
    """An engine for `url` (default `database_url()`), with the pragmas set.

    A SQLite file's folder is created if missing. Nothing connects until used.
    """
    url = url or database_url()
    parsed = sqlalchemy.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _create_sqlite_engine(parsed)
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return sqlalchemy.create_engine(parsed, pool_pre_ping=True)


def _create_sqlite_engine(url: sqlalchemy.URL) -> Engine:
    if url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    if SQLITE_SYNCHRONOUS not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
        raise ValueError(f"JIFEN_SQLITE_SYNCHRONOUS must be OFF, NORMAL, FULL or EXTRA, "
                         f"not {SQLITE_SYNCHRONOUS!r}")
    engine = sqlalchemy.create_engine(
        url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
    )

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection, _record) -> None:
        # Let SQLAlchemy's "begin" event below issue BEGIN itself, so that a
        # write can ask for BEGIN IMMEDIATE (pysqlite would emit a plain BEGIN).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={SQLITE_SYNCHRONOUS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")

    return engine


def is_sqlite(engine_or_connection: Engine | Connection) -> bool:
    return engine_or_connection.dialect.name == "sqlite"


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that commits on success and rolls back on any error.

    On SQLite it begins IMMEDIATE, taking the database's write lock at once.
    Database errors raised inside are translated to `ledger.errors`.
    """
    with translate_errors(), engine.connect() as connection:
        if is_sqlite(connection):
            connection.execution_options(sqlite_begin="IMMEDIATE")
        with connection.begin():
            yield connection


@contextmanager
def read_transaction(engine: Engine) -> Iterator[Connection]:
    """A read-only transaction: one consistent snapshot, no chain lock taken."""
    with translate_errors(), engine.connect() as connection, connection.begin():
        yield connection


@contextmanager
def translate_errors() -> Iterator[None]:
    """Turn driver exceptions into domain errors; the only place that does."""
    try:
        yield
    except IntegrityError as error:
        raise _integrity_error(error) from error
    except OperationalError as error:
        text = str(error.orig)
        if "database is locked" in text or "database table is locked" in text:
            raise errors.StorageBusy(
                "the database stayed locked past the busy timeout; retry the request"
            ) from error
        if "append_only" in text:
            raise errors.AppendOnlyViolation(_trigger_message(text)) from error
        raise
    except DBAPIError as error:
        text = str(error.orig)
        if "append_only" in text:
            raise errors.AppendOnlyViolation(_trigger_message(text)) from error
        if "NUL" in text and "0x00" in text:  # PostgreSQL cannot store U+0000 in text
            raise errors.InvalidEntry(
                "text must not contain the NUL character (U+0000)", field="text"
            ) from error
        raise


def insert_rows(connection: Connection, table: sqlalchemy.Table,
                rows: list[dict[str, Any]]) -> None:
    """INSERT many rows through the driver's executemany, skipping SQLAlchemy's per-row work.

    The statement is compiled once per dialect and table; each row must have
    exactly the table's columns as keys. Errors still surface as SQLAlchemy
    exceptions, so `translate_errors` handles them as for any statement.
    """
    if not rows:
        return
    key = (connection.dialect.name, table.name)
    compiled = _COMPILED_INSERTS.get(key)
    if compiled is None:
        columns = [column.name for column in table.columns]
        statement = sqlalchemy.insert(table).compile(dialect=connection.dialect,
                                                     column_keys=columns)
        order = statement.positiontup
        compiled = (statement.string, operator.itemgetter(*order) if order else None)
        _COMPILED_INSERTS[key] = compiled
    sql, as_tuple = compiled
    connection.exec_driver_sql(sql, [as_tuple(row) for row in rows] if as_tuple else rows)


_COMPILED_INSERTS: dict[tuple[str, str], tuple[str, Any]] = {}


def _integrity_error(error: IntegrityError) -> errors.LedgerError:
    text = str(error.orig)
    if "append_only" in text:
        return errors.AppendOnlyViolation(_trigger_message(text))
    if "unbalanced_postings" in text:
        return errors.UnbalancedPostings(_trigger_message(text))
    return errors.IntegrityViolation(f"the database refused the write: {text.splitlines()[0]}")


def _trigger_message(text: str) -> str:
    """The first line of a trigger's message, without driver decoration."""
    return text.splitlines()[0].strip()
