"""Signed checkpoints of a programme's tree, and the keys that sign them.

A checkpoint (C2SP tlog-checkpoint) is a signed note whose text is

    <origin>
    <tree size, decimal>
    <Merkle root, base64>

signed with the programme's Ed25519 checkpoint key, whose signed-note key
name is the origin. The origin is `<prefix>/<programme code>`, the prefix
from `JIFEN_CHECKPOINT_ORIGIN_PREFIX` (default `jifen-ledger`, which any
installation that publishes checkpoints should replace with its own host,
e.g. `jifen.example-town.gov.cn`). It is fixed when the programme's first key
is made: later keys keep the same name, so a log keeps its identity across
rotations and prefix changes.

What is guaranteed: at most one checkpoint per size (the primary key), and
never one inconsistent with the latest checkpoint signed before it: before
signing, the root is computed from the chain head's frontier and again from
the stored nodes (`audit.tiles`), and a consistency proof from the previous
checkpoint is built and verified. Signers serialise per programme (an advisory
lock on PostgreSQL, SQLite's single writer), so two signers at once both
return the same note, or each one for its own size.

Keys. One key per programme signs (`signing`); `rotate_key` retires it (it
signs nothing more, stays published, still verifies what it signed) and
makes a new one. The 32-byte seed is the only secret. When
`JIFEN_SIGNING_KEY_DIR` names a directory (the same one that holds voucher
keys), a new seed is written there as `<programme>.checkpoint-<key id>.seed`,
mode 0600, and the database keeps only the public key; without it the seed
is kept in the `checkpoint_keys` row (demo and tests).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import bindparam, insert, select, text, update
from sqlalchemy.engine import Connection, Engine

from audit import note, tiles
from audit.models import Checkpoint, CheckpointKey
from ledger import errors, key_seeds
from ledger.entry_format import format_timestamp
from ledger.merkle import Frontier, ProofError, verify_consistency
from ledger.models import ChainHead
from ledger.programmes import ProgrammeInfo, get_programme
from ledger.storage import read_transaction, write_transaction

ORIGIN_PREFIX_VARIABLE = "JIFEN_CHECKPOINT_ORIGIN_PREFIX"
DEFAULT_ORIGIN_PREFIX = "jifen-ledger"
KEY_DIRECTORY_VARIABLE = key_seeds.KEY_DIRECTORY_VARIABLE
"""Shared with the voucher keys (redemption.signing_keys): one directory of secrets."""
SIGNING = "signing"
RETIRED = "retired"
SEED_BYTES = key_seeds.SEED_BYTES
CATCH_UP_LEAVES = 1 << 18
"""Leaves whose nodes are stored per transaction before signing, so a first checkpoint of
a large chain never holds the database's write lock for long."""
MAX_LIST_CHECKPOINTS = 1_000
SIGNING_LOCK_CLASS = 0x6A66_6370
"""First key of the PostgreSQL advisory lock that serialises a programme's signers ("jfcp")."""
_ADVISORY_LOCK = text("SELECT pg_advisory_xact_lock(:lock_class, :programme_id)")


class CheckpointInconsistent(errors.LedgerError):
    """The tree is not consistent with a checkpoint already signed; nothing is signed."""

    code = "checkpoint_inconsistent"


class EmptyChain(errors.LedgerError):
    """The programme has no entries: there is no tree to checkpoint."""

    code = "empty_chain"


class NoCheckpoint(errors.LedgerError):
    """No signed checkpoint exists (at that size, or covering that entry) yet."""

    code = "no_checkpoint"


class CheckpointKeyUnavailable(errors.LedgerError):
    """The key's seed is in a key directory that this process cannot read."""

    code = "signing_key_unavailable"


@dataclass(frozen=True)
class CheckpointKeyInfo:
    """A checkpoint key as published."""

    vkey: str
    status: str
    created_at: str
    retired_at: str | None

    def as_json(self) -> dict[str, str | None]:
        return {"vkey": self.vkey, "status": self.status, "created_at": self.created_at,
                "retired_at": self.retired_at}


@dataclass(frozen=True)
class StoredCheckpoint:
    """A signed checkpoint as stored: `note` is the whole signed note, exactly as served."""

    size: int
    root: bytes
    note: str
    vkey: str
    """The key that signed it."""
    signed_at: str

    def as_json(self) -> dict[str, Any]:
        return {"size": self.size, "root": self.root.hex(), "note": self.note,
                "vkey": self.vkey, "signed_at": self.signed_at}


