"""A resident's way into their wallet: the access code on their points card, no password.

The code is 20 characters of Crockford's base32 (100 random bits), printed
on the card as a QR code of the wallet's address (`/w#<code>`) and in
groups (`XXXXX-XXXXX-XXXXX-XXXXX`) for typing. The code travels after the
`#`, which a browser never sends: the page puts it into its form and posts
it, so it appears in no server's or proxy's log and in no Referer. It is read forgivingly, as
voucher short codes are (redemption/codes.py): case, spaces and hyphens do
not matter, `O` reads as `0`, `I` and `L` as `1`. 100 bits cannot be
guessed, so typed codes need no lockout.

Only the code's SHA-256 is stored (web/resident_models.py). A new card
revokes the member's old code in the same transaction; revoking a code
closes every wallet it opened at once, since a session is live only while
its code is. Opening a wallet starts a session (a random token in the
`jifen_wallet` cookie, with its own CSRF token) that acts as the member's
own API key would: `caller()` is a `member` principal, so the pages
authorise a resident exactly as `api.auth.require_member_access` does for a
member key, and a resident reads only their own data.

Refusals, each a `LedgerError` with its code: `unknown_code` (malformed,
unknown or revoked: not told apart), `no_live_code` (nothing to revoke),
and the ledger's `unknown_programme`, `unknown_member`.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Engine

from api.auth import Caller
from ledger import errors
from ledger.entry_format import format_timestamp
from ledger.keys import KeyHolder
from ledger.models import Household, Member, Programme
from ledger.organisation import find_member
from ledger.programmes import get_programme
from ledger.storage import read_transaction, write_transaction
from redemption.codes import ALPHABET
from web.resident_models import ResidentCode, ResidentSession

CODE_CHARS = 20
GROUP_CHARS = 5
WALLET_SESSION_DAYS = 30
"""A wallet stays open this long on a phone, renewed when used in its second half."""
MAX_TOKEN_CHARS = 64
MAX_ACTOR_CHARS = 200
PUBLIC_URL_VARIABLE = "JIFEN_PUBLIC_URL"
"""The address residents reach the pages at, for the links printed on cards."""
_ALIASES = str.maketrans({"O": "0", "I": "1", "L": "1"})


class UnknownCode(errors.LedgerError):
    """The code is malformed, unknown or revoked (the three are not told apart)."""

    code = "unknown_code"


class NoLiveCode(errors.LedgerError):
    """The member has no card code to revoke."""

    code = "no_live_code"


@dataclass(frozen=True)
class NewCode:
    code: str
    """Canonical (no hyphens): exists only here and on the card."""
    programme: str
    member: str
    name: str
    issued_at: str

    @property
    def display_code(self) -> str:
        return display(self.code)


@dataclass(frozen=True)
class LiveCode:
    """A member's live card code, without the code itself (it is not stored)."""

    programme: str
    member: str
    issued_by: str
    issued_at: str


@dataclass(frozen=True)
class Resident:
    """An open wallet: whose it is, and the session holding it open."""

    session_id: int
    code_id: int
    programme: str
    member: str
    name: str
    household: str
    csrf_token: str
    expires_at: str
    renewed: bool = False
    """True when this lookup pushed the session's expiry on (the cookie must follow)."""

    def caller(self) -> Caller:
        """The member principal the wallet acts as, as the member's own API key would."""
        return Caller(KeyHolder(self.code_id, "", "member", self.member, self.programme,
                                "resident card"))


@dataclass(frozen=True)
class NewWalletSession:
    resident: Resident
    token: str
    """The cookie's value: exists only here and in the browser."""


def new_code() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(CODE_CHARS))


def display(code: str) -> str:
    """`ABCDE-FGHJK-MNPQR-STVWX`: the canonical code in groups, as printed on the card."""
    return "-".join(code[start:start + GROUP_CHARS] for start in range(0, len(code), GROUP_CHARS))


