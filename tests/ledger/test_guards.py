"""The database's half of the ledger's invariants, proved by going round Python.

Python never sends these statements; each test sends one with raw SQL, as a
bug or a hand-written session could, and checks two things: the database
itself refuses it (a driver error naming the trigger or constraint), and
inside `ledger.storage.write_transaction` the refusal arrives as the domain
error the rest of the code expects. Afterwards the chain is exactly as it
was and still verifies.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from sqlalchemy import select, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from ledger import errors
from ledger.accounts import ISSUANCE, PENALTY
from ledger.chain import Posting, append, head, reverse
from ledger.models import Account, Balance, ChainHead, Entry
from ledger.models import Posting as PostingRow
from ledger.programmes import get_programme
from ledger.storage import write_transaction
from ledger.verify import verify_chain
from tests.conftest import Village, make_village

WHEN = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
REVERSED_SEQ = 1
KEYED_SEQ = 0
KEY = "sheet-1-line-0"


@dataclass(frozen=True)
class Recorded:
    """A small chain to attack: entry 0 keyed, entry 1 reversed by entry 3."""

    engine: Engine
    village: Village
    programme_id: int
    account_ids: dict[str, int]
    next_seq: int

    def run(self, connection: Connection, statement: str, **values) -> None:
        connection.execute(text(statement), {"programme": self.programme_id, **values})

    def insert_entry(self, connection: Connection, seq: int, **columns) -> None:
        """An entry row with placeholder values; the guard under test must refuse it."""
        row = {
            "seq": seq,
            "kind": "award",
            "actor": "intruder",
            "occurred_at": "2026-11-20T09:30:00.000000Z",
            "recorded_at": "2026-11-20T09:30:00.000000Z",
            "memo": "",
            "metadata_json": "{}",
            "idempotency_key": None,
            "content_digest": bytes(32),
            "reverses_seq": None,
            "prev_hash": None,
            "hash": bytes(32),
        } | columns
        names = ", ".join(row)
        self.run(connection, f"INSERT INTO entries (programme_id, {names}) "
                 f"VALUES (:programme, {', '.join(':' + name for name in row)})", **row)

    def insert_posting(self, connection: Connection, seq: int, position: int, account: str,
                       points: int) -> None:
        self.run(connection, "INSERT INTO postings (programme_id, entry_seq, position, "
                 "account_id, amount_points) VALUES (:programme, :seq, :position, :account, "
                 ":points)", seq=seq, position=position, account=self.account_ids[account],
                 points=points)


def record_a_chain(engine: Engine, village: Village) -> Recorded:
    def award(member: int, points: int, key: str | None = None) -> None:
        append(engine, village.code, kind="award", actor="organiser:test", occurred_at=WHEN,
               postings=[Posting(village.account(member), points), Posting(ISSUANCE, -points)],
               idempotency_key=key)

    award(0, 10, KEY)
    award(1, 5)
    append(engine, village.code, kind="deduction", actor="organiser:test",
           postings=[Posting(village.account(0), -2), Posting(PENALTY, 2)])
    reverse(engine, village.code, REVERSED_SEQ, actor="organiser:test", memo="mistake")
    programme = get_programme(engine, village.code)
    with engine.connect() as connection:
        account_ids = dict(
            connection.execute(
                select(Account.code, Account.id).where(Account.programme_id == programme.id)
            ).all()
        )
    return Recorded(engine, village, programme.id, account_ids,
                    head(engine, village.code).size)


@pytest.fixture
def recorded(engine, village) -> Recorded:
    return record_a_chain(engine, village)


def stored_rows(recorded: Recorded) -> tuple:
    """Every stored row of the programme's chain, head and balances."""
    programme_id = recorded.programme_id
    with recorded.engine.connect() as connection:
        return tuple(
            connection.execute(query).all()
            for query in (
                select(Entry.__table__).where(Entry.programme_id == programme_id)
                .order_by(Entry.seq),
                select(PostingRow.__table__).where(PostingRow.programme_id == programme_id)
                .order_by(PostingRow.entry_seq, PostingRow.position),
                select(ChainHead.__table__).where(ChainHead.programme_id == programme_id),
                select(Balance.__table__).where(Balance.programme_id == programme_id)
                .order_by(Balance.account_id),
            )
        )


# -- the attempts --------------------------------------------------------------------

def update_an_entry(connection: Connection, recorded: Recorded) -> None:
    recorded.run(connection, "UPDATE entries SET memo = 'rewritten' "
                 "WHERE programme_id = :programme AND seq = 0")


def delete_an_entry(connection: Connection, recorded: Recorded) -> None:
    recorded.run(connection, "DELETE FROM entries WHERE programme_id = :programme AND seq = 2")


def update_a_posting(connection: Connection, recorded: Recorded) -> None:
    recorded.run(connection, "UPDATE postings SET amount_points = 1000 "
                 "WHERE programme_id = :programme AND entry_seq = 0 AND position = 0")


def delete_a_posting(connection: Connection, recorded: Recorded) -> None:
    recorded.run(connection, "DELETE FROM postings "
                 "WHERE programme_id = :programme AND entry_seq = 0 AND position = 1")


