"""Redemption over HTTP under concurrent shop devices: `check`, then `redeem`, of the same vouchers.

For each database (a temporary SQLite file; a throwaway PostgreSQL database,
dropped at the end) the script migrates a new store, makes a programme with
members who hold points, a shop and the shop's API key, and issues all the
vouchers *before* the server starts, so that issuing costs nothing during
the measurement. Then it starts real gunicorn (`api/gunicorn.conf.py`,
default worker count) and, from a second process, 50 clients (threads, each
with its own `http.client` connection) run two phases over the same
vouchers:

1. `POST /programmes/<p>/redemptions/check {"token": ...}`, each voucher once;
   every answer must be 200 with `valid: true`;
2. `POST /programmes/<p>/redemptions {"token": ...}`, each voucher exactly
   once, so every request is a real redemption; every answer must be 201.

A separate set of vouchers is checked and redeemed first, untimed, as a
warm-up. Any other status fails the benchmark: the statuses and the first
problem bodies are printed and the script exits non-zero. Afterwards the
chain is verified and the number of `voucher_redeem` entries checked.

The ratio is redeem / check: for rates, how many redemptions per check the
server completes in the same time; for latencies, how many times longer a
redemption takes (higher is worse).

    .venv/bin/python benchmarks/redeem_load.py [--vouchers 2000] [--clients 50]
        [--sqlite-only | --postgres-only] [--write-docs]

`--write-docs` appends the run as the section "Redemption over HTTP" at the
end of docs/BENCHMARKS.md (replacing that section if it is already there).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: `api`, `ledger` and `redemption` from here
    sys.path.insert(0, str(ROOT))

GUNICORN = Path(sys.executable).parent / "gunicorn"
DOCS = ROOT / "docs" / "BENCHMARKS.md"
SECTION_TITLE = "## Redemption over HTTP"
DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
POSTGRES_URL_VARIABLE = "JIFEN_BENCH_POSTGRES_URL"
PROGRAMME = "bench-redeem"
SHOP = "bench-shop"
MEMBER_COUNT = 100
VOUCHER_POINTS = 10
STARTUP_TIMEOUT_S = 60
REQUEST_TIMEOUT_S = 30
SHOWN_FAILURES = 5


# -- the load generator (runs in its own process) --------------------------------------------


def run_clients(job: dict) -> dict:
    """Send one request per token from `job["clients"]` threads; latencies and statuses.

    Each thread keeps one `http.client` connection and reopens it when the
    server closes it (gunicorn's sync workers close after every response).
    The clock starts when every thread is ready to send.
    """
    tokens = job["tokens"]
    body_key = "token"
    headers = {"Authorization": f"Bearer {job['key']}", "Content-Type": "application/json"}
    next_index = 0
    index_lock = threading.Lock()
    latencies_s: list[float] = []
    statuses: Counter[int] = Counter()
    failures: list[dict] = []
    problems: list[str] = []
    result_lock = threading.Lock()
    start = threading.Barrier(job["clients"] + 1)

    def client() -> None:
        nonlocal next_index
        connection = http.client.HTTPConnection("127.0.0.1", job["port"],
                                                timeout=REQUEST_TIMEOUT_S)
        own_latencies_s, own_statuses, own_failures = [], Counter(), []
        start.wait()
        while True:
            with index_lock:
                if next_index >= len(tokens):
                    break
                token = tokens[next_index]
                next_index += 1
            payload = json.dumps({body_key: token})
            began = time.perf_counter()
            try:
                connection.request("POST", job["path"], payload, headers)
                response = connection.getresponse()
                answer = response.read()
            except (OSError, http.client.HTTPException) as error:
                connection.close()
                own_statuses[0] += 1
                own_failures.append({"status": 0, "error": repr(error)})
                continue
            own_latencies_s.append(time.perf_counter() - began)
            own_statuses[response.status] += 1
            if response.status != job["expected_status"] or (
                    job["expect_valid"] and not json.loads(answer).get("valid")):
                own_failures.append({"status": response.status,
                                     "body": answer.decode("utf-8", "replace")[:500]})
            if response.will_close:
                connection.close()
        connection.close()
        with result_lock:
            latencies_s.extend(own_latencies_s)
            statuses.update(own_statuses)
            failures.extend(own_failures)

    def guarded_client() -> None:
        try:
            client()
        except BaseException as error:  # noqa: BLE001 - reported, so the run fails visibly
            with result_lock:
                problems.append(repr(error))

    threads = [threading.Thread(target=guarded_client) for _ in range(job["clients"])]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed_s = time.perf_counter() - began
    return {"elapsed_s": elapsed_s, "latencies_s": latencies_s,
            "statuses": {str(status): count for status, count in statuses.items()},
            "failures": failures[:SHOWN_FAILURES], "failure_count": len(failures),
            "thread_problems": problems}


def client_main() -> None:
    """`--client`: read a job as JSON on stdin, write the result as JSON on stdout."""
    job = json.load(sys.stdin)
    json.dump(run_clients(job), sys.stdout)


def load(port: int, path: str, key: str, tokens: list[str], clients: int,
         expected_status: int, expect_valid: bool) -> dict:
    """Run the load generator in a second process (not the one that started gunicorn)."""
    job = {"port": port, "path": path, "key": key, "tokens": tokens, "clients": clients,
           "expected_status": expected_status, "expect_valid": expect_valid}
    finished = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--client"],
                              input=json.dumps(job), capture_output=True, text=True,
                              check=True, cwd=ROOT)
    return json.loads(finished.stdout)


# -- measurements ---------------------------------------------------------------------------


@dataclass
class Phase:
    endpoint: str
    requests: int
    elapsed_s: float
    latencies_s: list[float]
    statuses: dict[str, int]
    failure_count: int
    failures: list[dict] = field(default_factory=list)

    @property
    def per_s(self) -> float:
        return self.requests / self.elapsed_s

    def percentile_ms(self, percent: float) -> float:
        """Nearest-rank percentile of the per-request latencies."""
        ordered = sorted(self.latencies_s)
        rank = max(1, -(-len(ordered) * percent // 100))
        return ordered[int(rank) - 1] * 1000


@dataclass
class Run:
    database: str
    workers: int
    clients: int
    vouchers: int
    check: Phase
    redeem: Phase
    redeemed_entries: int
    chain_verified: bool

    @property
    def ok(self) -> bool:
        return (self.check.failure_count == 0 and self.redeem.failure_count == 0
                and self.redeem.statuses == {"201": self.vouchers}
                and self.redeemed_entries == self.vouchers and self.chain_verified)


def phase(endpoint: str, result: dict, expected: int) -> Phase:
    if result["thread_problems"]:
        raise RuntimeError(f"load generator threads failed: {result['thread_problems']}")
    return Phase(endpoint=endpoint, requests=expected, elapsed_s=result["elapsed_s"],
                 latencies_s=result["latencies_s"], statuses=result["statuses"],
                 failure_count=result["failure_count"], failures=result["failures"])


# -- the store ------------------------------------------------------------------------------


@contextmanager
def throwaway_database(backend: str, postgres_url: str) -> Iterator[str]:
    """A new, migrated database for this run; removed at the end, whatever happens."""
    import sqlalchemy

    from ledger import migrations
    from ledger.storage import create_engine

    def migrate(url: str) -> None:
        engine = create_engine(url)
        migrations.upgrade(engine)
        engine.dispose()

    if backend == "sqlite":
        folder = Path(tempfile.mkdtemp(prefix="jifen-redeem-bench-"))
        try:
            url = f"sqlite:///{folder / 'bench.sqlite3'}"
            migrate(url)
            yield url
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return
    name = f"jifen_redeem_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(postgres_url).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        url = sqlalchemy.make_url(postgres_url).set(database=name).render_as_string(
            hide_password=False)
        migrate(url)
        yield url
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def prepare(url: str, voucher_count: int) -> tuple[str, list[str]]:
    """The programme, its members' points, the shop and `voucher_count` vouchers.

    Returns the shop key's secret and the vouchers' tokens. Each member gets
    enough points for their share of the vouchers, 10 points each.
    """
    from ledger.accounts import ISSUANCE
    from ledger.chain import Posting, append
    from ledger.keys import create_key
    from ledger.organisation import create_household, create_member, create_unit
    from ledger.programmes import create_programme
    from ledger.storage import create_engine
    from redemption.shops import create_shop
    from redemption.vouchers import issue_voucher, voucher_token

    engine = create_engine(url)
    create_programme(engine, PROGRAMME, "兑换基准测试")
    create_unit(engine, PROGRAMME, "town", "基准镇", "town")
    create_household(engine, PROGRAMME, "h", "基准户", "town")
    vouchers_per_member = -(-voucher_count // MEMBER_COUNT)
    for index in range(MEMBER_COUNT):
        member = f"m{index}"
        create_member(engine, PROGRAMME, member, f"居民{index}", "h")
        points = vouchers_per_member * VOUCHER_POINTS
        append(engine, PROGRAMME, kind="award", actor="system:bench",
               postings=[Posting(f"member:{member}", points), Posting(ISSUANCE, -points)])
    create_shop(engine, PROGRAMME, SHOP, "基准便民超市", ["town"], "基准")
    key = create_key(engine, kind="shop", principal=SHOP, label="bench till",
                     programme=PROGRAMME).secret
    tokens = []
    for number in range(voucher_count):
        voucher = issue_voucher(engine, PROGRAMME, f"m{number % MEMBER_COUNT}",
                                actor="system:bench", points=VOUCHER_POINTS)
        tokens.append(voucher_token(engine, PROGRAMME, voucher.id))
    if engine.dialect.name == "postgresql":  # fresh tables: give the planner statistics
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("ANALYZE")
    engine.dispose()
    return key, tokens


def redeemed_entries(url: str) -> tuple[int, bool]:
    """How many `voucher_redeem` entries the chain holds, and whether it verifies."""
    from sqlalchemy import func, select

    from ledger.models import Entry
    from ledger.programmes import get_programme
    from ledger.storage import create_engine
    from ledger.verify import verify_chain

    engine = create_engine(url)
    try:
        programme_id = get_programme(engine, PROGRAMME).id
        with engine.connect() as connection:
            count = connection.execute(
                select(func.count()).select_from(Entry)
                .where(Entry.programme_id == programme_id, Entry.kind == "voucher_redeem")
            ).scalar_one()
        return count, verify_chain(engine, PROGRAMME).ok
    finally:
        engine.dispose()


# -- gunicorn -------------------------------------------------------------------------------


@dataclass
class Server:
    process: subprocess.Popen
    port: int
    log_path: Path

    def workers(self) -> int:
        return self.log_path.read_text(errors="replace").count("Booting worker with pid")


@contextmanager
def gunicorn(url: str, folder: Path) -> Iterator[Server]:
    """Real gunicorn on a free port with the default worker count; SIGTERM at the end."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    metrics_dir = folder / "metrics"
    metrics_dir.mkdir()
    environment = os.environ | {"JIFEN_DATABASE_URL": url, "JIFEN_BIND": f"127.0.0.1:{port}",
                                "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    environment.pop("JIFEN_WORKERS", None)
    log_path = folder / "gunicorn.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [str(GUNICORN), "-c", "api/gunicorn.conf.py", "api.app:create_app()"], cwd=ROOT,
            env=environment, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    server = Server(process, port, log_path)
    try:
        _wait_until_ready(server)
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def _wait_until_ready(server: Server) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"gunicorn exited:\n{server.log_path.read_text()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/readyz",
                                        timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"gunicorn not ready in {STARTUP_TIMEOUT_S} s")


# -- one database ---------------------------------------------------------------------------


def run_database(backend: str, arguments: argparse.Namespace) -> Run:
    database = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}[backend]
    count, warm_up = arguments.vouchers, arguments.warm_up
    with throwaway_database(backend, arguments.postgres_url) as url, \
            tempfile.TemporaryDirectory(prefix="jifen-redeem-bench-") as scratch:
        began = time.perf_counter()
        key, tokens = prepare(url, count + warm_up)
        print(f"{database}: {count + warm_up} vouchers issued in "
              f"{time.perf_counter() - began:.1f} s", file=sys.stderr)
        warm_up_tokens, tokens = tokens[:warm_up], tokens[warm_up:]
        check_path = f"/programmes/{PROGRAMME}/redemptions/check"
        redeem_path = f"/programmes/{PROGRAMME}/redemptions"
        with gunicorn(url, Path(scratch)) as server:
            workers = server.workers()
            for path, status, valid in ((check_path, 200, True), (redeem_path, 201, False)):
                warmed = load(server.port, path, key, warm_up_tokens, arguments.clients,
                              status, valid)
                if warmed["failure_count"] or warmed["thread_problems"]:
                    raise RuntimeError(f"warm-up failed on {path}: {warmed}")
            check = phase("check", load(server.port, check_path, key, tokens,
                                        arguments.clients, 200, True), count)
            redeem = phase("redeem", load(server.port, redeem_path, key, tokens,
                                          arguments.clients, 201, False), count)
        entries, verified = redeemed_entries(url)
    return Run(database=database, workers=workers, clients=arguments.clients, vouchers=count,
               check=check, redeem=redeem, redeemed_entries=entries - warm_up,
               chain_verified=verified)


