"""Appends from many OS processes at once, on both databases.

What one chain promises under concurrency, proven with real OS processes:
`seq` runs 0, 1, 2, … with no gap and no duplicate, every entry links to the
one before (no fork), cached balances lose no update, and an idempotency key
posts at most once however many clients race with it. The workers are
spawned from a fresh interpreter (a pool shared by this module's tests) and
every task builds its own engine from the database URL, so no engine,
connection or lock comes from the test process. A barrier releases them
together.

How far a chain lock reaches differs by backend, by design. On PostgreSQL it
is one row (`chain_heads … FOR UPDATE`), so programmes never wait on each
other. On SQLite one database file has one writer: `BEGIN IMMEDIATE` takes a
database-wide write lock, so every append waits for any open write
transaction, whatever its programme; what it still guarantees is that each
chain stays gapless. The tests assert each backend's real behaviour.

These tests commit for real, each in programmes of its own.
"""

from __future__ import annotations

import multiprocessing
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.engine import Connection, Engine

from ledger import errors
from ledger.accounts import ISSUANCE
from ledger.chain import Posting, append, head
from ledger.models import ChainHead
from ledger.models import Entry as EntryRow
from ledger.programmes import get_programme
from ledger.statements import balance_of
from ledger.storage import create_engine, write_transaction
from ledger.verify import verify_chain
from tests.conftest import make_village

pytestmark = pytest.mark.slow

SPAWN = multiprocessing.get_context("spawn")
"""Children start from a fresh interpreter: no engine, socket or lock is inherited."""
WORKER_PROCESSES = 8
APPENDS_PER_WORKER = 250
WHEN = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
START_TIMEOUT_SECONDS = 60
"""How long a worker waits at the barrier for the others to have started."""
WORKERS_TIMEOUT_SECONDS = 180
"""Upper bound for a whole group of workers; a hang fails instead of blocking CI."""
ROUNDS = 5
"""Races per idempotency test, one key each."""
RACERS_AT_ONCE = 4
"""Appends of the eight that must be in flight together for a round to count as a race."""
TWO_PROGRAMMES_APPENDS_PER_WORKER = 50
UNBLOCKED_APPEND_SECONDS = 5
BLOCKED_OBSERVATION_SECONDS = 1.0


# -- workers: module level, so that spawned children can import them -------------------------


def append_awards(
    url: str, programme: str, accounts: list[str], appends: int, seed: int, barrier
) -> tuple[dict[str, int], list[tuple[int, bytes]]]:
    """Append `appends` awards of random points to random accounts, one commit each.

    Returns the points posted to each account and the (seq, hash) of every
    entry this worker appended, for the test to check against the chain.
    """
    engine = create_engine(url)
    try:
        head(engine, programme)  # connect and import everything before the start
        randomness = random.Random(seed)
        posted_points: dict[str, int] = {}
        appended: list[tuple[int, bytes]] = []
        barrier.wait(timeout=START_TIMEOUT_SECONDS)
        for _ in range(appends):
            account = randomness.choice(accounts)
            points = randomness.randint(1, 20)
            result = append(
                engine,
                programme,
                kind="award",
                postings=[Posting(account, points), Posting(ISSUANCE, -points)],
                actor=f"organiser:worker-{seed}",
                memo="concurrent award",
            )
            posted_points[account] = posted_points.get(account, 0) + points
            appended.append((result.entry.seq, result.entry.hash))
        return posted_points, appended
    finally:
        engine.dispose()


@dataclass(frozen=True)
class KeyedOutcome:
    """What one worker got when it posted under a shared key, and when it was in flight.

    Times are `time.monotonic()`, one clock for every process on the machine.
    """

    started_seconds: float
    finished_seconds: float
    seq: int | None = None
    hash: bytes | None = None
    created: bool | None = None
    refused_code: str | None = None
    refused_details: dict[str, Any] | None = None


