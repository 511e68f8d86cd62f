"""Tampering by someone with database access, and verification naming the first bad entry.

Each test builds a chain of twenty entries in a database of its own, drops
the append-only and double-entry triggers as such a person could, edits the
tables with raw SQL, and checks that `verify_chain`, which was content just
before, now reports the first problem at the exact entry (or head, or
balance) and field where it must appear. What a full rewrite of every later
hash can get past is a signed checkpoint's business, not this module's.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import pytest
from sqlalchemy import select, text
from sqlalchemy.engine import Connection, Engine

from ledger.accounts import ISSUANCE, PENALTY
from ledger.chain import Draft, Entry, Posting, append, append_batch, get_entry, reverse
from ledger.entry_format import entry_hash
from ledger.models import Account
from ledger.programmes import get_programme
from ledger.verify import verify_chain
from tests.conftest import Village, make_village

core_migration = importlib.import_module("ledger.migrations.versions.0001_ledger_core")

WHEN = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
ENTRY_COUNT = 20
TARGET_SEQ = 9
"""An award in the middle of the chain, with a key, evidence and metadata to tamper with."""
LAST_SEQ = ENTRY_COUNT - 1
REVERSAL_SEQ = 6
"""The reversal of entry 3."""
OUT_OF_THE_WAY_SEQ = 1_000_000
"""Where an entry waits while two swap places (seq may not be negative)."""


def scored(kind: str, account: str, points: int, line: int) -> Draft:
    legs = (
        [Posting(account, points), Posting(ISSUANCE, -points)]
        if kind == "award"
        else [Posting(account, -points), Posting(PENALTY, points)]
    )
    return Draft(
        kind,
        legs,
        "organiser:test",
        WHEN,
        evidence="sha256:" + f"{line:02d}" * 32,
        memo=f"sign-in sheet line {line}",
        metadata={"sheet": "2026-11-20", "line": line},
        idempotency_key=f"sheet-1-line-{line}",
    )


def build_chain(engine: Engine) -> Village:
    """Twenty entries: awards, deductions, a transfer, an admin entry and a reversal."""
    village = make_village(engine)
    member = village.account
    append_batch(engine, village.code, [
        scored("award", member(0), 10, 0),
        scored("award", member(1), 20, 1),
        scored("deduction", member(0), 3, 2),
        scored("award", member(2), 7, 3),
        Draft("voucher_issue", [Posting(member(1), -5), Posting(member(3), 5)], "member:m1",
              WHEN, memo="voucher for rice", idempotency_key="voucher-4"),
    ])
    append(engine, village.code, kind="admin", postings=[], actor="admin:root",
           memo="rule 会议我能到 v2 in force", metadata={"rule": "meeting", "version": 2})
    reverse(engine, village.code, 3, actor="organiser:test", memo="entered by mistake",
            idempotency_key="reverse-3")
    append_batch(engine, village.code, [
        scored("deduction" if line % 4 == 3 else "award", member(line % 4), line, line)
        for line in range(REVERSAL_SEQ + 1, ENTRY_COUNT)
    ])
    return village


@dataclass(frozen=True)
class Chain:
    """What a tamper needs to know of the chain it edits."""

    programme_id: int
    account_ids: dict[str, int]
    entries: dict[int, Entry]

    def run(self, connection: Connection, statement: str, **values) -> None:
        """Execute raw SQL with `:programme` bound; it must touch at least one row."""
        result = connection.execute(text(statement), {"programme": self.programme_id, **values})
        assert result.rowcount >= 1, statement


def load_chain(engine: Engine, village: Village) -> Chain:
    programme = get_programme(engine, village.code)
    with engine.connect() as connection:
        account_ids = dict(
            connection.execute(
                select(Account.code, Account.id).where(Account.programme_id == programme.id)
            ).all()
        )
    entries = {seq: get_entry(engine, village.code, seq) for seq in (REVERSAL_SEQ, TARGET_SEQ,
                                                                     LAST_SEQ)}
    assert entries[TARGET_SEQ].kind == "award" and entries[LAST_SEQ].kind == "deduction"
    assert entries[REVERSAL_SEQ].reverses == 3
    return Chain(programme.id, account_ids, entries)


def drop_guards(engine: Engine) -> None:
    with engine.begin() as connection:
        for statement in core_migration.DROP_GUARDS[engine.dialect.name]:
            connection.exec_driver_sql(statement)


def rehashed(entry: Entry, **changes) -> tuple[Entry, bytes]:
    """`entry` with `changes`, and the hash a careful forger would store for it."""
    forged = replace(entry, **changes)
    return forged, entry_hash(forged.canonical_bytes())


# -- the tampers ---------------------------------------------------------------------

ENTRY = "WHERE programme_id = :programme AND seq = :seq"
POSTING = "WHERE programme_id = :programme AND entry_seq = :seq"


def raise_an_amount_and_its_balancing_posting(connection: Connection, chain: Chain) -> None:
    chain.run(connection, f"UPDATE postings SET amount_points = amount_points + 1 {POSTING} "
              "AND position = 0", seq=TARGET_SEQ)
    chain.run(connection, f"UPDATE postings SET amount_points = amount_points - 1 {POSTING} "
              "AND position = 1", seq=TARGET_SEQ)


def raise_one_amount(connection: Connection, chain: Chain) -> None:
    chain.run(connection, f"UPDATE postings SET amount_points = amount_points + 1 {POSTING} "
              "AND position = 0", seq=TARGET_SEQ)


def add_a_posting(connection: Connection, chain: Chain) -> None:
    chain.run(connection, "INSERT INTO postings (programme_id, entry_seq, position, account_id, "
              "amount_points) VALUES (:programme, :seq, 2, :account, 1)", seq=TARGET_SEQ,
              account=chain.account_ids["member:m3"])


def change_column(column: str, value) -> Callable[[Connection, Chain], None]:
    def tamper(connection: Connection, chain: Chain) -> None:
        chain.run(connection, f"UPDATE entries SET {column} = :value {ENTRY}", value=value,
                  seq=TARGET_SEQ)

    tamper.__name__ = f"change_{column}"
    return tamper


def point_a_reversal_at_another_entry(connection: Connection, chain: Chain) -> None:
    chain.run(connection, f"UPDATE entries SET reverses_seq = 2 {ENTRY}", seq=REVERSAL_SEQ)


def point_a_reversal_at_a_later_entry(connection: Connection, chain: Chain) -> None:
    chain.run(connection, f"UPDATE entries SET reverses_seq = :later {ENTRY}",
              later=TARGET_SEQ, seq=REVERSAL_SEQ)


def make_an_award_claim_to_reverse(connection: Connection, chain: Chain) -> None:
    chain.run(connection, f"UPDATE entries SET reverses_seq = 0 {ENTRY}", seq=TARGET_SEQ)


def replace_the_stored_hash(connection: Connection, chain: Chain) -> None:
    chain.run(connection, f"UPDATE entries SET hash = :hash {ENTRY}", hash=bytes(32),
              seq=TARGET_SEQ)


def rewrite_an_entry_and_its_hash(connection: Connection, chain: Chain) -> None:
    forged, forged_hash = rehashed(chain.entries[TARGET_SEQ], memo="sign-in sheet line 99")
    chain.run(connection, f"UPDATE entries SET memo = :memo, hash = :hash {ENTRY}",
              memo=forged.memo, hash=forged_hash, seq=TARGET_SEQ)


def rewrite_the_last_entry_and_its_hash(connection: Connection, chain: Chain) -> None:
    forged, forged_hash = rehashed(chain.entries[LAST_SEQ], memo="sign-in sheet line 99")
    chain.run(connection, f"UPDATE entries SET memo = :memo, hash = :hash {ENTRY}",
              memo=forged.memo, hash=forged_hash, seq=LAST_SEQ)


def delete_an_entry_in_the_middle(connection: Connection, chain: Chain) -> None:
    chain.run(connection, f"DELETE FROM postings {POSTING}", seq=TARGET_SEQ)
    chain.run(connection, f"DELETE FROM entries {ENTRY}", seq=TARGET_SEQ)


def delete_the_last_entry(connection: Connection, chain: Chain) -> None:
    chain.run(connection, f"DELETE FROM postings {POSTING}", seq=LAST_SEQ)
    chain.run(connection, f"DELETE FROM entries {ENTRY}", seq=LAST_SEQ)


def swap_two_entries(connection: Connection, chain: Chain) -> None:
    """Entries 9 and 10 trade places, postings and all (the foreign key is deferred)."""
    for source, target in ((TARGET_SEQ, OUT_OF_THE_WAY_SEQ), (TARGET_SEQ + 1, TARGET_SEQ),
                           (OUT_OF_THE_WAY_SEQ, TARGET_SEQ + 1)):
        chain.run(connection, f"UPDATE entries SET seq = :target {ENTRY}", seq=source,
                  target=target)
        chain.run(connection, f"UPDATE postings SET entry_seq = :target {POSTING}", seq=source,
                  target=target)


def change_a_stored_balance(connection: Connection, chain: Chain) -> None:
    chain.run(connection, "UPDATE balances SET balance_points = balance_points + 1 "
              "WHERE account_id = :account", account=chain.account_ids["member:m0"])


def change_a_stored_score(connection: Connection, chain: Chain) -> None:
    chain.run(connection, "UPDATE balances SET score_points = score_points + 1 "
              "WHERE account_id = :account", account=chain.account_ids["member:m1"])


@dataclass(frozen=True)
class Tamper:
    edit: Callable[[Connection, Chain], None]
    seq: int | None
    """The first bad entry verification must name; None for the head or a balance."""
    field: str
    found: str | None = None
    """What verification must say it found, where that is known in advance."""


TAMPERS = [
    Tamper(raise_an_amount_and_its_balancing_posting, TARGET_SEQ, "hash"),
    Tamper(raise_one_amount, TARGET_SEQ, "postings", "a sum of 1"),
    Tamper(add_a_posting, TARGET_SEQ, "postings", "a sum of 1"),
    Tamper(change_column("memo", "sign-in sheet line 99"), TARGET_SEQ, "hash"),
    Tamper(change_column("occurred_at", "2026-11-19T09:30:00.000000Z"), TARGET_SEQ, "hash"),
    Tamper(change_column("recorded_at", "2026-11-19T09:30:00.000000Z"), TARGET_SEQ, "hash"),
    Tamper(change_column("actor", "organiser:someone-else"), TARGET_SEQ, "hash"),
    Tamper(change_column("evidence", "sha256:" + "ff" * 32), TARGET_SEQ, "hash"),
    Tamper(change_column("metadata_json", '{"line":99,"sheet":"2026-11-20"}'), TARGET_SEQ,
           "hash"),
    Tamper(change_column("idempotency_key", "sheet-1-line-99"), TARGET_SEQ, "hash"),
    Tamper(change_column("kind", "deduction"), TARGET_SEQ, "hash"),
    Tamper(point_a_reversal_at_another_entry, REVERSAL_SEQ, "postings", "other postings"),
    Tamper(point_a_reversal_at_a_later_entry, REVERSAL_SEQ, "reverses", str(TARGET_SEQ)),
    Tamper(make_an_award_claim_to_reverse, TARGET_SEQ, "reverses", "kind award reversing 0"),
    Tamper(replace_the_stored_hash, TARGET_SEQ, "hash", bytes(32).hex()),
    Tamper(rewrite_the_last_entry_and_its_hash, None, "head.head_hash"),
    Tamper(delete_an_entry_in_the_middle, TARGET_SEQ, "seq", "entry 10 (a gap or reorder)"),
    Tamper(delete_the_last_entry, None, "head.size", str(ENTRY_COUNT)),
    Tamper(swap_two_entries, TARGET_SEQ, "prev"),
    Tamper(change_a_stored_balance, None, "balance of member:m0"),
    Tamper(change_a_stored_score, None, "score of member:m1"),
]


@pytest.mark.parametrize("tamper", TAMPERS, ids=lambda tamper: tamper.edit.__name__)
def test_verification_names_the_first_tampered_place(fresh_engine, tamper):
    village = build_chain(fresh_engine)
    chain = load_chain(fresh_engine, village)
    drop_guards(fresh_engine)
    untouched = verify_chain(fresh_engine, village.code)
    assert untouched.ok, str(untouched.problem)
    assert untouched.entries_checked == ENTRY_COUNT

    with fresh_engine.begin() as connection:
        tamper.edit(connection, chain)

    problem = verify_chain(fresh_engine, village.code).problem
    assert problem is not None
    assert (problem.seq, problem.field) == (tamper.seq, tamper.field), str(problem)
    if tamper.found is not None:
        assert problem.found == tamper.found, str(problem)


def test_a_rewritten_entry_names_its_forged_hash_at_the_next_link(fresh_engine):
    """The forger's hash is self-consistent; the next entry's stored `prev` gives it away."""
    village = build_chain(fresh_engine)
    chain = load_chain(fresh_engine, village)
    original = chain.entries[TARGET_SEQ]
    assert entry_hash(original.canonical_bytes()) == original.hash
    drop_guards(fresh_engine)
    assert verify_chain(fresh_engine, village.code).ok
    with fresh_engine.begin() as connection:
        rewrite_an_entry_and_its_hash(connection, chain)

    problem = verify_chain(fresh_engine, village.code).problem
    _, forged_hash = rehashed(original, memo="sign-in sheet line 99")
    assert (problem.seq, problem.field) == (TARGET_SEQ + 1, "prev")
    assert (problem.expected, problem.found) == (forged_hash.hex(), original.hash.hex())
