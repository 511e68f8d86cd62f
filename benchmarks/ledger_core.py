"""Ledger-core benchmarks, each measured against a baseline in the same run.

A throughput figure alone says little on a shared 2-core machine; a ratio to
the cheapest way of doing the same database work, measured minutes apart on
the same database, says how much the ledger itself costs. Per database
(SQLite in a temporary file; PostgreSQL in a throwaway database that is
created for the run and dropped at the end):

* bulk append: `append_batch` of award drafts, against a plain executemany
  INSERT of equivalent rows into the same tables, in a programme of its own
  (precomputed dummy hashes; no hashing, no lock, no idempotency lookup, no
  balance or head update), one transaction per batch on both sides. Two
  baselines: the driver's executemany with parameters built beforehand (the
  database's own cost, the one the target is judged against), and
  SQLAlchemy Core's executemany of dicts (what SQLAlchemy's per-row work
  adds; the ledger took that path until it moved to the driver's);
* single appends, one commit per entry: `append`, against one transaction
  per entry that inserts that entry's posting rows and entry row through
  the driver; on SQLite once with `synchronous=FULL` and once with `NORMAL`;
* verification: `verify_chain` over the bulk programme, against a bare
  SHA-256 loop over the same canonical bytes (built before the clock starts).

Every ratio is ledger / baseline. Rates are the median of `--repetitions`
runs, taken in turn (ledger first, then a baseline first, ...); latencies are
percentiles over every timed call. Results and the exact commands are in
docs/BENCHMARKS.md:

    .venv/bin/python benchmarks/ledger_core.py [--sqlite-only] [--entries N] [--json FILE]
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import json
import os
import platform
import pstats
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import sqlalchemy
from sqlalchemy import insert, select
from sqlalchemy.engine import Engine

from ledger import migrations, storage
from ledger.accounts import ISSUANCE
from ledger.canonical import encode_plain, leaf_hash
from ledger.chain import Draft, Posting, RuleRef, append, append_batch, head, load_entries
from ledger.entry_format import format_timestamp
from ledger.models import Account
from ledger.models import Entry as EntryRow
from ledger.models import Posting as PostingRow
from ledger.organisation import create_household, create_member, create_unit
from ledger.programmes import create_programme, get_programme
from ledger.storage import create_engine, read_transaction
from ledger.verify import verify_chain

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
POSTGRES_URL_VARIABLE = "JIFEN_BENCH_POSTGRES_URL"
SQLITE_SYNCHRONOUS_MODES = ("FULL", "NORMAL")
SQLITE_SYNCHRONOUS_VALUES = {"OFF": 0, "NORMAL": 1, "FULL": 2, "EXTRA": 3}
"""What `PRAGMA synchronous` answers for each mode, to check the mode really applied."""
BULK_TARGET_ENTRIES_PER_SECOND = 20_000
BULK_TARGET_RATIO = 0.4
MEMBERS_PER_HOUSEHOLD = 50
POSTING_COLUMNS = ("programme_id", "entry_seq", "position", "account_id", "amount_points")
ENTRY_COLUMNS = (
    "programme_id", "seq", "kind", "actor", "occurred_at", "recorded_at", "evidence", "memo",
    "metadata_json", "idempotency_key", "content_digest", "reverses_seq", "rule_code",
    "rule_version", "rule_quantity", "approver", "prev_hash", "hash",
)
"""Every column `append_batch` writes; `BaselineWriter` fills the same ones."""
WARM_UP_ENTRIES = 1_000
READ_CHUNK_ENTRIES = 5_000

OCCURRED_AT = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
ACTOR = "organiser:bench"
MEMO = "参加村民大会 (attended the village meeting)"
RULE = RuleRef("village-meeting", 1)


# -- the workload ----------------------------------------------------------------------


@dataclass(frozen=True)
class BenchProgramme:
    """A programme made for one measurement, with its member accounts."""

    code: str
    id: int
    member_accounts: list[str]
    account_ids: dict[str, int]


def create_bench_programme(engine: Engine, code: str, member_count: int) -> BenchProgramme:
    """A programme with one village and `member_count` members, made the ledger's way."""
    create_programme(engine, code, f"Benchmark {code}")
    create_unit(engine, code, "village", "基准村", "village")
    member_accounts: list[str] = []
    for index in range(member_count):
        household = f"h{index // MEMBERS_PER_HOUSEHOLD}"
        if index % MEMBERS_PER_HOUSEHOLD == 0:
            create_household(engine, code, household, f"第{index // MEMBERS_PER_HOUSEHOLD}户",
                             "village")
        member = create_member(engine, code, f"m{index}", f"居民{index}", household)
        member_accounts.append(member.account)
    programme_id = get_programme(engine, code).id
    with read_transaction(engine) as connection:
        account_ids = dict(
            connection.execute(
                select(Account.code, Account.id).where(Account.programme_id == programme_id)
            ).all()
        )
    return BenchProgramme(code, programme_id, member_accounts, account_ids)


