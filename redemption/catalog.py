"""The points catalog (积分超市的货架): what vouchers can be for, priced in points.

An item is `goods` (rice, oil, soap: physical, with a stock count) or
`cash_off` (a discount worth `value_fen` at the till, no stock). Stock never
goes below zero, also when many vouchers are issued at once: a unit is taken
by a conditional `UPDATE … SET stock = stock - 1 WHERE stock >= 1` inside
the issuing entry's transaction, so the database, not Python, decides who
gets the last one; a CHECK constraint refuses a negative stock besides.
Cancelled and expired vouchers for goods put their unit back.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection, Engine

from ledger import errors
from ledger.chain import MAX_POINTS
from ledger.programmes import check_code, get_programme
from ledger.storage import read_transaction, write_transaction
from redemption.errors import OutOfStock, UnknownItem
from redemption.models import CatalogItem

GOODS = "goods"
CASH_OFF = "cash_off"
KINDS = (GOODS, CASH_OFF)
MAX_STOCK = 10_000_000
MAX_NAME_CHARS = 200


@dataclass(frozen=True)
class ItemInfo:
    id: int
    programme: str
    code: str
    name: str
    kind: str
    price_points: int
    value_fen: int | None
    """What a `cash_off` item takes off the bill, in fen; None for goods."""
    stock: int | None
    """Units left of `goods`; None for `cash_off`."""


def create_item(engine: Engine, programme: str, code: str, name: str, *, kind: str,
                price_points: int, stock: int | None = None,
                value_fen: int | None = None) -> ItemInfo:
    """Add an item: goods need `stock` (>= 0), cash-off items need `value_fen` (> 0).

    Raises `UnknownProgramme`, `InvalidEntry`, `AlreadyExists`.
    """
    check_code(code, "item")
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME_CHARS or (
            "\x00" in name):
        raise errors.InvalidEntry(f"name must be 1-{MAX_NAME_CHARS} characters, without NUL",
                                  field="name")
    if kind not in KINDS:
        raise errors.InvalidEntry(f"kind must be one of {', '.join(KINDS)}", field="kind")
    _check_integer(price_points, "price_points", 1, MAX_POINTS)
    if kind == GOODS:
        _check_integer(stock, "stock", 0, MAX_STOCK)
        if value_fen is not None:
            raise errors.InvalidEntry("goods have a stock, not a value_fen", field="value_fen")
    else:
        _check_integer(value_fen, "value_fen", 1, MAX_POINTS)
        if stock is not None:
            raise errors.InvalidEntry("cash-off items have no stock", field="stock")
    with write_transaction(engine) as connection:
        programme_info = get_programme(connection, programme)
        if _find(connection, programme_info.id, code) is not None:
            raise errors.AlreadyExists(f"item {code!r} already exists", item=code)
        item_id = connection.execute(
            insert(CatalogItem).values(programme_id=programme_info.id, code=code, name=name,
                                       kind=kind, price_points=price_points,
                                       value_fen=value_fen, stock=stock)
            .returning(CatalogItem.id)
        ).scalar_one()
    return ItemInfo(item_id, programme, code, name, kind, price_points, value_fen, stock)


def restock(engine: Engine, programme: str, code: str, units: int) -> ItemInfo:
    """Add `units` (> 0) to a goods item's stock, atomically; returns the item after.

    Raises `UnknownProgramme`, `UnknownItem`, `InvalidEntry` (not goods, or
    a bad count).
    """
    _check_integer(units, "units", 1, MAX_STOCK)
    with write_transaction(engine) as connection:
        programme_info = get_programme(connection, programme)
        item = require_item(connection, programme_info.id, programme, code)
        if item.kind != GOODS:
            raise errors.InvalidEntry(f"item {code!r} is {item.kind} and has no stock",
                                      field="code")
        connection.execute(
            update(CatalogItem).where(CatalogItem.id == item.id)
            .values(stock=CatalogItem.stock + units)
        )
        return require_item(connection, programme_info.id, programme, code)


def get_item(engine: Engine, programme: str, code: str) -> ItemInfo:
    """Raises `UnknownProgramme`, `UnknownItem`."""
    with read_transaction(engine) as connection:
        programme_info = get_programme(connection, programme)
        return require_item(connection, programme_info.id, programme, code)


def list_items(engine: Engine, programme: str) -> list[ItemInfo]:
    """Every item of the programme, by code; raises `UnknownProgramme`."""
    with read_transaction(engine) as connection:
        programme_info = get_programme(connection, programme)
        rows = connection.execute(
            select(CatalogItem).where(CatalogItem.programme_id == programme_info.id)
            .order_by(CatalogItem.code)
        ).all()
    return [_info(row, programme) for row in rows]


def require_item(connection: Connection, programme_id: int, programme: str,
                 code: str) -> ItemInfo:
    row = _find(connection, programme_id, code)
    if row is None:
        raise UnknownItem(f"no item {code!r} in programme {programme!r}", item=code)
    return _info(row, programme)


def take_one(connection: Connection, item: ItemInfo) -> None:
    """Take one unit of goods in the caller's transaction; raises `OutOfStock` at zero.

    The condition is in the UPDATE itself: of any number of transactions
    racing for the last unit, the database lets exactly one match.
    """
    if item.kind != GOODS:
        return
    taken = connection.execute(
        update(CatalogItem)
        .where(CatalogItem.id == item.id, CatalogItem.stock >= 1)
        .values(stock=CatalogItem.stock - 1)
    ).rowcount
    if taken != 1:
        raise OutOfStock(f"item {item.code!r} is out of stock", item=item.code)


def put_back_one(connection: Connection, item_id: int) -> None:
    """Return one unit of goods (a cancelled or expired voucher) in the caller's transaction."""
    connection.execute(
        update(CatalogItem)
        .where(CatalogItem.id == item_id, CatalogItem.kind == GOODS)
        .values(stock=CatalogItem.stock + 1)
    )


def _find(connection: Connection, programme_id: int, code: str):
    return connection.execute(
        select(CatalogItem).where(CatalogItem.programme_id == programme_id,
                                  CatalogItem.code == code)
    ).first()


def _info(row, programme: str) -> ItemInfo:
    return ItemInfo(row.id, programme, row.code, row.name, row.kind, row.price_points,
                    row.value_fen, row.stock)


def _check_integer(value: int | None, name: str, low: int, high: int) -> None:
    if type(value) is not int or not low <= value <= high:
        raise errors.InvalidEntry(f"{name} must be an integer from {low} to {high}", field=name)
