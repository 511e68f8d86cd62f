"""A writer killed in the middle of a write leaves the chain as it was.

A spawned process starts a batch, an append or a reversal and stops inside
the transaction, once some or all of its rows are written and before COMMIT;
the test process kills it with SIGKILL, as the kernel's OOM killer would.
Afterwards the chain holds none of that write, still verifies, and the next
append gets the next `seq`: the lock died with the writer.

On SQLite the writer runs with a tiny page cache, so its uncommitted pages
spill into the WAL file before it is killed; whoever opens the database next
must tell them from committed frames (WAL recovery). On PostgreSQL the
server aborts the transaction of a client that vanished; the test waits,
for a bounded time, until the killed client's backend has gone.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import event, func, select, text
from sqlalchemy.engine import Engine

from ledger.accounts import ISSUANCE
from ledger.chain import Draft, Posting, append, append_batch, head, reverse
from ledger.models import Entry as EntryRow
from ledger.models import Posting as PostingRow
from ledger.programmes import get_programme
from ledger.statements import AccountBalance, balances
from ledger.storage import create_engine
from ledger.verify import verify_chain
from tests.conftest import make_village

pytestmark = pytest.mark.slow

SPAWN = multiprocessing.get_context("spawn")
"""The writer starts from a fresh interpreter: no engine, socket or lock is inherited."""
WHEN = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
COMMITTED_BEFORE = 3
"""Entries committed before the writer starts; the crash must leave exactly these."""
REVERSED_SEQ = 1
BATCH_ENTRIES = 200
SPILLING_CACHE_PAGES = 2
"""The writer's SQLite page cache: so small that even one entry spills into the WAL."""
MID_WRITE_TIMEOUT_SECONDS = 60
KILL_WAIT_SECONDS = 120
"""How long a stopped writer waits to be killed before it gives up on its own."""
EXIT_NOT_KILLED = 3
BACKEND_GONE_TIMEOUT_SECONDS = 30


# -- the writer: module level, so that the spawned child can import it ------------------------


def write_until_killed(
    url: str, programme: str, operation: str, stop_after: str, mid_write, backend_pid
) -> None:
    """Start `operation` and stop for good once a statement starting `stop_after` has run.

    Sets `mid_write` when stopped (and, on PostgreSQL, `backend_pid` to the
    server process of the open transaction), then waits to be killed. A
    writer nobody kills exits with `EXIT_NOT_KILLED` without committing.
    """
    engine = create_engine(url)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _spill_early(dbapi_connection, _record) -> None:
            dbapi_connection.execute(f"PRAGMA cache_size={SPILLING_CACHE_PAGES}")

    @event.listens_for(engine, "after_cursor_execute")
    def _stop_mid_write(connection, cursor, statement, parameters, context, executemany) -> None:
        if not statement.startswith(stop_after):
            return
        if connection.dialect.name == "postgresql":
            backend_pid.value = cursor.connection.info.backend_pid
        mid_write.set()
        time.sleep(KILL_WAIT_SECONDS)
        os._exit(EXIT_NOT_KILLED)

    if operation == "batch":
        append_batch(engine, programme, [
            Draft("award", [Posting(f"member:m{index % 4}", 2), Posting(ISSUANCE, -2)],
                  "organiser:import", WHEN, memo="paper sheet", idempotency_key=f"sheet-{index}")
            for index in range(BATCH_ENTRIES)
        ])
    elif operation == "append":
        append(engine, programme, kind="award",
               postings=[Posting("member:m0", 9), Posting(ISSUANCE, -9)],
               actor="organiser:desk", occurred_at=WHEN, memo="cleaned the well")
    elif operation == "reverse":
        reverse(engine, programme, REVERSED_SEQ, actor="organiser:desk", memo="entered twice")
    else:
        raise ValueError(f"unknown operation {operation!r}")


# -- what the test looks at ---------------------------------------------------------------------


@dataclass(frozen=True)
class ChainState:
    """Everything a write could change in one programme."""

    size: int
    head_hash: bytes | None
    root: bytes
    entry_rows: int
    posting_rows: int
    balances: tuple[AccountBalance, ...]


def chain_state(engine: Engine, programme: str) -> ChainState:
    programme_id = get_programme(engine, programme).id
    with engine.connect() as connection:
        entry_rows = connection.execute(
            select(func.count()).where(EntryRow.programme_id == programme_id)
        ).scalar_one()
        posting_rows = connection.execute(
            select(func.count()).where(PostingRow.programme_id == programme_id)
        ).scalar_one()
    tip = head(engine, programme)
    return ChainState(tip.size, tip.head_hash, tip.root, entry_rows, posting_rows,
                      tuple(balances(engine, programme)))