def origin_prefix() -> str:
    return os.environ.get(ORIGIN_PREFIX_VARIABLE) or DEFAULT_ORIGIN_PREFIX


def published_keys(engine: Engine, programme: str) -> list[CheckpointKeyInfo]:
    """Every checkpoint key of the programme, signing key first, then newest first.

    Retired keys stay here for good: they verify the checkpoints they signed.
    Raises `UnknownProgramme`.
    """
    with read_transaction(engine) as connection:
        programme_info = get_programme(connection, programme)
        rows = connection.execute(
            select(CheckpointKey.vkey, CheckpointKey.status, CheckpointKey.created_at,
                   CheckpointKey.retired_at)
            .where(CheckpointKey.programme_id == programme_info.id)
            .order_by(CheckpointKey.id.desc())
        ).all()
    keys = [CheckpointKeyInfo(*row) for row in rows]
    keys.sort(key=lambda key: key.status != SIGNING)
    return keys


def published_vkeys(engine: Engine, programme: str) -> list[str]:
    """The signed-note vkeys of `published_keys`, in the same order."""
    return [key.vkey for key in published_keys(engine, programme)]


def rotate_key(engine: Engine, programme: str) -> CheckpointKeyInfo:
    """Make a new signing key; the previous one is retired and stays published.

    Raises `UnknownProgramme`.
    """
    with _key_files() as written, write_transaction(engine) as connection:
        programme_info = get_programme(connection, programme)
        _lock_signing(connection, programme_info.id)
        return _new_key(connection, programme_info, written)


def sign_checkpoint(engine: Engine, programme: str) -> StoredCheckpoint:
    """Sign (and store) a checkpoint of the programme's whole chain, or return the one
    already signed at its current size.

    Makes the programme's first key when it has none. Raises
    `UnknownProgramme`, `EmptyChain`, `CheckpointInconsistent` (the chain is
    shorter than the latest checkpoint, its root at that size differs, or the
    stored nodes disagree with the chain head), `CheckpointKeyUnavailable`.
    """
    programme_info = get_programme(engine, programme)
    _catch_up_nodes(engine, programme_info.id)
    with _key_files() as written, write_transaction(engine) as connection:
        _lock_signing(connection, programme_info.id)
        head = connection.execute(
            select(ChainHead.size, ChainHead.frontier)
            .where(ChainHead.programme_id == programme_info.id)
        ).one()
        size = head.size
        if size == 0:
            raise EmptyChain(f"programme {programme!r} has no entries yet; there is nothing "
                             "to checkpoint", programme=programme)
        root = Frontier.from_bytes(size, head.frontier).root()
        latest = latest_checkpoint(connection, programme_info.id)
        if latest is not None and latest.size >= size:
            if latest.size == size and latest.root == root:
                return latest
            raise CheckpointInconsistent(
                f"programme {programme!r} has {size} entries with root {root.hex()}, but "
                f"checkpoint {latest.size} with root {latest.root.hex()} was signed: the "
                "chain is not the one signed before (restored from an old backup, or "
                "rewritten); nothing was signed",
                size=size, checkpoint_size=latest.size)
        tiles.ensure_nodes(connection, programme_info.id, size)
        stored_root = tiles.root_at(connection, programme_info.id, size)
        if stored_root != root:
            raise CheckpointInconsistent(
                f"programme {programme!r}: the stored Merkle nodes give root "
                f"{stored_root.hex()} at size {size}, the chain head {root.hex()}; "
                "nothing was signed", size=size)
        if latest is not None:
            _check_extends(connection, programme_info, latest, size, root)
        signer, key_id = _signer(connection, programme_info, written)
        checkpoint_text = note.Checkpoint(signer.name, size, root).text()
        signed = note.sign(checkpoint_text, signer)
        signed_at = format_timestamp(datetime.now(UTC))
        connection.execute(insert(Checkpoint).values(
            programme_id=programme_info.id, size=size, root_hash=root, note=signed,
            key_id=key_id, signed_at=signed_at))
    return StoredCheckpoint(size, root, signed, signer.verifier.vkey, signed_at)