# -- reporting ------------------------------------------------------------------------------


def table(runs: list[Run]) -> str:
    lines = ["| Database | Measurement | Unit | redeem | check | redeem / check |",
             "|---|---|---|---:|---:|---:|"]
    for run in runs:
        rows = [("requests/s", "requests/s", run.redeem.per_s, run.check.per_s),
                ("latency p50", "ms", run.redeem.percentile_ms(50),
                 run.check.percentile_ms(50)),
                ("latency p99", "ms", run.redeem.percentile_ms(99),
                 run.check.percentile_ms(99))]
        for name, unit, redeem, check in rows:
            digits = 0 if unit == "requests/s" else 1
            lines.append(f"| {run.database} | {name} | {unit} | {redeem:,.{digits}f} | "
                         f"{check:,.{digits}f} | {redeem / check:.2f} |")
    return "\n".join(lines)


def statuses(runs: list[Run]) -> str:
    lines = []
    for run in runs:
        lines.append(
            f"- {run.database}: {run.workers} gunicorn workers, {run.clients} clients, "
            f"{run.vouchers:,} vouchers. check statuses {run.check.statuses} in "
            f"{run.check.elapsed_s:.1f} s; redeem statuses {run.redeem.statuses} in "
            f"{run.redeem.elapsed_s:.1f} s; {run.redeemed_entries:,} `voucher_redeem` "
            f"entries; chain verifies: {run.chain_verified}.")
        for name, measured in (("check", run.check), ("redeem", run.redeem)):
            for failure in measured.failures:
                lines.append(f"  - {name} failure: {failure}")
    return "\n".join(lines)


