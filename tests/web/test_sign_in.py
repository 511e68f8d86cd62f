"""Signing in and out of the pages, CSRF, lockout over HTTP, languages and headers.

Driven through Flask's test client; tests/web/test_browser.py does the same
in a real browser. Every test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import pytest

from web.accounts import MAX_FAILED_SIGN_INS
from web.sessions import SESSION_COOKIE

from .conftest import text_of


def test_a_shop_device_signs_in_and_lands_on_its_scanner(shopfront, visitor):
    page = visitor.get("/shop")
    assert page.status_code == 302 and page.location.startswith("/sign-in?next=/shop")
    form = visitor.get(page.location)
    assert "登录" in text_of(form)

    signed_in = visitor.post("/sign-in", {"username": shopfront.usernames["rice"],
                                          "password": "correct horse 1", "next": "/shop"})

    assert signed_in.status_code == 303 and signed_in.location == "/shop"
    cookie = visitor.client.get_cookie(SESSION_COOKIE)
    assert cookie.http_only and cookie.same_site == "Lax" and cookie.expires is not None
    scanner = visitor.get("/shop")
    assert scanner.status_code == 200 and "王家米店" in text_of(scanner)
    assert visitor.get("/").location == "/shop"


def test_staff_see_the_roles_their_grants_give_them_and_cannot_open_the_scanner(shopfront,
                                                                                visitor):
    visitor.sign_in(shopfront.usernames["organiser"])

    home = text_of(visitor.get("/"))

    assert "组织员小王" in home and "积分组织员" in home and "测试村" in home
    refused = visitor.get("/shop")
    assert refused.status_code == 403 and "此页面仅供商户设备使用" in text_of(refused)


def test_a_post_without_the_csrf_token_is_refused_before_anything_happens(shopfront, visitor):
    visitor.get("/sign-in")
    refused = visitor.post("/sign-in", {"username": shopfront.usernames["rice"],
                                        "password": "correct horse 1"}, csrf=False)
    assert refused.status_code == 400 and "此表单已失效" in text_of(refused)
    assert visitor.client.get_cookie(SESSION_COOKIE) is None

    visitor.sign_in(shopfront.usernames["rice"])
    voucher = shopfront.voucher()
    for token in (None, "", "x" * 43):
        form = {"voucher": voucher.display_code, "attempt": "a" * 22}
        if token is not None:
            form["csrf_token"] = token
        refused = visitor.post("/shop/redeem", form, csrf=False)
        assert refused.status_code == 400, token
    from redemption.vouchers import get_voucher

    assert get_voucher(shopfront.engine, shopfront.code, voucher.id).status == "issued"


def test_the_token_of_the_sign_in_form_does_not_work_once_signed_in(shopfront, visitor):
    visitor.get("/sign-in")
    before = visitor.csrf
    visitor.post("/sign-in", {"username": shopfront.usernames["rice"],
                              "password": "correct horse 1"})
    refused = visitor.post("/shop/check", {"code": "0000-0000-000", "csrf_token": before})
    assert refused.status_code == 400


def test_repeated_wrong_passwords_lock_the_account_and_the_page_says_until_when(shopfront,
                                                                                 visitor):
    username = shopfront.usernames["rice"]
    visitor.get("/sign-in")
    for attempt in range(1, MAX_FAILED_SIGN_INS):
        wrong = visitor.post("/sign-in", {"username": username, "password": f"wrong {attempt}"})
        assert wrong.status_code == 401
        assert f"再输错 {MAX_FAILED_SIGN_INS - attempt} 次" in text_of(wrong)

    locked = visitor.post("/sign-in", {"username": username, "password": "wrong again"})
    assert locked.status_code == 429 and "已锁定至" in text_of(locked)
    still = visitor.post("/sign-in", {"username": username, "password": "correct horse 1"})
    assert still.status_code == 429 and visitor.client.get_cookie(SESSION_COOKIE) is None


def test_signing_out_ends_the_session_for_good(shopfront, visitor, new_visitor):
    visitor.sign_in(shopfront.usernames["rice"])
    stolen = visitor.client.get_cookie(SESSION_COOKIE).value

    signed_out = visitor.post("/sign-out")

    assert signed_out.status_code == 303 and "signed_out" in signed_out.location
    assert "您已退出登录" in text_of(visitor.get(signed_out.location))
    other = new_visitor()
    other.client.set_cookie(SESSION_COOKIE, stolen)
    assert other.get("/shop").status_code == 302


def test_the_next_page_after_signing_in_stays_on_this_site(shopfront, visitor):
    visitor.get("/sign-in")
    for outside in ("https://evil.example/", "//evil.example/x", "/\\evil.example"):
        answer = visitor.post("/sign-in", {"username": shopfront.usernames["rice"],
                                           "password": "correct horse 1", "next": outside})
        assert answer.location == "/", outside
        visitor.post("/sign-out")
        visitor.get("/sign-in")


def test_chinese_by_default_english_by_accept_language_or_by_choice(visitor):
    visitor.language = ""
    assert "用户名" in text_of(visitor.get("/sign-in"))
    visitor.language = "en-US,en;q=0.9"
    assert "Username" in text_of(visitor.get("/sign-in"))
    visitor.language = "zh-CN,zh;q=0.9"
    chosen = visitor.get("/sign-in?lang=en")
    assert "Username" in text_of(chosen) and '<html lang="en">' in chosen.get_data(as_text=True)
    assert "Username" in text_of(visitor.get("/sign-in")), "the choice is remembered"
    assert "用户名" in text_of(visitor.get("/sign-in?lang=zh_CN"))


def test_pages_are_not_cached_and_allow_only_their_own_scripts(visitor):
    page = visitor.get("/sign-in")
    assert page.headers["Cache-Control"] == "no-store"
    policy = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    html = page.get_data(as_text=True)
    assert "<script>" not in html and " on" not in html.replace(" one", "")  # no inline script
    asset = visitor.get(html.split('href="')[1].split('"')[0])
    assert asset.status_code == 200 and "immutable" in asset.headers["Cache-Control"]


@pytest.mark.parametrize("path", ["/sign-out", "/shop/check", "/shop/redeem"])
def test_a_form_address_opened_as_a_page_leads_back_to_a_page(visitor, path):
    answer = visitor.get(path, follow_redirects=True)
    assert answer.status_code == 200 and answer.mimetype == "text/html"


def test_the_pages_are_not_api_operations(app):
    """The role matrix (tests/api/test_role_matrix.py) covers what the OpenAPI document
    lists; the pages are authorised by their sessions, tested here, and are not in it."""
    spec = app.test_client().get("/openapi.json").json
    pages = {rule.rule for rule in app.url_map.iter_rules() if rule.endpoint.startswith("pages.")}
    assert {"/", "/sign-in", "/shop", "/shop/check", "/shop/redeem"} <= pages
    assert pages.isdisjoint(spec["paths"])
