"""Redemption over HTTP, on both databases: points → voucher → check → redeem → statement → settle.

The town of `tests/api/conftest.py` gains two shops (`shop-1`, whose key the
town already has, and `shop-2` with a key of its own), two catalog items
and points for its residents. Concurrency is the domain's to prove, with
real processes (tests/redemption/test_concurrency.py); here a second
redemption comes after the first, from another device or the same one.
"""

from __future__ import annotations

import csv
import io
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pyseto
import pytest
import zxingcpp
from PIL import Image
from sqlalchemy.engine import Engine

from api.routes.redemptions import GUESS_WINDOW_SECONDS, MAX_UNKNOWN_CODES
from ledger.accounts import ISSUANCE
from ledger.chain import Posting, append
from ledger.keys import create_key
from ledger.programmes import get_programme
from redemption import codes
from redemption.catalog import CASH_OFF, GOODS, create_item
from redemption.shops import create_shop
from redemption.vouchers import issue_voucher
from tests.api.conftest import ApiTown

STARTING_POINTS = 100
SHOP_NAME = "东村便民超市"


@dataclass
class ApiMarket:
    """The town with shops `shop-1` (key role `shop`) and `shop-2` (key role `shop-2`), items
    `rice` (goods, 30 points, 2 in stock) and `cash-5` (5 yuan off, 50 points), and
    `STARTING_POINTS` for e0, e1 and w0."""

    town: ApiTown
    engine: Engine

    def issue(self, role: str = "member", member: str = "e0", **body) -> dict:
        """A voucher issued through the API (30 points unless told); its JSON, token included."""
        if "item" not in body:
            body.setdefault("points", 30)
        response = self.town.post("/vouchers", role, {"member": member} | body)
        assert response.status_code == 201, response.json
        return response.json

    def balance(self, account: str) -> int:
        """An account's balance as the API reports it to an auditor."""
        response = self.town.get("/balances", "auditor")
        assert response.status_code == 200, response.json
        found = {row["account"]: row["balance_points"] for row in response.json["items"]}
        return found.get(account, 0)

    def chain_size(self) -> int:
        return self.town.get("/head", "auditor").json["size"]

    def today(self) -> str:
        zone = get_programme(self.engine, self.town.code).zone
        return datetime.now(UTC).astimezone(zone).date().isoformat()


@pytest.fixture
def market(app, town) -> ApiMarket:
    engine = app.extensions["jifen"].engine
    create_shop(engine, town.code, "shop-1", SHOP_NAME, ["east"], "王老板")
    create_shop(engine, town.code, "shop-2", "西村积分超市", ["west"])
    town.keys["shop-2"] = create_key(engine, kind="shop", principal="shop-2", label="till",
                                     programme=town.code).secret
    create_item(engine, town.code, "rice", "大米 5kg", kind=GOODS, price_points=30, stock=2)
    create_item(engine, town.code, "cash-5", "抵扣5元", kind=CASH_OFF, price_points=50,
                value_fen=500)
    for member in ("e0", "e1", "w0"):
        append(engine, town.code, kind="award", actor="system:test",
               postings=[Posting(f"member:{member}", STARTING_POINTS),
                         Posting(ISSUANCE, -STARTING_POINTS)])
    return ApiMarket(town, engine)


# -- the whole way ---------------------------------------------------------------------------


