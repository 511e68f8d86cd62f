"""Partner shops (合作商户) and the points supermarket (积分超市): where vouchers are spent.

A shop belongs to one programme and has its own account, `shop:<code>`,
which redemptions credit and settlements empty. The units it serves are
for people and for suggesting where a member's vouchers should be valid
(`shops_serving`); they do not limit which vouchers it may take. A
suspended shop can redeem nothing until it is reactivated; its account
and history stay.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection, Engine

from ledger import errors
from ledger.entry_format import format_timestamp
from ledger.organisation import find_member, require_unit, unit_path
from ledger.programmes import check_code, get_programme, open_account
from ledger.storage import read_transaction, write_transaction
from redemption.errors import UnknownShop
from redemption.models import Shop

ACTIVE = "active"
SUSPENDED = "suspended"
MAX_UNITS_PER_SHOP = 100
MAX_NAME_CHARS = 200


def shop_account(code: str) -> str:
    return f"shop:{code}"


@dataclass(frozen=True)
class ShopInfo:
    id: int
    programme: str
    code: str
    name: str
    units: tuple[str, ...]
    contact: str
    status: str

    @property
    def account(self) -> str:
        return shop_account(self.code)

    @property
    def active(self) -> bool:
        return self.status == ACTIVE


def create_shop(engine: Engine, programme: str, code: str, name: str,
                units: tuple[str, ...] | list[str] = (), contact: str = "") -> ShopInfo:
    """Register a shop and open its account `shop:<code>`.

    Raises `UnknownProgramme`, `UnknownUnit`, `InvalidEntry` (a bad code,
    name, contact or too many units) and `AlreadyExists`.
    """
    check_code(code, "shop")
    units = tuple(units)
    _check_text(name, "name", required=True)
    _check_text(contact, "contact")
    if len(units) > MAX_UNITS_PER_SHOP or len(set(units)) != len(units):
        raise errors.InvalidEntry(f"a shop serves at most {MAX_UNITS_PER_SHOP} distinct units",
                                  field="units")
    with read_transaction(engine) as connection:
        programme_info = get_programme(connection, programme)
        for unit in units:
            require_unit(connection, programme_info.id, unit)
        if _find(connection, programme_info.id, code) is not None:
            raise errors.AlreadyExists(f"shop {code!r} already exists", shop=code)
    # The account first: a shop row never exists without its account. An account
    # left by a create that failed after this step is taken over by the retry.
    try:
        open_account(engine, programme, shop_account(code), "shop")
    except errors.AlreadyExists:
        pass
    with write_transaction(engine) as connection:
        if _find(connection, programme_info.id, code) is not None:
            raise errors.AlreadyExists(f"shop {code!r} already exists", shop=code)
        shop_id = connection.execute(
            insert(Shop).values(programme_id=programme_info.id, code=code, name=name,
                                units_json=json.dumps(list(units), ensure_ascii=False),
                                contact=contact, status=ACTIVE,
                                created_at=format_timestamp(datetime.now(UTC)))
            .returning(Shop.id)
        ).scalar_one()
    return ShopInfo(shop_id, programme, code, name, units, contact, ACTIVE)


def suspend_shop(engine: Engine, programme: str, code: str) -> ShopInfo:
    """Stop a shop redeeming (a redemption already under way commits or is refused whole).

    Raises `UnknownProgramme`, `UnknownShop`."""
    return _set_status(engine, programme, code, SUSPENDED)


def reactivate_shop(engine: Engine, programme: str, code: str) -> ShopInfo:
    """Let a suspended shop redeem again; raises `UnknownProgramme`, `UnknownShop`."""
    return _set_status(engine, programme, code, ACTIVE)


def get_shop(engine: Engine, programme: str, code: str) -> ShopInfo:
    """Raises `UnknownProgramme`, `UnknownShop`."""
    with read_transaction(engine) as connection:
        programme_info = get_programme(connection, programme)
        return require_shop(connection, programme_info.id, programme, code)


def list_shops(engine: Engine, programme: str) -> list[ShopInfo]:
    """Every shop of the programme, by code; raises `UnknownProgramme`."""
    with read_transaction(engine) as connection:
        programme_info = get_programme(connection, programme)
        rows = connection.execute(
            select(Shop).where(Shop.programme_id == programme_info.id).order_by(Shop.code)
        ).all()
    return [_info(row, programme) for row in rows]


def shops_serving(engine: Engine, programme: str, member: str) -> list[str]:
    """Codes of the active shops serving a unit on the member's path: a default "valid at".

    Raises `UnknownProgramme`, `UnknownMember`.
    """
    with read_transaction(engine) as connection:
        programme_info = get_programme(connection, programme)
        member_path = find_member(connection, programme_info.id, member).unit_path
        rows = connection.execute(
            select(Shop.code, Shop.units_json)
            .where(Shop.programme_id == programme_info.id, Shop.status == ACTIVE)
            .order_by(Shop.code)
        ).all()
        serving = []
        for code, units_json in rows:
            paths = [unit_path(connection, programme_info.id, unit)
                     for unit in json.loads(units_json)]
            if any(member_path.startswith(path) for path in paths):
                serving.append(code)
    return serving


def require_shop(connection: Connection, programme_id: int, programme: str,
                 code: str) -> ShopInfo:
    row = _find(connection, programme_id, code)
    if row is None:
        raise UnknownShop(f"no shop {code!r} in programme {programme!r}", shop=code)
    return _info(row, programme)


def _set_status(engine: Engine, programme: str, code: str, status: str) -> ShopInfo:
    with write_transaction(engine) as connection:
        programme_info = get_programme(connection, programme)
        shop = require_shop(connection, programme_info.id, programme, code)
        connection.execute(update(Shop).where(Shop.id == shop.id).values(status=status))
    return ShopInfo(shop.id, programme, shop.code, shop.name, shop.units, shop.contact, status)


def _find(connection: Connection, programme_id: int, code: str):
    return connection.execute(
        select(Shop).where(Shop.programme_id == programme_id, Shop.code == code)
    ).first()


def _info(row, programme: str) -> ShopInfo:
    return ShopInfo(row.id, programme, row.code, row.name, tuple(json.loads(row.units_json)),
                    row.contact, row.status)


def _check_text(value: str, name: str, required: bool = False) -> None:
    if not isinstance(value, str) or len(value) > MAX_NAME_CHARS or "\x00" in value or (
            required and not value.strip()):
        raise errors.InvalidEntry(
            f"{name} must be text of {'1' if required else '0'}-{MAX_NAME_CHARS} characters, "
            "without NUL", field=name)
