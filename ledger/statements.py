"""Reads: balances and scores. Never takes the chain lock."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.engine import Engine

from ledger import errors
from ledger.models import Account, Balance
from ledger.programmes import get_programme
from ledger.storage import read_transaction


@dataclass(frozen=True)
class AccountBalance:
    account: str
    kind: str
    balance_points: int
    score_points: int


def balances(engine: Engine, programme: str) -> list[AccountBalance]:
    """Every account of a programme with its cached balance and score, by code."""
    with read_transaction(engine) as connection:
        programme_info = get_programme(connection, programme)
        rows = connection.execute(
            select(Account.code, Account.kind, Balance.balance_points, Balance.score_points)
            .join(Balance, Balance.account_id == Account.id)
            .where(Account.programme_id == programme_info.id)
            .order_by(Account.code)
        ).all()
    return [AccountBalance(*row) for row in rows]


def balance_of(engine: Engine, programme: str, account: str) -> AccountBalance:
    """One account's balance and score; raises `UnknownAccount`."""
    with read_transaction(engine) as connection:
        programme_info = get_programme(connection, programme)
        row = connection.execute(
            select(Account.code, Account.kind, Balance.balance_points, Balance.score_points)
            .join(Balance, Balance.account_id == Account.id)
            .where(Account.programme_id == programme_info.id, Account.code == account)
        ).first()
    if row is None:
        raise errors.UnknownAccount(f"no account {account!r} in this programme", account=account)
    return AccountBalance(*row)
