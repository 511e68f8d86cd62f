"""The ledger's tables, as SQLAlchemy 2 declarative models.

Every table is keyed by programme first, so programmes (one hash chain each)
can later be spread over database nodes by that column. Entries and postings
are append-only: the database refuses UPDATE and DELETE on them (triggers in
the first migration). Points are integers (BigInteger) everywhere; timestamps
that are hashed are stored as the exact text that was hashed, so a verifier
can rebuild the canonical bytes from the columns alone.
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
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

CODE_LENGTH = 64
"""Longest code (programme, unit, member, household); account codes add a prefix."""


class Base(DeclarativeBase):
    pass


class Programme(Base):
    """One points scheme (tenant) with its own chain, accounts and time zone."""

    __tablename__ = "programmes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(CODE_LENGTH), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    time_zone: Mapped[str] = mapped_column(String(64), default="Asia/Shanghai")
    created_at: Mapped[str] = mapped_column(String(32))
    notice_days: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    """Days an approved claim is shown on the public-notice board (公示) before it posts."""
    expiry_policy: Mapped[str] = mapped_column(String(32), default="never",
                                               server_default="never")
    """`never`, `months:N` (N months after the award) or `years:N` (end of the Nth
    calendar year counting the award's year as the first)."""


class ChainHead(Base):
    """The tip of a programme's chain: the row appends lock.

    `size` is the number of entries (the next `seq`); `head_hash` the leaf hash
    of entry `size - 1`; `frontier` the Merkle compact range (see
    `ledger.merkle.Frontier`) from which the root at `size` follows.
    """

    __tablename__ = "chain_heads"

    programme_id: Mapped[int] = mapped_column(ForeignKey("programmes.id"), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    head_hash: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    frontier: Mapped[bytes] = mapped_column(LargeBinary, default=b"")
    updated_at: Mapped[str] = mapped_column(String(32))

    __table_args__ = (CheckConstraint("size >= 0", name="chain_size_not_negative"),)


class Unit(Base):
    """A node of the organisation tree (city … village, grid, building)."""

    __tablename__ = "units"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    programme_id: Mapped[int] = mapped_column(ForeignKey("programmes.id"))
    code: Mapped[str] = mapped_column(String(CODE_LENGTH))
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"))
    path: Mapped[str] = mapped_column(String(2000), default="", server_default="")
    """Codes from the root down, `/town/village/`: a subtree is a path prefix."""

    __table_args__ = (UniqueConstraint("programme_id", "code"),)


class Household(Base):
    """A household (户): boards and caps can count by it."""

    __tablename__ = "households"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    programme_id: Mapped[int] = mapped_column(ForeignKey("programmes.id"))
    code: Mapped[str] = mapped_column(String(CODE_LENGTH))
    name: Mapped[str] = mapped_column(String(200))
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"))

    __table_args__ = (UniqueConstraint("programme_id", "code"),)


class Member(Base):
    """A resident or volunteer; owns exactly one `member:<code>` account."""

    __tablename__ = "members"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    programme_id: Mapped[int] = mapped_column(ForeignKey("programmes.id"))
    code: Mapped[str] = mapped_column(String(CODE_LENGTH))
    name: Mapped[str] = mapped_column(String(200))
    household_id: Mapped[int] = mapped_column(ForeignKey("households.id"))
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"))

    __table_args__ = (UniqueConstraint("programme_id", "code"),)


class Account(Base):
    """A double-entry account: `issuance`, `penalty`, `member:<code>`, ..."""

    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    programme_id: Mapped[int] = mapped_column(ForeignKey("programmes.id"))
    code: Mapped[str] = mapped_column(String(CODE_LENGTH + 16))
    kind: Mapped[str] = mapped_column(String(16))
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"))

    __table_args__ = (UniqueConstraint("programme_id", "code"),)


class Balance(Base):
    """Cached figures of an account, updated in the append transaction.

    `balance_points` is what can be spent; `score_points` is what boards rank
    (awards minus deductions, never lowered by spending). Both can always be
    recomputed from postings; verification does exactly that.
    """

    __tablename__ = "balances"

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), primary_key=True)
    programme_id: Mapped[int] = mapped_column(ForeignKey("programmes.id"))
    balance_points: Mapped[int] = mapped_column(BigInteger, default=0)
    score_points: Mapped[int] = mapped_column(BigInteger, default=0)


class Entry(Base):
    """One appended record of a chain; see docs/FORMAT.md for the hashed bytes."""

    __tablename__ = "entries"

    programme_id: Mapped[int] = mapped_column(ForeignKey("programmes.id"), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(200))
    occurred_at: Mapped[str] = mapped_column(String(32))
    recorded_at: Mapped[str] = mapped_column(String(32))
    evidence: Mapped[str | None] = mapped_column(String(256))
    memo: Mapped[str] = mapped_column(Text)
    metadata_json: Mapped[str] = mapped_column(Text)
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    content_digest: Mapped[bytes] = mapped_column(LargeBinary(32))
    reverses_seq: Mapped[int | None] = mapped_column(BigInteger)
    rule_code: Mapped[str | None] = mapped_column(String(CODE_LENGTH))
    rule_version: Mapped[int | None] = mapped_column(Integer)
    rule_quantity: Mapped[int | None] = mapped_column(BigInteger)
    approver: Mapped[str | None] = mapped_column(String(200))
    prev_hash: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))

    __table_args__ = (
        # Partial: most entries have neither, and a full index on (programme_id, NULL)
        # misleads PostgreSQL's planner into using it for (programme_id, seq) lookups.
        Index("entries_idempotency_key", "programme_id", "idempotency_key", unique=True,
              sqlite_where=text("idempotency_key IS NOT NULL"),
              postgresql_where=text("idempotency_key IS NOT NULL")),
        Index("entries_reversed_once", "programme_id", "reverses_seq", unique=True,
              sqlite_where=text("reverses_seq IS NOT NULL"),
              postgresql_where=text("reverses_seq IS NOT NULL")),
        CheckConstraint("seq >= 0", name="entries_seq_not_negative"),
    )


