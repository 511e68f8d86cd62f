"""Balances and statements over HTTP: who may read them, and cursor pages that never shift.

Awards use the town's uncapped `volunteer` rule (5 points per 60 minutes);
deductions the `litter` rule (2 points), which needs a reviewer's approval.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest

WHEN = (datetime.now(UTC) - timedelta(days=1)).isoformat()


def award(town, member: str = "e0", minutes: int = 60, memo: str = "") -> dict:
    response = town.post("/awards", "organiser", {"member": member, "rule": "volunteer",
                                                  "quantity": minutes, "occurred_at": WHEN,
                                                  "memo": memo})
    assert response.status_code == 201, response.json
    return response.json["entry"]


def deduct(town, member: str = "e0") -> dict:
    """A `litter` deduction, proposed by the organiser and approved by the reviewer."""
    proposed = town.post("/awards", "organiser", {"member": member, "rule": "litter",
                                                  "occurred_at": WHEN})
    assert proposed.status_code == 202, proposed.json
    approved = town.post(f"/claims/{proposed.json['claim']}/approve", "reviewer")
    assert approved.status_code == 200, approved.json
    return approved.json["entry"]


def statement_page(town, member: str = "e0", role: str = "member", **query):
    response = town.get(f"/members/{member}/statement", role, query_string=query)
    assert response.status_code == 200, response.json
    return response.json


def cursor_of(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


# -- balances -----------------------------------------------------------------------------


def test_a_member_balance_and_score_follow_awards_and_deductions(town):
    award(town, "e0", 120)
    deduct(town, "e0")

    response = town.get("/members/e0/balance", "member")

    assert response.status_code == 200, response.json
    assert response.json == {"member": "e0", "account": "member:e0", "balance_points": 8,
                             "score_points": 8}
    assert town.get("/members/e1/balance", "auditor").json["balance_points"] == 0


def test_every_account_is_listed_with_balance_and_score(town):
    award(town, "e0", 120)
    deduct(town, "w0")

    response = town.get("/balances", "auditor")

    assert response.status_code == 200, response.json
    by_account = {item["account"]: item for item in response.json["items"]}
    assert {"member:e0", "member:e1", "member:e2", "member:w0", "issuance",
            "penalty"} <= set(by_account)
    assert by_account["member:e0"] == {"account": "member:e0", "kind": "member",
                                       "balance_points": 10, "score_points": 10}
    assert (by_account["member:w0"]["balance_points"], by_account["member:w0"]["score_points"]) \
        == (-2, -2)
    assert (by_account["issuance"]["balance_points"], by_account["issuance"]["kind"]) == (
        -10, "system")
    assert by_account["penalty"]["balance_points"] == 2
    assert sum(item["balance_points"] for item in response.json["items"]) == 0
    assert [item["account"] for item in response.json["items"]] == sorted(by_account)


@pytest.mark.parametrize("role, status", [("auditor", 200), ("admin", 200), ("operator", 200),
                                          ("organiser", 403), ("reviewer", 403),
                                          ("member", 403), ("shop", 403), ("other", 403)])
def test_only_auditors_admins_and_the_operator_list_every_balance(town, role, status):
    response = town.get("/balances", role)
    assert response.status_code == status
    if status == 403:
        assert response.json["code"] == "forbidden"


@pytest.mark.parametrize("role, member, status", [
    ("member", "e0", 200), ("member", "e1", 403), ("member", "w0", 403),
    ("organiser", "w0", 200), ("reviewer", "e1", 200), ("admin", "e1", 200),
    ("auditor", "w0", 200), ("operator", "e1", 200), ("shop", "e0", 403), ("other", "e0", 403),
])
def test_who_reads_a_members_balance_and_statement(town, role, member, status):
    award(town, member)
    for path in (f"/members/{member}/balance", f"/members/{member}/statement"):
        response = town.get(path, role)
        assert response.status_code == status, (path, response.json)
        if status == 403:
            assert response.json["code"] == "forbidden"
            assert response.mimetype == "application/problem+json"


def test_an_unknown_member_is_404_for_staff_and_403_for_another_members_key(town):
    for path in ("/members/nobody/balance", "/members/nobody/statement"):
        staff = town.get(path, "auditor")
        assert (staff.status_code, staff.json["code"]) == (404, "unknown_member")
        member = town.get(path, "member")
        assert (member.status_code, member.json["code"]) == (403, "forbidden")


# -- statements ---------------------------------------------------------------------------


def test_a_statement_lists_what_touched_the_account_newest_first(town):
    earned = award(town, "e0", 60, memo="扫雪")
    award(town, "e1")  # someone else's: not on e0's statement
    deducted = deduct(town, "e0")
    reversed_ = town.post(f"/entries/{earned['seq']}/reversal", "reviewer",
                          {"memo": "entered twice"}).json

    page = statement_page(town)

    assert (page["member"], page["account"], page["next_cursor"]) == ("e0", "member:e0", None)
    assert [(line["seq"], line["kind"], line["points"]) for line in page["items"]] == [
        (reversed_["seq"], "reversal", -5), (deducted["seq"], "deduction", -2),
        (earned["seq"], "award", 5)]
    reversal_line, deduction_line, award_line = page["items"]
    assert award_line == {
        "seq": earned["seq"], "kind": "award", "points": 5, "occurred_at": earned["occurred_at"],
        "recorded_at": earned["recorded_at"], "actor": "org", "approver": None,
        "rule_code": "volunteer", "rule_version": 1, "memo": "扫雪", "evidence": None,
        "reverses": None}
    assert (deduction_line["actor"], deduction_line["approver"]) == ("org", "rev")
    assert (reversal_line["reverses"], reversal_line["memo"]) == (earned["seq"], "entered twice")


def test_pages_have_no_duplicates_or_gaps_while_entries_are_appended(town):
    existing = [award(town, "e0")["seq"] for _ in range(7)]
    page = statement_page(town, limit=3)
    seen = [line["seq"] for line in page["items"]]
    pages = 1
    appended = []
    while page["next_cursor"] is not None:
        appended.append(award(town, "e0")["seq"])  # the programme goes on between fetches
        page = statement_page(town, limit=3, cursor=page["next_cursor"])
        seen += [line["seq"] for line in page["items"]]
        pages += 1

    assert seen == sorted(existing, reverse=True)
    assert pages == 3
    assert len(appended) == 2
    newest = statement_page(town, limit=3)
    assert [line["seq"] for line in newest["items"]] == appended[::-1] + [existing[-1]]


def test_the_last_full_page_ends_the_statement(town):
    seqs = [award(town, "e0")["seq"] for _ in range(4)]
    first = statement_page(town, limit=2)
    second = statement_page(town, limit=2, cursor=first["next_cursor"])
    assert [line["seq"] for line in first["items"] + second["items"]] == seqs[::-1]
    assert second["next_cursor"] is None
    empty = statement_page(town, "e2", role="auditor")
    assert (empty["items"], empty["next_cursor"]) == ([], None)


@pytest.mark.parametrize("cursor", [
    "", "!!!", "not-a-cursor", cursor_of("before:-1"), cursor_of("before:abc"),
    cursor_of("before:007"), cursor_of("after:3"), cursor_of(f"before:{2**63}"),
    cursor_of("before:3") + "==", "A" * 65, "/w==",
])
def test_a_malformed_cursor_is_a_400_problem(town, cursor):
    award(town, "e0")
    response = town.get("/members/e0/statement", "member", query_string={"cursor": cursor})
    assert (response.status_code, response.json["code"]) == (400, "invalid_cursor")
    assert response.mimetype == "application/problem+json"


def test_a_cursor_made_by_hand_in_the_issued_form_is_accepted(town):
    seqs = [award(town, "e0")["seq"] for _ in range(3)]
    page = statement_page(town, cursor=cursor_of(f"before:{seqs[2]}"))
    assert [line["seq"] for line in page["items"]] == [seqs[1], seqs[0]]


@pytest.mark.parametrize("query", [{"limit": 0}, {"limit": 201}, {"limit": "ten"},
                                   {"before_seq": 3}])
def test_bad_statement_parameters_are_422(town, query):
    response = town.get("/members/e0/statement", "member", query_string=query)
    assert (response.status_code, response.json["code"]) == (422, "validation_error")
    assert response.json["errors"][0]["field"] == next(iter(query))