def test_points_become_a_voucher_that_is_checked_redeemed_once_and_settled(market):
    town = market.town
    when = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    awarded = town.post("/awards", "organiser", {"member": "e0", "rule": "volunteer",
                                                 "quantity": 120, "occurred_at": when})
    assert awarded.status_code == 201, awarded.json
    assert town.get("/members/e0/balance", "member").json["balance_points"] == 110

    voucher = market.issue(points=40)
    assert voucher["status"] == "issued"
    assert (voucher["member"], voucher["value_points"], voucher["item"]) == ("e0", 40, None)
    assert voucher["shops"] is None
    assert voucher["token"].startswith("v4.public.")
    assert codes.parse(voucher["short_code"]) == voucher["short_code"].replace("-", "")
    assert len(voucher["short_code"]) == 13 and voucher["short_code"][4] == "-"
    assert datetime.fromisoformat(voucher["expires_at"]) > datetime.now(UTC)
    assert town.get("/members/e0/balance", "member").json["balance_points"] == 70
    assert market.balance("held") == 40

    size_before_check = market.chain_size()
    checked = town.post("/redemptions/check", "shop", {"token": voucher["token"]})
    assert checked.status_code == 200, checked.json
    assert checked.json == {"valid": True, "shop": "shop-1", "voucher": voucher["id"],
                            "value_points": 40, "item": None,
                            "expires_at": voucher["expires_at"], "valid_at": None,
                            "refusal": None}
    assert market.chain_size() == size_before_check

    redeemed = town.post("/redemptions", "shop", {"token": voucher["token"]})
    assert redeemed.status_code == 201, redeemed.json
    assert redeemed.json["voucher"] == voucher["id"]
    assert (redeemed.json["shop"], redeemed.json["value_points"]) == ("shop-1", 40)
    assert redeemed.json["settlement_seq"] is None
    entry = town.get(f"/entries/{redeemed.json['entry_seq']}", "auditor").json
    assert entry["kind"] == "voucher_redeem"
    assert sorted((p["account"], p["points"]) for p in entry["postings"]) == [
        ("held", -40), ("shop:shop-1", 40)]
    assert entry["recorded_at"] == redeemed.json["redeemed_at"]
    assert market.balance("held") == 0
    assert market.balance("shop:shop-1") == 40

    again = town.post("/redemptions", "shop", {"token": voucher["token"]})
    assert (again.status_code, again.json["code"]) == (409, "already_redeemed")
    assert again.mimetype == "application/problem+json"
    assert again.json["shop"] == "shop-1"
    assert again.json["redeemed_at"] == redeemed.json["redeemed_at"]
    assert again.json["seq"] == redeemed.json["entry_seq"]
    rechecked = town.post("/redemptions/check", "shop", {"code": voucher["short_code"]})
    assert rechecked.json["valid"] is False
    assert rechecked.json["refusal"]["code"] == "already_redeemed"
    assert rechecked.json["refusal"]["details"]["shop"] == "shop-1"
    assert town.get(f"/vouchers/{voucher['id']}", "member").json["status"] == "redeemed"
    assert market.balance("shop:shop-1") == 40

    settled = town.post("/shops/shop-1/settlements", "admin",
                        {"start": market.today(), "end": market.today(),
                         "payment_reference": "转账 2026-001"})
    assert settled.status_code == 201, settled.json
    assert (settled.json["total_points"], settled.json["redemption_count"]) == (40, 1)
    assert settled.json["total_fen"] == 40 * settled.json["fen_per_point"]
    assert market.balance("shop:shop-1") == 0
    assert market.balance("settled") == 40
    statement = town.get(f"/shops/shop-1/statement?start={market.today()}"
                         f"&end={market.today()}", "shop").json
    assert [line["settlement_seq"] for line in statement["lines"]] == [
        settled.json["entry_seq"]]
    assert statement["unsettled_points"] == 0


def test_a_second_device_of_the_same_shop_is_told_when_and_where(market):
    """Sequential double redemption: device 2 types the code after device 1 scanned."""
    town = market.town
    second_device = town.post("/keys", "admin", {"kind": "shop", "principal": "shop-1",
                                                 "label": "收银台 2"})
    assert second_device.status_code == 201, second_device.json
    town.keys["shop-1 till 2"] = second_device.json["secret"]
    voucher = market.issue()
    first = town.post("/redemptions", "shop", {"token": voucher["token"]})
    assert first.status_code == 201, first.json
    second = town.post("/redemptions", "shop-1 till 2",
                       {"code": voucher["short_code"].lower().replace("-", " ")})
    assert (second.status_code, second.json["code"]) == (409, "already_redeemed")
    assert (second.json["shop"], second.json["redeemed_at"], second.json["seq"]) == (
        "shop-1", first.json["redeemed_at"], first.json["entry_seq"])
    assert market.balance("shop:shop-1") == 30
    assert market.balance("held") == 0


# -- refusals --------------------------------------------------------------------------------


def test_a_voucher_for_another_shop_is_refused_and_redeems_there(market):
    town = market.town
    voucher = market.issue(shops=["shop-2"])
    assert voucher["shops"] == ["shop-2"]
    checked = town.post("/redemptions/check", "shop", {"token": voucher["token"]}).json
    assert (checked["valid"], checked["refusal"]["code"]) == (False, "wrong_shop")
    assert checked["valid_at"] == ["shop-2"]
    refused = town.post("/redemptions", "shop", {"token": voucher["token"]})
    assert (refused.status_code, refused.json["code"]) == (422, "wrong_shop")
    assert refused.json["valid_at"] == ["shop-2"]
    assert town.post("/redemptions", "shop-2", {"token": voucher["token"]}).status_code == 201


