"""Bad input, on both databases: each a 4xx problem with the right `code`, and nothing written.

Malformed or over-deep JSON, wrong types, bodies over the size limit,
unknown fields (also in the query string, where a misspelt `?dry_run`
would otherwise post for real), forged cursors, bodies that are not JSON,
unusable `Idempotency-Key` headers. Every case checks the chain's size
before and after: a refused request leaves no entry behind.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from werkzeug.test import TestResponse

from api.config import Settings
from ledger.chain import head
from tests.api.conftest import ApiTown

WHEN = (datetime.now(UTC) - timedelta(days=1)).isoformat()
AWARD = {"member": "e0", "rule": "volunteer", "quantity": 60, "occurred_at": WHEN}
MAX_BODY_BYTES = Settings(database_url="sqlite://").max_body_bytes


@dataclass(frozen=True)
class Case:
    send: Callable[[ApiTown], TestResponse]
    status: int
    code: str
    fields: tuple[str | None, ...] = ()
    """For validation errors: the field paths the problem must name."""


def raw(town: ApiTown, path: str, data: bytes | str, content_type: str | None,
        role: str = "organiser", **headers: str) -> TestResponse:
    sent = town.headers(role) | headers
    if content_type is not None:
        sent["Content-Type"] = content_type
    return town.client.post(town.url(path), data=data, headers=sent)


def cursor_of(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


CASES = {
    # -- malformed JSON ------------------------------------------------------------------
    "truncated JSON": Case(
        lambda town: raw(town, "/awards", '{"member": "e0", "rule":', "application/json"),
        400, "invalid_json"),
    "JSON with a trailing comma": Case(
        lambda town: raw(town, "/awards", '{"member": "e0", "rule": "meeting",}',
                         "application/json"),
        400, "invalid_json"),
    "JSON that is not UTF-8": Case(
        lambda town: raw(town, "/awards", b'{"member": "e\xff0", "rule": "meeting"}',
                         "application/json"),
        400, "invalid_json"),
    "JSON nested a hundred thousand deep": Case(
        lambda town: raw(town, "/awards", "[" * 100_000 + "]" * 100_000, "application/json"),
        400, "invalid_json"),
    "a sheet in malformed JSON": Case(
        lambda town: raw(town, "/award-sheets", '{"lines": [{"member": "e0"', "application/json"),
        400, "invalid_json"),
    "a reversal in malformed JSON": Case(
        lambda town: raw(town, "/entries/0/reversal", "{memo: 'why'}", "application/json",
                         role="reviewer"),
        400, "invalid_json"),
    # -- wrong types ---------------------------------------------------------------------
    "a JSON array instead of an object": Case(
        lambda town: town.post("/awards", "organiser", [AWARD]), 422, "validation_error"),
    "a JSON string instead of an object": Case(
        lambda town: town.post("/awards", "organiser", "e0 meeting"), 422, "validation_error"),
    "every field of the wrong type": Case(
        lambda town: town.post("/awards", "organiser", {
            "member": 5, "rule": ["meeting"], "quantity": "ten", "occurred_at": "yesterday",
            "memo": {"text": "x"}}),
        422, "validation_error", ("member", "rule", "quantity", "occurred_at", "memo")),
    "a boolean quantity": Case(
        lambda town: town.post("/awards", "organiser", AWARD | {"quantity": True}),
        422, "validation_error", ("quantity",)),
    "a fractional quantity": Case(
        lambda town: town.post("/awards", "organiser", AWARD | {"quantity": 60.5}),
        422, "validation_error", ("quantity",)),
    "a quantity past 2**53": Case(
        lambda town: town.post("/awards", "organiser", AWARD | {"quantity": 10**30}),
        422, "validation_error", ("quantity",)),
    "a time without an offset": Case(
        lambda town: town.post("/awards", "organiser", AWARD | {"occurred_at": "2026-11-20T09:30"}),
        422, "validation_error", ("occurred_at",)),
    "a member code with spaces": Case(
        lambda town: town.post("/awards", "organiser", AWARD | {"member": "e 0"}),
        422, "validation_error", ("member",)),
    "a memo with a NUL character": Case(
        lambda town: town.post("/awards", "organiser", AWARD | {"memo": "a\x00b"}),
        422, "validation_error", ("memo",)),
    "a NUL character in a sheet line": Case(
        lambda town: town.post("/award-sheets", "organiser",
                               {"lines": [AWARD, AWARD | {"evidence": "\x00"}]}),
        422, "validation_error", ("lines[1].evidence",)),
    "a NUL character in a path parameter": Case(
        lambda town: town.get("/members/e%000/statement", "organiser"),
        422, "validation_error", ("member",)),
    "a NUL character in a query parameter": Case(
        lambda town: town.get("/grants?principal=org%00", "admin"),
        422, "validation_error", ("principal",)),
    "sheet lines that are not objects": Case(
        lambda town: town.post("/award-sheets", "organiser", {"lines": ["e0,meeting"]}),
        422, "validation_error", ("lines[0]",)),
    "an empty sheet": Case(
        lambda town: town.post("/award-sheets", "organiser", {"lines": []}),
        422, "validation_error", ("lines",)),
    "a reversal without its reason": Case(
        lambda town: town.post("/entries/0/reversal", "reviewer", {"memo": ""}),
        422, "validation_error", ("memo",)),
    # -- size ----------------------------------------------------------------------------
    "a JSON body over the size limit": Case(
        lambda town: town.post("/awards", "organiser",
                               AWARD | {"memo": "x" * (MAX_BODY_BYTES + 1)}),
        413, "body_too_large"),
    "a sheet file over the size limit": Case(
        lambda town: town.client.post(
            town.url("/award-sheets"), headers=town.headers("organiser"),
            content_type="multipart/form-data",
            data={"sheet": (io.BytesIO(b"member,rule\n" + b"e0,meeting\n" * (MAX_BODY_BYTES // 10)),
                            "sheet.csv")}),
        413, "body_too_large"),
    "a JSON sheet over the size limit": Case(
        lambda town: town.post("/award-sheets", "organiser",
                               {"lines": [AWARD] * (MAX_BODY_BYTES // 80)}),
        413, "body_too_large"),
    # -- unknown fields --------------------------------------------------------------------
    "an unknown field": Case(
        lambda town: town.post("/awards", "organiser", AWARD | {"points": 1000}),
        422, "validation_error", ("points",)),
    "an unknown field in a sheet line": Case(
        lambda town: town.post("/award-sheets", "organiser",
                               {"lines": [AWARD, AWARD | {"points": 1000}]}),
        422, "validation_error", ("lines[1].points",)),
    "a misspelt ?dry_run": Case(
        lambda town: town.client.post(town.url("/awards?dryrun=true"), json=AWARD,
                                      headers=town.headers("organiser")),
        422, "validation_error", ("dryrun",)),
    "a ?dry_run that is not a boolean": Case(
        lambda town: town.client.post(town.url("/awards?dry_run=perhaps"), json=AWARD,
                                      headers=town.headers("organiser")),
        422, "validation_error", ("dry_run",)),
    # -- cursors and pages -------------------------------------------------------------------
    "a cursor that is not base64": Case(
        lambda town: town.get("/members/e0/statement?cursor=not*a*cursor", "organiser"),
        400, "invalid_cursor"),
    "a cursor holding something else": Case(
        lambda town: town.get(f"/members/e0/statement?cursor={cursor_of('after:3')}",
                              "organiser"),
        400, "invalid_cursor"),
    "a cursor past any seq": Case(
        lambda town: town.get(f"/members/e0/statement?cursor={cursor_of('before:' + '9' * 19)}",
                              "organiser"),
        400, "invalid_cursor"),
    "a cursor with padding it was not given": Case(
        lambda town: town.get(f"/members/e0/statement?cursor={cursor_of('before:5')}==",
                              "organiser"),
        400, "invalid_cursor"),
    "an empty cursor": Case(
        lambda town: town.get("/members/e0/statement?cursor=", "organiser"),
        400, "invalid_cursor"),
    "a page of no entries": Case(
        lambda town: town.get("/members/e0/statement?limit=0", "organiser"),
        422, "validation_error", ("limit",)),
    "a page too large": Case(
        lambda town: town.get("/members/e0/statement?limit=100000", "organiser"),
        422, "validation_error", ("limit",)),
    # -- media types ---------------------------------------------------------------------------
    "JSON sent as text/plain": Case(
        lambda town: raw(town, "/awards", '{"member": "e0", "rule": "meeting"}', "text/plain"),
        415, "unsupported_media_type"),
    "JSON sent without a Content-Type": Case(
        lambda town: raw(town, "/awards", '{"member": "e0", "rule": "meeting"}', None),
        415, "unsupported_media_type"),
    "an award sent as a form": Case(
        lambda town: town.client.post(town.url("/awards"), data={"member": "e0",
                                                                 "rule": "meeting"},
                                      headers=town.headers("organiser")),
        415, "unsupported_media_type"),
    "a sheet sent as bare CSV": Case(
        lambda town: raw(town, "/award-sheets", "member,rule\ne0,meeting\n", "text/csv"),
        415, "unsupported_media_type"),
    "a reversal sent as XML": Case(
        lambda town: raw(town, "/entries/0/reversal", "<memo>why</memo>", "application/xml",
                         role="reviewer"),
        415, "unsupported_media_type"),
    # -- Idempotency-Key --------------------------------------------------------------------------
    "an empty Idempotency-Key": Case(
        lambda town: town.post("/awards", "organiser", AWARD, idempotency_key=""),
        400, "invalid_idempotency_key"),
    "an Idempotency-Key of 151 characters": Case(
        lambda town: town.post("/awards", "organiser", AWARD, idempotency_key="k" * 151),
        400, "invalid_idempotency_key"),
    "an Idempotency-Key that is not ASCII": Case(
        lambda town: town.post("/awards", "organiser", AWARD, idempotency_key="clé"),
        400, "invalid_idempotency_key"),
    "an Idempotency-Key with a tab": Case(
        lambda town: town.post("/awards", "organiser", AWARD, idempotency_key="a\tb"),
        400, "invalid_idempotency_key"),
    "a bad Idempotency-Key on a sheet": Case(
        lambda town: town.post("/award-sheets", "organiser", {"lines": [AWARD]},
                               idempotency_key=" " * 200),
        400, "invalid_idempotency_key"),
}


@pytest.mark.parametrize("name", CASES)
def test_bad_input_is_a_problem_and_writes_nothing(name, town, engine):
    case = CASES[name]
    posted = town.post("/awards", "organiser", AWARD | {"member": "e1"})  # an entry to reverse
    assert posted.status_code == 201, posted.json
    size_before = head(engine, town.code).size

    response = case.send(town)

    assert (response.status_code, response.mimetype) == (case.status,
                                                         "application/problem+json"), \
        response.get_data(as_text=True)[:500]
    problem = response.json
    assert (problem["status"], problem["code"]) == (case.status, case.code), problem
    assert problem["request_id"] == response.headers["X-Request-Id"]
    assert "Traceback" not in response.get_data(as_text=True)
    if case.fields:
        named = {error["field"] for error in problem["errors"]}
        assert set(case.fields) <= named, problem["errors"]
    assert head(engine, town.code).size == size_before


def test_a_refused_request_is_not_kept_for_replay(town, engine):
    """A client fixes a refused request and retries it under the same key: it posts."""
    refused = town.post("/awards", "organiser", AWARD | {"points": 1}, idempotency_key="fix-me")
    assert (refused.status_code, refused.json["code"]) == (422, "validation_error")
    size_before = head(engine, town.code).size

    fixed = town.post("/awards", "organiser", AWARD, idempotency_key="fix-me")

    assert fixed.status_code == 201, fixed.json
    assert "Idempotent-Replayed" not in fixed.headers
    assert head(engine, town.code).size == size_before + 1


def test_a_misspelt_dry_run_on_a_sheet_posts_nothing(town, engine):
    size_before = head(engine, town.code).size
    response = town.client.post(town.url("/award-sheets?dry-run=1"),
                                json={"lines": [AWARD, AWARD | {"member": "e2"}]},
                                headers=town.headers("organiser"))
    assert (response.status_code, response.json["code"]) == (422, "validation_error")
    assert head(engine, town.code).size == size_before
