"""Stored Merkle nodes (audit.tiles): same answers as an in-memory tree, from few reads.

Most tests build a synthetic chain: entries rows written straight into a
database of this module's own, with leaf hashes the test chooses (the public
RFC 6962 reference leaves, or 65,836 sample leaves to cross the 256 and
65,536 tile boundaries). The proofs only read `seq` and `hash`, so that is
enough, and it is far faster than appending through `ledger.chain`. One test
checks a real chain as well.
"""

from __future__ import annotations

import random
import threading
import uuid

import pytest
from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Engine

from audit import tiles
from audit.models import MerkleNode
from ledger import merkle
from ledger.canonical import EMPTY_ROOT
from ledger.chain import Draft, append_batch, head
from ledger.models import ChainHead
from ledger.models import Entry as EntryRow
from ledger.programmes import create_programme, get_programme
from ledger.storage import read_transaction, write_transaction
from tests.ledger.test_merkle import (
    decode,
    happy_vectors,
    load_reference_tree,
    reference_leaf_hashes,
    sample_leaf_hashes,
)

BIG_SIZE = 65_536 + 300
BIG_LEAVES = sample_leaf_hashes(BIG_SIZE)
BOUNDARY_SIZES = [1, 2, 3, 255, 256, 257, 300, 511, 512, 513, 65_535, 65_536, 65_537, BIG_SIZE]


@pytest.fixture(scope="module")
def own_engine(backend, databases) -> Engine:
    """A database of this module's own: its chains are written round `ledger.chain`."""
    return databases.new_engine(backend)


def synthetic_chain(engine: Engine, leaf_hashes: list[bytes]) -> int:
    """A programme whose entries have exactly these hashes; returns its id."""
    code = f"tiles-{uuid.uuid4().hex[:10]}"
    programme_id = create_programme(engine, code, "synthetic").id
    frontier = merkle.Frontier()
    frontier.extend(leaf_hashes)
    with write_transaction(engine) as connection:
        for start in range(0, len(leaf_hashes), 20_000):
            connection.execute(insert(EntryRow), [
                {"programme_id": programme_id, "seq": seq, "kind": "admin",
                 "actor": "system:test", "occurred_at": "2026-11-20T00:00:00.000000Z",
                 "recorded_at": "2026-11-20T00:00:00.000000Z", "memo": "", "metadata_json": "{}",
                 "content_digest": bytes(32), "prev_hash": None, "hash": leaf_hashes[seq]}
                for seq in range(start, min(len(leaf_hashes), start + 20_000))
            ])
        connection.execute(update(ChainHead).where(ChainHead.programme_id == programme_id)
                           .values(size=len(leaf_hashes), head_hash=leaf_hashes[-1],
                                   frontier=frontier.to_bytes()))
    return programme_id


@pytest.fixture(scope="module")
def big_chain(own_engine) -> int:
    return synthetic_chain(own_engine, BIG_LEAVES)


@pytest.fixture(scope="module")
def big_tree() -> merkle.MemoryTree:
    return merkle.MemoryTree(BIG_LEAVES)


def store(engine: Engine, programme_id: int, size: int) -> None:
    with write_transaction(engine) as connection:
        tiles.ensure_nodes(connection, programme_id, size)


def stored_nodes(engine: Engine, programme_id: int) -> dict[tuple[int, int], bytes]:
    with read_transaction(engine) as connection:
        rows = connection.execute(select(MerkleNode.level, MerkleNode.index, MerkleNode.hash)
                                  .where(MerkleNode.programme_id == programme_id))
        return {(level, index): bytes(node) for level, index, node in rows}


def test_reference_tree_roots_and_proofs_from_stored_nodes(own_engine):
    """The public RFC 6962 reference tree: every root, and the reference's own proofs."""
    reference = load_reference_tree()
    leaves = reference_leaf_hashes(reference)
    programme_id = synthetic_chain(own_engine, leaves)
    store(own_engine, programme_id, len(leaves))
    with read_transaction(own_engine) as connection:
        for size_text, root_hex in reference["root_by_tree_size_hex"].items():
            assert tiles.root_at(connection, programme_id, int(size_text)).hex() == root_hex
        compared = 0
        for vector in happy_vectors("inclusion"):
            if vector["treeSize"] > len(leaves) or decode(vector["root"]) != merkle.merkle_root(
                    leaves[:vector["treeSize"]]):
                continue  # a tree over other leaves
            proof = tiles.inclusion_proof(connection, programme_id, vector["leafIdx"],
                                          vector["treeSize"])
            assert proof == [decode(node) for node in vector["proof"] or []]
            compared += 1
        for vector in happy_vectors("consistency"):
            if vector["size2"] > len(leaves) or decode(vector["root2"]) != merkle.merkle_root(
                    leaves[:vector["size2"]]):
                continue
            proof = tiles.consistency_proof(connection, programme_id, vector["size1"],
                                            vector["size2"])
            assert proof == [decode(node) for node in vector["proof"] or []]
            compared += 1
    assert compared >= 8


def test_ensure_nodes_stores_exactly_the_complete_tile_nodes(own_engine, big_chain, big_tree):
    for size in (255, 256, 257, 65_535, 65_536, BIG_SIZE, BIG_SIZE):  # incremental, then again
        store(own_engine, big_chain, size)
        nodes = stored_nodes(own_engine, big_chain)
        expected = {(level, index) for level in (8, 16) for index in range(size >> level)}
        assert set(nodes) == expected, size
    assert all(node == big_tree.get_node(level, index)
               for (level, index), node in nodes.items())
    assert len(nodes) == (BIG_SIZE >> 8) + 1


