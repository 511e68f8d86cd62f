"""Checking and redeeming at a shop: every refusal has its code, tokens are really checked.

Every test runs on SQLite and PostgreSQL. Double spending by many processes
at once is in test_concurrency.py; here each refusal is taken one at a time.
"""

from __future__ import annotations

import io
import json
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from xml.etree import ElementTree

import pyseto
import pytest
import zxingcpp
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from PIL import Image

from api.problems import STATUS_BY_CODE
from ledger import errors
from ledger.chain import get_entry, head, reverse
from redemption import errors as redemption_errors
from redemption import qr, signing_keys, tokens
from redemption.errors import UnknownShop
from redemption.redemptions import check, get_redemption, redeem
from redemption.shops import create_shop, reactivate_shop, suspend_shop
from redemption.vouchers import HELD, get_voucher, issue_voucher, voucher_token
from tests.redemption.conftest import CASHIER, ORGANISER, make_market


def issue(market, points: int = 25, **fields):
    return issue_voucher(market.engine, market.code, market.member(0), actor=ORGANISER,
                         points=points, **fields)


def refusal_of(market, shop: str, presented: str, **fields) -> errors.LedgerError:
    """Redeem, expecting a refusal; also checks that `check` gives the same code first."""
    checked = check(market.engine, market.code, shop, presented)
    assert not checked.valid
    with pytest.raises(errors.LedgerError) as refused:
        redeem(market.engine, market.code, shop, presented, actor=CASHIER, **fields)
    assert refused.value.code == checked.refusal, (refused.value, checked)
    return refused.value


def resign(token: str, secret: Ed25519PrivateKey, change) -> str:
    """The token's claims passed through `change`, signed again by `secret`."""
    body, footer = token[len(tokens.HEADER):].split(".")
    claims = json.loads(tokens.decode_base64url(body)[:-tokens.SIGNATURE_BYTES])
    changed = change(dict(claims))
    return tokens.sign(json.dumps(changed, separators=(",", ":")).encode(), secret,
                       tokens.decode_base64url(footer))


def test_check_tells_the_worth_and_writes_nothing(market):
    voucher = issue(market, points=25, shops=["rice", "oil"])
    token = voucher_token(market.engine, market.code, voucher.id)
    size_before = head(market.engine, market.code).size

    result = check(market.engine, market.code, "rice", token)

    assert result.valid and result.refusal is None
    assert (result.voucher_id, result.value_points, result.item, result.expires_at,
            result.valid_at) == (voucher.id, 25, None, voucher.expires_at, ("oil", "rice"))
    assert head(market.engine, market.code).size == size_before
    assert get_voucher(market.engine, market.code, voucher.id).status == "issued"


def test_redeeming_moves_the_held_points_to_the_shop_once(market):
    voucher = issue(market, points=25)
    token = voucher_token(market.engine, market.code, voucher.id)

    redemption = redeem(market.engine, market.code, "rice", token, actor=CASHIER)

    assert (redemption.voucher_id, redemption.shop, redemption.value_points,
            redemption.created) == (voucher.id, "rice", 25, True)
    entry = get_entry(market.engine, market.code, redemption.entry_seq)
    assert entry.kind == "voucher_redeem" and entry.actor == CASHIER
    assert {(p.account, p.points) for p in entry.postings} == {(HELD, -25), ("shop:rice", 25)}
    assert entry.metadata == {"shop": "rice", "voucher": voucher.id}
    assert redemption.redeemed_at == entry.recorded_at
    assert market.balance("shop:rice") == 25 and market.balance(HELD) == 0
    assert get_voucher(market.engine, market.code, voucher.id).status == "redeemed"
    assert get_redemption(market.engine, market.code, voucher.id) == replace(
        redemption, created=False)

    again = refusal_of(market, "oil", token)
    assert again.code == "already_redeemed"
    assert again.details == {"voucher": voucher.id, "redeemed_at": redemption.redeemed_at,
                             "shop": "rice", "seq": redemption.entry_seq}
    assert market.balance("shop:oil") == 0
    market.assert_books_hold()


def test_a_retry_with_the_same_key_gets_the_same_redemption_back(market):
    voucher = issue(market)
    other = issue(market)
    token = voucher_token(market.engine, market.code, voucher.id)

    first = redeem(market.engine, market.code, "rice", token, actor=CASHIER,
                   idempotency_key="scan-7")
    size_after = head(market.engine, market.code).size
    retry = redeem(market.engine, market.code, "rice", voucher.display_code, actor=CASHIER,
                   idempotency_key="scan-7")

    assert retry.created is False and first.created is True
    assert (retry.entry_seq, retry.voucher_id) == (first.entry_seq, first.voucher_id)
    assert head(market.engine, market.code).size == size_after
    with pytest.raises(errors.IdempotencyConflict):
        redeem(market.engine, market.code, "rice", other.display_code, actor=CASHIER,
               idempotency_key="scan-7")
    assert refusal_of(market, "rice", token, idempotency_key="scan-8").code == "already_redeemed"


