"""Units, households, members and grants through the Flask test client, on both databases.

The `town` fixture's tree: town → east (household he: e0, e1, e2), west
(household hw: w0); its staff hold their roles on `town`.
"""

from __future__ import annotations

import pytest

from ledger.keys import create_key
from ledger.organisation import grant_role


def scoped_staff(town, principal: str, role: str, unit: str) -> str:
    """The role-matrix row the fixture lacks: a staff key whose role holds on one village only."""
    engine = town.client.application.extensions["jifen"].engine
    grant_role(engine, town.code, principal, role, unit)
    town.keys[principal] = create_key(engine, kind="staff", principal=principal,
                                      label=principal, programme=town.code).secret
    return principal


def codes(response) -> list[str]:
    assert response.status_code == 200, response.json
    return [item["code"] for item in response.json["items"]]


# -- units ------------------------------------------------------------------------------


def test_units_are_listed_by_code_with_parent_and_path(town):
    response = town.get("/units", "auditor")
    assert response.json == {"items": [
        {"code": "east", "name": "东村", "kind": "village", "parent": "town",
         "path": "/town/east/"},
        {"code": "town", "name": "测试镇", "kind": "town", "parent": None, "path": "/town/"},
        {"code": "west", "name": "西村", "kind": "village", "parent": "town",
         "path": "/town/west/"},
    ], "next_after": None}
    one = town.get("/units/east", "organiser")
    assert one.json == response.json["items"][0]
    unknown = town.get("/units/north", "organiser")
    assert (unknown.status_code, unknown.json["code"]) == (404, "unknown_unit")


def test_unit_pages_follow_the_cursor_to_the_end(town):
    first = town.get("/units?limit=2", "reviewer")
    assert (codes(first), first.json["next_after"]) == (["east", "town"], "town")
    second = town.get(f"/units?limit=2&after={first.json['next_after']}", "reviewer")
    assert (codes(second), second.json["next_after"]) == (["west"], None)
    exact = town.get("/units?limit=3", "reviewer")
    assert exact.json["next_after"] is None  # a full last page says so: no empty extra page


@pytest.mark.parametrize("query, field", [("limit=0", "limit"), ("limit=501", "limit"),
                                          ("limit=ten", "limit"), ("sort=name", "sort")])
def test_bad_page_parameters_are_validation_errors(town, query, field):
    response = town.get(f"/units?{query}", "admin")
    assert (response.status_code, response.json["code"]) == (422, "validation_error")
    assert [error["field"] for error in response.json["errors"]] == [field]


@pytest.mark.parametrize("path", ["/units", "/households", "/members"])
def test_a_cursor_that_is_not_a_code_is_invalid_cursor(town, path):
    response = town.get(f"{path}?after=%25%27%20OR%201%3D1", "admin")
    assert (response.status_code, response.json["code"]) == (400, "invalid_cursor")
    assert response.mimetype == "application/problem+json"


def test_an_admin_creates_a_unit_under_a_parent_once(town):
    body = {"code": "east-grid-1", "name": "东村一网格", "kind": "grid", "parent": "east"}
    first = town.post("/units", "admin", body, idempotency_key="unit-1")
    assert first.status_code == 201, first.json
    assert first.json == {"code": "east-grid-1", "name": "东村一网格", "kind": "grid",
                          "parent": "east", "path": "/town/east/east-grid-1/"}
    replay = town.post("/units", "admin", body, idempotency_key="unit-1")
    assert (replay.status_code, replay.headers["Idempotent-Replayed"]) == (201, "true")
    assert replay.json == first.json
    conflict = town.post("/units", "admin", body | {"name": "改名"}, idempotency_key="unit-1")
    assert (conflict.status_code, conflict.json["code"]) == (409, "idempotency_conflict")
    again = town.post("/units", "admin", body)
    assert (again.status_code, again.json["code"]) == (409, "already_exists")
    assert "east-grid-1" in codes(town.get("/units", "admin"))


def test_unit_validation_errors_name_their_fields(town):
    bad = town.post("/units", "admin", {"code": "x", "name": "", "kind": "planet",
                                        "parent": "east"})
    assert bad.status_code == 422
    assert sorted(error["field"] for error in bad.json["errors"]) == ["kind", "name"]
    orphan = town.post("/units", "admin", {"code": "x", "name": "x", "kind": "grid",
                                           "parent": "north"})
    assert (orphan.status_code, orphan.json["code"]) == (404, "unknown_unit")


