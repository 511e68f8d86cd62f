"""Caps and approvals under real concurrency: OS processes released together by a barrier.

Rule checks run inside the append transaction, under the chain lock, so a
cap holds however many organisers award the same member at the same
moment, and a claim posts once however many reviewers approve it at once.
The workers are spawned processes, started once for the module (a crew);
each task builds an engine of its own from the database URL, so nothing is
inherited from the test process.

These tests commit for real, each in a programme of its own.
"""

from __future__ import annotations

import multiprocessing
import queue
import traceback
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest

from ledger import errors
from ledger.awards import AwardRequest, award
from ledger.claims import approve, get_claim
from ledger.organisation import grant_role
from ledger.programmes import get_programme
from ledger.storage import create_engine
from tests.ledger.conftest import EAST_ORGANISER, WHEN, make_town

pytestmark = pytest.mark.slow

SPAWN = multiprocessing.get_context("spawn")
WORKERS = 8
ROUNDS = 3
"""Races per test: each round is a new day (caps) or a new claim (approvals)."""
DAILY_CAP_TIMES = 3
START_TIMEOUT_SECONDS = 60
WORKERS_TIMEOUT_SECONDS = 120
CAP_DESCRIPTION = f"at most {DAILY_CAP_TIMES} times per member per day"


# -- workers: module level, so that spawned children can import them -------------------------


def award_each_round(url: str, programme: str, actor: str, moments: list[datetime],
                     barrier) -> list[tuple[Any, ...]]:
    """For each moment, award e0 under 'sweep' as soon as every worker is ready.

    Returns one outcome per round: ("posted", seq) or ("refused", code, message, details).
    """
    engine = create_engine(url)
    try:
        get_programme(engine, programme)  # connect and import everything before the start
        outcomes = []
        for moment in moments:
            barrier.wait(timeout=START_TIMEOUT_SECONDS)
            try:
                outcome = award(engine, programme, AwardRequest("e0", "sweep", occurred_at=moment),
                                actor=actor)
            except errors.LedgerError as error:
                outcomes.append(("refused", error.code, error.message, error.details))
            else:
                outcomes.append((outcome.status, outcome.entry.seq))
        return outcomes
    finally:
        engine.dispose()


def approve_each_claim(url: str, programme: str, reviewer: str, claim_ids: list[int],
                       barrier) -> list[tuple[Any, ...]]:
    """For each claim, approve it as soon as the other reviewer is ready too.

    Returns one outcome per claim: ("approved", status, entry_seq) or ("refused", code).
    """
    engine = create_engine(url)
    try:
        get_programme(engine, programme)
        outcomes = []
        for claim_id in claim_ids:
            barrier.wait(timeout=START_TIMEOUT_SECONDS)
            try:
                claim = approve(engine, programme, claim_id, reviewer=reviewer)
            except errors.LedgerError as error:
                outcomes.append(("refused", error.code))
            else:
                outcomes.append(("approved", claim.status, claim.entry_seq))
        return outcomes
    finally:
        engine.dispose()


def wait_out_rounds(rounds: int, barrier) -> None:
    """What a worker with no part in a race does: meet the others at the barrier each round."""
    for _ in range(rounds):
        barrier.wait(timeout=START_TIMEOUT_SECONDS)


def _serve(index: int, tasks, results, barrier) -> None:
    """A worker's life: run each task it is given, with the shared barrier, until told to stop."""
    while (task := tasks.get()) is not None:
        work, arguments = task
        try:
            results.put((index, "returned", work(*arguments, barrier)))
        except BaseException:
            results.put((index, "raised", traceback.format_exc()))


class Crew:
    """WORKERS spawned processes sharing one barrier, started once for the module.

    Starting a Python process that imports the ledger takes most of a
    second; the crew pays that once instead of once per test. Each task still
    builds an engine of its own from the database URL and disposes of it.
    """

    def __init__(self) -> None:
        self.barrier = SPAWN.Barrier(WORKERS)
        self.results = SPAWN.Queue()
        self.tasks = [SPAWN.Queue() for _ in range(WORKERS)]
        self.processes = [
            SPAWN.Process(target=_serve, args=(index, tasks, self.results, self.barrier),
                          daemon=True)
            for index, tasks in enumerate(self.tasks)
        ]
        for process in self.processes:
            process.start()

    def run(self, tasks: list[tuple[Callable[..., Any], tuple[Any, ...]]]) -> list[Any]:
        """Give worker i the call `tasks[i]` (the barrier is added as the last argument).

        Returns what each call returned, in order; fails the test if one raised
        or they did not all finish in time.
        """
        assert len(tasks) == WORKERS
        for queue_of_worker, task in zip(self.tasks, tasks, strict=True):
            queue_of_worker.put(task)
        collected: dict[int, tuple[str, Any]] = {}
        for _ in range(WORKERS):
            try:
                index, status, value = self.results.get(timeout=WORKERS_TIMEOUT_SECONDS)
            except queue.Empty:
                pytest.fail(f"workers did not finish in {WORKERS_TIMEOUT_SECONDS} s")
            collected[index] = (status, value)
        failures = [value for status, value in collected.values() if status == "raised"]
        if failures:
            self.barrier.reset()  # release the others, and let the next test start clean
            pytest.fail("a worker raised:\n" + failures[0])
        return [collected[index][1] for index in range(WORKERS)]

    def stop(self) -> None:
        for tasks in self.tasks:
            tasks.put(None)
        for process in self.processes:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
                process.join(timeout=10)