def post_under_shared_keys(
    url: str, programme: str, account: str, points: int, keys: list[str], barrier
) -> list[KeyedOutcome]:
    """For each key in turn, post an award under it the moment every worker is ready."""
    engine = create_engine(url)
    try:
        head(engine, programme)
        outcomes: list[KeyedOutcome] = []
        for key in keys:
            barrier.wait(timeout=START_TIMEOUT_SECONDS)
            started_seconds = time.monotonic()
            try:
                result = append(
                    engine,
                    programme,
                    kind="award",
                    postings=[Posting(account, points), Posting(ISSUANCE, -points)],
                    actor="organiser:field-app",
                    occurred_at=WHEN,
                    memo="swept the square",
                    idempotency_key=key,
                )
            except errors.LedgerError as error:
                outcomes.append(KeyedOutcome(started_seconds, time.monotonic(),
                                             refused_code=error.code,
                                             refused_details=error.details))
            else:
                outcomes.append(KeyedOutcome(started_seconds, time.monotonic(),
                                             seq=result.entry.seq, hash=result.entry.hash,
                                             created=result.created))
        return outcomes
    finally:
        engine.dispose()


def append_one_award(url: str, programme: str, account: str, starting) -> tuple[int, bytes]:
    """Append one award, setting `starting` just before the append begins."""
    engine = create_engine(url)
    try:
        head(engine, programme)
        starting.set()
        entry = append(
            engine,
            programme,
            kind="award",
            postings=[Posting(account, 3), Posting(ISSUANCE, -3)],
            actor="organiser:other-desk",
            memo="while another chain is locked",
        ).entry
        return entry.seq, entry.hash
    finally:
        engine.dispose()


# -- running workers from the test process ----------------------------------------------------


class Processes:
    """The pool and manager: `run` starts tasks at once, `barrier` lines them up."""

    def __init__(self, pool, manager) -> None:
        self.pool = pool
        self.manager = manager

    def barrier(self, parties: int):
        return self.manager.Barrier(parties)

    def event(self):
        return self.manager.Event()

    def start(self, work: Callable[..., Any], *arguments: Any):
        """Run `work(*arguments)` in a free process; returns an `AsyncResult`."""
        return self.pool.apply_async(work, arguments)

    def run(self, work: Callable[..., Any], argument_lists: list[tuple[Any, ...]]) -> list[Any]:
        """Run `work` once per argument list, all at once; their results, in order.

        At most `WORKER_PROCESSES` tasks: each must have a process of its own,
        since they wait for one another at a barrier.
        """
        assert len(argument_lists) <= WORKER_PROCESSES
        running = [self.start(work, *arguments) for arguments in argument_lists]
        deadline = time.monotonic() + WORKERS_TIMEOUT_SECONDS
        return [task.get(timeout=max(deadline - time.monotonic(), 0.1)) for task in running]


@pytest.fixture(scope="module")
def processes() -> Iterator[Processes]:
    """Eight spawned processes shared by this module's tests, and a manager for barriers.

    Spawning costs each process its imports (about 0.7 s of CPU); paying that
    once per module instead of once per test keeps the file fast. Every task
    still builds an engine of its own from the URL and disposes of it.
    """
    with SPAWN.Manager() as manager, SPAWN.Pool(WORKER_PROCESSES) as pool:
        yield Processes(pool, manager)


# -- checks ------------------------------------------------------------------------------------


def assert_one_gapless_chain(engine: Engine, programme: str, size: int) -> list[Any]:
    """Seq is exactly 0..size-1, every prev is the hash before, and the verifier agrees."""
    programme_id = get_programme(engine, programme).id
    with engine.connect() as connection:
        rows = connection.execute(
            select(EntryRow.seq, EntryRow.prev_hash, EntryRow.hash)
            .where(EntryRow.programme_id == programme_id)
            .order_by(EntryRow.seq)
        ).all()
    assert [row.seq for row in rows] == list(range(size))
    assert rows[0].prev_hash is None
    forks = [
        current.seq
        for previous, current in pairwise(rows)
        if current.prev_hash != previous.hash
    ]
    assert forks == [], f"entries whose prev is not the hash of the entry before: {forks}"
    verification = verify_chain(engine, programme)
    assert verification.ok, str(verification.problem)
    assert verification.entries_checked == size
    tip = head(engine, programme)
    assert (tip.size, tip.head_hash) == (size, rows[-1].hash)
    return rows


def most_in_flight_at_once(outcomes: list[KeyedOutcome]) -> int:
    """The largest number of the workers' appends that were running at one moment."""
    return max(
        sum(other.started_seconds <= outcome.started_seconds < other.finished_seconds
            for other in outcomes)
        for outcome in outcomes
    )


