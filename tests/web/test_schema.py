"""Migration 0006 creates exactly the tables web/models.py declares, and the database itself
refuses what the models forbid. Every test runs on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import insert, update

from ledger import errors
from ledger.models import Base
from ledger.programmes import get_programme
from ledger.storage import write_transaction
from tests.redemption.test_schema import touched_tables
from web import models as web_models
from web.models import StaffAccount

WEB_TABLES = {model.__tablename__ for model in vars(web_models).values()
              if isinstance(model, type) and hasattr(model, "__tablename__")}
NOW = "2026-12-01T00:00:00.000000Z"


def test_migration_0006_matches_the_models(engine):
    assert WEB_TABLES == {"staff_accounts", "staff_sessions"}
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)
    assert [difference for difference in differences
            if touched_tables(difference) & WEB_TABLES] == []


def _account(programme_id: int, username: str, **values) -> dict:
    return {"username": username, "programme_id": programme_id, "kind": "staff",
            "principal": "someone", "display_name": "某人", "password_hash": "$argon2id$x",
            "created_at": NOW} | values


def test_the_database_refuses_an_unknown_kind_a_negative_count_and_a_second_username(village):
    programme_id = get_programme(village.engine, village.code).id
    name = f"db-{village.code}"
    with write_transaction(village.engine) as db:
        db.execute(insert(StaffAccount).values(_account(programme_id, name)))
    with pytest.raises(errors.IntegrityViolation), write_transaction(village.engine) as db:
        db.execute(insert(StaffAccount).values(_account(programme_id, f"{name}-2",
                                                        kind="member")))
    with pytest.raises(errors.IntegrityViolation), write_transaction(village.engine) as db:
        db.execute(update(StaffAccount).where(StaffAccount.username == name)
                   .values(failed_sign_ins=-1))
    with pytest.raises(errors.IntegrityViolation), write_transaction(village.engine) as db:
        db.execute(insert(StaffAccount).values(_account(programme_id, name)))
