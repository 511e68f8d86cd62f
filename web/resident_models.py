"""Residents' access codes (the QR code on a points card) and the wallet sessions they open.

A code is a long random secret that opens one member's wallet; only its
SHA-256 is stored, so the database cannot give it back, and a lost card is
replaced by a new code (the old one is revoked at the same time). At most
one code per member is live: a partial unique index says so, whatever the
Python does. A wallet session is a random token in the resident's browser,
stored as its SHA-256 with the session's CSRF token and expiry, as staff
sessions are (web/models.py); it lasts only while its code is live.
"""

from __future__ import annotations

from sqlalchemy import ForeignKey, Index, Integer, LargeBinary, String, text
from sqlalchemy.orm import Mapped, mapped_column

from ledger.models import Base


class ResidentCode(Base):
    """The code printed on `member_id`'s points card, as its SHA-256; revoked when replaced."""

    __tablename__ = "resident_codes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    programme_id: Mapped[int] = mapped_column(ForeignKey("programmes.id"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    code_sha256: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    issued_by: Mapped[str] = mapped_column(String(200))
    """Who made the card: a staff principal, or `system:<label>` from the command line."""
    issued_at: Mapped[str] = mapped_column(String(32))
    revoked_at: Mapped[str | None] = mapped_column(String(32))

    __table_args__ = (
        Index("resident_codes_one_live", "member_id", unique=True,
              sqlite_where=text("revoked_at IS NULL"),
              postgresql_where=text("revoked_at IS NULL")),
    )


class ResidentSession(Base):
    """A browser that opened a wallet with a code: its token's SHA-256, CSRF token, expiry."""

    __tablename__ = "resident_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_sha256: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    code_id: Mapped[int] = mapped_column(ForeignKey("resident_codes.id"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[str] = mapped_column(String(32))
    expires_at: Mapped[str] = mapped_column(String(32))
    ended_at: Mapped[str | None] = mapped_column(String(32))
    """Set when the resident leaves the wallet on this browser."""
