"""API keys of a programme through the Flask test client, on both databases."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from api import idempotency
from ledger.keys import create_key, verify_key
from ledger.models import IdempotencyRecord
from ledger.organisation import grant_role
from ledger.storage import read_transaction

KEY = re.compile(r"^jf_([a-z2-7]{10})_[A-Za-z0-9_-]{43}$")


def engine_of(town):
    return town.client.application.extensions["jifen"].engine


def scoped_staff(town, principal: str, role: str, unit: str) -> str:
    """A staff key whose role holds on one village only."""
    grant_role(engine_of(town), town.code, principal, role, unit)
    town.keys[principal] = create_key(engine_of(town), kind="staff", principal=principal,
                                      label=principal, programme=town.code).secret
    return principal


def listed(town) -> dict[str, dict]:
    response = town.get("/keys", "admin")
    assert response.status_code == 200, response.json
    return {key["prefix"]: key for key in response.json["items"]}


def issue(town, body, role="admin", idempotency_key=None):
    return town.post("/keys", role, body, idempotency_key=idempotency_key)


def test_an_admin_issues_a_member_key_whose_secret_is_shown_once(town):
    response = issue(town, {"kind": "member", "principal": "e1", "label": "e1's phone"})
    assert response.status_code == 201, response.json
    assert response.headers["Cache-Control"] == "no-store"
    secret = response.json["secret"]
    match = KEY.match(secret)
    assert match is not None and match.group(1) == response.json["prefix"]
    assert {key: value for key, value in response.json.items()
            if key not in ("secret", "created_at", "prefix")} == {
        "kind": "member", "principal": "e1", "label": "e1's phone", "revoked_at": None}
    own = town.client.get(town.url("/members/e1"), headers={"Authorization": f"Bearer {secret}"})
    assert (own.status_code, own.json["code"]) == (200, "e1")
    everything = town.get("/keys", "admin")
    assert secret.split("_", 2)[2] not in everything.get_data(as_text=True)
    assert "secret" not in everything.json["items"][0]
    entry = listed(town)[response.json["prefix"]]
    assert entry == {key: value for key, value in response.json.items() if key != "secret"}


def test_the_list_holds_every_key_of_the_programme_and_only_those(town):
    keys = listed(town)
    assert sorted((key["kind"], key["principal"]) for key in keys.values()) == [
        ("member", "e0"), ("shop", "shop-1"), ("staff", "adm"), ("staff", "aud"),
        ("staff", "org"), ("staff", "rev")]
    assert all(key["revoked_at"] is None for key in keys.values())


def test_a_retry_replays_without_the_secret_and_makes_no_second_key(town):
    body = {"kind": "member", "principal": "e2", "label": "retry"}
    first = issue(town, body, idempotency_key="key-1")
    assert first.status_code == 201
    replay = issue(town, body, idempotency_key="key-1")
    assert (replay.status_code, replay.headers["Idempotent-Replayed"]) == (201, "true")
    assert replay.json == first.json | {"secret": None}
    assert [key["principal"] for key in listed(town).values()].count("e2") == 1
    conflict = issue(town, body | {"label": "other"}, idempotency_key="key-1")
    assert (conflict.status_code, conflict.json["code"]) == (409, "idempotency_conflict")


def test_no_secret_is_kept_with_the_idempotency_record(town):
    response = issue(town, {"kind": "shop", "principal": "shop-2", "label": "till"},
                     idempotency_key="kept")
    secret = response.json["secret"]
    admin_key_id = verify_key(engine_of(town), town.keys["admin"]).key_id
    with read_transaction(engine_of(town)) as connection:
        kept = connection.execute(select(IdempotencyRecord.response_body).where(
            IdempotencyRecord.api_key_id == admin_key_id,
            IdempotencyRecord.idempotency_key == "kept")).scalar_one()
    assert response.json["prefix"] in kept
    assert secret.split("_", 2)[2] not in kept


def test_a_key_made_by_a_losing_concurrent_twin_is_revoked(town, monkeypatch):
    """Two identical requests race: the one whose response is not kept revokes its own key."""
    body = {"kind": "member", "principal": "e2", "label": "twin"}
    winner = issue(town, body, idempotency_key="twin")
    real_find = idempotency._find
    calls = []

    def not_yet_kept(key_id, key):  # the twin looked before the winner kept its response
        calls.append(key)
        return None if len(calls) == 1 else real_find(key_id, key)

    monkeypatch.setattr(idempotency, "_find", not_yet_kept)
    loser = issue(town, body, idempotency_key="twin")
    assert len(calls) == 2
    assert (loser.headers["Idempotent-Replayed"], loser.json["prefix"]) == (
        "true", winner.json["prefix"])
    twins = [key for key in listed(town).values() if key["label"] == "twin"]
    assert len(twins) == 2
    by_prefix = {key["prefix"]: key["revoked_at"] for key in twins}
    assert by_prefix.pop(winner.json["prefix"]) is None
    assert list(by_prefix.values())[0] is not None


def test_staff_keys_need_an_admin_over_every_unit_of_the_principal(town):
    scoped_staff(town, "east-admin", "admin", "east")
    town_organiser = issue(town, {"kind": "staff", "principal": "org", "label": "x"},
                           role="east-admin")
    assert (town_organiser.status_code, town_organiser.json["code"]) == (403, "forbidden")
    grant_role(engine_of(town), town.code, "erin", "organiser", "east")
    east_organiser = issue(town, {"kind": "staff", "principal": "erin", "label": "x"},
                           role="east-admin")
    assert east_organiser.status_code == 201, east_organiser.json
    newcomer = issue(town, {"kind": "staff", "principal": "frank", "label": "x"},
                     role="east-admin")
    assert (newcomer.status_code, newcomer.json["code"]) == (403, "forbidden")
    assert "top unit" in newcomer.json["detail"]
    assert issue(town, {"kind": "staff", "principal": "frank", "label": "x"}).status_code == 201
    shop = issue(town, {"kind": "shop", "principal": "shop-9", "label": "x"}, role="east-admin")
    assert shop.status_code == 403
    member_west = issue(town, {"kind": "member", "principal": "w0", "label": "x"},
                        role="east-admin")
    assert member_west.status_code == 403
    member_east = issue(town, {"kind": "member", "principal": "e2", "label": "x"},
                        role="east-admin")
    assert member_east.status_code == 201
    principals = [key["principal"] for key in listed(town).values()]
    assert ("org" in principals, principals.count("frank"), "w0" in principals) == (True, 1,
                                                                                    False)


def test_key_creation_refusals(town):
    operator_kind = issue(town, {"kind": "operator", "principal": "x", "label": "x"})
    assert (operator_kind.status_code, operator_kind.json["errors"][0]["field"]) == (422, "kind")
    missing = issue(town, {"kind": "member", "principal": "e1"})
    assert missing.json["errors"] == [{"field": "label",
                                       "message": "Missing data for required field."}]
    unknown_member = issue(town, {"kind": "member", "principal": "nobody", "label": "x"})
    assert (unknown_member.status_code, unknown_member.json["code"]) == (404, "unknown_member")
    system = issue(town, {"kind": "staff", "principal": "system:root", "label": "x"})
    assert (system.status_code, system.json["code"], system.json["field"]) == (
        422, "invalid_entry", "principal")
    assert len(listed(town)) == 6


@pytest.mark.parametrize("role", ["organiser", "reviewer", "auditor", "member", "shop", "other"])
def test_only_admins_issue_list_and_revoke_keys(town, role):
    prefix = verify_key(engine_of(town), town.keys["member"]).prefix
    attempts = [issue(town, {"kind": "member", "principal": "e1", "label": "x"}, role=role),
                town.get("/keys", role),
                town.client.delete(town.url(f"/keys/{prefix}"), headers=town.headers(role))]
    assert [(response.status_code, response.json["code"]) for response in attempts] == [
        (403, "forbidden")] * 3
    assert town.get("/members/e0", "member").status_code == 200


def test_a_revoked_key_stops_working(town):
    prefix = verify_key(engine_of(town), town.keys["member"]).prefix
    path = town.url(f"/keys/{prefix}")
    revoked = town.client.delete(path, headers=town.headers("admin", "rv"))
    assert revoked.status_code == 200, revoked.json
    assert (revoked.json["prefix"], revoked.json["principal"]) == (prefix, "e0")
    assert revoked.json["revoked_at"] is not None
    locked_out = town.get("/members/e0", "member")
    assert (locked_out.status_code, locked_out.json["code"]) == (401, "invalid_key")
    replay = town.client.delete(path, headers=town.headers("admin", "rv"))
    assert (replay.headers["Idempotent-Replayed"], replay.json) == ("true", revoked.json)
    again = town.client.delete(path, headers=town.headers("admin"))
    assert (again.status_code, again.json["code"]) == (404, "unknown_key")
    assert listed(town)[prefix]["revoked_at"] == revoked.json["revoked_at"]
    unknown = town.client.delete(town.url("/keys/aaaaaaaaaa"), headers=town.headers("admin"))
    assert (unknown.status_code, unknown.json["code"]) == (404, "unknown_key")


def test_a_village_admin_revokes_only_keys_within_their_village(town):
    scoped_staff(town, "east-admin", "admin", "east")
    engine = engine_of(town)
    west_key = create_key(engine, kind="member", principal="w0", label="w0",
                          programme=town.code).holder.prefix
    refused = town.client.delete(town.url(f"/keys/{west_key}"),
                                 headers=town.headers("east-admin"))
    assert (refused.status_code, refused.json["code"]) == (403, "forbidden")
    assert listed(town)[west_key]["revoked_at"] is None
    east_key = verify_key(engine, town.keys["member"]).prefix
    allowed = town.client.delete(town.url(f"/keys/{east_key}"),
                                 headers=town.headers("east-admin"))
    assert allowed.status_code == 200


def test_another_programmes_key_is_unknown_here(town):
    stranger = verify_key(engine_of(town), town.keys["other"]).prefix
    response = town.client.delete(town.url(f"/keys/{stranger}"), headers=town.headers("admin"))
    assert (response.status_code, response.json["code"]) == (404, "unknown_key")
    still_works = town.client.get("/programmes", headers=town.headers("other"))
    assert still_works.status_code == 200
