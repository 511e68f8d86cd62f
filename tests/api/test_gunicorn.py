"""The API under real gunicorn with several workers, driven concurrently over HTTP.

The Flask test client runs one request at a time in one process; here
`WORKERS` processes share one database, as in production. What must hold:
a capped rule posts once per member however many workers race for it; one
`Idempotency-Key` sent from many threads at once makes exactly one entry and
every caller gets the same answer; the chain still verifies; `/metrics`
sums the counters of every worker; SIGTERM stops the server cleanly.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ledger.chain import head
from ledger.verify import verify_chain
from tests.api.conftest import ApiTown, make_api_town

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
GUNICORN = Path(sys.executable).parent / "gunicorn"
WORKERS = 4
STARTUP_TIMEOUT_S = 60
SHUTDOWN_TIMEOUT_S = 30
"""Longer than a worker needs to finish its requests; gunicorn's own limit is 20 s."""
REQUEST_TIMEOUT_S = 60
AWARDS_ENDPOINT = "/programmes/<programme>/awards"
WHEN = (datetime.now(UTC) - timedelta(days=1)).isoformat()


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self):
        return json.loads(self.body)


@dataclass
class Gunicorn:
    """A gunicorn master running the app; counts the award requests sent to it."""

    process: subprocess.Popen
    port: int
    log_path: Path
    metrics_dir: Path
    awards_sent: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def request(self, method: str, path: str, body: dict | None = None,
                headers: dict[str, str] | None = None) -> Answer:
        connection = http.client.HTTPConnection("127.0.0.1", self.port,
                                                timeout=REQUEST_TIMEOUT_S)
        try:
            payload = None if body is None else json.dumps(body).encode()
            sent_headers = dict(headers or {})
            if payload is not None:
                sent_headers["Content-Type"] = "application/json"
            connection.request(method, path, body=payload, headers=sent_headers)
            response = connection.getresponse()
            return Answer(response.status, dict(response.getheaders()), response.read())
        finally:
            connection.close()

    def award(self, town: ApiTown, body: dict, idempotency_key: str | None = None) -> Answer:
        with self._lock:
            self.awards_sent += 1
        return self.request("POST", town.url("/awards"), body,
                            town.headers("organiser", idempotency_key))

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def running_gunicorn(database_url: str, directory: Path) -> Iterator[Gunicorn]:
    """Start gunicorn on a free port, wait for /readyz; kill whatever is left at the end."""
    port = _free_port()
    metrics_dir = directory / "metrics"
    metrics_dir.mkdir()
    log_path = directory / "gunicorn.log"
    environment = os.environ | {
        "JIFEN_DATABASE_URL": database_url,
        "JIFEN_BIND": f"127.0.0.1:{port}",
        "JIFEN_WORKERS": str(WORKERS),
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "JIFEN_LOG_LEVEL": "info",
    }
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [str(GUNICORN), "-c", "api/gunicorn.conf.py", "api.app:create_app()"],
            cwd=ROOT, env=environment, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
    server = Gunicorn(process, port, log_path, metrics_dir)
    try:
        _wait_until_ready(server)
        yield server
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)  # its own session: the master and workers
            process.wait(timeout=SHUTDOWN_TIMEOUT_S)


def _wait_until_ready(server: Gunicorn) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    last = "no answer"
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(f"gunicorn exited with {server.process.returncode}:\n{server.log()}")
        try:
            answer = server.request("GET", "/readyz")
            if answer.status == 200:
                return
            last = f"{answer.status} {answer.body[:200]!r}"
        except OSError as error:
            last = repr(error)
        time.sleep(0.2)
    pytest.fail(f"gunicorn was not ready within {STARTUP_TIMEOUT_S} s ({last}):\n{server.log()}")


@pytest.fixture(scope="module")
def server(database_url, tmp_path_factory) -> Iterator[Gunicorn]:
    with running_gunicorn(database_url, tmp_path_factory.mktemp("gunicorn")) as started:
        yield started


@pytest.fixture(scope="module")
def http_town(app) -> ApiTown:
    """A programme with keys, made directly in the database the server uses."""
    return make_api_town(app, app.test_client())


def _all_at_once(calls: list) -> list[Answer]:
    """Run every call in its own thread, released together."""
    barrier = threading.Barrier(len(calls))

    def run(call):
        barrier.wait()
        return call()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, calls))


