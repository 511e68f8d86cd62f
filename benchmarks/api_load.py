"""HTTP API load: single awards per second and their latency under gunicorn, beside /healthz.

For each database (a temporary SQLite file; a throwaway PostgreSQL database,
dropped at the end) this migrates a fresh store, makes `--programmes`
programmes of `--members` members, each with an uncapped rule (`bench`: 1
point, no caps, no cooldown, no approval, so no award is ever refused) and
an organiser key, then starts gunicorn exactly as `make run` does
(`api/gunicorn.conf.py`, its default worker count unless `--workers`) and
loads it from a second process, `wrk` (Debian package `wrk`):

* `GET /healthz`, the trivial endpoint of the same app: what HTTP, gunicorn,
  Flask and the app's hooks cost;
* `POST /programmes/<p>/awards`, each request to the next member (and the
  next programme), each with its own `Idempotency-Key`, as every real write
  carries one.

The ratio healthz/awards is what the ledger (authentication, authorisation,
rule checks, the chain append, the idempotency record) costs per request;
the CPU time of gunicorn's processes per request says whether the app or
the database is the limit. After the run the chains are verified and their
growth checked against the awards wrk saw succeed. `--profile N` then runs N
awards in-process under cProfile: time by package, SQL statements and
transactions per award.

    .venv/bin/python benchmarks/api_load.py [--duration 15] [--sqlite-only | --postgres-only]
        [--workers N] [--connections N] [--programmes N] [--profile 300] [--write-docs]

`--write-docs` puts the run between the markers of the "HTTP API" section
of docs/BENCHMARKS.md (appending the section if it is missing), keeping the
discussion that follows them.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import platform
import pstats
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.request
import uuid
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy
from sqlalchemy import event

from ledger import migrations
from ledger.chain import head
from ledger.keys import create_key
from ledger.organisation import create_household, create_member, create_unit, grant_role
from ledger.programmes import create_programme
from ledger.rules import set_rule
from ledger.storage import create_engine
from ledger.verify import verify_chain

ROOT = Path(__file__).resolve().parents[1]
GUNICORN = Path(sys.executable).parent / "gunicorn"
DOCS = ROOT / "docs" / "BENCHMARKS.md"
SECTION_TITLE = "## HTTP API"
DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
POSTGRES_URL_VARIABLE = "JIFEN_BENCH_POSTGRES_URL"
PROGRAMME_PREFIX = "bench-api"
RULE = {"code": "bench", "name": "基准测试", "category": "基准", "sign": "award", "points": 1}
TARGET_AWARDS_PER_S = 500
TARGET_P99_MS = 50.0
STARTUP_TIMEOUT_S = 60
WARM_UP_S = 2

WRK_REPORT = """
done = function(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p90_us": %d, '
    .. '"p99_us": %d, "max_us": %d, "mean_us": %.1f, "connect_errors": %d, '
    .. '"read_errors": %d, "write_errors": %d, "status_errors": %d, "timeouts": %d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, latency.mean, errors.connect, errors.read,
    errors.write, errors.status, errors.timeout))
end
"""

AWARDS_SCRIPT = """
local members = {members}
local paths = {{{paths}}}
local tokens = {{{tokens}}}
local run = "{run}"
local counter = 0
local thread_number = 0
local next_thread = 0

function setup(thread)
  thread:set("number", next_thread)
  next_thread = next_thread + 1
end

function init(args)
  thread_number = tonumber(number) or 0
end