def test_a_suspended_shop_redeems_nothing_until_reactivated(market):
    town = market.town
    voucher = market.issue()
    suspended = town.post("/shops/shop-1/suspend", "admin")
    assert (suspended.status_code, suspended.json["status"]) == (200, "suspended")
    checked = town.post("/redemptions/check", "shop", {"token": voucher["token"]}).json
    assert (checked["valid"], checked["refusal"]["code"]) == (False, "shop_suspended")
    refused = town.post("/redemptions", "shop", {"token": voucher["token"]})
    assert (refused.status_code, refused.json["code"]) == (422, "shop_suspended")
    assert town.get(f"/vouchers/{voucher['id']}", "member").json["status"] == "issued"
    assert town.post("/shops/shop-1/reactivate", "admin").json["status"] == "active"
    assert town.post("/redemptions", "shop", {"token": voucher["token"]}).status_code == 201


def test_an_expired_voucher_is_refused(market):
    town = market.town
    soon = datetime.now(UTC) + timedelta(seconds=1)
    voucher = issue_voucher(market.engine, town.code, "e0", actor="e0", points=10,
                            expires_at=soon)
    time.sleep(max(0.0, (soon - datetime.now(UTC)).total_seconds()) + 0.05)
    checked = town.post("/redemptions/check", "shop", {"code": voucher.display_code}).json
    assert (checked["valid"], checked["refusal"]["code"]) == (False, "expired")
    refused = town.post("/redemptions", "shop", {"code": voucher.display_code})
    assert (refused.status_code, refused.json["code"]) == (422, "expired")
    assert refused.json["expires_at"] == voucher.expires_at
    assert market.balance("shop:shop-1") == 0


def test_a_cancelled_voucher_returns_its_points_and_is_refused(market):
    town = market.town
    voucher = market.issue()
    assert town.get("/members/e0/balance", "member").json["balance_points"] == 70
    cancelled = town.post(f"/vouchers/{voucher['id']}/cancel", "member", {"memo": "不要了"})
    assert cancelled.status_code == 200, cancelled.json
    assert cancelled.json["status"] == "cancelled"
    entry = town.get(f"/entries/{cancelled.json['closed_seq']}", "member").json
    assert entry["kind"] == "voucher_cancel"
    assert town.get("/members/e0/balance", "member").json["balance_points"] == 100
    again = town.post(f"/vouchers/{voucher['id']}/cancel", "member", {})
    assert (again.status_code, again.json["closed_seq"]) == (200, cancelled.json["closed_seq"])
    assert town.get("/members/e0/balance", "member").json["balance_points"] == 100
    refused = town.post("/redemptions", "shop", {"token": voucher["token"]})
    assert (refused.status_code, refused.json["code"]) == (409, "cancelled")


def test_only_the_member_or_an_admin_cancels(market):
    town = market.town
    voucher = market.issue(role="organiser", member="e1")
    for role in ("member", "organiser", "reviewer", "auditor", "shop"):
        refused = town.post(f"/vouchers/{voucher['id']}/cancel", role, {})
        assert (role, refused.status_code, refused.json["code"]) == (role, 403, "forbidden")
    cancelled = town.post(f"/vouchers/{voucher['id']}/cancel", "admin", {})
    assert (cancelled.status_code, cancelled.json["status"]) == (200, "cancelled")


def test_a_forged_token_and_a_mistyped_code_are_refused_before_any_lookup(market):
    town = market.town
    voucher = market.issue()
    body, _, footer = voucher["token"].removeprefix("v4.public.").partition(".")
    flipped = body[:-3] + ("A" if body[-3] != "A" else "B") + body[-2:]
    forged = town.post("/redemptions", "shop", {"token": f"v4.public.{flipped}.{footer}"})
    assert (forged.status_code, forged.json["code"]) == (400, "forged")
    assert town.post("/redemptions/check", "shop",
                     {"token": f"v4.public.{flipped}.{footer}"}).json["refusal"]["code"] == (
        "forged")

    typed = voucher["short_code"]
    slip = typed[:2] + ("X" if typed[2] != "X" else "Y") + typed[3:]
    mistyped = town.post("/redemptions", "shop", {"code": slip})
    assert (mistyped.status_code, mistyped.json["code"]) == (400, "forged")
    assert "check character" in mistyped.json["detail"]

    data = "0" * codes.DATA_CHARS
    never_issued = town.post("/redemptions", "shop",
                             {"code": data + codes.check_character(data)})
    assert (never_issued.status_code, never_issued.json["code"]) == (404, "unknown_voucher")
    assert market.balance("shop:shop-1") == 0
    assert town.post("/redemptions", "shop", {"code": typed}).status_code == 201