def award_points(index: int) -> int:
    return 1 + index % 20


def award_metadata(index: int) -> dict[str, Any]:
    return {"sheet_row": index}


def award_drafts(programme: BenchProgramme, first_index: int, count: int,
                 key_prefix: str) -> list[Draft]:
    """`count` awards spread over the members, each with its own idempotency key.

    Keys are included because every real write carries one (DESIGN.md), so
    the idempotency lookup is part of what an append costs.
    """
    drafts = []
    for index in range(first_index, first_index + count):
        points = award_points(index)
        member_account = programme.member_accounts[index % len(programme.member_accounts)]
        drafts.append(
            Draft(
                kind="award",
                postings=[Posting(member_account, points), Posting(ISSUANCE, -points)],
                actor=ACTOR,
                occurred_at=OCCURRED_AT,
                memo=MEMO,
                metadata=award_metadata(index),
                idempotency_key=f"{key_prefix}-{index}",
                rule=RULE,
            )
        )
    return drafts


def append_award(engine: Engine, programme: BenchProgramme, index: int, key_prefix: str) -> None:
    """The award `award_drafts` would make at `index`, through `append`: one commit."""
    points = award_points(index)
    member_account = programme.member_accounts[index % len(programme.member_accounts)]
    append(
        engine,
        programme.code,
        kind="award",
        postings=[Posting(member_account, points), Posting(ISSUANCE, -points)],
        actor=ACTOR,
        occurred_at=OCCURRED_AT,
        memo=MEMO,
        metadata=award_metadata(index),
        idempotency_key=f"{key_prefix}-{index}",
        rule=RULE,
    )


Rows = tuple[list[dict[str, Any]], list[dict[str, Any]]]
"""Posting rows and entry rows, as `BaselineWriter.rows` makes them."""


def dummy_hash(seq: int) -> bytes:
    return seq.to_bytes(32, "big")


class BaselineWriter:
    """Writes rows equivalent to the ledger's awards with plain INSERTs and nothing else.

    Same tables (so the same indexes and database triggers), same columns
    and values as `append_batch` would write for the same draft, except that
    the hashes are precomputed dummies and balances and the chain head are
    left alone. The programme must be its own: these rows are not a chain.
    """

    def __init__(self, programme: BenchProgramme) -> None:
        self.programme = programme
        self.next_seq = 0
        self.occurred_at = format_timestamp(OCCURRED_AT)

    def rows(self, first_index: int, count: int, key_prefix: str) -> Rows:
        """Posting rows and entry rows for `count` awards, at the next free seqs."""
        recorded_at = format_timestamp(datetime.now(UTC))
        issuance_id = self.programme.account_ids[ISSUANCE]
        member_accounts = self.programme.member_accounts
        posting_rows: list[dict[str, Any]] = []
        entry_rows: list[dict[str, Any]] = []
        for index in range(first_index, first_index + count):
            seq = self.next_seq
            self.next_seq += 1
            points = award_points(index)
            member_id = self.programme.account_ids[member_accounts[index % len(member_accounts)]]
            for position, (account_id, amount) in enumerate(
                ((member_id, points), (issuance_id, -points))
            ):
                posting_rows.append(
                    {
                        "programme_id": self.programme.id,
                        "entry_seq": seq,
                        "position": position,
                        "account_id": account_id,
                        "amount_points": amount,
                    }
                )
            entry_rows.append(
                {
                    "programme_id": self.programme.id,
                    "seq": seq,
                    "kind": "award",
                    "actor": ACTOR,
                    "occurred_at": self.occurred_at,
                    "recorded_at": recorded_at,
                    "evidence": None,
                    "memo": MEMO,
                    "metadata_json": encode_plain(award_metadata(index)).decode("utf-8"),
                    "idempotency_key": f"{key_prefix}-{index}",
                    "content_digest": dummy_hash(seq),
                    "reverses_seq": None,
                    "rule_code": RULE.code,
                    "rule_version": RULE.version,
                    "rule_quantity": RULE.quantity,
                    "approver": None,
                    "prev_hash": dummy_hash(seq - 1) if seq else None,
                    "hash": dummy_hash(seq),
                }
            )
        return posting_rows, entry_rows


