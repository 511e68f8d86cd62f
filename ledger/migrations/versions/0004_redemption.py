"""Redemption: settings, shops, catalog items, signing keys, vouchers, redemptions, settlements.

The tables of the `redemption` package (declared in redemption/models.py);
written out here so that migrating never imports that package.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('redemption_settings',
    sa.Column('programme_id', sa.Integer(), nullable=False),
    sa.Column('fen_per_point', sa.Integer(), nullable=False),
    sa.Column('voucher_validity_days', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.String(length=32), nullable=False),
    sa.CheckConstraint('fen_per_point > 0', name='settings_rate_positive'),
    sa.CheckConstraint('voucher_validity_days > 0', name='settings_validity_positive'),
    sa.ForeignKeyConstraint(['programme_id'], ['programmes.id'], ),
    sa.PrimaryKeyConstraint('programme_id')
    )
    op.create_table('shops',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('programme_id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('units_json', sa.Text(), nullable=False),
    sa.Column('contact', sa.String(length=200), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.String(length=32), nullable=False),
    sa.CheckConstraint("status IN ('active', 'suspended')", name='shops_status_known'),
    sa.ForeignKeyConstraint(['programme_id'], ['programmes.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('programme_id', 'code', name='shops_code_per_programme')
    )
    op.create_table('catalog_items',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('programme_id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('price_points', sa.BigInteger(), nullable=False),
    sa.Column('value_fen', sa.BigInteger(), nullable=True),
    sa.Column('stock', sa.BigInteger(), nullable=True),
    sa.CheckConstraint('price_points > 0', name='catalog_items_price_positive'),
    sa.CheckConstraint('stock IS NULL OR stock >= 0', name='catalog_items_stock_not_negative'),
    sa.CheckConstraint("(kind = 'goods' AND stock IS NOT NULL AND value_fen IS NULL) OR (kind = 'cash_off' AND stock IS NULL AND value_fen > 0)", name='catalog_items_kind_fields'),
    sa.ForeignKeyConstraint(['programme_id'], ['programmes.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('programme_id', 'code', name='catalog_items_code_per_programme')
    )
    op.create_table('signing_keys',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('programme_id', sa.Integer(), nullable=False),
    sa.Column('key_id', sa.String(length=64), nullable=False),
    sa.Column('public_key', sa.LargeBinary(length=32), nullable=False),
    sa.Column('secret_seed', sa.LargeBinary(length=32), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.String(length=32), nullable=False),
    sa.Column('retired_at', sa.String(length=32), nullable=True),
    sa.Column('withdrawn_at', sa.String(length=32), nullable=True),
    sa.CheckConstraint("status IN ('signing', 'retired', 'withdrawn')", name='signing_keys_status_known'),
    sa.ForeignKeyConstraint(['programme_id'], ['programmes.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key_id')
    )
    op.create_index('signing_keys_one_signing', 'signing_keys', ['programme_id'], unique=True,
                    sqlite_where=sa.text("status = 'signing'"),
                    postgresql_where=sa.text("status = 'signing'"))
    op.create_table('vouchers',
    sa.Column('id', sa.String(length=26), nullable=False),
    sa.Column('programme_id', sa.Integer(), nullable=False),
    sa.Column('member_code', sa.String(length=64), nullable=False),
    sa.Column('value_points', sa.BigInteger(), nullable=False),
    sa.Column('item_id', sa.Integer(), nullable=True),
    sa.Column('shops_json', sa.Text(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('short_code', sa.String(length=11), nullable=False),
    sa.Column('key_id', sa.String(length=64), nullable=False),
    sa.Column('issued_at', sa.String(length=32), nullable=False),
    sa.Column('expires_at', sa.String(length=32), nullable=False),
    sa.Column('issue_seq', sa.BigInteger(), nullable=False),
    sa.Column('issue_key', sa.String(length=200), nullable=True),
    sa.Column('lots_json', sa.Text(), nullable=False),
    sa.Column('closed_seq', sa.BigInteger(), nullable=True),
    sa.Column('closed_at', sa.String(length=32), nullable=True),
    sa.CheckConstraint('value_points > 0', name='vouchers_value_positive'),
    sa.CheckConstraint("status IN ('issued', 'redeemed', 'cancelled', 'expired')", name='vouchers_status_known'),
    sa.ForeignKeyConstraint(['item_id'], ['catalog_items.id'], ),
    sa.ForeignKeyConstraint(['programme_id'], ['programmes.id'], ),
    sa.ForeignKeyConstraint(['programme_id', 'member_code'], ['members.programme_id', 'members.code'], ),
    sa.ForeignKeyConstraint(['programme_id', 'issue_seq'], ['entries.programme_id', 'entries.seq'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('programme_id', 'issue_key', name='vouchers_issue_key_per_programme'),
    sa.UniqueConstraint('programme_id', 'issue_seq', name='vouchers_one_per_issue_entry'),
    sa.UniqueConstraint('programme_id', 'short_code', name='vouchers_short_code_per_programme')
    )
    op.create_index('vouchers_due', 'vouchers', ['programme_id', 'status', 'expires_at'], unique=False)
    op.create_table('settlements',
    sa.Column('programme_id', sa.Integer(), nullable=False),
    sa.Column('entry_seq', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('shop_id', sa.Integer(), nullable=False),
    sa.Column('period_start', sa.String(length=10), nullable=False),
    sa.Column('period_end', sa.String(length=10), nullable=False),
    sa.Column('redemption_count', sa.Integer(), nullable=False),
    sa.Column('total_points', sa.BigInteger(), nullable=False),
    sa.Column('fen_per_point', sa.Integer(), nullable=False),
    sa.Column('total_fen', sa.BigInteger(), nullable=False),
    sa.Column('payment_reference', sa.String(length=200), nullable=False),
    sa.Column('actor', sa.String(length=200), nullable=False),
    sa.Column('idempotency_key', sa.String(length=200), nullable=False),
    sa.Column('settled_at', sa.String(length=32), nullable=False),
    sa.CheckConstraint('total_points > 0', name='settlements_total_positive'),
    sa.ForeignKeyConstraint(['programme_id', 'entry_seq'], ['entries.programme_id', 'entries.seq'], ),
    sa.ForeignKeyConstraint(['shop_id'], ['shops.id'], ),
    sa.PrimaryKeyConstraint('programme_id', 'entry_seq'),
    sa.UniqueConstraint('programme_id', 'idempotency_key', name='settlements_key_per_programme')
    )
    op.create_table('redemptions',
    sa.Column('voucher_id', sa.String(length=26), nullable=False),
    sa.Column('programme_id', sa.Integer(), nullable=False),
    sa.Column('shop_id', sa.Integer(), nullable=False),
    sa.Column('entry_seq', sa.BigInteger(), nullable=False),
    sa.Column('value_points', sa.BigInteger(), nullable=False),
    sa.Column('redeemed_at', sa.String(length=32), nullable=False),
    sa.Column('actor', sa.String(length=200), nullable=False),
    sa.Column('idempotency_key', sa.String(length=200), nullable=True),
    sa.Column('settlement_seq', sa.BigInteger(), nullable=True),
    sa.ForeignKeyConstraint(['programme_id'], ['programmes.id'], ),
    sa.ForeignKeyConstraint(['programme_id', 'entry_seq'], ['entries.programme_id', 'entries.seq'], ),
    sa.ForeignKeyConstraint(['programme_id', 'settlement_seq'], ['settlements.programme_id', 'settlements.entry_seq'], ),
    sa.ForeignKeyConstraint(['shop_id'], ['shops.id'], ),
    sa.ForeignKeyConstraint(['voucher_id'], ['vouchers.id'], ),
    sa.PrimaryKeyConstraint('voucher_id'),
    sa.UniqueConstraint('programme_id', 'entry_seq', name='redemptions_one_per_entry'),
    sa.UniqueConstraint('shop_id', 'idempotency_key', name='redemptions_key_per_shop')
    )
    op.create_index('redemptions_by_shop', 'redemptions', ['shop_id', 'redeemed_at'], unique=False)


def downgrade() -> None:
    op.drop_index('redemptions_by_shop', table_name='redemptions')
    op.drop_table('redemptions')
    op.drop_table('settlements')
    op.drop_index('vouchers_due', table_name='vouchers')
    op.drop_table('vouchers')
    op.drop_index('signing_keys_one_signing', table_name='signing_keys')
    op.drop_table('signing_keys')
    op.drop_table('catalog_items')
    op.drop_table('shops')
    op.drop_table('redemption_settings')
