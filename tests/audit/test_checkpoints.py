"""Signed checkpoints (audit.checkpoints): what is signed, keys and rotation, refusals, races."""

from __future__ import annotations

import base64
import multiprocessing
import os
import stat
from itertools import pairwise

import pytest
import sqlalchemy
from sqlalchemy import insert, select
from sqlalchemy.engine import Engine

from audit import checkpoints, tiles
from audit.checkpoints import CheckpointInconsistent, sign_checkpoint
from audit.models import Checkpoint, CheckpointKey, MerkleNode
from audit.note import NoteError, open_note, parse_checkpoint, parse_vkey
from ledger import errors
from ledger.chain import Draft, append_batch, head
from ledger.merkle import verify_consistency
from ledger.programmes import get_programme
from ledger.storage import create_engine, read_transaction, write_transaction
from tests.conftest import make_village
from tests.ledger.test_operations_doc import app_role_engine  # noqa: F401  (a fixture)

SPAWN = multiprocessing.get_context("spawn")
SIGNER_ROUNDS = 15
APPENDER_ROUNDS = 15
WORKERS_TIMEOUT_SECONDS = 180


def add_entries(engine: Engine, programme: str, count: int) -> None:
    append_batch(engine, programme, [Draft("admin", [], "system:test", metadata={"n": n})
                                     for n in range(count)])


def programme_id(engine: Engine, programme: str) -> int:
    return get_programme(engine, programme).id


def stored(engine: Engine, programme: str) -> list[checkpoints.StoredCheckpoint]:
    with read_transaction(engine) as connection:
        return checkpoints.list_checkpoints(connection, programme_id(engine, programme))


def opens_with(note: str, vkey: str) -> bool:
    try:
        open_note(note, [parse_vkey(vkey)])
    except NoteError:
        return False
    return True


def test_a_checkpoint_signs_the_chain_head(village, monkeypatch):
    monkeypatch.delenv(checkpoints.ORIGIN_PREFIX_VARIABLE, raising=False)
    add_entries(village.engine, village.code, 300)
    signed = sign_checkpoint(village.engine, village.code)
    tip = head(village.engine, village.code)
    origin = f"jifen-ledger/{village.code}"
    assert signed.size == tip.size == 300 and signed.root == tip.root
    text, signers = open_note(signed.note, [parse_vkey(signed.vkey)])
    assert text == f"{origin}\n300\n{base64.b64encode(tip.root).decode()}\n"
    assert signed.note.startswith(text + "\n\u2014 " + origin + " ")
    assert [verifier.vkey for verifier in signers] == [signed.vkey]
    assert checkpoints.published_vkeys(village.engine, village.code) == [signed.vkey]
    assert stored(village.engine, village.code) == [signed]
    assert checkpoints.latest_signed(village.engine, village.code) == signed


def test_signing_again_without_new_entries_returns_the_same_checkpoint(village):
    add_entries(village.engine, village.code, 5)
    first = sign_checkpoint(village.engine, village.code)
    assert sign_checkpoint(village.engine, village.code) == first
    assert stored(village.engine, village.code) == [first]


def test_every_checkpoint_extends_the_one_before(village):
    for count in (1, 255, 2, 300):
        add_entries(village.engine, village.code, count)
        sign_checkpoint(village.engine, village.code)
    found = stored(village.engine, village.code)
    assert [checkpoint.size for checkpoint in found] == [1, 256, 258, 558]
    with read_transaction(village.engine) as connection:
        identifier = programme_id(village.engine, village.code)
        for old, new in pairwise(found):
            proof = tiles.consistency_proof(connection, identifier, old.size, new.size)
            verify_consistency(old.size, new.size, old.root, new.root, proof)


def test_an_empty_chain_has_nothing_to_sign(village):
    with pytest.raises(checkpoints.EmptyChain) as refused:
        sign_checkpoint(village.engine, village.code)
    assert refused.value.code == "empty_chain"
    with pytest.raises(checkpoints.NoCheckpoint) as none:
        checkpoints.latest_signed(village.engine, village.code)
    assert none.value.code == "no_checkpoint"