request = function()
  counter = counter + 1
  local member = "m" .. ((counter * 7919 + thread_number * 104729) % members)
  local programme = 1 + (counter % #paths)
  local body = '{{"member": "' .. member .. '", "rule": "bench", "memo": "load"}}'
  return wrk.format("POST", paths[programme], {{
    ["Authorization"] = "Bearer " .. tokens[programme],
    ["Content-Type"] = "application/json",
    ["Idempotency-Key"] = run .. "-" .. thread_number .. "-" .. counter,
  }}, body)
end
"""


def awards_script(keys: dict[str, str], member_count: int, run: str) -> str:
    """wrk's script: each request the next member, programmes in turn, a key of its own."""
    return AWARDS_SCRIPT.format(
        members=member_count, run=run,
        paths=", ".join(f'"/programmes/{programme}/awards"' for programme in keys),
        tokens=", ".join(f'"{secret}"' for secret in keys.values())) + WRK_REPORT


@dataclass
class Measurement:
    database: str
    endpoint: str
    requests: int
    duration_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: int
    app_cpu_s: float
    """CPU time of gunicorn and its workers during the run (not the database server's)."""

    @property
    def per_s(self) -> float:
        return self.requests / self.duration_s

    @property
    def app_cpu_ms_per_request(self) -> float:
        return self.app_cpu_s / self.requests * 1000


@dataclass
class Run:
    database: str
    workers: int
    connections: int
    programmes: int
    healthz: Measurement
    awards: Measurement
    entries_appended: int
    chain_verified: bool
    profile: str | None = None


# -- the store and the programme ------------------------------------------------------------


@contextmanager
def throwaway_database(backend: str, postgres_url: str) -> Iterator[str]:
    """A new, migrated database for this run; removed at the end, whatever happens."""
    if backend == "sqlite":
        folder = Path(tempfile.mkdtemp(prefix="jifen-api-bench-"))
        try:
            url = f"sqlite:///{folder / 'bench.sqlite3'}"
            _migrate(url)
            yield url
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return
    name = f"jifen_api_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(postgres_url).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        url = sqlalchemy.make_url(postgres_url).set(database=name).render_as_string(
            hide_password=False)
        _migrate(url)
        yield url
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def _migrate(url: str) -> None:
    engine = create_engine(url)
    migrations.upgrade(engine)
    engine.dispose()


def make_programmes(url: str, programme_count: int, member_count: int) -> dict[str, str]:
    """The benchmark's programmes, each with its organiser's key: code -> secret."""
    engine = create_engine(url)
    keys = {}
    for number in range(programme_count):
        programme = f"{PROGRAMME_PREFIX}-{number}"
        create_programme(engine, programme, "HTTP API benchmark")
        create_unit(engine, programme, "town", "基准镇", "town")
        create_household(engine, programme, "h", "基准户", "town")
        for index in range(member_count):
            create_member(engine, programme, f"m{index}", f"居民{index}", "h")
        grant_role(engine, programme, "org", "organiser", "town")
        set_rule(engine, programme, RULE, "system:bench")
        keys[programme] = create_key(engine, kind="staff", principal="org", label="bench",
                                     programme=programme).secret
    if engine.dialect.name == "postgresql":  # fresh tables: give the planner statistics
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("ANALYZE")
    engine.dispose()
    return keys


# -- gunicorn and wrk -----------------------------------------------------------------------


@dataclass
class Server:
    process: subprocess.Popen
    port: int
    log_path: Path

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def workers(self) -> int:
        return self.log_path.read_text(errors="replace").count("Booting worker with pid")

    def cpu_s(self) -> float:
        """CPU seconds of the master, its live workers, and the workers it has reaped."""
        master = Path(f"/proc/{self.process.pid}")
        fields = (master / "stat").read_text().rsplit(")", 1)[1].split()
        ticks = sum(int(value) for value in fields[11:15])  # utime stime cutime cstime
        children = (master / "task" / str(self.process.pid) / "children").read_text().split()
        for child in children:
            try:
                child_fields = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()
            except FileNotFoundError:  # exited in between: counted in cutime from now on
                continue
            ticks += int(child_fields[11]) + int(child_fields[12])
        return ticks / os.sysconf("SC_CLK_TCK")


