"""Migration 0005 creates exactly the tables audit/models.py declares, and the
database itself refuses to change a signed checkpoint or a stored node.

Every test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import delete, insert, select, update

from audit import models as audit_models
from audit.models import Checkpoint, CheckpointKey, MerkleNode
from ledger import errors
from ledger.models import Base
from ledger.programmes import get_programme
from ledger.storage import read_transaction, write_transaction
from tests.redemption.test_schema import touched_tables

AUDIT_TABLES = {model.__tablename__ for model in vars(audit_models).values()
                if isinstance(model, type) and hasattr(model, "__tablename__")}
NOW = "2026-11-30T00:00:00.000000Z"


def test_migration_0005_matches_the_models(engine):
    assert AUDIT_TABLES == {"checkpoint_keys", "checkpoints", "merkle_nodes"}
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)
    assert [difference for difference in differences
            if touched_tables(difference) & AUDIT_TABLES] == []


@pytest.fixture
def stored(village):
    """One key, one checkpoint and one node of the village's programme, inserted directly."""
    programme_id = get_programme(village.engine, village.code).id
    with write_transaction(village.engine) as db:
        key_id = db.execute(insert(CheckpointKey).values(
            programme_id=programme_id, name=f"test/{village.code}",
            vkey=f"test/{village.code}+00000000+AQ==", public_key=b"\1" * 32, secret_seed=None,
            status="signing", created_at=NOW).returning(CheckpointKey.id)).scalar_one()
        db.execute(insert(Checkpoint).values(
            programme_id=programme_id, size=0, root_hash=b"\2" * 32, note="note",
            key_id=key_id, signed_at=NOW))
        db.execute(insert(MerkleNode).values(
            programme_id=programme_id, level=8, index=0, hash=b"\3" * 32))
    return village.engine, programme_id


@pytest.mark.parametrize("table, column, value", [
    (Checkpoint, "root_hash", b"\4" * 32),
    (MerkleNode, "hash", b"\4" * 32),
])
def test_the_database_refuses_to_change_or_delete_a_stored_row(stored, table, column, value):
    engine, programme_id = stored
    with pytest.raises(errors.AppendOnlyViolation), write_transaction(engine) as db:
        db.execute(update(table).where(table.programme_id == programme_id)
                   .values({column: value}))
    with pytest.raises(errors.AppendOnlyViolation), write_transaction(engine) as db:
        db.execute(delete(table).where(table.programme_id == programme_id))
    with read_transaction(engine) as db:
        assert db.execute(select(getattr(table, column))
                          .where(table.programme_id == programme_id)).scalar_one() != value


def test_the_database_refuses_a_node_off_a_tile_level(stored):
    engine, programme_id = stored
    with pytest.raises(errors.IntegrityViolation), write_transaction(engine) as db:
        db.execute(insert(MerkleNode).values(
            programme_id=programme_id, level=3, index=0, hash=b"\3" * 32))


def test_the_database_refuses_two_signing_checkpoint_keys_for_one_programme(stored):
    engine, programme_id = stored
    with pytest.raises(errors.IntegrityViolation), write_transaction(engine) as db:
        db.execute(insert(CheckpointKey).values(
            programme_id=programme_id, name="second", vkey="second+00000000+AQ==",
            public_key=b"\5" * 32, secret_seed=None, status="signing", created_at=NOW))
