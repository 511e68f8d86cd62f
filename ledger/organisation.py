"""The organisation tree and the people in it: units, households, members.

Units form a tree (city → district → town → village or community → grid →
building, any depth). A household (户) belongs to a unit; a member belongs to
a household and a unit, and owns one `member:<code>` account.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import insert, select
from sqlalchemy.engine import Connection, Engine

from ledger import errors
from ledger.accounts import insert_account, member_account
from ledger.models import Household, Member, Unit
from ledger.programmes import check_code, get_programme
from ledger.storage import read_transaction, write_transaction

UNIT_KINDS = frozenset(
    {"city", "district", "county", "town", "street", "village", "community", "group", "grid",
     "building"}
)


@dataclass(frozen=True)
class MemberInfo:
    id: int
    code: str
    name: str
    household: str
    unit: str
    account: str


def create_unit(
    engine: Engine, programme: str, code: str, name: str, kind: str, parent: str | None = None
) -> int:
    """Add a unit under `parent` (None for the root); returns its id.

    Raises `InvalidEntry` (bad code or kind), `UnknownUnit` (parent),
    `AlreadyExists`.
    """
    check_code(code, "unit")
    if kind not in UNIT_KINDS:
        raise errors.InvalidEntry(
            f"unit kind {kind!r} is not one of {', '.join(sorted(UNIT_KINDS))}", field="kind"
        )
    with write_transaction(engine) as connection:
        programme_info = get_programme(connection, programme)
        if _unit_id(connection, programme_info.id, code) is not None:
            raise errors.AlreadyExists(f"unit {code!r} already exists", unit=code)
        parent_id = _require_unit(connection, programme_info.id, parent) if parent else None
        return connection.execute(
            insert(Unit)
            .values(
                programme_id=programme_info.id, code=code, name=name, kind=kind, parent_id=parent_id
            )
            .returning(Unit.id)
        ).scalar_one()


def create_household(engine: Engine, programme: str, code: str, name: str, unit: str) -> int:
    """Add a household in `unit`; raises `UnknownUnit`, `AlreadyExists`."""
    check_code(code, "household")
    with write_transaction(engine) as connection:
        programme_info = get_programme(connection, programme)
        unit_id = _require_unit(connection, programme_info.id, unit)
        exists = connection.execute(
            select(Household.id).where(
                Household.programme_id == programme_info.id, Household.code == code
            )
        ).first()
        if exists:
            raise errors.AlreadyExists(f"household {code!r} already exists", household=code)
        return connection.execute(
            insert(Household)
            .values(programme_id=programme_info.id, code=code, name=name, unit_id=unit_id)
            .returning(Household.id)
        ).scalar_one()


def create_member(
    engine: Engine, programme: str, code: str, name: str, household: str, unit: str | None = None
) -> MemberInfo:
    """Add a member to `household` (and `unit`, default the household's) with an account.

    Raises `UnknownHousehold`, `UnknownUnit`, `AlreadyExists`.
    """
    check_code(code, "member")
    with write_transaction(engine) as connection:
        programme_info = get_programme(connection, programme)
        household_row = connection.execute(
            select(Household.id, Household.unit_id).where(
                Household.programme_id == programme_info.id, Household.code == household
            )
        ).first()
        if household_row is None:
            raise errors.UnknownHousehold(f"no household {household!r}", household=household)
        unit_id = (
            _require_unit(connection, programme_info.id, unit) if unit else household_row.unit_id
        )
        exists = connection.execute(
            select(Member.id).where(Member.programme_id == programme_info.id, Member.code == code)
        ).first()
        if exists:
            raise errors.AlreadyExists(f"member {code!r} already exists", member=code)
        member_id = connection.execute(
            insert(Member)
            .values(
                programme_id=programme_info.id,
                code=code,
                name=name,
                household_id=household_row.id,
                unit_id=unit_id,
            )
            .returning(Member.id)
        ).scalar_one()
        account = member_account(code)
        insert_account(connection, programme_info.id, account, kind="member", member_id=member_id)
        unit_code = connection.execute(select(Unit.code).where(Unit.id == unit_id)).scalar_one()
    return MemberInfo(member_id, code, name, household, unit_code, account)


def list_members(engine: Engine, programme: str) -> list[MemberInfo]:
    """Every member of a programme, by code."""
    with read_transaction(engine) as connection:
        programme_info = get_programme(connection, programme)
        rows = connection.execute(
            select(Member.id, Member.code, Member.name, Household.code, Unit.code)
            .join(Household, Household.id == Member.household_id)
            .join(Unit, Unit.id == Member.unit_id)
            .where(Member.programme_id == programme_info.id)
            .order_by(Member.code)
        ).all()
    return [MemberInfo(*row, member_account(row[1])) for row in rows]


def _unit_id(connection: Connection, programme_id: int, code: str) -> int | None:
    return connection.execute(
        select(Unit.id).where(Unit.programme_id == programme_id, Unit.code == code)
    ).scalar_one_or_none()


def _require_unit(connection: Connection, programme_id: int, code: str) -> int:
    unit_id = _unit_id(connection, programme_id, code)
    if unit_id is None:
        raise errors.UnknownUnit(f"no unit {code!r}", unit=code)
    return unit_id
