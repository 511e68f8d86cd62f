"""The three boards on a programme of 100,000 entries and 2,000 members.

    .venv/bin/python benchmarks/boards.py [--sqlite-only] [--entries N] [--repetitions R]
                                          [--time-index]

For each database (a temporary SQLite file; a throwaway PostgreSQL database
on JIFEN_BENCH_POSTGRES_URL or the machine's server) it builds one
programme: a town of 10 villages, 500 households of 4, 2,000 members, 8
rules in 4 categories (one a deduction), and `--entries` awards and
deductions spread over 2026 (posted with `append_batch`, as rule-checked
awards would be, with their rule named), then reverses 1% of them. It then
times each board (`audit.boards`) and prints a markdown table of medians
over the repetitions, in milliseconds.

`--time-index` first adds `TIME_INDEX`, an index the schema does not have,
to show what it would save the period boards (which otherwise read every
entry of the programme).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import sqlalchemy

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from audit.boards import PeriodQuery, disclosure, honour_roll, standings  # noqa: E402
from ledger import migrations  # noqa: E402
from ledger.accounts import ISSUANCE, PENALTY, member_account  # noqa: E402
from ledger.chain import Draft, Posting, RuleRef, append_batch, reverse  # noqa: E402
from ledger.organisation import create_household, create_member, create_unit  # noqa: E402
from ledger.programmes import create_programme  # noqa: E402
from ledger.rules import set_rule  # noqa: E402
from ledger.storage import create_engine, is_sqlite  # noqa: E402

VILLAGES = 10
HOUSEHOLDS = 500
MEMBERS = 2_000
BATCH = 5_000
RULES = [
    ("meeting", "会议我能到", "award", 5), ("deliberation", "会议我能到", "award", 3),
    ("lead", "发展我带头", "award", 10), ("startup", "发展我带头", "award", 20),
    ("volunteer", "活动我参加", "award", 4), ("clean-up", "活动我参加", "award", 2),
    ("model", "优秀我来当", "award", 30), ("litter", "环境卫生", "deduction", 2),
]
SURNAMES = "张王李赵刘陈杨黄周吴欧阳"
YEAR_START = datetime(2026, 1, 1, tzinfo=UTC)
TIME_INDEX = "CREATE INDEX entries_by_time ON entries (programme_id, occurred_at, kind, seq)"


def build(engine, entries: int) -> str:
    code = f"boards-{uuid.uuid4().hex[:8]}"
    create_programme(engine, code, "board benchmark")
    create_unit(engine, code, "town", "镇", "town")
    for village in range(VILLAGES):
        create_unit(engine, code, f"v{village}", f"{village}村", "village", "town")
    for household in range(HOUSEHOLDS):
        create_household(engine, code, f"h{household}", f"{SURNAMES[household % 10]}家",
                         f"v{household % VILLAGES}")
    for member in range(MEMBERS):
        create_member(engine, code, f"m{member}",
                      f"{SURNAMES[member % 12]}{'三丰娜明'[member % 4]}{member}",
                      f"h{member // 4}")
    for rule, category, sign, points in RULES:
        set_rule(engine, code, {"code": rule, "name": rule, "category": category,
                                "sign": sign, "points": points}, "system:bench")
    chooser = random.Random(6)
    seconds = int((datetime(2026, 11, 29, tzinfo=UTC) - YEAR_START).total_seconds())
    first_seq = None
    for start in range(0, entries, BATCH):
        drafts = []
        for _ in range(min(BATCH, entries - start)):
            rule, _category, sign, points = chooser.choice(RULES)
            account = member_account(f"m{chooser.randrange(MEMBERS)}")
            postings = ([Posting(account, points), Posting(ISSUANCE, -points)] if sign == "award"
                        else [Posting(account, -points), Posting(PENALTY, points)])
            drafts.append(Draft(sign, postings, "system:bench",
                                YEAR_START + timedelta(seconds=chooser.randrange(seconds)),
                                rule=RuleRef(rule, 1)))
        posted = append_batch(engine, code, drafts)
        first_seq = posted[0].entry.seq if first_seq is None else first_seq
    for seq in chooser.sample(range(first_seq, first_seq + entries), entries // 100):
        reverse(engine, code, seq, actor="system:bench", memo="benchmark reversal")
    return code


def measure(engine, code: str, repetitions: int) -> list[tuple[str, float]]:
    month = PeriodQuery("month", at=date(2026, 6, 15))
    boards = [
        ("standings, members, lifetime, top 50", lambda: standings(engine, code)),
        ("standings, members, month", lambda: standings(engine, code, period=month)),
        ("standings, members, one village, lifetime",
         lambda: standings(engine, code, unit="v3")),
        ("standings, households, lifetime", lambda: standings(engine, code, by="household")),
        ("disclosure, first page of 50", lambda: disclosure(engine, code)),
        ("disclosure, month, first page", lambda: disclosure(engine, code, period=month)),
        ("honour roll, month, top 10", lambda: honour_roll(engine, code, period=month)),
        ("honour roll, lifetime, top 10",
         lambda: honour_roll(engine, code, period=PeriodQuery("lifetime"))),
    ]
    results = []
    for label, board in boards:
        board()  # warm: caches, statement compilation
        times = []
        for _ in range(repetitions):
            started = time.perf_counter()
            board()
            times.append((time.perf_counter() - started) * 1000)
        results.append((label, statistics.median(times)))
    return results


def run(url: str, entries: int, repetitions: int,
        time_index: bool) -> list[tuple[str, float]]:
    engine = create_engine(url)
    migrations.upgrade(engine)
    started = time.perf_counter()
    code = build(engine, entries)
    with engine.begin() as connection:
        if time_index:
            connection.exec_driver_sql(TIME_INDEX)
        if not is_sqlite(engine):
            connection.exec_driver_sql("ANALYZE")
    print(f"built {entries} entries in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return measure(engine, code, repetitions)


def postgres_database() -> tuple[str, str]:
    admin = sqlalchemy.make_url(os.environ.get(
        "JIFEN_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"))
    name = f"jifen_bench_{uuid.uuid4().hex[:8]}"
    with create_engine(str(admin)).execution_options(
            isolation_level="AUTOCOMMIT").connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    return admin.render_as_string(hide_password=False), name


def drop_postgres(admin_url: str, name: str) -> None:
    with create_engine(admin_url).execution_options(
            isolation_level="AUTOCOMMIT").connect() as connection:
        connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--sqlite-only", action="store_true")
    parser.add_argument("--time-index", action="store_true")
    arguments = parser.parse_args()
    columns: dict[str, list[tuple[str, float]]] = {}
    with tempfile.TemporaryDirectory() as folder:
        columns["SQLite"] = run(f"sqlite:///{folder}/boards.sqlite3", arguments.entries,
                                arguments.repetitions, arguments.time_index)
    if not arguments.sqlite_only:
        admin_url, name = postgres_database()
        try:
            url = sqlalchemy.make_url(admin_url).set(database=name).render_as_string(
                hide_password=False)
            columns["PostgreSQL"] = run(url, arguments.entries, arguments.repetitions,
                                        arguments.time_index)
        finally:
            drop_postgres(admin_url, name)
    names = list(columns)
    print(f"| board ({arguments.entries:,} entries, {MEMBERS:,} members) | "
          + " | ".join(f"{name} ms" for name in names) + " |")
    print("|---|" + "---:|" * len(names))
    for index, (label, _) in enumerate(columns[names[0]]):
        print(f"| {label} | " + " | ".join(f"{columns[name][index][1]:.1f}" for name in names)
              + " |")


if __name__ == "__main__":
    main()
