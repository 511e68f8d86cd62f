"""C2SP signed notes and checkpoints, against the public vectors in ../shared/vectors/."""

from __future__ import annotations

import json

import pytest

from audit.note import (
    Checkpoint,
    NoteError,
    new_signer,
    open_note,
    parse_checkpoint,
    parse_skey,
    parse_vkey,
    sign,
)
from tests.conftest import SHARED_VECTORS

NOTE_VECTORS = SHARED_VECTORS / "signed-note" / "signed-note-vectors.json"


def vectors() -> list[dict]:
    if not NOTE_VECTORS.exists():
        pytest.skip(f"public test vectors not found at {NOTE_VECTORS}")
    return json.loads(NOTE_VECTORS.read_text(encoding="utf-8"))["vectors"]


def test_every_signed_note_vector_opens_or_is_refused_as_published():
    for vector in vectors():
        verifier = parse_vkey(vector["vkey"])
        if vector["expect"].startswith("valid"):
            text, signed_by = open_note(vector["note"], [verifier])
            assert vector["note"].startswith(text)
            assert signed_by == [verifier]
        else:
            with pytest.raises(NoteError):
                open_note(vector["note"], [verifier])


def test_signing_with_a_published_skey_reproduces_its_note_exactly():
    signed = [vector for vector in vectors() if "skey" in vector]
    assert signed
    for vector in signed:
        signer = parse_skey(vector["skey"])
        assert signer.verifier.vkey == vector["vkey"]
        text, _ = open_note(vector["note"], [signer.verifier])
        assert sign(text, signer) == vector["note"]


def test_a_checkpoint_round_trips_and_a_changed_byte_is_refused():
    signer = new_signer("jifen.example/xingfu-village")
    checkpoint = Checkpoint("jifen.example/xingfu-village", 64, bytes(range(32)))
    note = sign(checkpoint.text(), signer)
    text, _ = open_note(note, [parse_vkey(signer.verifier.vkey)])
    assert parse_checkpoint(text) == checkpoint
    with pytest.raises(NoteError, match="does not verify"):
        open_note(note.replace("\n64\n", "\n65\n"), [signer.verifier])
    with pytest.raises(NoteError, match="no trusted key"):
        open_note(note, [new_signer("someone-else").verifier])


@pytest.mark.parametrize("bad", ["a+b", "name+zz+AAAA", "name+00000000+AQ==",
                                 "name+00000000+" + "A" * 44])
def test_malformed_vkeys_are_refused(bad):
    with pytest.raises(NoteError):
        parse_vkey(bad)


def test_the_audit_package_needs_only_the_standard_library_and_cryptography():
    import subprocess
    import sys

    code = ("import sys, audit.note; bad = [m for m in sys.modules if m.split('.')[0] in "
            "('sqlalchemy', 'flask', 'psycopg', 'alembic')]; print(bad)")
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                               check=True)
    assert completed.stdout.strip() == "[]"
