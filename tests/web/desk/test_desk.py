"""The organiser's desk through Flask's test client: who may open it, finding people within the
organiser's units, a person's page.

Every test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import re

import pytest

from ..conftest import text_of
from ..deskkit import check, confirm

# -- who may open the desk -------------------------------------------------------------


def test_signing_in_first(visitor):
    response = visitor.get("/desk")
    assert response.status_code == 302
    assert response.location.endswith("/sign-in?next=/desk")


def test_a_shop_device_cannot_open_the_desk(signed_in):
    till = signed_in("shop")
    for path in ("/desk", "/desk/sheets", "/desk/claims", "/desk/members/m0"):
        response = till.get(path)
        assert response.status_code == 403
        assert "此页面仅供工作人员使用" in text_of(response)


def test_an_auditor_may_not_award(signed_in, desk):
    auditor = signed_in("auditor")
    response = auditor.get("/desk")
    assert response.status_code == 403 and "您无权进行此操作" in text_of(response)
    assert auditor.get(f"/desk/members/{desk.member(0)}/award").status_code == 403


# -- finding people --------------------------------------------------------------------


def names_found(response) -> list[str]:
    return re.findall(r'<strong>([^<]+)</strong>', response.get_data(as_text=True).split(
        'id="matches"')[1].split("</ul>")[0]) if 'id="matches"' in response.get_data(
        as_text=True) else []


@pytest.mark.parametrize(("asked", "found"), [
    ("居民1", ["居民1"]),
    ("一户", ["居民0", "居民2"]),  # a household's name
    ("h2", ["居民1", "居民3"]),  # a household's code
    ("测试村", ["居民0", "居民2", "居民1", "居民3"]),  # a unit's name, by household
    ("远方人", []),  # outside the organiser's units
    ("%", []),  # matched literally, not as a wildcard
])
def test_the_desk_finds_people_by_name_household_or_unit_within_the_organisers_units(
        signed_in, asked, found):
    organiser = signed_in("organiser")

    response = organiser.get("/desk", query_string={"q": asked})

    assert response.status_code == 200
    assert names_found(response) == found
    if not found:
        assert f"您负责的单位里没有人符合“{asked}”" in text_of(response)


def test_the_far_organiser_finds_only_the_far_village(signed_in):
    far = signed_in("far_organiser")
    assert names_found(far.get("/desk", query_string={"q": "远"})) == ["远方人"]
    assert names_found(far.get("/desk", query_string={"q": "居民"})) == []


def test_a_person_outside_the_organisers_units_cannot_be_opened(signed_in, desk):
    far = signed_in("far_organiser")
    for path in (f"/desk/members/{desk.member(0)}", f"/desk/members/{desk.member(0)}/award",
                 f"/desk/members/{desk.member(0)}/award/meeting"):
        response = far.get(path)
        assert response.status_code == 403, path
        assert "您无权进行此操作" in text_of(response)


def test_the_member_page_shows_points_and_history(signed_in, desk):
    organiser = signed_in("organiser")
    confirm(organiser, check(organiser, desk.member(0), "award", "meeting"))

    page = organiser.get(f"/desk/members/{desk.member(0)}")

    assert page.status_code == 200
    assert "居民0" in text_of(page) and "一户 · 测试村" in text_of(page)
    assert "可用积分：5" in text_of(page)
    assert "参加村民大会" in text_of(page) and "+5 积分" in text_of(page)


