"""The organiser's desk in a real headless Chromium, against gunicorn.

The set-up is tests/web/test_browser.py's (Debian's Chromium driven by
Playwright, a phone-sized window, screenshots to `JIFEN_SCREENSHOTS_DIR`),
with a gunicorn of this module's own whose evidence folder
(`JIFEN_EVIDENCE_DIR`) is a temporary one. An organiser uploads a 30-line
sign-in sheet with 2 bad lines, sees 28 lines to award and the 2 refusals in
plain words, confirms, and 28 awards are in the ledger; then awards one
person, deducts with a photo, proposes a claim that a reviewer approves, and
the reviewer reverses an entry. Every desk page is photographed at 390 px.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from ledger.chain import get_entry, head, reversal_of
from ledger.claims import list_claims
from tests.api.test_gunicorn import running_gunicorn

from . import test_browser as browser_setup
from .deskkit import DeskVillage, make_desk_village, photo_png, thirty_line_sheet
from .test_browser import shoot, sign_in

# The browser set-up's fixtures; the server is this module's own (below).
chromium, browser, screenshots, phone = (browser_setup.chromium, browser_setup.browser,
                                         browser_setup.screenshots, browser_setup.phone)


@pytest.fixture(scope="module")
def server(database_url, tmp_path_factory) -> Iterator[str]:
    """gunicorn on the test database, keeping evidence in a temporary folder."""
    folder = tmp_path_factory.mktemp("desk-gunicorn")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JIFEN_EVIDENCE_DIR", str(folder / "evidence"))
        with running_gunicorn(database_url, folder) as started:
            yield f"http://127.0.0.1:{started.port}"


@pytest.fixture
def desk(engine) -> DeskVillage:
    return make_desk_village(engine)


def open_desk(phone, desk: DeskVillage, who: str) -> Page:
    page = phone()
    page.goto("/desk")
    expect(page).to_have_url(re.compile(r"/sign-in\?next=/desk$"))
    sign_in(page, desk.usernames[who])
    expect(page).to_have_url(re.compile(r"/desk$"))
    return page


def test_an_organiser_awards_a_thirty_line_sheet_with_two_bad_lines(phone, desk, screenshots,
                                                                    tmp_path):
    sheet = tmp_path / "签到表-环境整治.csv"
    sheet.write_bytes(thirty_line_sheet(desk))
    page = open_desk(phone, desk, "organiser")
    shoot(page, screenshots, "desk-home")
    page.get_by_role("link", name="签到表", exact=True).click()
    expect(page.locator("h1")).to_have_text("上传签到表")
    shoot(page, screenshots, "desk-sheet-upload")
    before = head(desk.engine, desk.code).size

    page.set_input_files("#sheet", sheet)
    page.get_by_role("button", name="核对签到表").click()

    expect(page.locator("#good-count")).to_have_text("28 行可以记分")
    expect(page.locator("#refused-count")).to_have_text("2 行不能记分")
    refused = page.locator("#refused-lines li")
    expect(refused).to_have_count(2)
    expect(refused.nth(0)).to_contain_text("第 10 行")
    expect(refused.nth(0)).to_contain_text("找不到编号为 nobody 的人。")
    expect(refused.nth(1)).to_contain_text("第 20 行")
    expect(refused.nth(1)).to_contain_text("此人不在您负责的单位内，您不能为其办理。")
    expect(page.locator("#good-lines li")).to_have_count(28)
    assert head(desk.engine, desk.code).size == before
    shoot(page, screenshots, "desk-sheet-check")

    page.get_by_role("button", name="确认记分（28 行）").dblclick()  # a double tap

    expect(page.locator("#posted-count")).to_have_text("已记分 28 行")
    shoot(page, screenshots, "desk-sheet-done")
    assert head(desk.engine, desk.code).size == before + 28
    awarded = [get_entry(desk.engine, desk.code, seq)
               for seq in range(before, before + 28)]
    assert {(entry.kind, entry.rule.code, entry.actor) for entry in awarded} == {
        ("award", "cleanup", "org")}


def test_one_award_a_deduction_with_a_photo_a_claim_and_a_reversal(phone, desk, screenshots,
                                                                   tmp_path):
    photo = tmp_path / "IMG_20261201_0930.png"
    photo.write_bytes(photo_png())
    organiser = open_desk(phone, desk, "organiser")

    organiser.fill("#q", "居民")
    organiser.get_by_role("button", name="查找").click()
    expect(organiser.locator("#matches li")).to_have_count(4)
    shoot(organiser, screenshots, "desk-search")
    organiser.get_by_role("link", name=re.compile("^居民1")).click()
    expect(organiser.locator("h1")).to_have_text("居民1")
    shoot(organiser, screenshots, "desk-member")

    organiser.locator("#award").click()
    expect(organiser.locator("h1")).to_have_text("给 居民1 加分")
    shoot(organiser, screenshots, "desk-rules")
    organiser.locator('[data-rule="volunteer"]').click()
    organiser.fill("#quantity", "120")
    organiser.fill("#memo", "敬老院打扫卫生")
    shoot(organiser, screenshots, "desk-details")
    organiser.get_by_role("button", name="下一步：核对").click()
    expect(organiser.locator("#card")).to_contain_text("+10 积分")
    shoot(organiser, screenshots, "desk-confirm")
    organiser.get_by_role("button", name="确认加分").dblclick()
    expect(organiser.locator("#card")).to_contain_text("已加分")
    shoot(organiser, screenshots, "desk-entry")
    awarded = int(re.search(r"/desk/entries/(\d+)", organiser.url).group(1))
    assert get_entry(desk.engine, desk.code, awarded).rule.quantity == 120

    organiser.goto(f"/desk/members/{desk.member(1)}/award/volunteer")
    organiser.fill("#quantity", "5")  # 5 minutes earn no whole point
    organiser.get_by_role("button", name="下一步：核对").click()
    expect(organiser.locator("#refusal")).to_contain_text("数量不符合这条规则")
    shoot(organiser, screenshots, "desk-refusal")

    organiser.goto(f"/desk/members/{desk.member(2)}/deduction")
    shoot(organiser, screenshots, "desk-rules-deduction")
    organiser.locator('[data-rule="banquet"]').click()
    organiser.fill("#memo", "操办无事酒，宴请 20 桌")
    organiser.set_input_files("#evidence-photo", photo)
    organiser.get_by_role("button", name="下一步：核对").click()
    expect(organiser.locator("#needs-review")).to_be_visible()
    expect(organiser.locator("img.evidence")).to_be_visible()
    shoot(organiser, screenshots, "desk-confirm-deduction")
    organiser.get_by_role("button", name="确认扣分").click()
    expect(organiser.locator("#card")).to_contain_text("已提交审核")
    shoot(organiser, screenshots, "desk-claim-proposed")
    [claim] = list_claims(desk.engine, desk.code, "pending")
    digest = hashlib.sha256(photo.read_bytes()).hexdigest()
    assert (claim.points, claim.evidence) == (-20, f"sha256:{digest}")

    reviewer = open_desk(phone, desk, "reviewer")
    reviewer.get_by_role("link", name="待审核", exact=True).click()
    expect(reviewer.locator("#to-decide li")).to_have_count(1)
    shoot(reviewer, screenshots, "desk-claims")
    reviewer.locator("#to-decide a").click()
    expect(reviewer.locator("img.evidence")).to_be_visible()
    shoot(reviewer, screenshots, "desk-claim")
    reviewer.get_by_role("button", name="批准").click()
    expect(reviewer.locator("#card")).to_contain_text("已批准")
    expect(reviewer.locator("#status")).to_have_attribute("data-status", "posted")

    reviewer.get_by_role("link", name="找人记分", exact=True).click()
    reviewer.fill("#seq", str(awarded))
    reviewer.get_by_role("button", name="打开记录").click()
    expect(reviewer.locator("h1")).to_have_text(f"记录 {awarded}")
    reviewer.fill("#reason", "录入错误：当天由别人打扫")
    shoot(reviewer, screenshots, "desk-reverse")
    reviewer.get_by_role("button", name="确认冲正").click()
    expect(reviewer.locator("#card")).to_contain_text("已冲正")
    expect(reviewer.locator("#reversed")).to_be_visible()
    shoot(reviewer, screenshots, "desk-reversed")
    assert reversal_of(desk.engine, desk.code, awarded) is not None
