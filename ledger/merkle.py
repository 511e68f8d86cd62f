"""RFC 6962 / RFC 9162 Merkle tree: roots, incremental frontier, proofs.

The ledger's entries are the leaves of an append-only Merkle tree (the
"certificate transparency" tree of RFC 9162 section 2.1): a signed root
commits to every entry so far, an inclusion proof shows one entry is in it,
and a consistency proof shows a later tree only appended to an earlier one.

Hashing is SHA-256 with domain separation, from `ledger.canonical`:
leaf = SHA-256(0x00 || data), node = SHA-256(0x01 || left || right), and
the empty tree's root is SHA-256 of no bytes. The tree over n > 1 leaves
splits at k, the largest power of two below n: root = node(MTH(first k),
MTH(rest)).

Node addressing: node (level, index) is the root of the perfect subtree
over leaves [index * 2**level, (index + 1) * 2**level); level 0 is the leaves.
Such a node never changes once its last leaf exists, so a storage layer can
persist them (e.g. as tiles) and serve proofs through a `get_node(level,
index)` callable in O(log n) reads. Subtrees that are not yet perfect (the
right border of a tree whose size is not a power of two) are recomputed from
perfect nodes when a proof needs them.

Verification follows transparency-dev/merkle `proof/verify.go` exactly,
including what it rejects. Standard library only, for the offline verifier.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from ledger.canonical import EMPTY_ROOT, node_hash

__all__ = [
    "HASH_SIZE_BYTES",
    "Frontier",
    "MemoryTree",
    "NodeGetter",
    "ProofError",
    "consistency_proof",
    "inclusion_proof",
    "merkle_root",
    "root_from_consistency_proof",
    "root_from_inclusion_proof",
    "subtree_root",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE_BYTES = 32

NodeGetter = Callable[[int, int], bytes]
"""`get_node(level, index)`: hash of the perfect subtree over leaves
[index * 2**level, (index + 1) * 2**level), which must all exist."""


class ProofError(ValueError):
    """A Merkle proof is malformed or does not match the claimed root."""


def merkle_root(leaf_hashes: Sequence[bytes]) -> bytes:
    """Merkle tree hash (RFC 9162 2.1.1) of the given leaf hashes, in n - 1 node hashes.

    Hashes level by level, pairing neighbours and carrying an unpaired last
    node up unchanged; that builds exactly the largest-power-of-two split
    tree. Iterative, so a million leaves need no deep recursion.
    """
    level = list(leaf_hashes)
    if not level:
        return EMPTY_ROOT
    while len(level) > 1:
        paired = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


def _fold_right(subtree_hashes_largest_first: Sequence[bytes]) -> bytes:
    """Root over consecutive perfect subtrees of strictly decreasing size."""
    root = subtree_hashes_largest_first[-1]
    for subtree_hash in reversed(subtree_hashes_largest_first[:-1]):
        root = node_hash(subtree_hash, root)
    return root


def subtree_root(start: int, end: int, get_node: NodeGetter) -> bytes:
    """Merkle tree hash of leaves [start, end), from O(log n) perfect nodes.

    Requires `start` to be a multiple of the largest power of two not above
    `end - start` (true for start 0, and for every subtree of an RFC 6962
    tree), so the range splits into aligned perfect subtrees, largest first,
    which is the RFC's own split.
    """
    if end <= start:
        return EMPTY_ROOT
    leaf_count = end - start
    subtree_hashes = []
    position = start
    for level in reversed(range(leaf_count.bit_length())):
        if leaf_count >> level & 1:
            subtree_hashes.append(get_node(level, position >> level))
            position += 1 << level
    return _fold_right(subtree_hashes)


def _check_hash(value: bytes, what: str) -> None:
    if len(value) != HASH_SIZE_BYTES:
        raise ValueError(f"{what} must be {HASH_SIZE_BYTES} bytes, got {len(value)}")


class Frontier:
    """Compact range [0, size): just enough state to extend the tree and compute its root.

    Holds one hash per set bit of `size`: the roots of the perfect subtrees
    that tile [0, size), largest (leftmost) first. For size 13 = 0b1101 that
    is the subtrees over leaves [0, 8), [8, 12) and [12, 13).

    `append` is O(1) amortised (it merges the trailing equal-size subtrees,
    O(log n) in the worst case); `root` is O(log n); memory is O(log n).

    Serialized layout (`to_bytes`): the concatenation of those 32-byte
    hashes, largest subtree first, popcount(size) * 32 bytes in all; the size
    itself is stored alongside by the caller and passed to `from_bytes`.
    """

    __slots__ = ("_subtree_hashes", "size")

    def __init__(self) -> None:
        self.size = 0
        self._subtree_hashes: list[bytes] = []

    @classmethod
    def from_bytes(cls, size: int, data: bytes) -> Frontier:
        """Rebuild a frontier from `size` and its `to_bytes()` output."""
        if size < 0:
            raise ValueError(f"frontier size must not be negative, got {size}")
        expected_length = size.bit_count() * HASH_SIZE_BYTES
        if len(data) != expected_length:
            raise ValueError(
                f"a frontier of size {size} needs {expected_length} bytes, got {len(data)}"
            )
        frontier = cls()
        frontier.size = size
        frontier._subtree_hashes = [
            bytes(data[offset : offset + HASH_SIZE_BYTES])
            for offset in range(0, len(data), HASH_SIZE_BYTES)
        ]
        return frontier

    def to_bytes(self) -> bytes:
        return b"".join(self._subtree_hashes)

    def copy(self) -> Frontier:
        duplicate = Frontier()
        duplicate.size = self.size
        duplicate._subtree_hashes = self._subtree_hashes.copy()
        return duplicate

    def append(self, leaf_hash: bytes) -> None:
        """Add the next leaf; each trailing 1 bit of the old size is one merge."""
        self.append_subtree(0, leaf_hash)

    def append_subtree(self, level: int, subtree_hash: bytes) -> None:
        """Add the next 2**level leaves at once, given the hash of their perfect subtree.

        The subtree must start on a multiple of its own size (`size` divisible
        by 2**level), as every node of an RFC 6962 tree does; then the result
        is the same as appending its leaves one by one. This lets a verifier
        hash chunks of leaves in other processes and join them in order.
        """
        _check_hash(subtree_hash, "subtree hash")
        if level < 0 or self.size & ((1 << level) - 1):
            raise ValueError(
                f"a subtree of 2**{level} leaves cannot start at leaf {self.size}: "
                "it must start on a multiple of its size"
            )
        merged = subtree_hash
        remaining_size = self.size >> level
        while remaining_size & 1:
            merged = node_hash(self._subtree_hashes.pop(), merged)
            remaining_size >>= 1
        self._subtree_hashes.append(merged)
        self.size += 1 << level

    def extend(self, leaf_hashes: Iterable[bytes]) -> None:
        for leaf_hash in leaf_hashes:
            self.append(leaf_hash)

    def root(self) -> bytes:
        """Merkle tree hash of the leaves appended so far."""
        if not self._subtree_hashes:
            return EMPTY_ROOT
        return _fold_right(self._subtree_hashes)

    def __repr__(self) -> str:
        return f"Frontier(size={self.size}, root={self.root().hex()})"


class MemoryTree:
    """All perfect nodes of a tree, in memory: a reference `get_node` for tests and tools.

    Level 0 holds the leaf hashes; level k holds the (level k-1 count) // 2
    perfect parents. Memory is about 2n hashes.
    """

    def __init__(self, leaf_hashes: Iterable[bytes]) -> None:
        level = list(leaf_hashes)
        self._levels = [level]
        while len(level) > 1:
            level = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
            self._levels.append(level)

    @property
    def size(self) -> int:
        return len(self._levels[0])

    def get_node(self, level: int, index: int) -> bytes:
        if 0 <= level < len(self._levels) and 0 <= index < len(self._levels[level]):
            return self._levels[level][index]
        raise ValueError(
            f"node (level {level}, index {index}) is not a perfect subtree of {self.size} leaves"
        )

    def root(self, size: int | None = None) -> bytes:
        """Root of the tree over the first `size` leaves (default: all of them)."""
        if size is None:
            size = self.size
        if not 0 <= size <= self.size:
            raise ValueError(f"size {size} is outside 0..{self.size}")
        return subtree_root(0, size, self.get_node)


def _node_path(level: int, index: int, size: int, get_node: NodeGetter) -> list[bytes]:
    """Hashes needed to recompute the root of a `size`-leaf tree from node (level, index).

    Bottom-up, as RFC 9162 orders proofs. Below the level where the paths to
    this node and to the last leaf split ("inner" part) every sibling is a
    perfect node, except the topmost one, which covers the right border and
    may be incomplete: it is then recomputed from perfect nodes. Above that
    ("border" part) the path runs along the right edge and only left siblings
    exist, all perfect.
    """
    last_index = (size - 1) >> level
    inner_count = (index ^ last_index).bit_length()
    proof = []
    for height in range(inner_count):
        sibling_level = level + height
        sibling_index = (index >> height) ^ 1
        sibling_start = sibling_index << sibling_level
        sibling_end = min(size, (sibling_index + 1) << sibling_level)
        if sibling_end - sibling_start == 1 << sibling_level:
            proof.append(get_node(sibling_level, sibling_index))
        else:
            proof.append(subtree_root(sibling_start, sibling_end, get_node))
    for height in range(inner_count, (index >> inner_count).bit_length() + inner_count):
        if index >> height & 1:
            proof.append(get_node(level + height, (index >> height) - 1))
    return proof


def inclusion_proof(index: int, size: int, get_node: NodeGetter) -> list[bytes]:
    """Inclusion proof (RFC 9162 2.1.3.1) for leaf `index` in the tree of `size` leaves.

    O(log size) calls to `get_node`, all for nodes within the first `size`
    leaves, so proofs for older tree sizes work from the same node store.
    """
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is outside a tree of size {size}")
    return _node_path(0, index, size, get_node)


def consistency_proof(old_size: int, new_size: int, get_node: NodeGetter) -> list[bytes]:
    """Consistency proof (RFC 9162 2.1.4.1) that the `old_size` tree is a prefix of `new_size`.

    It is the path from the largest perfect subtree ending at `old_size`
    up to the new root, preceded by that subtree's own hash unless it is the
    whole old tree (old_size a power of two: the verifier already has it as
    the old root). `old_size == new_size` gives the empty proof; `old_size`
    0 is refused because verifiers reject proofs from the empty tree.
    """
    if not 0 < old_size <= new_size:
        raise ValueError(
            f"consistency proofs need 0 < old size <= new size, got {old_size} and {new_size}"
        )
    if old_size == new_size:
        return []
    level = (old_size & -old_size).bit_length() - 1
    index = (old_size - 1) >> level
    path = _node_path(level, index, new_size, get_node)
    if index == 0:
        return path
    return [get_node(level, index), *path]


def _check_proof_hashes(proof: Sequence[bytes]) -> None:
    for position, proof_hash in enumerate(proof):
        if len(proof_hash) != HASH_SIZE_BYTES:
            raise ProofError(
                f"proof hash {position} has {len(proof_hash)} bytes, want {HASH_SIZE_BYTES}"
            )


def _decompose(index: int, size: int) -> tuple[int, int]:
    """Lengths of the inner and border parts of an inclusion proof for leaf `index`."""
    inner_count = (index ^ (size - 1)).bit_length()
    border_count = (index >> inner_count).bit_count()
    return inner_count, border_count


def _chain_inner(seed: bytes, proof: Sequence[bytes], index: int) -> bytes:
    for height, proof_hash in enumerate(proof):
        if index >> height & 1:
            seed = node_hash(proof_hash, seed)
        else:
            seed = node_hash(seed, proof_hash)
    return seed


def _chain_inner_right(seed: bytes, proof: Sequence[bytes], index: int) -> bytes:
    """Like `_chain_inner` but only left siblings: the same subtree before later leaves."""
    for height, proof_hash in enumerate(proof):
        if index >> height & 1:
            seed = node_hash(proof_hash, seed)
    return seed


def _chain_border_right(seed: bytes, proof: Sequence[bytes]) -> bytes:
    for proof_hash in proof:
        seed = node_hash(proof_hash, seed)
    return seed


def _require_match(calculated_root: bytes, expected_root: bytes, what: str) -> None:
    if calculated_root != expected_root:
        raise ProofError(
            f"{what}: calculated root {calculated_root.hex()} "
            f"does not match expected root {expected_root.hex()}"
        )


def root_from_inclusion_proof(
    index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes]
) -> bytes:
    """Root implied by an inclusion proof (RFC 9162 2.1.3.2); raises `ProofError` if malformed."""
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is outside a tree of size {size}")
    if len(leaf_hash) != HASH_SIZE_BYTES:
        raise ProofError(f"leaf hash has {len(leaf_hash)} bytes, want {HASH_SIZE_BYTES}")
    _check_proof_hashes(proof)
    inner_count, border_count = _decompose(index, size)
    if len(proof) != inner_count + border_count:
        raise ProofError(
            f"inclusion proof for leaf {index} in a tree of size {size} must have "
            f"{inner_count + border_count} hashes, got {len(proof)}"
        )
    root = _chain_inner(leaf_hash, proof[:inner_count], index)
    return _chain_border_right(root, proof[inner_count:])


def verify_inclusion(
    index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that leaf `index` with `leaf_hash` is in the `size`-leaf tree with `root`.

    Returns None on success; raises `ProofError` otherwise (index >= size,
    hashes that are not 32 bytes, wrong proof length, or root mismatch).
    """
    calculated_root = root_from_inclusion_proof(index, size, leaf_hash, proof)
    _require_match(calculated_root, root, f"inclusion of leaf {index} in tree of size {size}")


