"""Inclusion and consistency proofs of a programme's chain, as the API and `jifen proof` serve them.

Proofs come from the stored nodes (`audit.tiles`), so each costs O(log n)
small reads. Where no size is named, the proof is against the latest signed
checkpoint: a proof is only as good as the signed root it ends in. A
resident's proof file (`audit.proof_file`) needs a checkpoint at exactly its
size, since the file carries that checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection, Engine

from audit import tiles
from audit.checkpoints import NoCheckpoint, StoredCheckpoint, checkpoint_at, latest_checkpoint
from audit.proof_file import format_proof
from ledger import errors
from ledger.chain import Entry, load_entries
from ledger.entry_format import entry_hash
from ledger.programmes import ProgrammeInfo, get_programme
from ledger.storage import read_transaction


@dataclass(frozen=True)
class InclusionProof:
    """Entry `seq` is leaf `seq` of the tree of `size` entries whose root is `root`."""

    programme: str
    seq: int
    size: int
    leaf_hash: bytes
    proof: list[bytes]
    root: bytes
    checkpoint: StoredCheckpoint | None
    """The signed checkpoint at `size`, if one was signed."""

    def as_json(self) -> dict[str, Any]:
        return {"programme": self.programme, "seq": self.seq, "size": self.size,
                "leaf_hash": self.leaf_hash.hex(), "proof": [node.hex() for node in self.proof],
                "root": self.root.hex(),
                "checkpoint": self.checkpoint.note if self.checkpoint else None}


@dataclass(frozen=True)
class ConsistencyProof:
    """The tree of `old_size` entries (root `old_root`) is a prefix of the `new_size` one."""

    programme: str
    old_size: int
    new_size: int
    old_root: bytes
    new_root: bytes
    proof: list[bytes]
    old_checkpoint: StoredCheckpoint | None
    new_checkpoint: StoredCheckpoint | None

    def as_json(self) -> dict[str, Any]:
        return {"programme": self.programme, "old_size": self.old_size,
                "new_size": self.new_size, "old_root": self.old_root.hex(),
                "new_root": self.new_root.hex(), "proof": [node.hex() for node in self.proof],
                "old_checkpoint": self.old_checkpoint.note if self.old_checkpoint else None,
                "new_checkpoint": self.new_checkpoint.note if self.new_checkpoint else None}


def _latest_size(connection: Connection, programme_info: ProgrammeInfo) -> int:
    latest = latest_checkpoint(connection, programme_info.id)
    if latest is None:
        raise NoCheckpoint(f"programme {programme_info.code!r} has no signed checkpoint yet; "
                           "name a size, or sign one (`jifen checkpoint`)",
                           programme=programme_info.code)
    return latest.size


def _entry(connection: Connection, programme_info: ProgrammeInfo, seq: int) -> Entry:
    """The stored entry `seq`, its hash checked against its canonical bytes."""
    entry = load_entries(connection, programme_info, [seq]).get(seq)
    if entry is None:
        raise errors.UnknownEntry(f"programme {programme_info.code!r} has no entry {seq}",
                                  seq=seq)
    if entry_hash(entry.canonical_bytes()) != entry.hash:
        raise errors.IntegrityViolation(
            f"entry {seq} of {programme_info.code!r}: its stored hash is not the hash of its "
            "canonical bytes; run `jifen db verify`", seq=seq)
    return entry


def _root(connection: Connection, programme_info: ProgrammeInfo, size: int,
          checkpoint: StoredCheckpoint | None) -> bytes:
    """The root at `size`: the signed one where a checkpoint was signed (it was checked
    against the stored nodes then), else computed from the stored nodes."""
    if checkpoint is not None:
        return checkpoint.root
    return tiles.root_at(connection, programme_info.id, size)


def _covering_size(connection: Connection, programme_info: ProgrammeInfo, seq: int) -> int:
    size = _latest_size(connection, programme_info)
    if seq >= size:
        raise NoCheckpoint(f"entry {seq} is newer than the latest checkpoint (size {size}); "
                           "its proof exists once the next checkpoint is signed",
                           seq=seq, checkpoint_size=size)
    return size


def inclusion(engine: Engine, programme: str, seq: int, size: int | None = None,
              ) -> InclusionProof:
    """The inclusion proof of entry `seq` in the tree of `size` entries (default: the latest
    checkpoint's size).

    Raises `UnknownProgramme`, `NoCheckpoint` (no size named and no
    checkpoint covers `seq`), `SizeBeyondHead`, `SeqOutsideTree`, `UnknownEntry`.
    """
    with read_transaction(engine) as connection:
        programme_info = get_programme(connection, programme)
        if size is None:
            size = _covering_size(connection, programme_info, seq)
        proof = tiles.inclusion_proof(connection, programme_info.id, seq, size)
        entry = _entry(connection, programme_info, seq)
        checkpoint = checkpoint_at(connection, programme_info.id, size)
        root = _root(connection, programme_info, size, checkpoint)
    return InclusionProof(programme, seq, size, entry.hash, proof, root, checkpoint)


def consistency(engine: Engine, programme: str, old_size: int, new_size: int | None = None,
                ) -> ConsistencyProof:
    """The consistency proof from `old_size` to `new_size` (default: the latest checkpoint's).

    Raises `UnknownProgramme`, `NoCheckpoint`, `SizeBeyondHead`, `InvalidProofRange`.
    """
    with read_transaction(engine) as connection:
        programme_info = get_programme(connection, programme)
        if new_size is None:
            new_size = _latest_size(connection, programme_info)
        proof = tiles.consistency_proof(connection, programme_info.id, old_size, new_size)
        old_checkpoint = checkpoint_at(connection, programme_info.id, old_size)
        new_checkpoint = checkpoint_at(connection, programme_info.id, new_size)
        old_root = _root(connection, programme_info, old_size, old_checkpoint)
        new_root = _root(connection, programme_info, new_size, new_checkpoint)
    return ConsistencyProof(programme, old_size, new_size, old_root, new_root, proof,
                            old_checkpoint, new_checkpoint)


def proof_file(engine: Engine, programme: str, seq: int, size: int | None = None) -> str:
    """The `c2sp.org/tlog-proof@v1` file proving entry `seq` in the signed checkpoint of
    `size` entries (default: the latest), carrying the entry's canonical bytes.

    Raises `UnknownProgramme`, `NoCheckpoint` (none at that size, or none
    covering `seq`), `SizeBeyondHead`, `SeqOutsideTree`, `UnknownEntry`.
    """
    with read_transaction(engine) as connection:
        programme_info = get_programme(connection, programme)
        if size is None:
            size = _covering_size(connection, programme_info, seq)
        checkpoint = checkpoint_at(connection, programme_info.id, size)
        proof = tiles.inclusion_proof(connection, programme_info.id, seq, size)
        if checkpoint is None:
            raise NoCheckpoint(f"programme {programme!r} has no checkpoint at size {size}",
                               size=size)
        entry = _entry(connection, programme_info, seq)
    return format_proof(seq, proof, checkpoint.note, entry.canonical_bytes())