def canonical(text: str) -> str | None:
    """The code `text` spells, or None when it cannot be one (wrong length or characters)."""
    if not isinstance(text, str) or len(text) > 3 * CODE_CHARS:
        return None
    cleaned = "".join(text.split()).replace("-", "").upper().translate(_ALIASES)
    if len(cleaned) != CODE_CHARS or any(symbol not in ALPHABET for symbol in cleaned):
        return None
    return cleaned


def issue_code(engine: Engine, programme: str, member: str, *, issued_by: str,
               code: str | None = None) -> NewCode:
    """A new card code for `member`; their old code (if any) stops working at once.

    `code` is for the demo only (fixed, documented codes); real codes are
    random. Raises `UnknownProgramme`, `UnknownMember`, `InvalidEntry`.
    """
    if not isinstance(issued_by, str) or not issued_by.strip() or (
            len(issued_by) > MAX_ACTOR_CHARS or "\x00" in issued_by):
        raise errors.InvalidEntry(f"issued_by must be 1-{MAX_ACTOR_CHARS} characters",
                                  field="issued_by")
    code = new_code() if code is None else canonical(code)
    if code is None:
        raise errors.InvalidEntry(f"a code is {CODE_CHARS} characters of {ALPHABET}",
                                  field="code")
    now = format_timestamp(datetime.now(UTC))
    with write_transaction(engine) as connection:
        programme_info = get_programme(connection, programme)
        record = find_member(connection, programme_info.id, member)
        connection.execute(update(ResidentCode)
                           .where(ResidentCode.member_id == record.id,
                                  ResidentCode.revoked_at.is_(None))
                           .values(revoked_at=now))
        connection.execute(insert(ResidentCode).values(
            programme_id=programme_info.id, member_id=record.id, code_sha256=_digest(code),
            issued_by=issued_by, issued_at=now))
    return NewCode(code, programme, member, record.name, now)


def revoke_code(engine: Engine, programme: str, member: str) -> None:
    """The member's card stops working, and every wallet it opened closes.

    Raises `UnknownProgramme`, `UnknownMember`, `NoLiveCode`.
    """
    with write_transaction(engine) as connection:
        programme_info = get_programme(connection, programme)
        record = find_member(connection, programme_info.id, member)
        revoked = connection.execute(
            update(ResidentCode)
            .where(ResidentCode.member_id == record.id, ResidentCode.revoked_at.is_(None))
            .values(revoked_at=format_timestamp(datetime.now(UTC)))).rowcount
    if revoked != 1:
        raise NoLiveCode(f"{member} has no card code to revoke", member=member)


def live_code(engine: Engine, programme: str, member: str) -> LiveCode | None:
    """When and by whom the member's live card was made; None if they have none.

    Raises `UnknownProgramme`, `UnknownMember`.
    """
    with read_transaction(engine) as connection:
        programme_info = get_programme(connection, programme)
        record = find_member(connection, programme_info.id, member)
        row = connection.execute(
            select(ResidentCode.issued_by, ResidentCode.issued_at)
            .where(ResidentCode.member_id == record.id, ResidentCode.revoked_at.is_(None))
        ).first()
    return None if row is None else LiveCode(programme, member, row.issued_by, row.issued_at)


def code_opens(engine: Engine, code: str) -> tuple[str, str] | None:
    """(programme, member) whose wallet `code` opens now, or None."""
    canonical_code = canonical(code)
    if canonical_code is None:
        return None
    with read_transaction(engine) as connection:
        row = connection.execute(
            select(Programme.code.label("programme"), Member.code.label("member"))
            .select_from(ResidentCode)
            .join(Member, Member.id == ResidentCode.member_id)
            .join(Programme, Programme.id == ResidentCode.programme_id)
            .where(ResidentCode.code_sha256 == _digest(canonical_code),
                   ResidentCode.revoked_at.is_(None))
        ).first()
    return None if row is None else (row.programme, row.member)


