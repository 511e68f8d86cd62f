"""Ledger core: programmes, organisation, accounts, the chain, and its guards.

The triggers are the database's half of two invariants that Python also
checks (so that nothing, not even a hand-written SQL session, gets round
them):

- entries and postings are append-only: UPDATE and DELETE are refused;
- double entry: postings are inserted before their entry (the foreign key is
  deferred), and an entry is refused unless its postings sum to zero; a
  posting can never be added to an entry already recorded.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None

SQLITE_GUARDS = [
    """CREATE TRIGGER entries_append_only_update BEFORE UPDATE ON entries
       BEGIN SELECT RAISE(ABORT, 'append_only: entries cannot be updated'); END""",
    """CREATE TRIGGER entries_append_only_delete BEFORE DELETE ON entries
       BEGIN SELECT RAISE(ABORT, 'append_only: entries cannot be deleted'); END""",
    """CREATE TRIGGER postings_append_only_update BEFORE UPDATE ON postings
       BEGIN SELECT RAISE(ABORT, 'append_only: postings cannot be updated'); END""",
    """CREATE TRIGGER postings_append_only_delete BEFORE DELETE ON postings
       BEGIN SELECT RAISE(ABORT, 'append_only: postings cannot be deleted'); END""",
    """CREATE TRIGGER postings_before_entry BEFORE INSERT ON postings
       WHEN EXISTS (SELECT 1 FROM entries
                    WHERE programme_id = NEW.programme_id AND seq = NEW.entry_seq)
       BEGIN SELECT RAISE(ABORT, 'append_only: postings cannot be added to a recorded entry');
       END""",
    """CREATE TRIGGER entries_balanced BEFORE INSERT ON entries
       WHEN (SELECT COALESCE(SUM(amount_points), 0) FROM postings
             WHERE programme_id = NEW.programme_id AND entry_seq = NEW.seq) <> 0
       BEGIN SELECT RAISE(ABORT, 'unbalanced_postings: the postings of an entry must sum to zero');
       END""",
]
SQLITE_DROP_GUARDS = [
    f"DROP TRIGGER IF EXISTS {name}"
    for name in (
        "entries_append_only_update", "entries_append_only_delete",
        "postings_append_only_update", "postings_append_only_delete",
        "postings_before_entry", "entries_balanced",
    )
]

POSTGRESQL_GUARDS = [
    """CREATE FUNCTION jifen_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
         RAISE EXCEPTION 'append_only: % cannot be %', TG_TABLE_NAME,
           CASE TG_OP WHEN 'UPDATE' THEN 'updated' ELSE 'deleted' END
           USING ERRCODE = 'restrict_violation';
       END $$""",
    """CREATE TRIGGER entries_append_only BEFORE UPDATE OR DELETE ON entries
       FOR EACH ROW EXECUTE FUNCTION jifen_refuse_change()""",
    """CREATE TRIGGER postings_append_only BEFORE UPDATE OR DELETE ON postings
       FOR EACH ROW EXECUTE FUNCTION jifen_refuse_change()""",
    """CREATE TRIGGER entries_append_only_truncate BEFORE TRUNCATE ON entries
       FOR EACH STATEMENT EXECUTE FUNCTION jifen_refuse_change()""",
    """CREATE TRIGGER postings_append_only_truncate BEFORE TRUNCATE ON postings
       FOR EACH STATEMENT EXECUTE FUNCTION jifen_refuse_change()""",
    """CREATE FUNCTION jifen_postings_before_entry() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
         IF EXISTS (SELECT 1 FROM entries
                    WHERE programme_id = NEW.programme_id AND seq = NEW.entry_seq) THEN
           RAISE EXCEPTION 'append_only: postings cannot be added to a recorded entry'
             USING ERRCODE = 'restrict_violation';
         END IF;
         RETURN NEW;
       END $$""",
    """CREATE TRIGGER postings_before_entry BEFORE INSERT ON postings
       FOR EACH ROW EXECUTE FUNCTION jifen_postings_before_entry()""",
    """CREATE FUNCTION jifen_entry_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
         IF (SELECT COALESCE(SUM(amount_points), 0) FROM postings
             WHERE programme_id = NEW.programme_id AND entry_seq = NEW.seq) <> 0 THEN
           RAISE EXCEPTION 'unbalanced_postings: the postings of an entry must sum to zero'
             USING ERRCODE = 'check_violation';
         END IF;
         RETURN NEW;
       END $$""",
    """CREATE TRIGGER entries_balanced BEFORE INSERT ON entries
       FOR EACH ROW EXECUTE FUNCTION jifen_entry_balanced()""",
]
POSTGRESQL_DROP_GUARDS = [
    "DROP TRIGGER IF EXISTS entries_append_only ON entries",
    "DROP TRIGGER IF EXISTS postings_append_only ON postings",
    "DROP TRIGGER IF EXISTS entries_append_only_truncate ON entries",
    "DROP TRIGGER IF EXISTS postings_append_only_truncate ON postings",
    "DROP TRIGGER IF EXISTS postings_before_entry ON postings",
    "DROP TRIGGER IF EXISTS entries_balanced ON entries",
    "DROP FUNCTION IF EXISTS jifen_refuse_change()",
    "DROP FUNCTION IF EXISTS jifen_postings_before_entry()",
    "DROP FUNCTION IF EXISTS jifen_entry_balanced()",
]

GUARDS = {"sqlite": SQLITE_GUARDS, "postgresql": POSTGRESQL_GUARDS}
DROP_GUARDS = {"sqlite": SQLITE_DROP_GUARDS, "postgresql": POSTGRESQL_DROP_GUARDS}


def upgrade() -> None:
    op.create_table('programmes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('time_zone', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.String(length=32), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('code')
    )
    op.create_table('chain_heads',
    sa.Column('programme_id', sa.Integer(), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('head_hash', sa.LargeBinary(length=32), nullable=True),
    sa.Column('frontier', sa.LargeBinary(), nullable=False),
    sa.Column('updated_at', sa.String(length=32), nullable=False),
    sa.CheckConstraint('size >= 0', name='chain_size_not_negative'),
    sa.ForeignKeyConstraint(['programme_id'], ['programmes.id'], ),
    sa.PrimaryKeyConstraint('programme_id')
    )
    op.create_table('entries',
    sa.Column('programme_id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('actor', sa.String(length=200), nullable=False),
    sa.Column('occurred_at', sa.String(length=32), nullable=False),
    sa.Column('recorded_at', sa.String(length=32), nullable=False),
    sa.Column('evidence', sa.String(length=256), nullable=True),
    sa.Column('memo', sa.Text(), nullable=False),
    sa.Column('metadata_json', sa.Text(), nullable=False),
    sa.Column('idempotency_key', sa.String(length=200), nullable=True),
    sa.Column('content_digest', sa.LargeBinary(length=32), nullable=False),
    sa.Column('reverses_seq', sa.BigInteger(), nullable=True),
    sa.Column('rule_code', sa.String(length=64), nullable=True),
    sa.Column('rule_version', sa.Integer(), nullable=True),
    sa.Column('rule_quantity', sa.BigInteger(), nullable=True),
    sa.Column('approver', sa.String(length=200), nullable=True),
    sa.Column('prev_hash', sa.LargeBinary(length=32), nullable=True),
    sa.Column('hash', sa.LargeBinary(length=32), nullable=False),
    sa.CheckConstraint('seq >= 0', name='entries_seq_not_negative'),
    sa.ForeignKeyConstraint(['programme_id'], ['programmes.id'], ),
    sa.PrimaryKeyConstraint('programme_id', 'seq'),
    )
    # Partial unique indexes: most entries have neither a key nor a reversal, and a full
    # index on (programme_id, NULL) misleads PostgreSQL's planner for (programme_id, seq).
    for name, column in (("entries_idempotency_key", "idempotency_key"),
                         ("entries_reversed_once", "reverses_seq")):
        op.create_index(name, 'entries', ['programme_id', column], unique=True,
                        sqlite_where=sa.text(f"{column} IS NOT NULL"),
                        postgresql_where=sa.text(f"{column} IS NOT NULL"))
    op.create_table('units',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('programme_id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('parent_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['parent_id'], ['units.id'], ),
    sa.ForeignKeyConstraint(['programme_id'], ['programmes.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('programme_id', 'code')
    )
    op.create_table('households',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('programme_id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('unit_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['programme_id'], ['programmes.id'], ),
    sa.ForeignKeyConstraint(['unit_id'], ['units.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('programme_id', 'code')
    )
    op.create_table('members',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('programme_id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('household_id', sa.Integer(), nullable=False),
    sa.Column('unit_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['household_id'], ['households.id'], ),
    sa.ForeignKeyConstraint(['programme_id'], ['programmes.id'], ),
    sa.ForeignKeyConstraint(['unit_id'], ['units.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('programme_id', 'code')
    )
    op.create_table('accounts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('programme_id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=80), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], ),
    sa.ForeignKeyConstraint(['programme_id'], ['programmes.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('programme_id', 'code')
    )
    op.create_table('balances',
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('programme_id', sa.Integer(), nullable=False),
    sa.Column('balance_points', sa.BigInteger(), nullable=False),
    sa.Column('score_points', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], ),
    sa.ForeignKeyConstraint(['programme_id'], ['programmes.id'], ),
    sa.PrimaryKeyConstraint('account_id')
    )
    op.create_table('postings',
    sa.Column('programme_id', sa.Integer(), nullable=False),
    sa.Column('entry_seq', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('position', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('amount_points', sa.BigInteger(), nullable=False),
    sa.CheckConstraint('amount_points <> 0', name='postings_amount_not_zero'),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], ),
    sa.ForeignKeyConstraint(['programme_id', 'entry_seq'], ['entries.programme_id', 'entries.seq'], initially='DEFERRED', deferrable=True),
    sa.PrimaryKeyConstraint('programme_id', 'entry_seq', 'position')
    )
    with op.batch_alter_table('postings', schema=None) as batch_op:
        batch_op.create_index('postings_by_account', ['account_id', 'entry_seq'], unique=False)
    for statement in GUARDS[op.get_bind().dialect.name]:
        op.execute(statement)


def downgrade() -> None:
    for statement in DROP_GUARDS[op.get_bind().dialect.name]:
        op.execute(statement)
    with op.batch_alter_table('postings', schema=None) as batch_op:
        batch_op.drop_index('postings_by_account')

    op.drop_table('postings')
    op.drop_table('balances')
    op.drop_table('accounts')
    op.drop_table('members')
    op.drop_table('households')
    op.drop_table('units')
    op.drop_table('entries')
    op.drop_table('chain_heads')
    op.drop_table('programmes')
