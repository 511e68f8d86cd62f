"""The shop scanner end to end in a real headless Chromium, against the app under gunicorn.

Chromium is Debian's package (`/usr/bin/chromium`, or `JIFEN_CHROMIUM`),
driven by Playwright for Python with `executable_path`: Playwright's own
browser downloads are never used. Where Chromium is missing, the set-up
installs it (`apt-get install chromium fonts-wqy-microhei`, as root; the
font draws the Chinese in screenshots); if it still cannot be had, these
tests are skipped, except under CI (`CI=true`), where that is a failure.

The server is the real one: gunicorn with several workers on a free port,
on the same test database as the rest of the suite (both backends), so a
lockout counted by one worker holds in the others. Each page is looked at
in a phone-sized window (390 × 844 CSS pixels, touch, Chinese), and
screenshots are saved to `JIFEN_SCREENSHOTS_DIR` (default: `screenshots/`
in pytest's temporary folder) for the README.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from playwright.sync_api import Browser, Page, expect, sync_playwright

from ledger.chain import head
from redemption import qr
from redemption.redemptions import get_redemption
from redemption.vouchers import get_voucher, voucher_token
from tests.api.test_gunicorn import running_gunicorn
from tests.conftest import IN_CI
from web.accounts import MAX_FAILED_SIGN_INS

from .conftest import PASSWORD, Shopfront, make_shopfront

CHROMIUM = Path(os.environ.get("JIFEN_CHROMIUM", "/usr/bin/chromium"))
DEBIAN_PACKAGES = ("chromium", "fonts-wqy-microhei")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync",
                  "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]
"""The background-networking flags keep Chromium from calling out of a closed network; the
media-stream flags give it a camera (a test pattern) that opens without asking."""
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2,
         "is_mobile": True, "has_touch": True, "locale": "zh-CN"}
TIMEOUT_MS = 20_000


def _chinese_font_missing() -> bool:
    if shutil.which("fc-list") is None:
        return True
    listed = subprocess.run(["fc-list", ":lang=zh"], capture_output=True, text=True)
    return not listed.stdout.strip()


def _install_with_apt() -> str:
    """Install Chromium (and a Chinese font) from Debian; what went wrong, or ''."""
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        return "apt-get is not available to this user"
    environment = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"],
                    ["apt-get", "install", "-y", "-qq", *DEBIAN_PACKAGES]):
        done = subprocess.run(command, capture_output=True, text=True, env=environment)
        if done.returncode != 0:
            return f"{' '.join(command)} failed: {done.stderr.strip()[-500:]}"
    return ""


@pytest.fixture(scope="session")
def chromium() -> Path:
    problem = ""
    if not CHROMIUM.exists() or _chinese_font_missing():
        problem = _install_with_apt()
    if CHROMIUM.exists():
        return CHROMIUM
    reason = f"Chromium is not at {CHROMIUM} and could not be installed: {problem}"
    if IN_CI:
        pytest.fail(f"the browser tests must run under CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser(chromium) -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(chromium),
                                              args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def server(database_url, tmp_path_factory) -> Iterator[str]:
    with running_gunicorn(database_url, tmp_path_factory.mktemp("pages-gunicorn")) as started:
        yield f"http://127.0.0.1:{started.port}"


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory) -> Path:
    folder = Path(os.environ.get("JIFEN_SCREENSHOTS_DIR")
                  or tmp_path_factory.getbasetemp() / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def phone(browser, server) -> Iterator:
    """Open a new phone (its own cookies) at the server; closed at the end of the test."""
    contexts = []

    def open_phone() -> Page:
        context = browser.new_context(base_url=server, **PHONE)
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        return context.new_page()

    yield open_phone
    for context in contexts:
        context.close()


@pytest.fixture
def shopfront(engine) -> Shopfront:
    return make_shopfront(engine)


def shoot(page: Page, screenshots: Path, name: str) -> None:
    page.screenshot(path=screenshots / f"{name}.png", full_page=True)


def sign_in(page: Page, username: str, password: str = PASSWORD) -> None:
    page.fill("#username", username)
    page.fill("#password", password)
    page.get_by_role("button", name="登录").click()


def check_code(page: Page, code: str) -> None:
    page.fill("#code", code)
    page.get_by_role("button", name="查验券码").click()


def test_a_shop_device_redeems_a_typed_code_once_and_a_second_try_is_refused(
        phone, shopfront, screenshots):
    voucher = shopfront.voucher(points=25)
    page = phone()
    page.goto("/shop")
    expect(page).to_have_url(re.compile(r"/sign-in\?next=/shop$"))
    shoot(page, screenshots, "sign-in")
    sign_in(page, shopfront.usernames["rice"])
    expect(page).to_have_url(re.compile(r"/shop$"))
    expect(page.locator(".top-title")).to_have_text("王家米店")
    shoot(page, screenshots, "shop-scan")

    check_code(page, voucher.display_code)

    card = page.locator("#card")
    expect(card).to_have_attribute("data-state", "valid")
    expect(card).to_contain_text("真券，未使用")
    expect(card).to_contain_text("25 积分")
    expect(card).to_contain_text("收款时减 ¥2.50")
    shoot(page, screenshots, "shop-valid")
    before = head(shopfront.engine, shopfront.code).size

    page.locator("#redeem").dblclick()  # a double tap

    expect(page).to_have_url(re.compile(f"/shop/redeemed/{voucher.id}$"))
    expect(card).to_have_attribute("data-state", "redeemed")
    expect(card).to_contain_text("核销成功")
    shoot(page, screenshots, "shop-redeemed")
    assert head(shopfront.engine, shopfront.code).size == before + 1
    assert get_voucher(shopfront.engine, shopfront.code, voucher.id).status == "redeemed"

    page.get_by_role("link", name="扫下一张券").click()
    check_code(page, voucher.display_code)

    expect(card).to_have_attribute("data-state", "already_redeemed")
    redeemed_at = get_redemption(shopfront.engine, shopfront.code, voucher.id).redeemed_at
    expect(card).to_contain_text("已经核销过")
    expect(card).to_contain_text(re.compile(r"本店已于 \d{4}-\d\d-\d\d \d\d:\d\d 核销"))
    assert "not accept" not in card.inner_text() and redeemed_at
    shoot(page, screenshots, "shop-already-redeemed")

    page.get_by_role("link", name="今日").click()
    expect(page.locator("#redemptions")).to_contain_text(voucher.display_code)
    shoot(page, screenshots, "shop-today")
    page.get_by_role("link", name="结算").click()
    expect(page.locator("main")).to_contain_text("尚未结算：¥2.50")
    shoot(page, screenshots, "shop-statement")


def test_another_shop_is_told_when_and_where_the_voucher_was_redeemed(phone, shopfront):
    voucher = shopfront.voucher()
    rice, oil = phone(), phone()
    for page, shop in ((rice, "rice"), (oil, "oil")):
        page.goto("/sign-in")
        sign_in(page, shopfront.usernames[shop])
    check_code(rice, voucher.display_code)
    rice.locator("#redeem").click()
    expect(rice).to_have_url(re.compile("/shop/redeemed/"))

    check_code(oil, voucher.display_code)

    card = oil.locator("#card")
    expect(card).to_have_attribute("data-state", "already_redeemed")
    expect(card).to_contain_text(re.compile(r"已于 \d{4}-\d\d-\d\d \d\d:\d\d 在 王家米店 核销"))
    expect(card).to_contain_text("不能收此券")


def test_a_photo_of_the_qr_code_is_decoded_by_the_server_and_redeems(phone, shopfront,
                                                                     screenshots, tmp_path):
    voucher = shopfront.voucher(points=12)
    token = voucher_token(shopfront.engine, shopfront.code, voucher.id)
    photo = tmp_path / "IMG_20261201_101500.jpg"
    photo.write_bytes(_phone_photo_of(qr.qr_png(token)))
    page = phone()
    page.goto("/sign-in")
    sign_in(page, shopfront.usernames["rice"])
    live_scanning = page.evaluate("'BarcodeDetector' in window")
    expect(page.locator("#live-scan")).to_be_visible(visible=live_scanning)
    expect(page.locator("#photo-submit")).to_be_hidden()  # the photo goes as soon as taken

    page.set_input_files("#photo", photo)

    card = page.locator("#card")
    expect(card).to_have_attribute("data-state", "valid")
    expect(card).to_contain_text("12 积分")
    page.locator("#redeem").click()
    expect(page).to_have_url(re.compile(f"/shop/redeemed/{voucher.id}$"))
    assert get_voucher(shopfront.engine, shopfront.code, voucher.id).status == "redeemed"


def test_live_scanning_where_the_browser_has_a_barcode_detector(phone, shopfront):
    """Chromium on Linux has no `BarcodeDetector` (Android's has); this one is a stand-in that
    "sees" the voucher once the camera (Chromium's fake one) is playing, so what is tested is
    the page's part: offering live scanning, opening the camera, sending what was seen."""
    voucher = shopfront.voucher(points=6)
    token = voucher_token(shopfront.engine, shopfront.code, voucher.id)
    page = phone()
    page.context.grant_permissions(["camera"])
    page.add_init_script(f"""
        window.BarcodeDetector = class {{
            static async getSupportedFormats() {{ return ["qr_code", "ean_13"]; }}
            async detect(video) {{
                return video.readyState >= 2 ? [{{ rawValue: {json.dumps(token)} }}] : [];
            }}
        }};""")
    page.goto("/sign-in")
    sign_in(page, shopfront.usernames["rice"])

    page.get_by_role("button", name="用摄像头扫码").click()

    card = page.locator("#card")
    expect(card).to_have_attribute("data-state", "valid")
    expect(card).to_contain_text("6 积分")


def test_a_redeem_without_its_csrf_token_is_refused_and_redeems_nothing(phone, shopfront,
                                                                        screenshots):
    voucher = shopfront.voucher()
    page = phone()
    page.goto("/sign-in")
    sign_in(page, shopfront.usernames["rice"])
    check_code(page, voucher.display_code)
    page.evaluate("document.querySelector('form.redeem input[name=csrf_token]').remove()")

    page.locator("#redeem").click()

    expect(page.locator("#card")).to_contain_text("此表单已失效")
    shoot(page, screenshots, "refused-csrf")
    assert get_voucher(shopfront.engine, shopfront.code, voucher.id).status == "issued"


def test_repeated_bad_passwords_lock_the_account(phone, shopfront, screenshots):
    page = phone()
    page.goto("/sign-in")
    for attempt in range(MAX_FAILED_SIGN_INS - 1):
        sign_in(page, shopfront.usernames["rice"], f"wrong password {attempt}")
        expect(page.get_by_role("alert")).to_contain_text("用户名或密码错误")
    sign_in(page, shopfront.usernames["rice"], "wrong password again")
    expect(page.get_by_role("alert")).to_contain_text("已锁定至")
    shoot(page, screenshots, "sign-in-locked")

    sign_in(page, shopfront.usernames["rice"])

    expect(page.get_by_role("alert")).to_contain_text("已锁定至")
    expect(page).to_have_url(re.compile("/sign-in"))


def test_the_switch_to_english_is_remembered(phone, shopfront, screenshots):
    voucher = shopfront.voucher(points=8)
    page = phone()
    page.goto("/sign-in")
    sign_in(page, shopfront.usernames["rice"])

    page.get_by_role("link", name="English").click()

    expect(page.get_by_text("Take a photo of the QR code")).to_be_visible()
    check_code_in_english = page.get_by_role("button", name="Check the code")
    page.fill("#code", voucher.display_code)
    check_code_in_english.click()
    expect(page.locator("#card")).to_contain_text("Genuine and unused")
    expect(page.locator("#card")).to_contain_text("8 points")
    shoot(page, screenshots, "shop-valid-en")
    page.get_by_role("link", name="Today").click()
    expect(page.locator("h1")).to_contain_text("Redeemed today")
    page.get_by_role("link", name="中文").click()
    expect(page.locator("h1")).to_contain_text("今日核销")


def _phone_photo_of(png: bytes) -> bytes:
    """The QR code as a phone would photograph a resident's screen: small in a big, grey,
    4000 × 3000 picture (so the page shrinks it before sending), saved as JPEG."""
    code = Image.open(io.BytesIO(png)).convert("RGB")
    photo = Image.new("RGB", (4000, 3000), (96, 104, 96))
    photo.paste(code.resize((code.width * 2, code.height * 2)), (1400, 900))
    out = io.BytesIO()
    photo.save(out, "JPEG", quality=88)
    return out.getvalue()