def test_a_key_typing_codes_that_name_no_voucher_is_stopped_but_its_scans_still_work(market):
    town = market.town
    voucher = market.issue()
    typed = voucher["short_code"]
    slip = typed[:2] + ("X" if typed[2] != "X" else "Y") + typed[3:]
    for _ in range(MAX_UNKNOWN_CODES + 5):
        assert town.post("/redemptions/check", "shop", {"code": slip}).json["refusal"][
            "code"] == "forged"
    assert town.post("/redemptions/check", "shop", {"code": typed}).json["valid"] is True
    for index in range(MAX_UNKNOWN_CODES):
        data = f"{index:010d}"
        guess = {"code": data + codes.check_character(data)}
        if index % 2:
            answer = town.post("/redemptions", "shop", guess)
            assert (answer.status_code, answer.json["code"]) == (404, "unknown_voucher")
        else:
            answer = town.post("/redemptions/check", "shop", guess)
            assert answer.json["refusal"]["code"] == "unknown_voucher"
    for path in ("/redemptions/check", "/redemptions"):
        stopped = town.post(path, "shop", {"code": typed})
        assert (stopped.status_code, stopped.json["code"]) == (429, "too_many_guesses")
        assert 0 < int(stopped.headers["Retry-After"]) <= GUESS_WINDOW_SECONDS + 1
    assert town.post("/redemptions/check", "shop-2", {"code": typed}).json["valid"] is True
    redeemed = town.post("/redemptions", "shop", {"token": voucher["token"]})
    assert redeemed.status_code == 201, redeemed.json


def test_a_token_and_a_code_together_or_neither_is_a_validation_error(market):
    voucher = market.issue()
    both = market.town.post("/redemptions", "shop", {"token": voucher["token"],
                                                     "code": voucher["short_code"]})
    neither = market.town.post("/redemptions", "shop", {})
    for response in (both, neither):
        assert (response.status_code, response.json["code"]) == (422, "validation_error")
    assert market.balance("shop:shop-1") == 0


def test_a_member_cannot_spend_points_it_does_not_have(market):
    size = market.chain_size()
    refused = market.town.post("/vouchers", "member", {"member": "e0", "points": 101})
    assert (refused.status_code, refused.json["code"]) == (422, "insufficient_balance")
    assert refused.json["balance_points"] == STARTING_POINTS
    assert market.chain_size() == size


# -- retries ---------------------------------------------------------------------------------


def test_retried_issues_and_redemptions_happen_once(market):
    town = market.town
    body = {"member": "e0", "points": 30}
    issued = town.post("/vouchers", "member", body, idempotency_key="issue-1")
    replayed = town.post("/vouchers", "member", body, idempotency_key="issue-1")
    assert (issued.status_code, replayed.status_code) == (201, 201)
    assert replayed.headers["Idempotent-Replayed"] == "true"
    assert replayed.json == issued.json
    assert town.get("/members/e0/balance", "member").json["balance_points"] == 70
    conflict = town.post("/vouchers", "member", body | {"points": 31}, idempotency_key="issue-1")
    assert (conflict.status_code, conflict.json["code"]) == (409, "idempotency_conflict")

    scan = {"token": issued.json["token"]}
    first = town.post("/redemptions", "shop", scan, idempotency_key="scan-1")
    retry = town.post("/redemptions", "shop", scan, idempotency_key="scan-1")
    assert (first.status_code, retry.status_code) == (201, 201)
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert retry.json == first.json
    other = market.issue(points=10)
    reused = town.post("/redemptions", "shop", {"token": other["token"]},
                       idempotency_key="scan-1")
    assert (reused.status_code, reused.json["code"]) == (409, "idempotency_conflict")
    assert market.balance("shop:shop-1") == 30
    assert town.get(f"/vouchers/{other['id']}", "member").json["status"] == "issued"