def _check_extends(connection: Connection, programme_info: ProgrammeInfo,
                   latest: StoredCheckpoint, size: int, root: bytes) -> None:
    """Refuse unless the tree of `size` provably extends the `latest` signed checkpoint."""
    proof = tiles.consistency_proof(connection, programme_info.id, latest.size, size)
    try:
        verify_consistency(latest.size, size, latest.root, root, proof)
    except ProofError as error:
        raise CheckpointInconsistent(
            f"programme {programme_info.code!r}: the tree of size {size} does not extend "
            f"checkpoint {latest.size} ({error}); nothing was signed",
            size=size, checkpoint_size=latest.size) from error


_CHECKPOINTS = (
    select(Checkpoint.size, Checkpoint.root_hash, Checkpoint.note, CheckpointKey.vkey,
           Checkpoint.signed_at)
    .join(CheckpointKey, CheckpointKey.id == Checkpoint.key_id)
)


def _stored(row: Any) -> StoredCheckpoint:
    return StoredCheckpoint(row.size, bytes(row.root_hash), row.note, row.vkey, row.signed_at)


def list_checkpoints(connection: Connection, programme_id: int, *, after_size: int = -1,
                     limit: int | None = None) -> list[StoredCheckpoint]:
    """The programme's checkpoints in size order, those above `after_size`, at most `limit`."""
    statement = (_CHECKPOINTS
                 .where(Checkpoint.programme_id == programme_id, Checkpoint.size > after_size)
                 .order_by(Checkpoint.size))
    if limit is not None:
        statement = statement.limit(limit)
    return [_stored(row) for row in connection.execute(statement)]


def latest_checkpoint(connection: Connection, programme_id: int) -> StoredCheckpoint | None:
    """The checkpoint of the largest size, or None before the first."""
    row = connection.execute(
        _CHECKPOINTS.where(Checkpoint.programme_id == programme_id)
        .order_by(Checkpoint.size.desc()).limit(1)
    ).first()
    return None if row is None else _stored(row)


_CHECKPOINT_AT = _CHECKPOINTS.where(Checkpoint.programme_id == bindparam("programme_id"),
                                    Checkpoint.size == bindparam("size"))


def checkpoint_at(connection: Connection, programme_id: int, size: int) -> StoredCheckpoint | None:
    """The checkpoint signed at exactly `size`, or None."""
    row = connection.execute(_CHECKPOINT_AT, {"programme_id": programme_id, "size": size}).first()
    return None if row is None else _stored(row)


def programme_checkpoints(engine: Engine, programme: str, *, after_size: int = -1,
                          limit: int = MAX_LIST_CHECKPOINTS) -> list[StoredCheckpoint]:
    """`list_checkpoints` by programme code. Raises `UnknownProgramme`."""
    with read_transaction(engine) as connection:
        programme_info = get_programme(connection, programme)
        return list_checkpoints(connection, programme_info.id, after_size=after_size,
                                limit=min(limit, MAX_LIST_CHECKPOINTS))


def latest_signed(engine: Engine, programme: str) -> StoredCheckpoint:
    """The programme's latest checkpoint. Raises `UnknownProgramme`, `NoCheckpoint`."""
    with read_transaction(engine) as connection:
        programme_info = get_programme(connection, programme)
        latest = latest_checkpoint(connection, programme_info.id)
    if latest is None:
        raise NoCheckpoint(f"programme {programme!r} has no signed checkpoint yet",
                           programme=programme)
    return latest


def checkpoint_at_size(engine: Engine, programme: str, size: int) -> StoredCheckpoint:
    """The checkpoint signed at exactly `size`. Raises `UnknownProgramme`, `NoCheckpoint`."""
    with read_transaction(engine) as connection:
        programme_info = get_programme(connection, programme)
        found = checkpoint_at(connection, programme_info.id, size)
    if found is None:
        raise NoCheckpoint(f"programme {programme!r} has no checkpoint at size {size}",
                           size=size)
    return found


# -- nodes, locks and keys ----------------------------------------------------------------


def _catch_up_nodes(engine: Engine, programme_id: int) -> None:
    """Store the nodes of the chain as it is now, a bounded slice per transaction."""
    with read_transaction(engine) as connection:
        size = connection.execute(
            select(ChainHead.size).where(ChainHead.programme_id == programme_id)).scalar_one()
    for step_size in [*range(CATCH_UP_LEAVES, size, CATCH_UP_LEAVES), size]:
        with write_transaction(engine) as connection:
            tiles.ensure_nodes(connection, programme_id, step_size)


