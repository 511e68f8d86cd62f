"""Redemption's own tables, declared on the ledger's `Base` so one migration chain covers all.

The ledger's tables are never written from here: points move only through
`ledger.chain`, and these rows record what the points were moved *for*
(which voucher, which shop, which settlement). Every row that must change
together with an entry is written inside that entry's transaction, by the
append's guard or after-write callback, under the chain lock.

Database guards back the Python checks: stock never below zero, one
redemption per voucher (the primary key of `redemptions`), one signing key
per programme, short codes unique per programme.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from ledger.models import CODE_LENGTH, Base

VOUCHER_ID_LENGTH = 26
"""16 random bytes in lower-case base32 without padding."""
KEY_ID_LENGTH = 64
"""A PASERK `k4.pid.` string is 51 characters."""


class RedemptionSettings(Base):
    """A programme's points-to-money rate and default voucher validity; defaults apply
    while no row exists."""

    __tablename__ = "redemption_settings"

    programme_id: Mapped[int] = mapped_column(ForeignKey("programmes.id"), primary_key=True)
    fen_per_point: Mapped[int] = mapped_column(Integer)
    voucher_validity_days: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[str] = mapped_column(String(32))

    __table_args__ = (
        CheckConstraint("fen_per_point > 0", name="settings_rate_positive"),
        CheckConstraint("voucher_validity_days > 0", name="settings_validity_positive"),
    )


class Shop(Base):
    """A partner shop (合作商户) or the points supermarket (积分超市)."""

    __tablename__ = "shops"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    programme_id: Mapped[int] = mapped_column(ForeignKey("programmes.id"))
    code: Mapped[str] = mapped_column(String(CODE_LENGTH))
    name: Mapped[str] = mapped_column(String(200))
    units_json: Mapped[str] = mapped_column(Text)
    """JSON list of the unit codes the shop serves."""
    contact: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[str] = mapped_column(String(32))

    __table_args__ = (
        UniqueConstraint("programme_id", "code", name="shops_code_per_programme"),
        CheckConstraint("status IN ('active', 'suspended')", name="shops_status_known"),
    )


class CatalogItem(Base):
    """Something vouchers can be for: goods with stock, or a cash-off value."""

    __tablename__ = "catalog_items"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    programme_id: Mapped[int] = mapped_column(ForeignKey("programmes.id"))
    code: Mapped[str] = mapped_column(String(CODE_LENGTH))
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    price_points: Mapped[int] = mapped_column(BigInteger)
    value_fen: Mapped[int | None] = mapped_column(BigInteger)
    stock: Mapped[int | None] = mapped_column(BigInteger)

    __table_args__ = (
        UniqueConstraint("programme_id", "code", name="catalog_items_code_per_programme"),
        CheckConstraint("price_points > 0", name="catalog_items_price_positive"),
        CheckConstraint("stock IS NULL OR stock >= 0", name="catalog_items_stock_not_negative"),
        CheckConstraint(
            "(kind = 'goods' AND stock IS NOT NULL AND value_fen IS NULL)"
            " OR (kind = 'cash_off' AND stock IS NULL AND value_fen > 0)",
            name="catalog_items_kind_fields",
        ),
    )


class SigningKey(Base):
    """An Ed25519 key that signs a programme's voucher tokens.

    `status`: `signing` (the one key that signs new tokens), `retired` (signs
    no more, still published, still verifies), `withdrawn` (unpublished:
    tokens it signed are refused). `secret_seed` is NULL when the seed is kept
    in the key directory (`JIFEN_SIGNING_KEY_DIR`) instead of the database.
    """

    __tablename__ = "signing_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    programme_id: Mapped[int] = mapped_column(ForeignKey("programmes.id"))
    key_id: Mapped[str] = mapped_column(String(KEY_ID_LENGTH), unique=True)
    public_key: Mapped[bytes] = mapped_column(LargeBinary(32))
    secret_seed: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[str] = mapped_column(String(32))
    retired_at: Mapped[str | None] = mapped_column(String(32))
    withdrawn_at: Mapped[str | None] = mapped_column(String(32))

    __table_args__ = (
        CheckConstraint("status IN ('signing', 'retired', 'withdrawn')",
                        name="signing_keys_status_known"),
        Index("signing_keys_one_signing", "programme_id", unique=True,
              sqlite_where=text("status = 'signing'"),
              postgresql_where=text("status = 'signing'")),
    )


class Voucher(Base):
    """A voucher (抵扣券): points held for a member until redeemed, cancelled or expired."""

    __tablename__ = "vouchers"

    id: Mapped[str] = mapped_column(String(VOUCHER_ID_LENGTH), primary_key=True)
    programme_id: Mapped[int] = mapped_column(ForeignKey("programmes.id"))
    member_code: Mapped[str] = mapped_column(String(CODE_LENGTH))
    value_points: Mapped[int] = mapped_column(BigInteger)
    item_id: Mapped[int | None] = mapped_column(ForeignKey("catalog_items.id"))
    shops_json: Mapped[str | None] = mapped_column(Text)
    """JSON list of shop codes where it is valid; NULL for every shop."""
    status: Mapped[str] = mapped_column(String(16))
    short_code: Mapped[str] = mapped_column(String(11))
    key_id: Mapped[str] = mapped_column(String(KEY_ID_LENGTH))
    issued_at: Mapped[str] = mapped_column(String(32))
    expires_at: Mapped[str] = mapped_column(String(32))
    issue_seq: Mapped[int] = mapped_column(BigInteger)
    issue_key: Mapped[str | None] = mapped_column(String(200))
    lots_json: Mapped[str] = mapped_column(Text)
    """The (lot seq, points) the issue drew, as its entry's metadata names them."""
    closed_seq: Mapped[int | None] = mapped_column(BigInteger)
    """The first entry that returned the points (cancel or expiry)."""
    closed_at: Mapped[str | None] = mapped_column(String(32))

    __table_args__ = (
        ForeignKeyConstraint(["programme_id", "member_code"],
                             ["members.programme_id", "members.code"]),
        ForeignKeyConstraint(["programme_id", "issue_seq"],
                             ["entries.programme_id", "entries.seq"]),
        UniqueConstraint("programme_id", "short_code", name="vouchers_short_code_per_programme"),
        UniqueConstraint("programme_id", "issue_key", name="vouchers_issue_key_per_programme"),
        UniqueConstraint("programme_id", "issue_seq", name="vouchers_one_per_issue_entry"),
        CheckConstraint("value_points > 0", name="vouchers_value_positive"),
        CheckConstraint("status IN ('issued', 'redeemed', 'cancelled', 'expired')",
                        name="vouchers_status_known"),
        Index("vouchers_due", "programme_id", "status", "expires_at"),
    )