def test_the_origin_prefix_is_configurable_and_fixed_at_the_first_key(village, monkeypatch):
    monkeypatch.setenv(checkpoints.ORIGIN_PREFIX_VARIABLE, "jifen.example-town.gov.cn")
    add_entries(village.engine, village.code, 3)
    first = sign_checkpoint(village.engine, village.code)
    origin = f"jifen.example-town.gov.cn/{village.code}"
    assert first.note.startswith(origin + "\n3\n")
    monkeypatch.setenv(checkpoints.ORIGIN_PREFIX_VARIABLE, "elsewhere.example")
    rotated = checkpoints.rotate_key(village.engine, village.code)
    add_entries(village.engine, village.code, 1)
    second = sign_checkpoint(village.engine, village.code)
    assert rotated.vkey.startswith(origin + "+")
    assert second.note.startswith(origin + "\n4\n")


def test_a_bad_origin_prefix_is_refused(village, monkeypatch):
    monkeypatch.setenv(checkpoints.ORIGIN_PREFIX_VARIABLE, "two words")
    add_entries(village.engine, village.code, 1)
    with pytest.raises(errors.InvalidEntry, match=checkpoints.ORIGIN_PREFIX_VARIABLE):
        sign_checkpoint(village.engine, village.code)
    assert stored(village.engine, village.code) == []


def test_rotation_signs_with_the_new_key_and_keeps_the_old_one_published(village):
    add_entries(village.engine, village.code, 10)
    old = sign_checkpoint(village.engine, village.code)
    new_key = checkpoints.rotate_key(village.engine, village.code)
    add_entries(village.engine, village.code, 10)
    new = sign_checkpoint(village.engine, village.code)
    assert new.vkey == new_key.vkey != old.vkey
    assert opens_with(old.note, old.vkey) and not opens_with(old.note, new.vkey)
    assert opens_with(new.note, new.vkey) and not opens_with(new.note, old.vkey)
    keys = checkpoints.published_keys(village.engine, village.code)
    assert [(key.vkey, key.status) for key in keys] == [(new.vkey, "signing"),
                                                        (old.vkey, "retired")]
    assert keys[0].retired_at is None and keys[1].retired_at is not None
    assert stored(village.engine, village.code) == [old, new]


def test_rotating_before_the_first_checkpoint_makes_the_first_key(village):
    key = checkpoints.rotate_key(village.engine, village.code)
    add_entries(village.engine, village.code, 2)
    assert sign_checkpoint(village.engine, village.code).vkey == key.vkey


def test_seeds_go_to_the_key_directory_when_one_is_set(village, monkeypatch, tmp_path):
    monkeypatch.setenv(checkpoints.KEY_DIRECTORY_VARIABLE, str(tmp_path))
    add_entries(village.engine, village.code, 4)
    first = sign_checkpoint(village.engine, village.code)
    key_id = parse_vkey(first.vkey).key_id.hex()
    seed_file = tmp_path / f"{village.code}.checkpoint-{key_id}.seed"
    assert len(seed_file.read_bytes()) == checkpoints.SEED_BYTES
    assert stat.S_IMODE(os.stat(seed_file).st_mode) == 0o600
    with read_transaction(village.engine) as connection:
        assert connection.execute(select(CheckpointKey.secret_seed).where(
            CheckpointKey.vkey == first.vkey)).scalar_one() is None
    monkeypatch.delenv(checkpoints.KEY_DIRECTORY_VARIABLE)
    add_entries(village.engine, village.code, 1)
    with pytest.raises(checkpoints.CheckpointKeyUnavailable) as unavailable:
        sign_checkpoint(village.engine, village.code)
    assert unavailable.value.code == "signing_key_unavailable"
    assert stored(village.engine, village.code) == [first]


# -- refusals: rows written round the service, so each test has a database of its own ------


def insert_checkpoint(engine: Engine, programme: str, size: int, root: bytes) -> None:
    identifier = programme_id(engine, programme)
    with write_transaction(engine) as connection:
        key = connection.execute(select(CheckpointKey.id).where(
            CheckpointKey.programme_id == identifier)).scalar_one()
        connection.execute(insert(Checkpoint).values(
            programme_id=identifier, size=size, root_hash=root, note="forged\n",
            key_id=key, signed_at="2026-11-20T00:00:00.000000Z"))


@pytest.mark.parametrize(("forged_size", "case"), [(12, "an earlier size, another root"),
                                                    (20, "this size, another root"),
                                                    (25, "a size the chain never reached")])
