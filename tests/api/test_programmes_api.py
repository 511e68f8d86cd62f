"""GET and POST /programmes through the Flask test client, on both databases."""

from __future__ import annotations

import uuid


def new_code() -> str:
    return f"p-{uuid.uuid4().hex[:10]}"


def test_an_operator_creates_a_programme_and_a_retry_replays(town):
    code = new_code()
    body = {"code": code, "name": "幸福村积分", "time_zone": "Asia/Urumqi"}
    headers = town.headers("operator", "create-1")
    first = town.client.post("/programmes", json=body, headers=headers)
    assert first.status_code == 201, first.json
    assert first.json == {"code": code, "name": "幸福村积分", "time_zone": "Asia/Urumqi"}
    again = town.client.post("/programmes", json=body, headers=headers)
    assert (again.status_code, again.headers["Idempotent-Replayed"]) == (201, "true")
    assert again.json == first.json
    changed = town.client.post("/programmes", json=body | {"name": "另一个"}, headers=headers)
    assert (changed.status_code, changed.json["code"]) == (409, "idempotency_conflict")
    without_key = town.client.post("/programmes", json=body, headers=town.headers("operator"))
    assert (without_key.status_code, without_key.json["code"]) == (409, "already_exists")
    read = town.client.get(f"/programmes/{code}", headers=town.headers("operator"))
    assert read.json == first.json


def test_the_time_zone_defaults_to_shanghai(town):
    code = new_code()
    response = town.client.post("/programmes", json={"code": code, "name": "x"},
                                headers=town.headers("operator"))
    assert (response.status_code, response.json["time_zone"]) == (201, "Asia/Shanghai")


def test_a_bad_programme_is_a_validation_error_naming_the_field(town):
    def create(body):
        return town.client.post("/programmes", json=body, headers=town.headers("operator"))

    bad_code = create({"code": "Has Spaces", "name": "x"})
    assert (bad_code.status_code, bad_code.json["code"]) == (422, "validation_error")
    assert [error["field"] for error in bad_code.json["errors"]] == ["code"]
    missing = create({"code": new_code()})
    assert missing.json["errors"] == [{"field": "name",
                                       "message": "Missing data for required field."}]
    unknown = create({"code": new_code(), "name": "x", "currency": "CNY"})
    assert unknown.json["errors"] == [{"field": "currency", "message": "Unknown field."}]
    code = new_code()
    zone = create({"code": code, "name": "x", "time_zone": "Mars/Olympus"})
    assert (zone.status_code, zone.json["code"], zone.json["field"]) == (422, "invalid_entry",
                                                                        "time_zone")
    nothing = town.client.get(f"/programmes/{code}", headers=town.headers("operator"))
    assert (nothing.status_code, nothing.json["code"]) == (404, "unknown_programme")


def test_only_an_operator_creates_a_programme(town):
    code = new_code()
    for role in ("admin", "auditor", "member", "shop", "other"):
        refused = town.client.post("/programmes", json={"code": code, "name": "x"},
                                   headers=town.headers(role))
        assert (refused.status_code, refused.json["code"]) == (403, "forbidden"), role
        assert refused.mimetype == "application/problem+json"
    anonymous = town.client.post("/programmes", json={"code": code, "name": "x"})
    assert (anonymous.status_code, anonymous.json["code"]) == (401, "unauthenticated")
    nothing = town.client.get(f"/programmes/{code}", headers=town.headers("operator"))
    assert nothing.status_code == 404


def test_staff_list_their_own_programme_and_an_operator_lists_every_one(town):
    for role in ("organiser", "reviewer", "admin", "auditor"):
        own = town.client.get("/programmes", headers=town.headers(role))
        assert own.status_code == 200, role
        assert own.json == {"items": [{"code": town.code, "name": f"API test {town.code}",
                                       "time_zone": "Asia/Shanghai"}]}
    every = town.client.get("/programmes", headers=town.headers("operator"))
    codes = [item["code"] for item in every.json["items"]]
    assert town.code in codes
    assert len(codes) >= 2  # the `other` key's programme too
    assert codes == sorted(codes)
    for role in ("member", "shop"):
        refused = town.client.get("/programmes", headers=town.headers(role))
        assert (refused.status_code, refused.json["code"]) == (403, "forbidden"), role


def test_reading_one_programme(town):
    for role in ("organiser", "reviewer", "admin", "auditor", "operator"):
        response = town.get("", role)
        assert (response.status_code, response.json["code"]) == (200, town.code), role
    for role in ("member", "shop", "other"):
        refused = town.get("", role)
        assert (refused.status_code, refused.json["code"]) == (403, "forbidden"), role
    unknown = town.client.get(f"/programmes/{new_code()}", headers=town.headers("operator"))
    assert (unknown.status_code, unknown.json["code"]) == (404, "unknown_programme")


def test_an_operator_sets_up_a_programme_over_http_alone(town):
    """Programme, top unit, an admin's grant and key: then that admin carries on alone."""
    code = new_code()
    operator = town.headers("operator")
    client = town.client
    assert client.post("/programmes", json={"code": code, "name": "新村"},
                       headers=operator).status_code == 201
    top = client.post(f"/programmes/{code}/units", headers=operator,
                      json={"code": "xin", "name": "新村", "kind": "village"})
    assert (top.status_code, top.json["path"]) == (201, "/xin/")
    grant = client.post(f"/programmes/{code}/grants", headers=operator,
                        json={"principal": "chief", "role": "admin", "unit": "xin"})
    assert grant.status_code == 201, grant.json
    key = client.post(f"/programmes/{code}/keys", headers=operator,
                      json={"kind": "staff", "principal": "chief", "label": "村委会电脑"})
    assert key.status_code == 201, key.json
    chief = {"Authorization": f"Bearer {key.json['secret']}"}
    group = client.post(f"/programmes/{code}/units", headers=chief,
                        json={"code": "group-1", "name": "一组", "kind": "group",
                              "parent": "xin"})
    assert (group.status_code, group.json["path"]) == (201, "/xin/group-1/")
    listed = client.get("/programmes", headers=chief)
    assert [item["code"] for item in listed.json["items"]] == [code]