def add_a_posting_to_a_recorded_entry(connection: Connection, recorded: Recorded) -> None:
    recorded.insert_posting(connection, 0, 2, "member:m3", 1)


def insert_an_unbalanced_entry(connection: Connection, recorded: Recorded) -> None:
    """Postings first (as `ledger.chain` does), then the entry whose insert checks them."""
    recorded.insert_posting(connection, recorded.next_seq, 0, "member:m2", 5)
    recorded.insert_posting(connection, recorded.next_seq, 1, ISSUANCE, -4)
    recorded.insert_entry(connection, recorded.next_seq)


def insert_a_zero_posting(connection: Connection, recorded: Recorded) -> None:
    recorded.insert_posting(connection, recorded.next_seq, 0, "member:m2", 0)


def insert_a_second_entry_at_a_seq(connection: Connection, recorded: Recorded) -> None:
    recorded.insert_entry(connection, 0)


def reuse_an_idempotency_key(connection: Connection, recorded: Recorded) -> None:
    recorded.insert_entry(connection, recorded.next_seq, idempotency_key=KEY)


def reverse_an_entry_twice(connection: Connection, recorded: Recorded) -> None:
    recorded.insert_entry(connection, recorded.next_seq, kind="reversal",
                          reverses_seq=REVERSED_SEQ)


@dataclass(frozen=True)
class Guard:
    attempt: Callable[[Connection, Recorded], None]
    error: type[errors.LedgerError]
    says: dict[str, str]
    """What the database's message contains, per backend: the trigger's or constraint's words."""


def both(words: str) -> dict[str, str]:
    return {"sqlite": words, "postgresql": words}


GUARDS = [
    Guard(update_an_entry, errors.AppendOnlyViolation,
          both("append_only: entries cannot be updated")),
    Guard(delete_an_entry, errors.AppendOnlyViolation,
          both("append_only: entries cannot be deleted")),
    Guard(update_a_posting, errors.AppendOnlyViolation,
          both("append_only: postings cannot be updated")),
    Guard(delete_a_posting, errors.AppendOnlyViolation,
          both("append_only: postings cannot be deleted")),
    Guard(add_a_posting_to_a_recorded_entry, errors.AppendOnlyViolation,
          both("append_only: postings cannot be added to a recorded entry")),
    Guard(insert_an_unbalanced_entry, errors.UnbalancedPostings,
          both("unbalanced_postings: the postings of an entry must sum to zero")),
    Guard(insert_a_zero_posting, errors.IntegrityViolation, both("postings_amount_not_zero")),
    Guard(insert_a_second_entry_at_a_seq, errors.IntegrityViolation,
          {"sqlite": "entries.programme_id, entries.seq", "postgresql": '"entries_pkey"'}),
    Guard(reuse_an_idempotency_key, errors.IntegrityViolation,
          {"sqlite": "entries.programme_id, entries.idempotency_key",
           "postgresql": '"entries_idempotency_key"'}),
    Guard(reverse_an_entry_twice, errors.IntegrityViolation,
          {"sqlite": "entries.programme_id, entries.reverses_seq",
           "postgresql": '"entries_reversed_once"'}),
]


@pytest.mark.parametrize("guard", GUARDS, ids=lambda guard: guard.attempt.__name__)
def test_the_database_refuses_what_python_never_sends(recorded, guard):
    says = guard.says[recorded.engine.dialect.name]
    before = stored_rows(recorded)

    with pytest.raises(DBAPIError) as raw:
        with recorded.engine.begin() as connection:
            guard.attempt(connection, recorded)
    assert says in str(raw.value.orig)

    with pytest.raises(errors.LedgerError) as refused:
        with write_transaction(recorded.engine) as connection:
            guard.attempt(connection, recorded)
    assert type(refused.value) is guard.error, repr(refused.value)
    assert says in refused.value.message

    assert stored_rows(recorded) == before
    verification = verify_chain(recorded.engine, recorded.village.code)
    assert verification.ok, str(verification.problem)
    assert verification.entries_checked == recorded.next_seq


EMPTYING = {
    "postgresql": ["TRUNCATE postings", "TRUNCATE entries CASCADE"],
    # SQLite has no TRUNCATE: an unqualified DELETE is its truncate, unless triggers forbid it.
    "sqlite": ["DELETE FROM postings", "DELETE FROM entries"],
}


def test_emptying_the_chain_tables_is_refused(fresh_engine):
    """In a database of its own: were the guard missing, every programme would be wiped."""
    recorded = record_a_chain(fresh_engine, make_village(fresh_engine))
    before = stored_rows(recorded)

    for statement in EMPTYING[fresh_engine.dialect.name]:
        with pytest.raises(DBAPIError) as raw:
            with fresh_engine.begin() as connection:
                connection.exec_driver_sql(statement)
        assert "append_only:" in str(raw.value.orig), statement
        with pytest.raises(errors.AppendOnlyViolation) as refused:
            with write_transaction(fresh_engine) as connection:
                connection.exec_driver_sql(statement)
        assert refused.value.message.startswith("append_only:"), statement

    assert stored_rows(recorded) == before
    assert verify_chain(fresh_engine, recorded.village.code).ok
