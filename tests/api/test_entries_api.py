"""The chain over HTTP: its head, entries by seq (members see only their own), and reversals.

Awards here use the town's `volunteer` rule (5 points per 60 minutes, no
cap), so a test can post as many as it needs.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ledger.chain import get_entry
from ledger.keys import create_key
from ledger.organisation import grant_role

WHEN = (datetime.now(UTC) - timedelta(days=1)).isoformat()


def engine_of(town):
    return town.client.application.extensions["jifen"].engine


def add_staff_key(town, name: str, principal: str, role: str, unit: str) -> None:
    engine = engine_of(town)
    grant_role(engine, town.code, principal, role, unit)
    town.keys[name] = create_key(engine, kind="staff", principal=principal, label=name,
                                 programme=town.code).secret


def award(town, member: str = "e0", minutes: int = 60) -> dict:
    response = town.post("/awards", "organiser", {"member": member, "rule": "volunteer",
                                                  "quantity": minutes, "occurred_at": WHEN})
    assert response.status_code == 201, response.json
    return response.json["entry"]


def balance(town, member: str) -> tuple[int, int]:
    figures = town.get(f"/members/{member}/balance", "auditor").json
    return figures["balance_points"], figures["score_points"]


def head_size(town) -> int:
    return town.get("/head", "auditor").json["size"]


def reverse(town, seq: int, role: str = "reviewer", memo: str = "entered twice",
            idempotency_key: str | None = None):
    return town.post(f"/entries/{seq}/reversal", role, {"memo": memo},
                     idempotency_key=idempotency_key)


# -- the head -----------------------------------------------------------------------------


def test_the_head_names_the_last_entry_and_the_merkle_root(town):
    before = town.get("/head", "auditor")
    assert before.status_code == 200, before.json
    entry = award(town)

    after = town.get("/head", "auditor").json

    assert after["programme"] == town.code
    assert after["size"] == before.json["size"] + 1 == entry["seq"] + 1
    assert after["head_hash"] == entry["hash"]
    assert len(after["root"]) == 64 and int(after["root"], 16) >= 0
    assert after["root"] != before.json["root"]


@pytest.mark.parametrize("role, status", [("organiser", 200), ("reviewer", 200), ("admin", 200),
                                          ("auditor", 200), ("operator", 200), ("member", 403),
                                          ("shop", 403), ("other", 403)])
def test_who_reads_the_head(town, role, status):
    response = town.get("/head", role)
    assert response.status_code == status
    if status == 403:
        assert response.json["code"] == "forbidden"


# -- entries by seq -----------------------------------------------------------------------


def test_an_entry_reads_back_as_recorded(town):
    posted = award(town, "e1", 90)

    response = town.get(f"/entries/{posted['seq']}", "auditor")

    assert response.status_code == 200, response.json
    assert response.json == posted
    stored = get_entry(engine_of(town), town.code, posted["seq"])
    assert (response.json["hash"], response.json["prev_hash"]) == (stored.hash.hex(),
                                                                   stored.prev_hash.hex())
    assert response.json["rule"] == {"code": "volunteer", "version": 1, "quantity": 90}


def test_an_unknown_seq_is_404(town):
    for role in ("auditor", "member"):
        response = town.get("/entries/999999", role)
        assert (response.status_code, response.json["code"]) == (404, "unknown_entry")
    too_big = town.get(f"/entries/{2**63}", "auditor")
    assert (too_big.status_code, too_big.json["code"]) == (404, "not_found")


def test_a_member_reads_only_entries_posting_to_their_own_account(town):
    own = award(town, "e0")
    neighbour = award(town, "e1")

    mine = town.get(f"/entries/{own['seq']}", "member")
    theirs = town.get(f"/entries/{neighbour['seq']}", "member")
    rule_change = town.get("/entries/0", "member")
    assert town.get("/entries/0", "auditor").json["postings"] == []

    assert (mine.status_code, mine.json) == (200, own)
    for refused in (theirs, rule_change):
        assert (refused.status_code, refused.json["code"]) == (403, "forbidden")
        assert "member:e0" in refused.json["detail"]


@pytest.mark.parametrize("role, status", [("organiser", 200), ("reviewer", 200), ("admin", 200),
                                          ("auditor", 200), ("operator", 200), ("shop", 403),
                                          ("other", 403)])
def test_who_else_reads_entries(town, role, status):
    seq = award(town, "w0")["seq"]
    assert town.get(f"/entries/{seq}", role).status_code == status


# -- reversals ----------------------------------------------------------------------------


def test_a_reviewer_reverses_an_award_and_a_retry_replays_it(town):
    original = award(town, "e0", 120)
    assert balance(town, "e0") == (10, 10)

    reversal = reverse(town, original["seq"], idempotency_key="undo-1")

    assert reversal.status_code == 201, reversal.json
    assert (reversal.json["kind"], reversal.json["reverses"]) == ("reversal", original["seq"])
    assert (reversal.json["actor"], reversal.json["memo"]) == ("rev", "entered twice")
    assert reversal.json["postings"] == [{"account": "member:e0", "points": -10},
                                         {"account": "issuance", "points": 10}]
    assert balance(town, "e0") == (0, 0)
    size = head_size(town)
    replay = reverse(town, original["seq"], idempotency_key="undo-1")
    assert (replay.status_code, replay.headers["Idempotent-Replayed"]) == (201, "true")
    assert replay.json == reversal.json
    other_body = reverse(town, original["seq"], memo="another reason", idempotency_key="undo-1")
    assert (other_body.status_code, other_body.json["code"]) == (409, "idempotency_conflict")
    assert head_size(town) == size


def test_an_entry_is_reversed_once(town):
    original = award(town)
    first = reverse(town, original["seq"], role="admin")
    assert first.status_code == 201, first.json

    second = reverse(town, original["seq"], idempotency_key="a-new-key")

    assert (second.status_code, second.json["code"]) == (409, "already_reversed")
    assert second.json["reversed_by"] == first.json["seq"]
    assert balance(town, "e0") == (0, 0)


def test_reversals_and_rule_changes_are_not_reversible(town):
    original = award(town)
    reversal = reverse(town, original["seq"]).json
    assert town.get("/entries/0", "auditor").json["kind"] == "admin"  # the first rule written
    size = head_size(town)

    for seq in (reversal["seq"], 0):
        refused = reverse(town, seq, role="operator")
        assert (refused.status_code, refused.json["code"]) == (422, "not_reversible")
    assert head_size(town) == size


def test_a_reviewer_of_another_village_is_not_in_scope(town):
    add_staff_key(town, "west-reviewer", "rev-west", "reviewer", "west")
    east = award(town, "e0")
    west = award(town, "w0")

    refused = reverse(town, east["seq"], role="west-reviewer")
    allowed = reverse(town, west["seq"], role="west-reviewer")

    assert (refused.status_code, refused.json["code"]) == (403, "not_in_scope")
    assert allowed.status_code == 201, allowed.json
    assert (balance(town, "e0"), balance(town, "w0")) == ((5, 5), (0, 0))


@pytest.mark.parametrize("role", ["organiser", "auditor", "member", "shop", "other"])
def test_only_reviewers_and_admins_reverse(town, role):
    original = award(town)
    size = head_size(town)
    refused = reverse(town, original["seq"], role=role)
    assert (refused.status_code, refused.json["code"]) == (403, "forbidden")
    assert head_size(town) == size


def test_a_reversal_of_an_unknown_entry_is_404(town):
    refused = reverse(town, 999999)
    assert (refused.status_code, refused.json["code"]) == (404, "unknown_entry")


@pytest.mark.parametrize("body, field", [({}, "memo"), ({"memo": ""}, "memo"),
                                         ({"memo": "x" * 2001}, "memo"),
                                         ({"memo": "x", "points": 3}, "points")])
def test_a_reversal_says_why_and_nothing_else(town, body, field):
    original = award(town)
    size = head_size(town)
    refused = town.post(f"/entries/{original['seq']}/reversal", "reviewer", body)
    assert (refused.status_code, refused.json["code"]) == (422, "validation_error")
    assert [error["field"] for error in refused.json["errors"]] == [field]
    assert head_size(town) == size
