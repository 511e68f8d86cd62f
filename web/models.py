"""The pages' own tables: staff sign-ins and their sessions, on the ledger's `Base`.

A staff account is a username and password for a person (or a shop's
device) that acts as an API principal of one programme: `kind` `staff`
takes its roles and subtrees from that principal's grants, exactly as a
staff API key does; `kind` `shop` is a shop's scanning device, its
principal the shop's code. Nothing here grants anything.

Failed sign-ins are counted in the account's row, and a lockout is a time
in that row, so every gunicorn worker sees the same count and the same
lock. A session is a random token held by the browser in a cookie; only
its SHA-256 is stored, with the session's CSRF token and its expiry.
"""

from __future__ import annotations

from sqlalchemy import CheckConstraint, ForeignKey, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from ledger.models import Base

USERNAME_LENGTH = 64
PASSWORD_HASH_LENGTH = 200
"""An argon2id PHC string (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`) is about 100 characters."""


class StaffAccount(Base):
    """A person's or a shop device's sign-in, acting as `principal` in `programme_id`."""

    __tablename__ = "staff_accounts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(USERNAME_LENGTH), unique=True)
    """Lower case; what the person types."""
    programme_id: Mapped[int] = mapped_column(ForeignKey("programmes.id"))
    kind: Mapped[str] = mapped_column(String(16))
    principal: Mapped[str] = mapped_column(String(200))
    display_name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(PASSWORD_HASH_LENGTH))
    failed_sign_ins: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    """Wrong passwords in a row since the last success or lockout."""
    locked_until: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[str] = mapped_column(String(32))
    disabled_at: Mapped[str | None] = mapped_column(String(32))

    __table_args__ = (
        CheckConstraint("kind IN ('staff', 'shop')", name="staff_accounts_kind_known"),
        CheckConstraint("failed_sign_ins >= 0", name="staff_accounts_failures_not_negative"),
    )


class StaffSession(Base):
    """A signed-in browser: the SHA-256 of its cookie's token, its CSRF token, its expiry."""

    __tablename__ = "staff_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_sha256: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("staff_accounts.id"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[str] = mapped_column(String(32))
    expires_at: Mapped[str] = mapped_column(String(32))
    ended_at: Mapped[str | None] = mapped_column(String(32))
    """Set by signing out, a password change or disabling the account."""
