"""Audit: checkpoint signing keys, signed checkpoints and stored Merkle nodes.

The tables of audit/models.py, written out here so that migrating never
imports that package.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('checkpoint_keys',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('programme_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('vkey', sa.String(length=300), nullable=False),
    sa.Column('public_key', sa.LargeBinary(length=32), nullable=False),
    sa.Column('secret_seed', sa.LargeBinary(length=32), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.String(length=32), nullable=False),
    sa.Column('retired_at', sa.String(length=32), nullable=True),
    sa.CheckConstraint("status IN ('signing', 'retired')", name='checkpoint_keys_status_known'),
    sa.ForeignKeyConstraint(['programme_id'], ['programmes.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('vkey')
    )
    op.create_index('checkpoint_keys_one_signing', 'checkpoint_keys', ['programme_id'],
                    unique=True,
                    sqlite_where=sa.text("status = 'signing'"),
                    postgresql_where=sa.text("status = 'signing'"))
    op.create_table('checkpoints',
    sa.Column('programme_id', sa.Integer(), nullable=False),
    sa.Column('size', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('root_hash', sa.LargeBinary(length=32), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('key_id', sa.Integer(), nullable=False),
    sa.Column('signed_at', sa.String(length=32), nullable=False),
    sa.CheckConstraint('size >= 0', name='checkpoints_size_not_negative'),
    sa.ForeignKeyConstraint(['key_id'], ['checkpoint_keys.id'], ),
    sa.ForeignKeyConstraint(['programme_id'], ['programmes.id'], ),
    sa.PrimaryKeyConstraint('programme_id', 'size')
    )
    op.create_table('merkle_nodes',
    sa.Column('programme_id', sa.Integer(), nullable=False),
    sa.Column('level', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('index', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('hash', sa.LargeBinary(length=32), nullable=False),
    sa.CheckConstraint('level > 0 AND level % 8 = 0', name='merkle_nodes_tile_level'),
    sa.ForeignKeyConstraint(['programme_id'], ['programmes.id'], ),
    sa.PrimaryKeyConstraint('programme_id', 'level', 'index')
    )
    for table in ('checkpoints', 'merkle_nodes'):
        _refuse_changes(table)


def _refuse_changes(table: str) -> None:
    """Signed checkpoints and stored nodes are written once; as with entries (0001), the
    database refuses UPDATE and DELETE with an `append_only:` message."""
    if op.get_bind().dialect.name == 'sqlite':
        for action, verb in (('UPDATE', 'updated'), ('DELETE', 'deleted')):
            op.execute(f"CREATE TRIGGER {table}_append_only_{action.lower()} BEFORE {action} "
                       f"ON {table} BEGIN SELECT RAISE(ABORT, "
                       f"'append_only: {table} cannot be {verb}'); END")
    else:
        # A function of its own, not 0001's jifen_refuse_change(): tools that drop the
        # entries' guards (a tamper test, 0001's downgrade) must not need to know of these.
        op.execute(f"""CREATE FUNCTION {table}_refuse_change() RETURNS trigger
                       LANGUAGE plpgsql AS $$ BEGIN
                         RAISE EXCEPTION 'append_only: {table} cannot be %',
                           CASE TG_OP WHEN 'UPDATE' THEN 'updated' ELSE 'deleted' END
                           USING ERRCODE = 'restrict_violation';
                       END $$""")
        op.execute(f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                   f"FOR EACH ROW EXECUTE FUNCTION {table}_refuse_change()")


def downgrade() -> None:
    op.drop_table('merkle_nodes')
    op.drop_table('checkpoints')
    if op.get_bind().dialect.name != 'sqlite':
        for table in ('checkpoints', 'merkle_nodes'):
            op.execute(f"DROP FUNCTION IF EXISTS {table}_refuse_change()")
    op.drop_index('checkpoint_keys_one_signing', table_name='checkpoint_keys')
    op.drop_table('checkpoint_keys')
