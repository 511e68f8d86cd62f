"""Staff sign-ins: accounts, passwords, lockout after repeated failures, sessions.

An account acts as an API principal (web/models.py): its roles are the
principal's grants, read afresh on every request as for an API key, so a
grant given or withdrawn takes effect at once in the API and in the pages
alike. A `shop` account is a shop's device and acts for that shop.

Lockout. `MAX_FAILED_SIGN_INS` wrong passwords in a row lock the account for
`LOCKOUT_MINUTES`; while locked, even the right password is refused, and
attempts do not extend the lock. The count is kept in the account's row and
raised by an `UPDATE … SET failed_sign_ins = failed_sign_ins + 1`, so
workers signing in at once all count and the database decides which failure
locks. A success resets the count, unless a lock came first.

Sessions. Signing in makes a new random token (the browser's cookie); only
its SHA-256 is stored, beside the session's CSRF token. Staff sessions last
`STAFF_SESSION_HOURS`; a shop device's lasts `SHOP_SESSION_DAYS` and is
renewed when used in its second half, so a till used every week never has
to sign in again. Signing out, a new password and disabling an account end
sessions at once (the row is read on every request).

Refusals, each a `LedgerError` with its code: `bad_credentials` (unknown
username or wrong password: not told apart), `account_locked` (with
`locked_until`), `account_disabled` (only told after the right password),
`unknown_account`, `already_exists`, `invalid_entry`.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection, Engine

from ledger import errors
from ledger.entry_format import format_timestamp
from ledger.models import Programme
from ledger.organisation import SYSTEM_PREFIX
from ledger.programmes import get_programme
from ledger.storage import read_transaction, write_transaction
from redemption.shops import get_shop
from web import passwords
from web.models import StaffAccount, StaffSession

STAFF = "staff"
SHOP = "shop"
KINDS = (STAFF, SHOP)
MAX_FAILED_SIGN_INS = 5
LOCKOUT_MINUTES = 15
STAFF_SESSION_HOURS = 12
SHOP_SESSION_DAYS = 90
MAX_TOKEN_CHARS = 64
"""A session token is 43 characters; anything much longer is not one of ours."""
_USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")


class BadCredentials(errors.LedgerError):
    """The username is unknown or the password is wrong (the two are not told apart)."""

    code = "bad_credentials"


class AccountLocked(errors.LedgerError):
    """Too many wrong passwords in a row; `details['locked_until']` says until when."""

    code = "account_locked"


class AccountDisabled(errors.LedgerError):
    code = "account_disabled"


class UnknownAccount(errors.LedgerError):
    code = "unknown_account"


@dataclass(frozen=True)
class Account:
    id: int
    username: str
    programme: str
    kind: str
    principal: str
    display_name: str
    created_at: str
    locked_until: str | None
    disabled_at: str | None


@dataclass(frozen=True)
class SignedIn:
    """A live session and the account it belongs to."""

    account: Account
    session_id: int
    csrf_token: str
    expires_at: str
    renewed: bool = False
    """True when this lookup pushed a shop session's expiry on (the cookie must follow)."""


@dataclass(frozen=True)
class NewSession:
    signed_in: SignedIn
    token: str
    """The cookie's value: exists only here and in the browser."""


def create_account(engine: Engine, *, username: str, programme: str, kind: str, principal: str,
                   display_name: str, password: str) -> Account:
    """Add an account acting as `principal` of `programme`.

    A `shop` account's principal must be a shop of the programme. Raises
    `InvalidEntry`, `UnknownProgramme`, `UnknownShop`, `AlreadyExists`.
    """
    username = normalise_username(username)
    if kind not in KINDS:
        raise errors.InvalidEntry(f"kind must be one of {', '.join(KINDS)}", field="kind")
    for name, value in (("principal", principal), ("display_name", display_name)):
        _check_text(value, name)
    if kind == STAFF and principal.startswith(SYSTEM_PREFIX):
        raise errors.InvalidEntry(f"staff principals may not start with {SYSTEM_PREFIX}",
                                  field="principal")
    if kind == SHOP:
        get_shop(engine, programme, principal)
    password_hash = passwords.hash_password(_checked_password(password))
    now = format_timestamp(datetime.now(UTC))
    with write_transaction(engine) as connection:
        programme_id = get_programme(connection, programme).id
        if _find(connection, username) is not None:
            raise errors.AlreadyExists(f"an account {username!r} already exists",
                                       username=username)
        connection.execute(insert(StaffAccount).values(
            username=username, programme_id=programme_id, kind=kind, principal=principal,
            display_name=display_name, password_hash=password_hash, failed_sign_ins=0,
            created_at=now))
        return _account(_find(connection, username))