def test_a_voucher_for_some_shops_is_refused_elsewhere(market):
    voucher = issue(market, shops=["oil"])
    refused = refusal_of(market, "rice", voucher.display_code)
    assert refused.code == "wrong_shop" and refused.details["valid_at"] == ["oil"]
    assert redeem(market.engine, market.code, "oil", voucher.display_code,
                  actor="shop:oil:till").shop == "oil"


def test_a_suspended_shop_can_redeem_nothing_until_reactivated(market):
    voucher = issue(market)
    suspend_shop(market.engine, market.code, "rice")

    assert refusal_of(market, "rice", voucher.display_code).code == "shop_suspended"
    assert market.balance("shop:rice") == 0
    reactivate_shop(market.engine, market.code, "rice")
    assert redeem(market.engine, market.code, "rice", voucher.display_code,
                  actor=CASHIER).created


def test_an_unknown_shop_is_the_callers_mistake_not_a_voucher_refusal(market):
    voucher = issue(market)
    with pytest.raises(UnknownShop):
        check(market.engine, market.code, "bakery", voucher.display_code)
    with pytest.raises(UnknownShop):
        redeem(market.engine, market.code, "bakery", voucher.display_code, actor=CASHIER)


def test_a_forged_signature_is_refused(market):
    token = voucher_token(market.engine, market.code, issue(market).id)
    body, footer = token[len(tokens.HEADER):].split(".")
    raw = bytearray(tokens.decode_base64url(body))
    raw[-1] ^= 0x80  # a bit of the signature
    forged = tokens.HEADER + tokens.encode_base64url(bytes(raw)) + "." + footer

    refused = refusal_of(market, "rice", forged)
    assert refused.code == "forged" and "signature" in refused.message


def test_a_changed_value_is_refused_whoever_re_signs_it(market):
    voucher = issue(market, points=25)
    token = voucher_token(market.engine, market.code, voucher.id)
    body, footer = token[len(tokens.HEADER):].split(".")
    raw = tokens.decode_base64url(body)
    changed = raw.replace(b'"points":25', b'"points":95')
    assert changed != raw
    tampered = tokens.HEADER + tokens.encode_base64url(changed) + "." + footer
    assert refusal_of(market, "rice", tampered).code == "forged"

    # Even a correctly signed token must say what the voucher row says.
    secret = signing_keys.secret_key(market.engine, market.code, voucher.key_id)
    inflated = resign(token, secret, lambda claims: {**claims, "points": 95})
    refused = refusal_of(market, "rice", inflated)
    assert refused.code == "forged" and refused.details == {"reason": "claims"}
    assert market.balance("shop:rice") == 0


def test_a_token_of_another_programme_is_refused(engine, market):
    elsewhere = make_market(engine, members=1)
    foreign = issue(elsewhere)
    token = voucher_token(elsewhere.engine, elsewhere.code, foreign.id)

    refused = refusal_of(market, "rice", token)

    assert refused.code == "wrong_programme"
    assert refused.details == {"programme": elsewhere.code}
    assert redeem(elsewhere.engine, elsewhere.code, "rice", token, actor=CASHIER).created


def test_an_expired_token_is_refused(market):
    expires_at = datetime.now(UTC) + timedelta(seconds=1)
    voucher = issue(market, expires_at=expires_at)
    token = voucher_token(market.engine, market.code, voucher.id)
    assert check(market.engine, market.code, "rice", token).valid
    time.sleep(max((expires_at - datetime.now(UTC)).total_seconds() + 0.05, 0))

    refused = refusal_of(market, "rice", token)

    assert refused.code == "expired" and refused.details["expires_at"] == voucher.expires_at


def test_a_token_of_a_retired_but_published_key_still_redeems(market):
    old = issue(market)
    old_token = voucher_token(market.engine, market.code, old.id)
    rotated = signing_keys.rotate_key(market.engine, market.code)
    new = issue(market)

    assert new.key_id == rotated.key_id != old.key_id
    statuses = {key["kid"]: key["status"]
                for key in signing_keys.published_keys(market.engine, market.code)}
    assert statuses == {rotated.key_id: "signing", old.key_id: "retired"}
    assert redeem(market.engine, market.code, "rice", old_token, actor=CASHIER).created
    assert redeem(market.engine, market.code, "rice",
                  voucher_token(market.engine, market.code, new.id), actor=CASHIER).created


