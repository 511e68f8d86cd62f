"""Claims over HTTP: listing, approval, rejection, objections and posting what is due.

Claims come from `POST /awards` under the town's `honour` rule (50 points,
always needs approval). The town's keys: organiser `org`, reviewer `rev`,
admin `adm`, auditor `aud` (all on the whole town), member `e0`, a shop,
the operator, and `other` (staff of another programme).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from ledger.keys import create_key
from ledger.models import Claim, Objection, Programme
from ledger.organisation import grant_role
from ledger.storage import write_transaction
from tests.api.conftest import make_api_town

WHEN = (datetime.now(UTC) - timedelta(days=1)).isoformat()


def engine_of(town):
    return town.client.application.extensions["jifen"].engine


def add_staff_key(town, name: str, principal: str, grants: list[tuple[str, str]]) -> None:
    """Grant `principal` (role, unit) pairs and give the test a key for it as `town.keys[name]`."""
    engine = engine_of(town)
    for role, unit in grants:
        grant_role(engine, town.code, principal, role, unit)
    town.keys[name] = create_key(engine, kind="staff", principal=principal, label=name,
                                 programme=town.code).secret


def propose(town, member: str = "e1", rule: str = "honour", role: str = "organiser") -> int:
    response = town.post("/awards", role, {"member": member, "rule": rule, "occurred_at": WHEN})
    assert response.status_code == 202, response.json
    return response.json["claim"]


def set_notice_days(town, days: int) -> None:
    """Programme setting: how long an approved claim is shown (公示) before it posts."""
    with write_transaction(engine_of(town)) as connection:
        connection.execute(update(Programme).where(Programme.code == town.code)
                           .values(notice_days=days))


def close_notice(town, claim_id: int) -> None:
    """Move a claim's notice window into the past, as if the days had gone by."""
    with write_transaction(engine_of(town)) as connection:
        connection.execute(update(Claim).where(Claim.id == claim_id)
                           .values(notice_until="2000-01-01T00:00:00.000000Z"))


def balance(town, member: str) -> tuple[int, int]:
    response = town.get(f"/members/{member}/balance", "auditor")
    assert response.status_code == 200, response.json
    return response.json["balance_points"], response.json["score_points"]


def head_size(town) -> int:
    return town.get("/head", "auditor").json["size"]


# -- approval ---------------------------------------------------------------------------------


def test_a_reviewer_approves_a_claim_and_it_posts_naming_both_people(town):
    claim_id = propose(town)
    pending = town.get(f"/claims/{claim_id}", "auditor")
    assert pending.status_code == 200
    assert (pending.json["status"], pending.json["member"], pending.json["points"],
            pending.json["proposer"]) == ("pending", "e1", 50, "org")
    assert balance(town, "e1") == (0, 0)

    approved = town.post(f"/claims/{claim_id}/approve", "reviewer", idempotency_key="ok-1")

    assert approved.status_code == 200, approved.json
    claim, entry = approved.json["claim"], approved.json["entry"]
    assert (claim["status"], claim["decided_by"], claim["entry_seq"]) == ("posted", "rev",
                                                                          entry["seq"])
    assert (entry["kind"], entry["actor"], entry["approver"]) == ("award", "org", "rev")
    assert entry["postings"] == [{"account": "member:e1", "points": 50},
                                 {"account": "issuance", "points": -50}]
    assert balance(town, "e1") == (50, 50)


def test_an_approval_retried_with_its_key_replays_and_a_second_approval_is_refused(town):
    claim_id = propose(town)
    first = town.post(f"/claims/{claim_id}/approve", "reviewer", idempotency_key="ok-2")
    size = head_size(town)

    replay = town.post(f"/claims/{claim_id}/approve", "reviewer", idempotency_key="ok-2")
    assert (replay.status_code, replay.headers["Idempotent-Replayed"]) == (200, "true")
    assert replay.json == first.json
    elsewhere = town.post(f"/claims/{propose(town, 'e2')}/approve", "reviewer",
                          idempotency_key="ok-2")
    assert (elsewhere.status_code, elsewhere.json["code"]) == (409, "idempotency_conflict")
    again = town.post(f"/claims/{claim_id}/approve", "reviewer")
    assert (again.status_code, again.json["code"]) == (409, "claim_not_open")
    assert head_size(town) == size
    assert balance(town, "e1") == (50, 50)