def get_account(engine: Engine, username: str) -> Account:
    """Raises `UnknownAccount`."""
    with read_transaction(engine) as connection:
        row = _find(connection, normalise_username(username))
    if row is None:
        raise UnknownAccount(f"no account {username!r}", username=username)
    return _account(row)


def list_accounts(engine: Engine, programme: str | None = None) -> list[Account]:
    with read_transaction(engine) as connection:
        query = _account_query().order_by(StaffAccount.username)
        if programme is not None:
            query = query.where(Programme.code == programme)
        return [_account(row) for row in connection.execute(query)]


def sign_in(engine: Engine, username: str, password: str,
            now: datetime | None = None) -> NewSession:
    """Check the password and open a session; count a failure and lock after too many.

    Raises `BadCredentials`, `AccountLocked`, `AccountDisabled`.
    """
    now = now or datetime.now(UTC)
    moment = format_timestamp(now)
    try:
        username = normalise_username(username)
    except errors.InvalidEntry:
        username = None
    with read_transaction(engine) as connection:
        row = _find(connection, username) if username else None
    unusable = not isinstance(password, str) or len(password) > passwords.MAX_PASSWORD_CHARS
    if row is None or unusable:
        passwords.spend_the_time_of_a_check(password if isinstance(password, str) else "")
        raise BadCredentials("the username or the password is wrong")
    if row.locked_until is not None and row.locked_until > moment:
        raise _locked(row.username, row.locked_until)
    if not passwords.verify_password(row.password_hash, password):
        _refuse_wrong_password(engine, row.id, now)
    if row.disabled_at is not None:
        raise AccountDisabled(f"the account {row.username!r} is disabled",
                              username=row.username)
    new_hash = (passwords.hash_password(password) if passwords.needs_rehash(row.password_hash)
                else None)
    token = secrets.token_urlsafe(32)
    csrf_token = secrets.token_urlsafe(32)
    expires_at = format_timestamp(now + _lifetime(row.kind))
    with write_transaction(engine) as connection:
        reset = (update(StaffAccount)
                 .where(StaffAccount.id == row.id,
                        (StaffAccount.locked_until.is_(None))
                        | (StaffAccount.locked_until <= moment))
                 .values(failed_sign_ins=0, locked_until=None))
        if new_hash is not None:
            reset = reset.values(password_hash=new_hash)
        if connection.execute(reset).rowcount != 1:
            locked_until = connection.execute(select(StaffAccount.locked_until).where(
                StaffAccount.id == row.id)).scalar_one()
            raise _locked(row.username, locked_until)
        session_id = connection.execute(insert(StaffSession).values(
            token_sha256=_digest(token), account_id=row.id, csrf_token=csrf_token,
            created_at=moment, expires_at=expires_at).returning(StaffSession.id)).scalar_one()
    return NewSession(SignedIn(_account(row), session_id, csrf_token, expires_at), token)


def find_session(engine: Engine, token: str | None,
                 now: datetime | None = None) -> SignedIn | None:
    """The live session whose cookie holds `token`, or None (unknown, ended, expired, or
    its account disabled). A shop session in its second half is renewed."""
    if not token or len(token) > MAX_TOKEN_CHARS:
        return None
    now = now or datetime.now(UTC)
    moment = format_timestamp(now)
    with read_transaction(engine) as connection:
        row = connection.execute(
            _account_query().add_columns(StaffSession.id.label("session_id"),
                                         StaffSession.csrf_token, StaffSession.expires_at)
            .join(StaffSession, StaffSession.account_id == StaffAccount.id)
            .where(StaffSession.token_sha256 == _digest(token),
                   StaffSession.ended_at.is_(None), StaffSession.expires_at > moment,
                   StaffAccount.disabled_at.is_(None))
        ).first()
    if row is None:
        return None
    lifetime = _lifetime(row.kind)
    expires_at, renewed = row.expires_at, False
    if row.kind == SHOP and row.expires_at < format_timestamp(now + lifetime / 2):
        expires_at, renewed = format_timestamp(now + lifetime), True
        with write_transaction(engine) as connection:
            connection.execute(update(StaffSession).where(StaffSession.id == row.session_id)
                               .values(expires_at=expires_at))
    return SignedIn(_account(row), row.session_id, row.csrf_token, expires_at, renewed)


def end_session(engine: Engine, session_id: int) -> None:
    """Sign out: the session's cookie opens nothing any more."""
    with write_transaction(engine) as connection:
        connection.execute(update(StaffSession)
                           .where(StaffSession.id == session_id, StaffSession.ended_at.is_(None))
                           .values(ended_at=format_timestamp(datetime.now(UTC))))


def set_password(engine: Engine, username: str, password: str) -> Account:
    """A new password; ends the account's sessions and lifts a lockout. Raises
    `UnknownAccount`, `InvalidEntry`."""
    new_hash = passwords.hash_password(_checked_password(password))
    return _change(engine, username, password_hash=new_hash, failed_sign_ins=0,
                   locked_until=None, end_sessions=True)


