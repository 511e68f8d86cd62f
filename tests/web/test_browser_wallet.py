"""The resident's wallet and the public boards in a real headless Chromium, against gunicorn.

The set-up is tests/web/test_browser.py's (Debian's Chromium driven by
Playwright, a phone-sized window, screenshots to `JIFEN_SCREENSHOTS_DIR`).
A resident opens the wallet with the link of their points card, turns points
into a voucher, and the QR code on their screen, taken from a screenshot,
is read by zxing-cpp and redeemed on the shop's page; the public boards
show the award with the name masked.
"""

from __future__ import annotations

import io
import re

import zxingcpp
from PIL import Image
from playwright.sync_api import expect

from ledger.awards import AwardRequest, award
from ledger.rules import set_rule
from redemption import catalog
from redemption.vouchers import get_voucher, list_vouchers, voucher_token
from tests.audit.test_boards import RULES
from web import residents

from . import test_browser as browser_setup
from .test_browser import shoot, sign_in

# The browser set-up's fixtures (a gunicorn and a Chromium of this module's own).
chromium, browser, server, screenshots, phone, shopfront = (
    browser_setup.chromium, browser_setup.browser, browser_setup.server,
    browser_setup.screenshots, browser_setup.phone, browser_setup.shopfront)

TV = {"viewport": {"width": 1280, "height": 720}, "locale": "zh-CN"}


def test_a_resident_turns_points_into_a_voucher_and_its_screenshot_redeems_at_the_shop(
        phone, shopfront, screenshots, tmp_path):
    member = shopfront.market.member(0)
    catalog.create_item(shopfront.engine, shopfront.code, "soap", "肥皂 1 块",
                        kind=catalog.GOODS, price_points=3, stock=10)
    card = residents.issue_code(shopfront.engine, shopfront.code, member, issued_by="org")
    resident = phone()

    resident.goto(f"/w#{card.code}")  # what the card's QR code holds

    expect(resident).to_have_url(re.compile(r"/wallet$"))
    expect(resident.locator("h1")).to_have_text("居民0的积分")
    expect(resident.locator("#balance")).to_have_text("1000")
    shoot(resident, screenshots, "wallet-home")
    resident.get_by_role("link", name="兑换", exact=True).click()
    expect(resident.locator("#item-soap")).to_contain_text("肥皂 1 块")
    shoot(resident, screenshots, "wallet-catalog")

    resident.fill("#points", "25")
    resident.get_by_role("button", name="生成抵扣券").dblclick()  # a double tap

    expect(resident.locator("#made")).to_contain_text("抵扣券已生成")
    made = list_vouchers(shopfront.engine, shopfront.code, member=member)
    assert [voucher.value_points for voucher in made] == [25]
    voucher = made[0]
    card_on_screen = resident.locator(f"#voucher-{voucher.id}")
    expect(card_on_screen).to_contain_text(voucher.display_code)
    shoot(resident, screenshots, "wallet-voucher")
    resident.locator(".qr-frame").scroll_into_view_if_needed()
    screen = tmp_path / "resident-screen.png"
    resident.screenshot(path=screen)

    read = zxingcpp.read_barcodes(Image.open(io.BytesIO(screen.read_bytes())),
                                  formats=zxingcpp.BarcodeFormat.QRCode)
    assert [code.text for code in read] == [
        voucher_token(shopfront.engine, shopfront.code, voucher.id)]

    till = phone()
    till.goto("/sign-in")
    sign_in(till, shopfront.usernames["rice"])
    till.set_input_files("#photo", screen)  # the shop photographs the resident's screen
    result = till.locator("#card")
    expect(result).to_have_attribute("data-state", "valid")
    expect(result).to_contain_text("25 积分")
    till.locator("#redeem").click()
    expect(till).to_have_url(re.compile(f"/shop/redeemed/{voucher.id}$"))
    assert get_voucher(shopfront.engine, shopfront.code, voucher.id).status == "redeemed"

    resident.get_by_role("link", name="我的券").click()
    expect(resident.locator("#past-vouchers")).to_contain_text("王家米店")
    shoot(resident, screenshots, "wallet-vouchers")
    resident.get_by_role("link", name="明细").click()
    expect(resident.locator("#history")).to_contain_text("兑换抵扣券")
    shoot(resident, screenshots, "wallet-history")