def test_the_longest_idempotency_keys_the_api_takes_reach_the_services(market):
    """Keys of up to 150 characters, at a shop with the longest code there can be: the services
    prefix the key more than once, and a prefixed key must still fit the entry."""
    town = market.town
    shop = "shop-" + "x" * 59
    assert town.post("/shops", "admin", {"code": shop, "name": "长名商户"}).status_code == 201
    device = town.post("/keys", "admin", {"kind": "shop", "principal": shop, "label": "till"})
    town.keys["long shop"] = device.json["secret"]
    for length in (130, 150):
        key = "k" * length
        issued = town.post("/vouchers", "member", {"member": "e0", "points": 5},
                           idempotency_key=key)
        assert issued.status_code == 201, issued.json
        redeemed = town.post("/redemptions", "long shop", {"token": issued.json["token"]},
                             idempotency_key=key)
        assert redeemed.status_code == 201, redeemed.json
    settled = town.post(f"/shops/{shop}/settlements", "admin",
                        {"start": market.today(), "end": market.today(),
                         "payment_reference": "r-1"}, idempotency_key="k" * 150)
    assert (settled.status_code, settled.json["total_points"]) == (201, 10)


# -- who may do what -------------------------------------------------------------------------


def test_a_shop_key_acts_only_for_its_own_shop(market):
    town = market.town
    voucher = market.issue()
    for path in ("/redemptions", "/redemptions/check"):
        refused = town.post(path, "shop", {"token": voucher["token"], "shop": "shop-2"})
        assert (refused.status_code, refused.json["code"]) == (403, "forbidden")
    for path in ("/shops/shop-2", "/shops/shop-2/redemptions",
                 f"/shops/shop-2/statement?start={market.today()}&end={market.today()}"):
        assert town.get(path, "shop").status_code == 403, path
    named_own = town.post("/redemptions", "shop", {"token": voucher["token"], "shop": "shop-1"})
    assert named_own.status_code == 201, named_own.json
    assert market.balance("shop:shop-2") == 0


def test_only_shop_keys_and_the_operator_redeem(market):
    town = market.town
    voucher = market.issue()
    for role in ("member", "organiser", "reviewer", "admin", "auditor", "other"):
        refused = town.post("/redemptions", role, {"token": voucher["token"], "shop": "shop-1"})
        assert (role, refused.status_code) == (role, 403)
    unnamed = town.post("/redemptions", "operator", {"token": voucher["token"]})
    assert (unnamed.status_code, unnamed.json["errors"][0]["field"]) == (422, "shop")
    by_operator = town.post("/redemptions", "operator", {"token": voucher["token"],
                                                         "shop": "shop-2"})
    assert (by_operator.status_code, by_operator.json["shop"]) == (201, "shop-2")


def test_a_member_reads_only_its_own_vouchers(market):
    town = market.town
    theirs = market.issue(role="organiser", member="e1")
    for path in (f"/vouchers/{theirs['id']}", f"/vouchers/{theirs['id']}/qr.png",
                 f"/vouchers/{theirs['id']}/qr.svg", "/members/e1/vouchers"):
        for role in ("member", "shop", "other"):
            refused = town.get(path, role)
            assert (path, role, refused.status_code) == (path, role, 403)
    refused = town.post("/vouchers", "member", {"member": "e1", "points": 5})
    assert (refused.status_code, refused.json["code"]) == (403, "forbidden")
    assert town.post("/vouchers", "reviewer", {"member": "e1", "points": 5}).status_code == 403
    assert town.get(f"/vouchers/{theirs['id']}", "auditor").json["token"] == theirs["token"]
    own = market.issue()
    listed = town.get("/members/e0/vouchers", "member").json["items"]
    assert [voucher["id"] for voucher in listed] == [own["id"]]
    assert "token" not in listed[0]
    assert town.get("/members/e1/vouchers?status=issued", "organiser").json["items"][0][
        "id"] == theirs["id"]


def test_shops_are_registered_and_suspended_by_an_admin_of_the_whole_programme(market):
    town = market.town
    body = {"code": "shop-3", "name": "积分超市", "units": ["town"], "contact": "13800000000"}
    for role in ("organiser", "reviewer", "auditor", "member", "shop"):
        assert town.post("/shops", role, body).status_code == 403, role
        assert town.post("/shops/shop-1/suspend", role).status_code == 403, role
    created = town.post("/shops", "admin", body)
    assert created.status_code == 201, created.json
    assert created.json == body | {"status": "active", "account": "shop:shop-3"}
    duplicate = town.post("/shops", "admin", body)
    assert (duplicate.status_code, duplicate.json["code"]) == (409, "already_exists")
    listed = town.get("/shops", "auditor").json["items"]
    assert [shop["code"] for shop in listed] == ["shop-1", "shop-2", "shop-3"]
    assert town.get("/shops", "member").status_code == 403
    assert town.get("/shops/shop-1", "shop").json["name"] == SHOP_NAME
    unknown = town.get("/shops/nowhere", "admin")
    assert (unknown.status_code, unknown.json["code"]) == (404, "unknown_shop")


