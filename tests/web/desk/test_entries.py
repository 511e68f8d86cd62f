"""Entries on the organiser's desk: an entry's page, and reversing it with a reason, once, by a
reviewer over the person's unit; every refusal in plain words.

Every test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

from ledger.chain import get_entry, head, reversal_of

from ..conftest import text_of
from ..deskkit import check, confirm, form, seq_of


def award(signed_in, member: str, rule: str = "cleanup") -> int:
    organiser = signed_in("organiser")
    return seq_of(confirm(organiser, check(organiser, member, "award", rule)))


def reverse(visitor, seq: int, reason: str = "录入错误"):
    action, values = form(visitor.get(f"/desk/entries/{seq}"), "/reversal")
    return visitor.post(action, values | {"reason": reason})


def test_a_reviewer_reverses_an_entry_with_a_reason_once(signed_in, desk):
    seq = award(signed_in, desk.member(0))
    reviewer = signed_in("reviewer")
    page = reviewer.get(f"/desk/entries/{seq}")
    action, values = form(page, "/reversal")
    before = head(desk.engine, desk.code).size

    first = reviewer.post(action, values | {"reason": "录入错误：当天不在场"})
    second = reviewer.post(action, values | {"reason": "录入错误：当天不在场"})

    assert "冲正这条记录" in text_of(page)
    assert first.status_code == second.status_code == 303
    assert first.location == second.location == f"/desk/entries/{seq}?done=reversed"
    assert head(desk.engine, desk.code).size == before + 1
    reversal = get_entry(desk.engine, desk.code, reversal_of(desk.engine, desk.code, seq))
    assert (reversal.kind, reversal.reverses, reversal.actor, reversal.memo) == (
        "reversal", seq, "rev", "录入错误：当天不在场")
    shown = reviewer.get(first.location)
    assert "已冲正" in text_of(shown) and "这条记录已被冲正" in text_of(shown)
    assert 'id="reverse-entry"' not in shown.get_data(as_text=True)


def test_a_second_reversal_from_another_form_is_refused_in_plain_words(signed_in, desk):
    seq = award(signed_in, desk.member(0))
    reviewer, second = signed_in("reviewer"), signed_in("second_reviewer")
    action, values = form(second.get(f"/desk/entries/{seq}"), "/reversal")
    assert reverse(reviewer, seq).status_code == 303

    late = second.post(action, values | {"reason": "重复"})

    assert late.status_code == 409
    assert "这条记录已经冲正过了" in text_of(late) and "already_reversed" not in text_of(late)


def test_a_reversal_needs_a_reason(signed_in, desk):
    seq = award(signed_in, desk.member(0))
    reviewer = signed_in("reviewer")
    action, values = form(reviewer.get(f"/desk/entries/{seq}"), "/reversal")

    refused = reviewer.post(action, values | {"reason": "  "})

    assert refused.status_code == 422 and "请写明原因" in text_of(refused)
    assert reversal_of(desk.engine, desk.code, seq) is None


def test_an_organiser_may_not_reverse(signed_in, desk):
    seq = award(signed_in, desk.member(0))
    organiser = signed_in("organiser")

    page = organiser.get(f"/desk/entries/{seq}")
    refused = organiser.post(f"/desk/entries/{seq}/reversal",
                             {"reason": "错了", "attempt": "a" * 22})

    assert page.status_code == 200 and 'id="reverse-entry"' not in page.get_data(as_text=True)
    assert refused.status_code == 403 and "您无权进行此操作" in text_of(refused)
    assert reversal_of(desk.engine, desk.code, seq) is None


def test_a_reviewer_outside_the_persons_unit_is_refused(signed_in, desk, engine):
    far = signed_in("far_organiser")
    seq = seq_of(confirm(far, check(far, "f0", "award", "cleanup")))
    reviewer = signed_in("reviewer")

    refused = reviewer.post(f"/desk/entries/{seq}/reversal",
                            {"reason": "错了", "attempt": "b" * 22})

    assert refused.status_code == 403
    assert "此人不在您负责的单位内" in text_of(refused)


def test_only_awards_and_deductions_are_reversed(signed_in, desk):
    seq = award(signed_in, desk.member(0))
    reviewer = signed_in("reviewer")
    assert reverse(reviewer, seq).status_code == 303
    reversal = reversal_of(desk.engine, desk.code, seq)

    refused = reviewer.post(f"/desk/entries/{reversal}/reversal",
                            {"reason": "撤销冲正", "attempt": "c" * 22})

    assert refused.status_code == 422
    assert "这里只能冲正加分和扣分记录" in text_of(refused)


def test_an_entry_is_found_by_its_number(signed_in, desk):
    seq = award(signed_in, desk.member(0))
    reviewer = signed_in("reviewer")

    found = reviewer.get("/desk/entries", query_string={"seq": f" #{seq} "})
    unknown = reviewer.get("/desk/entries/99999999")
    nonsense = reviewer.get("/desk/entries", query_string={"seq": "abc"})

    assert found.status_code == 302 and found.location == f"/desk/entries/{seq}"
    assert unknown.status_code == 404 and "没有编号为 99999999 的记录" in text_of(unknown)
    assert nonsense.status_code == 302 and nonsense.location == "/desk"


def test_a_reversal_without_the_csrf_token_does_nothing(signed_in, desk):
    seq = award(signed_in, desk.member(0))
    reviewer = signed_in("reviewer")
    action, values = form(reviewer.get(f"/desk/entries/{seq}"), "/reversal")

    refused = reviewer.post(action, values | {"reason": "错了", "csrf_token": ""})

    assert refused.status_code == 400 and "此表单已失效" in text_of(refused)
    assert reversal_of(desk.engine, desk.code, seq) is None
