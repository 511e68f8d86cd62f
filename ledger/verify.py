"""Verification of a programme's chain as stored in the database.

Trusts nothing stored that can be recomputed: every leaf hash is rebuilt from
the entry's columns, every `prev` link is checked against the *recomputed*
hash of the entry before, `seq` must run 0, 1, 2, … with no gap, every
entry's postings must sum to zero, the Merkle root of all leaves must equal
the root the head claims, and every cached balance and score must equal the
sum of its postings. The first problem is reported by `seq` and field, with
what was expected and what was found.

This catches edits made by someone with database access who does not also
recompute every later hash. One who does (a full rewrite) is caught by a
signed checkpoint taken earlier, which an auditor holds; see docs/FORMAT.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.engine import Connection, Engine

from ledger.chain import NOT_REVERSIBLE_KINDS, POSTING_FREE_KINDS, SCORE_KINDS, entry_from_row
from ledger.chain import Posting as ChainPosting
from ledger.entry_format import entry_hash
from ledger.merkle import Frontier
from ledger.models import Account, Balance, ChainHead, Entry, Posting
from ledger.programmes import get_programme
from ledger.storage import read_transaction

FETCH_ROWS = 5_000


@dataclass(frozen=True)
class Problem:
    """The first thing found wrong: at entry `seq` (None: the head or a balance)."""

    seq: int | None
    field: str
    expected: str
    found: str

    def __str__(self) -> str:
        where = f"entry {self.seq}" if self.seq is not None else "chain"
        return f"{where}: {self.field}: expected {self.expected}, found {self.found}"


@dataclass(frozen=True)
class Verification:
    programme: str
    entries_checked: int
    root: bytes
    problem: Problem | None

    @property
    def ok(self) -> bool:
        return self.problem is None


class _Found(Exception):
    def __init__(self, problem: Problem) -> None:
        self.problem = problem


def verify_chain(
    engine: Engine, programme: str, progress: Callable[[int], None] | None = None
) -> Verification:
    """Check `programme`'s whole chain; return what was checked and the first problem.

    Runs in one read snapshot and takes no lock, so appends carry on. Memory
    grows with the number of accounts, plus one byte per entry.
    `progress(entries_checked)` is called every `FETCH_ROWS` entries.
    """
    with read_transaction(engine) as connection:
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        programme_info = get_programme(connection, programme)
        checker = _ChainChecker(connection, programme_info.id, programme_info.code, progress)
        try:
            checker.run()
        except _Found as found:
            return Verification(programme, checker.checked, checker.frontier.root(), found.problem)
        return Verification(programme, checker.checked, checker.frontier.root(), None)


class _ChainChecker:
    def __init__(
        self,
        connection: Connection,
        programme_id: int,
        programme_code: str,
        progress: Callable[[int], None] | None,
    ) -> None:
        self.connection = connection
        self.programme_id = programme_id
        self.programme_code = programme_code
        self.progress = progress
        self.frontier = Frontier()
        self.checked = 0
        self.accounts = {
            account_id: (code, kind)
            for account_id, code, kind in connection.execute(
                select(Account.id, Account.code, Account.kind).where(
                    Account.programme_id == programme_id
                )
            )
        }
        self.balances = {account_id: [0, 0] for account_id in self.accounts}
        self.reversed: dict[int, int] = {}
        """Reversed seq -> the seq of its reversal; reversals are rare."""
        self.moved_score = bytearray()
        """One byte per entry checked: 1 where the entry moved members' scores."""

    def run(self) -> None:
        head = self.connection.execute(
            select(ChainHead.size, ChainHead.head_hash, ChainHead.frontier).where(
                ChainHead.programme_id == self.programme_id
            )
        ).one()
        postings = self._postings()
        pending = next(postings, None)
        prev_hash: bytes | None = None
        for row in self._entries():
            seq = self.checked
            if row.seq != seq:
                self._fail(seq, "seq", f"entry {seq}", f"entry {row.seq} (a gap or reorder)")
            if pending is not None and pending[0] < seq:
                self._fail(pending[0], "postings", "postings of a recorded entry",
                           "postings with no entry")
            legs: list[tuple[int, int]] = []
            while pending is not None and pending[0] == seq:
                legs.append((pending[1], pending[2]))
                pending = next(postings, None)
            if row.prev_hash != prev_hash:
                self._fail(seq, "prev", _hex(prev_hash), _hex(row.prev_hash))
            self._check_postings(seq, row.kind, legs)
            if row.kind == "reversal" or row.reverses_seq is not None:
                self._check_reversal(seq, row.kind, row.reverses_seq, legs)
            # seq and prev were checked above, so the stored row's equal the recomputed ones.
            legs_by_code = tuple(ChainPosting(self.accounts[account_id][0], points)
                                 for account_id, points in legs)
            leaf = entry_hash(
                entry_from_row(self.programme_code, row, legs_by_code).canonical_bytes()
            )
            if leaf != row.hash:
                self._fail(seq, "hash", f"{leaf.hex()} (recomputed from the stored fields)",
                           row.hash.hex())
            self._apply(seq, row.kind, row.reverses_seq, legs)
            self.frontier.append(leaf)
            prev_hash = leaf
            self.checked += 1
            if self.progress and self.checked % FETCH_ROWS == 0:
                self.progress(self.checked)
        if pending is not None:
            self._fail(pending[0], "postings", "postings of a recorded entry",
                       "postings with no entry")
        self._check_head(head, prev_hash)
        self._check_balances()

    def _entries(self) -> Iterator:
        return iter(
            self.connection.execution_options(yield_per=FETCH_ROWS).execute(
                select(
                    Entry.seq,
                    Entry.kind,
                    Entry.actor,
                    Entry.occurred_at,
                    Entry.recorded_at,
                    Entry.evidence,
                    Entry.memo,
                    Entry.metadata_json,
                    Entry.idempotency_key,
                    Entry.reverses_seq,
                    Entry.rule_code,
                    Entry.rule_version,
                    Entry.rule_quantity,
                    Entry.approver,
                    Entry.prev_hash,
                    Entry.hash,
                )
                .where(Entry.programme_id == self.programme_id)
                .order_by(Entry.seq)
            )
        )

    def _postings(self) -> Iterator[tuple[int, int, int]]:
        result = self.connection.execution_options(yield_per=FETCH_ROWS).execute(
            select(Posting.entry_seq, Posting.account_id, Posting.amount_points)
            .where(Posting.programme_id == self.programme_id)
            .order_by(Posting.entry_seq, Posting.position)
        )
        return (tuple(row) for row in result)

    def _check_postings(self, seq: int, kind: str, legs: list[tuple[int, int]]) -> None:
        if not legs and kind in POSTING_FREE_KINDS:
            return
        if len(legs) < 2:
            self._fail(seq, "postings", "at least two postings", f"{len(legs)}")
        total = sum(points for _, points in legs)
        if total != 0:
            self._fail(seq, "postings", "a sum of 0", f"a sum of {total}")
        for account_id, _ in legs:
            if account_id not in self.accounts:
                self._fail(seq, "postings", "accounts of this programme", f"account {account_id}")

    def _check_reversal(
        self, seq: int, kind: str, reverses: int | None, legs: list[tuple[int, int]]
    ) -> None:
        """A reversal names an earlier entry, once, and negates its postings exactly."""
        if kind != "reversal" or reverses is None:
            self._fail(seq, "reverses", "a reversal naming the entry it reverses",
                       f"kind {kind} reversing {reverses}")
        if not 0 <= reverses < seq:
            self._fail(seq, "reverses", f"an earlier entry (0..{seq - 1})", str(reverses))
        if reverses in self.reversed:
            self._fail(seq, "reverses", f"entry {reverses} reversed once",
                       f"a second reversal (the first was entry {self.reversed[reverses]})")
        self.reversed[reverses] = seq
        original = self.connection.execute(
            select(Entry.kind).where(Entry.programme_id == self.programme_id,
                                     Entry.seq == reverses)
        ).scalar_one_or_none()
        if original in NOT_REVERSIBLE_KINDS:
            self._fail(seq, "reverses", "an entry that can be reversed", f"a {original} entry")
        original_legs = self.connection.execute(
            select(Posting.account_id, Posting.amount_points)
            .where(Posting.programme_id == self.programme_id, Posting.entry_seq == reverses)
            .order_by(Posting.position)
        ).all()
        negated = [(account_id, -points) for account_id, points in original_legs]
        if legs != negated:
            self._fail(seq, "postings", f"the postings of entry {reverses}, negated",
                       "other postings")

    def _apply(
        self, seq: int, kind: str, reverses: int | None, legs: list[tuple[int, int]]
    ) -> None:
        moves_score = kind in SCORE_KINDS or (
            kind == "reversal" and reverses is not None and 0 <= reverses < seq
            and self.moved_score[reverses] == 1
        )
        self.moved_score.append(1 if kind in SCORE_KINDS else 0)
        for account_id, points in legs:
            figures = self.balances[account_id]
            figures[0] += points
            if moves_score and self.accounts[account_id][1] == "member":
                figures[1] += points

    def _check_head(self, head, last_hash: bytes | None) -> None:
        if head.size != self.checked:
            self._fail(None, "head.size", f"{self.checked} (entries found)", f"{head.size}")
        if head.head_hash != last_hash:
            self._fail(None, "head.head_hash", _hex(last_hash), _hex(head.head_hash))
        claimed = Frontier.from_bytes(head.size, head.frontier).root()
        if claimed != self.frontier.root():
            self._fail(None, "head.root", self.frontier.root().hex(), claimed.hex())

    def _check_balances(self) -> None:
        stored = {
            account_id: (balance, score)
            for account_id, balance, score in self.connection.execute(
                select(Balance.account_id, Balance.balance_points, Balance.score_points).where(
                    Balance.programme_id == self.programme_id
                )
            )
        }
        for account_id, (balance, score) in sorted(self.balances.items()):
            code = self.accounts[account_id][0]
            found_balance, found_score = stored.get(account_id, (None, None))
            if found_balance != balance:
                self._fail(None, f"balance of {code}", str(balance), str(found_balance))
            if found_score != score:
                self._fail(None, f"score of {code}", str(score), str(found_score))
        total = sum(balance for balance, _ in self.balances.values())
        if total != 0:
            self._fail(None, "sum of all balances", "0", str(total))

    @staticmethod
    def _fail(seq: int | None, field: str, expected: str, found: str) -> None:
        raise _Found(Problem(seq, field, expected, found))


def _hex(value: bytes | None) -> str:
    return value.hex() if value is not None else "null"
