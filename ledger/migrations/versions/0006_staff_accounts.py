"""Pages for people: staff sign-ins (accounts with a password hash) and their sessions.

The tables of web/models.py, written out here so that migrating never
imports that package.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('staff_accounts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('programme_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('principal', sa.String(length=200), nullable=False),
    sa.Column('display_name', sa.String(length=200), nullable=False),
    sa.Column('password_hash', sa.String(length=200), nullable=False),
    sa.Column('failed_sign_ins', sa.Integer(), server_default='0', nullable=False),
    sa.Column('locked_until', sa.String(length=32), nullable=True),
    sa.Column('created_at', sa.String(length=32), nullable=False),
    sa.Column('disabled_at', sa.String(length=32), nullable=True),
    sa.CheckConstraint("kind IN ('staff', 'shop')", name='staff_accounts_kind_known'),
    sa.CheckConstraint('failed_sign_ins >= 0', name='staff_accounts_failures_not_negative'),
    sa.ForeignKeyConstraint(['programme_id'], ['programmes.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('username')
    )
    op.create_table('staff_sessions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('token_sha256', sa.LargeBinary(length=32), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('csrf_token', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.String(length=32), nullable=False),
    sa.Column('expires_at', sa.String(length=32), nullable=False),
    sa.Column('ended_at', sa.String(length=32), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['staff_accounts.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('token_sha256')
    )
    op.create_index('ix_staff_sessions_account_id', 'staff_sessions', ['account_id'],
                    unique=False)


def downgrade() -> None:
    op.drop_index('ix_staff_sessions_account_id', table_name='staff_sessions')
    op.drop_table('staff_sessions')
    op.drop_table('staff_accounts')