def insert_rows_core(engine: Engine, rows: Rows) -> None:
    """One transaction of SQLAlchemy Core executemany INSERTs of dicts.

    Postings go first, as the database's double-entry triggers require.
    """
    posting_rows, entry_rows = rows
    with engine.begin() as connection:
        connection.execute(insert(PostingRow), posting_rows)
        connection.execute(insert(EntryRow), entry_rows)


class PlainInsert:
    """The plainest INSERT: SQL compiled once, parameters handed to the driver's executemany.

    This is the baseline: the database's own cost of storing the rows (its
    indexes, constraints and triggers) plus the driver's, with no per-row
    work in Python while the clock runs; `parameters` is called before.
    """

    def __init__(self, engine: Engine) -> None:
        self.statements = [self._compile(engine, table, columns) for table, columns in (
            (PostingRow.__table__, POSTING_COLUMNS), (EntryRow.__table__, ENTRY_COLUMNS))]

    @staticmethod
    def _compile(engine: Engine, table: Any, columns: tuple[str, ...]) -> tuple[str, Any]:
        compiled = insert(table).compile(dialect=engine.dialect, column_keys=list(columns))
        return str(compiled), compiled.positiontup

    def parameters(self, rows: Rows) -> list[list[Any]]:
        """The rows in the form the driver takes (tuples for `?` placeholders, else dicts)."""
        prepared = []
        for (_, order), table_rows in zip(self.statements, rows, strict=True):
            if order is None:
                prepared.append(table_rows)
            else:
                prepared.append([tuple(row[name] for name in order) for row in table_rows])
        return prepared

    def execute(self, engine: Engine, parameters: list[list[Any]]) -> None:
        """One transaction: postings, then entries."""
        with engine.begin() as connection:
            for (sql, _), table_parameters in zip(self.statements, parameters, strict=True):
                connection.exec_driver_sql(sql, table_parameters)


def chain_canonical_bytes(engine: Engine, programme_code: str) -> list[bytes]:
    """Every entry's canonical bytes, as stored, checked against its stored hash."""
    size = head(engine, programme_code).size
    canonical: list[bytes] = []
    with read_transaction(engine) as connection:
        programme = get_programme(connection, programme_code)
        for start in range(0, size, READ_CHUNK_ENTRIES):
            entries = load_entries(
                connection, programme, range(start, min(start + READ_CHUNK_ENTRIES, size))
            )
            for seq in sorted(entries):
                entry = entries[seq]
                data = entry.canonical_bytes()
                if leaf_hash(data) != entry.hash:
                    raise AssertionError(f"entry {seq}: rebuilt bytes do not give the stored hash")
                canonical.append(data)
    if len(canonical) != size:
        raise AssertionError(f"read {len(canonical)} entries of a chain of {size}")
    return canonical


def sha256_loop(canonical: list[bytes]) -> None:
    """The floor of verification: the leaf hashes alone, nothing read or rebuilt."""
    sha256 = hashlib.sha256
    for data in canonical:
        sha256(b"\x00" + data).digest()


def read_chain_rows(engine: Engine, programme_id: int) -> int:
    """Read the entry and posting rows verification reads, in its order, and nothing else."""
    entries_read = 0
    with read_transaction(engine) as connection:
        for _ in connection.execution_options(yield_per=READ_CHUNK_ENTRIES).execute(
            select(EntryRow.__table__).where(EntryRow.programme_id == programme_id)
            .order_by(EntryRow.seq)
        ):
            entries_read += 1
        for _ in connection.execution_options(yield_per=READ_CHUNK_ENTRIES).execute(
            select(PostingRow.entry_seq, PostingRow.account_id, PostingRow.amount_points)
            .where(PostingRow.programme_id == programme_id)
            .order_by(PostingRow.entry_seq, PostingRow.position)
        ):
            pass
    return entries_read


# -- measuring -------------------------------------------------------------------------


@dataclass
class Settings:
    bulk_entries: int
    batch_entries: int
    single_appends: int
    members: int
    repetitions: int