def test_the_proposer_cannot_approve_or_reject_their_own_claim(town):
    add_staff_key(town, "both", "both", [("organiser", "town"), ("reviewer", "town")])
    claim_id = propose(town, role="both")

    approve = town.post(f"/claims/{claim_id}/approve", "both")
    reject = town.post(f"/claims/{claim_id}/reject", "both", {"reason": "mine"})

    for response in (approve, reject):
        assert (response.status_code, response.json["code"]) == (403, "same_person")
    assert town.get(f"/claims/{claim_id}", "auditor").json["status"] == "pending"


def test_a_reviewer_of_another_village_is_not_in_scope(town):
    add_staff_key(town, "west-reviewer", "rev-west", [("reviewer", "west")])
    claim_id = propose(town, member="e1")

    approve = town.post(f"/claims/{claim_id}/approve", "west-reviewer")
    reject = town.post(f"/claims/{claim_id}/reject", "west-reviewer", {"reason": "no"})

    for response in (approve, reject):
        assert (response.status_code, response.json["code"]) == (403, "not_in_scope")
    assert town.get(f"/claims/{claim_id}", "auditor").json["status"] == "pending"
    assert balance(town, "e1") == (0, 0)


@pytest.mark.parametrize("role", ["organiser", "admin", "auditor", "member", "shop", "other"])
def test_only_reviewers_decide_claims(town, role):
    claim_id = propose(town)
    set_notice_days(town, 3)
    on_notice = propose(town, "e2")
    town.post(f"/claims/{on_notice}/approve", "reviewer")
    objection_id = town.post(f"/claims/{on_notice}/objections", "auditor",
                             {"reason": "not so"}).json["objection"]

    responses = [town.post(f"/claims/{claim_id}/approve", role),
                 town.post(f"/claims/{claim_id}/reject", role, {"reason": "no"}),
                 town.post(f"/objections/{objection_id}/resolve", role,
                           {"uphold": True, "reason": "no"})]

    for response in responses:
        assert (response.status_code, response.json["code"]) == (403, "forbidden")
        assert response.json["detail"]
    assert town.get(f"/claims/{claim_id}", "auditor").json["status"] == "pending"
    assert town.get(f"/claims/{on_notice}", "auditor").json["status"] == "objected"


def test_the_operator_may_approve(town):
    claim_id = propose(town)
    approved = town.post(f"/claims/{claim_id}/approve", "operator")
    assert approved.status_code == 200, approved.json
    assert approved.json["entry"]["approver"].startswith("system:")


def test_unknown_claims_and_objections_are_404(town):
    for response in (town.get("/claims/99999999", "auditor"),
                     town.post("/claims/99999999/approve", "reviewer"),
                     town.post("/claims/99999999/reject", "reviewer", {"reason": "no"}),
                     town.post("/claims/99999999/objections", "member", {"reason": "no"}),
                     town.post("/objections/99999999/resolve", "reviewer",
                               {"uphold": False, "reason": "no"})):
        assert (response.status_code, response.json["code"]) == (404, "unknown_claim")


def test_a_claim_of_another_programme_is_unknown_here(town, app, client):
    elsewhere = make_api_town(app, client)
    claim_id = propose(elsewhere)
    response = town.post(f"/claims/{claim_id}/approve", "reviewer")
    assert (response.status_code, response.json["code"]) == (404, "unknown_claim")
    assert elsewhere.get(f"/claims/{claim_id}", "auditor").json["status"] == "pending"


# -- rejection --------------------------------------------------------------------------------


def test_a_rejection_is_recorded_in_the_chain_with_its_reason_and_moves_nothing(town):
    claim_id = propose(town)

    rejected = town.post(f"/claims/{claim_id}/reject", "reviewer",
                         {"reason": "no witness came forward"}, idempotency_key="no-1")

    assert rejected.status_code == 200, rejected.json
    claim, entry = rejected.json["claim"], rejected.json["entry"]
    assert (claim["status"], claim["reason"]) == ("rejected", "no witness came forward")
    assert (entry["kind"], entry["postings"], entry["actor"]) == ("admin", [], "rev")
    assert entry["metadata"]["reason"] == "no witness came forward"
    assert balance(town, "e1") == (0, 0)
    replay = town.post(f"/claims/{claim_id}/reject", "reviewer",
                       {"reason": "no witness came forward"}, idempotency_key="no-1")
    assert (replay.status_code, replay.json) == (200, rejected.json)
    other_reason = town.post(f"/claims/{claim_id}/reject", "reviewer", {"reason": "other"},
                             idempotency_key="no-1")
    assert (other_reason.status_code, other_reason.json["code"]) == (409, "idempotency_conflict")
    approve = town.post(f"/claims/{claim_id}/approve", "reviewer")
    assert (approve.status_code, approve.json["code"]) == (409, "claim_not_open")