def root_from_consistency_proof(
    old_size: int, new_size: int, old_root: bytes, proof: Sequence[bytes]
) -> bytes:
    """New root implied by a consistency proof (RFC 9162 2.1.4.2), after checking `old_root`.

    Raises `ProofError` if the sizes are unusable, the proof is malformed,
    or the proof does not reproduce `old_root`.
    """
    if old_size < 0 or new_size < old_size:
        raise ProofError(f"need 0 <= old size <= new size, got {old_size} and {new_size}")
    if old_size == 0:
        raise ProofError("a consistency proof from the empty tree is meaningless")
    if old_size == new_size:
        if proof:
            raise ProofError("old size equals new size, so the proof must be empty")
        return old_root
    if not proof:
        raise ProofError(f"empty consistency proof from size {old_size} to {new_size}")
    _check_proof_hashes(proof)

    inner_count, border_count = _decompose(old_size - 1, new_size)
    shift = (old_size & -old_size).bit_length() - 1  # trailing zero bits of old_size
    inner_count -= shift  # shift < inner_count because old_size < new_size

    # The largest perfect subtree ending at old_size is the old root itself
    # when old_size is a power of two; otherwise the proof opens with it.
    opens_with_subtree = old_size != 1 << shift
    expected_count = opens_with_subtree + inner_count + border_count
    if len(proof) != expected_count:
        raise ProofError(
            f"consistency proof from size {old_size} to {new_size} must have "
            f"{expected_count} hashes, got {len(proof)}"
        )
    if opens_with_subtree:
        seed, rest = proof[0], proof[1:]
    else:
        seed, rest = old_root, proof

    mask = (old_size - 1) >> shift  # path position on level `shift`
    old_root_calculated = _chain_border_right(
        _chain_inner_right(seed, rest[:inner_count], mask), rest[inner_count:]
    )
    _require_match(old_root_calculated, old_root, f"old tree of size {old_size}")
    return _chain_border_right(_chain_inner(seed, rest[:inner_count], mask), rest[inner_count:])


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the `new_size` tree with `new_root` extends the `old_size` tree with `old_root`.

    Returns None on success; raises `ProofError` otherwise. As in the
    reference implementation: old_size 0 is an error even when new_size is
    0, equal sizes need an empty proof and equal roots, and the proof length
    must be exact.
    """
    calculated_root = root_from_consistency_proof(old_size, new_size, old_root, proof)
    _require_match(calculated_root, new_root, f"new tree of size {new_size}")