def unlock(engine: Engine, username: str) -> Account:
    """Lift a lockout now (the person proved who they are another way)."""
    return _change(engine, username, failed_sign_ins=0, locked_until=None)


def disable(engine: Engine, username: str) -> Account:
    """No more sign-ins, and the account's sessions end. Raises `UnknownAccount`."""
    return _change(engine, username, disabled_at=format_timestamp(datetime.now(UTC)),
                   end_sessions=True)


def normalise_username(username: str) -> str:
    """What is stored and compared: lower case, without surrounding spaces.

    Raises `InvalidEntry` unless 2-64 characters of a-z, 0-9, '.', '_', '-'.
    """
    cleaned = username.strip().lower() if isinstance(username, str) else ""
    if not _USERNAME.match(cleaned):
        raise errors.InvalidEntry("a username is 2-64 characters of a-z, 0-9, '.', '_' or '-', "
                                  "starting with a letter or digit", field="username")
    return cleaned



def _checked_password(password: str) -> str:
    if not isinstance(password, str) or not (
            passwords.MIN_PASSWORD_CHARS <= len(password) <= passwords.MAX_PASSWORD_CHARS):
        raise errors.InvalidEntry(f"a password is {passwords.MIN_PASSWORD_CHARS}-"
                                  f"{passwords.MAX_PASSWORD_CHARS} characters", field="password")
    if "\x00" in password:
        raise errors.InvalidEntry("a password must not contain NUL", field="password")
    return password


def _refuse_wrong_password(engine: Engine, account_id: int, now: datetime) -> None:
    """Count one wrong password; lock the account if it was one too many. Always raises."""
    locked_until = None
    with write_transaction(engine) as connection:
        failures = connection.execute(
            update(StaffAccount).where(StaffAccount.id == account_id)
            .values(failed_sign_ins=StaffAccount.failed_sign_ins + 1)
            .returning(StaffAccount.failed_sign_ins, StaffAccount.username)
        ).one()
        if failures.failed_sign_ins >= MAX_FAILED_SIGN_INS:
            locked_until = format_timestamp(now + timedelta(minutes=LOCKOUT_MINUTES))
            connection.execute(update(StaffAccount).where(StaffAccount.id == account_id)
                               .values(failed_sign_ins=0, locked_until=locked_until))
    if locked_until is not None:
        raise _locked(failures.username, locked_until)
    raise BadCredentials("the username or the password is wrong",
                         attempts_left=MAX_FAILED_SIGN_INS - failures.failed_sign_ins)


def _locked(username: str, locked_until: str) -> AccountLocked:
    return AccountLocked(f"too many wrong passwords: the account {username!r} is locked until "
                         f"{locked_until}", username=username, locked_until=locked_until)


def _change(engine: Engine, username: str, end_sessions: bool = False, **values) -> Account:
    username = normalise_username(username)
    with write_transaction(engine) as connection:
        row = _find(connection, username)
        if row is None:
            raise UnknownAccount(f"no account {username!r}", username=username)
        connection.execute(update(StaffAccount).where(StaffAccount.id == row.id).values(values))
        if end_sessions:
            connection.execute(update(StaffSession)
                               .where(StaffSession.account_id == row.id,
                                      StaffSession.ended_at.is_(None))
                               .values(ended_at=format_timestamp(datetime.now(UTC))))
        return _account(_find(connection, username))


def session_seconds(kind: str) -> int:
    """How long a new (or renewed) session of an account of `kind` lasts."""
    return int(_lifetime(kind).total_seconds())


def _lifetime(kind: str) -> timedelta:
    return timedelta(days=SHOP_SESSION_DAYS) if kind == SHOP else timedelta(
        hours=STAFF_SESSION_HOURS)


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _check_text(value: str, name: str) -> None:
    if not isinstance(value, str) or not value.strip() or len(value) > 200 or "\x00" in value:
        raise errors.InvalidEntry(f"{name} must be 1-200 characters, without NUL", field=name)


def _account_query():
    return (select(StaffAccount.id, StaffAccount.username, Programme.code.label("programme"),
                   StaffAccount.kind, StaffAccount.principal, StaffAccount.display_name,
                   StaffAccount.created_at, StaffAccount.locked_until, StaffAccount.disabled_at,
                   StaffAccount.password_hash)
            .join(Programme, Programme.id == StaffAccount.programme_id))


def _find(connection: Connection, username: str):
    return connection.execute(_account_query().where(StaffAccount.username == username)).first()


def _account(row) -> Account:
    return Account(row.id, row.username, row.programme, row.kind, row.principal,
                   row.display_name, row.created_at, row.locked_until, row.disabled_at)
