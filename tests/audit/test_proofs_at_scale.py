"""Proofs at scale: a chain of 100,000 entries, proved against its signed checkpoints.

The chain is built through `ledger.chain.append_batch` (two batches of 50,000),
so the leaves are real entries. Every proof is checked two ways: it verifies
against the root of a checkpoint whose signature verifies, and it equals the
proof an in-memory tree over the same leaves gives.
"""

from __future__ import annotations

import random
import time

from sqlalchemy import select

from audit import checkpoints, proofs
from audit.note import open_note, parse_checkpoint, parse_vkey
from audit.proof_file import verify_proof
from ledger.canonical import leaf_hash
from ledger.chain import MAX_BATCH_ENTRIES, Draft, append_batch
from ledger.merkle import (
    MemoryTree,
    consistency_proof,
    inclusion_proof,
    verify_consistency,
    verify_inclusion,
)
from ledger.models import Entry as EntryRow
from ledger.programmes import get_programme
from ledger.storage import read_transaction

ENTRIES = 100_000
LATER_ENTRIES = 777
SAMPLES = 200
PROOF_SECONDS_LIMIT = 0.05
"""Median time per proof allowed here (it is milliseconds; the bound only catches O(n))."""


def signed_root(checkpoint: checkpoints.StoredCheckpoint) -> bytes:
    text, _ = open_note(checkpoint.note, [parse_vkey(checkpoint.vkey)])
    parsed = parse_checkpoint(text)
    assert parsed.size == checkpoint.size
    return parsed.root


def test_proofs_for_random_entries_of_a_100000_entry_ledger_verify(village):
    engine, code = village.engine, village.code
    for start in range(0, ENTRIES, MAX_BATCH_ENTRIES):
        append_batch(engine, code, [Draft("admin", [], "system:test", metadata={"n": n})
                                    for n in range(start, start + MAX_BATCH_ENTRIES)])
    first = checkpoints.sign_checkpoint(engine, code)
    append_batch(engine, code, [Draft("admin", [], "system:test", metadata={"later": n})
                                for n in range(LATER_ENTRIES)])
    second = checkpoints.sign_checkpoint(engine, code)
    assert (first.size, second.size) == (ENTRIES, ENTRIES + LATER_ENTRIES)
    first_root, second_root = signed_root(first), signed_root(second)

    with read_transaction(engine) as connection:
        leaves = connection.execute(
            select(EntryRow.hash).where(EntryRow.programme_id == get_programme(engine, code).id)
            .order_by(EntryRow.seq)).scalars().all()
    tree = MemoryTree(bytes(leaf) for leaf in leaves)
    assert tree.root(ENTRIES) == first_root and tree.root() == second_root

    chooser = random.Random(100_000)
    durations = []
    for _ in range(SAMPLES):
        seq = chooser.randrange(ENTRIES)
        started = time.perf_counter()
        found = proofs.inclusion(engine, code, seq, ENTRIES)
        durations.append(time.perf_counter() - started)
        verify_inclusion(seq, ENTRIES, found.leaf_hash, found.proof, first_root)
        assert found.proof == inclusion_proof(seq, ENTRIES, tree.get_node)
        assert found.checkpoint == first

        old_size = chooser.randrange(1, second.size + 1)
        started = time.perf_counter()
        linked = proofs.consistency(engine, code, old_size)
        durations.append(time.perf_counter() - started)
        assert linked.new_size == second.size
        assert linked.old_root == tree.root(old_size)
        verify_consistency(old_size, second.size, linked.old_root, second_root, linked.proof)
        assert linked.proof == consistency_proof(old_size, second.size, tree.get_node)
    assert sorted(durations)[len(durations) // 2] < PROOF_SECONDS_LIMIT

    between = proofs.consistency(engine, code, first.size, second.size)
    verify_consistency(first.size, second.size, first_root, second_root, between.proof)
    for seq in (0, ENTRIES - 1, chooser.randrange(second.size)):
        verified = verify_proof(proofs.proof_file(engine, code, seq), [second.vkey])
        assert leaf_hash(verified.entry_bytes) == tree.get_node(0, seq)