def open_wallet(engine: Engine, code: str, now: datetime | None = None) -> NewWalletSession:
    """Start a wallet session with a card's code. Raises `UnknownCode`."""
    canonical_code = canonical(code)
    if canonical_code is None:
        raise UnknownCode("that is not a card code")
    now = now or datetime.now(UTC)
    token = secrets.token_urlsafe(32)
    csrf_token = secrets.token_urlsafe(32)
    expires_at = format_timestamp(now + timedelta(days=WALLET_SESSION_DAYS))
    with write_transaction(engine) as connection:
        code_id = connection.execute(
            select(ResidentCode.id).where(ResidentCode.code_sha256 == _digest(canonical_code),
                                          ResidentCode.revoked_at.is_(None))
        ).scalar_one_or_none()
        if code_id is None:
            raise UnknownCode("the card code is unknown or was replaced")
        connection.execute(insert(ResidentSession).values(
            token_sha256=_digest(token), code_id=code_id, csrf_token=csrf_token,
            created_at=format_timestamp(now), expires_at=expires_at))
    resident = find_session(engine, token, now)
    if resident is None:  # revoked between the two transactions
        raise UnknownCode("the card code is unknown or was replaced")
    return NewWalletSession(resident, token)


def find_session(engine: Engine, token: str | None,
                 now: datetime | None = None) -> Resident | None:
    """The open wallet whose cookie holds `token`, or None (unknown, left, expired, or its
    code revoked). A session in its second half is renewed."""
    if not token or len(token) > MAX_TOKEN_CHARS:
        return None
    now = now or datetime.now(UTC)
    moment = format_timestamp(now)
    with read_transaction(engine) as connection:
        row = connection.execute(
            select(ResidentSession.id, ResidentSession.csrf_token, ResidentSession.expires_at,
                   ResidentCode.id.label("code_id"), Programme.code.label("programme"),
                   Member.code.label("member"), Member.name,
                   Household.name.label("household"))
            .join(ResidentCode, ResidentCode.id == ResidentSession.code_id)
            .join(Member, Member.id == ResidentCode.member_id)
            .join(Household, Household.id == Member.household_id)
            .join(Programme, Programme.id == ResidentCode.programme_id)
            .where(ResidentSession.token_sha256 == _digest(token),
                   ResidentSession.ended_at.is_(None), ResidentSession.expires_at > moment,
                   ResidentCode.revoked_at.is_(None))
        ).first()
    if row is None:
        return None
    lifetime = timedelta(days=WALLET_SESSION_DAYS)
    expires_at, renewed = row.expires_at, False
    if row.expires_at < format_timestamp(now + lifetime / 2):
        expires_at, renewed = format_timestamp(now + lifetime), True
        with write_transaction(engine) as connection:
            connection.execute(update(ResidentSession).where(ResidentSession.id == row.id)
                               .values(expires_at=expires_at))
    return Resident(row.id, row.code_id, row.programme, row.member, row.name, row.household,
                    row.csrf_token, expires_at, renewed)


def end_session(engine: Engine, session_id: int) -> None:
    """Leave the wallet on this browser: its cookie opens nothing any more."""
    with write_transaction(engine) as connection:
        connection.execute(update(ResidentSession)
                           .where(ResidentSession.id == session_id,
                                  ResidentSession.ended_at.is_(None))
                           .values(ended_at=format_timestamp(datetime.now(UTC))))


def session_seconds() -> int:
    return WALLET_SESSION_DAYS * 24 * 3600


def default_base_url() -> str:
    """Where the pages are reached: `JIFEN_PUBLIC_URL`, else the address `jifen serve` binds."""
    configured = os.environ.get(PUBLIC_URL_VARIABLE, "").strip()
    if configured:
        return configured.rstrip("/")
    return "http://" + os.environ.get("JIFEN_BIND", "127.0.0.1:8000")


def wallet_url(code: str, base_url: str | None = None) -> str:
    """The address the card's QR code holds: the code after `#`, never sent to a server."""
    return f"{(base_url or default_base_url()).rstrip('/')}/w#{code}"


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()