def award_points(engine: Engine, programme: str, account: str, points: int):
    return append(engine, programme, kind="award",
                  postings=[Posting(account, points), Posting(ISSUANCE, -points)],
                  actor="organiser:test", occurred_at=WHEN, memo="attended the meeting")


def wal_path(engine: Engine) -> Path:
    return Path(f"{engine.url.database}-wal")


def backend_state(engine: Engine, pid: int) -> str | None:
    """The PostgreSQL backend's state (`idle in transaction`, ...), None once it is gone."""
    with engine.connect() as connection:
        return connection.execute(
            text("SELECT state FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}
        ).scalar_one_or_none()


def wait_until_backend_gone(engine: Engine, pid: int) -> None:
    """PostgreSQL aborts a vanished client's transaction once it notices; wait for that."""
    deadline = time.monotonic() + BACKEND_GONE_TIMEOUT_SECONDS
    while backend_state(engine, pid) is not None:
        if time.monotonic() > deadline:
            pytest.fail(f"backend {pid} of the killed writer outlived "
                        f"{BACKEND_GONE_TIMEOUT_SECONDS} s")
        time.sleep(0.05)


# -- the test -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("operation", "stop_after"),
    [
        pytest.param("batch", "INSERT INTO entries", id="batch-killed-after-inserting-entries"),
        pytest.param("batch", "UPDATE chain_heads", id="batch-killed-before-commit"),
        pytest.param("append", "UPDATE chain_heads", id="append-killed-before-commit"),
        pytest.param("reverse", "UPDATE chain_heads", id="reverse-killed-before-commit"),
    ],
)
def test_a_writer_killed_mid_write_leaves_the_chain_as_it_was(
    backend, engine, database_url, operation, stop_after
):
    village = make_village(engine)
    committed = [award_points(engine, village.code, village.account(index), index + 1).entry
                 for index in range(COMMITTED_BEFORE)]
    before = chain_state(engine, village.code)
    assert before.size == COMMITTED_BEFORE
    if backend == "sqlite":
        with engine.connect() as connection:
            busy, _, _ = connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").one()
        assert busy == 0, "could not empty the WAL before the writer starts"
        engine.dispose()  # so that this process holds no connection when the writer dies

    mid_write = SPAWN.Event()
    backend_pid = SPAWN.Value("i", 0)
    writer = SPAWN.Process(
        target=write_until_killed,
        args=(database_url, village.code, operation, stop_after, mid_write, backend_pid),
        daemon=True,
    )
    writer.start()
    try:
        assert mid_write.wait(timeout=MID_WRITE_TIMEOUT_SECONDS), (
            f"the writer never ran a statement starting {stop_after!r}"
        )
        assert chain_state(engine, village.code) == before, "uncommitted rows were visible"
        if backend == "sqlite":
            engine.dispose()
            assert wal_path(engine).stat().st_size > 0, "the writer's pages never reached the WAL"
        else:
            assert backend_state(engine, backend_pid.value) == "idle in transaction"
        os.kill(writer.pid, signal.SIGKILL)
        writer.join(timeout=10)
    finally:
        if writer.is_alive():
            writer.kill()
            writer.join(timeout=10)
    assert writer.exitcode == -signal.SIGKILL

    if backend == "sqlite":
        # The killed transaction's frames are still in the WAL, with no commit
        # frame; the next reader must ignore them (with no connection left
        # open, SQLite first rebuilds its WAL index from the file: recovery).
        assert wal_path(engine).stat().st_size > 0
    else:
        wait_until_backend_gone(engine, backend_pid.value)
    assert chain_state(engine, village.code) == before
    verification = verify_chain(engine, village.code)
    assert verification.ok, str(verification.problem)
    assert verification.entries_checked == COMMITTED_BEFORE

    if operation == "reverse":
        following = reverse(engine, village.code, REVERSED_SEQ, actor="organiser:test",
                            memo="entered twice").entry
        assert following.reverses == REVERSED_SEQ
    else:
        following = award_points(engine, village.code, village.account(0), 4).entry
    assert following.seq == COMMITTED_BEFORE
    assert following.prev_hash == committed[-1].hash
    verification = verify_chain(engine, village.code)
    assert verification.ok, str(verification.problem)
    assert verification.entries_checked == COMMITTED_BEFORE + 1