@dataclass
class Result:
    """One line of the results table.

    `ratio` is ledger / baseline: of rates (higher is better) or of latencies (lower is).
    """

    database: str
    measurement: str
    unit: str
    ledger: float
    baseline: float
    baseline_name: str
    ratio: float
    details: dict[str, Any] = field(default_factory=dict)


def seconds(action: Callable[..., Any], *arguments: Any) -> float:
    """Wall-clock seconds of `action(*arguments)`."""
    started = time.perf_counter()
    action(*arguments)
    return time.perf_counter() - started


def in_turn(repetition: int, actions: list[Callable[[], None]]) -> None:
    """Run every action once, starting one further along each repetition.

    No side always runs first (cold caches, a fresh WAL) or last.
    """
    start = repetition % len(actions)
    for action in actions[start:] + actions[:start]:
        action()


def percentile_ms(latencies_s: list[float], percent: int) -> float:
    return statistics.quantiles(latencies_s, n=100, method="inclusive")[percent - 1] * 1000


@dataclass
class BulkBaselines:
    """The two bulk baselines, each writing to a programme of its own."""

    plain: BaselineWriter
    core: BaselineWriter
    plain_insert: PlainInsert


def warm_up_bulk(engine: Engine, ledger: BenchProgramme, baselines: BulkBaselines,
                 entries: int) -> None:
    """Untimed first writes: fill the pool and the statement caches, give the planner rows."""
    append_batch(engine, ledger.code, award_drafts(ledger, 0, entries, "warm-up"))
    baselines.plain_insert.execute(
        engine, baselines.plain_insert.parameters(baselines.plain.rows(0, entries, "warm-up")))
    insert_rows_core(engine, baselines.core.rows(0, entries, "warm-up"))


def analyze(engine: Engine) -> None:
    """Give PostgreSQL's planner statistics, as autovacuum does on a live database.

    On a never-analysed database the planner costs a (programme_id, seq)
    lookup (the guard triggers', the postings' foreign key's) the same
    through any index that starts with programme_id, may pick one that only
    filters on seq, and keeps that plan for the session: every lookup then
    reads all of the programme's entries. docs/BENCHMARKS.md has the numbers.
    """
    with engine.begin() as connection:
        connection.exec_driver_sql("ANALYZE")


