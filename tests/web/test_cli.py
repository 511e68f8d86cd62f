"""`jifen staff`: add, list, password, unlock, disable, and the demo's sign-ins.

Every test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import pytest
from click.testing import CliRunner

import web.cli  # noqa: F401  (adds `jifen staff`, as the console script's api.cli does)
from ledger.cli import main
from ledger.demo import load_demo
from ledger.verify import verify_chain
from redemption.vouchers import get_voucher
from web import accounts
from web.accounts import MAX_FAILED_SIGN_INS, AccountLocked, BadCredentials
from web.demo import SHOP, SIGN_INS, VOUCHERS, load_demo_sign_ins

from .conftest import PASSWORD


@pytest.fixture
def run(database_url, monkeypatch):
    monkeypatch.setenv("JIFEN_DATABASE_URL", database_url)

    def invoke(*arguments, stdin: str | None = None):
        return CliRunner().invoke(main, list(arguments), input=stdin)

    return invoke


def test_adding_a_shop_device_and_signing_in_with_it(shopfront, run):
    username = f"till-2-{shopfront.code}"
    added = run("staff", "add", username, "-p", shopfront.code, "--principal", "rice", "--shop",
                "--password-stdin", stdin="a long enough password\n")
    assert added.exit_code == 0, added.output
    assert accounts.sign_in(shopfront.engine, username, "a long enough password").token

    listed = run("staff", "list", "-p", shopfront.code)
    assert f"{username}\tshop\t{shopfront.code}\trice" in listed.output


def test_a_refusal_prints_its_code_and_exits_1(shopfront, run):
    refused = run("staff", "add", f"x-{shopfront.code}", "-p", shopfront.code, "--principal",
                  "no-such-shop", "--shop", "--password-stdin", stdin="a long enough password\n")
    assert refused.exit_code == 1 and "unknown_shop" in refused.output
    short = run("staff", "add", f"x-{shopfront.code}", "-p", shopfront.code, "--principal", "p",
                "--password-stdin", stdin="short\n")
    assert short.exit_code == 1 and "invalid_entry" in short.output


def test_password_unlock_and_disable(shopfront, run):
    username = shopfront.usernames["organiser"]
    for _ in range(MAX_FAILED_SIGN_INS):
        with pytest.raises((BadCredentials, AccountLocked)):
            accounts.sign_in(shopfront.engine, username, "wrong password")
    assert "locked until" in run("staff", "list", "-p", shopfront.code).output
    assert run("staff", "unlock", username).exit_code == 0
    assert accounts.sign_in(shopfront.engine, username, PASSWORD).token

    changed = run("staff", "password", username, "--password-stdin", stdin="another password\n")
    assert changed.exit_code == 0, changed.output
    assert accounts.sign_in(shopfront.engine, username, "another password").token

    assert run("staff", "disable", username).exit_code == 0
    with pytest.raises(accounts.AccountDisabled):
        accounts.sign_in(shopfront.engine, username, "another password")


def test_the_demo_sign_ins_are_added_once_and_work(fresh_engine, monkeypatch):
    monkeypatch.setenv("JIFEN_DATABASE_URL",
                       fresh_engine.url.render_as_string(hide_password=False))
    nothing = CliRunner().invoke(main, ["staff", "demo"])
    assert nothing.exit_code == 0 and "no demo programme" in nothing.output
    programme = load_demo(fresh_engine)

    first = CliRunner().invoke(main, ["staff", "demo"])
    second = CliRunner().invoke(main, ["staff", "demo"])

    assert first.exit_code == second.exit_code == 0, first.output
    assert first.output == second.output
    for sign_in in SIGN_INS:
        assert f"{sign_in.username:<13} {sign_in.password}" in first.output
        opened = accounts.sign_in(fresh_engine, sign_in.username, sign_in.password)
        assert opened.signed_in.account.principal == sign_in.principal
    vouchers = load_demo_sign_ins(fresh_engine)
    assert len(vouchers) == len(VOUCHERS) and all(
        voucher.display_code in first.output for voucher in vouchers)
    assert {get_voucher(fresh_engine, programme, voucher.id).status
            for voucher in vouchers} == {"issued"}
    assert accounts.get_account(fresh_engine, SHOP).kind == "shop"
    assert verify_chain(fresh_engine, programme).ok