# -- catalog items ---------------------------------------------------------------------------


def test_a_voucher_for_goods_takes_one_from_stock_and_a_cancel_puts_it_back(market):
    town = market.town
    assert town.post("/items", "organiser", {"code": "oil", "name": "油", "kind": "goods",
                                             "price_points": 20, "stock": 1}).status_code == 403
    created = town.post("/items", "admin", {"code": "oil", "name": "花生油 1L", "kind": "goods",
                                            "price_points": 20, "stock": 1})
    assert created.status_code == 201, created.json
    assert created.json == {"code": "oil", "name": "花生油 1L", "kind": "goods",
                            "price_points": 20, "value_fen": None, "stock": 1}
    oil = market.issue(item="oil")
    assert (oil["item"], oil["value_points"]) == ("oil", 20)
    sold_out = town.post("/vouchers", "member", {"member": "e0", "item": "oil"})
    assert (sold_out.status_code, sold_out.json["code"]) == (422, "out_of_stock")
    stock = {item["code"]: item["stock"] for item in town.get("/items", "shop").json["items"]}
    assert stock == {"cash-5": None, "oil": 0, "rice": 2}
    assert town.post(f"/vouchers/{oil['id']}/cancel", "member", {}).status_code == 200
    restocked = town.post("/items/oil/restock", "admin", {"units": 4})
    assert (restocked.status_code, restocked.json["stock"]) == (200, 5)
    checked = town.post("/redemptions/check", "shop", {"token": market.issue(item="oil")[
        "token"]}).json
    assert (checked["valid"], checked["item"], checked["value_points"]) == (True, "oil", 20)
    cash_off = town.post("/items/cash-5/restock", "admin", {"units": 1})
    assert (cash_off.status_code, cash_off.json["code"]) == (422, "invalid_entry")


# -- QR codes and public keys ----------------------------------------------------------------


def test_the_qr_code_decodes_to_the_token_and_the_decoded_text_redeems(market):
    town = market.town
    voucher = market.issue()
    png = town.get(f"/vouchers/{voucher['id']}/qr.png", "member")
    assert (png.status_code, png.mimetype) == (200, "image/png")
    found = zxingcpp.read_barcodes(Image.open(io.BytesIO(png.get_data())))
    assert [barcode.text for barcode in found] == [voucher["token"]]
    svg = town.get(f"/vouchers/{voucher['id']}/qr.svg", "organiser")
    assert (svg.status_code, svg.mimetype) == (200, "image/svg+xml")
    assert b"<svg" in svg.get_data()
    redeemed = town.post("/redemptions", "shop", {"token": found[0].text})
    assert (redeemed.status_code, redeemed.json["voucher"]) == (201, voucher["id"])


def test_the_verification_keys_are_public_and_verify_tokens_with_another_library(market,
                                                                                 client):
    voucher = market.issue()
    published = client.get(market.town.url("/voucher-keys"))
    assert published.status_code == 200, published.json
    assert "public" in published.headers["Cache-Control"]
    [key] = published.json["keys"]
    assert key["status"] == "signing" and key["retired_at"] is None
    assert key["kid"] == voucher["key_id"]
    their_key = pyseto.Key.from_paserk(key["paserk"])
    assert their_key.to_paserk_id() == key["kid"]
    decoded = pyseto.decode(their_key, voucher["token"], deserializer=json)
    assert decoded.payload == {"exp": voucher["expires_at"], "jti": voucher["id"],
                               "points": 30, "programme": market.town.code}
    one = client.get(market.town.url(f"/voucher-keys?kid={key['kid']}")).json["keys"]
    assert one == [key]
    other_kid = "k4.pid." + "A" * 44
    assert client.get(market.town.url(f"/voucher-keys?kid={other_kid}")).json["keys"] == []
    unknown = client.get("/programmes/no-such-programme/voucher-keys")
    assert (unknown.status_code, unknown.json["code"]) == (404, "unknown_programme")


