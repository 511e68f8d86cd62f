"""The resident's wallet through Flask's test client: opened with the card's code, only the
resident's own data, vouchers made once however many taps, proofs of their own entries, and
the organiser's card page.

Every test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import re

import pytest

from audit.checkpoints import published_vkeys, sign_checkpoint
from audit.proof_file import verify_proof
from ledger.accounts import member_account
from ledger.awards import AwardRequest, award
from ledger.chain import get_entry, head
from ledger.rules import set_rule
from ledger.statements import balance_of
from redemption import catalog
from redemption.vouchers import cancel_voucher, get_voucher, list_vouchers, voucher_token
from tests.audit.test_boards import RULES
from tests.redemption.conftest import STARTING_POINTS
from web import residents
from web.qrcodes import qr_svg
from web.sessions import WALLET_COOKIE

from .conftest import text_of

_ATTEMPT = re.compile(r'name="attempt" value="([^"]+-points)"')
_ITEM_ATTEMPT = r'name="attempt" value="([^"]+)">\s*<input type="hidden" name="item" value="{}"'


@pytest.fixture
def cards(shopfront) -> dict[str, str]:
    """A card code for each of the market's first two members."""
    return {member: residents.issue_code(shopfront.engine, shopfront.code, member,
                                         issued_by="org").code
            for member in (shopfront.market.member(0), shopfront.market.member(1))}


def open_wallet(visitor, code: str):
    visitor.get("/w")
    opened = visitor.post("/w", {"code": code})
    if opened.status_code == 303:
        visitor.get(opened.location)  # the wallet's forms carry the wallet session's token
    return opened


def make_voucher(visitor, **form):
    page = visitor.get("/wallet/catalog")
    html = page.get_data(as_text=True)
    if "item" in form:
        attempt = re.search(_ITEM_ATTEMPT.format(form["item"]), html).group(1)
    else:
        attempt = _ATTEMPT.search(html).group(1)
    return visitor.post("/wallet/vouchers", {"attempt": attempt, **form})


def test_the_cards_code_opens_the_residents_own_wallet(shopfront, cards, visitor):
    member = shopfront.market.member(0)
    assert visitor.get("/wallet").location.endswith("/w")

    opened = open_wallet(visitor, residents.display(cards[member]).lower())

    assert opened.status_code == 303 and opened.location == "/wallet"
    home = visitor.get("/wallet")
    assert home.status_code == 200
    assert "居民0的积分" in text_of(home)
    assert re.search(r'id="balance">\s*1000\s*<', home.get_data(as_text=True))
    assert home.headers["Cache-Control"] == "no-store"
    cookie = visitor.client.get_cookie(WALLET_COOKIE)
    assert cookie.http_only and cookie.same_site == "Lax"


def test_a_wrong_or_revoked_code_opens_nothing(shopfront, cards, visitor):
    member = shopfront.market.member(0)
    for wrong in ("", "not a code", "0" * 20, cards[member][:-1] + "Z"):
        refused = open_wallet(visitor, wrong)
        assert refused.status_code == 404, wrong
        assert "此卡的代码无效" in text_of(refused)
        assert visitor.client.get_cookie(WALLET_COOKIE) is None

    open_wallet(visitor, cards[member])
    assert visitor.get("/wallet").status_code == 200
    residents.revoke_code(shopfront.engine, shopfront.code, member)

    assert visitor.get("/wallet").location.endswith("/w")  # the open wallet closed at once
    assert open_wallet(visitor, cards[member]).status_code == 404


def test_a_new_card_replaces_the_old_one(shopfront, cards, visitor, new_visitor):
    member = shopfront.market.member(0)
    open_wallet(visitor, cards[member])

    new_code = residents.issue_code(shopfront.engine, shopfront.code, member, issued_by="org")

    assert visitor.get("/wallet").status_code == 302
    assert open_wallet(new_visitor(), cards[member]).status_code == 404
    assert open_wallet(visitor, new_code.code).status_code == 303


def test_a_resident_sees_only_their_own_vouchers_entries_and_proofs(shopfront, cards, visitor):
    own, other = shopfront.market.member(0), shopfront.market.member(1)
    others_voucher = shopfront.voucher(points=7, member=1)
    own_voucher = shopfront.voucher(points=9, member=0)
    sign_checkpoint(shopfront.engine, shopfront.code)
    open_wallet(visitor, cards[own])

    listed = visitor.get("/wallet/vouchers").get_data(as_text=True)
    assert own_voucher.id in listed and others_voucher.id not in listed
    assert visitor.get(f"/wallet/vouchers/{others_voucher.id}").status_code == 404
    assert visitor.get(f"/wallet/vouchers/{own_voucher.id}").status_code == 200
    assert visitor.get(f"/wallet/entries/{others_voucher.issue_seq}/proof").status_code == 404
    assert visitor.get(f"/wallet/entries/{own_voucher.issue_seq}/proof").status_code == 200
    assert visitor.get("/wallet/entries/999999/proof").status_code == 404
    assert visitor.get(f"/wallet/entries/{2**64}/proof").status_code == 404
    history = visitor.get("/wallet/history").get_data(as_text=True)
    assert f'id="entry-{own_voucher.issue_seq}"' in history
    assert f'id="entry-{others_voucher.issue_seq}"' not in history
    for page in ("/wallet", "/wallet/history", "/wallet/vouchers", "/wallet/catalog",
                 f"/wallet?member={other}"):  # the member is the session's, never asked
        html = visitor.get(page).get_data(as_text=True)
        assert "居民1" not in html and others_voucher.display_code not in html, page


