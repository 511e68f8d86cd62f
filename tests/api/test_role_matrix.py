"""Every operation of the served OpenAPI document against every kind of caller.

Each operation is called once per role: organiser, reviewer, admin and
auditor (staff with a grant on the town), a member (e0's key), a shop
device (shop-1's key), the operator, and `other` (an admin of another
programme). A role the policy allows must not be refused for who it is
(no 401/403); any other role must get 403 with a reason. The table below is
the policy; a test also checks that it names every operation the app
serves, so a new endpoint cannot be added without deciding who may call it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ledger.accounts import ISSUANCE
from ledger.chain import Posting, append
from ledger.keys import create_key
from ledger.organisation import grant_role
from ledger.rules import set_rule
from redemption.catalog import create_item
from redemption.shops import create_shop
from redemption.vouchers import issue_voucher, voucher_token
from tests.api.conftest import ROLES, make_api_town

STAFF = {"organiser", "reviewer", "admin", "auditor", "operator"}
APPLIERS = {"organiser", "reviewer", "admin", "operator"}
ADMIN = {"admin", "operator"}
REVIEWER = {"reviewer", "operator"}
WHEN = (datetime.now(UTC) - timedelta(hours=2)).isoformat()

# (method, path, body, roles allowed). Paths use the fixture objects named in `objects`.
POLICY = [
    ("POST", "/awards", {"member": "e0", "rule": "open", "occurred_at": WHEN}, APPLIERS),
    ("POST", "/award-sheets", {"lines": [{"member": "e1", "rule": "volunteer", "quantity": 60,
                                          "occurred_at": WHEN}]}, APPLIERS),
    ("GET", "/claims", None, STAFF),
    ("GET", "/claims/{claim}", None, STAFF),
    ("POST", "/claims/{claim}/approve", {}, REVIEWER),
    ("POST", "/claims/{claim}/reject", {"reason": "no evidence"}, REVIEWER),
    ("POST", "/claims/{claim}/objections", {"reason": "he was away"}, STAFF | {"member"}),
    ("POST", "/objections/999999/resolve", {"uphold": False, "reason": "ok"}, REVIEWER),
    ("POST", "/claims/post-due", {}, {"reviewer", "admin", "operator"}),
    ("GET", "/head", None, STAFF),
    ("GET", "/entries/{seq}", None, STAFF | {"member"}),
    ("POST", "/entries/{seq}/reversal", {"memo": "mistake"}, {"reviewer", "admin", "operator"}),
    ("GET", "/balances", None, {"auditor", "admin", "operator"}),
    ("GET", "/members/e0/balance", None, STAFF | {"member"}),
    ("GET", "/members/e0/statement", None, STAFF | {"member"}),
    ("GET", "", None, STAFF),
    ("GET", "/units", None, STAFF),
    ("POST", "/units", {"code": "{fresh}", "name": "新组", "kind": "group", "parent": "east"},
     ADMIN),
    ("GET", "/units/east", None, STAFF),
    ("GET", "/households", None, STAFF),
    ("POST", "/households", {"code": "{fresh}", "name": "新户", "unit": "east"}, ADMIN),
    ("GET", "/households/he", None, STAFF),
    ("GET", "/members", None, STAFF | {"member"}),
    ("POST", "/members", {"code": "{fresh}", "name": "新居民", "household": "he"}, ADMIN),
    ("GET", "/members/e0", None, STAFF | {"member"}),
    ("GET", "/grants", None, ADMIN),
    ("POST", "/grants", {"principal": "{fresh}", "role": "organiser", "unit": "east"}, ADMIN),
    ("DELETE", "/grants/{grant}", None, ADMIN),
    ("GET", "/rules", None, STAFF),
    ("GET", "/rules/meeting", None, STAFF),
    ("PUT", "/rules/tidy", {"code": "tidy", "name": "整洁", "category": "环境", "sign": "award",
                            "points": 2}, ADMIN),
    ("POST", "/catalog", {"version": 1, "rules": []}, ADMIN),
    ("GET", "/catalog", None, STAFF),
    ("GET", "/keys", None, ADMIN),
    ("POST", "/keys", {"kind": "member", "principal": "e1", "label": "{fresh}"}, ADMIN),
    ("DELETE", "/keys/{prefix}", None, ADMIN),
    ("POST", "/shops", {"code": "{fresh}", "name": "小卖部"}, ADMIN),
    ("GET", "/shops", None, STAFF),
    ("GET", "/shops/shop-1", None, STAFF | {"shop"}),
    ("POST", "/shops/shop-2/suspend", {}, ADMIN),
    ("POST", "/shops/shop-2/reactivate", {}, ADMIN),
    ("POST", "/items", {"code": "{fresh}", "name": "香皂", "kind": "goods", "price_points": 2,
                        "stock": 5}, ADMIN),
    ("GET", "/items", None, STAFF | {"member", "shop"}),
    ("POST", "/items/soap/restock", {"units": 1}, ADMIN),
    ("POST", "/vouchers", {"member": "e0", "points": 1}, {"member", "organiser", "admin",
                                                          "operator"}),
    ("GET", "/vouchers/{voucher}", None, STAFF | {"member"}),
    ("GET", "/vouchers/{voucher}/qr.png", None, STAFF | {"member"}),
    ("GET", "/vouchers/{voucher}/qr.svg", None, STAFF | {"member"}),
    ("POST", "/vouchers/{voucher}/cancel", {}, {"member", "admin", "operator"}),
    ("GET", "/members/e0/vouchers", None, STAFF | {"member"}),
    ("GET", "/voucher-keys", None, set(ROLES)),
    ("POST", "/redemptions/check", {"token": "{token}"}, {"shop", "operator"}),
    ("POST", "/redemptions", {"token": "{token}"}, {"shop", "operator"}),
    ("GET", "/shops/shop-1/redemptions", None, {"shop", "admin", "auditor", "operator"}),
    ("GET", "/shops/shop-1/statement?start=2026-01-01&end=2026-01-31", None,
     {"shop", "admin", "auditor", "operator"}),
    ("POST", "/shops/shop-1/settlements", {"start": "2026-01-01", "end": "2026-01-31",
                                            "payment_reference": "{fresh}"}, ADMIN),
    ("POST", "/checkpoints", None, ADMIN),
    ("GET", "/checkpoints", None, set(ROLES)),
    ("GET", "/checkpoint", None, set(ROLES)),
    ("GET", "/checkpoint-keys", None, set(ROLES)),
    ("GET", "/proofs/consistency?from=1", None, set(ROLES)),
    ("GET", "/proofs/inclusion?seq={seq}", None, STAFF | {"member"}),
    ("GET", "/entries/{seq}/tlog-proof", None, STAFF | {"member"}),
    ("GET", "/boards/standings?by=household", None, set(ROLES)),
    ("GET", "/boards/disclosure?unit=east", None, set(ROLES)),
    ("GET", "/boards/honour?period=year", None, set(ROLES)),
]
"""GET /programmes and POST /programmes are not programme-scoped: tested below."""


@pytest.fixture(scope="module")
def town(app):
    """One programme for the whole matrix, with the objects the paths name."""
    town = make_api_town(app, app.test_client())
    engine = app.extensions["jifen"].engine
    set_rule(engine, town.code, {"code": "open", "name": "开放规则", "category": "测试",
                                 "sign": "award", "points": 1,
                                 "roles": ["organiser", "reviewer", "admin"]}, "system:test")
    award = append(engine, town.code, kind="award", actor="system:test",
                   postings=[Posting("member:e0", 100), Posting(ISSUANCE, -100)])
    proposal = town.post("/awards", "organiser", {"member": "e1", "rule": "honour",
                                                  "occurred_at": WHEN})
    assert proposal.status_code == 202, proposal.json
    create_shop(engine, town.code, "shop-1", "一号店")
    create_shop(engine, town.code, "shop-2", "二号店")
    operator_shop = "shop-1"
    create_item(engine, town.code, "soap", "香皂", kind="goods", price_points=2, stock=3)
    voucher = issue_voucher(engine, town.code, "e0", actor="system:test", points=5)
    town.objects = {
        "claim": str(proposal.json["claim"]),
        "seq": str(award.entry.seq),
        "grant": str(grant_role(engine, town.code, "somebody", "organiser", "east")),
        "prefix": create_key(engine, kind="member", principal="e2", label="spare",
                             programme=town.code).holder.prefix,
        "voucher": voucher.id,
        "token": voucher_token(engine, town.code, voucher.id),
        "operator_shop": operator_shop,
    }
    return town


def fill(value, town, role: str, index: int):
    """Put the fixture's objects (and a fresh code per call) into a path or body."""
    fresh = f"x{index}-{role}"
    if isinstance(value, str):
        for name, replacement in town.objects.items():
            value = value.replace("{" + name + "}", replacement)
        return value.replace("{fresh}", fresh)
    if isinstance(value, dict):
        return {key: fill(item, town, role, index) for key, item in value.items()}
    if isinstance(value, list):
        return [fill(item, town, role, index) for item in value]
    return value


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("method", "path", "body", "allowed"), POLICY,
                         ids=[f"{method} {path}" for method, path, *_ in POLICY])