@pytest.mark.parametrize("body, field", [({}, "reason"), ({"reason": ""}, "reason"),
                                         ({"reason": "x", "points": 5}, "points")])
def test_a_rejection_needs_a_reason_and_nothing_else(town, body, field):
    claim_id = propose(town)
    size = head_size(town)
    response = town.post(f"/claims/{claim_id}/reject", "reviewer", body)
    assert (response.status_code, response.json["code"]) == (422, "validation_error")
    assert [error["field"] for error in response.json["errors"]] == [field]
    assert head_size(town) == size


# -- public notice and objections (公示) ------------------------------------------------------


def test_with_a_notice_window_approval_waits_and_post_due_posts_it_afterwards(town):
    set_notice_days(town, 3)
    claim_id = propose(town)

    approved = town.post(f"/claims/{claim_id}/approve", "reviewer")
    assert approved.status_code == 200, approved.json
    assert (approved.json["claim"]["status"], approved.json["entry"]) == ("notice", None)
    assert approved.json["claim"]["notice_until"] is not None
    nothing_due = town.post("/claims/post-due", "reviewer")
    assert nothing_due.json == {"posted": 0, "refused": 0, "outcomes": []}
    assert balance(town, "e1") == (0, 0)

    close_notice(town, claim_id)
    due = town.post("/claims/post-due", "admin", idempotency_key="due-1")

    assert due.status_code == 200, due.json
    assert (due.json["posted"], due.json["refused"]) == (1, 0)
    [outcome] = due.json["outcomes"]
    assert (outcome["claim"], outcome["status"], outcome["points"]) == (claim_id, "posted", 50)
    assert (outcome["entry"]["actor"], outcome["entry"]["approver"]) == ("org", "rev")
    assert balance(town, "e1") == (50, 50)
    replay = town.post("/claims/post-due", "admin", idempotency_key="due-1")
    assert (replay.json, replay.headers["Idempotent-Replayed"]) == (due.json, "true")
    assert town.post("/claims/post-due", "operator").json["outcomes"] == []
    assert balance(town, "e1") == (50, 50)


@pytest.mark.parametrize("role", ["organiser", "auditor", "member", "shop", "other"])
def test_only_reviewers_admins_and_the_operator_post_due_claims(town, role):
    response = town.post("/claims/post-due", role)
    assert (response.status_code, response.json["code"]) == (403, "forbidden")


def test_a_resident_objects_and_a_dismissal_puts_the_claim_back_on_notice(town):
    set_notice_days(town, 3)
    claim_id = propose(town)
    town.post(f"/claims/{claim_id}/approve", "reviewer")

    objected = town.post(f"/claims/{claim_id}/objections", "member",
                         {"reason": "他那天不在村里"}, idempotency_key="obj-1")

    assert objected.status_code == 201, objected.json
    objection_id = objected.json["objection"]
    assert objected.json["claim"]["status"] == "objected"
    replay = town.post(f"/claims/{claim_id}/objections", "member",
                       {"reason": "他那天不在村里"}, idempotency_key="obj-1")
    assert (replay.status_code, replay.json) == (201, objected.json)
    close_notice(town, claim_id)
    assert town.post("/claims/post-due", "reviewer").json["outcomes"] == []

    dismissed = town.post(f"/objections/{objection_id}/resolve", "reviewer",
                          {"uphold": False, "reason": "the sign-in sheet shows him"})

    assert dismissed.status_code == 200, dismissed.json
    assert (dismissed.json["claim"]["status"], dismissed.json["entry"]) == ("notice", None)
    again = town.post(f"/objections/{objection_id}/resolve", "reviewer",
                      {"uphold": False, "reason": "twice"})
    assert (again.status_code, again.json["code"]) == (404, "unknown_claim")
    assert town.post("/claims/post-due", "reviewer").json["posted"] == 1
    assert balance(town, "e1") == (50, 50)


def test_an_upheld_objection_rejects_the_claim(town):
    set_notice_days(town, 3)
    claim_id = propose(town)
    town.post(f"/claims/{claim_id}/approve", "reviewer")
    objection_id = town.post(f"/claims/{claim_id}/objections", "auditor",
                             {"reason": "double counted"}).json["objection"]

    upheld = town.post(f"/objections/{objection_id}/resolve", "reviewer",
                       {"uphold": True, "reason": "it was counted last week"})

    assert upheld.status_code == 200, upheld.json
    assert upheld.json["claim"]["status"] == "rejected"
    assert upheld.json["entry"]["kind"] == "admin"
    assert "it was counted last week" in upheld.json["claim"]["reason"]
    close_notice(town, claim_id)
    assert town.post("/claims/post-due", "reviewer").json["outcomes"] == []
    assert balance(town, "e1") == (0, 0)


