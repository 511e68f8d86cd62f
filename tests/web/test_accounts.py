"""Staff sign-ins: argon2id hashes, lockout kept in the database, sessions that end.

Every test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from ledger import errors
from ledger.storage import read_transaction
from redemption.errors import UnknownShop
from web import accounts
from web.accounts import (
    LOCKOUT_MINUTES,
    MAX_FAILED_SIGN_INS,
    AccountDisabled,
    AccountLocked,
    BadCredentials,
)
from web.models import StaffAccount, StaffSession

from .conftest import PASSWORD


def _stored(engine, username: str):
    with read_transaction(engine) as db:
        return db.execute(select(StaffAccount.__table__).where(
            StaffAccount.username == username)).one()


def test_a_password_is_stored_only_as_an_argon2id_hash(shopfront):
    stored = _stored(shopfront.engine, shopfront.usernames["rice"])
    assert stored.password_hash.startswith("$argon2id$")
    assert PASSWORD not in stored.password_hash


def test_signing_in_opens_a_session_that_finds_its_account(shopfront):
    username = shopfront.usernames["rice"]
    opened = accounts.sign_in(shopfront.engine, username.upper() + " ", PASSWORD)

    found = accounts.find_session(shopfront.engine, opened.token)

    assert found.account.username == username
    assert (found.account.kind, found.account.principal) == ("shop", "rice")
    assert found.csrf_token == opened.signed_in.csrf_token and len(found.csrf_token) >= 40
    with read_transaction(shopfront.engine) as db:
        stored = db.execute(select(StaffSession.token_sha256)).scalars().all()
    assert opened.token.encode() not in stored


def test_an_unknown_username_and_a_wrong_password_get_the_same_refusal(shopfront):
    with pytest.raises(BadCredentials) as unknown:
        accounts.sign_in(shopfront.engine, "nobody-at-all", PASSWORD)
    with pytest.raises(BadCredentials) as wrong:
        accounts.sign_in(shopfront.engine, shopfront.usernames["rice"], "not the password")
    assert unknown.value.message == wrong.value.message
    assert wrong.value.details == {"attempts_left": MAX_FAILED_SIGN_INS - 1}


def test_repeated_wrong_passwords_lock_the_account_even_against_the_right_one(shopfront):
    username = shopfront.usernames["rice"]
    for _ in range(MAX_FAILED_SIGN_INS - 1):
        with pytest.raises(BadCredentials):
            accounts.sign_in(shopfront.engine, username, "wrong password")
    with pytest.raises(AccountLocked) as locked:
        accounts.sign_in(shopfront.engine, username, "wrong password")

    with pytest.raises(AccountLocked):
        accounts.sign_in(shopfront.engine, username, PASSWORD)

    until = datetime.fromisoformat(locked.value.details["locked_until"].replace("Z", "+00:00"))
    assert timedelta(minutes=LOCKOUT_MINUTES - 1) < until - datetime.now(UTC) <= timedelta(
        minutes=LOCKOUT_MINUTES)
    later = until + timedelta(seconds=1)
    assert accounts.sign_in(shopfront.engine, username, PASSWORD, now=later).token
    assert _stored(shopfront.engine, username).failed_sign_ins == 0


def test_failures_counted_by_many_workers_at_once_all_count(shopfront):
    username = shopfront.usernames["oil"]
    barrier = threading.Barrier(MAX_FAILED_SIGN_INS + 2)

    def wrong_password(_):
        barrier.wait()
        try:
            accounts.sign_in(shopfront.engine, username, "wrong password")
        except errors.LedgerError as refusal:
            return refusal.code

    with ThreadPoolExecutor(max_workers=MAX_FAILED_SIGN_INS + 2) as pool:
        codes = list(pool.map(wrong_password, range(MAX_FAILED_SIGN_INS + 2)))

    assert "account_locked" in codes
    assert _stored(shopfront.engine, username).locked_until is not None
    with pytest.raises(AccountLocked):
        accounts.sign_in(shopfront.engine, username, PASSWORD)


def test_a_success_resets_the_count_of_failures(shopfront):
    username = shopfront.usernames["rice"]
    for _ in range(MAX_FAILED_SIGN_INS - 1):
        with pytest.raises(BadCredentials):
            accounts.sign_in(shopfront.engine, username, "wrong password")
    accounts.sign_in(shopfront.engine, username, PASSWORD)
    with pytest.raises(BadCredentials) as refused:
        accounts.sign_in(shopfront.engine, username, "wrong password")
    assert refused.value.details["attempts_left"] == MAX_FAILED_SIGN_INS - 1


def test_a_disabled_account_is_told_so_only_after_the_right_password(shopfront):
    username = shopfront.usernames["rice"]
    opened = accounts.sign_in(shopfront.engine, username, PASSWORD)
    accounts.disable(shopfront.engine, username)

    assert accounts.find_session(shopfront.engine, opened.token) is None
    with pytest.raises(BadCredentials):
        accounts.sign_in(shopfront.engine, username, "wrong password")
    with pytest.raises(AccountDisabled):
        accounts.sign_in(shopfront.engine, username, PASSWORD)


def test_a_new_password_ends_the_sessions_and_lifts_a_lock(shopfront):
    username = shopfront.usernames["rice"]
    opened = accounts.sign_in(shopfront.engine, username, PASSWORD)
    for _ in range(MAX_FAILED_SIGN_INS):
        with pytest.raises((BadCredentials, AccountLocked)):
            accounts.sign_in(shopfront.engine, username, "wrong password")

    accounts.set_password(shopfront.engine, username, "a new password")

    assert accounts.find_session(shopfront.engine, opened.token) is None
    assert accounts.sign_in(shopfront.engine, username, "a new password").token
    with pytest.raises(BadCredentials):
        accounts.sign_in(shopfront.engine, username, PASSWORD)


def test_unlock_lifts_a_lock(shopfront):
    username = shopfront.usernames["rice"]
    for _ in range(MAX_FAILED_SIGN_INS):
        with pytest.raises((BadCredentials, AccountLocked)):
            accounts.sign_in(shopfront.engine, username, "wrong password")
    accounts.unlock(shopfront.engine, username)
    assert accounts.sign_in(shopfront.engine, username, PASSWORD).token


def test_signing_out_ends_the_session(shopfront):
    opened = accounts.sign_in(shopfront.engine, shopfront.usernames["organiser"], PASSWORD)
    accounts.end_session(shopfront.engine, opened.signed_in.session_id)
    assert accounts.find_session(shopfront.engine, opened.token) is None


def test_a_staff_session_expires_and_a_shop_session_is_renewed_while_used(shopfront):
    now = datetime.now(UTC)
    staff = accounts.sign_in(shopfront.engine, shopfront.usernames["organiser"], PASSWORD,
                             now=now)
    shop = accounts.sign_in(shopfront.engine, shopfront.usernames["rice"], PASSWORD, now=now)

    hours = timedelta(hours=accounts.STAFF_SESSION_HOURS)
    assert accounts.find_session(shopfront.engine, staff.token, now=now + hours * 0.9)
    assert accounts.find_session(shopfront.engine, staff.token, now=now + hours) is None

    days = timedelta(days=accounts.SHOP_SESSION_DAYS)
    early = accounts.find_session(shopfront.engine, shop.token, now=now + days * 0.4)
    assert not early.renewed
    late = accounts.find_session(shopfront.engine, shop.token, now=now + days * 0.8)
    assert late.renewed  # now valid until 1.8 lifetimes from the sign-in
    assert accounts.find_session(shopfront.engine, shop.token, now=now + days * 1.85) is None


@pytest.mark.parametrize("token", [None, "", "x" * 1000, "not-a-session-token"])
def test_a_cookie_that_is_no_session_finds_nothing(shopfront, token):
    assert accounts.find_session(shopfront.engine, token) is None


def test_a_shop_account_needs_a_shop_and_usernames_and_passwords_have_rules(shopfront):
    create = dict(programme=shopfront.code, kind="shop", principal="rice",
                  display_name="till", password=PASSWORD)
    with pytest.raises(UnknownShop):
        accounts.create_account(shopfront.engine, username=f"x-{shopfront.code}",
                                **create | {"principal": "no-such-shop"})
    with pytest.raises(errors.AlreadyExists):
        accounts.create_account(shopfront.engine, username=shopfront.usernames["rice"], **create)
    for username in ("a", "has space", "含中文", "-leading", "x" * 65):
        with pytest.raises(errors.InvalidEntry):
            accounts.create_account(shopfront.engine, username=username, **create)
    for password in ("short", "x" * 201, "nul\x00inside"):
        with pytest.raises(errors.InvalidEntry):
            accounts.create_account(shopfront.engine, username=f"y-{shopfront.code}",
                                    **create | {"password": password})
    with pytest.raises(errors.InvalidEntry):
        accounts.create_account(shopfront.engine, username=f"z-{shopfront.code}",
                                **create | {"kind": "staff", "principal": "system:root"})