def test_a_top_unit_needs_an_operator_key(town):
    body = {"code": "second-town", "name": "第二镇", "kind": "town"}
    refused = town.post("/units", "admin", body)
    assert (refused.status_code, refused.json["code"]) == (403, "forbidden")
    created = town.post("/units", "operator", body)
    assert (created.status_code, created.json["parent"], created.json["path"]) == (
        201, None, "/second-town/")


def test_a_village_admin_creates_units_only_in_their_village(town):
    scoped_staff(town, "east-admin", "admin", "east")
    inside = town.post("/units", "east-admin", {"code": "eg", "name": "网格", "kind": "grid",
                                                "parent": "east"})
    assert inside.status_code == 201, inside.json
    outside = town.post("/units", "east-admin", {"code": "wg", "name": "网格", "kind": "grid",
                                                 "parent": "west"})
    assert (outside.status_code, outside.json["code"]) == (403, "forbidden")
    assert "'west'" in outside.json["detail"]
    assert "wg" not in codes(town.get("/units", "admin"))


@pytest.mark.parametrize("role", ["organiser", "reviewer", "auditor", "member", "shop", "other"])
def test_only_admins_create_units(town, role):
    response = town.post("/units", role, {"code": "g", "name": "g", "kind": "grid",
                                          "parent": "east"})
    assert (response.status_code, response.json["code"]) == (403, "forbidden")


@pytest.mark.parametrize("path", ["/units", "/units/east", "/households", "/households/he"])
@pytest.mark.parametrize("role", ["member", "shop", "other"])
def test_members_shops_and_strangers_do_not_read_the_tree(town, path, role):
    response = town.get(path, role)
    assert (response.status_code, response.json["code"]) == (403, "forbidden")


# -- households -------------------------------------------------------------------------


def test_households_are_listed_read_and_created(town):
    listed = town.get("/households", "organiser")
    assert listed.json == {"items": [{"code": "he", "name": "东一户", "unit": "east"},
                                     {"code": "hw", "name": "西一户", "unit": "west"}],
                           "next_after": None}
    page = town.get("/households?limit=1", "organiser")
    assert (codes(page), page.json["next_after"]) == (["he"], "he")
    assert codes(town.get("/households?after=he", "organiser")) == ["hw"]
    body = {"code": "he2", "name": "东二户", "unit": "east"}
    created = town.post("/households", "admin", body, idempotency_key="hh")
    assert (created.status_code, created.json) == (201, body)
    replay = town.post("/households", "admin", body, idempotency_key="hh")
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert town.get("/households/he2", "auditor").json == body
    duplicate = town.post("/households", "admin", body)
    assert (duplicate.status_code, duplicate.json["code"]) == (409, "already_exists")
    unknown = town.get("/households/nobody", "auditor")
    assert (unknown.status_code, unknown.json["code"]) == (404, "unknown_household")


def test_a_household_in_an_unknown_unit(town):
    as_admin = town.post("/households", "admin", {"code": "h", "name": "h", "unit": "north"})
    assert (as_admin.status_code, as_admin.json["code"]) == (404, "unknown_unit")
    # Without the role, the answer is 403 whatever the unit: no probing for unit codes.
    as_organiser = town.post("/households", "organiser",
                             {"code": "h", "name": "h", "unit": "north"})
    assert (as_organiser.status_code, as_organiser.json["code"]) == (403, "forbidden")


def test_a_village_admin_adds_households_only_in_their_village(town):
    scoped_staff(town, "west-admin", "admin", "west")
    assert town.post("/households", "west-admin",
                     {"code": "hw2", "name": "西二户", "unit": "west"}).status_code == 201
    refused = town.post("/households", "west-admin",
                        {"code": "he9", "name": "东九户", "unit": "east"})
    assert (refused.status_code, refused.json["code"]) == (403, "forbidden")


# -- members ----------------------------------------------------------------------------


def test_staff_list_the_members_of_their_subtrees_only(town):
    assert codes(town.get("/members", "auditor")) == ["e0", "e1", "e2", "w0"]
    assert codes(town.get("/members", "operator")) == ["e0", "e1", "e2", "w0"]
    scoped_staff(town, "west-organiser", "organiser", "west")
    assert codes(town.get("/members", "west-organiser")) == ["w0"]
    scoped_staff(town, "east-reviewer", "reviewer", "east")
    page = town.get("/members?limit=2", "east-reviewer")
    assert (codes(page), page.json["next_after"]) == (["e0", "e1"], "e1")
    rest = town.get("/members?limit=2&after=e1", "east-reviewer")
    assert (codes(rest), rest.json["next_after"]) == (["e2"], None)


