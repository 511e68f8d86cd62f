"""Awards with full rule checking against posting the same entries without rules.

    .venv/bin/python benchmarks/awards.py [--sqlite-only] [--awards N] [--repetitions R]

For each database (a temporary SQLite file; a throwaway PostgreSQL database
on JIFEN_BENCH_POSTGRES_URL or the machine's server), in one run:

- single awards through `ledger.awards.award` (member lookup, rule version
  in force, scope and role checks, then caps and cooldown under the chain
  lock), one commit each, against `ledger.chain.append` of the same
  postings with no rule checks (ratio target: at least 0.5);
- a 500-line sign-in sheet through `award_sheet`, against `append_batch`
  of the same 500 entries.

The rule has a per-member daily cap and a per-household monthly cap, as
the sample catalogs do, set high enough that nothing is refused. Sides take
turns; rates are medians of the repetitions. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ledger import migrations  # noqa: E402
from ledger.accounts import ISSUANCE, member_account  # noqa: E402
from ledger.awards import AwardRequest, award, award_sheet  # noqa: E402
from ledger.chain import Draft, Posting, RuleRef, append, append_batch  # noqa: E402
from ledger.organisation import (  # noqa: E402
    create_household,
    create_member,
    create_unit,
    grant_role,
)
from ledger.programmes import create_programme  # noqa: E402
from ledger.rules import set_rule  # noqa: E402
from ledger.storage import create_engine  # noqa: E402

MEMBERS = 200
RULE = {
    "code": "meeting", "name": "参加会议", "category": "会议我能到", "sign": "award", "points": 5,
    "caps": [{"per": "member", "period": "day", "max_times": 1_000_000},
             {"per": "household", "period": "month", "max_points": 10**12}],
}


def programme(engine) -> str:
    code = f"b-{uuid.uuid4().hex[:8]}"
    create_programme(engine, code, "benchmark")
    create_unit(engine, code, "village", "村", "village")
    for household in range(MEMBERS // 4):
        create_household(engine, code, f"h{household}", "户", "village")
    for member in range(MEMBERS):
        create_member(engine, code, f"m{member}", "居民", f"h{member // 4}")
    grant_role(engine, code, "organiser", "organiser", "village")
    set_rule(engine, code, RULE, "system:bench")
    return code


def timed(function, count: int) -> float:
    started = time.perf_counter()
    function()
    return count / (time.perf_counter() - started)


def run(url: str, awards: int, repetitions: int) -> list[tuple[str, float, float]]:
    engine = create_engine(url)
    migrations.upgrade(engine)
    with_rules, without_rules = programme(engine), programme(engine)
    when = datetime.now(UTC) - timedelta(hours=1)
    counter = iter(range(10**9))

    def single_awards() -> None:
        for index in range(awards):
            award(engine, with_rules, AwardRequest(f"m{index % MEMBERS}", "meeting",
                                                   occurred_at=when,
                                                   idempotency_key=f"a{next(counter)}"),
                  actor="organiser")

    def single_appends() -> None:
        for index in range(awards):
            append(engine, without_rules, kind="award", actor="organiser", occurred_at=when,
                   postings=[Posting(member_account(f"m{index % MEMBERS}"), 5),
                             Posting(ISSUANCE, -5)],
                   rule=RuleRef("meeting", 1), idempotency_key=f"p{next(counter)}")

    def sheet() -> None:
        batch = next(counter)
        award_sheet(engine, with_rules, [
            AwardRequest(f"m{line % MEMBERS}", "meeting", occurred_at=when,
                         idempotency_key=f"s{batch}:{line}") for line in range(500)
        ], actor="organiser")

    def batch() -> None:
        number = next(counter)
        append_batch(engine, without_rules, [
            Draft("award", [Posting(member_account(f"m{line % MEMBERS}"), 5),
                            Posting(ISSUANCE, -5)], "organiser", when,
                  rule=RuleRef("meeting", 1), idempotency_key=f"b{number}:{line}")
            for line in range(500)
        ])

    single_appends(), single_awards()  # warm up
    rates: dict[str, list[float]] = {name: [] for name in ("award", "append", "sheet", "batch")}
    for repetition in range(repetitions):
        pairs = [("award", single_awards, awards), ("append", single_appends, awards),
                 ("sheet", sheet, 500), ("batch", batch, 500)]
        if repetition % 2:
            pairs = [pairs[1], pairs[0], pairs[3], pairs[2]]
        for name, function, count in pairs:
            rates[name].append(timed(function, count))
    engine.dispose()
    median = {name: statistics.median(values) for name, values in rates.items()}
    return [
        ("single award, commit each (awards/s)", median["award"], median["append"]),
        ("500-line sheet (lines/s)", median["sheet"], median["batch"]),
        ("500-line sheet (ms per sheet)", 500_000 / median["sheet"], 500_000 / median["batch"]),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sqlite-only", action="store_true")
    parser.add_argument("--awards", type=int, default=1000)
    parser.add_argument("--repetitions", type=int, default=3)
    arguments = parser.parse_args()
    backends = [("SQLite", None)]
    if not arguments.sqlite_only:
        backends.append(("PostgreSQL", os.environ.get(
            "JIFEN_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")))
    print("| Database | Measurement | With rules | Without rules | Ratio |")
    print("|---|---|---:|---:|---:|")
    for name, admin_url in backends:
        if admin_url is None:
            folder = tempfile.mkdtemp(prefix="jifen-bench-")
            rows = run(f"sqlite:///{folder}/bench.sqlite3", arguments.awards,
                       arguments.repetitions)
        else:
            database = f"jifen_bench_{uuid.uuid4().hex[:8]}"
            admin = create_engine(admin_url).execution_options(isolation_level="AUTOCOMMIT")
            with admin.connect() as connection:
                connection.exec_driver_sql(f'CREATE DATABASE "{database}"')
            try:
                rows = run(str(admin.url.set(database=database).render_as_string(False)),
                           arguments.awards, arguments.repetitions)
            finally:
                with admin.connect() as connection:
                    connection.exec_driver_sql(f'DROP DATABASE "{database}" WITH (FORCE)')
                admin.dispose()
        for measurement, ruled, plain in rows:
            ratio = ruled / plain if "ms" not in measurement else plain / ruled
            print(f"| {name} | {measurement} | {ruled:,.0f} | {plain:,.0f} | {ratio:.2f} |")


if __name__ == "__main__":
    main()