def _lock_signing(connection: Connection, programme_id: int) -> None:
    """Serialise signers and key rotations of one programme until the transaction ends.

    PostgreSQL: a transaction-level advisory lock on (`SIGNING_LOCK_CLASS`,
    programme id). It locks no row, so appends go on while a checkpoint is
    signed, and it needs no table privilege, so the least-privilege service
    role (docs/OPERATIONS.md) can take it. SQLite: the write transaction
    already holds the database's only write lock.
    """
    if connection.dialect.name != "sqlite":
        connection.execute(_ADVISORY_LOCK, {"lock_class": SIGNING_LOCK_CLASS,
                                            "programme_id": programme_id})


@contextmanager
def _key_files() -> Iterator[list[Path]]:
    """Collects seed files written during a transaction; removes them if it fails."""
    written: list[Path] = []
    try:
        yield written
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise


def _new_key(connection: Connection, programme_info: ProgrammeInfo,
             written: list[Path]) -> CheckpointKeyInfo:
    """Retire the signing key (if any) and make a new one named as the programme's first."""
    name = connection.execute(
        select(CheckpointKey.name).where(CheckpointKey.programme_id == programme_info.id)
        .order_by(CheckpointKey.id).limit(1)
    ).scalar_one_or_none() or f"{origin_prefix()}/{programme_info.code}"
    try:
        signer = note.new_signer(name)
    except note.NoteError as error:
        raise errors.InvalidEntry(f"{ORIGIN_PREFIX_VARIABLE}: {error}",
                                  field=ORIGIN_PREFIX_VARIABLE) from None
    now = format_timestamp(datetime.now(UTC))
    seed = signer.private_key.private_bytes_raw()
    seed_file = _write_seed_file(programme_info.code, signer.key_id, seed)
    if seed_file is not None:
        written.append(seed_file)
    connection.execute(
        update(CheckpointKey)
        .where(CheckpointKey.programme_id == programme_info.id, CheckpointKey.status == SIGNING)
        .values(status=RETIRED, retired_at=now)
    )
    vkey = signer.verifier.vkey
    connection.execute(insert(CheckpointKey).values(
        programme_id=programme_info.id, name=name, vkey=vkey,
        public_key=signer.private_key.public_key().public_bytes_raw(),
        secret_seed=None if seed_file else seed, status=SIGNING, created_at=now))
    return CheckpointKeyInfo(vkey, SIGNING, now, None)


def _signer(connection: Connection, programme_info: ProgrammeInfo,
            written: list[Path]) -> tuple[note.Signer, int]:
    """The programme's signing key and its row id, made now if it has none (lock held)."""
    row = _signing_row(connection, programme_info.id)
    if row is None:
        _new_key(connection, programme_info, written)
        row = _signing_row(connection, programme_info.id)
    public_key = bytes(row.public_key)
    key_id = note.key_id(row.name, public_key)
    if row.secret_seed is not None:
        seed = bytes(row.secret_seed)
    else:
        seed = _read_seed_file(programme_info.code, key_id)
    private_key = Ed25519PrivateKey.from_private_bytes(seed)
    if private_key.public_key().public_bytes_raw() != public_key:
        raise CheckpointKeyUnavailable(
            f"the seed of checkpoint key {row.vkey} does not match its public key")
    return note.Signer(row.name, key_id, private_key), row.id


def _signing_row(connection: Connection, programme_id: int) -> Any:
    return connection.execute(
        select(CheckpointKey.id, CheckpointKey.name, CheckpointKey.vkey,
               CheckpointKey.public_key, CheckpointKey.secret_seed)
        .where(CheckpointKey.programme_id == programme_id, CheckpointKey.status == SIGNING)
    ).first()


def _seed_file_name(programme: str, key_id: bytes) -> str:
    return f"{programme}.checkpoint-{key_id.hex()}.seed"


def _write_seed_file(programme: str, key_id: bytes, seed: bytes) -> Path | None:
    return key_seeds.write_seed(_seed_file_name(programme, key_id), seed)


def _read_seed_file(programme: str, key_id: bytes) -> bytes:
    try:
        return key_seeds.read_seed(_seed_file_name(programme, key_id),
                                   f"checkpoint key {key_id.hex()}")
    except key_seeds.SeedUnavailable as error:
        raise CheckpointKeyUnavailable(str(error), key_id=key_id.hex()) from error