def test_a_tree_inconsistent_with_a_signed_checkpoint_is_not_signed(fresh_engine, forged_size,
                                                                     case):
    village = make_village(fresh_engine)
    add_entries(fresh_engine, village.code, 10)
    sign_checkpoint(fresh_engine, village.code)
    add_entries(fresh_engine, village.code, 10)
    insert_checkpoint(fresh_engine, village.code, forged_size, bytes(32))
    before = stored(fresh_engine, village.code)
    with pytest.raises(CheckpointInconsistent) as refused:
        sign_checkpoint(fresh_engine, village.code)
    assert refused.value.code == "checkpoint_inconsistent", case
    assert stored(fresh_engine, village.code) == before


def test_a_stored_node_that_lies_stops_signing(fresh_engine):
    village = make_village(fresh_engine)
    add_entries(fresh_engine, village.code, 300)
    with write_transaction(fresh_engine) as connection:
        connection.execute(insert(MerkleNode).values(
            programme_id=programme_id(fresh_engine, village.code), level=8, index=0,
            hash=bytes(32)))
    with pytest.raises(CheckpointInconsistent, match="stored Merkle nodes"):
        sign_checkpoint(fresh_engine, village.code)
    assert stored(fresh_engine, village.code) == []


# -- two signers and an appender at once, from separate processes ----------------------------


def sign_repeatedly(url: str, programme: str, rounds: int, barrier) -> list[tuple[int, str]]:
    """Sign `rounds` times; return the (size, note) of each checkpoint returned."""
    engine = create_engine(url)
    barrier.wait(timeout=60)
    signed = []
    for _ in range(rounds):
        checkpoint = sign_checkpoint(engine, programme)
        signed.append((checkpoint.size, checkpoint.note))
    engine.dispose()
    return signed


def append_repeatedly(url: str, programme: str, rounds: int, barrier) -> list[tuple[int, str]]:
    engine = create_engine(url)
    barrier.wait(timeout=60)
    for _ in range(rounds):
        add_entries(engine, programme, 7)
    engine.dispose()
    return []


@pytest.mark.slow
def test_two_signers_at_once_never_sign_two_notes_for_one_size(village, database_url):
    add_entries(village.engine, village.code, 50)
    with SPAWN.Manager() as manager, SPAWN.Pool(3) as pool:
        barrier = manager.Barrier(3)
        jobs = [pool.apply_async(sign_repeatedly, (database_url, village.code, SIGNER_ROUNDS,
                                                   barrier)) for _ in range(2)]
        jobs.append(pool.apply_async(append_repeatedly, (database_url, village.code,
                                                         APPENDER_ROUNDS, barrier)))
        results = [job.get(timeout=WORKERS_TIMEOUT_SECONDS) for job in jobs]
    found = {checkpoint.size: checkpoint for checkpoint in stored(village.engine, village.code)}
    returned = results[0] + results[1]
    assert len(returned) == 2 * SIGNER_ROUNDS
    assert all(found[size].note == note for size, note in returned)
    vkey = checkpoints.published_vkeys(village.engine, village.code)
    assert len(vkey) == 1
    ordered = sorted(found.values(), key=lambda checkpoint: checkpoint.size)
    with read_transaction(village.engine) as connection:
        identifier = programme_id(village.engine, village.code)
        for checkpoint in ordered:
            text, _ = open_note(checkpoint.note, [parse_vkey(vkey[0])])
            assert parse_checkpoint(text).root == checkpoint.root
        for old, new in pairwise(ordered):
            verify_consistency(old.size, new.size, old.root, new.root,
                               tiles.consistency_proof(connection, identifier, old.size,
                                                       new.size))
    final = sign_checkpoint(village.engine, village.code)
    assert final.size == 50 + 7 * APPENDER_ROUNDS


def test_signing_and_rotating_work_under_the_least_privilege_role(app_role_engine):  # noqa: F811
    """docs/OPERATIONS.md's service role may sign and rotate, and cannot rewrite a checkpoint."""
    _, app_engine = app_role_engine
    village = make_village(app_engine)
    add_entries(app_engine, village.code, 300)
    first = sign_checkpoint(app_engine, village.code)
    checkpoints.rotate_key(app_engine, village.code)
    add_entries(app_engine, village.code, 1)
    assert sign_checkpoint(app_engine, village.code).vkey != first.vkey
    for statement in ("UPDATE checkpoints SET note = 'forged'", "DELETE FROM merkle_nodes"):
        with pytest.raises(sqlalchemy.exc.ProgrammingError, match="permission denied"):
            with app_engine.begin() as connection:
                connection.execute(sqlalchemy.text(statement))
