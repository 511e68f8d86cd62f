"""Programmes: one points scheme each, with its own chain and time zone.

Creating a programme also creates its chain head (size 0) and its system
accounts, so the first append has everything it needs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import bindparam, insert, select
from sqlalchemy.engine import Connection, Engine

from ledger import errors
from ledger.accounts import SYSTEM_ACCOUNTS, AccountRef, insert_account, resolve_accounts
from ledger.entry_format import format_timestamp
from ledger.models import ChainHead, Programme
from ledger.storage import read_transaction, write_transaction

CODE_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
DEFAULT_TIME_ZONE = "Asia/Shanghai"


@dataclass(frozen=True)
class ProgrammeInfo:
    id: int
    code: str
    name: str
    time_zone: str

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)


def check_code(code: str, what: str) -> str:
    """Codes are lower-case ASCII slugs: they appear in account names and URLs."""
    if not isinstance(code, str) or not CODE_PATTERN.match(code):
        raise errors.InvalidEntry(
            f"{what} code {code!r} must be 1-64 characters of a-z, 0-9, '.', '_' or '-', "
            "starting with a letter or digit",
            field="code",
        )
    return code


def create_programme(
    engine: Engine, code: str, name: str, time_zone: str = DEFAULT_TIME_ZONE
) -> ProgrammeInfo:
    """Create a programme, its empty chain and its system accounts.

    Raises `InvalidEntry` for a bad code or an unknown time zone, and
    `AlreadyExists` if the code is taken.
    """
    check_code(code, "programme")
    try:
        ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise errors.InvalidEntry(
            f"unknown time zone {time_zone!r}", field="time_zone"
        ) from error
    now = format_timestamp(datetime.now(UTC))
    with write_transaction(engine) as connection:
        if _find(connection, code) is not None:
            raise errors.AlreadyExists(f"programme {code!r} already exists", programme=code)
        programme_id = connection.execute(
            insert(Programme)
            .values(code=code, name=name, time_zone=time_zone, created_at=now)
            .returning(Programme.id)
        ).scalar_one()
        connection.execute(
            insert(ChainHead).values(
                programme_id=programme_id, size=0, head_hash=None, frontier=b"", updated_at=now
            )
        )
        for account_code in SYSTEM_ACCOUNTS:
            insert_account(connection, programme_id, account_code, kind="system")
    return ProgrammeInfo(programme_id, code, name, time_zone)


def get_programme(engine_or_connection: Engine | Connection, code: str) -> ProgrammeInfo:
    """The programme with `code`; raises `UnknownProgramme`."""
    if isinstance(engine_or_connection, Engine):
        with read_transaction(engine_or_connection) as connection:
            found = _find(connection, code)
    else:
        found = _find(engine_or_connection, code)
    if found is None:
        raise errors.UnknownProgramme(f"no programme with code {code!r}", programme=code)
    return found


def list_programmes(engine: Engine) -> list[ProgrammeInfo]:
    with read_transaction(engine) as connection:
        rows = connection.execute(
            select(Programme.id, Programme.code, Programme.name, Programme.time_zone).order_by(
                Programme.code
            )
        ).all()
    return [ProgrammeInfo(*row) for row in rows]


_FIND = select(Programme.id, Programme.code, Programme.name, Programme.time_zone).where(
    Programme.code == bindparam("code")
)


def _find(connection: Connection, code: str) -> ProgrammeInfo | None:
    row = connection.execute(_FIND, {"code": code}).first()
    return ProgrammeInfo(*row) if row else None


def open_account(engine: Engine, programme: str, code: str, kind: str) -> AccountRef:
    """Open a non-member account (a shop's, a hold); raises `AlreadyExists`."""
    try:
        with write_transaction(engine) as connection:
            programme_info = get_programme(connection, programme)
            if resolve_accounts(connection, programme_info.id, [code], missing_ok=True):
                raise errors.AlreadyExists(f"account {code!r} already exists", account=code)
            account_id = insert_account(connection, programme_info.id, code, kind)
    except errors.IntegrityViolation as error:  # another writer opened it a moment before
        raise errors.AlreadyExists(f"account {code!r} already exists", account=code) from error
    return AccountRef(account_id, code, kind)
