"""The Ed25519 keys that sign a programme's vouchers: creation, rotation, publication.

Each programme has at most one `signing` key at a time (a partial unique
index says so to the database). Rotating makes a new signing key and
*retires* the old one: it signs nothing more, but stays published and still
verifies, so vouchers already handed out keep working until they expire.
*Withdrawing* a key (after a leak) unpublishes it: tokens it signed are
refused as `unknown_signing_key`, and a new signing key is made when the
next voucher is issued.

Where the secret lives. Only the 32-byte Ed25519 seed is secret. When
`JIFEN_SIGNING_KEY_DIR` names a directory, a new key's seed is written
there, one file per key, created with mode 0600 and never overwritten, and
the database keeps only the public key: a database dump or replica then
holds nothing that can sign. Without it (the demo, the tests) the seed is
kept in the `signing_keys` row, readable by anyone who can read the
database; production should set the directory (on a disk only the service
account reads) or put the seeds in a KMS.

Published keys are PASERK strings (`k4.public.…`, named by `k4.pid.…`), so
a shop app verifies tokens offline with any PASETO library.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection, Engine

from ledger import errors, key_seeds
from ledger.entry_format import format_timestamp
from ledger.programmes import get_programme
from ledger.storage import read_transaction, write_transaction
from redemption import tokens
from redemption.errors import RedemptionError
from redemption.models import SigningKey

KEY_DIRECTORY_VARIABLE = key_seeds.KEY_DIRECTORY_VARIABLE
SIGNING = "signing"
RETIRED = "retired"
WITHDRAWN = "withdrawn"
SEED_BYTES = key_seeds.SEED_BYTES


class SigningKeyUnavailable(RedemptionError):
    """The key's seed is in a key directory that this process cannot read."""

    code = "signing_key_unavailable"


class UnknownKeyId(RedemptionError):
    """No key of this programme has that id."""

    code = "unknown_key_id"


@dataclass(frozen=True)
class KeyInfo:
    """A signing key as published: its PASERK id and public key, and its state."""

    key_id: str
    public_paserk: str
    status: str
    created_at: str
    retired_at: str | None

    def as_json(self) -> dict[str, str | None]:
        return {"kid": self.key_id, "paserk": self.public_paserk, "status": self.status,
                "created_at": self.created_at, "retired_at": self.retired_at}


@dataclass(frozen=True)
class VerificationKey:
    programme_id: int
    key_id: str
    public_key: Ed25519PublicKey


def rotate_key(engine: Engine, programme: str) -> KeyInfo:
    """Make a new signing key; the previous one (if any) is retired, still published.

    Raises `UnknownProgramme`; `IntegrityViolation` when another rotation
    of the same programme committed first (run it again if one more is wanted).
    """
    secret_key = Ed25519PrivateKey.generate()
    public_bytes = secret_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    key_id = tokens.key_id(public_bytes)
    now = format_timestamp(datetime.now(UTC))
    seed = secret_key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    seed_file = _write_seed_file(programme, key_id, seed)
    try:
        with write_transaction(engine) as connection:
            programme_info = get_programme(connection, programme)
            connection.execute(
                update(SigningKey)
                .where(SigningKey.programme_id == programme_info.id, SigningKey.status == SIGNING)
                .values(status=RETIRED, retired_at=now)
            )
            connection.execute(
                insert(SigningKey).values(
                    programme_id=programme_info.id, key_id=key_id, public_key=public_bytes,
                    secret_seed=None if seed_file else seed, status=SIGNING, created_at=now,
                )
            )
    except BaseException:
        if seed_file:
            seed_file.unlink(missing_ok=True)
        raise
    return KeyInfo(key_id, tokens.public_paserk(public_bytes), SIGNING, now, None)


def withdraw_key(engine: Engine, programme: str, key_id: str) -> KeyInfo:
    """Unpublish a key: tokens it signed no longer verify. Raises `UnknownKeyId`."""
    now = format_timestamp(datetime.now(UTC))
    with write_transaction(engine) as connection:
        programme_info = get_programme(connection, programme)
        row = _row(connection, programme_info.id, key_id)
        connection.execute(
            update(SigningKey).where(SigningKey.id == row.id)
            .values(status=WITHDRAWN, withdrawn_at=now, retired_at=row.retired_at or now)
        )
    return KeyInfo(key_id, tokens.public_paserk(row.public_key), WITHDRAWN, row.created_at,
                   row.retired_at or now)


