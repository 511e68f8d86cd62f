"""Rules and catalogs through the Flask test client, on both databases.

The `town` fixture has four rules (meeting, volunteer, honour, litter), all
without a scope, and an admin on `town`, the top of its tree.
"""

from __future__ import annotations

import io
import json

import pytest
import yaml

from ledger.keys import create_key
from ledger.organisation import grant_role

PATROL = {"code": "patrol", "name": "平安巡逻", "category": "平安建设", "sign": "award",
          "points": 3, "caps": [{"per": "member", "period": "day", "max_times": 1}]}


def scoped_staff(town, principal: str, role: str, unit: str) -> str:
    """A staff key whose role holds on one village only."""
    engine = town.client.application.extensions["jifen"].engine
    grant_role(engine, town.code, principal, role, unit)
    town.keys[principal] = create_key(engine, kind="staff", principal=principal,
                                      label=principal, programme=town.code).secret
    return principal


def put_rule(town, code: str, body, role: str = "admin", idempotency_key: str | None = None):
    return town.client.put(town.url(f"/rules/{code}"), json=body,
                           headers=town.headers(role, idempotency_key))


def versions(town, code: str) -> list[int]:
    response = town.get(f"/rules/{code}", "auditor")
    assert response.status_code == 200, response.json
    return [version["version"] for version in response.json["versions"]]


def chain_size(town) -> int:
    response = town.get("/head", "auditor")
    assert response.status_code == 200, response.json
    return response.json["size"]


# -- reading ----------------------------------------------------------------------------


def test_current_rules_by_category_then_code(town):
    listed = town.get("/rules", "organiser")
    assert listed.status_code == 200
    items = listed.json["items"]
    assert [(rule["category"], rule["code"]) for rule in items] == sorted(
        (rule["category"], rule["code"]) for rule in items)
    assert sorted(rule["code"] for rule in items) == ["honour", "litter", "meeting", "volunteer"]
    meeting = next(rule for rule in items if rule["code"] == "meeting")
    assert meeting == {
        "code": "meeting", "name": "参加会议", "category": "会议我能到", "description": "",
        "sign": "award", "points": 5, "per_unit": None, "scope": None,
        "caps": [{"per": "member", "period": "day", "max_points": None, "max_times": 1}],
        "cooldown_minutes": 0, "evidence_required": False, "approval": "never",
        "approval_above_points": None, "roles": ["organiser"], "in_force_from": None,
        "in_force_until": None, "version": 1}
    by_category = town.get("/rules?category=环境卫生", "reviewer")
    assert [rule["code"] for rule in by_category.json["items"]] == ["litter"]
    assert town.get("/rules?category=nothing", "reviewer").json == {"items": []}


def test_one_rule_with_every_version(town):
    assert versions(town, "volunteer") == [1]
    history = town.get("/rules/volunteer", "auditor").json
    assert history["code"] == "volunteer"
    assert history["versions"][0]["per_unit"] == {"unit": "minute", "points": 5, "per": 60,
                                                  "max_quantity": 480}
    unknown = town.get("/rules/nothing", "auditor")
    assert (unknown.status_code, unknown.json["code"]) == (404, "unknown_rule")


@pytest.mark.parametrize("path", ["/rules", "/rules/meeting", "/catalog"])
@pytest.mark.parametrize("role", ["member", "shop", "other"])
def test_members_shops_and_strangers_do_not_read_rules(town, path, role):
    response = town.get(path, role)
    assert (response.status_code, response.json["code"]) == (403, "forbidden")


# -- changing one rule ------------------------------------------------------------------


def test_a_changed_definition_is_a_new_version_and_the_same_one_writes_nothing(town):
    meeting = town.get("/rules/meeting", "admin").json["versions"][-1]
    definition = {key: value for key, value in meeting.items() if key != "version"}
    changed = put_rule(town, "meeting", definition | {"points": 8})
    assert (changed.status_code, changed.json["version"], changed.json["points"]) == (201, 2, 8)
    size = chain_size(town)
    same = put_rule(town, "meeting", definition | {"points": 8})
    assert (same.status_code, same.json["version"]) == (200, 2)
    assert chain_size(town) == size
    assert versions(town, "meeting") == [1, 2]
    current = next(rule for rule in town.get("/rules", "admin").json["items"]
                   if rule["code"] == "meeting")
    assert (current["version"], current["points"]) == (2, 8)


def test_a_new_rule_takes_its_code_from_the_path(town):
    created = put_rule(town, "patrol", {key: value for key, value in PATROL.items()
                                        if key != "code"})
    assert (created.status_code, created.json["code"], created.json["version"]) == (
        201, "patrol", 1)
    assert versions(town, "patrol") == [1]


def test_a_retried_put_replays_and_a_different_body_conflicts(town):
    first = put_rule(town, "patrol", PATROL, idempotency_key="r1")
    assert first.status_code == 201
    replay = put_rule(town, "patrol", PATROL, idempotency_key="r1")
    assert (replay.status_code, replay.headers["Idempotent-Replayed"]) == (201, "true")
    conflict = put_rule(town, "patrol", PATROL | {"points": 4}, idempotency_key="r1")
    assert (conflict.status_code, conflict.json["code"]) == (409, "idempotency_conflict")
    assert versions(town, "patrol") == [1]