def test_stored_proofs_equal_memory_tree_proofs_around_tile_boundaries(
        own_engine, big_chain, big_tree):
    store(own_engine, big_chain, BIG_SIZE)
    chooser = random.Random(6962)
    with read_transaction(own_engine) as connection:
        for size in BOUNDARY_SIZES:
            assert tiles.root_at(connection, big_chain, size) == big_tree.root(size), size
            indices = {0, size - 1, size // 2, *(chooser.randrange(size) for _ in range(20))}
            for index in indices:
                assert tiles.inclusion_proof(connection, big_chain, index, size) == (
                    merkle.inclusion_proof(index, size, big_tree.get_node)), (index, size)
            for old_size in BOUNDARY_SIZES:
                if old_size <= size:
                    assert tiles.consistency_proof(connection, big_chain, old_size, size) == (
                        merkle.consistency_proof(old_size, size, big_tree.get_node)), (
                        old_size, size)


def test_nodes_not_stored_yet_are_computed_from_the_band_below(own_engine, big_tree):
    """Right answers whatever is stored: nothing, a few tiles, or nodes behind the head."""
    programme_id = synthetic_chain(own_engine, BIG_LEAVES)
    chooser = random.Random(9162)
    for stored_size in (0, 300, 65_535):
        store(own_engine, programme_id, stored_size)
        with read_transaction(own_engine) as connection:
            assert tiles.root_at(connection, programme_id, BIG_SIZE) == big_tree.root()
            for _ in range(2):
                index = chooser.randrange(BIG_SIZE)
                assert tiles.inclusion_proof(connection, programme_id, index, BIG_SIZE) == (
                    merkle.inclusion_proof(index, BIG_SIZE, big_tree.get_node))
            assert tiles.consistency_proof(connection, programme_id, 60_000 + 3_333, BIG_SIZE) \
                == merkle.consistency_proof(60_000 + 3_333, BIG_SIZE, big_tree.get_node)


def test_a_proof_reads_about_two_tiles_per_band(own_engine, big_chain):
    """O(log n): a proof in 65,836 leaves (three bands) reads a handful of <= 256-row tiles."""
    store(own_engine, big_chain, BIG_SIZE)
    chooser = random.Random(1)
    with read_transaction(own_engine) as connection:
        for _ in range(50):
            tree = tiles.StoredTree(connection, big_chain)
            merkle.inclusion_proof(chooser.randrange(BIG_SIZE), BIG_SIZE, tree.get_node)
            assert tree.tiles_read <= 6
            tree = tiles.StoredTree(connection, big_chain)
            merkle.consistency_proof(chooser.randrange(1, BIG_SIZE), BIG_SIZE, tree.get_node)
            assert tree.tiles_read <= 6


def test_two_connections_storing_nodes_at_once_agree(own_engine, big_tree):
    """Both succeed (the second skips what the first stored) and every node is right."""
    programme_id = synthetic_chain(own_engine, BIG_LEAVES)
    barrier = threading.Barrier(2)
    failures: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait(timeout=30)
            store(own_engine, programme_id, BIG_SIZE)
        except BaseException as error:  # reported by the assertion below
            failures.append(error)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert failures == []
    nodes = stored_nodes(own_engine, programme_id)
    assert len(nodes) == (BIG_SIZE >> 8) + 1
    assert all(node == big_tree.get_node(level, index)
               for (level, index), node in nodes.items())


def test_the_real_chain_gives_the_head_root(engine):
    code = f"tiles-real-{uuid.uuid4().hex[:8]}"
    create_programme(engine, code, "real")
    append_batch(engine, code, [Draft("admin", [], "system:test", metadata={"n": n})
                                for n in range(600)])
    programme_id = get_programme(engine, code).id
    store(engine, programme_id, 600)
    with read_transaction(engine) as connection:
        assert tiles.root_at(connection, programme_id, 600) == head(engine, code).root
        stored = connection.execute(select(func.count()).select_from(MerkleNode)
                                    .where(MerkleNode.programme_id == programme_id)).scalar_one()
    assert stored == 2


def test_impossible_requests_are_refused_with_stable_codes(own_engine, big_chain):
    with read_transaction(own_engine) as connection:
        assert tiles.root_at(connection, big_chain, 0) == EMPTY_ROOT
        with pytest.raises(tiles.SizeBeyondHead) as beyond:
            tiles.root_at(connection, big_chain, BIG_SIZE + 1)
        assert beyond.value.code == "size_beyond_head"
        with pytest.raises(tiles.SizeBeyondHead):
            tiles.inclusion_proof(connection, big_chain, 0, BIG_SIZE + 1)
        with pytest.raises(tiles.SeqOutsideTree) as outside:
            tiles.inclusion_proof(connection, big_chain, 10, 10)
        assert outside.value.code == "seq_outside_tree"
        for old_size, new_size in ((0, 5), (6, 5)):
            with pytest.raises(tiles.InvalidProofRange) as bad_range:
                tiles.consistency_proof(connection, big_chain, old_size, new_size)
            assert bad_range.value.code == "invalid_proof_range"
        with pytest.raises(tiles.SizeBeyondHead):
            tiles.consistency_proof(connection, big_chain, 1, BIG_SIZE + 1)
