"""The demo's sign-ins for the pages: a shop, its device, the demo staff, two vouchers, the
residents' points cards and a few goods in the points catalog.

Added to the demo programme (`ledger.demo`) by `jifen staff demo`, which
`make run` runs after `jifen demo --if-empty`: what exists already is left
as it is, so it is safe at every start and adds the sign-ins to a demo
loaded before the pages existed. The staff accounts act as the demo's API
principals, with their grants; the passwords are fixed and printed, like
the demo's API keys. Never use them outside the demo.

Every demo resident has a points card (`load_demo_wallets`): its code is
derived from the member's code, so it is the same on every machine and
printed with the sign-ins. A card replaced since (`jifen residents code`)
is left as it is and no longer printed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from sqlalchemy.engine import Engine

from ledger import demo
from redemption import catalog
from redemption.codes import ALPHABET
from redemption.errors import UnknownItem, UnknownShop
from redemption.shops import create_shop, get_shop
from redemption.vouchers import Voucher, issue_voucher
from web import accounts, residents

SHOP = "xingfu-store"
SHOP_NAME = "幸福村积分超市"


@dataclass(frozen=True)
class DemoSignIn:
    username: str
    password: str
    kind: str
    principal: str
    display_name: str
    role: str
    """What the account is for, as printed."""


SIGN_INS = [
    DemoSignIn("li-hua", "demo-organiser", accounts.STAFF, demo.ORGANISER, "李华", "organiser"),
    DemoSignIn("zhao-gang", "demo-reviewer", accounts.STAFF, demo.REVIEWER, "赵刚", "reviewer"),
    DemoSignIn("wu-min", "demo-admin", accounts.STAFF, demo.ADMIN, "吴敏", "admin"),
    DemoSignIn("sun-li", "demo-auditor", accounts.STAFF, demo.AUDITOR, "孙丽", "auditor"),
    DemoSignIn("xingfu-store", "demo-shop", accounts.SHOP, SHOP, "幸福村积分超市收银台", "shop"),
]
VOUCHERS = [
    # (member, points, idempotency key): the key makes a second run return the same voucher.
    ("m-li-na", 5, "demo-voucher:0"),
    ("m-zhang-wei", 5, "demo-voucher:1"),
]


def load_demo_sign_ins(engine: Engine) -> list[Voucher]:
    """Add what is missing of the shop, the sign-ins and the vouchers; return the vouchers.

    Raises `UnknownProgramme` when the demo programme is not loaded.
    """
    try:
        get_shop(engine, demo.PROGRAMME, SHOP)
    except UnknownShop:
        create_shop(engine, demo.PROGRAMME, SHOP, SHOP_NAME, ["xingfu"], "王店长")
    for sign_in in SIGN_INS:
        try:
            accounts.get_account(engine, sign_in.username)
        except accounts.UnknownAccount:
            accounts.create_account(
                engine, username=sign_in.username, programme=demo.PROGRAMME,
                kind=sign_in.kind, principal=sign_in.principal,
                display_name=sign_in.display_name, password=sign_in.password)
    return [issue_voucher(engine, demo.PROGRAMME, member, actor=demo.ORGANISER, points=points,
                          idempotency_key=key)
            for member, points, key in VOUCHERS]


ITEMS = [
    # (code, name, kind, price in points, stock or value in fen): priced for the demo's
    # residents, who hold a few points each.
    ("soap", "肥皂 1 块", catalog.GOODS, 3, 50),
    ("soy-sauce", "酱油 1 瓶", catalog.GOODS, 8, 20),
    ("cash-1", "1 元抵扣", catalog.CASH_OFF, 10, 100),
]


@dataclass(frozen=True)
class DemoWallet:
    name: str
    member: str
    code: str


def demo_card_code(member: str) -> str:
    """The fixed card code of a demo resident: 20 characters derived from the member's code."""
    digest = hashlib.sha256(f"jifen-demo-card:{member}".encode()).digest()
    return "".join(ALPHABET[byte % len(ALPHABET)] for byte in digest[:residents.CODE_CHARS])


def load_demo_wallets(engine: Engine) -> list[DemoWallet]:
    """Give each demo resident without a card the demo's card, and the catalog its goods (if
    missing); return the demo cards that still open their wallets.

    Raises `UnknownProgramme` when the demo programme is not loaded.
    """
    for code, name, kind, price_points, amount in ITEMS:
        try:
            catalog.get_item(engine, demo.PROGRAMME, code)
        except UnknownItem:
            catalog.create_item(engine, demo.PROGRAMME, code, name, kind=kind,
                                price_points=price_points,
                                **({"stock": amount} if kind == catalog.GOODS
                                   else {"value_fen": amount}))
    wallets = []
    for member, name, _household in demo.MEMBERS:
        code = demo_card_code(member)
        if residents.live_code(engine, demo.PROGRAMME, member) is None:
            residents.issue_code(engine, demo.PROGRAMME, member, issued_by=demo.OPERATOR,
                                 code=code)
        if residents.code_opens(engine, code) == (demo.PROGRAMME, member):
            wallets.append(DemoWallet(name, member, code))
    return wallets