def test_a_bad_definition_names_the_field(town):
    size = chain_size(town)
    mismatch = put_rule(town, "patrol", PATROL | {"code": "other"})
    assert (mismatch.status_code, mismatch.json["code"]) == (422, "validation_error")
    assert [error["field"] for error in mismatch.json["errors"]] == ["code"]
    bad_period = put_rule(town, "patrol", PATROL | {"caps": [{"period": "fortnight",
                                                              "max_times": 1}]})
    assert (bad_period.status_code, bad_period.json["code"]) == (422, "invalid_rule")
    assert bad_period.json["path"] == "rule.caps[0].period"
    unknown_key = put_rule(town, "patrol", PATROL | {"version": 7})
    assert (unknown_key.json["code"], unknown_key.json["path"]) == ("invalid_rule",
                                                                    "rule.version")
    not_an_object = put_rule(town, "patrol", [PATROL])
    assert (not_an_object.status_code, not_an_object.json["code"]) == (422, "validation_error")
    too_deep = town.client.put(town.url("/rules/patrol"), data="[" * 100_000,
                               headers=town.headers("admin") | {"Content-Type": "application/json"})
    assert (too_deep.status_code, too_deep.json["code"]) == (400, "invalid_json")
    broken = town.client.put(town.url("/rules/patrol"), data="{not json",
                             headers=town.headers("admin") | {"Content-Type": "application/json"})
    assert (broken.status_code, broken.json["code"]) == (400, "invalid_json")
    unknown_scope = put_rule(town, "patrol", PATROL | {"scope": "north"})
    assert (unknown_scope.status_code, unknown_scope.json["code"]) == (404, "unknown_unit")
    assert chain_size(town) == size
    assert town.get("/rules/patrol", "admin").status_code == 404


@pytest.mark.parametrize("role", ["organiser", "reviewer", "auditor", "member", "shop", "other"])
def test_only_admins_change_rules(town, role):
    response = put_rule(town, "patrol", PATROL, role=role)
    assert (response.status_code, response.json["code"]) == (403, "forbidden")


def test_a_village_admin_changes_only_their_village_rules(town):
    scoped_staff(town, "east-admin", "admin", "east")
    unscoped = put_rule(town, "patrol", PATROL, role="east-admin")
    assert (unscoped.status_code, unscoped.json["code"]) == (403, "forbidden")
    assert "top unit" in unscoped.json["detail"]
    scoped = put_rule(town, "patrol", PATROL | {"scope": "east"}, role="east-admin")
    assert (scoped.status_code, scoped.json["scope"]) == (201, "east")
    elsewhere = put_rule(town, "west-patrol", PATROL | {"code": "west-patrol", "scope": "west"},
                         role="east-admin")
    assert elsewhere.status_code == 403
    meeting = town.get("/rules/meeting", "admin").json["versions"][-1]
    takeover = put_rule(town, "meeting", {key: value for key, value in meeting.items()
                                          if key != "version"} | {"scope": "east"},
                        role="east-admin")
    assert (takeover.status_code, takeover.json["code"]) == (403, "forbidden")
    assert versions(town, "meeting") == [1]
    widen = put_rule(town, "patrol", PATROL | {"scope": None}, role="east-admin")
    assert widen.status_code == 403
    assert versions(town, "patrol") == [1]


# -- catalogs ---------------------------------------------------------------------------


CATALOG_YAML = """\
version: 1
rules:
  - code: patrol
    name: 平安巡逻
    category: 平安建设
    sign: award
    points: 3
  - code: sweep
    name: 清扫街道
    category: 环境卫生
    sign: award
    points: 2
    caps:
      - per: household
        period: week
        max_times: 2
"""


def post_catalog(town, role="admin", idempotency_key=None, **kwargs):
    return town.client.post(town.url("/catalog"), headers=town.headers(role, idempotency_key),
                            **kwargs)


def test_a_yaml_catalog_imports_once(town):
    first = post_catalog(town, data=CATALOG_YAML.encode(), content_type="application/yaml")
    assert first.status_code == 200, first.json
    assert first.json == {"created": [{"code": "patrol", "version": 1},
                                      {"code": "sweep", "version": 1}], "unchanged": []}
    size = chain_size(town)
    again = post_catalog(town, data=CATALOG_YAML.encode(), content_type="text/yaml")
    assert again.json == {"created": [], "unchanged": ["patrol", "sweep"]}
    assert chain_size(town) == size
    assert versions(town, "sweep") == [1]


def test_a_json_catalog_and_a_multipart_file(town):
    document = yaml.safe_load(CATALOG_YAML)
    as_json = post_catalog(town, json=document)
    assert [rule["code"] for rule in as_json.json["created"]] == ["patrol", "sweep"]
    changed = yaml.safe_dump(document | {"rules": [document["rules"][0] | {"points": 4}]},
                             allow_unicode=True)
    as_file = post_catalog(town, data={"catalog": (io.BytesIO(changed.encode()), "村规.yml")},
                           content_type="multipart/form-data")
    assert as_file.json == {"created": [{"code": "patrol", "version": 2}], "unchanged": []}