def test_a_token_of_an_unknown_or_withdrawn_key_is_refused(market):
    voucher = issue(market)
    token = voucher_token(market.engine, market.code, voucher.id)
    stranger = Ed25519PrivateKey.generate()
    strangers_kid = tokens.key_id(stranger.public_key())
    body = tokens.decode_base64url(token[len(tokens.HEADER):].split(".")[0])
    claims = body[:-tokens.SIGNATURE_BYTES]

    unknown = tokens.sign(claims, stranger, tokens.footer_json(strangers_kid))
    refused = refusal_of(market, "rice", unknown)
    assert refused.code == "unknown_signing_key"
    assert refused.details == {"key_id": strangers_kid}

    posing = tokens.sign(claims, stranger, tokens.footer_json(voucher.key_id))
    assert refusal_of(market, "rice", posing).code == "forged"

    signing_keys.withdraw_key(market.engine, market.code, voucher.key_id)
    assert refusal_of(market, "rice", token).code == "unknown_signing_key"
    assert market.balance("shop:rice") == 0


def test_a_token_made_by_pyseto_with_our_key_redeems(market):
    voucher = issue(market, points=33)
    secret = signing_keys.secret_key(market.engine, market.code, voucher.key_id)
    pem = secret.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    theirs = pyseto.encode(pyseto.Key.new(version=4, purpose="public", key=pem),
                           voucher.claims(), footer={"kid": voucher.key_id}).decode("ascii")

    assert theirs != voucher_token(market.engine, market.code, voucher.id)  # other JSON spacing
    assert redeem(market.engine, market.code, "rice", theirs, actor=CASHIER).value_points == 33


def test_a_genuine_token_for_a_voucher_we_do_not_have_is_unknown(market):
    voucher = issue(market)
    secret = signing_keys.secret_key(market.engine, market.code, voucher.key_id)
    token = voucher_token(market.engine, market.code, voucher.id)
    ghost = resign(token, secret, lambda claims: {**claims, "jti": "a" * 26})
    assert refusal_of(market, "rice", ghost).code == "unknown_voucher"


@pytest.mark.parametrize("presented", ["", "hello", "v4.public.!!!", "eyJhbGciOi.x.y", "12345"])
def test_rubbish_is_refused_as_forged(market, presented):
    assert refusal_of(market, "rice", presented).code == "forged"


def test_the_qr_code_scans_back_to_the_token_and_redeems(market):
    voucher = issue(market, points=44)
    token = voucher_token(market.engine, market.code, voucher.id)

    png = qr.qr_png(token)
    image = Image.open(io.BytesIO(png))
    results = zxingcpp.read_barcodes(image)

    assert image.format == "PNG" and min(image.size) >= 400
    assert [result.format.name for result in results] == ["QRCode"]
    decoded = results[0].text
    assert decoded == token
    assert redeem(market.engine, market.code, "rice", decoded, actor=CASHIER).value_points == 44

    svg = ElementTree.fromstring(qr.qr_svg(token))
    assert svg.tag.endswith("svg")
    assert float(svg.get("width")) == pytest.approx(image.size[0])


def test_every_refusal_code_has_its_http_status():
    refusals = [value for value in vars(redemption_errors).values()
                if isinstance(value, type) and issubclass(value, redemption_errors.RedemptionError)
                and value is not redemption_errors.RedemptionError]
    refusals += [signing_keys.SigningKeyUnavailable, signing_keys.UnknownKeyId]
    expected = {"forged": 400, "unknown_voucher": 404, "already_redeemed": 409,
                "cancelled": 409, "expired": 422, "wrong_shop": 422, "shop_suspended": 422,
                "wrong_programme": 422, "unknown_signing_key": 422,
                "insufficient_balance": 422, "out_of_stock": 422}
    assert {refusal.code for refusal in refusals} >= set(expected)
    assert {code: STATUS_BY_CODE.get(code) for code in expected} == expected
    assert [refusal.code for refusal in refusals if refusal.code not in STATUS_BY_CODE] == []


def test_a_voucher_entry_cannot_be_reversed_behind_the_vouchers_back(market):
    """Voucher entries are undone only by cancel and expiry, which keep the voucher's state in
    step; `ledger.chain.reverse` refuses them, so `held` can never be emptied under a voucher."""
    voucher = issue(market, points=100)
    with pytest.raises(errors.NotReversible):
        reverse(market.engine, market.code, voucher.issue_seq, actor="admin:town", memo="mistake")
    assert market.balance(HELD) == 100
    redeem(market.engine, market.code, "rice", voucher.display_code, actor=CASHIER)
    assert market.balance(HELD) == 0 and market.balance("shop:rice") == 100
    market.assert_books_hold()


def test_text_with_a_nul_character_is_refused_before_the_database_sees_it(market):
    voucher = issue(market)
    with pytest.raises(errors.InvalidEntry):
        redeem(market.engine, market.code, "rice", voucher.display_code, actor="till\x00")
    with pytest.raises(errors.InvalidEntry):
        create_shop(market.engine, market.code, "nul", "名\x00字")
    assert check(market.engine, market.code, "rice", voucher.display_code).valid