def load_average() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def section(runs: list[Run], command: str, started: datetime, load_before: str,
            load_after: str) -> str:
    return f"""{SECTION_TITLE}

Shop devices checking and redeeming vouchers through the API, under
{runs[0].clients} concurrent clients, on both databases. The script is
`benchmarks/redeem_load.py`: a throwaway store per database, a programme
with {MEMBER_COUNT} members holding points, one shop and its API key; all
vouchers ({VOUCHER_POINTS} points each, valid at every shop) are issued
before gunicorn starts. Real gunicorn (`api/gunicorn.conf.py`, default
worker count: `2 × nproc + 1` sync workers) serves; a second process runs
{runs[0].clients} client threads, each with its own `http.client`
connection (gunicorn's sync workers close the connection after every
response, so each request also pays a TCP connect). First every voucher is
checked once (`POST /programmes/<p>/redemptions/check {{"token": …}}`,
all must answer 200 `valid: true`), then every voucher is redeemed exactly
once (`POST /programmes/<p>/redemptions`, all must answer 201), so each
redeem is a real one that appends a `voucher_redeem` entry. A separate set
of vouchers is checked and redeemed untimed first, as a warm-up. Latency is
per request, measured in the client, so it includes queueing for a worker;
requests/s is the requests over the wall time from the moment all clients
are ready to the last answer. For latencies the ratio is redeem / check
*time* (higher is worse).

Run: {started:%Y-%m-%d %H:%M} UTC, `{command}`.
Load average before: `{load_before}`; after: `{load_after}`.

{table(runs)}

{statuses(runs)}

**The machine was shared** (2 vCPUs; other engineers' test suites and CI
runs were on the same cores), and the load generator, gunicorn's workers
and, for PostgreSQL, the database server all run on those same two cores.
The absolute rates and latencies move a lot from run to run; the
redeem / check ratio, measured in the same run on the same vouchers, is the
steadier figure. Re-run on a quiet machine before quoting absolute numbers.
"""


