"""Double spending and the last units of stock, raced by real OS processes on both databases.

Fifty processes redeem the same voucher at the same moment, a hundred times
over: each time exactly one succeeds and the other 49 are told
`already_redeemed`, naming the winner's entry. Twenty processes issue
vouchers for the last five units of an item: exactly five get one. The
workers are spawned from a fresh interpreter once (a pool reused by every
round and both backends: spawning fifty interpreters is the expensive
part), every task builds its own engine from the database URL, and a
barrier releases each round's racers together. The times each racer was in
flight are recorded, and each round must have really overlapped.

These tests commit for real, each in a programme of its own.
"""

from __future__ import annotations

import multiprocessing
import statistics
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import func, select

from ledger import errors
from ledger.chain import head
from ledger.models import Entry as EntryRow
from ledger.programmes import get_programme
from ledger.storage import create_engine
from ledger.verify import verify_chain
from redemption import catalog
from redemption.redemptions import redeem
from redemption.vouchers import HELD, issue_voucher, list_vouchers, voucher_token
from tests.redemption.conftest import ORGANISER, make_market

pytestmark = pytest.mark.slow

SPAWN = multiprocessing.get_context("spawn")
"""Children start from a fresh interpreter: no engine, socket or lock is inherited."""
RACERS = 50
VOUCHERS = 100
VOUCHER_POINTS = 10
STOCK_RACERS = 20
STOCK_LEFT = 5
STOCK_ROUNDS = 3
START_TIMEOUT_SECONDS = 120
"""How long a racer waits at the barrier for the others (the first round waits for the
pool's fifty interpreters to finish importing)."""
WORKERS_TIMEOUT_SECONDS = 240
"""Upper bound for a whole race; a hang fails instead of blocking CI."""
RACING_AT_ONCE = 5
"""Racers that must have been in flight together for a round to count as a race."""


@dataclass(frozen=True)
class Outcome:
    """What one racer got, and when it was in flight (`time.monotonic()`, one clock for
    every process on the machine)."""

    started_seconds: float
    finished_seconds: float
    seq: int | None = None
    created: bool | None = None
    refused_code: str | None = None
    refused_details: dict[str, Any] | None = None


# -- workers: module level, so that spawned children can import them ---------------------------


def redeem_each_when_released(url: str, programme: str, presented: list[str], device: int,
                              barrier) -> list[Outcome]:
    """For each voucher in turn, redeem it at "rice" the moment every racer is ready."""
    engine = create_engine(url)
    try:
        head(engine, programme)  # connect before the first round
        outcomes = []
        for text in presented:
            barrier.wait(timeout=START_TIMEOUT_SECONDS)
            started = time.monotonic()
            try:
                redemption = redeem(engine, programme, "rice", text,
                                    actor=f"shop:rice:device-{device}")
            except errors.LedgerError as refusal:
                outcomes.append(Outcome(started, time.monotonic(), refused_code=refusal.code,
                                        refused_details=refusal.details))
            else:
                outcomes.append(Outcome(started, time.monotonic(), seq=redemption.entry_seq,
                                        created=redemption.created))
        return outcomes
    finally:
        engine.dispose()


def issue_when_released(url: str, programme: str, member: str, item: str, rounds: int,
                        barrier) -> list[Outcome]:
    """Each round, issue a voucher for `item` the moment every racer is ready."""
    engine = create_engine(url)
    try:
        head(engine, programme)
        outcomes = []
        for round_number in range(rounds):
            barrier.wait(timeout=START_TIMEOUT_SECONDS)  # released: race
            started = time.monotonic()
            try:
                voucher = issue_voucher(engine, programme, member, actor=f"member:{member}",
                                        item=item)
            except errors.LedgerError as refusal:
                outcomes.append(Outcome(started, time.monotonic(), refused_code=refusal.code))
            else:
                outcomes.append(Outcome(started, time.monotonic(), seq=voucher.issue_seq,
                                        created=True))
            barrier.wait(timeout=START_TIMEOUT_SECONDS)  # the test restocks
            barrier.wait(timeout=START_TIMEOUT_SECONDS)
            del round_number
        return outcomes
    finally:
        engine.dispose()


def wait_ready(barrier) -> None:
    """Return once every process of the pool has started and imported this module."""
    barrier.wait(timeout=START_TIMEOUT_SECONDS)


# -- the pool ---------------------------------------------------------------------------------


class Processes:
    def __init__(self, pool, manager) -> None:
        self.pool = pool
        self.manager = manager

    def barrier(self, parties: int):
        return self.manager.Barrier(parties)

    def start(self, work, argument_lists: list[tuple[Any, ...]]) -> list[Any]:
        """Start `work` once per argument list; each must get a process of its own, since
        they wait for one another at a barrier."""
        assert len(argument_lists) <= RACERS
        return [self.pool.apply_async(work, arguments) for arguments in argument_lists]

    @staticmethod
    def results(running: list[Any]) -> list[Any]:
        deadline = time.monotonic() + WORKERS_TIMEOUT_SECONDS
        return [task.get(timeout=max(deadline - time.monotonic(), 0.1)) for task in running]


