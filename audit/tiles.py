"""Stored Merkle nodes ("tiles"): what makes a proof at ten million entries cost milliseconds.

An inclusion or consistency proof needs O(log n) nodes of the programme's
RFC 6962 tree (`ledger.merkle`). Level 0 of the tree is the entries' own
`hash` column; this module stores the complete nodes at levels 8, 16, 24, ...
in `merkle_nodes`, the way C2SP tlog-tiles stores tiles of height 8. Any
complete node at level L then comes from at most 256 stored hashes of the
band below it (level L rounded down to a multiple of 8): one range query per
"tile" of 256 consecutive hashes, and a proof touches about two tiles per
band, so at most ~8 small queries for any tree below 2**32 entries.

A node never changes once its last leaf exists, so rows are only ever
inserted, never updated (the database refuses UPDATE and DELETE, see
migration 0005). `ensure_nodes` stores what is missing; two processes may
run it at once, because they compute the same hashes and a conflicting
insert is skipped. Where a node is not stored yet, `StoredTree` computes it
from the band below, down to the leaves, so proofs are always right and only
slower until the next checkpoint stores the nodes.

A stored node that lies makes a proof fail to verify; it cannot change an
entry. `audit.checkpoints` cross-checks the root from stored nodes against the
chain head's frontier before it signs.
"""

from __future__ import annotations

from sqlalchemy import bindparam, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from audit.models import MerkleNode
from ledger import errors, merkle
from ledger.canonical import EMPTY_ROOT, node_hash
from ledger.models import ChainHead
from ledger.models import Entry as EntryRow

TILE_HEIGHT = 8
"""Levels per band: nodes are stored at levels that are multiples of this."""
TILE_WIDTH = 1 << TILE_HEIGHT
"""Hashes per tile: one node of the band above covers exactly one full tile."""
PARENTS_PER_BATCH = 256
"""How many new nodes `ensure_nodes` computes per read of their children (65,536 rows)."""


class SizeBeyondHead(errors.LedgerError):
    """A tree size larger than the chain (or negative) was asked for."""

    code = "size_beyond_head"


class SeqOutsideTree(errors.LedgerError):
    """An inclusion proof was asked for an entry that is not in the tree of that size."""

    code = "seq_outside_tree"


class InvalidProofRange(errors.LedgerError):
    """A consistency proof needs 0 < old size <= new size."""

    code = "invalid_proof_range"


_LEAVES = (
    select(EntryRow.seq, EntryRow.hash)
    .where(EntryRow.programme_id == bindparam("programme_id"),
           EntryRow.seq >= bindparam("start"), EntryRow.seq < bindparam("stop"))
    .order_by(EntryRow.seq)
)
_NODES = (
    select(MerkleNode.index, MerkleNode.hash)
    .where(MerkleNode.programme_id == bindparam("programme_id"),
           MerkleNode.level == bindparam("level"),
           MerkleNode.index >= bindparam("start"), MerkleNode.index < bindparam("stop"))
    .order_by(MerkleNode.index)
)
_NEXT_INDEX = select(func.coalesce(func.max(MerkleNode.index) + 1, 0)).where(
    MerkleNode.programme_id == bindparam("programme_id"), MerkleNode.level == bindparam("level")
)
_HEAD_SIZE = select(ChainHead.size).where(ChainHead.programme_id == bindparam("programme_id"))


def _read_band(connection: Connection, programme_id: int, level: int, start: int,
               stop: int) -> list[bytes]:
    """The stored hashes at `level` with indices start, start + 1, ... up to the first gap."""
    if level == 0:
        rows = connection.execute(_LEAVES, {"programme_id": programme_id, "start": start,
                                            "stop": stop})
    else:
        rows = connection.execute(_NODES, {"programme_id": programme_id, "level": level,
                                           "start": start, "stop": stop})
    hashes: list[bytes] = []
    for index, node in rows:
        if index != start + len(hashes):
            break
        hashes.append(bytes(node))
    return hashes


def _insert_nodes(connection: Connection, rows: list[dict[str, object]]) -> None:
    """Insert nodes, skipping any another process stored first (same hash by construction)."""
    dialect_insert = sqlite.insert if connection.dialect.name == "sqlite" else postgresql.insert
    connection.execute(dialect_insert(MerkleNode).on_conflict_do_nothing(), rows)


