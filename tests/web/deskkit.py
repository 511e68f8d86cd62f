"""A village for the organiser's desk tests: rules of every kind, staff of every role, a unit
outside the organiser's reach, sign-in sheets and photos to send, and the desk's forms read
back from its pages. Shared by the test-client tests (tests/web/desk/) and the browser test
(test_browser_desk.py)."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser

from PIL import Image

from ledger.organisation import create_household, create_member, create_unit, grant_role
from ledger.rules import set_rule
from redemption.shops import create_shop
from tests.conftest import Village, make_village
from web import accounts

from .conftest import PASSWORD, text_of

OPERATOR = "system:test"
RULES = [
    {"code": "meeting", "name": "参加村民大会", "category": "会议我能到", "sign": "award",
     "points": 5, "caps": [{"per": "member", "period": "day", "max_times": 1}]},
    {"code": "cleanup", "name": "参加环境整治", "category": "活动我参加", "sign": "award",
     "points": 2},
    {"code": "volunteer", "name": "志愿服务", "category": "活动我参加", "sign": "award",
     "per_unit": {"unit": "minute", "points": 5, "per": 60, "max_quantity": 480}},
    {"code": "big-help", "name": "带头办大事", "category": "发展我带头", "sign": "award",
     "points": 50, "approval": "always", "roles": ["organiser", "reviewer"]},
    {"code": "litter", "name": "乱扔垃圾", "category": "环境卫生", "sign": "deduction",
     "points": 5},
    {"code": "banquet", "name": "大操大办宴席", "category": "移风易俗", "sign": "deduction",
     "points": 20, "approval": "always", "evidence_required": True},
]
STAFF = {
    # who: (principal, role, unit, display name)
    "organiser": ("org", "organiser", "village", "组织员小王"),
    "reviewer": ("rev", "reviewer", "village", "审核员老李"),
    "second_reviewer": ("rev2", "reviewer", "village", "审核员小赵"),
    "far_organiser": ("far-org", "organiser", "far", "远村组织员"),
    "auditor": ("aud", "auditor", "village", "审计员"),
}


@dataclass
class DeskVillage:
    """A village (members m0..m3 in households h1, h2) with another village, `far`, whose
    member f0 only the far organiser may act for; staff sign-ins by role and a shop's."""

    village: Village
    usernames: dict[str, str] = field(default_factory=dict)

    @property
    def engine(self):
        return self.village.engine

    @property
    def code(self) -> str:
        return self.village.code

    def member(self, index: int) -> str:
        return self.village.members[index]


def make_desk_village(engine) -> DeskVillage:
    village = make_village(engine)
    create_unit(engine, village.code, "far", "远村", "village")
    create_household(engine, village.code, "h9", "远方户", "far")
    create_member(engine, village.code, "f0", "远方人", "h9")
    for rule in RULES:
        set_rule(engine, village.code, rule, OPERATOR)
    desk = DeskVillage(village)
    for who, (principal, role, unit, display_name) in STAFF.items():
        grant_role(engine, village.code, principal, role, unit)
        desk.usernames[who] = f"{principal}-{village.code}"
        accounts.create_account(engine, username=desk.usernames[who], programme=village.code,
                                kind=accounts.STAFF, principal=principal,
                                display_name=display_name, password=PASSWORD)
    create_shop(engine, village.code, "rice", "王家米店", ["village"], "")
    desk.usernames["shop"] = f"rice-{village.code}"
    accounts.create_account(engine, username=desk.usernames["shop"], programme=village.code,
                            kind=accounts.SHOP, principal="rice", display_name="rice till",
                            password=PASSWORD)
    return desk


def sheet_csv(rows: list[tuple[str, str, str]], header=("成员", "规则", "数量")) -> bytes:
    """A sign-in sheet as Excel saves CSV (UTF-8 with BOM)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def thirty_line_sheet(desk: DeskVillage) -> bytes:
    """30 lines: 28 good (`cleanup` for the village's members), line 10 names no one, line 20
    names the far village's member, whom the village organiser may not award."""
    rows = []
    for number in range(2, 32):  # row 1 is the header
        if number == 10:
            rows.append(("nobody", "cleanup", ""))
        elif number == 20:
            rows.append(("f0", "cleanup", ""))
        else:
            rows.append((desk.member(number % 4), "cleanup", ""))
    return sheet_csv(rows)


class _Forms(HTMLParser):
    """Every form of a page: its action and its fields' values (hidden or filled in)."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[tuple[str, dict[str, str]]] = []
        self._textarea: str | None = None

    def handle_starttag(self, tag, attributes) -> None:
        attributes = dict(attributes)
        if tag == "form":
            self.forms.append((attributes.get("action", ""), {}))
        elif tag == "input" and self.forms and attributes.get("name") and attributes.get(
                "type") not in ("file",):
            self.forms[-1][1][attributes["name"]] = attributes.get("value") or ""
        elif tag == "textarea" and self.forms:
            self._textarea = attributes.get("name")
            self.forms[-1][1][self._textarea] = ""

    def handle_endtag(self, tag) -> None:
        if tag == "textarea":
            self._textarea = None

    def handle_data(self, data) -> None:
        if self._textarea:
            self.forms[-1][1][self._textarea] += data


def form(response, action_part: str) -> tuple[str, dict[str, str]]:
    """The (action, fields) of the page's form whose action contains `action_part`."""
    reader = _Forms()
    reader.feed(response.get_data(as_text=True))
    found = [(action, fields) for action, fields in reader.forms if action_part in action]
    assert found, f"no form posting to {action_part!r} in: {text_of(response)[:500]}"
    return found[-1]


def photo_png(colour=(200, 30, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), colour).save(out, "PNG")
    return out.getvalue()


def check(visitor, member: str, sign: str, rule: str, **fields):
    """Open the details form of `rule` for `member`, fill it in and send it to be checked."""
    page = visitor.get(f"/desk/members/{member}/{sign}/{rule}")
    assert page.status_code == 200, text_of(page)
    action, values = form(page, f"/{sign}/{rule}")
    values = values | {key: value for key, value in fields.items() if key != "photo"}
    if "photo" in fields:
        values["photo"] = (io.BytesIO(fields["photo"]), "IMG_0001.png")
    return visitor.post(action, values, content_type="multipart/form-data")


def confirm(visitor, checked):
    action, values = form(checked, "/confirm")
    return visitor.post(action, values)


def seq_of(response) -> int:
    return int(re.search(r"/desk/entries/(\d+)", response.location).group(1))
