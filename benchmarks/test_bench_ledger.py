"""pytest-benchmark versions of `ledger_core.py`'s measurements, at small sizes.

Not collected by the test suite (its testpaths is tests/). Run with

    .venv/bin/python -m pytest benchmarks/ --benchmark-only

Each ledger measurement shares a benchmark group with its baselines, so the
tables pytest-benchmark prints put them side by side, once on SQLite and
once on PostgreSQL (a throwaway database, dropped at the end). The workload
and the baselines are `ledger_core`'s own, so both report the same thing.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from benchmarks.ledger_core import (
    DEFAULT_POSTGRES_URL,
    POSTGRES_URL_VARIABLE,
    BaselineWriter,
    BenchProgramme,
    BulkBaselines,
    PlainInsert,
    analyze,
    append_award,
    award_drafts,
    chain_canonical_bytes,
    create_bench_programme,
    insert_rows_core,
    sha256_loop,
    throwaway_postgres,
    warm_up_bulk,
)
from ledger import migrations
from ledger.chain import append_batch, head
from ledger.models import Entry as EntryRow
from ledger.storage import create_engine
from ledger.verify import verify_chain

BATCH_ENTRIES = 1_000
BULK_ROUNDS = 5
SINGLE_ROUNDS = 200
SINGLE_WARM_UP_ROUNDS = 10
VERIFIED_ENTRIES = 5_000
MEMBERS = 100
WARM_UP_ENTRIES = 1_000


@dataclass
class Workload:
    """One database with the programmes every benchmark of this file writes to."""

    backend: str
    engine: Engine
    bulk: BenchProgramme
    bulk_baselines: BulkBaselines
    single: BenchProgramme
    single_baseline: BaselineWriter
    plain_insert: PlainInsert
    verified: BenchProgramme
    verified_bytes: list[bytes]
    next_index: dict[str, int] = field(default_factory=dict)

    def take(self, name: str, count: int) -> int:
        """The first of `count` fresh draft indexes of the sequence `name` (keys stay unique)."""
        first = self.next_index.get(name, WARM_UP_ENTRIES)
        self.next_index[name] = first + count
        return first

    def handed_out(self, name: str) -> int:
        return self.next_index.get(name, WARM_UP_ENTRIES)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def workload(request, tmp_path_factory) -> Iterator[Workload]:
    backend = request.param
    with ExitStack() as cleanup:
        if backend == "sqlite":
            url = f"sqlite:///{tmp_path_factory.mktemp('bench') / 'bench.sqlite3'}"
        else:
            admin_url = os.environ.get(POSTGRES_URL_VARIABLE, DEFAULT_POSTGRES_URL)
            url = cleanup.enter_context(throwaway_postgres(admin_url))
        engine = create_engine(url)
        cleanup.callback(engine.dispose)
        migrations.upgrade(engine)
        plain_insert = PlainInsert(engine)
        bulk = create_bench_programme(engine, "bulk", MEMBERS)
        bulk_baselines = BulkBaselines(
            BaselineWriter(create_bench_programme(engine, "bulk-plain", MEMBERS)),
            BaselineWriter(create_bench_programme(engine, "bulk-core", MEMBERS)),
            plain_insert,
        )
        single = create_bench_programme(engine, "single", MEMBERS)
        single_baseline = BaselineWriter(
            create_bench_programme(engine, "single-baseline", MEMBERS))
        verified = create_bench_programme(engine, "verified", MEMBERS)
        warm_up_bulk(engine, bulk, bulk_baselines, WARM_UP_ENTRIES)
        for first in range(0, VERIFIED_ENTRIES, BATCH_ENTRIES):
            append_batch(engine, verified.code,
                         award_drafts(verified, first, BATCH_ENTRIES, "verified"))
        if backend == "postgresql":
            analyze(engine)
        yield Workload(backend, engine, bulk, bulk_baselines, single, single_baseline,
                       plain_insert, verified, chain_canonical_bytes(engine, verified.code))


def group(workload: Workload, measurement: str) -> str:
    return f"{workload.backend}: {measurement}"


def stored_entries(engine: Engine, programme: BenchProgramme) -> int:
    with engine.connect() as connection:
        return connection.execute(
            select(func.count()).where(EntryRow.programme_id == programme.id)
        ).scalar_one()


def test_bulk_append_ledger(workload, benchmark):
    benchmark.group = group(workload, f"bulk append, {BATCH_ENTRIES:,} entries per batch")
    stored_before = stored_entries(workload.engine, workload.bulk)
    first_index = workload.handed_out("bulk")

    def next_batch():
        first = workload.take("bulk", BATCH_ENTRIES)
        return (award_drafts(workload.bulk, first, BATCH_ENTRIES, "bulk"),), {}

    benchmark.pedantic(lambda drafts: append_batch(workload.engine, workload.bulk.code, drafts),
                       setup=next_batch, rounds=BULK_ROUNDS, iterations=1)
    benchmark.extra_info["entries_per_second"] = BATCH_ENTRIES / benchmark.stats.stats.median
    appended = workload.handed_out("bulk") - first_index
    assert appended == BULK_ROUNDS * BATCH_ENTRIES
    assert stored_entries(workload.engine, workload.bulk) == stored_before + appended
    assert head(workload.engine, workload.bulk.code).size == stored_before + appended


def test_bulk_append_baseline_driver_executemany(workload, benchmark):
    benchmark.group = group(workload, f"bulk append, {BATCH_ENTRIES:,} entries per batch")
    writer = workload.bulk_baselines.plain
    plain_insert = workload.plain_insert
    stored_before = stored_entries(workload.engine, writer.programme)

    def next_parameters():
        first = workload.take("bulk-plain", BATCH_ENTRIES)
        return (plain_insert.parameters(writer.rows(first, BATCH_ENTRIES, "bulk")),), {}

    benchmark.pedantic(lambda parameters: plain_insert.execute(workload.engine, parameters),
                       setup=next_parameters, rounds=BULK_ROUNDS, iterations=1)
    benchmark.extra_info["entries_per_second"] = BATCH_ENTRIES / benchmark.stats.stats.median
    assert stored_entries(workload.engine, writer.programme) == (
        stored_before + BULK_ROUNDS * BATCH_ENTRIES)


def test_bulk_append_baseline_sqlalchemy_core_executemany(workload, benchmark):
    benchmark.group = group(workload, f"bulk append, {BATCH_ENTRIES:,} entries per batch")
    writer = workload.bulk_baselines.core
    stored_before = stored_entries(workload.engine, writer.programme)

    def next_rows():
        first = workload.take("bulk-core", BATCH_ENTRIES)
        return (writer.rows(first, BATCH_ENTRIES, "bulk"),), {}

    benchmark.pedantic(lambda rows: insert_rows_core(workload.engine, rows),
                       setup=next_rows, rounds=BULK_ROUNDS, iterations=1)
    benchmark.extra_info["entries_per_second"] = BATCH_ENTRIES / benchmark.stats.stats.median
    assert stored_entries(workload.engine, writer.programme) == (
        stored_before + BULK_ROUNDS * BATCH_ENTRIES)


def test_single_append_ledger(workload, benchmark):
    benchmark.group = group(workload, "single append, one commit per entry")
    programme = workload.single
    first_index = workload.handed_out("single")

    def next_index():
        return (workload.take("single", 1),), {}

    benchmark.pedantic(lambda index: append_award(workload.engine, programme, index, "single"),
                       setup=next_index, rounds=SINGLE_ROUNDS, iterations=1,
                       warmup_rounds=SINGLE_WARM_UP_ROUNDS)
    benchmark.extra_info["appends_per_second"] = 1 / benchmark.stats.stats.median
    appended = workload.handed_out("single") - first_index
    assert appended >= SINGLE_ROUNDS
    assert head(workload.engine, programme.code).size == appended


def test_single_append_baseline_insert_and_commit(workload, benchmark):
    benchmark.group = group(workload, "single append, one commit per entry")
    writer = workload.single_baseline
    plain_insert = workload.plain_insert
    first_index = workload.handed_out("single-baseline")

    def next_parameters():
        first = workload.take("single-baseline", 1)
        return (plain_insert.parameters(writer.rows(first, 1, "single")),), {}

    benchmark.pedantic(lambda parameters: plain_insert.execute(workload.engine, parameters),
                       setup=next_parameters, rounds=SINGLE_ROUNDS, iterations=1,
                       warmup_rounds=SINGLE_WARM_UP_ROUNDS)
    benchmark.extra_info["appends_per_second"] = 1 / benchmark.stats.stats.median
    inserted = workload.handed_out("single-baseline") - first_index
    assert inserted >= SINGLE_ROUNDS
    assert stored_entries(workload.engine, writer.programme) == inserted


def test_verify_chain(workload, benchmark):
    benchmark.group = group(workload, f"verification of {VERIFIED_ENTRIES:,} entries")
    verification = benchmark.pedantic(verify_chain, args=(workload.engine, workload.verified.code),
                                      rounds=3, iterations=1)
    benchmark.extra_info["entries_per_second"] = VERIFIED_ENTRIES / benchmark.stats.stats.median
    assert verification.ok, verification.problem
    assert verification.entries_checked == VERIFIED_ENTRIES


def test_verify_baseline_sha256_loop(workload, benchmark):
    benchmark.group = group(workload, f"verification of {VERIFIED_ENTRIES:,} entries")
    assert len(workload.verified_bytes) == VERIFIED_ENTRIES
    benchmark.pedantic(sha256_loop, args=(workload.verified_bytes,), rounds=10, iterations=1)
    benchmark.extra_info["entries_per_second"] = VERIFIED_ENTRIES / benchmark.stats.stats.median
