"""The shop scanner through Flask's test client: check, redeem once, refusals in plain words,
photos of QR codes, guess limits, today's list and the statements.

Every test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import io
import os
import re
import time
from datetime import UTC, datetime, timedelta

import pytest
from PIL import Image

from api.auth import Caller
from ledger.chain import head
from ledger.keys import KeyHolder
from ledger.programmes import get_programme
from redemption import qr
from redemption.codes import check_character
from redemption.redemptions import get_redemption, redeem
from redemption.settlement import settle
from redemption.shops import suspend_shop
from redemption.vouchers import cancel_voucher, get_voucher, voucher_token
from tests.redemption.conftest import CASHIER, ORGANISER
from web import photos
from web.accounts import get_account
from web.formats import local_time

from .conftest import text_of

_ATTEMPT = re.compile(r'name="attempt" value="([^"]+)"')
_VOUCHER = re.compile(r'name="voucher" value="([^"]+)"')


def card_state(response) -> str:
    return re.search(r'id="card" data-state="([^"]+)"', response.get_data(as_text=True)).group(1)


def redeem_form(response) -> dict:
    html = response.get_data(as_text=True)
    return {"voucher": _VOUCHER.search(html).group(1), "attempt": _ATTEMPT.search(html).group(1)}


@pytest.fixture
def till(shopfront, visitor):
    """The rice shop's device, signed in."""
    visitor.sign_in(shopfront.usernames["rice"])
    return visitor


def test_a_typed_code_shows_the_worth_and_redeem_redeems_it_once(shopfront, till):
    voucher = shopfront.voucher(points=25)

    checked = till.post("/shop/check", {"code": voucher.display_code.lower().replace("-", " ")})

    assert checked.status_code == 200 and card_state(checked) == "valid"
    assert "真券，未使用" in text_of(checked) and "25 积分" in text_of(checked)
    assert "收款时减 ¥2.50" in text_of(checked)
    form = redeem_form(checked)
    before = head(shopfront.engine, shopfront.code).size

    done = till.post("/shop/redeem", form)
    again = till.post("/shop/redeem", form)  # a double tap: same attempt

    assert done.status_code == again.status_code == 303
    assert done.location == again.location == f"/shop/redeemed/{voucher.id}"
    assert head(shopfront.engine, shopfront.code).size == before + 1
    page = till.get(done.location)
    assert card_state(page) == "redeemed" and "核销成功" in text_of(page)
    assert get_voucher(shopfront.engine, shopfront.code, voucher.id).status == "redeemed"


def test_a_second_check_says_already_redeemed_when_and_at_which_shop(shopfront, till,
                                                                     new_visitor):
    voucher = shopfront.voucher()
    till.post("/shop/redeem", redeem_form(till.post("/shop/check",
                                                    {"code": voucher.display_code})))
    redeemed = get_redemption(shopfront.engine, shopfront.code, voucher.id)
    when = local_time(redeemed.redeemed_at, get_programme(shopfront.engine, shopfront.code).zone)

    here = till.post("/shop/check", {"code": voucher.display_code})
    other = new_visitor()
    other.sign_in(shopfront.usernames["oil"])
    there = other.post("/shop/check", {"code": voucher.display_code})

    assert card_state(here) == card_state(there) == "already_redeemed"
    assert f"本店已于 {when} 核销" in text_of(here)
    assert f"已于 {when} 在 王家米店 核销" in text_of(there)
    assert "不能收此券" in text_of(there)


def test_a_redeem_that_lost_the_race_to_another_device_says_so(shopfront, till):
    voucher = shopfront.voucher()
    form = redeem_form(till.post("/shop/check", {"code": voucher.display_code}))
    redeem(shopfront.engine, shopfront.code, "oil", voucher.display_code, actor=CASHIER)

    lost = till.post("/shop/redeem", form)

    assert lost.status_code == 409 and card_state(lost) == "already_redeemed"
    assert "李记粮油" in text_of(lost)


