"""The audit tables: checkpoint signing keys, signed checkpoints, stored Merkle nodes.

Declared on the ledger's `Base` (so one Alembic history covers them) and
created by migration 0005. Nothing here is ledger truth: every row can be
recomputed from the entries, and a row that lies makes a proof or a
checkpoint fail to verify rather than change a balance.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from ledger.models import Base


class CheckpointKey(Base):
    """An Ed25519 key that signs a programme's checkpoints, published as a signed-note vkey.

    `status`: `signing` (the one key that signs new checkpoints) or `retired`
    (signs no more, stays published so old checkpoints still verify).
    `secret_seed` is NULL when the seed lives in the key directory instead.
    """

    __tablename__ = "checkpoint_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    programme_id: Mapped[int] = mapped_column(ForeignKey("programmes.id"))
    name: Mapped[str] = mapped_column(String(200))
    """The signed-note key name (the checkpoint origin)."""
    vkey: Mapped[str] = mapped_column(String(300), unique=True)
    public_key: Mapped[bytes] = mapped_column(LargeBinary(32))
    secret_seed: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[str] = mapped_column(String(32))
    retired_at: Mapped[str | None] = mapped_column(String(32))

    __table_args__ = (
        CheckConstraint("status IN ('signing', 'retired')", name="checkpoint_keys_status_known"),
        Index("checkpoint_keys_one_signing", "programme_id", unique=True,
              sqlite_where=text("status = 'signing'"),
              postgresql_where=text("status = 'signing'")),
    )


class Checkpoint(Base):
    """A signed checkpoint of a programme's tree: at most one per size, never changed."""

    __tablename__ = "checkpoints"

    programme_id: Mapped[int] = mapped_column(ForeignKey("programmes.id"), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    root_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    note: Mapped[str] = mapped_column(Text)
    """The whole signed note, exactly as served."""
    key_id: Mapped[int] = mapped_column(ForeignKey("checkpoint_keys.id"))
    signed_at: Mapped[str] = mapped_column(String(32))

    __table_args__ = (CheckConstraint("size >= 0", name="checkpoints_size_not_negative"),)


class MerkleNode(Base):
    """The hash of a complete subtree at a tile boundary level (8, 16, 24, ...).

    Node (level, index) covers leaves [index * 2**level, (index + 1) * 2**level).
    Level 0 is the entries' own `hash` column; together they give any node of
    the tree from at most 256 stored hashes per 8 levels (see audit/tiles.py).
    """

    __tablename__ = "merkle_nodes"

    programme_id: Mapped[int] = mapped_column(ForeignKey("programmes.id"), primary_key=True)
    level: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    index: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))

    __table_args__ = (CheckConstraint("level > 0 AND level % 8 = 0",
                                      name="merkle_nodes_tile_level"),)