def test_a_typed_card_code_opens_the_wallet_and_a_wrong_one_says_so(phone, shopfront,
                                                                     screenshots):
    member = shopfront.market.member(1)
    card = residents.issue_code(shopfront.engine, shopfront.code, member, issued_by="org")
    page = phone()
    page.goto("/w")
    shoot(page, screenshots, "wallet-open")

    page.fill("#card-code", "ABCDE-FGHJK-MNPQR-STVWX")
    page.get_by_role("button", name="打开", exact=True).click()
    expect(page.locator("#card")).to_contain_text("此卡的代码无效")

    page.fill("#card-code", card.display_code.lower())
    page.get_by_role("button", name="打开", exact=True).click()
    expect(page.locator("h1")).to_have_text("居民1的积分")
    page.get_by_role("button", name="在此手机上关闭我的积分").click()
    expect(page).to_have_url(re.compile(r"/w\?left=1$"))
    page.goto("/wallet")
    expect(page).to_have_url(re.compile(r"/w$"))


def test_an_organiser_prints_a_residents_card(phone, shopfront, screenshots):
    page = phone()
    page.goto("/sign-in")
    sign_in(page, shopfront.usernames["organiser"])
    page.goto(f"/residents/{shopfront.market.member(2)}/card")
    page.get_by_role("button", name="制作新卡").click()

    expect(page.locator("#points-card")).to_contain_text("居民2")
    expect(page.get_by_role("button", name="打印此卡")).to_be_visible()
    shoot(page, screenshots, "resident-card")
    printed = page.locator("#printed-code").inner_text()
    assert residents.code_opens(shopfront.engine, printed) == (shopfront.code,
                                                               shopfront.market.member(2))


def test_the_public_board_shows_the_award_with_the_name_masked(browser, server, phone,
                                                               shopfront, screenshots):
    set_rule(shopfront.engine, shopfront.code, RULES[0], "system:test")
    award(shopfront.engine, shopfront.code,
          AwardRequest(member=shopfront.market.member(3), rule="meeting", memo="居民3参加会议"),
          actor="org")
    page = phone()

    page.goto(f"/boards/{shopfront.code}/disclosure")

    board = page.locator("#disclosure")
    expect(board).to_contain_text("居*3")
    expect(board).to_contain_text("加分：参加会议")
    expect(board).to_contain_text("居*3参加会议")
    assert "居民3" not in page.content()
    shoot(page, screenshots, "board-disclosure")
    page.get_by_role("link", name="积分榜").click()
    expect(page.locator("#standings")).to_contain_text("居*3")
    assert "居民3" not in page.content()
    shoot(page, screenshots, "board-standings")
    page.get_by_role("link", name="光荣榜").click()
    expect(page.locator("#honour")).to_contain_text("居*3")
    shoot(page, screenshots, "board-honour")
    page.get_by_role("link", name="统计图").click()
    expect(page.locator("#legend")).to_contain_text("会议我能到")
    shoot(page, screenshots, "board-chart")
    page.get_by_role("link", name="全屏（电视）").click()
    expect(page.locator("body")).to_have_class("board tv")
    expect(page.locator("#unit")).to_be_hidden()

    television = browser.new_context(base_url=server, **TV)
    try:
        screen = television.new_page()
        screen.goto(f"/boards/{shopfront.code}/standings?display=tv")
        expect(screen.locator("#standings")).to_contain_text("居*3")
        screen.screenshot(path=screenshots / "board-tv.png")
    finally:
        television.close()