@pytest.fixture(scope="module")
def crew():
    workers = Crew()
    yield workers
    workers.stop()


# -- caps -------------------------------------------------------------------------------------


def race_for_the_cap(crew, engine, database_url, actors: list[str]):
    """Every actor awards e0 at once, ROUNDS times (one day each); returns town and outcomes."""
    town = make_town(engine)
    for index, actor in enumerate(sorted(set(actors) - {EAST_ORGANISER})):
        grant_role(engine, town.code, actor, "organiser", "east" if index % 2 else "town")
    town.rule("sweep", points=5, caps=[{"period": "day", "max_times": DAILY_CAP_TIMES}])
    moments = [WHEN - timedelta(days=round_) for round_ in range(ROUNDS)]
    per_worker = crew.run([(award_each_round, (database_url, town.code, actor, moments))
                           for actor in actors])
    by_round = [[outcomes[round_] for outcomes in per_worker] for round_ in range(ROUNDS)]
    return town, by_round


def check_cap_held(town, by_round, actors: list[str]) -> None:
    for outcomes in by_round:
        statuses = Counter(outcome[0] for outcome in outcomes)
        assert statuses == {"posted": DAILY_CAP_TIMES, "refused": WORKERS - DAILY_CAP_TIMES}
        for outcome in outcomes:
            if outcome[0] == "refused":
                _, code, message, details = outcome
                assert code == "over_cap"
                assert details["cap"] == CAP_DESCRIPTION
                assert CAP_DESCRIPTION in message
                assert details["used_times"] == DAILY_CAP_TIMES
    assert town.entries_under("sweep") == DAILY_CAP_TIMES * ROUNDS
    assert town.points("e0") == (5 * DAILY_CAP_TIMES * ROUNDS,) * 2
    awards = {entry.seq: entry for entry in town.entries("award")}
    for outcomes in by_round:  # each posted entry names the organiser whose process posted it
        for actor, outcome in zip(actors, outcomes, strict=True):
            if outcome[0] == "posted":
                assert awards[outcome[1]].actor == actor
    town.assert_verifies()


def test_eight_processes_awarding_one_member_post_exactly_the_cap(crew, engine, database_url):
    actors = [EAST_ORGANISER] * WORKERS

    town, by_round = race_for_the_cap(crew, engine, database_url, actors)

    check_cap_held(town, by_round, actors)


def test_eight_organisers_covering_one_member_post_exactly_the_cap(crew, engine, database_url):
    actors = [f"organiser:desk-{index}" for index in range(WORKERS)]  # on east or on the town

    town, by_round = race_for_the_cap(crew, engine, database_url, actors)

    check_cap_held(town, by_round, actors)


# -- approvals --------------------------------------------------------------------------------


def test_two_reviewers_approving_at_once_post_once(crew, engine, database_url):
    town = make_town(engine)
    grant_role(engine, town.code, "reviewer:a", "reviewer", "east")
    grant_role(engine, town.code, "reviewer:b", "reviewer", "town")
    town.rule("rescue", points=50, approval="always")
    claim_ids = [town.award("e0", "rescue", occurred_at=WHEN + timedelta(minutes=index)).claim_id
                 for index in range(ROUNDS)]
    assert town.points("e0") == (0, 0)  # pending claims touch no balance

    reviewers = ["reviewer:a", "reviewer:b"]
    per_worker = crew.run(
        [(approve_each_claim, (database_url, town.code, reviewer, claim_ids))
         for reviewer in reviewers]
        + [(wait_out_rounds, (ROUNDS,))] * (WORKERS - len(reviewers))
    )
    per_reviewer = per_worker[:len(reviewers)]

    awards = {entry.seq: entry for entry in town.entries("award")}
    assert len(awards) == ROUNDS
    for round_, claim_id in enumerate(claim_ids):
        outcomes = [per_reviewer[0][round_], per_reviewer[1][round_]]
        approved = [(reviewer, outcome)
                    for reviewer, outcome in zip(reviewers, outcomes, strict=True)
                    if outcome[0] == "approved"]
        refused = [outcome for outcome in outcomes if outcome[0] == "refused"]
        assert len(approved) == 1, outcomes
        assert refused == [("refused", "claim_not_open")], outcomes
        winner, (_, status, entry_seq) = approved[0]
        assert status == "posted"
        entry = awards[entry_seq]
        assert (entry.actor, entry.approver) == (EAST_ORGANISER, winner)
        claim = get_claim(engine, town.code, claim_id)
        assert (claim.status, claim.decided_by, claim.entry_seq) == ("posted", winner, entry_seq)
    assert town.points("e0") == (50 * ROUNDS, 50 * ROUNDS)
    town.assert_verifies()