def test_a_unit_code_with_an_underscore_is_not_a_wildcard(town):
    """`e_st` would match `east` as a LIKE pattern; its subtree must hold only its own members."""
    town.post("/units", "admin", {"code": "e_st", "name": "x", "kind": "grid", "parent": "town"})
    scoped_staff(town, "underscore", "organiser", "e_st")
    assert codes(town.get("/members", "underscore")) == []


def test_a_member_key_lists_only_its_own_member(town):
    own = town.get("/members", "member")
    assert own.json == {"items": [{"code": "e0", "name": "东村居民e0", "household": "he",
                                   "unit": "east", "account": "member:e0"}],
                        "next_after": None}
    assert codes(town.get("/members?after=e0", "member")) == []
    refused = town.get("/members", "shop")
    assert (refused.status_code, refused.json["code"]) == (403, "forbidden")


def test_reading_one_member(town):
    staff = town.get("/members/e1", "organiser")
    assert staff.json == {"code": "e1", "name": "东村居民e1", "household": "he", "unit": "east",
                          "account": "member:e1"}
    assert town.get("/members/e0", "member").json["code"] == "e0"
    other_member = town.get("/members/e1", "member")
    assert (other_member.status_code, other_member.json["code"]) == (403, "forbidden")
    scoped_staff(town, "east-auditor", "auditor", "east")
    outside = town.get("/members/w0", "east-auditor")
    assert (outside.status_code, outside.json["code"]) == (403, "forbidden")
    unknown = town.get("/members/nobody", "auditor")
    assert (unknown.status_code, unknown.json["code"]) == (404, "unknown_member")
    for role in ("shop", "other"):
        assert town.get("/members/e0", role).status_code == 403


def test_an_admin_adds_a_member_once(town):
    body = {"code": "e3", "name": "新居民", "household": "he"}
    first = town.post("/members", "admin", body, idempotency_key="m-e3")
    assert first.status_code == 201, first.json
    assert first.json == {"code": "e3", "name": "新居民", "household": "he", "unit": "east",
                          "account": "member:e3"}
    replay = town.post("/members", "admin", body, idempotency_key="m-e3")
    assert (replay.headers["Idempotent-Replayed"], replay.json) == ("true", first.json)
    conflict = town.post("/members", "admin", body | {"name": "别人"}, idempotency_key="m-e3")
    assert (conflict.status_code, conflict.json["code"]) == (409, "idempotency_conflict")
    duplicate = town.post("/members", "admin", body)
    assert (duplicate.status_code, duplicate.json["code"]) == (409, "already_exists")
    assert "e3" in codes(town.get("/members", "admin"))
    assert town.get("/members/e3", "auditor").json == first.json


def test_a_member_may_sit_in_another_unit_than_their_household(town):
    created = town.post("/members", "admin", {"code": "e9", "name": "借住", "household": "he",
                                              "unit": "west"})
    assert (created.status_code, created.json["unit"]) == (201, "west")
    scoped_staff(town, "east-admin", "admin", "east")
    refused = town.post("/members", "east-admin", {"code": "e8", "name": "x", "household": "he",
                                                   "unit": "west"})
    assert (refused.status_code, refused.json["code"]) == (403, "forbidden")
    refused_household = town.post("/members", "east-admin",
                                  {"code": "w8", "name": "x", "household": "hw"})
    assert refused_household.status_code == 403
    assert codes(town.get("/members?after=e7&limit=3", "admin")) == ["e9", "w0"]


def test_member_creation_refusals(town):
    missing = town.post("/members", "admin", {"code": "e5", "name": "x"})
    assert missing.json["errors"] == [{"field": "household",
                                       "message": "Missing data for required field."}]
    unknown = town.post("/members", "admin", {"code": "e5", "name": "x", "household": "hx"})
    assert (unknown.status_code, unknown.json["code"]) == (404, "unknown_household")
    for role in ("organiser", "auditor", "member"):
        refused = town.post("/members", role, {"code": "e5", "name": "x", "household": "he"})
        assert (refused.status_code, refused.json["code"]) == (403, "forbidden"), role
    assert "e5" not in codes(town.get("/members", "admin"))


# -- grants -----------------------------------------------------------------------------


def test_admins_list_the_grants(town):
    listed = town.get("/grants", "admin")
    assert [(grant["principal"], grant["role"], grant["unit"])
            for grant in listed.json["items"]] == [
        ("org", "organiser", "town"), ("rev", "reviewer", "town"), ("adm", "admin", "town"),
        ("aud", "auditor", "town")]
    assert all(grant["revoked_at"] is None for grant in listed.json["items"])
    mine = town.get("/grants?principal=rev", "admin")
    assert [grant["role"] for grant in mine.json["items"]] == ["reviewer"]
    for role in ("organiser", "reviewer", "auditor", "member", "shop", "other"):
        assert town.get("/grants", role).status_code == 403, role