# -- statements and settlement ---------------------------------------------------------------


def test_the_csv_statement_opens_in_excel_and_ties_to_the_ledger(market):
    town = market.town
    seqs = []
    for member, points in (("e0", 30), ("e1", 25), ("w0", 12)):
        voucher = market.issue(role="organiser", member=member, points=points)
        redeemed = town.post("/redemptions", "shop", {"token": voucher["token"]})
        assert redeemed.status_code == 201, redeemed.json
        seqs.append(redeemed.json["entry_seq"])
    today = market.today()
    response = town.get(f"/shops/shop-1/statement?start={today}&end={today}&format=csv", "shop")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert response.headers["Content-Disposition"] == (
        f'attachment; filename="statement-shop-1-{today}-{today}.csv"')
    data = response.get_data()
    assert data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert SHOP_NAME in rows[0][0]
    assert rows[1][0] == "券号 voucher"
    lines, total = rows[2:-1], rows[-1]
    assert [int(line[2]) for line in lines] == seqs
    assert total[0] == "合计 total"
    assert int(total[5]) == sum(int(line[5]) for line in lines) == 67
    assert int(total[5]) == market.balance("shop:shop-1")
    for line in lines:
        entry = town.get(f"/entries/{line[2]}", "auditor").json
        assert {"account": "shop:shop-1", "points": int(line[5])} in entry["postings"]

    as_json = town.get(f"/shops/shop-1/statement?start={today}&end={today}", "auditor").json
    assert as_json["shop_name"] == SHOP_NAME
    assert [line["entry_seq"] for line in as_json["lines"]] == seqs
    assert as_json["total_points"] == as_json["unsettled_points"] == 67
    assert as_json["total_fen"] == 67 * as_json["fen_per_point"]
    day = town.get(f"/shops/shop-1/redemptions?date={today}", "shop").json
    assert (day["count"], day["total_points"]) == (3, 67)
    assert [line["entry_seq"] for line in day["items"]] == seqs
    yesterday = (datetime.fromisoformat(today) - timedelta(days=1)).date().isoformat()
    assert town.get(f"/shops/shop-1/redemptions?date={yesterday}", "admin").json["count"] == 0
    assert town.get("/shops/shop-1/redemptions", "member").status_code == 403
    assert town.get(f"/shops/shop-1/statement?start={today}&end={today}",
                    "organiser").status_code == 403


def test_a_settlement_posts_once_however_it_is_retried(market):
    town = market.town
    for points in (30, 20):
        voucher = market.issue(points=points)
        assert town.post("/redemptions", "shop", {"token": voucher["token"]}).status_code == 201
    today = market.today()
    body = {"start": today, "end": today, "payment_reference": "银行转账 20261122-01"}
    assert town.post("/shops/shop-1/settlements", "auditor", body).status_code == 403
    assert town.post("/shops/shop-1/settlements", "shop", body).status_code == 403
    settled = town.post("/shops/shop-1/settlements", "admin", body, idempotency_key="pay-1")
    assert settled.status_code == 201, settled.json
    assert (settled.json["total_points"], settled.json["redemption_count"]) == (50, 2)
    replayed = town.post("/shops/shop-1/settlements", "admin", body, idempotency_key="pay-1")
    assert (replayed.status_code, replayed.json) == (201, settled.json)
    for key in (None, "pay-1-again"):
        resent = town.post("/shops/shop-1/settlements", "admin", body, idempotency_key=key)
        assert (resent.status_code, resent.json["entry_seq"]) == (200, settled.json["entry_seq"])
    another = town.post("/shops/shop-1/settlements", "admin",
                        body | {"payment_reference": "another payment"})
    assert (another.status_code, another.json["code"]) == (422, "nothing_to_settle")
    entry = town.get(f"/entries/{settled.json['entry_seq']}", "auditor").json
    assert entry["kind"] == "settlement"
    assert sorted((p["account"], p["points"]) for p in entry["postings"]) == [
        ("settled", 50), ("shop:shop-1", -50)]
    assert (market.balance("shop:shop-1"), market.balance("settled")) == (0, 50)
    statement = town.get(f"/shops/shop-1/statement?start={today}&end={today}", "admin").json
    assert [s["entry_seq"] for s in statement["settlements"]] == [settled.json["entry_seq"]]
    assert statement["unsettled_points"] == 0