def count_entries_with_key(engine: Engine, programme: str, key: str) -> int:
    programme_id = get_programme(engine, programme).id
    with engine.connect() as connection:
        return connection.execute(
            select(func.count()).where(
                EntryRow.programme_id == programme_id, EntryRow.idempotency_key == key
            )
        ).scalar_one()


@contextmanager
def holding_chain_lock(engine: Engine, programme: str) -> Iterator[Connection]:
    """Hold `programme`'s chain lock as an append does, in an open transaction.

    The lock is taken by the same means as `ledger.chain`: a write transaction
    (`BEGIN IMMEDIATE` on SQLite) that selects the head row `FOR UPDATE`.
    Leaving the block commits, which writes nothing and releases the lock.
    """
    programme_id = get_programme(engine, programme).id
    with write_transaction(engine) as connection:
        connection.execute(
            select(ChainHead.size).where(ChainHead.programme_id == programme_id).with_for_update()
        ).one()
        yield connection


def wait_until_blocked_by(engine: Engine, holder: Connection, timeout_seconds: float) -> None:
    """On PostgreSQL, wait until some backend is waiting for a lock `holder` holds."""
    holder_pid = holder.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
    deadline = time.monotonic() + timeout_seconds
    with engine.connect() as observer:
        while time.monotonic() < deadline:
            waiting = observer.execute(
                text("SELECT count(*) FROM pg_stat_activity"
                     " WHERE CAST(:holder AS integer) = ANY(pg_blocking_pids(pid))"),
                {"holder": holder_pid},
            ).scalar_one()
            observer.rollback()
            if waiting:
                return
            time.sleep(0.05)
    pytest.fail(f"no backend waited for the lock held by backend {holder_pid}")


# -- tests -------------------------------------------------------------------------------------


def test_eight_processes_appending_at_once_make_one_gapless_chain(
    engine, database_url, processes
):
    village = make_village(engine, members=8)
    accounts = [village.account(index) for index in range(8)]
    barrier = processes.barrier(WORKER_PROCESSES)

    reports = processes.run(append_awards, [
        (database_url, village.code, accounts, APPENDS_PER_WORKER, seed, barrier)
        for seed in range(WORKER_PROCESSES)
    ])

    size = WORKER_PROCESSES * APPENDS_PER_WORKER
    rows = assert_one_gapless_chain(engine, village.code, size)
    stored_hashes = {row.seq: row.hash for row in rows}
    told = [appended for _, worker_appended in reports for appended in worker_appended]
    assert sorted(seq for seq, _ in told) == list(range(size)), "two appends were told one seq"
    assert all(stored_hashes[seq] == entry_hash for seq, entry_hash in told)
    posted_points: Counter[str] = Counter()
    for worker_points, _ in reports:
        posted_points.update(worker_points)
    for account in accounts:
        assert balance_of(engine, village.code, account).balance_points == posted_points[account]
    assert balance_of(engine, village.code, ISSUANCE).balance_points == -posted_points.total()
    # The appends really raced: some worker's entries are not one contiguous run.
    runs = [sorted(seq for seq, _ in worker_appended) for _, worker_appended in reports]
    assert any(run[-1] - run[0] + 1 > len(run) for run in runs)


def test_one_key_raced_by_eight_processes_posts_once(engine, database_url, processes):
    village = make_village(engine)
    keys = [f"sweep-{round_number}" for round_number in range(ROUNDS)]
    barrier = processes.barrier(WORKER_PROCESSES)

    reports = processes.run(post_under_shared_keys, [
        (database_url, village.code, village.account(0), 5, keys, barrier)
        for _ in range(WORKER_PROCESSES)
    ])

    for round_number, key in enumerate(keys):
        outcomes = [report[round_number] for report in reports]
        assert all(outcome.refused_code is None for outcome in outcomes), outcomes
        assert len({(outcome.seq, outcome.hash) for outcome in outcomes}) == 1, outcomes
        assert sum(outcome.created for outcome in outcomes) == 1, outcomes
        assert count_entries_with_key(engine, village.code, key) == 1
        assert most_in_flight_at_once(outcomes) >= RACERS_AT_ONCE, "the appends did not race"
    assert_one_gapless_chain(engine, village.code, len(keys))
    assert balance_of(engine, village.code, village.account(0)).balance_points == 5 * len(keys)


