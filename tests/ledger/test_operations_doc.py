"""docs/OPERATIONS.md's least-privilege PostgreSQL role, applied exactly as documented."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
import sqlalchemy
from sqlalchemy import text

from ledger import errors
from ledger.accounts import ISSUANCE
from ledger.chain import Posting, append
from ledger.storage import create_engine, write_transaction
from ledger.verify import verify_chain
from tests.conftest import make_village

OPERATIONS_DOC = Path(__file__).resolve().parents[2] / "docs" / "OPERATIONS.md"


def documented_grants(role: str) -> str:
    doc = OPERATIONS_DOC.read_text(encoding="utf-8")
    match = re.search(r"<!-- app-role-grants -->\n```sql\n(.*?)\n```", doc, re.DOTALL)
    assert match, "OPERATIONS.md lost its grants block"
    return match.group(1).replace("jifen_app", role)


@pytest.fixture
def app_role_engine(postgres_available, databases):
    if not postgres_available:
        pytest.skip("PostgreSQL not available")
    owner_engine = databases.new_engine("postgresql")
    role = f"jifen_app_{uuid.uuid4().hex[:8]}"
    with owner_engine.begin() as connection:
        connection.exec_driver_sql(f"CREATE ROLE {role} LOGIN")
        for statement in documented_grants(role).split(";"):
            if statement.strip():
                connection.exec_driver_sql(statement)
    app_url = sqlalchemy.make_url(owner_engine.url).set(username=role, password=None)
    app_engine = create_engine(app_url.render_as_string(hide_password=False))
    yield owner_engine, app_engine
    app_engine.dispose()
    with owner_engine.begin() as connection:
        connection.exec_driver_sql(f"REASSIGN OWNED BY {role} TO CURRENT_USER")
        connection.exec_driver_sql(f"DROP OWNED BY {role}")
    owner_engine.dispose()
    admin = create_engine(str(owner_engine.url.set(database="postgres")))
    with admin.connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT")
        connection.exec_driver_sql(f"DROP ROLE IF EXISTS {role}")
    admin.dispose()


def test_the_service_works_under_the_documented_role_and_cannot_rewrite(app_role_engine):
    _, app_engine = app_role_engine
    village = make_village(app_engine)
    appended = append(app_engine, village.code, kind="award", actor="organiser:test",
                      postings=[Posting(village.account(0), 3), Posting(ISSUANCE, -3)])
    assert appended.created
    assert verify_chain(app_engine, village.code).ok

    for statement in ("UPDATE entries SET memo = 'rewritten'",
                      "DELETE FROM postings",
                      "TRUNCATE entries CASCADE",
                      "DROP TRIGGER entries_append_only ON entries"):
        refused = "permission denied|must be owner"
        with pytest.raises(sqlalchemy.exc.ProgrammingError, match=refused):
            with app_engine.begin() as connection:
                connection.execute(text(statement))
    with pytest.raises(errors.AppendOnlyViolation):  # the owner is stopped by the triggers
        owner_engine = app_role_engine[0]
        with write_transaction(owner_engine) as connection:
            connection.execute(text("UPDATE entries SET memo = 'rewritten'"))
    assert verify_chain(app_engine, village.code).ok
