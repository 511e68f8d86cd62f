"""Sign-in sheets on the organiser's desk: upload, see each line's dry-run outcome in plain
words, confirm; confirming or uploading the same sheet again awards nothing twice.

Every test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import io
import re

from openpyxl import Workbook

from ledger.chain import head

from ..conftest import text_of
from ..deskkit import form, sheet_csv, thirty_line_sheet


def upload(visitor, content: bytes, filename: str = "签到表.csv"):
    return visitor.post("/desk/sheets", {"sheet": (io.BytesIO(content), filename)},
                        content_type="multipart/form-data")


def line_states(response) -> dict[int, str]:
    html = response.get_data(as_text=True)
    return {int(number): status for number, status in re.findall(
        r'data-line="(\d+)" data-status="([a-z_]+)"', html)}


def test_a_thirty_line_sheet_is_checked_line_by_line_then_posted_once(signed_in, desk):
    organiser = signed_in("organiser")
    before = head(desk.engine, desk.code).size

    checked = upload(organiser, thirty_line_sheet(desk))

    assert checked.status_code == 200
    words = text_of(checked)
    assert "28 行可以记分" in words and "2 行不能记分" in words
    assert "第 10 行" in words and "找不到编号为 nobody 的人。" in words
    assert "第 20 行" in words and "此人不在您负责的单位内，您不能为其办理。" in words
    assert "not_in_scope" not in words and "unknown_member" not in words
    states = line_states(checked)
    assert states[10] == states[20] == "refused"
    assert sum(state == "would_post" for state in states.values()) == 28
    assert head(desk.engine, desk.code).size == before  # a check posts nothing

    action, values = form(checked, "/confirm")
    posted = organiser.post(action, values)

    assert posted.status_code == 200 and "已记分 28 行" in text_of(posted)
    assert head(desk.engine, desk.code).size == before + 28
    again = organiser.post(action, values)
    assert "28 行之前已按这张签到表记过分，这次没有重复记分" in text_of(again)
    assert head(desk.engine, desk.code).size == before + 28
    reloaded = upload(organiser, thirty_line_sheet(desk))
    assert "28 行已按这张签到表记过分" in text_of(reloaded)
    assert sum(state == "replayed" for state in line_states(reloaded).values()) == 28


def test_an_excel_sheet_with_quantities_and_dates(signed_in, desk):
    organiser = signed_in("organiser")
    workbook = Workbook()
    sheet = workbook.active
    sheet.append(["成员", "规则", "数量", "日期", "备注"])
    sheet.append([desk.member(0), "volunteer", 120, "2026-01-05", "敬老院"])
    sheet.append([desk.member(1), "volunteer", "很多", None, None])
    sheet.append([desk.member(2), "meeting", None, "2026-01-05 09:30", None])
    out = io.BytesIO()
    workbook.save(out)

    checked = upload(organiser, out.getvalue(), "volunteers.xlsx")

    assert checked.status_code == 200
    words = text_of(checked)
    assert "2 行可以记分" in words and "1 行不能记分" in words
    assert "第 3 行：数量“很多”不是整数。" in words
    assert "+10 积分" in words and "志愿服务" in words


def test_lines_needing_a_reviewer_are_told_apart(signed_in, desk):
    organiser = signed_in("organiser")
    content = sheet_csv([(desk.member(0), "big-help", ""), (desk.member(1), "cleanup", "")])

    checked = upload(organiser, content)
    posted = organiser.post(*form(checked, "/confirm"))

    assert "其中 1 行需审核" in text_of(checked) and "将提交审核" in text_of(checked)
    assert "已提交审核 1 行" in text_of(posted) and "已记分 1 行" in text_of(posted)


def test_a_sheet_that_cannot_be_read_is_refused_in_plain_words(signed_in):
    organiser = signed_in("organiser")

    no_columns = upload(organiser, sheet_csv([("m0", "cleanup", "")], header=("谁", "做什么", "")))
    not_text = upload(organiser, b"\xff\xfe\x00\x01garbage\x80\x81")
    broken_excel = upload(organiser, b"PK\x03\x04 not really a workbook", "sheet.xlsx")
    nothing = organiser.post("/desk/sheets", {}, content_type="multipart/form-data")

    assert no_columns.status_code == 422
    assert "第一行必须是列名，至少要有“成员”和“规则”两列。" in text_of(no_columns)
    assert "无法读取这个文件的文字" in text_of(not_text)
    assert "无法读取这个文件。" in text_of(broken_excel)
    assert "文件是空的。" in text_of(nothing)


def test_an_organiser_of_another_unit_cannot_post_the_lines(signed_in, desk):
    far = signed_in("far_organiser")
    before = head(desk.engine, desk.code).size

    checked = upload(far, thirty_line_sheet(desk))

    assert "1 行可以记分" in text_of(checked) and "29 行不能记分" in text_of(checked)
    far.post(*form(checked, "/confirm"))
    assert head(desk.engine, desk.code).size == before + 1  # only line 20, the far member


def test_the_confirmation_names_a_sheet_that_was_checked(signed_in, desk):
    organiser = signed_in("organiser")

    forged = organiser.post("/desk/sheets/confirm", {"sheet": "sha256:" + "ab" * 32})
    stranger = signed_in("shop").post("/desk/sheets/confirm", {"sheet": "x"})

    assert forged.status_code == 400
    assert stranger.status_code == 403


def test_a_confirmation_without_the_csrf_token_posts_nothing(signed_in, desk):
    organiser = signed_in("organiser")
    checked = upload(organiser, thirty_line_sheet(desk))
    action, values = form(checked, "/confirm")
    before = head(desk.engine, desk.code).size

    refused = organiser.post(action, values | {"csrf_token": "nope"})

    assert refused.status_code == 400 and "此表单已失效" in text_of(refused)
    assert head(desk.engine, desk.code).size == before


def test_the_empty_sheet_to_fill_in(signed_in):
    organiser = signed_in("organiser")
    english = signed_in("organiser", language="en")

    assert organiser.get("/desk/sheets/template.csv").get_data() == (
        "\ufeff成员,规则,数量,日期,备注\r\n".encode())
    assert english.get("/desk/sheets/template.csv").get_data() == (
        "\ufeffmember,rule,quantity,occurred_at,memo\r\n".encode())
