"""Fixtures for the pages: an app per backend, a market with shop and staff sign-ins, and a
`Visitor` that drives the pages through Flask's test client as a browser would (cookies kept,
each form's CSRF token sent back)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import pytest
from flask import Flask
from flask.testing import FlaskClient

from api.app import create_app
from api.config import Settings
from ledger.organisation import grant_role
from redemption.vouchers import Voucher, issue_voucher
from tests.redemption.conftest import ORGANISER, Market, make_market
from web import accounts

PASSWORD = "correct horse 1"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture(scope="session")
def app(database_url) -> Flask:
    return create_app(Settings(database_url=database_url, log_level="WARNING"))


@dataclass
class Shopfront:
    """A market (members with points; shops `rice` and `oil`) with a sign-in for each shop's
    device and one for an organiser on the village."""

    market: Market
    usernames: dict[str, str] = field(default_factory=dict)

    @property
    def engine(self):
        return self.market.engine

    @property
    def code(self) -> str:
        return self.market.code

    def voucher(self, points: int = 25, member: int = 0, **fields) -> Voucher:
        return issue_voucher(self.engine, self.code, self.market.member(member),
                             actor=ORGANISER, points=points, **fields)


def make_shopfront(engine) -> Shopfront:
    market = make_market(engine)
    shopfront = Shopfront(market)
    for shop in ("rice", "oil"):
        username = f"{shop}-{market.code}"
        accounts.create_account(engine, username=username, programme=market.code,
                                kind=accounts.SHOP, principal=shop, display_name=f"{shop} till",
                                password=PASSWORD)
        shopfront.usernames[shop] = username
    grant_role(engine, market.code, "org", "organiser", "village")
    shopfront.usernames["organiser"] = f"org-{market.code}"
    accounts.create_account(engine, username=shopfront.usernames["organiser"],
                            programme=market.code, kind=accounts.STAFF, principal="org",
                            display_name="组织员小王", password=PASSWORD)
    return shopfront


@pytest.fixture
def shopfront(engine) -> Shopfront:
    return make_shopfront(engine)


@dataclass
class Visitor:
    """One browser: its cookies live in the client; `csrf` is the last form token seen."""

    client: FlaskClient
    csrf: str | None = None
    language: str = "zh-CN"

    def get(self, path: str, **kwargs):
        response = self.client.get(path, headers={"Accept-Language": self.language}, **kwargs)
        self._remember_token(response)
        return response

    def post(self, path: str, data: dict | None = None, csrf: bool = True, **kwargs):
        form = dict(data or {})
        if csrf:
            form.setdefault("csrf_token", self.csrf)
        response = self.client.post(path, data=form,
                                    headers={"Accept-Language": self.language}, **kwargs)
        self._remember_token(response)
        return response

    def sign_in(self, username: str, password: str = PASSWORD):
        self.get("/sign-in")
        response = self.post("/sign-in", {"username": username, "password": password})
        if response.status_code == 303:
            self.get(response.location, follow_redirects=True)  # forms carry the new token
        return response

    def _remember_token(self, response) -> None:
        if response.mimetype == "text/html":
            found = _CSRF.search(response.get_data(as_text=True))
            if found:
                self.csrf = found.group(1)


@pytest.fixture
def visitor(app) -> Visitor:
    return Visitor(app.test_client())


@pytest.fixture
def new_visitor(app):
    """Another browser, for tests with two devices."""
    return lambda: Visitor(app.test_client())


def text_of(response) -> str:
    """The page's visible text, tags removed and blanks folded, for assertions."""
    html = response.get_data(as_text=True)
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).strip()
