"""Accounts and their balances.

Double entry needs somewhere for points to come from and go to. Every
programme has the system accounts below; each member has `member:<code>`;
later areas add `shop:<code>` and hold accounts. An account's balance is the
sum of its postings; the sum over all accounts of a programme is always zero.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import bindparam, insert, select
from sqlalchemy.engine import Connection

from ledger import errors
from ledger.models import Account, Balance

ISSUANCE = "issuance"
"""Source of awarded points; its balance is minus everything ever awarded."""
PENALTY = "penalty"
"""Sink of deducted points."""
EXPIRED = "expired"
"""Sink of points that expired unused."""
SETTLED = "settled"
"""Sink of points the programme has paid shops for."""
SYSTEM_ACCOUNTS = (ISSUANCE, PENALTY, EXPIRED, SETTLED)

ACCOUNT_KINDS = frozenset({"system", "member", "shop", "hold"})


def member_account(member_code: str) -> str:
    return f"member:{member_code}"


@dataclass(frozen=True)
class AccountRef:
    id: int
    code: str
    kind: str


def insert_account(
    connection: Connection, programme_id: int, code: str, kind: str, member_id: int | None = None
) -> int:
    """Insert an account and its zero balance inside the caller's transaction."""
    if kind not in ACCOUNT_KINDS:
        raise errors.InvalidEntry(f"unknown account kind {kind!r}", field="kind")
    account_id = connection.execute(
        insert(Account)
        .values(programme_id=programme_id, code=code, kind=kind, member_id=member_id)
        .returning(Account.id)
    ).scalar_one()
    connection.execute(
        insert(Balance).values(
            account_id=account_id, programme_id=programme_id, balance_points=0, score_points=0
        )
    )
    return account_id


_RESOLVE = select(Account.id, Account.code, Account.kind).where(
    Account.programme_id == bindparam("programme_id"),
    Account.code.in_(bindparam("codes", expanding=True)),
)


def resolve_accounts(
    connection: Connection, programme_id: int, codes: Iterable[str], missing_ok: bool = False
) -> dict[str, AccountRef]:
    """Map account codes to accounts; raises `UnknownAccount` for the first missing one."""
    wanted = sorted(set(codes))
    found: dict[str, AccountRef] = {}
    chunk_size = 500
    for start in range(0, len(wanted), chunk_size):
        chunk = wanted[start : start + chunk_size]
        rows = connection.execute(_RESOLVE, {"programme_id": programme_id, "codes": chunk})
        for account_id, code, kind in rows:
            found[code] = AccountRef(account_id, code, kind)
    if not missing_ok:
        for code in wanted:
            if code not in found:
                raise errors.UnknownAccount(f"no account {code!r} in this programme", account=code)
    return found