@pytest.mark.parametrize(("case", "state", "words"), [
    ("typo", "mistyped", "券码输入有误"),
    ("unknown", "unknown_voucher", "查无此券"),
    ("cancelled", "cancelled", "已作废"),
    ("expired", "expired", "已过期"),
    ("elsewhere", "wrong_shop", "本店不能使用此券"),
    ("forged", "forged", "不是真券"),
    ("empty", "empty", "没有可查验的内容"),
])
def test_each_refusal_is_said_in_plain_words(shopfront, till, case, state, words):
    voucher = shopfront.voucher(
        expires_at=datetime.now(UTC) + timedelta(seconds=1) if case == "expired" else None,
        shops=["oil"] if case == "elsewhere" else None)
    form = {"code": voucher.display_code}
    if case == "typo":
        code = voucher.display_code
        form["code"] = code[:5] + ("1" if code[5] != "1" else "2") + code[6:]
    elif case == "unknown":
        cancel_voucher(shopfront.engine, shopfront.code, shopfront.voucher().id, actor=ORGANISER)
        form["code"] = _another_valid_code(voucher.short_code)
    elif case == "cancelled":
        cancel_voucher(shopfront.engine, shopfront.code, voucher.id, actor=ORGANISER)
    elif case == "expired":
        _wait_until_past(voucher.expires_at)
    elif case == "forged":
        token = voucher_token(shopfront.engine, shopfront.code, voucher.id)
        form = {"token": token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")}
    elif case == "empty":
        form = {"code": "  "}

    answer = till.post("/shop/check", form)

    assert answer.status_code == 422 and card_state(answer) == state
    assert words in text_of(answer)
    if case == "elsewhere":
        assert "李记粮油" in text_of(answer)
    assert 'name="attempt"' not in answer.get_data(as_text=True)


def test_a_suspended_shop_is_told_it_cannot_redeem(shopfront, till):
    voucher = shopfront.voucher()
    suspend_shop(shopfront.engine, shopfront.code, "rice")
    answer = till.post("/shop/check", {"code": voucher.display_code})
    assert card_state(answer) == "shop_suspended" and "本店已暂停核销" in text_of(answer)


def test_a_photo_of_the_qr_code_is_read_on_the_server_and_redeems(shopfront, till):
    voucher = shopfront.voucher(points=7)
    token = voucher_token(shopfront.engine, shopfront.code, voucher.id)
    photo = _as_phone_photo(qr.qr_png(token))

    checked = till.post("/shop/check", {"photo": (io.BytesIO(photo), "IMG_0001.jpg")},
                        content_type="multipart/form-data")

    assert card_state(checked) == "valid" and "7 积分" in text_of(checked)
    assert redeem_form(checked)["voucher"] == token
    done = till.post("/shop/redeem", redeem_form(checked))
    assert done.location == f"/shop/redeemed/{voucher.id}"


def test_a_phone_photo_larger_than_the_api_body_limit_is_still_read(shopfront, till, app):
    voucher = shopfront.voucher()
    token = voucher_token(shopfront.engine, shopfront.code, voucher.id)
    photo = _as_phone_photo(qr.qr_png(token, scale=16), noise_bytes=3 * 1024 * 1024)
    assert app.config["MAX_CONTENT_LENGTH"] < len(photo) < photos.MAX_PHOTO_BYTES

    checked = till.post("/shop/check", {"photo": (io.BytesIO(photo), "big.png")},
                        content_type="multipart/form-data")

    assert card_state(checked) == "valid"
    too_big = till.post("/shop/check",
                        {"photo": (io.BytesIO(b"\0" * (photos.MAX_PHOTO_BYTES + 1)), "x.jpg")},
                        content_type="multipart/form-data")
    assert too_big.status_code == 413 and too_big.mimetype == "text/html"


@pytest.mark.parametrize(("content", "state"), [
    (b"this is not an image", "not_an_image"),
    ("blank", "no_code"),
])
def test_a_photo_without_a_code_says_what_to_do(till, content, state):
    if content == "blank":
        blank = io.BytesIO()
        Image.new("RGB", (640, 480), "white").save(blank, "JPEG")
        content = blank.getvalue()
    answer = till.post("/shop/check", {"photo": (io.BytesIO(content), "x.jpg")},
                       content_type="multipart/form-data")
    assert answer.status_code == 422 and card_state(answer) == state


def test_typed_codes_naming_no_voucher_are_limited_per_device(shopfront, till, app):
    voucher = shopfront.voucher()
    guesses = app.extensions["jifen.pages"].short_code_guesses
    for _ in range(25):
        guesses.count(_caller_of(shopfront, "rice"))

    refused = till.post("/shop/check", {"code": voucher.display_code})

    assert refused.status_code == 429 and card_state(refused) == "too_many_guesses"
    token = voucher_token(shopfront.engine, shopfront.code, voucher.id)
    assert card_state(till.post("/shop/check", {"token": token})) == "valid"


def test_today_lists_this_shops_redemptions_with_their_totals(shopfront, till):
    first, second = shopfront.voucher(points=3), shopfront.voucher(points=4)
    redeem(shopfront.engine, shopfront.code, "rice", first.display_code, actor=CASHIER)
    redeem(shopfront.engine, shopfront.code, "rice", second.display_code, actor=CASHIER)
    redeem(shopfront.engine, shopfront.code, "oil", shopfront.voucher(points=9).display_code,
           actor=CASHIER)

    today = text_of(till.get("/shop/today"))

    assert "2 张券" in today and "7 积分" in today and "应付本店：¥0.70" in today
    assert first.display_code in today and second.display_code in today


def test_the_statement_shows_what_is_paid_and_what_is_owed(shopfront, till):
    for points in (3, 4):
        redeem(shopfront.engine, shopfront.code, "rice",
               shopfront.voucher(points=points).display_code, actor=CASHIER)
    zone = get_programme(shopfront.engine, shopfront.code).zone
    day = datetime.now(UTC).astimezone(zone).date()
    settle(shopfront.engine, shopfront.code, "rice", day, day, payment_reference="转账-001",
           actor="system:test", idempotency_key="settle-1")
    redeem(shopfront.engine, shopfront.code, "rice", shopfront.voucher(points=5).display_code,
           actor=CASHIER)

    page = text_of(till.get("/shop/statement"))

    assert "已核销 3 张券" in page and "合计 ¥1.20" in page and "尚未结算：¥0.50" in page
    assert "凭证号 转账-001" in page
    csv = till.get(f"/shop/statement.csv?month={day:%Y-%m}")
    assert csv.mimetype == "text/csv" and "转账-001" not in csv.get_data(as_text=True)[:3]
    assert csv.get_data().startswith(b"\xef\xbb\xbf")
    earlier = till.get("/shop/statement?month=2020-02")
    assert "2020-02" in text_of(earlier) and "本月尚无结算" in text_of(earlier)
    assert till.get("/shop/statement?month=2020-13").status_code == 422


def test_a_shop_cannot_see_another_shops_redemption(shopfront, till):
    voucher = shopfront.voucher()
    redeem(shopfront.engine, shopfront.code, "oil", voucher.display_code, actor=CASHIER)
    assert till.get(f"/shop/redeemed/{voucher.id}").status_code == 404
    assert till.get("/shop/redeemed/no-such-voucher").status_code == 404


def _another_valid_code(code: str) -> str:
    """A well-formed short code (right check character) that no voucher has."""
    data = ("1" if code[0] != "1" else "2") + code[1:10]
    return data + check_character(data)


def _wait_until_past(expires_at: str) -> None:
    moment = datetime.fromisoformat(expires_at.replace("Z", "+00:00"))
    time.sleep(max((moment - datetime.now(UTC)).total_seconds() + 0.05, 0))


def _as_phone_photo(png: bytes, noise_bytes: int = 0) -> bytes:
    """The QR code on a grey desk, turned on its side with EXIF saying so, as a JPEG
    (or, with `noise_bytes`, a PNG made big with random pixels around the code)."""
    code = Image.open(io.BytesIO(png)).convert("RGB")
    if noise_bytes:
        side = int((noise_bytes / 3) ** 0.5) + code.width
        canvas = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
        canvas.paste(code, (side // 3, side // 3))
        out = io.BytesIO()
        canvas.save(out, "PNG", compress_level=1)
        return out.getvalue()
    desk = Image.new("RGB", (code.width + 400, code.height + 300), (120, 120, 110))
    desk.paste(code, (200, 150))
    turned = desk.rotate(90, expand=True)
    exif = Image.Exif()
    exif[0x0112] = 8  # orientation: the camera was held on its side
    out = io.BytesIO()
    turned.save(out, "JPEG", quality=90, exif=exif.tobytes())
    return out.getvalue()


def _caller_of(shopfront, shop: str):
    account = get_account(shopfront.engine, shopfront.usernames[shop])
    return Caller(KeyHolder(account.id, "", account.kind, account.principal, account.programme,
                            account.username))

