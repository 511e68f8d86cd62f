"""Awarding one person and deducting with a photo on the organiser's desk: rules by category,
check then confirm, each refusal in plain words, double submits, CSRF, evidence by SHA-256.

Every test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta

from ledger.accounts import member_account
from ledger.chain import get_entry, head
from ledger.claims import get_claim
from ledger.programmes import get_programme
from ledger.statements import balance_of
from web.routes.desk import Desk

from ..conftest import text_of
from ..deskkit import check, confirm, form, make_desk_village, photo_png, seq_of

# -- awarding one person ---------------------------------------------------------------


def test_the_rules_are_offered_by_category_for_the_sign_chosen(signed_in, desk):
    organiser = signed_in("organiser")

    awards = organiser.get(f"/desk/members/{desk.member(0)}/award")
    deductions = organiser.get(f"/desk/members/{desk.member(0)}/deduction")

    html = awards.get_data(as_text=True)
    assert re.findall(r'data-rule="([^"]+)"', html) == ["meeting", "big-help", "cleanup",
                                                        "volunteer"]
    assert "会议我能到" in html and "活动我参加" in html and "发展我带头" in html
    assert "每 60 分钟 5 积分" in text_of(awards) and "需审核" in text_of(awards)
    assert re.findall(r'data-rule="([^"]+)"', deductions.get_data(as_text=True)) == [
        "litter", "banquet"]


def test_an_organiser_checks_then_confirms_an_award(signed_in, desk):
    organiser = signed_in("organiser")
    before = head(desk.engine, desk.code).size

    checked = check(organiser, desk.member(1), "award", "meeting", memo="村民大会签到")

    assert checked.status_code == 200
    assert "请核对后确认" in text_of(checked) and "+5 积分" in text_of(checked)
    assert head(desk.engine, desk.code).size == before  # a check writes nothing
    done = confirm(organiser, checked)
    assert done.status_code == 303 and done.location.endswith("done=award")
    entry = get_entry(desk.engine, desk.code, seq_of(done))
    assert (entry.kind, entry.actor, entry.rule.code, entry.memo) == (
        "award", "org", "meeting", "村民大会签到")
    assert balance_of(desk.engine, desk.code, member_account(desk.member(1))).balance_points == 5
    page = organiser.get(done.location)
    assert "已加分" in text_of(page) and "居民1" in text_of(page)
    assert "组织员小王" in text_of(page)  # who recorded it, by name


def test_a_double_submit_awards_once(signed_in, desk):
    organiser = signed_in("organiser")
    checked = check(organiser, desk.member(0), "award", "cleanup")
    before = head(desk.engine, desk.code).size

    first, second = confirm(organiser, checked), confirm(organiser, checked)

    assert first.status_code == second.status_code == 303
    assert first.location == second.location
    assert head(desk.engine, desk.code).size == before + 1


def test_a_per_unit_rule_takes_a_quantity(signed_in, desk):
    organiser = signed_in("organiser")

    missing = check(organiser, desk.member(0), "award", "volunteer")
    too_many = check(organiser, desk.member(0), "award", "volunteer", quantity="600")
    checked = check(organiser, desk.member(0), "award", "volunteer", quantity="90")

    for refused in (missing, too_many):
        assert refused.status_code == 422
        assert "数量不符合这条规则" in text_of(refused)
    assert "+7 积分" in text_of(checked)  # 90 minutes at 5 points per 60, rounded down
    entry = get_entry(desk.engine, desk.code, seq_of(confirm(organiser, checked)))
    assert entry.rule.quantity == 90 and entry.postings[0].points == 7


def test_an_earlier_day_is_recorded_at_noon_and_a_later_one_is_refused(signed_in, desk):
    organiser = signed_in("organiser")
    zone_desk = Desk(get_programme(desk.engine, desk.code), None, {})
    yesterday = (zone_desk.today() - timedelta(days=1)).isoformat()
    tomorrow = (zone_desk.today() + timedelta(days=1)).isoformat()

    later = check(organiser, desk.member(0), "award", "cleanup", day=tomorrow)
    earlier = confirm(organiser, check(organiser, desk.member(0), "award", "cleanup",
                                       day=yesterday))

    assert later.status_code == 422 and "日期不能晚于今天" in text_of(later)
    entry = get_entry(desk.engine, desk.code, seq_of(earlier))
    assert zone_desk.when(entry.occurred_at) == f"{yesterday} 12:00"


def test_a_cap_is_refused_in_plain_words(signed_in, desk):
    organiser = signed_in("organiser")
    confirm(organiser, check(organiser, desk.member(0), "award", "meeting"))

    again = check(organiser, desk.member(0), "award", "meeting")

    assert again.status_code == 422
    words = text_of(again)
    assert "此人（或此户）已达到这条规则的上限" in words and "当天已用 1 次，共 5 分" in words
    assert "over_cap" not in words and "at most" not in words


def test_the_refusals_are_in_english_for_an_english_page(signed_in, desk):
    organiser = signed_in("organiser", language="en")
    confirm(organiser, check(organiser, desk.member(0), "award", "meeting"))

    again = check(organiser, desk.member(0), "award", "meeting")

    assert "The limit of this rule is reached for this person (or household)." in text_of(again)
    assert "That day it has already been used 1 time(s), for 5 point(s)." in text_of(again)


def test_an_organiser_outside_the_unit_cannot_award_even_by_posting_the_form(signed_in, desk):
    organiser, far = signed_in("organiser"), signed_in("far_organiser")
    checked = check(organiser, desk.member(0), "award", "cleanup")
    action, values = form(checked, "/confirm")
    before = head(desk.engine, desk.code).size

    for path in (action, action.removesuffix("/confirm")):
        refused = far.post(path, values | {"csrf_token": far.csrf})
        assert refused.status_code == 403 and "您无权进行此操作" in text_of(refused)
    assert head(desk.engine, desk.code).size == before


def test_a_form_without_its_csrf_token_does_nothing(signed_in, desk):
    organiser = signed_in("organiser")
    checked = check(organiser, desk.member(0), "award", "cleanup")
    action, values = form(checked, "/confirm")
    before = head(desk.engine, desk.code).size

    refused = organiser.post(action, values | {"csrf_token": "forged"})

    assert refused.status_code == 400 and "此表单已失效" in text_of(refused)
    assert head(desk.engine, desk.code).size == before


def test_a_reused_form_with_other_content_is_refused(signed_in, desk):
    organiser = signed_in("organiser")
    checked = check(organiser, desk.member(0), "award", "volunteer", quantity="60")
    action, values = form(checked, "/confirm")
    organiser.post(action, values)

    changed = organiser.post(action, values | {"quantity": "120"})

    assert changed.status_code == 409
    assert "这张表单已经提交过，内容不同" in text_of(changed)


# -- deductions, with a photo ----------------------------------------------------------


def test_a_deduction_keeps_its_photo_by_sha256_and_shows_it_to_staff(signed_in, desk,
                                                                     evidence_folder):
    organiser = signed_in("organiser")
    photo = photo_png()
    digest = hashlib.sha256(photo).hexdigest()

    checked = check(organiser, desk.member(2), "deduction", "litter", memo="河边乱扔垃圾",
                    photo=photo)

    assert "−5 积分" in text_of(checked)
    assert f"/desk/evidence/{digest}" in checked.get_data(as_text=True)
    done = confirm(organiser, checked)
    entry = get_entry(desk.engine, desk.code, seq_of(done))
    assert (entry.kind, entry.memo, entry.evidence) == ("deduction", "河边乱扔垃圾",
                                                        f"sha256:{digest}")
    kept = evidence_folder / desk.code / digest[:2] / digest
    assert kept.read_bytes() == photo
    served = organiser.get(f"/desk/evidence/{digest}")
    assert served.status_code == 200 and served.mimetype == "image/png"
    assert served.get_data() == photo
    assert signed_in("reviewer").get(f"/desk/evidence/{digest}").status_code == 200
    assert "已扣分" in text_of(organiser.get(done.location))


def test_evidence_is_served_only_to_staff_of_its_programme(signed_in, desk, engine,
                                                           new_visitor):
    organiser = signed_in("organiser")
    photo = photo_png((10, 120, 10))
    confirm(organiser, check(organiser, desk.member(2), "deduction", "litter", memo="乱扔",
                             photo=photo))
    digest = hashlib.sha256(photo).hexdigest()
    other = make_desk_village(engine)
    stranger = new_visitor()
    stranger.sign_in(other.usernames["organiser"])

    assert stranger.get(f"/desk/evidence/{digest}").status_code == 404
    assert signed_in("shop").get(f"/desk/evidence/{digest}").status_code == 403
    assert organiser.get(f"/desk/evidence/{'0' * 64}").status_code == 404


def test_a_deduction_needs_a_reason(signed_in, desk):
    organiser = signed_in("organiser")

    refused = check(organiser, desk.member(2), "deduction", "litter", memo="  ")

    assert refused.status_code == 422 and "请写明原因" in text_of(refused)


def test_a_file_that_is_not_a_photo_is_refused(signed_in, desk, evidence_folder):
    organiser = signed_in("organiser")

    refused = check(organiser, desk.member(2), "deduction", "litter", memo="乱扔",
                    photo=b"%PDF-1.4 not a photo")

    assert refused.status_code == 422 and "这个文件不是照片" in text_of(refused)
    assert not evidence_folder.exists() or not any(evidence_folder.rglob("*"))


def test_a_rule_that_needs_evidence_refuses_without_a_photo(signed_in, desk):
    organiser = signed_in("organiser")

    refused = check(organiser, desk.member(2), "deduction", "banquet", memo="办了无事酒")

    assert refused.status_code == 422 and "这条规则需要证据：请拍照上传" in text_of(refused)


def test_a_deduction_that_needs_approval_becomes_a_claim(signed_in, desk):
    organiser = signed_in("organiser")
    before = head(desk.engine, desk.code).size

    checked = check(organiser, desk.member(2), "deduction", "banquet", memo="办了无事酒",
                    photo=photo_png((0, 0, 200)))
    done = confirm(organiser, checked)

    assert "需要审核员批准" in text_of(checked)
    assert done.status_code == 303 and "done=proposed" in done.location
    claim_id = int(re.search(r"/desk/claims/(\d+)", done.location).group(1))
    claim = get_claim(desk.engine, desk.code, claim_id)
    assert (claim.status, claim.points, claim.proposer) == ("pending", -20, "org")
    assert claim.evidence.startswith("sha256:")
    assert head(desk.engine, desk.code).size == before  # nothing posts before approval
    assert "已提交审核" in text_of(organiser.get(done.location))
