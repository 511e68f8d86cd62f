"""Scoring rules, role grants, claims and objections; programme settings; unit paths.

Units gain a materialised path of codes (`/town/village/`) so that "inside
this subtree" is a prefix test; existing units are given theirs here.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('grants',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('programme_id', sa.Integer(), nullable=False),
    sa.Column('principal', sa.String(length=200), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('unit_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.String(length=32), nullable=False),
    sa.Column('revoked_at', sa.String(length=32), nullable=True),
    sa.ForeignKeyConstraint(['programme_id'], ['programmes.id'], ),
    sa.ForeignKeyConstraint(['unit_id'], ['units.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('grants', schema=None) as batch_op:
        batch_op.create_index('grants_by_principal', ['programme_id', 'principal'], unique=False)
    # One active grant of a role on a unit per principal: revoking it must remove the role.
    op.create_index('grants_active_once', 'grants', ['programme_id', 'principal', 'role', 'unit_id'],
                    unique=True, sqlite_where=sa.text("revoked_at IS NULL"),
                    postgresql_where=sa.text("revoked_at IS NULL"))

    op.create_table('rule_versions',
    sa.Column('programme_id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=64), nullable=False),
    sa.Column('version', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('definition_json', sa.Text(), nullable=False),
    sa.Column('entry_seq', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['programme_id', 'entry_seq'], ['entries.programme_id', 'entries.seq'], ),
    sa.ForeignKeyConstraint(['programme_id'], ['programmes.id'], ),
    sa.PrimaryKeyConstraint('programme_id', 'code', 'version')
    )
    op.create_table('claims',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('programme_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('rule_code', sa.String(length=64), nullable=False),
    sa.Column('quantity', sa.BigInteger(), nullable=True),
    sa.Column('points', sa.BigInteger(), nullable=False),
    sa.Column('occurred_at', sa.String(length=32), nullable=False),
    sa.Column('evidence', sa.String(length=256), nullable=True),
    sa.Column('memo', sa.Text(), nullable=False),
    sa.Column('proposer', sa.String(length=200), nullable=False),
    sa.Column('proposed_at', sa.String(length=32), nullable=False),
    sa.Column('idempotency_key', sa.String(length=200), nullable=True),
    sa.Column('decided_by', sa.String(length=200), nullable=True),
    sa.Column('decided_at', sa.String(length=32), nullable=True),
    sa.Column('notice_until', sa.String(length=32), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('entry_seq', sa.BigInteger(), nullable=True),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], ),
    sa.ForeignKeyConstraint(['programme_id'], ['programmes.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('programme_id', 'idempotency_key', name='claims_idempotency_key')
    )
    with op.batch_alter_table('claims', schema=None) as batch_op:
        batch_op.create_index('claims_by_status', ['programme_id', 'status'], unique=False)

    op.create_table('objections',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('claim_id', sa.Integer(), nullable=False),
    sa.Column('programme_id', sa.Integer(), nullable=False),
    sa.Column('raised_by', sa.String(length=200), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('raised_at', sa.String(length=32), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('resolved_by', sa.String(length=200), nullable=True),
    sa.Column('resolved_at', sa.String(length=32), nullable=True),
    sa.ForeignKeyConstraint(['claim_id'], ['claims.id'], ),
    sa.ForeignKeyConstraint(['programme_id'], ['programmes.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('programmes', schema=None) as batch_op:
        batch_op.add_column(sa.Column('notice_days', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('expiry_policy', sa.String(length=32), server_default='never', nullable=False))

    with op.batch_alter_table('units', schema=None) as batch_op:
        batch_op.add_column(sa.Column('path', sa.String(length=2000), server_default='', nullable=False))
    _fill_unit_paths()


def downgrade() -> None:
    with op.batch_alter_table('units', schema=None) as batch_op:
        batch_op.drop_column('path')

    with op.batch_alter_table('programmes', schema=None) as batch_op:
        batch_op.drop_column('expiry_policy')
        batch_op.drop_column('notice_days')

    op.drop_table('objections')
    with op.batch_alter_table('claims', schema=None) as batch_op:
        batch_op.drop_index('claims_by_status')

    op.drop_table('claims')
    op.drop_table('rule_versions')
    with op.batch_alter_table('grants', schema=None) as batch_op:
        batch_op.drop_index('grants_by_principal')

    op.drop_table('grants')

def _fill_unit_paths() -> None:
    bind = op.get_bind()
    units = bind.execute(sa.text("SELECT id, code, parent_id FROM units")).all()
    by_id = {unit.id: unit for unit in units}

    def path_of(unit) -> str:
        codes = []
        while unit is not None:
            codes.append(unit.code)
            unit = by_id.get(unit.parent_id)
        return "/" + "/".join(reversed(codes)) + "/"

    for unit in units:
        bind.execute(sa.text("UPDATE units SET path = :path WHERE id = :id"),
                     {"path": path_of(unit), "id": unit.id})
