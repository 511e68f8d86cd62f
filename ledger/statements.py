"""Reads: balances and scores. Never takes the chain lock."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.engine import Connection, Engine

from ledger import errors
from ledger.models import Account, Balance, Entry, Posting
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


MAX_PAGE_ENTRIES = 200


@dataclass(frozen=True)
class StatementLine:
    """One entry as it touched one account."""

    seq: int
    kind: str
    points: int
    occurred_at: str
    recorded_at: str
    actor: str
    approver: str | None
    rule_code: str | None
    rule_version: int | None
    memo: str
    evidence: str | None
    reverses: int | None


@dataclass(frozen=True)
class StatementPage:
    account: str
    lines: list[StatementLine]
    next_before_seq: int | None
    """Pass as `before_seq` for the next (older) page; None when this is the last."""


def statement(engine: Engine, programme: str, account: str, before_seq: int | None = None,
              limit: int = 50) -> StatementPage:
    """An account's history, newest first, a page at a time (keyset pagination on `seq`).

    Pages stay correct while entries are appended: a page never shifts, and
    new entries appear only on a first page fetched later. Raises
    `UnknownAccount`, `InvalidEntry` (a limit outside 1..200).
    """
    if type(limit) is not int or not 1 <= limit <= MAX_PAGE_ENTRIES:
        raise errors.InvalidEntry(f"limit must be 1-{MAX_PAGE_ENTRIES}", field="limit")
    with read_transaction(engine) as connection:
        programme_info = get_programme(connection, programme)
        account_id = connection.execute(
            select(Account.id).where(Account.programme_id == programme_info.id,
                                     Account.code == account)
        ).scalar_one_or_none()
        if account_id is None:
            raise errors.UnknownAccount(f"no account {account!r} in this programme",
                                        account=account)
        query = (
            select(Entry.seq, Entry.kind, Posting.amount_points, Entry.occurred_at,
                   Entry.recorded_at, Entry.actor, Entry.approver, Entry.rule_code,
                   Entry.rule_version, Entry.memo, Entry.evidence, Entry.reverses_seq)
            .join(Entry, (Entry.programme_id == Posting.programme_id)
                  & (Entry.seq == Posting.entry_seq))
            .where(Posting.account_id == account_id)
            .order_by(Posting.entry_seq.desc())
            .limit(limit + 1)
        )
        if before_seq is not None:
            query = query.where(Posting.entry_seq < before_seq)
        rows = connection.execute(query).all()
    lines = [StatementLine(*row) for row in rows[:limit]]
    more = len(rows) > limit
    return StatementPage(account, lines, lines[-1].seq if more else None)


def balance_on(connection: Connection, programme_id: int, account: str) -> AccountBalance:
    """One account's balance and score, read on the caller's connection.

    Inside an append's guard (under the chain lock, in the append's own
    transaction) this is the balance the entry about to be written moves, so
    a check made on it cannot be raced. Raises `UnknownAccount`.
    """
    row = connection.execute(
        select(Account.code, Account.kind, Balance.balance_points, Balance.score_points)
        .join(Balance, Balance.account_id == Account.id)
        .where(Account.programme_id == programme_id, Account.code == account)
    ).first()
    if row is None:
        raise errors.UnknownAccount(f"no account {account!r} in this programme", account=account)
    return AccountBalance(*row)
