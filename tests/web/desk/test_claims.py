"""Claims on the organiser's desk (待审核): a reviewer approves or rejects with a reason; the
proposer cannot decide their own; a double tap decides once; refusals in plain words.

Every test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import re

from ledger.chain import get_entry, head
from ledger.claims import get_claim

from ..conftest import text_of
from ..deskkit import check, confirm, form


def propose(visitor, member: str) -> int:
    """Propose the award `big-help` (always needs a reviewer) for `member`; the claim's id."""
    done = confirm(visitor, check(visitor, member, "award", "big-help", memo="带头修路"))
    assert done.status_code == 303, text_of(done)
    return int(re.search(r"/desk/claims/(\d+)", done.location).group(1))


def test_a_reviewer_sees_the_claim_and_approves_it_once(signed_in, desk):
    organiser, reviewer = signed_in("organiser"), signed_in("reviewer")
    claim_id = propose(organiser, desk.member(0))

    listed = reviewer.get("/desk/claims")
    page = reviewer.get(f"/desk/claims/{claim_id}")

    assert f"/desk/claims/{claim_id}" in listed.get_data(as_text=True).split('id="to-decide"')[1]
    assert "居民0" in text_of(listed) and "+50 积分" in text_of(listed)
    assert "提出人：组织员小王" in text_of(listed)
    assert "待审核" in text_of(page) and "带头修路" in text_of(page)
    action, values = form(page, "/approve")
    before = head(desk.engine, desk.code).size
    first, second = reviewer.post(action, values), reviewer.post(action, values)
    assert first.status_code == second.status_code == 303
    assert first.location == second.location
    assert head(desk.engine, desk.code).size == before + 1
    claim = get_claim(desk.engine, desk.code, claim_id)
    assert claim.status == "posted"
    entry = get_entry(desk.engine, desk.code, claim.entry_seq)
    assert (entry.actor, entry.approver, entry.postings[0].points) == ("org", "rev", 50)
    assert "已批准" in text_of(reviewer.get(first.location))


def test_the_organiser_sees_their_claim_waiting_and_cannot_decide_it(signed_in, desk):
    organiser = signed_in("organiser")
    claim_id = propose(organiser, desk.member(0))

    listed = organiser.get("/desk/claims")
    page = organiser.get(f"/desk/claims/{claim_id}")

    assert f"/desk/claims/{claim_id}" in listed.get_data(as_text=True).split('id="proposed"')[1]
    assert "待审核" in text_of(listed)
    assert 'id="approve"' not in page.get_data(as_text=True)
    refused = organiser.post(f"/desk/claims/{claim_id}/approve", {})
    assert refused.status_code == 403 and "您无权进行此操作" in text_of(refused)
    assert get_claim(desk.engine, desk.code, claim_id).status == "pending"


def test_a_reviewer_cannot_approve_their_own_proposal(signed_in, desk):
    reviewer = signed_in("reviewer")
    claim_id = propose(reviewer, desk.member(1))

    page = reviewer.get(f"/desk/claims/{claim_id}")
    refused = reviewer.post(f"/desk/claims/{claim_id}/approve", {})
    rejected = reviewer.post(f"/desk/claims/{claim_id}/reject", {"reason": "不对"})

    own = "这条申请是您自己提出的，需要由另一位审核员批准或驳回。"
    assert own in text_of(page) and 'id="approve"' not in page.get_data(as_text=True)
    for response in (refused, rejected):
        assert response.status_code == 403
        assert own in text_of(response) and "same_person" not in text_of(response)
    assert get_claim(desk.engine, desk.code, claim_id).status == "pending"
    other = signed_in("second_reviewer")
    assert other.post(f"/desk/claims/{claim_id}/approve", {}).status_code == 303
    assert get_claim(desk.engine, desk.code, claim_id).status == "posted"


def test_a_rejection_needs_a_reason_and_is_recorded_once(signed_in, desk):
    organiser, reviewer = signed_in("organiser"), signed_in("reviewer")
    claim_id = propose(organiser, desk.member(2))
    action, values = form(reviewer.get(f"/desk/claims/{claim_id}"), "/reject")

    no_reason = reviewer.post(action, values | {"reason": "   "})
    first = reviewer.post(action, values | {"reason": "没有修路这回事"})
    second = reviewer.post(action, values | {"reason": "没有修路这回事"})

    assert no_reason.status_code == 422 and "请写明原因" in text_of(no_reason)
    assert first.status_code == second.status_code == 303
    claim = get_claim(desk.engine, desk.code, claim_id)
    assert (claim.status, claim.reason, claim.decided_by) == ("rejected", "没有修路这回事", "rev")
    page = reviewer.get(first.location)
    assert "已驳回" in text_of(page) and "没有修路这回事" in text_of(page)


def test_a_second_reviewer_is_told_the_claim_was_already_decided(signed_in, desk):
    organiser = signed_in("organiser")
    reviewer, second = signed_in("reviewer"), signed_in("second_reviewer")
    claim_id = propose(organiser, desk.member(3))
    action, values = form(second.get(f"/desk/claims/{claim_id}"), "/approve")
    reviewer.post(f"/desk/claims/{claim_id}/approve", {})

    late = second.post(action, values)

    assert late.status_code == 409
    assert "这条申请已经批准，积分已入账。" in text_of(late)


def test_a_claim_outside_the_reviewers_units_shows_no_decision(signed_in, desk):
    far = signed_in("far_organiser")
    claim_id = propose(far, "f0")
    reviewer = signed_in("reviewer")

    page = reviewer.get(f"/desk/claims/{claim_id}")
    refused = reviewer.post(f"/desk/claims/{claim_id}/approve", {})

    assert f"/desk/claims/{claim_id}" not in reviewer.get("/desk/claims").get_data(as_text=True)
    assert 'id="approve"' not in page.get_data(as_text=True)
    assert refused.status_code == 403
    assert "此人不在您负责的单位内" in text_of(refused)


def test_an_unknown_claim_is_said_plainly(signed_in):
    reviewer = signed_in("reviewer")
    response = reviewer.get("/desk/claims/999999")
    assert response.status_code == 404 and "没有这条申请" in text_of(response)


def test_a_decision_without_the_csrf_token_does_nothing(signed_in, desk):
    organiser, reviewer = signed_in("organiser"), signed_in("reviewer")
    claim_id = propose(organiser, desk.member(0))

    refused = reviewer.post(f"/desk/claims/{claim_id}/approve", {}, csrf=False)

    assert refused.status_code == 400 and "此表单已失效" in text_of(refused)
    assert get_claim(desk.engine, desk.code, claim_id).status == "pending"