def test_a_capped_rule_posts_once_per_member_however_the_workers_race(server, http_town,
                                                                       engine):
    members = ("e0", "e1", "e2", "w0")
    attempts_per_member = 4
    before = head(engine, http_town.code).size
    calls = [lambda member=member: server.award(http_town, {"member": member, "rule": "meeting",
                                                            "occurred_at": WHEN})
             for member in members for _ in range(attempts_per_member)]

    answers = _all_at_once(calls)

    by_member: dict[str, Counter] = {member: Counter() for member in members}
    for index, answer in enumerate(answers):
        member = members[index // attempts_per_member]
        code = answer.json().get("code") if answer.status >= 400 else answer.json()["status"]
        by_member[member][(answer.status, code)] += 1
    for member in members:
        assert by_member[member] == {(201, "posted"): 1,
                                     (422, "over_cap"): attempts_per_member - 1}, by_member
    assert head(engine, http_town.code).size == before + len(members)


def test_one_idempotency_key_sent_from_eight_threads_makes_one_entry(server, http_town, engine):
    body = {"member": "e1", "rule": "volunteer", "quantity": 120, "occurred_at": WHEN,
            "memo": "扫雪"}
    before = head(engine, http_town.code).size

    answers = _all_at_once([lambda: server.award(http_town, body, "snow-e1")] * 8)

    assert head(engine, http_town.code).size == before + 1
    assert {(answer.status, answer.body) for answer in answers} == {
        (answers[0].status, answers[0].body)}
    assert answers[0].status in (200, 201)
    entry = answers[0].json()["entry"]
    assert entry["seq"] == before  # seq counts from 0: the new entry is at the old size
    assert entry["postings"] == [{"account": "member:e1", "points": 10},
                                 {"account": "issuance", "points": -10}]
    later = server.award(http_town, body, "snow-e1")
    assert later.headers.get("Idempotent-Replayed") == "true"
    assert (later.status, later.body) == (answers[0].status, answers[0].body)
    conflicting = server.award(http_town, body | {"quantity": 60}, "snow-e1")
    assert (conflicting.status, conflicting.json()["code"]) == (409, "idempotency_conflict")
    assert head(engine, http_town.code).size == before + 1


def test_the_chain_verifies_and_metrics_sum_every_worker(server, http_town, engine):
    extra = _all_at_once([
        lambda index=index: server.award(http_town, {"member": "e2", "rule": "volunteer",
                                                     "quantity": 60, "occurred_at": WHEN},
                                         f"metrics-{index}")
        for index in range(8)])
    assert {answer.status for answer in extra} == {201}, [answer.body[:300] for answer in extra]

    verification = verify_chain(engine, http_town.code)
    assert verification.ok, verification.problem
    assert verification.entries_checked == head(engine, http_town.code).size

    exposition = server.request("GET", "/metrics")
    assert exposition.status == 200
    counted = _sum_samples(exposition.body.decode(), "jifen_http_requests_total",
                           method="POST", endpoint=AWARDS_ENDPOINT)
    assert counted == server.awards_sent, exposition.body.decode()
    workers_that_counted = {path.name for path in server.metrics_dir.glob("counter_*.db")}
    assert len(workers_that_counted) >= 2, workers_that_counted


def test_sigterm_stops_gunicorn_cleanly_after_serving(database_url, app, tmp_path):
    town = make_api_town(app, app.test_client())
    with running_gunicorn(database_url, tmp_path) as fresh:
        answer = fresh.award(town, {"member": "w0", "rule": "meeting", "occurred_at": WHEN})
        assert answer.status == 201, answer.body

        fresh.process.send_signal(signal.SIGTERM)
        returncode = fresh.process.wait(timeout=SHUTDOWN_TIMEOUT_S)

        log = fresh.log()
        assert returncode == 0, log
        assert "Shutting down: Master" in log
        assert len(re.findall(r"Worker exiting", log)) == WORKERS, log
        with pytest.raises(OSError):
            fresh.request("GET", "/healthz")


_SAMPLE = re.compile(r'^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)\{(?P<labels>[^}]*)\} (?P<value>\S+)$')


def _sum_samples(exposition: str, name: str, **wanted: str) -> float:
    """The sum of `name`'s samples whose labels include `wanted` (Prometheus text format)."""
    total = 0.0
    for line in exposition.splitlines():
        match = _SAMPLE.match(line)
        if match is None or match["name"] != name:
            continue
        labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match["labels"]))
        if all(labels.get(key) == value for key, value in wanted.items()):
            total += float(match["value"])
    return total
