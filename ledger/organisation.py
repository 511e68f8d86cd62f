"""The organisation tree and the people in it: units, households, members.

Units form a tree (city → district → town → village or community → grid →
building, any depth). A household (户) belongs to a unit; a member belongs to
a household and a unit, and owns one `member:<code>` account.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import bindparam, false, func, insert, or_, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import aliased

from ledger import errors
from ledger.accounts import insert_account, member_account
from ledger.entry_format import format_timestamp
from ledger.models import Grant, Household, Member, Unit
from ledger.programmes import check_code, get_programme
from ledger.storage import read_transaction, write_transaction

ROLES = frozenset({"organiser", "reviewer", "admin", "auditor"})
SYSTEM_PREFIX = "system:"
"""Actors named `system:…` are the operator's own tools (the `jifen` command, the
demo loader): they act with every role. The HTTP API never lets a client
act as one; its actors come from API keys."""

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
        parent_id, parent_path = None, "/"
        if parent:
            parent_id = require_unit(connection, programme_info.id, parent)
            parent_path = connection.execute(
                select(Unit.path).where(Unit.id == parent_id)
            ).scalar_one()
        return connection.execute(
            insert(Unit)
            .values(
                programme_id=programme_info.id, code=code, name=name, kind=kind,
                parent_id=parent_id, path=f"{parent_path}{code}/",
            )
            .returning(Unit.id)
        ).scalar_one()


def create_household(engine: Engine, programme: str, code: str, name: str, unit: str) -> int:
    """Add a household in `unit`; raises `UnknownUnit`, `AlreadyExists`."""
    check_code(code, "household")
    with write_transaction(engine) as connection:
        programme_info = get_programme(connection, programme)
        unit_id = require_unit(connection, programme_info.id, unit)
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
            require_unit(connection, programme_info.id, unit) if unit else household_row.unit_id
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


def _unit_id(connection: Connection, programme_id: int, code: str) -> int | None:
    return connection.execute(
        select(Unit.id).where(Unit.programme_id == programme_id, Unit.code == code)
    ).scalar_one_or_none()


def require_unit(connection: Connection, programme_id: int, code: str) -> int:
    """The id of unit `code`; raises `UnknownUnit`."""
    unit_id = _unit_id(connection, programme_id, code)
    if unit_id is None:
        raise errors.UnknownUnit(f"no unit {code!r}", unit=code)
    return unit_id


@dataclass(frozen=True)
class MemberRecord:
    """What awards need to know of a member: where they sit in the tree."""

    id: int
    code: str
    name: str
    account: str
    unit: str
    unit_path: str
    household_id: int
    household: str


_FIND_MEMBER = (
    select(Member.id, Member.code, Member.name, Unit.code, Unit.path, Household.id,
           Household.code)
    .join(Unit, Unit.id == Member.unit_id)
    .join(Household, Household.id == Member.household_id)
    .where(Member.programme_id == bindparam("programme_id"), Member.code == bindparam("code"))
)


def find_member(connection: Connection, programme_id: int, code: str) -> MemberRecord:
    """The member `code` with their unit path and household; raises `UnknownMember`."""
    row = connection.execute(_FIND_MEMBER, {"programme_id": programme_id, "code": code}).first()
    if row is None:
        raise errors.UnknownMember(f"no member {code!r} in this programme", member=code)
    member_id, member_code, name, unit, path, household_id, household = row
    return MemberRecord(member_id, member_code, name, member_account(member_code), unit, path,
                        household_id, household)


def unit_path(connection: Connection, programme_id: int, code: str) -> str:
    """The path of unit `code` (`/town/village/`); raises `UnknownUnit`."""
    path = connection.execute(
        select(Unit.path).where(Unit.programme_id == programme_id, Unit.code == code)
    ).scalar_one_or_none()
    if path is None:
        raise errors.UnknownUnit(f"no unit {code!r}", unit=code)
    return path


def grant_role(engine: Engine, programme: str, principal: str, role: str, unit: str) -> int:
    """Give `principal` `role` on the subtree of `unit`; returns the grant's id.

    Raises `InvalidEntry` for an unknown role or a bad principal, `UnknownUnit`.
    """
    if role not in ROLES:
        raise errors.InvalidEntry(f"role must be one of {', '.join(sorted(ROLES))}",
                                  field="role")
    if not isinstance(principal, str) or not principal.strip() or len(principal) > 200:
        raise errors.InvalidEntry("principal must be 1-200 characters", field="principal")
    if principal.startswith(SYSTEM_PREFIX):
        raise errors.InvalidEntry(f"{SYSTEM_PREFIX}… principals already hold every role",
                                  field="principal")
    with write_transaction(engine) as connection:
        programme_info = get_programme(connection, programme)
        unit_id = require_unit(connection, programme_info.id, unit)
        return connection.execute(
            insert(Grant)
            .values(programme_id=programme_info.id, principal=principal, role=role,
                    unit_id=unit_id, created_at=format_timestamp(datetime.now(UTC)))
            .returning(Grant.id)
        ).scalar_one()


def revoke_grant(engine: Engine, programme: str, grant_id: int) -> None:
    """Revoke a grant from now on; raises `UnknownGrant`."""
    with write_transaction(engine) as connection:
        programme_info = get_programme(connection, programme)
        revoked = connection.execute(
            update(Grant)
            .where(Grant.id == grant_id, Grant.programme_id == programme_info.id,
                   Grant.revoked_at.is_(None))
            .values(revoked_at=format_timestamp(datetime.now(UTC)))
        ).rowcount
    if revoked != 1:
        raise UnknownGrant(f"no active grant {grant_id}", grant=grant_id)


class UnknownGrant(errors.LedgerError):
    code = "unknown_grant"


_SUBTREES = (
    select(Unit.path)
    .join(Grant, Grant.unit_id == Unit.id)
    .where(Grant.programme_id == bindparam("programme_id"),
           Grant.principal == bindparam("principal"), Grant.role == bindparam("role"),
           Grant.revoked_at.is_(None))
)


def subtrees_of(connection: Connection, programme_id: int, principal: str, role: str) -> list[str]:
    """The unit paths on which `principal` holds `role` (all, `/`, for system actors)."""
    if principal.startswith(SYSTEM_PREFIX):
        return ["/"]
    parameters = {"programme_id": programme_id, "principal": principal, "role": role}
    return [path for (path,) in connection.execute(_SUBTREES, parameters)]


def within(path: str, subtrees: list[str]) -> bool:
    """Is the unit at `path` inside one of `subtrees`?"""
    return any(path.startswith(subtree) for subtree in subtrees)


def principal_roles(engine: Engine, programme: str, principal: str) -> dict[str, list[str]]:
    """Role -> unit paths on which `principal` holds it (every role on `/` for system actors).

    One query for all roles: every authorised API request asks this.
    """
    if principal.startswith(SYSTEM_PREFIX):
        return {role: ["/"] for role in sorted(ROLES)}
    with read_transaction(engine) as connection:
        programme_info = get_programme(connection, programme)
        rows = connection.execute(
            _ROLES_OF, {"programme_id": programme_info.id, "principal": principal}
        )
        held: dict[str, list[str]] = {}
        for role, path in rows:
            held.setdefault(role, []).append(path)
    return held


_ROLES_OF = (
    select(Grant.role, Unit.path)
    .join(Unit, Unit.id == Grant.unit_id)
    .where(Grant.programme_id == bindparam("programme_id"),
           Grant.principal == bindparam("principal"), Grant.revoked_at.is_(None))
    .order_by(Grant.role, Unit.path)
)


def member_record(engine: Engine, programme: str, code: str) -> MemberRecord:
    """`find_member` in a transaction of its own; raises `UnknownMember`."""
    with read_transaction(engine) as connection:
        programme_info = get_programme(connection, programme)
        return find_member(connection, programme_info.id, code)


def unit_path_of(engine: Engine, programme: str, code: str) -> str:
    """`unit_path` in a transaction of its own; raises `UnknownUnit`."""
    with read_transaction(engine) as connection:
        programme_info = get_programme(connection, programme)
        return unit_path(connection, programme_info.id, code)


# -- lists and lookups for the HTTP API ------------------------------------------------------


@dataclass(frozen=True)
class UnitInfo:
    code: str
    name: str
    kind: str
    parent: str | None
    path: str


@dataclass(frozen=True)
class HouseholdInfo:
    code: str
    name: str
    unit: str


@dataclass(frozen=True)
class GrantInfo:
    id: int
    principal: str
    role: str
    unit: str
    unit_path: str
    created_at: str
    revoked_at: str | None


def list_units(engine: Engine, programme: str, after: str | None = None,
               limit: int | None = None) -> list[UnitInfo]:
    """Units by code, those after `after` (a keyset page), at most `limit`.

    Keyset rather than offset pages: a unit created while someone pages
    through the list neither repeats nor hides another one. Raises
    `UnknownProgramme`.
    """
    parent = aliased(Unit)
    with read_transaction(engine) as connection:
        programme_info = get_programme(connection, programme)
        query = (
            select(Unit.code, Unit.name, Unit.kind, parent.code, Unit.path)
            .outerjoin(parent, parent.id == Unit.parent_id)
            .where(Unit.programme_id == programme_info.id)
            .order_by(Unit.code)
        )
        if after is not None:
            query = query.where(Unit.code > after)
        if limit is not None:
            query = query.limit(limit)
        return [UnitInfo(*row) for row in connection.execute(query)]


def get_unit(engine: Engine, programme: str, code: str) -> UnitInfo:
    """The unit `code`; raises `UnknownUnit`."""
    parent = aliased(Unit)
    with read_transaction(engine) as connection:
        programme_info = get_programme(connection, programme)
        row = connection.execute(
            select(Unit.code, Unit.name, Unit.kind, parent.code, Unit.path)
            .outerjoin(parent, parent.id == Unit.parent_id)
            .where(Unit.programme_id == programme_info.id, Unit.code == code)
        ).first()
    if row is None:
        raise errors.UnknownUnit(f"no unit {code!r}", unit=code)
    return UnitInfo(*row)


def list_households(engine: Engine, programme: str, after: str | None = None,
                    limit: int | None = None) -> list[HouseholdInfo]:
    """Households by code, those after `after`, at most `limit`; raises `UnknownProgramme`."""
    with read_transaction(engine) as connection:
        programme_info = get_programme(connection, programme)
        query = (
            select(Household.code, Household.name, Unit.code)
            .join(Unit, Unit.id == Household.unit_id)
            .where(Household.programme_id == programme_info.id)
            .order_by(Household.code)
        )
        if after is not None:
            query = query.where(Household.code > after)
        if limit is not None:
            query = query.limit(limit)
        return [HouseholdInfo(*row) for row in connection.execute(query)]


def get_household(engine: Engine, programme: str, code: str) -> HouseholdInfo:
    """The household `code`; raises `UnknownHousehold`."""
    with read_transaction(engine) as connection:
        programme_info = get_programme(connection, programme)
        row = connection.execute(
            select(Household.code, Household.name, Unit.code)
            .join(Unit, Unit.id == Household.unit_id)
            .where(Household.programme_id == programme_info.id, Household.code == code)
        ).first()
    if row is None:
        raise errors.UnknownHousehold(f"no household {code!r}", household=code)
    return HouseholdInfo(*row)


def list_members_within(engine: Engine, programme: str, subtrees: list[str] | None = None,
                        after: str | None = None, limit: int | None = None) -> list[MemberInfo]:
    """Members by code whose unit lies in one of `subtrees` (None: everyone), after `after`.

    What a staff member may list is the members of the subtrees their roles
    cover, so the filter runs in the query: a page is full even when most
    members of the programme lie elsewhere. Paths are compared by prefix
    with `substr`, not `LIKE`, because `_` is both a code character and a
    `LIKE` wildcard. Raises `UnknownProgramme`.
    """
    with read_transaction(engine) as connection:
        programme_info = get_programme(connection, programme)
        query = (
            select(Member.id, Member.code, Member.name, Household.code, Unit.code)
            .join(Household, Household.id == Member.household_id)
            .join(Unit, Unit.id == Member.unit_id)
            .where(Member.programme_id == programme_info.id)
            .order_by(Member.code)
        )
        if subtrees is not None:
            query = query.where(or_(false(), *(
                func.substr(Unit.path, 1, len(subtree)) == subtree for subtree in subtrees)))
        if after is not None:
            query = query.where(Member.code > after)
        if limit is not None:
            query = query.limit(limit)
        rows = connection.execute(query).all()
    return [MemberInfo(*row, member_account(row[1])) for row in rows]


MAX_SEARCH_CHARS = 50


@dataclass(frozen=True)
class MemberMatch:
    """A member found by `search_members`, with the names a person recognises them by."""

    code: str
    name: str
    household: str
    household_name: str
    unit: str
    unit_name: str


def search_members(engine: Engine, programme: str, text: str, subtrees: list[str] | None,
                   limit: int) -> list[MemberMatch]:
    """Members whose name, code, household or unit (code or name) holds `text`, ignoring case.

    Only members in one of `subtrees` (None: everyone) are searched, in the
    query, as `list_members_within` does; so a search never shows a member the
    searcher may not act for. `%` and `_` in `text` are matched literally. By
    unit, household and member, at most `limit`. Raises `InvalidEntry` (text
    empty or longer than `MAX_SEARCH_CHARS`), `UnknownProgramme`.
    """
    text = text.strip() if isinstance(text, str) else ""
    if not text or len(text) > MAX_SEARCH_CHARS:
        raise errors.InvalidEntry(f"search for 1-{MAX_SEARCH_CHARS} characters", field="q")
    with read_transaction(engine) as connection:
        programme_info = get_programme(connection, programme)
        query = (
            select(Member.code, Member.name, Household.code, Household.name, Unit.code,
                   Unit.name)
            .join(Household, Household.id == Member.household_id)
            .join(Unit, Unit.id == Member.unit_id)
            .where(Member.programme_id == programme_info.id,
                   or_(*(column.icontains(text, autoescape=True) for column in (
                       Member.name, Member.code, Household.name, Household.code, Unit.name,
                       Unit.code))))
            .order_by(Unit.path, Household.code, Member.code)
            .limit(limit)
        )
        if subtrees is not None:
            query = query.where(or_(false(), *(
                func.substr(Unit.path, 1, len(subtree)) == subtree for subtree in subtrees)))
        return [MemberMatch(*row) for row in connection.execute(query)]


def member_names(engine: Engine, programme: str, codes: list[str]) -> dict[str, str]:
    """Code -> name of each of `codes` that is a member (others are left out), in few
    queries however long the list (a sign-in sheet's). Raises `UnknownProgramme`."""
    wanted = sorted(set(codes))
    names: dict[str, str] = {}
    with read_transaction(engine) as connection:
        programme_info = get_programme(connection, programme)
        for start in range(0, len(wanted), 500):
            rows = connection.execute(select(Member.code, Member.name).where(
                Member.programme_id == programme_info.id,
                Member.code.in_(wanted[start:start + 500])))
            names.update({code: name for code, name in rows})
    return names


def list_grants(engine: Engine, programme: str, principal: str | None = None,
                include_revoked: bool = False) -> list[GrantInfo]:
    """Grants by id (active ones unless `include_revoked`), of `principal` if given.

    Raises `UnknownProgramme`.
    """
    with read_transaction(engine) as connection:
        programme_info = get_programme(connection, programme)
        query = (
            select(Grant.id, Grant.principal, Grant.role, Unit.code, Unit.path,
                   Grant.created_at, Grant.revoked_at)
            .join(Unit, Unit.id == Grant.unit_id)
            .where(Grant.programme_id == programme_info.id)
            .order_by(Grant.id)
        )
        if principal is not None:
            query = query.where(Grant.principal == principal)
        if not include_revoked:
            query = query.where(Grant.revoked_at.is_(None))
        return [GrantInfo(*row) for row in connection.execute(query)]


def get_grant(engine: Engine, programme: str, grant_id: int) -> GrantInfo:
    """The grant `grant_id`, active or revoked; raises `UnknownGrant`."""
    with read_transaction(engine) as connection:
        programme_info = get_programme(connection, programme)
        row = connection.execute(
            select(Grant.id, Grant.principal, Grant.role, Unit.code, Unit.path,
                   Grant.created_at, Grant.revoked_at)
            .join(Unit, Unit.id == Grant.unit_id)
            .where(Grant.programme_id == programme_info.id, Grant.id == grant_id)
        ).first()
    if row is None:
        raise UnknownGrant(f"no grant {grant_id}", grant=grant_id)
    return GrantInfo(*row)


def grant_role_once(engine: Engine, programme: str, principal: str, role: str,
                    unit: str) -> int:
    """`grant_role`, refusing a role the principal already holds on that very unit.

    Two active grants of one role on one unit would make revoking one look
    like it worked while the other still gives the role. The check runs
    before `grant_role`'s own transaction, so two identical grants racing
    each other can still both land (a partial unique index on active grants
    would close that). Raises `AlreadyExists` naming the active grant, and
    what `grant_role` raises.
    """
    for held in list_grants(engine, programme, principal=principal):
        if held.role == role and held.unit == unit:
            raise errors.AlreadyExists(
                f"{principal!r} already holds {role} on unit {unit!r} (grant {held.id})",
                grant=held.id)
    return grant_role(engine, programme, principal, role, unit)