def test_each_role_is_allowed_or_refused_with_a_reason(town, role, method, path, body, allowed):
    index = POLICY.index(next(row for row in POLICY if row[:2] == (method, path)))
    url = town.url(fill(path, town, role, index))
    payload = fill(body, town, role, index)
    if role == "operator" and payload is not None and "/redemptions" in path:
        payload = payload | {"shop": town.objects["operator_shop"]}
    response = town.client.open(url, method=method, json=payload, headers=town.headers(role))
    if role in allowed:
        assert response.status_code not in (401, 403), (
            f"{role} refused: {response.get_data(as_text=True)[:300]}")
        assert response.status_code < 500
    else:
        assert response.status_code == 403, (
            f"{role} not refused: {response.status_code} {response.get_data(as_text=True)[:300]}")
        assert response.mimetype == "application/problem+json"
        assert response.json["detail"]


def test_the_policy_names_every_operation_the_app_serves(app):
    spec = app.test_client().get("/openapi.json").json
    served = {(method.upper(), path) for path, operations in spec["paths"].items()
              for method in operations if method in ("get", "post", "put", "delete")}
    placeholders = {"{claim}": "{claim_id}", "{voucher}": "{voucher_id}",
                    "999999": "{objection_id}", "e0": "{member}", "east": "{unit}",
                    "he": "{household}", "meeting": "{rule}", "tidy": "{rule}",
                    "shop-1": "{code}", "shop-2": "{code}", "soap": "{code}"}
    covered = set()
    for method, path, *_ in POLICY:
        segments = [placeholders.get(segment, segment)
                    for segment in path.split("?")[0].split("/")]
        covered.add((method, "/programmes/{programme}" + "/".join(segments)))
    covered |= {("GET", "/programmes"), ("POST", "/programmes")}
    assert served - covered == set()


def test_listing_and_creating_programmes(app, town):
    listed = {role: town.client.get("/programmes", headers=town.headers(role)).status_code
              for role in ROLES}
    assert {role for role, status in listed.items() if status == 200} == (
        STAFF | {"other"})
    created = {role: town.client.post("/programmes", json={"code": f"n-{role}-{town.code}",
                                                           "name": "新"},
                                      headers=town.headers(role)).status_code
               for role in ROLES}
    assert {role for role, status in created.items() if status == 201} == {"operator"}
    assert all(status == 403 for role, status in created.items() if role != "operator")