class Posting(Base):
    """One leg of an entry: `amount_points` added to one account's balance."""

    __tablename__ = "postings"

    programme_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    entry_seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    position: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    amount_points: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (
        # Deferred: postings are inserted before their entry, so the entry's
        # insert trigger can refuse it unless its postings sum to zero.
        ForeignKeyConstraint(
            ["programme_id", "entry_seq"],
            ["entries.programme_id", "entries.seq"],
            deferrable=True,
            initially="DEFERRED",
        ),
        CheckConstraint("amount_points <> 0", name="postings_amount_not_zero"),
        Index("postings_by_account", "account_id", "entry_seq"),
    )


class RuleVersion(Base):
    """One version of a scoring rule; the same definition is in the chain's admin entry."""

    __tablename__ = "rule_versions"

    programme_id: Mapped[int] = mapped_column(ForeignKey("programmes.id"), primary_key=True)
    code: Mapped[str] = mapped_column(String(CODE_LENGTH), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    definition_json: Mapped[str] = mapped_column(Text)
    entry_seq: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (
        ForeignKeyConstraint(["programme_id", "entry_seq"],
                             ["entries.programme_id", "entries.seq"]),
    )


class Grant(Base):
    """A role (organiser, reviewer, admin, auditor) held by a principal on a unit's subtree."""

    __tablename__ = "grants"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    programme_id: Mapped[int] = mapped_column(ForeignKey("programmes.id"))
    principal: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"))
    created_at: Mapped[str] = mapped_column(String(32))
    revoked_at: Mapped[str | None] = mapped_column(String(32))

    __table_args__ = (
        Index("grants_by_principal", "programme_id", "principal"),
        Index("grants_active_once", "programme_id", "principal", "role", "unit_id", unique=True,
              sqlite_where=text("revoked_at IS NULL"),
              postgresql_where=text("revoked_at IS NULL")),
    )


class Claim(Base):
    """An award or deduction waiting for a second person (待审核), then a notice window (公示).

    Workflow state, not ledger: nothing here touches a balance until the claim
    posts, and then only through the chain.
    """

    __tablename__ = "claims"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    programme_id: Mapped[int] = mapped_column(ForeignKey("programmes.id"))
    status: Mapped[str] = mapped_column(String(16))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    rule_code: Mapped[str] = mapped_column(String(CODE_LENGTH))
    quantity: Mapped[int | None] = mapped_column(BigInteger)
    points: Mapped[int] = mapped_column(BigInteger)
    occurred_at: Mapped[str] = mapped_column(String(32))
    evidence: Mapped[str | None] = mapped_column(String(256))
    memo: Mapped[str] = mapped_column(Text)
    proposer: Mapped[str] = mapped_column(String(200))
    proposed_at: Mapped[str] = mapped_column(String(32))
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    decided_by: Mapped[str | None] = mapped_column(String(200))
    decided_at: Mapped[str | None] = mapped_column(String(32))
    notice_until: Mapped[str | None] = mapped_column(String(32))
    reason: Mapped[str | None] = mapped_column(Text)
    entry_seq: Mapped[int | None] = mapped_column(BigInteger)

    __table_args__ = (
        UniqueConstraint("programme_id", "idempotency_key", name="claims_idempotency_key"),
        Index("claims_by_status", "programme_id", "status"),
    )


class Objection(Base):
    """An objection raised against a claim during its public-notice window."""

    __tablename__ = "objections"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    claim_id: Mapped[int] = mapped_column(ForeignKey("claims.id"))
    programme_id: Mapped[int] = mapped_column(ForeignKey("programmes.id"))
    raised_by: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text)
    raised_at: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    resolved_by: Mapped[str | None] = mapped_column(String(200))
    resolved_at: Mapped[str | None] = mapped_column(String(32))


class ApiKey(Base):
    """A credential for the HTTP API; only a SHA-256 of its secret is kept.

    `kind` says whom it speaks for: `staff` (a principal whose roles come from
    grants), `member` (a resident, who reads only their own data), `shop`, or
    `operator` (the installation's operator, every role, no programme).
    """

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    programme_id: Mapped[int | None] = mapped_column(ForeignKey("programmes.id"))
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    secret_sha256: Mapped[bytes] = mapped_column(LargeBinary(32))
    kind: Mapped[str] = mapped_column(String(16))
    principal: Mapped[str] = mapped_column(String(200))
    label: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[str] = mapped_column(String(32))
    revoked_at: Mapped[str | None] = mapped_column(String(32))


class IdempotencyRecord(Base):
    """The response an API write gave, kept so a retry with the same key gets it again."""

    __tablename__ = "idempotency_records"

    api_key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id"), primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(200), primary_key=True)
    request_sha256: Mapped[bytes] = mapped_column(LargeBinary(32))
    status_code: Mapped[int] = mapped_column(Integer)
    response_body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[str] = mapped_column(String(32))