def test_turning_points_into_a_voucher_happens_once_however_many_taps(shopfront, cards,
                                                                        visitor):
    member = shopfront.market.member(0)
    open_wallet(visitor, cards[member])
    page = visitor.get("/wallet/catalog").get_data(as_text=True)
    attempt = _ATTEMPT.search(page).group(1)
    before = head(shopfront.engine, shopfront.code).size

    answers = [visitor.post("/wallet/vouchers", {"attempt": attempt, "points": "30"})
               for _ in range(3)]

    assert {answer.status_code for answer in answers} == {303}
    assert len({answer.location for answer in answers}) == 1
    assert head(shopfront.engine, shopfront.code).size == before + 1
    made = list_vouchers(shopfront.engine, shopfront.code, member=member)
    assert [(voucher.value_points, voucher.status, voucher.member) for voucher in made] == [
        (30, "issued", member)]
    assert balance_of(shopfront.engine, shopfront.code,
                      member_account(member)).balance_points == STARTING_POINTS - 30
    shown = visitor.get(answers[0].location)
    html = shown.get_data(as_text=True)
    assert 'id="made"' in html and made[0].display_code in html
    token = voucher_token(shopfront.engine, shopfront.code, made[0].id)
    assert str(qr_svg(token, made[0].display_code, css_class="qr voucher-qr")) in html
    assert get_voucher(shopfront.engine, shopfront.code, made[0].id).status == "issued"


def test_a_catalog_item_becomes_a_voucher_and_refusals_say_why(shopfront, cards, visitor):
    member = shopfront.market.member(0)
    catalog.create_item(shopfront.engine, shopfront.code, "rice", "大米 5 斤",
                        kind=catalog.GOODS, price_points=40, stock=1)
    catalog.create_item(shopfront.engine, shopfront.code, "gold", "金条", kind=catalog.GOODS,
                        price_points=STARTING_POINTS + 1, stock=5)
    open_wallet(visitor, cards[member])
    page = visitor.get("/wallet/catalog")
    assert "大米 5 斤" in text_of(page) and "积分不够" in text_of(page)

    made = make_voucher(visitor, item="rice")

    assert made.status_code == 303
    voucher = list_vouchers(shopfront.engine, shopfront.code, member=member)[0]
    assert (voucher.item, voucher.value_points) == ("rice", 40)
    assert "已兑完" in text_of(visitor.get("/wallet/catalog"))
    sold_out = make_voucher(visitor, item="rice")
    assert sold_out.status_code == 409 and "已兑完" in text_of(sold_out)
    too_dear = make_voucher(visitor, item="gold")
    assert too_dear.status_code == 409
    assert re.search(r'id="refusal" data-code="insufficient_balance"',
                     too_dear.get_data(as_text=True))
    for points in ("0", "-3", "abc", str(STARTING_POINTS + 1)):
        refused = make_voucher(visitor, points=points)
        assert refused.status_code in (409, 422), points
        assert "未扣积分" in text_of(refused)
    for item in ("rice\x00", "RICE", "x" * 65):
        assert visitor.post("/wallet/vouchers", {"attempt": "a" * 22, "item": item}
                            ).status_code == 400
    assert len(list_vouchers(shopfront.engine, shopfront.code, member=member)) == 1


def test_forms_without_their_csrf_token_do_nothing(shopfront, cards, visitor):
    member = shopfront.market.member(0)
    visitor.get("/w")
    refused = visitor.post("/w", {"code": cards[member]}, csrf=False)
    assert refused.status_code == 400 and visitor.client.get_cookie(WALLET_COOKIE) is None
    open_wallet(visitor, cards[member])
    attempt = _ATTEMPT.search(visitor.get("/wallet/catalog").get_data(as_text=True)).group(1)

    for token in (None, "", "x" * 43):
        form = {"attempt": attempt, "points": "5"}
        if token is not None:
            form["csrf_token"] = token
        assert visitor.post("/wallet/vouchers", form, csrf=False).status_code == 400
    assert visitor.post("/wallet/leave", csrf=False).status_code == 400

    assert list_vouchers(shopfront.engine, shopfront.code, member=member) == []
    assert visitor.get("/wallet").status_code == 200


def test_closing_the_wallet_ends_its_session(shopfront, cards, visitor):
    open_wallet(visitor, cards[shopfront.market.member(0)])

    left = visitor.post("/wallet/leave")

    assert left.status_code == 303 and left.location == "/w?left=1"
    assert visitor.get("/wallet").location.endswith("/w")
    assert "已在此手机上关闭" in text_of(visitor.get("/w?left=1"))


