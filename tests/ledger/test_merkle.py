"""Tests for ledger.merkle: RFC 6962 / RFC 9162 roots, frontier and proofs.

Public vectors come from transparency-dev/merkle (see the README beside
them); they are read from shared/vectors next to the repository and the
vector tests skip, with a reason, where that folder is absent.
"""

from __future__ import annotations

import base64
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from ledger.canonical import EMPTY_ROOT, leaf_hash, node_hash
from ledger.merkle import (
    Frontier,
    MemoryTree,
    ProofError,
    consistency_proof,
    inclusion_proof,
    merkle_root,
    root_from_consistency_proof,
    root_from_inclusion_proof,
    subtree_root,
    verify_consistency,
    verify_inclusion,
)

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
MERKLE_VECTORS = Path(__file__).resolve().parents[3] / "shared" / "vectors" / "merkle-rfc6962"
MISSING_VECTORS_REASON = f"public test vectors not found at {MERKLE_VECTORS}"


def vector_params(subfolder: str) -> list:
    """One pytest param per JSON vector file, or a single visibly skipped param."""
    folder = MERKLE_VECTORS / "testdata" / subfolder
    files = sorted(folder.rglob("*.json")) if folder.is_dir() else []
    if not files:
        return [pytest.param(None, marks=pytest.mark.skip(reason=MISSING_VECTORS_REASON))]
    return [pytest.param(path, id=str(path.relative_to(folder))) for path in files]