def test_a_grant_gives_the_role_and_revoking_takes_it_away(town):
    engine = town.client.application.extensions["jifen"].engine
    town.keys["carol"] = create_key(engine, kind="staff", principal="carol", label="carol",
                                    programme=town.code).secret
    assert town.get("/members", "carol").status_code == 403
    body = {"principal": "carol", "role": "organiser", "unit": "east"}
    granted = town.post("/grants", "admin", body, idempotency_key="g-carol")
    assert granted.status_code == 201, granted.json
    assert (granted.json["principal"], granted.json["unit"], granted.json["revoked_at"]) == (
        "carol", "east", None)
    replay = town.post("/grants", "admin", body, idempotency_key="g-carol")
    assert (replay.headers["Idempotent-Replayed"], replay.json) == ("true", granted.json)
    twice = town.post("/grants", "admin", body)
    assert (twice.status_code, twice.json["code"]) == (409, "already_exists")
    assert twice.json["grant"] == granted.json["id"]
    assert codes(town.get("/members", "carol")) == ["e0", "e1", "e2"]

    grant_path = f"/grants/{granted.json['id']}"
    revoked = town.client.delete(town.url(grant_path), headers=town.headers("admin", "r-1"))
    assert revoked.status_code == 200, revoked.json
    assert revoked.json["id"] == granted.json["id"]
    assert revoked.json["revoked_at"] is not None
    replayed = town.client.delete(town.url(grant_path), headers=town.headers("admin", "r-1"))
    assert (replayed.headers["Idempotent-Replayed"], replayed.json) == ("true", revoked.json)
    again = town.client.delete(town.url(grant_path), headers=town.headers("admin"))
    assert (again.status_code, again.json["code"]) == (404, "unknown_grant")
    assert town.get("/members", "carol").status_code == 403
    active = town.get("/grants?principal=carol", "admin").json["items"]
    every = town.get("/grants?principal=carol&include_revoked=true", "admin").json["items"]
    assert (active, [grant["id"] for grant in every]) == ([], [granted.json["id"]])
    regranted = town.post("/grants", "admin", body)
    assert regranted.status_code == 201  # a revoked grant does not block a new one


def test_grant_refusals(town):
    bad_role = town.post("/grants", "admin", {"principal": "x", "role": "king", "unit": "east"})
    assert (bad_role.status_code, [e["field"] for e in bad_role.json["errors"]]) == (422,
                                                                                     ["role"])
    system = town.post("/grants", "admin", {"principal": "system:me", "role": "admin",
                                            "unit": "town"})
    assert (system.status_code, system.json["code"], system.json["field"]) == (
        422, "invalid_entry", "principal")
    unknown_unit = town.post("/grants", "admin", {"principal": "x", "role": "admin",
                                                  "unit": "north"})
    assert (unknown_unit.status_code, unknown_unit.json["code"]) == (404, "unknown_unit")
    unknown = town.client.delete(town.url("/grants/999999999"), headers=town.headers("admin"))
    assert (unknown.status_code, unknown.json["code"]) == (404, "unknown_grant")
    beyond_32_bits = town.client.delete(town.url("/grants/11407696896"),
                                        headers=town.headers("admin"))
    assert (beyond_32_bits.status_code, beyond_32_bits.json["code"]) == (404, "not_found")
    for role in ("organiser", "auditor", "member", "shop", "other"):
        refused = town.post("/grants", role, {"principal": "x", "role": "admin", "unit": "east"})
        assert (refused.status_code, refused.json["code"]) == (403, "forbidden"), role


def test_a_village_admin_grants_and_revokes_only_in_their_village(town):
    scoped_staff(town, "east-admin", "admin", "east")
    inside = town.post("/grants", "east-admin", {"principal": "dan", "role": "organiser",
                                                 "unit": "east"})
    assert inside.status_code == 201
    upward = town.post("/grants", "east-admin", {"principal": "east-admin", "role": "admin",
                                                 "unit": "town"})
    assert (upward.status_code, upward.json["code"]) == (403, "forbidden")
    town_grant = town.get("/grants?principal=org", "admin").json["items"][0]
    revoke = town.client.delete(town.url(f"/grants/{town_grant['id']}"),
                                headers=town.headers("east-admin"))
    assert (revoke.status_code, revoke.json["code"]) == (403, "forbidden")
    assert town.get("/grants?principal=org", "admin").json["items"] == [town_grant]
    own_village = town.client.delete(town.url(f"/grants/{inside.json['id']}"),
                                     headers=town.headers("east-admin"))
    assert own_village.status_code == 200