def test_history_names_the_rule_the_organiser_and_offers_each_proof(shopfront, cards,
                                                                      visitor):
    member = shopfront.market.member(0)
    set_rule(shopfront.engine, shopfront.code, RULES[0], "system:test")
    awarded = award(shopfront.engine, shopfront.code,
                    AwardRequest(member=member, rule="meeting", memo="村民大会签到"),
                    actor="org").entry
    voucher = shopfront.voucher(points=20, member=0)
    cancel_voucher(shopfront.engine, shopfront.code, voucher.id, actor="org")
    open_wallet(visitor, cards[member])

    before_checkpoint = visitor.get("/wallet/history")
    line = _line(before_checkpoint, awarded.seq)
    assert "加分：参加会议" in line and "村民大会签到" in line
    assert "记录人：组织员小王" in line
    assert "下次签署检查点后" in line and "/proof" not in line
    pending = visitor.get(f"/wallet/entries/{awarded.seq}/proof")
    assert pending.status_code == 409 and "尚未就绪" in text_of(pending)

    sign_checkpoint(shopfront.engine, shopfront.code)
    history = visitor.get("/wallet/history")
    assert f"/wallet/entries/{awarded.seq}/proof" in _line(history, awarded.seq)
    assert "退券返还积分" in text_of(history)
    downloaded = visitor.get(f"/wallet/entries/{awarded.seq}/proof")
    assert downloaded.status_code == 200
    assert downloaded.headers["Content-Disposition"] == (
        f'attachment; filename="{shopfront.code}-{awarded.seq}.tlog-proof"')
    verified = verify_proof(downloaded.get_data(as_text=True),
                            published_vkeys(shopfront.engine, shopfront.code))
    assert verified.entry["seq"] == awarded.seq and verified.entry["memo"] == "村民大会签到"


def test_history_comes_in_pages(shopfront, cards, visitor):
    member = shopfront.market.member(0)
    for _ in range(25):
        shopfront.voucher(points=1, member=0)
    open_wallet(visitor, cards[member])

    first = visitor.get("/wallet/history").get_data(as_text=True)
    older = re.search(r'href="/wallet/history\?before=(\d+)" id="older"', first).group(1)
    second = visitor.get(f"/wallet/history?before={older}").get_data(as_text=True)

    seqs = [int(seq) for seq in re.findall(r'data-seq="(\d+)"', first + second)]
    assert len(seqs) == 26 == len(set(seqs)) and seqs == sorted(seqs, reverse=True)
    assert visitor.get("/wallet/history?before=0").status_code == 404


def test_an_organiser_prints_a_new_card_and_the_old_one_stops_working(shopfront, cards,
                                                                        visitor, new_visitor):
    member = shopfront.market.member(0)
    visitor.sign_in(shopfront.usernames["organiser"])
    form = visitor.get(f"/residents/{member}/card")
    assert form.status_code == 200 and "当前的卡制作于" in text_of(form)

    printed = visitor.post(f"/residents/{member}/card")

    assert printed.status_code == 200
    html = printed.get_data(as_text=True)
    code = re.search(r'id="printed-code">([0-9A-Z-]+)<', html).group(1)
    assert 'class="qr card-qr"' in html and "居民0" in html
    resident = new_visitor()
    assert open_wallet(resident, cards[member]).status_code == 404
    assert open_wallet(resident, code).status_code == 303
    assert residents.live_code(shopfront.engine, shopfront.code, member).issued_by == "org"


def test_only_staff_over_the_member_make_cards(shopfront, visitor, new_visitor):
    member = shopfront.market.member(0)
    assert visitor.get(f"/residents/{member}/card").status_code == 302  # sign in first
    visitor.sign_in(shopfront.usernames["rice"])
    assert visitor.get(f"/residents/{member}/card").status_code == 403
    stranger = new_visitor()
    stranger.sign_in(shopfront.usernames["organiser"])
    assert stranger.get("/residents/no-such-member/card").status_code == 404
    assert residents.live_code(shopfront.engine, shopfront.code, member) is None


def test_a_browser_with_a_staff_session_opens_a_wallet_as_the_resident(shopfront, cards,
                                                                        visitor):
    """A shared phone: the wallet acts as the resident, not as the signed-in organiser."""
    member = shopfront.market.member(0)
    visitor.sign_in(shopfront.usernames["organiser"])
    open_wallet(visitor, cards[member])

    made = make_voucher(visitor, points="3")

    assert made.status_code == 303
    voucher = list_vouchers(shopfront.engine, shopfront.code, member=member)[0]
    assert voucher.value_points == 3
    assert get_entry(shopfront.engine, shopfront.code, voucher.issue_seq).actor == member


def _line(response, seq: int) -> str:
    html = response.get_data(as_text=True)
    found = re.search(rf'<li id="entry-{seq}".*?</li>', html, flags=re.S)
    assert found, f"entry {seq} is not in the history"
    return re.sub(r"\s+", " ", found.group(0))