@pytest.fixture(scope="session")
def processes() -> Iterator[Processes]:
    """Fifty spawned processes shared by this module's tests, on both backends.

    Spawning costs each process its imports (about a second of CPU, so some
    20 s for fifty on two cores); paying it once, before the first test,
    keeps each test's own time about its races. Session scope, because the
    suite runs every SQLite test before every PostgreSQL one: a module-scoped
    pool would be spawned twice. Between tests the processes sit idle and
    hold no database connection.
    """
    with SPAWN.Manager() as manager, SPAWN.Pool(RACERS) as pool:
        processes = Processes(pool, manager)
        ready = processes.barrier(RACERS)
        processes.results(processes.start(wait_ready, [(ready,)] * RACERS))
        yield processes


def most_in_flight_at_once(outcomes: list[Outcome]) -> int:
    return max(
        sum(other.started_seconds <= outcome.started_seconds < other.finished_seconds
            for other in outcomes)
        for outcome in outcomes
    )


def count_entries(engine, programme: str, kind: str) -> int:
    programme_id = get_programme(engine, programme).id
    with engine.connect() as connection:
        return connection.execute(
            select(func.count()).where(EntryRow.programme_id == programme_id,
                                       EntryRow.kind == kind)
        ).scalar_one()


# -- tests ------------------------------------------------------------------------------------


def test_fifty_processes_redeeming_one_voucher_at_once_redeem_it_once(
    engine, database_url, processes
):
    market = make_market(engine)
    vouchers = [
        issue_voucher(engine, market.code, market.member(index % 4), actor=ORGANISER,
                      points=VOUCHER_POINTS)
        for index in range(VOUCHERS)
    ]
    # Half the rounds are scanned (the token), half typed (the short code).
    presented = [voucher_token(engine, market.code, voucher.id) if index % 2 == 0
                 else voucher.display_code for index, voucher in enumerate(vouchers)]
    barrier = processes.barrier(RACERS)
    started = time.monotonic()

    reports = processes.results(processes.start(redeem_each_when_released, [
        (database_url, market.code, presented, device, barrier) for device in range(RACERS)
    ]))

    elapsed_seconds = time.monotonic() - started
    overlaps = []
    for round_number, voucher in enumerate(vouchers):
        outcomes = [report[round_number] for report in reports]
        winners = [outcome for outcome in outcomes if outcome.refused_code is None]
        assert len(winners) == 1, (voucher.id, outcomes)
        assert winners[0].created is True
        refusals = Counter(outcome.refused_code for outcome in outcomes if outcome not in winners)
        assert refusals == {"already_redeemed": RACERS - 1}, (voucher.id, refusals)
        assert {(outcome.refused_details["seq"], outcome.refused_details["shop"],
                 outcome.refused_details["voucher"])
                for outcome in outcomes if outcome.refused_code} == {
            (winners[0].seq, "rice", voucher.id)}
        overlaps.append(most_in_flight_at_once(outcomes))
    assert min(overlaps) >= RACING_AT_ONCE, f"some rounds did not race: {overlaps}"

    verification = verify_chain(engine, market.code)
    assert verification.ok, str(verification.problem)
    assert count_entries(engine, market.code, "voucher_redeem") == VOUCHERS
    assert market.balance("shop:rice") == VOUCHERS * VOUCHER_POINTS
    assert market.balance(HELD) == 0
    assert {voucher.status for voucher in list_vouchers(engine, market.code, limit=1_000)} == {
        "redeemed"}
    print(f"\n{VOUCHERS} rounds of {RACERS} racers in {elapsed_seconds:.1f} s; racers in "
          f"flight together: median {statistics.median(overlaps)}, least {min(overlaps)}")


def test_twenty_processes_issuing_for_the_last_five_units_get_five(
    engine, database_url, processes
):
    market = make_market(engine, members=STOCK_RACERS)
    catalog.create_item(engine, market.code, "peanut-oil", "花生油 5L", kind="goods",
                        price_points=60, stock=STOCK_LEFT)
    barrier = processes.barrier(STOCK_RACERS + 1)
    running = processes.start(issue_when_released, [
        (database_url, market.code, market.member(index), "peanut-oil", STOCK_ROUNDS, barrier)
        for index in range(STOCK_RACERS)
    ])
    for round_number in range(STOCK_ROUNDS):
        barrier.wait(timeout=START_TIMEOUT_SECONDS)  # release the racers
        barrier.wait(timeout=WORKERS_TIMEOUT_SECONDS)  # all have finished the round
        assert catalog.get_item(engine, market.code, "peanut-oil").stock == 0
        if round_number < STOCK_ROUNDS - 1:
            catalog.restock(engine, market.code, "peanut-oil", STOCK_LEFT)
        barrier.wait(timeout=START_TIMEOUT_SECONDS)

    reports = processes.results(running)

    for round_number in range(STOCK_ROUNDS):
        outcomes = [report[round_number] for report in reports]
        codes = Counter(outcome.refused_code for outcome in outcomes)
        assert codes == {None: STOCK_LEFT, "out_of_stock": STOCK_RACERS - STOCK_LEFT}, codes
        assert most_in_flight_at_once(outcomes) >= RACING_AT_ONCE
    issued = STOCK_LEFT * STOCK_ROUNDS
    assert len(list_vouchers(engine, market.code, limit=1_000)) == issued
    assert count_entries(engine, market.code, "voucher_issue") == issued
    assert market.balance(HELD) == issued * 60
    verification = verify_chain(engine, market.code)
    assert verification.ok, str(verification.problem)