def test_objections_come_only_during_the_notice_window(town):
    pending = propose(town)
    not_on_notice = town.post(f"/claims/{pending}/objections", "member", {"reason": "no"})
    assert (not_on_notice.status_code, not_on_notice.json["code"]) == (409, "claim_not_open")

    set_notice_days(town, 3)
    claim_id = propose(town, member="e2")
    town.post(f"/claims/{claim_id}/approve", "reviewer")
    close_notice(town, claim_id)
    too_late = town.post(f"/claims/{claim_id}/objections", "member", {"reason": "no"})

    assert (too_late.status_code, too_late.json["code"]) == (422, "notice_closed")
    assert town.get(f"/claims/{claim_id}", "auditor").json["status"] == "notice"


def test_an_objection_names_the_caller_and_shops_and_strangers_may_not_object(town):
    set_notice_days(town, 3)
    claim_id = propose(town)
    town.post(f"/claims/{claim_id}/approve", "reviewer")

    for role in ("shop", "other"):
        refused = town.post(f"/claims/{claim_id}/objections", role, {"reason": "no"})
        assert (refused.status_code, refused.json["code"]) == (403, "forbidden")
    assert town.get(f"/claims/{claim_id}", "auditor").json["status"] == "notice"
    engine = engine_of(town)
    with engine.connect() as connection:
        assert connection.execute(
            Objection.__table__.select().where(Objection.claim_id == claim_id)).all() == []
    objected = town.post(f"/claims/{claim_id}/objections", "member", {"reason": "not him"})
    assert objected.status_code == 201
    with engine.connect() as connection:
        raised_by = connection.execute(
            Objection.__table__.select().where(Objection.claim_id == claim_id)).one().raised_by
    assert raised_by == "e0"


# -- listing ----------------------------------------------------------------------------------


def test_claims_are_listed_by_status(town):
    first, second, third = propose(town, "e0"), propose(town, "e1"), propose(town, "e2")
    town.post(f"/claims/{second}/approve", "reviewer")
    town.post(f"/claims/{third}/reject", "reviewer", {"reason": "no"})

    def ids(status=None):
        query = {} if status is None else {"status": status}
        response = town.get("/claims", "auditor", query_string=query)
        assert response.status_code == 200, response.json
        return [claim["id"] for claim in response.json["items"]]

    assert ids() == [first, second, third]
    assert (ids("pending"), ids("posted"), ids("rejected"), ids("notice")) == (
        [first], [second], [third], [])


def test_claim_pages_have_no_duplicates_or_gaps_while_claims_are_proposed(town):
    proposed = [propose(town, member) for member in ("e0", "e1", "e2", "w0", "e0")]
    seen: list[int] = []
    after_id = None
    pages = 0
    while True:
        query = {"limit": 2} | ({} if after_id is None else {"after_id": after_id})
        page = town.get("/claims", "organiser", query_string=query)
        assert page.status_code == 200, page.json
        assert len(page.json["items"]) <= 2
        seen += [claim["id"] for claim in page.json["items"]]
        pages += 1
        if pages <= 2:  # the programme goes on while someone pages through
            proposed.append(propose(town, "e1"))
        after_id = page.json["next_after_id"]
        if after_id is None:
            break
        assert after_id == seen[-1]

    assert seen == proposed
    assert len(set(seen)) == len(seen) == 7
    assert pages == 4


@pytest.mark.parametrize("query", [{"limit": 0}, {"limit": 201}, {"status": "approved"},
                                   {"after_id": -1}, {"limit": "many"}, {"page": 2}])
def test_bad_list_parameters_are_422(town, query):
    response = town.get("/claims", "auditor", query_string=query)
    assert (response.status_code, response.json["code"]) == (422, "validation_error")
    assert response.json["errors"][0]["field"] == next(iter(query))


@pytest.mark.parametrize("role", ["organiser", "reviewer", "admin", "auditor", "operator"])
def test_every_staff_role_reads_claims(town, role):
    claim_id = propose(town)
    assert town.get("/claims", role).status_code == 200
    assert town.get(f"/claims/{claim_id}", role).json["id"] == claim_id


@pytest.mark.parametrize("role", ["member", "shop", "other"])
def test_members_shops_and_strangers_do_not_read_claims(town, role):
    claim_id = propose(town)
    for response in (town.get("/claims", role), town.get(f"/claims/{claim_id}", role)):
        assert (response.status_code, response.json["code"]) == (403, "forbidden")
        assert response.mimetype == "application/problem+json"
