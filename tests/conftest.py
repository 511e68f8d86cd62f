"""Fixtures shared by every test: the two databases, engines, and programme factories.

Every database test runs twice, on SQLite and on PostgreSQL (the `db` param).
PostgreSQL comes from `JIFEN_TEST_POSTGRES_URL` (default: the machine's server
at postgresql://postgres@127.0.0.1:5432/postgres); the suite creates a
throwaway database on it per session and drops it at the end.

Where no PostgreSQL answers, its half is skipped, and the summary says so in
capitals, except under CI (`CI=true`), where that is a failure.

Tests share one database per backend and isolate themselves by programme:
each test gets programmes of its own (chains are independent by design).
Tests that go round the database's guards get a database of their own.
"""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy
from sqlalchemy.engine import Engine

from ledger import migrations
from ledger.organisation import create_household, create_member, create_unit
from ledger.programmes import create_programme
from ledger.storage import create_engine

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
SHARED_VECTORS = Path(__file__).resolve().parents[2] / "shared" / "vectors"
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}

_postgres_skip_reason: list[str] = []
_counter = itertools.count()


def _admin_postgres_url() -> str:
    return os.environ.get("JIFEN_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)


def _postgres_unavailable() -> str | None:
    """Why PostgreSQL cannot be used, or None if it answers."""
    try:
        engine = create_engine(_admin_postgres_url())
        with engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")
        engine.dispose()
        return None
    except Exception as error:  # any failure to connect means "not available"
        return f"{type(error).__name__}: {str(error).splitlines()[0]}"


class ThrowawayDatabases:
    """Creates migrated databases on demand and removes them at the end."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.postgres_databases: list[str] = []
        self.engines: list[Engine] = []

    def new_url(self, backend: str) -> str:
        name = f"jifen_test_{os.getpid()}_{next(_counter)}_{uuid.uuid4().hex[:6]}"
        if backend == "sqlite":
            return f"sqlite:///{self.tmp_path / (name + '.sqlite3')}"
        admin = sqlalchemy.make_url(_admin_postgres_url())
        with create_engine(str(admin)).execution_options(
            isolation_level="AUTOCOMMIT"
        ).connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
        self.postgres_databases.append(name)
        return admin.set(database=name).render_as_string(hide_password=False)

    def new_engine(self, backend: str) -> Engine:
        engine = create_engine(self.new_url(backend))
        migrations.upgrade(engine)
        self.engines.append(engine)
        return engine

    def close(self) -> None:
        for engine in self.engines:
            engine.dispose()
        if not self.postgres_databases:
            return
        admin = create_engine(_admin_postgres_url()).execution_options(
            isolation_level="AUTOCOMMIT"
        )
        with admin.connect() as connection:
            for name in self.postgres_databases:
                connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture(scope="session")
def databases(tmp_path_factory) -> Iterator[ThrowawayDatabases]:
    throwaway = ThrowawayDatabases(tmp_path_factory.mktemp("databases"))
    yield throwaway
    throwaway.close()


@pytest.fixture(scope="session")
def postgres_available() -> bool:
    reason = _postgres_unavailable()
    if reason is None:
        return True
    if IN_CI:
        pytest.fail(f"PostgreSQL is required under CI and did not answer: {reason}")
    if not _postgres_skip_reason:
        _postgres_skip_reason.append(reason)
    return False


def _require_backend(backend: str, postgres_available: bool) -> None:
    if backend == "postgresql" and not postgres_available:
        pytest.skip(f"PostgreSQL not available: {_postgres_skip_reason[0]}")


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def backend(request, postgres_available) -> str:
    """The database backend a test runs on; every database test runs on both."""
    _require_backend(request.param, postgres_available)
    return request.param


@pytest.fixture(scope="session")
def engine(backend, databases) -> Engine:
    """A migrated database shared by the session (per backend)."""
    return databases.new_engine(backend)


@pytest.fixture(scope="session")
def database_url(engine) -> str:
    """The URL of `engine`, for tests that start other processes."""
    return engine.url.render_as_string(hide_password=False)


@pytest.fixture
def fresh_engine(backend, databases) -> Iterator[Engine]:
    """A migrated database of this test's own, for tests that go round the guards.

    Disposed after the test: a pool left open per test would hold PostgreSQL
    connections until the session ends, and enough of them starve the tests
    that start fifty processes with a connection each (max_connections 100).
    """
    engine = databases.new_engine(backend)
    yield engine
    engine.dispose()


@dataclass
class Village:
    """A programme made for one test: a village, households and members."""

    engine: Engine
    code: str
    members: list[str]

    def account(self, index: int) -> str:
        return f"member:{self.members[index]}"


def make_village(engine: Engine, members: int = 4, code: str | None = None) -> Village:
    """Create a new programme with one village, two households and `members` members."""
    code = code or f"p{next(_counter)}-{uuid.uuid4().hex[:8]}"
    create_programme(engine, code, f"Test programme {code}")
    create_unit(engine, code, "village", "测试村", "village")
    create_household(engine, code, "h1", "一户", "village")
    create_household(engine, code, "h2", "二户", "village")
    member_codes = [f"m{index}" for index in range(members)]
    for index, member in enumerate(member_codes):
        create_member(engine, code, member, f"居民{index}", "h1" if index % 2 == 0 else "h2")
    return Village(engine, code, member_codes)


@pytest.fixture
def village(engine) -> Village:
    """A programme of this test's own on the shared database."""
    return make_village(engine)


def pytest_terminal_summary(terminalreporter) -> None:
    if _postgres_skip_reason:
        terminalreporter.write_sep("!", "POSTGRESQL HALF OF THE SUITE WAS SKIPPED", red=True)
        terminalreporter.write_line(
            f"PostgreSQL did not answer at {_admin_postgres_url()}: {_postgres_skip_reason[0]}"
        )
        terminalreporter.write_line(
            "Only SQLite was tested. Start PostgreSQL or set JIFEN_TEST_POSTGRES_URL; "
            "under CI=true this is a failure."
        )