def measure_bulk(engine: Engine, database: str, settings: Settings, ledger: BenchProgramme,
                 baselines: BulkBaselines) -> list[Result]:
    """Entries/s of each side, and this process's CPU time per entry (the database's too on
    SQLite, which runs in-process): the CPU figures hold up when other work shares the cores."""
    batch = settings.batch_entries
    batch_count = -(-settings.bulk_entries // batch)
    entries = batch_count * batch
    rates: dict[str, list[float]] = {"ledger": [], "plain": [], "core": []}
    cpu_us: dict[str, list[float]] = {"ledger": [], "plain": [], "core": []}

    def run(side: str, action: Callable[[Any], Any], batches: list[Any]) -> None:
        cpu_started = time.process_time()
        started = time.perf_counter()
        for batch_input in batches:
            action(batch_input)
        elapsed = time.perf_counter() - started
        cpu_us[side].append((time.process_time() - cpu_started) / entries * 1e6)
        rates[side].append(entries / elapsed)

    append_ledger = partial(append_batch, engine, ledger.code)
    insert_plain = partial(baselines.plain_insert.execute, engine)
    insert_core = partial(insert_rows_core, engine)
    for repetition in range(settings.repetitions):
        prefix = f"bulk-{repetition}"
        starts = [number * batch for number in range(batch_count)]
        draft_batches = [award_drafts(ledger, start, batch, prefix) for start in starts]
        plain_batches = [baselines.plain_insert.parameters(baselines.plain.rows(start, batch,
                                                                                prefix))
                         for start in starts]
        core_batches = [baselines.core.rows(start, batch, prefix) for start in starts]
        in_turn(repetition, [partial(run, "ledger", append_ledger, draft_batches),
                             partial(run, "plain", insert_plain, plain_batches),
                             partial(run, "core", insert_core, core_batches)])
        print(f"  {database} bulk repetition {repetition + 1}: ledger {rates['ledger'][-1]:,.0f}, "
              f"plain executemany {rates['plain'][-1]:,.0f}, SQLAlchemy Core executemany "
              f"{rates['core'][-1]:,.0f} entries/s", flush=True)
    ledger_rate = statistics.median(rates["ledger"])
    measurement = f"bulk append, {batch:,} per batch, {entries:,} per run"
    results = []
    for side, name in (("plain", "executemany INSERT (driver)"),
                       ("core", "executemany INSERT (SQLAlchemy Core)")):
        baseline_rate = statistics.median(rates[side])
        results.append(Result(
            database, measurement, "entries/s", ledger_rate, baseline_rate, name,
            ledger_rate / baseline_rate,
            {"ledger_runs": rates["ledger"], "baseline_runs": rates[side],
             "ledger_cpu_us_per_entry": statistics.median(cpu_us["ledger"]),
             "baseline_cpu_us_per_entry": statistics.median(cpu_us[side])},
        ))
    return results


def measure_single(engine: Engine, database: str, label: str, settings: Settings,
                   ledger: BenchProgramme, baseline: BenchProgramme) -> list[Result]:
    writer = BaselineWriter(baseline)
    plain_insert = PlainInsert(engine)
    count = settings.single_appends
    warm_up = 20
    for index in range(warm_up):
        append_award(engine, ledger, index, "single")
        plain_insert.execute(engine, plain_insert.parameters(writer.rows(index, 1, "single")))

    latencies: dict[str, list[float]] = {"ledger": [], "plain": []}
    rates: dict[str, list[float]] = {"ledger": [], "plain": []}

    def run(side: str, action: Callable[[Any], Any], inputs: list[Any]) -> None:
        timed = [seconds(action, one_input) for one_input in inputs]
        latencies[side] += timed
        rates[side].append(count / sum(timed))

    append_ledger = partial(append_award, engine, ledger, key_prefix="single")
    insert_plain = partial(plain_insert.execute, engine)
    for repetition in range(settings.repetitions):
        indexes = list(range(warm_up + repetition * count, warm_up + (repetition + 1) * count))
        plain_parameters = [plain_insert.parameters(writer.rows(index, 1, "single"))
                            for index in indexes]
        in_turn(repetition, [partial(run, "ledger", append_ledger, indexes),
                             partial(run, "plain", insert_plain, plain_parameters)])
        print(f"  {database} single {label} repetition {repetition + 1}: ledger "
              f"{rates['ledger'][-1]:,.0f}, baseline {rates['plain'][-1]:,.0f} appends/s",
              flush=True)
    measurement = f"single append, commit per entry, {label}"
    baseline_name = "INSERT + commit per entry (driver)"
    results = [
        Result(database, measurement, "appends/s", statistics.median(rates["ledger"]),
               statistics.median(rates["plain"]), baseline_name,
               statistics.median(rates["ledger"]) / statistics.median(rates["plain"]),
               {"ledger_runs": rates["ledger"], "baseline_runs": rates["plain"]}),
    ]
    for percent in (50, 99):
        ledger_ms = percentile_ms(latencies["ledger"], percent)
        plain_ms = percentile_ms(latencies["plain"], percent)
        results.append(Result(database, f"{measurement}: latency p{percent}", "ms", ledger_ms,
                              plain_ms, baseline_name, ledger_ms / plain_ms))
    return results


def measure_verification(engine: Engine, database: str, settings: Settings,
                         programme: BenchProgramme) -> Result:
    canonical = chain_canonical_bytes(engine, programme.code)
    size = len(canonical)
    verify_rates: list[float] = []
    hash_rates: list[float] = []
    read_rates: list[float] = []

    def run_verify() -> None:
        started = time.perf_counter()
        verification = verify_chain(engine, programme.code)
        elapsed = time.perf_counter() - started
        if not verification.ok or verification.entries_checked != size:
            raise AssertionError(f"verification of the bulk chain failed: {verification}")
        verify_rates.append(size / elapsed)

    def run_hash_loop() -> None:
        hash_rates.append(size / seconds(sha256_loop, canonical))

    for repetition in range(settings.repetitions):
        in_turn(repetition, [run_verify, run_hash_loop])
        read_rates.append(size / seconds(read_chain_rows, engine, programme.id))
        print(f"  {database} verification repetition {repetition + 1}: verify_chain "
              f"{verify_rates[-1]:,.0f}, SHA-256 loop {hash_rates[-1]:,.0f}, rows read alone "
              f"{read_rates[-1]:,.0f} entries/s", flush=True)
    verify_rate = statistics.median(verify_rates)
    hash_rate = statistics.median(hash_rates)
    return Result(
        database, f"verification, chain of {size:,} entries", "entries/s", verify_rate,
        hash_rate, "SHA-256 loop over the canonical bytes", verify_rate / hash_rate,
        {"verify_runs": verify_rates, "hash_runs": hash_rates,
         "rows_read_alone_entries_per_second": statistics.median(read_rates),
         "mean_canonical_bytes": sum(map(len, canonical)) / size},
    )


def profile_bulk(engine: Engine, programme: BenchProgramme, settings: Settings,
                 output: Path) -> None:
    """One more bulk run under cProfile (after the timed runs, which it would slow)."""
    batch = settings.batch_entries
    draft_batches = [award_drafts(programme, number * batch, batch, "profile")
                     for number in range(-(-settings.bulk_entries // batch))]
    profiler = cProfile.Profile()
    profiler.enable()
    for drafts in draft_batches:
        append_batch(engine, programme.code, drafts)
    profiler.disable()
    profiler.dump_stats(output)
    print(f"\nProfile of append_batch on SQLite written to {output}; top functions by own time:")
    pstats.Stats(profiler).sort_stats("tottime").print_stats(20)
    pstats.Stats(profiler).sort_stats("cumulative").print_stats(30)


# -- databases -------------------------------------------------------------------------


@contextmanager
def sqlite_synchronous(mode: str) -> Iterator[None]:
    """Engines created inside use `PRAGMA synchronous=<mode>`.

    `ledger.storage` reads JIFEN_SQLITE_SYNCHRONOUS once, at import, into a
    module constant that each new SQLite connection applies; setting the
    constant lets one run measure both modes. `check_synchronous` confirms it.
    """
    saved = storage.SQLITE_SYNCHRONOUS
    storage.SQLITE_SYNCHRONOUS = mode
    try:
        yield
    finally:
        storage.SQLITE_SYNCHRONOUS = saved


def check_synchronous(engine: Engine, mode: str) -> None:
    with engine.connect() as connection:
        found = connection.exec_driver_sql("PRAGMA synchronous").scalar_one()
    if found != SQLITE_SYNCHRONOUS_VALUES[mode]:
        raise AssertionError(f"asked for synchronous={mode}, the connection has {found}")


@contextmanager
def throwaway_postgres(admin_url: str) -> Iterator[str]:
    """A new PostgreSQL database for this run; dropped at the end, whatever happens."""
    name = f"jifen_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(admin_url).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield sqlalchemy.make_url(admin_url).set(database=name).render_as_string(
            hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def server_version(engine: Engine) -> str:
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            return "SQLite " + connection.exec_driver_sql("SELECT sqlite_version()").scalar_one()
        return "PostgreSQL " + connection.exec_driver_sql("SHOW server_version").scalar_one()


BULK_PROGRAMMES = ("bulk", "bulk-plain", "bulk-core")


def bulk_baselines(engine: Engine, programmes: dict[str, BenchProgramme]) -> BulkBaselines:
    return BulkBaselines(BaselineWriter(programmes["bulk-plain"]),
                         BaselineWriter(programmes["bulk-core"]), PlainInsert(engine))


def run_sqlite(settings: Settings, directory: str | None,
               profile_output: Path | None) -> tuple[list[Result], str]:
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="jifen-bench-", dir=directory) as folder:
        url = f"sqlite:///{Path(folder) / 'bench.sqlite3'}"
        engine = create_engine(url)
        migrations.upgrade(engine)
        version = server_version(engine)
        default_mode = storage.SQLITE_SYNCHRONOUS
        check_synchronous(engine, default_mode)
        print(f"SQLite database {url} ({version}); creating programmes", flush=True)
        programmes = {
            name: create_bench_programme(engine, name, settings.members)
            for name in list(BULK_PROGRAMMES)
            + [f"single-{mode.lower()}{side}" for mode in SQLITE_SYNCHRONOUS_MODES
               for side in ("", "-baseline")]
        }
        baselines = bulk_baselines(engine, programmes)
        warm_up_bulk(engine, programmes["bulk"], baselines, WARM_UP_ENTRIES)
        for bulk in measure_bulk(engine, "SQLite", settings, programmes["bulk"], baselines):
            bulk.measurement += f", synchronous={default_mode}"
            results.append(bulk)
        for mode in SQLITE_SYNCHRONOUS_MODES:
            with sqlite_synchronous(mode):
                mode_engine = create_engine(url)
                check_synchronous(mode_engine, mode)
                results += measure_single(
                    mode_engine, "SQLite", f"synchronous={mode}", settings,
                    programmes[f"single-{mode.lower()}"],
                    programmes[f"single-{mode.lower()}-baseline"],
                )
                check_synchronous(mode_engine, mode)
                mode_engine.dispose()
        results.append(measure_verification(engine, "SQLite", settings, programmes["bulk"]))
        if profile_output is not None:
            profile_bulk(engine, programmes["bulk"], settings, profile_output)
        engine.dispose()
    return results, version


def run_postgres(settings: Settings, admin_url: str,
                 analyze_first: bool) -> tuple[list[Result], str]:
    results: list[Result] = []
    with throwaway_postgres(admin_url) as url:
        engine = create_engine(url)
        try:
            migrations.upgrade(engine)
            version = server_version(engine)
            with engine.connect() as connection:
                commit_mode = connection.exec_driver_sql("SHOW synchronous_commit").scalar_one()
            print(f"PostgreSQL database {engine.url.database} ({version}); creating programmes",
                  flush=True)
            programmes = {
                name: create_bench_programme(engine, name, settings.members)
                for name in (*BULK_PROGRAMMES, "single", "single-baseline")
            }
            baselines = bulk_baselines(engine, programmes)
            warm_up_bulk(engine, programmes["bulk"], baselines, WARM_UP_ENTRIES)
            if analyze_first:
                analyze(engine)
            for bulk in measure_bulk(engine, "PostgreSQL", settings, programmes["bulk"],
                                     baselines):
                if not analyze_first:
                    bulk.measurement += ", never analysed"
                results.append(bulk)
            results += measure_single(engine, "PostgreSQL", f"synchronous_commit={commit_mode}",
                                      settings, programmes["single"],
                                      programmes["single-baseline"])
            results.append(measure_verification(engine, "PostgreSQL", settings,
                                                programmes["bulk"]))
        finally:
            engine.dispose()
    return results, version


# -- reporting -------------------------------------------------------------------------


def format_number(value: float, unit: str) -> str:
    if unit == "ms":
        return f"{value:.2f}"
    return f"{value:,.0f}"


def markdown_table(results: list[Result]) -> str:
    lines = [
        "| Database | Measurement | Unit | Ledger | Baseline | Baseline is | Ledger / baseline |",
        "|---|---|---|---:|---:|---|---:|",
    ]
    for result in results:
        lines.append(
            f"| {result.database} | {result.measurement} | {result.unit} "
            f"| {format_number(result.ledger, result.unit)} "
            f"| {format_number(result.baseline, result.unit)} | {result.baseline_name} "
            f"| {result.ratio:.2f} |"
        )
    return "\n".join(lines)


def notes(results: list[Result]) -> list[str]:
    """What the table leaves out: CPU time per bulk entry, and what verification reads."""
    lines = []
    for result in results:
        details = result.details
        if "ledger_cpu_us_per_entry" in details:
            ledger_us = details["ledger_cpu_us_per_entry"]
            baseline_us = details["baseline_cpu_us_per_entry"]
            lines.append(
                f"{result.database} bulk, CPU time of this process per entry: ledger "
                f"{ledger_us:.1f} us, {result.baseline_name} {baseline_us:.1f} us "
                f"(baseline / ledger {baseline_us / ledger_us:.2f})"
            )
        if "rows_read_alone_entries_per_second" in details:
            lines.append(
                f"{result.database} verification: the same rows read alone (no checks) at "
                f"{details['rows_read_alone_entries_per_second']:,.0f} entries/s; canonical "
                f"bytes average {details['mean_canonical_bytes']:.0f} bytes"
            )
    return lines


def bulk_target_verdict(results: list[Result]) -> str | None:
    """Whether SQLite's bulk append meets the target, judged against the driver baseline."""
    ratios = {result.baseline_name: result for result in results
              if result.database == "SQLite" and result.measurement.startswith("bulk append")}
    judged = ratios.get("executemany INSERT (driver)")
    if judged is None:
        return None
    met = judged.ledger >= BULK_TARGET_ENTRIES_PER_SECOND and judged.ratio >= BULK_TARGET_RATIO
    core = ratios.get("executemany INSERT (SQLAlchemy Core)")
    return (
        f"SQLite bulk target (>= {BULK_TARGET_ENTRIES_PER_SECOND:,} entries/s and ratio "
        f">= {BULK_TARGET_RATIO} to the driver's executemany): {'met' if met else 'NOT met'} "
        f"({judged.ledger:,.0f} entries/s, ratio {judged.ratio:.2f}"
        + (f"; ratio to SQLAlchemy Core's executemany {core.ratio:.2f})" if core else ")")
    )


def code_version() -> str:
    """The commit measured, marked when the working tree differs from it."""
    folder = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=folder,
                                capture_output=True, text=True, check=True).stdout.strip()
        changed = subprocess.run(["git", "status", "--porcelain", "--", "ledger"],
                                 cwd=folder.parent, capture_output=True, text=True,
                                 check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{commit} (ledger/ modified)" if changed else commit


def machine_description() -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "logical_cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "sqlalchemy": sqlalchemy.__version__,
        "sqlite_library": sqlite3.sqlite_version,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    databases = parser.add_mutually_exclusive_group()
    databases.add_argument("--sqlite-only", action="store_true", help="skip PostgreSQL")
    databases.add_argument("--postgres-only", action="store_true", help="skip SQLite")
    parser.add_argument("--entries", type=int, default=50_000,
                        help="bulk entries per repetition (default 50,000)")
    parser.add_argument("--batch", type=int, default=5_000,
                        help="drafts per append_batch call (default 5,000)")
    parser.add_argument("--single", type=int, default=2_000,
                        help="single appends per repetition (default 2,000)")
    parser.add_argument("--members", type=int, default=500,
                        help="members per programme (default 500)")
    parser.add_argument("--repetitions", type=int, default=3,
                        help="runs per measurement; the median is reported (default 3)")
    parser.add_argument("--postgres-url", default=os.environ.get(POSTGRES_URL_VARIABLE,
                                                                 DEFAULT_POSTGRES_URL),
                        help="server on which a throwaway database is created and dropped")
    parser.add_argument("--sqlite-dir", default=None,
                        help="folder for the temporary SQLite file (default: the system's "
                             "temporary folder; use a real disk, not tmpfs, for fsync costs)")
    parser.add_argument("--no-analyze", action="store_true",
                        help="do not ANALYZE the PostgreSQL database after the warm-up")
    parser.add_argument("--json", type=Path, default=None, help="also write results as JSON")
    parser.add_argument("--profile-bulk", type=Path, default=None,
                        help="after the timed runs, profile one SQLite bulk run into this file")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    arguments = parse_arguments(argv)
    settings = Settings(
        bulk_entries=arguments.entries,
        batch_entries=arguments.batch,
        single_appends=arguments.single,
        members=arguments.members,
        repetitions=arguments.repetitions,
    )
    started = time.perf_counter()
    load_average_at_start = os.getloadavg()
    version = code_version()
    results: list[Result] = []
    versions: list[str] = []
    if not arguments.postgres_only:
        sqlite_results, sqlite_version = run_sqlite(settings, arguments.sqlite_dir,
                                                    arguments.profile_bulk)
        results += sqlite_results
        versions.append(sqlite_version)
    if not arguments.sqlite_only:
        postgres_results, postgres_version = run_postgres(settings, arguments.postgres_url,
                                                          not arguments.no_analyze)
        results += postgres_results
        versions.append(postgres_version)
    elapsed_s = time.perf_counter() - started
    load_averages = {"load_average_at_start": load_average_at_start,
                     "load_average_at_end": os.getloadavg()}
    start_load, end_load = (", ".join(f"{value:.1f}" for value in load)
                            for load in load_averages.values())

    print()
    print(markdown_table(results))
    for note in notes(results):
        print()
        print(note)
    verdict = bulk_target_verdict(results)
    if verdict:
        print()
        print(verdict)
    print(f"\nCode {version}; {', '.join(versions)}; whole run {elapsed_s:.0f} s; load average "
          f"(1, 5, 15 min) {start_load} at the start, {end_load} at the end")
    if arguments.json is not None:
        arguments.json.write_text(json.dumps(
            {
                "machine": machine_description() | {"databases": versions} | load_averages,
                "settings": asdict(settings),
                "command": sys.argv,
                "code": version,
                "elapsed_s": elapsed_s,
                "bulk_target": verdict,
                "results": [asdict(result) for result in results],
            },
            indent=2,
            ensure_ascii=False,
        ) + "\n", encoding="utf-8")
        print(f"Results written to {arguments.json}")


if __name__ == "__main__":
    main()