def test_a_retried_import_replays_its_first_report(town):
    first = post_catalog(town, idempotency_key="cat-1", data=CATALOG_YAML.encode(),
                         content_type="application/yaml")
    replay = post_catalog(town, idempotency_key="cat-1", data=CATALOG_YAML.encode(),
                          content_type="application/yaml")
    assert (replay.headers["Idempotent-Replayed"], replay.json) == ("true", first.json)
    assert replay.json["unchanged"] == []  # the original report, not a second import's


def test_catalog_errors_name_the_line(town):
    size = chain_size(town)
    bad_yaml = CATALOG_YAML.replace("period: week", "period: fortnight")
    refused = post_catalog(town, data=bad_yaml.encode(), content_type="application/yaml")
    assert (refused.status_code, refused.json["code"]) == (422, "invalid_catalog")
    assert refused.json["line"] == 15
    assert refused.json["path"] == "rules[1].caps[0].period"
    assert refused.json["detail"].startswith("catalog:15: ")
    bad_json = json.dumps(yaml.safe_load(CATALOG_YAML), indent=1).replace('"points": 2',
                                                                         '"points": "two"')
    as_json = post_catalog(town, data=bad_json, content_type="application/json")
    assert (as_json.json["code"], as_json.json["path"]) == ("invalid_catalog",
                                                            "rules[1].points")
    assert as_json.json["line"] == bad_json.splitlines().index('   "points": "two",') + 1
    in_file = post_catalog(town, data={"catalog": (io.BytesIO(b"version: 1\nrules: [\n"),
                                                   "rules.yaml")},
                           content_type="multipart/form-data")
    assert (in_file.json["code"], in_file.json["source"]) == ("invalid_catalog", "rules.yaml")
    not_utf8 = post_catalog(town, data="version: 1\n# 积分\n".encode("gb18030"),
                            content_type="application/yaml")
    assert (not_utf8.json["code"], not_utf8.json["line"]) == ("invalid_catalog", 2)
    no_file = post_catalog(town, data={"other": (io.BytesIO(b"x"), "x.yaml")},
                           content_type="multipart/form-data")
    assert (no_file.status_code, no_file.json["code"]) == (422, "invalid_catalog")
    too_deep = post_catalog(town, data="[" * 100_000, content_type="application/json")
    assert (too_deep.status_code, too_deep.json["code"]) == (422, "invalid_catalog")
    plain = post_catalog(town, data=CATALOG_YAML.encode(), content_type="text/plain")
    assert (plain.status_code, plain.json["code"]) == (415, "unsupported_media_type")
    unknown_scope = post_catalog(town, data=CATALOG_YAML.replace(
        "    points: 3\n", "    points: 3\n    scope: north\n").encode(),
        content_type="application/yaml")
    assert (unknown_scope.status_code, unknown_scope.json["code"]) == (404, "unknown_unit")
    assert chain_size(town) == size


def test_a_catalog_changing_the_whole_programme_needs_a_top_unit_admin(town):
    scoped_staff(town, "east-admin", "admin", "east")
    size = chain_size(town)
    refused = post_catalog(town, role="east-admin", data=CATALOG_YAML.encode(),
                           content_type="application/yaml")
    assert (refused.status_code, refused.json["code"]) == (403, "forbidden")
    scoped = CATALOG_YAML.replace("    points: 3\n", "    points: 3\n    scope: east\n")
    still_refused = post_catalog(town, role="east-admin", data=scoped.encode(),
                                 content_type="application/yaml")
    assert still_refused.status_code == 403  # `sweep` has no scope
    assert chain_size(town) == size
    for role in ("organiser", "auditor", "member", "shop", "other"):
        response = post_catalog(town, role=role, data=CATALOG_YAML.encode(),
                                content_type="application/yaml")
        assert (response.status_code, response.json["code"]) == (403, "forbidden"), role


def test_the_export_imports_back_as_unchanged(town):
    exported = town.get("/catalog", "auditor")
    assert (exported.status_code, exported.mimetype) == (200, "application/yaml")
    assert exported.headers["Content-Disposition"] == (
        f'attachment; filename="{town.code}-rules.yaml"')
    document = yaml.safe_load(exported.data)
    assert sorted(rule["code"] for rule in document["rules"]) == [
        "honour", "litter", "meeting", "volunteer"]
    reimported = post_catalog(town, data=exported.data, content_type="application/yaml")
    assert reimported.json["created"] == []
    assert sorted(reimported.json["unchanged"]) == ["honour", "litter", "meeting", "volunteer"]
    as_json = town.get("/catalog?format=json", "organiser")
    assert as_json.mimetype == "application/json"
    assert as_json.json["rules"] == [
        {key: value for key, value in rule.items() if key != "version"}
        for rule in town.get("/rules", "organiser").json["items"]]
    bad_format = town.get("/catalog?format=xml", "organiser")
    assert (bad_format.status_code, bad_format.json["errors"][0]["field"]) == (422, "format")