def write_docs(text: str) -> None:
    """Append the section at the end of the file, replacing an earlier copy of it."""
    current = DOCS.read_text()
    start = current.find(f"\n{SECTION_TITLE}\n")
    if start != -1:
        end = current.find("\n## ", start + len(SECTION_TITLE) + 2)
        current = current[:start + 1] + (current[end + 1:] if end != -1 else "")
    DOCS.write_text(current.rstrip("\n") + "\n\n" + text)


def main() -> None:
    if "--client" in sys.argv[1:]:
        client_main()
        return
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vouchers", type=int, default=2000,
                        help="vouchers checked, then redeemed, per database")
    parser.add_argument("--warm-up", type=int, default=100,
                        help="vouchers checked and redeemed untimed first")
    parser.add_argument("--clients", type=int, default=50)
    only = parser.add_mutually_exclusive_group()
    only.add_argument("--sqlite-only", action="store_true")
    only.add_argument("--postgres-only", action="store_true")
    parser.add_argument("--postgres-url",
                        default=os.environ.get(POSTGRES_URL_VARIABLE, DEFAULT_POSTGRES_URL))
    parser.add_argument("--write-docs", action="store_true",
                        help=f"append the run to {DOCS.relative_to(ROOT)}")
    arguments = parser.parse_args()
    backends = ["sqlite"] * (not arguments.postgres_only) + \
        ["postgresql"] * (not arguments.sqlite_only)
    started = datetime.now(UTC)
    load_before = load_average()
    runs = [run_database(backend, arguments) for backend in backends]
    load_after = load_average()
    print(table(runs))
    print()
    print(statuses(runs))
    print(f"\nload average before: {load_before}\nafter: {load_after}")
    if not all(run.ok for run in runs):
        print("\nFAILED: a check or redeem did not answer as expected (see above)",
              file=sys.stderr)
        sys.exit(1)
    if arguments.write_docs:
        command = ".venv/bin/python benchmarks/redeem_load.py " + " ".join(
            argument for argument in sys.argv[1:])
        write_docs(section(runs, command.strip(), started, load_before, load_after))


if __name__ == "__main__":
    main()