def ensure_nodes(connection: Connection, programme_id: int, size: int) -> None:
    """Store every complete node at levels 8, 16, ... over the first `size` leaves.

    Incremental: each level starts after the highest node it already has,
    and its children are read a batch at a time, so the first call on a
    large chain reads every leaf once and later calls read only what was
    appended since. Safe to run from two processes at once (conflicting
    inserts are skipped). The caller owns the transaction; `size` must not
    exceed the chain (raises `IntegrityViolation` if leaves are missing).
    """
    level = TILE_HEIGHT
    while size >> level:
        complete = size >> level
        next_index = connection.execute(
            _NEXT_INDEX, {"programme_id": programme_id, "level": level}).scalar_one()
        for start in range(next_index, complete, PARENTS_PER_BATCH):
            stop = min(complete, start + PARENTS_PER_BATCH)
            children = _read_band(connection, programme_id, level - TILE_HEIGHT,
                                  start * TILE_WIDTH, stop * TILE_WIDTH)
            if len(children) != (stop - start) * TILE_WIDTH:
                raise errors.IntegrityViolation(
                    f"programme {programme_id}: level {level - TILE_HEIGHT} lacks hashes "
                    f"{start * TILE_WIDTH + len(children)}.. needed for level {level}")
            _insert_nodes(connection, [
                {"programme_id": programme_id, "level": level, "index": index,
                 "hash": merkle.merkle_root(
                     children[(index - start) * TILE_WIDTH:(index - start + 1) * TILE_WIDTH])}
                for index in range(start, stop)
            ])
        level += TILE_HEIGHT


class StoredTree:
    """`get_node` over a programme's stored nodes, for `ledger.merkle`'s proof functions.

    Reads one tile (up to 256 hashes of one band) per query and keeps what
    it read, so one instance should serve one request on one connection.
    Only complete nodes may be asked for (as `ledger.merkle` does).
    """

    def __init__(self, connection: Connection, programme_id: int) -> None:
        self._connection = connection
        self._programme_id = programme_id
        self._tiles: dict[tuple[int, int], list[bytes]] = {}
        self._computed: dict[tuple[int, int], bytes] = {}
        self.tiles_read = 0
        """How many range queries this tree made (a test and the benchmark watch it)."""

    def get_node(self, level: int, index: int) -> bytes:
        """The hash of the complete subtree over leaves [index * 2**level, (index + 1) * 2**level).

        Raises `ValueError` when a leaf under it does not exist.
        """
        base = level - level % TILE_HEIGHT
        first = index << (level - base)
        count = 1 << (level - base)
        tile_index = first >> TILE_HEIGHT
        tile = self._tile(base, tile_index)
        offset = first - (tile_index << TILE_HEIGHT)
        if offset + count <= len(tile):
            return tile[offset] if count == 1 else merkle.merkle_root(tile[offset:offset + count])
        if level == 0:
            raise ValueError(f"leaf {index} of programme {self._programme_id} does not exist")
        # Not stored yet: build it from its two children, which may be stored below.
        key = (level, index)
        node = self._computed.get(key)
        if node is None:
            node = node_hash(self.get_node(level - 1, 2 * index),
                                    self.get_node(level - 1, 2 * index + 1))
            self._computed[key] = node
        return node

    def _tile(self, level: int, tile_index: int) -> list[bytes]:
        key = (level, tile_index)
        tile = self._tiles.get(key)
        if tile is None:
            start = tile_index << TILE_HEIGHT
            tile = _read_band(self._connection, self._programme_id, level, start,
                              start + TILE_WIDTH)
            self.tiles_read += 1
            self._tiles[key] = tile
        return tile


def _check_size(connection: Connection, programme_id: int, size: int) -> None:
    head_size = connection.execute(_HEAD_SIZE, {"programme_id": programme_id}).scalar_one()
    if not 0 <= size <= head_size:
        raise SizeBeyondHead(f"tree size {size} is outside 0..{head_size}, the chain's size",
                             size=size, head_size=head_size)


def root_at(connection: Connection, programme_id: int, size: int) -> bytes:
    """The Merkle root of the first `size` entries. Raises `SizeBeyondHead`."""
    _check_size(connection, programme_id, size)
    if size == 0:
        return EMPTY_ROOT
    return merkle.subtree_root(0, size, StoredTree(connection, programme_id).get_node)


def inclusion_proof(connection: Connection, programme_id: int, index: int,
                    size: int) -> list[bytes]:
    """RFC 9162 inclusion proof of entry `index` in the tree of `size` entries.

    Raises `SizeBeyondHead`, and `SeqOutsideTree` unless 0 <= index < size.
    """
    _check_size(connection, programme_id, size)
    if not 0 <= index < size:
        raise SeqOutsideTree(f"entry {index} is not in the tree of size {size}",
                             seq=index, size=size)
    return merkle.inclusion_proof(index, size, StoredTree(connection, programme_id).get_node)


def consistency_proof(connection: Connection, programme_id: int, old_size: int,
                      new_size: int) -> list[bytes]:
    """RFC 9162 consistency proof that the `old_size` tree is a prefix of the `new_size` one.

    Raises `SizeBeyondHead`, and `InvalidProofRange` unless 0 < old_size <= new_size.
    """
    _check_size(connection, programme_id, new_size)
    if not 0 < old_size <= new_size:
        raise InvalidProofRange(
            f"a consistency proof needs 0 < old size <= new size, not {old_size} and {new_size}",
            old_size=old_size, new_size=new_size)
    return merkle.consistency_proof(old_size, new_size,
                                    StoredTree(connection, programme_id).get_node)