class Redemption(Base):
    """A voucher redeemed at a shop; the primary key makes a second redemption impossible."""

    __tablename__ = "redemptions"

    voucher_id: Mapped[str] = mapped_column(ForeignKey("vouchers.id"), primary_key=True)
    programme_id: Mapped[int] = mapped_column(ForeignKey("programmes.id"))
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id"))
    entry_seq: Mapped[int] = mapped_column(BigInteger)
    value_points: Mapped[int] = mapped_column(BigInteger)
    redeemed_at: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(200))
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    settlement_seq: Mapped[int | None] = mapped_column(BigInteger)
    """The settlement entry that paid the shop for it; NULL until settled."""

    __table_args__ = (
        ForeignKeyConstraint(["programme_id", "entry_seq"],
                             ["entries.programme_id", "entries.seq"]),
        ForeignKeyConstraint(["programme_id", "settlement_seq"],
                             ["settlements.programme_id", "settlements.entry_seq"]),
        UniqueConstraint("shop_id", "idempotency_key", name="redemptions_key_per_shop"),
        UniqueConstraint("programme_id", "entry_seq", name="redemptions_one_per_entry"),
        Index("redemptions_by_shop", "shop_id", "redeemed_at"),
    )


class Settlement(Base):
    """A payment to a shop for its redemptions in a period, and the entry that records it."""

    __tablename__ = "settlements"

    programme_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    entry_seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id"))
    period_start: Mapped[str] = mapped_column(String(10))
    period_end: Mapped[str] = mapped_column(String(10))
    redemption_count: Mapped[int] = mapped_column(Integer)
    total_points: Mapped[int] = mapped_column(BigInteger)
    fen_per_point: Mapped[int] = mapped_column(Integer)
    total_fen: Mapped[int] = mapped_column(BigInteger)
    payment_reference: Mapped[str] = mapped_column(String(200))
    actor: Mapped[str] = mapped_column(String(200))
    idempotency_key: Mapped[str] = mapped_column(String(200))
    settled_at: Mapped[str] = mapped_column(String(32))

    __table_args__ = (
        ForeignKeyConstraint(["programme_id", "entry_seq"],
                             ["entries.programme_id", "entries.seq"]),
        UniqueConstraint("programme_id", "idempotency_key", name="settlements_key_per_programme"),
        CheckConstraint("total_points > 0", name="settlements_total_positive"),
    )
