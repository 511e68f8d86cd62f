"""The migration creates exactly the tables redemption/models.py declares, and the
database's own guards hold when Python is gone round.

Every test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import insert, update

from ledger import errors
from ledger.models import Base
from ledger.programmes import get_programme
from ledger.storage import write_transaction
from redemption import catalog, signing_keys
from redemption import models as redemption_models
from redemption.models import CatalogItem, Redemption, SigningKey
from redemption.redemptions import redeem
from redemption.shops import get_shop
from redemption.vouchers import issue_voucher
from tests.redemption.conftest import CASHIER, ORGANISER

REDEMPTION_TABLES = {
    table.name for table in Base.metadata.sorted_tables
    if table.name in {model.__tablename__ for model in vars(redemption_models).values()
                      if isinstance(model, type) and hasattr(model, "__tablename__")}
}


def touched_tables(difference) -> set[str]:
    """The table names one autogenerate difference is about."""
    items = difference if isinstance(difference, list) else [difference]
    names = set()
    for item in items:
        for part in item[1:]:
            table = getattr(part, "table", None)
            name = getattr(part, "name", None)
            if table is not None:
                names.add(table.name)
            elif isinstance(part, str):
                names.add(part)
            elif name is not None and hasattr(part, "columns"):
                names.add(name)
    return names


def test_migration_0004_matches_the_models(engine):
    assert REDEMPTION_TABLES == {"redemption_settings", "shops", "catalog_items",
                                 "signing_keys", "vouchers", "redemptions", "settlements"}
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)
    ours = [difference for difference in differences
            if touched_tables(difference) & REDEMPTION_TABLES]
    assert ours == []


def test_the_database_refuses_stock_below_zero(market):
    item = catalog.create_item(market.engine, market.code, "tea", "茶叶", kind="goods",
                               price_points=20, stock=0)
    with pytest.raises(errors.IntegrityViolation), write_transaction(market.engine) as db:
        db.execute(update(CatalogItem).where(CatalogItem.id == item.id).values(stock=-1))
    assert catalog.get_item(market.engine, market.code, "tea").stock == 0


def test_the_database_refuses_a_second_redemption_of_a_voucher(market):
    voucher = issue_voucher(market.engine, market.code, market.member(0), actor=ORGANISER,
                            points=10)
    first = redeem(market.engine, market.code, "rice", voucher.display_code, actor=CASHIER)
    with pytest.raises(errors.IntegrityViolation), write_transaction(market.engine) as db:
        db.execute(insert(Redemption).values(
            voucher_id=voucher.id, programme_id=_programme_id(market), shop_id=_shop_id(market),
            entry_seq=first.entry_seq, value_points=10, redeemed_at=first.redeemed_at,
            actor="someone else", idempotency_key=None, settlement_seq=None))


def test_the_database_refuses_two_signing_keys_for_one_programme(market):
    signing_keys.rotate_key(market.engine, market.code)
    with pytest.raises(errors.IntegrityViolation), write_transaction(market.engine) as db:
        db.execute(insert(SigningKey).values(
            programme_id=_programme_id(market), key_id="k4.pid.second", public_key=b"\0" * 32,
            secret_seed=None, status="signing", created_at="2026-11-20T00:00:00.000000Z"))
    assert len(signing_keys.published_keys(market.engine, market.code)) == 1


def _programme_id(market) -> int:
    return get_programme(market.engine, market.code).id


def _shop_id(market) -> int:
    return get_shop(market.engine, market.code, "oil").id
