"""What operators rely on, on both databases: health, readiness, metrics, logs, request ids, docs.

`/healthz` says the process is up without touching the database; `/readyz`
says the database answers at the schema this code expects (503 `not_ready`
otherwise); `/metrics` counts requests, entries appended and refusals by
code; every request is logged as one JSON line carrying its request id,
which the response echoes; `/openapi.json` describes every route of every
blueprint; `/docs` loads nothing from outside the app (the machine has no
internet).
"""

from __future__ import annotations

import io
import json
import logging
import re
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

import pytest

from api.app import create_app
from api.config import Settings
from api.observability import JsonFormatter
from api.routes import BLUEPRINTS
from ledger import migrations

WHEN = (datetime.now(UTC) - timedelta(days=1)).isoformat()
HTTP_METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE"}


def test_healthz_answers_without_a_database():
    unreachable = create_app(Settings(database_url="postgresql://nobody@127.0.0.1:1/none",
                                      log_level="WARNING"))
    response = unreachable.test_client().get("/healthz")
    assert (response.status_code, response.json) == (200, {"status": "ok"})


def test_readyz_is_ready_on_a_migrated_database(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json == {"status": "ready", "schema": migrations.head_revision()}


def test_readyz_is_not_ready_on_an_empty_database(backend, databases):
    empty = create_app(Settings(database_url=databases.new_url(backend), log_level="WARNING"))
    try:
        response = empty.test_client().get("/readyz")
    finally:
        empty.extensions["jifen"].engine.dispose()
    assert (response.status_code, response.mimetype) == (503, "application/problem+json")
    assert response.json["code"] == "not_ready"
    assert "jifen db upgrade" in response.json["detail"]
    assert response.headers["Retry-After"] == "1"


def test_readyz_is_not_ready_when_the_database_does_not_answer():
    unreachable = create_app(Settings(database_url="postgresql://nobody@127.0.0.1:1/none",
                                      log_level="WARNING"))
    response = unreachable.test_client().get("/readyz")
    assert (response.status_code, response.json["code"]) == (503, "not_ready")
    assert "does not answer" in response.json["detail"]
    assert "nobody" not in response.json["detail"]  # no connection string leaks to clients


def test_metrics_count_requests_entries_and_refusals(town, client):
    before = _samples(client)
    award = {"member": "e0", "rule": "meeting", "occurred_at": WHEN}
    assert town.post("/awards", "organiser", award).status_code == 201
    assert town.post("/awards", "organiser", award).json["code"] == "over_cap"
    sheet = {"lines": [award | {"member": "e1"}, award, award | {"member": "nobody"}]}
    lines = town.post("/award-sheets", "organiser", sheet).json["lines"]
    assert [line["status"] for line in lines] == ["posted", "refused", "refused"]
    after = _samples(client)

    def grew(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    awards = "/programmes/<programme>/awards"
    assert grew("jifen_http_requests_total", method="POST", endpoint=awards, status="201") == 1
    assert grew("jifen_http_requests_total", method="POST", endpoint=awards, status="422") == 1
    assert grew("jifen_http_request_seconds_count", method="POST", endpoint=awards) == 2
    assert grew("jifen_entries_appended_total", kind="award") == 2
    assert grew("jifen_refusals_total", code="over_cap") == 2
    assert grew("jifen_refusals_total", code="unknown_member") == 1


def test_every_request_is_one_json_log_line_with_its_request_id(town, client):
    records = io.StringIO()
    handler = logging.StreamHandler(records)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("api")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        award = town.post("/awards", "organiser", {"member": "e1", "rule": "meeting",
                                                   "occurred_at": WHEN})
        refused = client.get(town.url("/head"), headers={"X-Request-Id": "audit-7"})
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)

    assert any(isinstance(installed.formatter, JsonFormatter) for installed in logger.handlers)
    lines = [json.loads(line) for line in records.getvalue().splitlines()]
    assert [(line["status"], line["request_id"]) for line in lines] == [
        (201, award.headers["X-Request-Id"]), (401, "audit-7")]
    first = lines[0]
    assert (first["method"], first["path"], first["actor"]) == ("POST", town.url("/awards"),
                                                                "org")
    assert first["duration_ms"] >= 0
    assert lines[1]["code"] == "unauthenticated"
    assert refused.json["request_id"] == "audit-7"


@pytest.mark.parametrize(("sent", "echoed"), [("client-42.a_b", True), ("has space", False),
                                              ("x" * 65, False), ("", False)])
def test_a_sane_request_id_is_echoed_and_others_are_replaced(client, sent, echoed):
    response = client.get("/healthz", headers={"X-Request-Id": sent})
    returned = response.headers["X-Request-Id"]
    if echoed:
        assert returned == sent
    else:
        assert re.fullmatch(r"[0-9a-f]{32}", returned), returned


def test_a_request_without_an_id_gets_a_fresh_one_each_time(client):
    first = client.get("/healthz").headers["X-Request-Id"]
    second = client.get("/healthz").headers["X-Request-Id"]
    assert re.fullmatch(r"[0-9a-f]{32}", first)
    assert first != second


def test_openapi_describes_every_route_of_every_blueprint(app, client):
    document = client.get("/openapi.json")
    assert document.status_code == 200
    paths = document.json["paths"]
    names = {blueprint.name for blueprint in BLUEPRINTS}
    routes = {(_openapi_path(rule.rule), method)
              for rule in app.url_map.iter_rules() if rule.endpoint.split(".")[0] in names
              for method in rule.methods & HTTP_METHODS}
    documented = {(path, method.upper()) for path, item in paths.items()
                  for method in item if method.upper() in HTTP_METHODS}
    assert routes == documented
    assert len(names) == len(BLUEPRINTS) >= 8
    for path, item in paths.items():
        for method, operation in item.items():
            if method.upper() in HTTP_METHODS:
                assert operation.get("summary"), f"{method.upper()} {path} has no summary"
                assert operation["responses"]["default"] == {
                    "$ref": "#/components/responses/DEFAULT_ERROR"}
    problem = document.json["components"]["responses"]["DEFAULT_ERROR"]
    assert list(problem["content"]) == ["application/problem+json"]


def test_docs_load_only_from_the_app_itself(client):
    page = client.get("/docs")
    assert (page.status_code, page.mimetype) == (200, "text/html")
    references = _references(page.get_data(as_text=True))
    assert references, "the docs page references no assets"
    assert [ref for ref in references if not ref.startswith("/docs/assets/")] == []
    for reference in references:
        asset = client.get(reference)
        assert asset.status_code == 200, reference
        assert len(asset.get_data()) > 1000, reference
    assert re.search(r'url:\s*"/openapi\.json"', page.get_data(as_text=True))


def _openapi_path(rule: str) -> str:
    return re.sub(r"<(?:[^<>:]+:)?([^<>]+)>", r"{\1}", rule)


class _References(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.found.extend(value for name, value in attrs if name in ("src", "href") and value)


def _references(html: str) -> list[str]:
    parser = _References()
    parser.feed(html)
    return parser.found


_SAMPLE = re.compile(r'^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>[^}]*)\})? '
                     r'(?P<value>\S+)$')


def _samples(client) -> dict[tuple[str, tuple], float]:
    """Every sample of /metrics by (name, sorted labels)."""
    response = client.get("/metrics")
    assert response.status_code == 200
    samples = {}
    for line in response.get_data(as_text=True).splitlines():
        match = _SAMPLE.match(line)
        if match is None:
            continue
        labels = tuple(sorted(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match["labels"] or "")))
        samples[(match["name"], labels)] = float(match["value"])
    return samples