def test_one_key_raced_with_two_contents_posts_once_and_refuses_the_other(
    engine, database_url, processes
):
    village = make_village(engine)
    keys = [f"meeting-{round_number}" for round_number in range(ROUNDS)]
    barrier = processes.barrier(WORKER_PROCESSES)
    points_of_worker = [5 if index % 2 == 0 else 7 for index in range(WORKER_PROCESSES)]

    reports = processes.run(post_under_shared_keys, [
        (database_url, village.code, village.account(0), points, keys, barrier)
        for points in points_of_worker
    ])

    winning_points = []
    for round_number, key in enumerate(keys):
        assert count_entries_with_key(engine, village.code, key) == 1
        outcomes = [report[round_number] for report in reports]
        assert most_in_flight_at_once(outcomes) >= RACERS_AT_ONCE, "the appends did not race"
        appended = [outcome for outcome in outcomes if outcome.refused_code is None]
        assert len({(outcome.seq, outcome.hash) for outcome in appended}) == 1, outcomes
        assert sum(outcome.created for outcome in appended) == 1, outcomes
        winner = {points for points, outcome in zip(points_of_worker, outcomes, strict=True)
                  if outcome.refused_code is None}
        assert len(winner) == 1, outcomes
        for points, outcome in zip(points_of_worker, outcomes, strict=True):
            if points in winner:
                assert outcome.refused_code is None, outcome
            else:
                assert outcome.refused_code == "idempotency_conflict", outcome
                assert outcome.refused_details == {"idempotency_key": key,
                                                   "seq": appended[0].seq}
        winning_points.extend(winner)
    assert_one_gapless_chain(engine, village.code, len(keys))
    member = balance_of(engine, village.code, village.account(0))
    assert member.balance_points == sum(winning_points)


def test_appends_to_two_programmes_at_once_keep_both_chains_gapless(
    engine, database_url, processes
):
    first = make_village(engine)
    second = make_village(engine)
    barrier = processes.barrier(WORKER_PROCESSES)

    processes.run(append_awards, [
        (database_url, village.code, [village.account(index) for index in range(4)],
         TWO_PROGRAMMES_APPENDS_PER_WORKER, seed, barrier)
        for seed, village in enumerate([first, second] * (WORKER_PROCESSES // 2))
    ])

    size = WORKER_PROCESSES // 2 * TWO_PROGRAMMES_APPENDS_PER_WORKER
    assert_one_gapless_chain(engine, first.code, size)
    assert_one_gapless_chain(engine, second.code, size)


def test_a_held_chain_lock_blocks_what_its_backend_says_it_blocks(
    backend, engine, database_url, processes
):
    """PostgreSQL locks one chain; SQLite, by design, the whole database file.

    On PostgreSQL the chain lock is the programme's head row, so while
    programme A's lock is held an append to B completes at once, and an append
    to A waits until A's lock is released.

    On SQLite one database file has one writer: the chain lock is
    `BEGIN IMMEDIATE`, a database-wide write lock (the price of an embedded
    database; PostgreSQL is the answer when programmes must not wait on each
    other). So an append to B waits while a write transaction for A is open,
    and completes once it ends; chains stay gapless either way (see the test
    above).
    """
    locked = make_village(engine)
    other = make_village(engine)
    starting = processes.event()

    with holding_chain_lock(engine, locked.code) as holder:
        if backend == "postgresql":
            unhindered = processes.start(append_one_award, database_url, other.code,
                                         other.account(0), starting)
            assert starting.wait(timeout=START_TIMEOUT_SECONDS)
            seq, _ = unhindered.get(timeout=UNBLOCKED_APPEND_SECONDS)
            assert seq == 0

            starting.clear()
            waiting_for = locked
            blocked = processes.start(append_one_award, database_url, locked.code,
                                      locked.account(0), starting)
            assert starting.wait(timeout=START_TIMEOUT_SECONDS)
            wait_until_blocked_by(engine, holder, timeout_seconds=10)
        else:
            # One writer per SQLite file: the other programme's append must wait.
            waiting_for = other
            blocked = processes.start(append_one_award, database_url, other.code,
                                      other.account(0), starting)
            assert starting.wait(timeout=START_TIMEOUT_SECONDS)
        time.sleep(BLOCKED_OBSERVATION_SECONDS)
        assert not blocked.ready(), "the append did not wait for the held lock"

    seq, entry_hash = blocked.get(timeout=UNBLOCKED_APPEND_SECONDS)
    assert (seq, head(engine, waiting_for.code).head_hash) == (0, entry_hash)