def decode(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def load_reference_tree() -> dict:
    path = MERKLE_VECTORS / "rfc6962-reference-tree.json"
    if not path.is_file():
        pytest.skip(MISSING_VECTORS_REASON)
    return json.loads(path.read_text())


def reference_leaf_hashes(reference: dict) -> list[bytes]:
    return [leaf_hash(bytes.fromhex(data)) for data in reference["leaf_inputs_hex"]]


def sample_leaf_hashes(count: int) -> list[bytes]:
    return [leaf_hash(index.to_bytes(8, "big")) for index in range(count)]


SMALL_LEAVES = sample_leaf_hashes(70)
SMALL_TREE = MemoryTree(SMALL_LEAVES)


# --- public vectors -------------------------------------------------------


@pytest.mark.parametrize("vector_path", vector_params("inclusion"))
def test_inclusion_vector(vector_path: Path) -> None:
    vector = json.loads(vector_path.read_text())
    arguments = (
        vector["leafIdx"],
        vector["treeSize"],
        decode(vector["leafHash"]),
        [decode(proof_hash) for proof_hash in vector["proof"] or []],
        decode(vector["root"]),
    )
    if vector["wantErr"]:
        with pytest.raises(ProofError):
            verify_inclusion(*arguments)
    else:
        verify_inclusion(*arguments)


@pytest.mark.parametrize("vector_path", vector_params("consistency"))
def test_consistency_vector(vector_path: Path) -> None:
    vector = json.loads(vector_path.read_text())
    arguments = (
        vector["size1"],
        vector["size2"],
        decode(vector["root1"]),
        decode(vector["root2"]),
        [decode(proof_hash) for proof_hash in vector["proof"] or []],
    )
    if vector["wantErr"]:
        with pytest.raises(ProofError):
            verify_consistency(*arguments)
    else:
        verify_consistency(*arguments)


def test_reference_tree_roots_for_every_size() -> None:
    reference = load_reference_tree()
    leaves = reference_leaf_hashes(reference)
    tree = MemoryTree(leaves)
    frontier = Frontier()
    for size_text, root_hex in reference["root_by_tree_size_hex"].items():
        size = int(size_text)
        expected_root = bytes.fromhex(root_hex)
        assert merkle_root(leaves[:size]) == expected_root, size
        assert tree.root(size) == expected_root, size
        while frontier.size < size:
            frontier.append(leaves[frontier.size])
        assert frontier.root() == expected_root, size
    assert len(reference["root_by_tree_size_hex"]) == len(leaves) + 1


def test_reference_tree_node_hashes() -> None:
    reference = load_reference_tree()
    tree = MemoryTree(reference_leaf_hashes(reference))
    for level, node_hashes in enumerate(reference["node_hashes_by_level_hex"]):
        for index, node_hex in enumerate(node_hashes):
            assert tree.get_node(level, index).hex() == node_hex


def test_reference_hasher_vectors() -> None:
    reference = load_reference_tree()
    empty_root, empty_leaf, leaf, node = (
        bytes.fromhex(vector["hex"]) for vector in reference["hasher_vectors"]
    )
    assert EMPTY_ROOT == empty_root == merkle_root([])
    assert leaf_hash(b"") == empty_leaf
    assert leaf_hash(b"L123456") == leaf
    assert node_hash(b"N123", b"N456") == node


def happy_vectors(subfolder: str) -> list[dict]:
    return [
        json.loads(path.read_text())
        for path in sorted((MERKLE_VECTORS / "testdata" / subfolder).rglob("happy-path.json"))
    ]


def test_generated_proofs_equal_reference_happy_paths() -> None:
    """Our proofs are byte-identical to the reference's, not merely valid."""
    reference = load_reference_tree()
    tree = MemoryTree(reference_leaf_hashes(reference))
    compared = 0
    for vector in happy_vectors("inclusion"):
        if decode(vector["root"]) != tree.root(vector["treeSize"]):
            continue  # a tree over other leaves
        proof = inclusion_proof(vector["leafIdx"], vector["treeSize"], tree.get_node)
        assert proof == [decode(proof_hash) for proof_hash in vector["proof"] or []]
        compared += 1
    for vector in happy_vectors("consistency"):
        if decode(vector["root2"]) != tree.root(vector["size2"]):
            continue
        proof = consistency_proof(vector["size1"], vector["size2"], tree.get_node)
        assert proof == [decode(proof_hash) for proof_hash in vector["proof"] or []]
        compared += 1
    assert compared >= 8


# --- roots ------------------------------------------------------------------


def recursive_root(leaves: list[bytes]) -> bytes:
    """RFC 9162 2.1.1 verbatim, as an independent oracle for small trees."""
    if not leaves:
        return EMPTY_ROOT
    if len(leaves) == 1:
        return leaves[0]
    split = 1 << (len(leaves) - 1).bit_length() - 1
    return node_hash(recursive_root(leaves[:split]), recursive_root(leaves[split:]))


def test_merkle_root_matches_rfc_definition() -> None:
    for size in range(0, 70):
        assert merkle_root(SMALL_LEAVES[:size]) == recursive_root(SMALL_LEAVES[:size])
        assert SMALL_TREE.root(size) == recursive_root(SMALL_LEAVES[:size])


def test_merkle_root_of_a_million_leaves() -> None:
    """Identical leaves make the expected root cheap: a perfect subtree of 2**k of
    them hashes to the k-times self-paired leaf."""
    leaf = leaf_hash(b"same")
    size = 1_000_003
    perfect_by_level = [leaf]
    for _ in range(size.bit_length()):
        perfect_by_level.append(node_hash(perfect_by_level[-1], perfect_by_level[-1]))
    subtree_hashes = [
        perfect_by_level[level] for level in reversed(range(size.bit_length())) if size >> level & 1
    ]
    expected_root = subtree_hashes[-1]
    for subtree_hash in reversed(subtree_hashes[:-1]):
        expected_root = node_hash(subtree_hash, expected_root)
    assert merkle_root([leaf] * size) == expected_root


def test_subtree_root_of_inner_range() -> None:
    assert subtree_root(32, 45, SMALL_TREE.get_node) == merkle_root(SMALL_LEAVES[32:45])
    assert subtree_root(5, 5, SMALL_TREE.get_node) == EMPTY_ROOT


# --- frontier ----------------------------------------------------------------


def test_frontier_root_for_every_size_up_to_300() -> None:
    leaves = sample_leaf_hashes(300)
    frontier = Frontier()
    assert frontier.root() == EMPTY_ROOT
    for size in range(1, 301):
        frontier.append(leaves[size - 1])
        expected_root = merkle_root(leaves[:size])
        assert frontier.size == size
        assert frontier.root() == expected_root
        serialized = frontier.to_bytes()
        assert len(serialized) == size.bit_count() * 32
        restored = Frontier.from_bytes(size, serialized)
        assert restored.size == size
        assert restored.root() == expected_root
        if size < 300:
            restored.append(leaves[size])
            assert restored.root() == merkle_root(leaves[: size + 1])


def test_frontier_layout_is_largest_subtree_first() -> None:
    frontier = Frontier()
    frontier.extend(SMALL_LEAVES[:13])
    assert frontier.to_bytes() == (
        merkle_root(SMALL_LEAVES[0:8]) + merkle_root(SMALL_LEAVES[8:12]) + SMALL_LEAVES[12]
    )
    assert Frontier.from_bytes(0, b"").root() == EMPTY_ROOT


def test_frontier_copy_is_independent() -> None:
    frontier = Frontier()
    frontier.extend(SMALL_LEAVES[:5])
    duplicate = frontier.copy()
    duplicate.append(SMALL_LEAVES[5])
    assert frontier.size == 5
    assert frontier.root() == merkle_root(SMALL_LEAVES[:5])
    assert duplicate.root() == merkle_root(SMALL_LEAVES[:6])


def test_frontier_append_subtree_equals_appending_its_leaves() -> None:
    leaves = sample_leaf_hashes(100)
    for start in range(0, 64):
        for level in range(0, 6):
            if start % (1 << level) or start + (1 << level) > len(leaves):
                continue
            by_leaf = Frontier()
            by_leaf.extend(leaves[: start + (1 << level)])
            by_subtree = Frontier()
            by_subtree.extend(leaves[:start])
            by_subtree.append_subtree(level, merkle_root(leaves[start : start + (1 << level)]))
            assert by_subtree.size == by_leaf.size
            assert by_subtree.to_bytes() == by_leaf.to_bytes()


def test_frontier_append_subtree_refuses_a_misaligned_subtree() -> None:
    frontier = Frontier()
    frontier.extend(SMALL_LEAVES[:6])
    with pytest.raises(ValueError, match="multiple of its size"):
        frontier.append_subtree(2, SMALL_LEAVES[0])
    frontier.append_subtree(1, SMALL_LEAVES[0])
    assert frontier.size == 8


def test_frontier_rejects_malformed_input() -> None:
    with pytest.raises(ValueError, match="needs 64 bytes"):
        Frontier.from_bytes(5, b"\x00" * 32)
    with pytest.raises(ValueError, match="negative"):
        Frontier.from_bytes(-1, b"")
    with pytest.raises(ValueError, match="32 bytes"):
        Frontier().append(b"short")


# --- proofs ------------------------------------------------------------------


def test_inclusion_proofs_verify_for_all_sizes_up_to_70() -> None:
    for size in range(1, 71):
        root = SMALL_TREE.root(size)
        for index in range(size):
            proof = inclusion_proof(index, size, SMALL_TREE.get_node)
            verify_inclusion(index, size, SMALL_LEAVES[index], proof, root)


def test_consistency_proofs_verify_for_all_sizes_up_to_70() -> None:
    roots = [SMALL_TREE.root(size) for size in range(71)]
    for new_size in range(1, 71):
        for old_size in range(1, new_size + 1):
            proof = consistency_proof(old_size, new_size, SMALL_TREE.get_node)
            verify_consistency(old_size, new_size, roots[old_size], roots[new_size], proof)


def test_tampered_proofs_are_rejected() -> None:
    size, index = 53, 17
    root = SMALL_TREE.root(size)
    proof = inclusion_proof(index, size, SMALL_TREE.get_node)
    for position in range(len(proof)):
        tampered = list(proof)
        tampered[position] = bytes([tampered[position][0] ^ 1]) + tampered[position][1:]
        with pytest.raises(ProofError, match="does not match"):
            verify_inclusion(index, size, SMALL_LEAVES[index], tampered, root)
    with pytest.raises(ProofError, match="does not match"):
        verify_inclusion(index + 1, size, SMALL_LEAVES[index], proof, root)

    old_size, new_size = 21, 53
    proof = consistency_proof(old_size, new_size, SMALL_TREE.get_node)
    for position in range(len(proof)):
        tampered = list(proof)
        tampered[position] = bytes([tampered[position][0] ^ 1]) + tampered[position][1:]
        with pytest.raises(ProofError, match="does not match"):
            verify_consistency(old_size, new_size, SMALL_TREE.root(old_size), root, tampered)


def test_proofs_in_a_large_tree_use_logarithmic_node_reads() -> None:
    size = 100_003
    leaves = sample_leaf_hashes(size)
    tree = MemoryTree(leaves)
    node_reads = []

    def counting_get_node(level: int, index: int) -> bytes:
        node_reads.append((level, index))
        return tree.get_node(level, index)

    generator = random.Random(6962)
    for _ in range(30):
        new_size = generator.randint(2, size)
        old_size = generator.randint(1, new_size - 1)
        index = generator.randrange(new_size)
        new_root = tree.root(new_size)

        node_reads.clear()
        proof = inclusion_proof(index, new_size, counting_get_node)
        assert len(node_reads) <= 3 * new_size.bit_length()
        verify_inclusion(index, new_size, leaves[index], proof, new_root)

        node_reads.clear()
        proof = consistency_proof(old_size, new_size, counting_get_node)
        assert len(node_reads) <= 3 * new_size.bit_length() + 1
        verify_consistency(old_size, new_size, tree.root(old_size), new_root, proof)
    frontier = Frontier()
    frontier.extend(leaves)
    assert frontier.root() == tree.root() == merkle_root(leaves)


def test_proof_generation_rejects_impossible_requests() -> None:
    with pytest.raises(ValueError, match="outside a tree of size 5"):
        inclusion_proof(5, 5, SMALL_TREE.get_node)
    with pytest.raises(ValueError, match="0 < old size <= new size"):
        consistency_proof(0, 5, SMALL_TREE.get_node)
    with pytest.raises(ValueError, match="0 < old size <= new size"):
        consistency_proof(6, 5, SMALL_TREE.get_node)
    assert consistency_proof(5, 5, SMALL_TREE.get_node) == []
    with pytest.raises(ValueError, match="not a perfect subtree"):
        SMALL_TREE.get_node(3, 9)


def test_verification_error_messages() -> None:
    root = SMALL_TREE.root(8)
    proof = inclusion_proof(3, 8, SMALL_TREE.get_node)
    with pytest.raises(ProofError, match="outside a tree of size 8"):
        verify_inclusion(8, 8, SMALL_LEAVES[3], proof, root)
    with pytest.raises(ProofError, match="outside a tree of size 8"):
        verify_inclusion(-1, 8, SMALL_LEAVES[3], proof, root)
    with pytest.raises(ProofError, match="must have 3 hashes, got 2"):
        verify_inclusion(3, 8, SMALL_LEAVES[3], proof[:2], root)
    with pytest.raises(ProofError, match="proof hash 1 has 31 bytes"):
        verify_inclusion(3, 8, SMALL_LEAVES[3], [proof[0], proof[1][:31], proof[2]], root)
    with pytest.raises(ProofError, match="leaf hash has 0 bytes"):
        verify_inclusion(3, 8, b"", proof, root)
    assert root_from_inclusion_proof(3, 8, SMALL_LEAVES[3], proof) == root

    proof = consistency_proof(3, 8, SMALL_TREE.get_node)
    assert root_from_consistency_proof(3, 8, SMALL_TREE.root(3), proof) == root
    with pytest.raises(ProofError, match="old tree of size 3"):
        root_from_consistency_proof(3, 8, SMALL_TREE.root(4), proof)
    with pytest.raises(ProofError, match="empty tree is meaningless"):
        verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    with pytest.raises(ProofError, match="must be empty"):
        verify_consistency(8, 8, root, root, proof)
    with pytest.raises(ProofError, match="must have 4 hashes, got 3"):
        verify_consistency(3, 8, SMALL_TREE.root(3), root, proof[:3])


# --- dependency hygiene ------------------------------------------------------


def test_modules_import_only_the_standard_library() -> None:
    """The offline verifier has only the stdlib (and cryptography): keep it that way."""
    script = (
        "import json, sys\n"
        "before = set(sys.modules)\n"
        "import ledger.canonical, ledger.merkle\n"
        "print(json.dumps(sorted(set(sys.modules) - before)))\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPOSITORY_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPOSITORY_ROOT)},
        capture_output=True,
        text=True,
        check=True,
    )
    loaded = json.loads(completed.stdout)
    assert {"ledger.canonical", "ledger.merkle"} <= set(loaded)
    outside_stdlib = [
        name
        for name in loaded
        if name.partition(".")[0] not in sys.stdlib_module_names
        and name not in {"ledger", "ledger.canonical", "ledger.merkle"}
    ]
    assert outside_stdlib == []
    assert "sqlalchemy" not in loaded and "flask" not in loaded