def published_keys(engine: Engine, programme: str) -> list[dict[str, str | None]]:
    """The programme's verification keys, signing key first: what a shop app downloads.

    Each is `{"kid": "k4.pid…", "paserk": "k4.public…", "status", "created_at",
    "retired_at"}`; withdrawn keys are left out. Raises `UnknownProgramme`.
    """
    with read_transaction(engine) as connection:
        programme_info = get_programme(connection, programme)
        rows = connection.execute(
            select(SigningKey)
            .where(SigningKey.programme_id == programme_info.id, SigningKey.status != WITHDRAWN)
            .order_by(SigningKey.id.desc())
        ).all()
    keys = [KeyInfo(row.key_id, tokens.public_paserk(row.public_key), row.status,
                    row.created_at, row.retired_at) for row in rows]
    keys.sort(key=lambda key: key.status != SIGNING)
    return [key.as_json() for key in keys]


def ensure_signing_key(engine: Engine, programme: str) -> str:
    """The id of the programme's signing key, made now if it has none."""
    with read_transaction(engine) as connection:
        programme_info = get_programme(connection, programme)
        key_id = _signing_key_id(connection, programme_info.id)
    if key_id is not None:
        return key_id
    try:
        return rotate_key(engine, programme).key_id
    except errors.IntegrityViolation:
        with read_transaction(engine) as connection:  # another process made one first
            key_id = _signing_key_id(connection, programme_info.id)
        if key_id is None:
            raise
        return key_id


def secret_key(engine: Engine, programme: str, key_id: str) -> Ed25519PrivateKey:
    """The private key `key_id` (any state: a voucher's token is re-rendered with the key
    that signed it). Raises `UnknownKeyId`, `SigningKeyUnavailable`."""
    with read_transaction(engine) as connection:
        programme_info = get_programme(connection, programme)
        row = _row(connection, programme_info.id, key_id)
    seed = row.secret_seed if row.secret_seed is not None else _read_seed_file(programme, key_id)
    return Ed25519PrivateKey.from_private_bytes(seed)


def verification_key(connection: Connection, key_id: str) -> VerificationKey | None:
    """The published key `key_id` of any programme, or None (never existed, or withdrawn)."""
    row = connection.execute(
        select(SigningKey.programme_id, SigningKey.public_key)
        .where(SigningKey.key_id == key_id, SigningKey.status != WITHDRAWN)
    ).first()
    if row is None:
        return None
    return VerificationKey(row.programme_id, key_id,
                           Ed25519PublicKey.from_public_bytes(row.public_key))


def _signing_key_id(connection: Connection, programme_id: int) -> str | None:
    return connection.execute(
        select(SigningKey.key_id)
        .where(SigningKey.programme_id == programme_id, SigningKey.status == SIGNING)
    ).scalar_one_or_none()


def _row(connection: Connection, programme_id: int, key_id: str):
    row = connection.execute(
        select(SigningKey)
        .where(SigningKey.programme_id == programme_id, SigningKey.key_id == key_id)
    ).first()
    if row is None:
        raise UnknownKeyId(f"no signing key {key_id!r} in this programme", key_id=key_id)
    return row


def _seed_file_name(programme: str, key_id: str) -> str:
    return f"{programme}.{key_id.removeprefix(tokens.KEY_ID_PREFIX)}.seed"


def _write_seed_file(programme: str, key_id: str, seed: bytes) -> Path | None:
    return key_seeds.write_seed(_seed_file_name(programme, key_id), seed)


def _read_seed_file(programme: str, key_id: str) -> bytes:
    try:
        return key_seeds.read_seed(_seed_file_name(programme, key_id), f"key {key_id}")
    except key_seeds.SeedUnavailable as error:
        raise SigningKeyUnavailable(str(error), key_id=key_id) from error