@contextmanager
def gunicorn(url: str, workers: int | None, folder: Path) -> Iterator[Server]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    metrics_dir = folder / "metrics"
    metrics_dir.mkdir()
    environment = os.environ | {"JIFEN_DATABASE_URL": url, "JIFEN_BIND": f"127.0.0.1:{port}",
                                "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    environment.pop("JIFEN_WORKERS", None)
    if workers is not None:
        environment["JIFEN_WORKERS"] = str(workers)
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
            with urllib.request.urlopen(server.url("/readyz"), timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"gunicorn not ready in {STARTUP_TIMEOUT_S} s")


def wrk(url: str, script: Path, duration_s: float, connections: int) -> dict:
    command = ["wrk", "--threads", "1", "--connections", str(connections),
               "--duration", f"{duration_s:g}s", "--timeout", "10s", "--script", str(script),
               url]
    finished = subprocess.run(command, capture_output=True, text=True, check=True)
    for line in finished.stdout.splitlines():
        if line.startswith("WRK_JSON "):
            return json.loads(line.removeprefix("WRK_JSON "))
    raise RuntimeError(f"wrk printed no summary:\n{finished.stdout}\n{finished.stderr}")


def settled_sizes(engine, programmes) -> dict[str, int]:
    """The chains' sizes once the warm-up's last requests have landed."""
    sizes = None
    while True:
        current = {programme: head(engine, programme).size for programme in programmes}
        if current == sizes:
            return current
        sizes = current
        time.sleep(0.5)


def wait_for_closed_connections(port: int, most: int = 500, timeout_s: float = 75) -> None:
    """Wait until few connections to `port` are left in TIME_WAIT.

    Sync workers close the connection after every response, so each request
    is a new TCP connection; tens of thousands in TIME_WAIT (the local port
    range holds about 28,000) make new connections stall for a one-second SYN
    retransmission, which would show as latency of whatever is measured next.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and _time_wait_count(port) > most:
        time.sleep(1)


def _time_wait_count(port: int) -> int:
    wanted = f"{port:04X}"
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not Path(table).exists():
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, remote, state = fields[1], fields[2], fields[3]
            if state == "06" and wanted in (local.rsplit(":", 1)[1], remote.rsplit(":", 1)[1]):
                count += 1
    return count


def measure(server: Server, database: str, endpoint: str, url: str, script: Path,
            duration_s: float, connections: int) -> Measurement:
    cpu_before = server.cpu_s()
    report = wrk(url, script, duration_s, connections)
    app_cpu_s = server.cpu_s() - cpu_before
    return Measurement(
        database=database, endpoint=endpoint, requests=report["requests"],
        duration_s=report["duration_us"] / 1e6, p50_ms=report["p50_us"] / 1000,
        p90_ms=report["p90_us"] / 1000, p99_ms=report["p99_us"] / 1000,
        max_ms=report["max_us"] / 1000,
        errors=sum(report[key] for key in ("connect_errors", "read_errors", "write_errors",
                                           "status_errors", "timeouts")),
        app_cpu_s=app_cpu_s)


def run_database(backend: str, arguments: argparse.Namespace) -> Run:
    database = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}[backend]
    with throwaway_database(backend, arguments.postgres_url) as url, \
            tempfile.TemporaryDirectory(prefix="jifen-api-bench-") as scratch:
        folder = Path(scratch)
        keys = make_programmes(url, arguments.programmes, arguments.members)
        healthz_script = folder / "healthz.lua"
        healthz_script.write_text(WRK_REPORT)
        script = folder / "awards.lua"
        first_awards = f"/programmes/{next(iter(keys))}/awards"
        engine = create_engine(url)
        with gunicorn(url, arguments.workers, folder) as server:
            workers = server.workers()
            connections = arguments.connections or workers
            wrk(server.url("/healthz"), healthz_script, WARM_UP_S, connections)
            script.write_text(awards_script(keys, arguments.members, "warm-up"))
            wrk(server.url(first_awards), script, WARM_UP_S, connections)
            script.write_text(awards_script(keys, arguments.members, uuid.uuid4().hex[:8]))
            wait_for_closed_connections(server.port)
            sizes_before = settled_sizes(engine, keys)
            awards = measure(server, database, "POST /awards", server.url(first_awards), script,
                             arguments.duration, connections)
            wait_for_closed_connections(server.port)
            healthz = measure(server, database, "GET /healthz", server.url("/healthz"),
                              healthz_script, arguments.healthz_duration, connections)
        appended = sum(head(engine, programme).size - size for programme, size
                       in sizes_before.items())
        verified = all(verify_chain(engine, programme).ok for programme in keys)
        succeeded = awards.requests - awards.errors
        if not succeeded <= appended <= succeeded + connections:
            raise AssertionError(f"wrk saw {succeeded} awards succeed; the chains grew by "
                                 f"{appended}")
        profile = None
        if arguments.profile:
            programme, secret = next(iter(keys.items()))
            profile = profile_awards(url, programme, secret, arguments.profile)
        engine.dispose()
    return Run(database, workers, connections, len(keys), healthz, awards, appended, verified,
               profile)


# -- where the time goes --------------------------------------------------------------------


STANDARD_LIBRARY = Path(sysconfig.get_paths()["stdlib"])


def profile_awards(url: str, programme: str, token: str, count: int) -> str:
    """N awards through the Flask test client under cProfile: time by package, SQL per award."""
    from api.app import create_app
    from api.config import Settings

    app = create_app(Settings(database_url=url, log_level="INFO"))
    client = app.test_client()
    engine = app.extensions["jifen"].engine
    statements: list[str] = []
    transactions = [0]

    @event.listens_for(engine, "before_cursor_execute")
    def count_statement(connection, cursor, statement, parameters, context, executemany):
        statements.append(statement.split(None, 1)[0].upper())

    @event.listens_for(engine, "begin")
    def count_transaction(connection):
        transactions[0] += 1

    headers = {"Authorization": f"Bearer {token}"}
    path = f"/programmes/{programme}/awards"
    run = uuid.uuid4().hex[:8]
    for index in range(20):  # warm-up: imports, pools, caches
        client.post(path, json={"member": f"m{index}", "rule": "bench"},
                    headers=headers | {"Idempotency-Key": f"{run}-warm-{index}"})
    statements.clear()
    transactions[0] = 0
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    for index in range(count):
        response = client.post(path, json={"member": f"m{index % 100}", "rule": "bench"},
                               headers=headers | {"Idempotency-Key": f"{run}-{index}"})
        if response.status_code != 201:
            raise AssertionError(response.get_data(as_text=True))
    profiler.disable()
    elapsed_s = time.perf_counter() - started
    engine.dispose()

    stats = pstats.Stats(profiler)
    by_package: dict[str, float] = defaultdict(float)
    total_s = 0.0
    for (filename, _, function), (_, _, own_s, _, _) in stats.stats.items():
        total_s += own_s
        by_package[_package_of(filename, function)] += own_s
    kinds: dict[str, int] = defaultdict(int)
    for statement in statements:
        kinds[statement] += 1
    lines = [f"{count} awards in-process (Flask test client, one thread): "
             f"{elapsed_s / count * 1000:.2f} ms each under the profiler; "
             f"{len(statements) / count:.1f} SQL statements and {transactions[0] / count:.1f} "
             "transactions per award (" + ", ".join(
                 f"{kind} {number / count:.1f}" for kind, number in
                 sorted(kinds.items(), key=lambda item: -item[1])) + ")",
             "", "| package | own time per award, ms | share |", "|---|---:|---:|"]
    for package, own_s in sorted(by_package.items(), key=lambda item: -item[1])[:12]:
        lines.append(f"| {package} | {own_s / count * 1000:.2f} | {own_s / total_s:.0%} |")
    top = sorted(((own_s, f"{Path(filename).name}:{function}")
                  for (filename, _, function), (_, _, own_s, _, _) in stats.stats.items()),
                 reverse=True)[:10]
    lines += ["", "Top functions by own time (ms per award): " + "; ".join(
        f"`{name}` {own_s / count * 1000:.2f}" for own_s, name in top)]
    return "\n".join(lines)


def _package_of(filename: str, function: str) -> str:
    if filename == "~":  # built-ins: name the ones that matter by what they do
        for marker, name in (("sqlite3", "sqlite3 driver (C)"), ("hashlib", "hashlib"),
                             ("_json", "stdlib json"), ("commit", "database commit")):
            if marker in function:
                return name
        return "built-ins"
    path = Path(filename)
    if "site-packages" in path.parts:
        return path.parts[path.parts.index("site-packages") + 1].split(".")[0]
    if path.is_relative_to(ROOT):
        return path.relative_to(ROOT).parts[0]
    if path.is_relative_to(STANDARD_LIBRARY):
        return "stdlib " + path.relative_to(STANDARD_LIBRARY).parts[0].removesuffix(".py")
    return path.name


# -- reporting ------------------------------------------------------------------------------


def machine() -> dict[str, str]:
    model = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    wrk_version = subprocess.run(["wrk", "--version"], capture_output=True, text=True)
    return {
        "cpus": f"{os.cpu_count()} × {model}",
        "memory": f"{memory_gib:.0f} GiB",
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "sqlite": sqlite3.sqlite_version,
        "gunicorn": _version("gunicorn"),
        "wrk": (wrk_version.stdout or wrk_version.stderr).split("[")[0].strip(),
        "date": datetime.now(UTC).isoformat(timespec="minutes"),
    }


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


def table(runs: list[Run]) -> str:
    lines = ["| database | workers | connections | programmes | endpoint | requests/s | p50 ms | "
             "p90 ms | p99 ms | max ms | errors | app CPU ms/request |",
             "|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for run in runs:
        for measured in (run.healthz, run.awards):
            lines.append(
                f"| {run.database} | {run.workers} | {run.connections} | {run.programmes} | "
                f"{measured.endpoint} | "
                f"{measured.per_s:,.0f} | {measured.p50_ms:.1f} | {measured.p90_ms:.1f} | "
                f"{measured.p99_ms:.1f} | {measured.max_ms:.0f} | {measured.errors} | "
                f"{measured.app_cpu_ms_per_request:.2f} |")
    return "\n".join(lines)


def verdicts(runs: list[Run]) -> str:
    lines = []
    for run in runs:
        awards = run.awards
        met = awards.per_s >= TARGET_AWARDS_PER_S and awards.p99_ms < TARGET_P99_MS
        lines.append(
            f"- **{run.database}**: {awards.per_s:,.0f} awards/s, p99 {awards.p99_ms:.1f} ms: "
            f"target ({TARGET_AWARDS_PER_S}/s, p99 < {TARGET_P99_MS:.0f} ms) "
            f"**{'met' if met else 'not met'}**. /healthz serves "
            f"{run.healthz.per_s / awards.per_s:.1f}× as many requests per second "
            f"(p50 {awards.p50_ms / run.healthz.p50_ms:.1f}× slower per award); "
            f"the chain grew by {run.entries_appended:,} entries and verifies: "
            f"{'yes' if run.chain_verified else 'NO'}.")
    return "\n".join(lines)


def section(runs: list[Run], command: str, host: dict[str, str], load: tuple) -> str:
    """This run's part of the "HTTP API" section: what was run, where, and the figures."""
    parts = [
        "Measured by `benchmarks/api_load.py`: gunicorn started as `make run` starts it "
        "(`api/gunicorn.conf.py`: sync workers, by default 2 × CPUs + 1 of them; JSON request "
        "logs at INFO, here to a file), loaded by `wrk` from a second process on the same "
        "machine (one wrk thread, as many connections as workers unless said otherwise). "
        "Awards go to the programme's members in turn under an uncapped 1-point rule, each "
        "with its own `Idempotency-Key`, so none is refused; `GET /healthz` of the same app, "
        "in the same run, is the baseline. *App CPU* is the CPU time of gunicorn and its "
        "workers (from `/proc`) over the requests served: the database server's is not in it. "
        "The chains are verified after each run and their growth checked against the awards "
        "wrk saw succeed.", "",
        "```sh", "apt-get install -y wrk   # once", command, "```", "",
        "| | |", "|---|---|"]
    parts += [f"| {key} | {value} |" for key, value in host.items()]
    parts += [f"| load average | {load[0]:.1f} at the start, {load[1]:.1f} at the end |", "",
              table(runs), "", verdicts(runs)]
    for run in runs:
        if run.profile:
            parts += ["", f"### Where an award's time goes ({run.database}, in-process)", "",
                      run.profile]
    return "\n".join(parts) + "\n"


BEGIN_MARKER = "<!-- benchmarks/api_load.py --write-docs: from here -->"
END_MARKER = "<!-- benchmarks/api_load.py --write-docs: to here -->"


def write_section(text: str) -> None:
    """Put this run between the markers of the "HTTP API" section of docs/BENCHMARKS.md.

    What follows the end marker (the discussion) is kept; without the markers,
    the section is appended at the end of the file.
    """
    current = DOCS.read_text() if DOCS.exists() else ""
    block = f"{BEGIN_MARKER}\n\n{text}\n{END_MARKER}\n"
    if BEGIN_MARKER in current and END_MARKER in current:
        before = current[:current.index(BEGIN_MARKER)]
        after = current[current.index(END_MARKER) + len(END_MARKER) + 1:]
        DOCS.write_text(before + block + after)
        return
    DOCS.write_text(current.rstrip("\n") + f"\n\n{SECTION_TITLE}\n\n" + block)


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    databases = parser.add_mutually_exclusive_group()
    databases.add_argument("--sqlite-only", action="store_true")
    databases.add_argument("--postgres-only", action="store_true")
    parser.add_argument("--duration", type=float, default=15.0,
                        help="seconds of load on awards (default 15)")
    parser.add_argument("--healthz-duration", type=float, default=8.0,
                        help="seconds of load on /healthz (default 8: at a few thousand new "
                             "connections a second, longer runs exhaust the local ports and "
                             "measure one-second SYN retransmissions)")
    parser.add_argument("--connections", type=int, default=None,
                        help="wrk connections (default: as many as gunicorn workers)")
    parser.add_argument("--workers", type=int, default=None,
                        help="gunicorn workers (default: api/gunicorn.conf.py's)")
    parser.add_argument("--members", type=int, default=500, help="per programme (default 500)")
    parser.add_argument("--programmes", type=int, default=1,
                        help="spread awards over this many programmes, in turn (default 1): "
                             "each has its own chain, so its own lock")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="after the load, profile N awards in-process")
    parser.add_argument("--postgres-url", default=os.environ.get(POSTGRES_URL_VARIABLE,
                                                                 DEFAULT_POSTGRES_URL))
    parser.add_argument("--write-docs", action="store_true",
                        help="write the results into docs/BENCHMARKS.md (section HTTP API)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    arguments = parse_arguments(argv)
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")
    backends = ["sqlite", "postgresql"]
    if arguments.sqlite_only:
        backends = ["sqlite"]
    if arguments.postgres_only:
        backends = ["postgresql"]
    load_at_start = os.getloadavg()[0]
    runs = [run_database(backend, arguments) for backend in backends]
    load_at_end = os.getloadavg()[0]
    command = ".venv/bin/python benchmarks/api_load.py " + " ".join(
        sys.argv[1:] if argv is None else argv)
    text = section(runs, command.strip(), machine(), (load_at_start, load_at_end))
    print(text)
    if arguments.write_docs:
        write_section(text)


if __name__ == "__main__":
    main()
