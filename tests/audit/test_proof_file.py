"""The c2sp.org/tlog-proof@v1 file (audit.proof_file): layout, verification, and every tamper.

No database: a small log of canonical entries is built in memory, signed
with a fresh key, and proved with `ledger.merkle`, as an auditor's machine
would see it.
"""

from __future__ import annotations

import base64
import subprocess
import sys

import pytest

from audit.note import Checkpoint, new_signer, sign
from audit.proof_file import (
    HEADER,
    ProofFileError,
    TlogProof,
    format_proof,
    parse_proof,
    verify_proof,
)
from ledger.canonical import leaf_hash
from ledger.entry_format import entry_bytes
from ledger.merkle import MemoryTree, inclusion_proof

ORIGIN = "jifen.example/xingfu-village"
SIZE = 13
INDEX = 6


def entry(seq: int, programme: str = "xingfu-village", prev: bytes | None = None) -> bytes:
    return entry_bytes(
        programme=programme, seq=seq, prev_hash=prev, kind="award",
        postings=[("member:m1", 5), ("issuance", -5)], actor="organiser:east",
        occurred_at="2026-11-20T02:00:00.000000Z", recorded_at="2026-11-20T02:00:01.000000Z",
        evidence=None, memo="打扫卫生", metadata={}, idempotency_key=None, reverses=None,
        rule={"code": "tidy", "quantity": None, "version": 1}, approver=None)


class Log:
    """A signed log of SIZE entries; `entries[i]` are the canonical bytes of leaf i."""

    def __init__(self, entries: list[bytes], origin: str = ORIGIN, key_name: str = ORIGIN):
        self.entries = entries
        self.tree = MemoryTree(leaf_hash(data) for data in entries)
        self.signer = new_signer(key_name)
        self.vkey = self.signer.verifier.vkey
        self.note = sign(Checkpoint(origin, len(entries), self.tree.root()).text(), self.signer)

    def proof_file(self, index: int, extra: bytes | None = None) -> str:
        return format_proof(index, inclusion_proof(index, len(self.entries), self.tree.get_node),
                            self.note, self.entries[index] if extra is None else extra)


@pytest.fixture(scope="module")
def log() -> Log:
    return Log([entry(seq) for seq in range(SIZE)])


def test_the_layout_is_exactly_the_spec(log):
    text = log.proof_file(INDEX)
    proof = inclusion_proof(INDEX, SIZE, log.tree.get_node)
    lines = text.split("\n")
    assert lines[0] == "c2sp.org/tlog-proof@v1" == HEADER
    assert lines[1] == "extra " + base64.b64encode(log.entries[INDEX]).decode()
    assert lines[2] == f"index {INDEX}"
    assert lines[3:3 + len(proof)] == [base64.b64encode(node).decode() for node in proof]
    assert lines[3 + len(proof)] == ""
    assert "\n".join(lines[4 + len(proof):]) == log.note
    assert parse_proof(text) == TlogProof(INDEX, tuple(proof), log.note, log.entries[INDEX])
    assert parse_proof(text).text() == text


def test_without_extra_the_line_is_omitted():
    text = format_proof(0, [], "o\n1\nAA==\n\n\u2014 o x\n")
    assert text == "c2sp.org/tlog-proof@v1\nindex 0\n\no\n1\nAA==\n\n\u2014 o x\n"
    assert parse_proof(text).extra is None


def test_every_entry_verifies_and_shows_what_it_proves(log):
    for index in range(SIZE):
        verified = verify_proof(log.proof_file(index), [log.vkey])
        assert verified.index == index and verified.entry["seq"] == index
        assert verified.entry_bytes == log.entries[index]
        assert verified.checkpoint == Checkpoint(ORIGIN, SIZE, log.tree.root())
        assert verified.signed_by == (log.vkey,)


def test_a_file_without_the_entry_verifies_with_the_entry_supplied(log):
    proof = inclusion_proof(INDEX, SIZE, log.tree.get_node)
    bare = format_proof(INDEX, proof, log.note)
    assert verify_proof(bare, [log.vkey], log.entries[INDEX]).index == INDEX
    with pytest.raises(ProofFileError, match="carries no entry"):
        verify_proof(bare, [log.vkey])
    with pytest.raises(ProofFileError, match="differs"):
        verify_proof(log.proof_file(INDEX), [log.vkey], log.entries[INDEX + 1])


def replace_line(text: str, number: int, line: str) -> str:
    lines = text.split("\n")
    lines[number] = line
    return "\n".join(lines)


TAMPERS = {
    "another entry in extra": (lambda log, text: log.proof_file(INDEX, log.entries[INDEX + 1]),
                               "inclusion"),
    "one byte of the entry flipped": (
        lambda log, text: log.proof_file(INDEX, log.entries[INDEX].replace(b'"seq":6',
                                                                            b'"seq":7')),
        "inclusion"),
    "another index": (lambda log, text: replace_line(text, 2, "index 7"), "inclusion"),
    "a proof hash changed": (lambda log, text: replace_line(
        text, 3, base64.b64encode(bytes(32)).decode()), "inclusion"),
    "a proof hash dropped": (lambda log, text: "\n".join(
        line for number, line in enumerate(text.split("\n")) if number != 3), "inclusion"),
    "the size in the checkpoint changed": (lambda log, text: text.replace(
        f"\n{SIZE}\n", f"\n{SIZE + 1}\n"), "does not verify"),
    "a wrong header": (lambda log, text: text.replace(HEADER, "c2sp.org/tlog-proof@v2"),
                       "first line"),
    "an index with a leading zero": (lambda log, text: replace_line(text, 2, "index 06"),
                                     "index"),
    "no blank line before the checkpoint": (lambda log, text: text.replace("\n\n", "\n", 1),
                                            "proof hash 5 is not base64"),
    "no checkpoint at all": (lambda log, text: text.split("\n\n")[0], "blank line"),
    "a proof hash not 32 bytes": (lambda log, text: replace_line(
        text, 3, base64.b64encode(bytes(31)).decode()), "31 bytes"),
    "extra not base64": (lambda log, text: replace_line(text, 1, "extra ***"), "base64"),
}


@pytest.mark.parametrize("tamper", TAMPERS, ids=list(TAMPERS))
def test_each_tamper_is_refused(log, tamper):
    change, message = TAMPERS[tamper]
    with pytest.raises(ProofFileError, match=message):
        verify_proof(change(log, log.proof_file(INDEX)), [log.vkey])


def test_a_key_not_trusted_is_refused(log):
    stranger = new_signer(ORIGIN)
    with pytest.raises(ProofFileError, match="no trusted key"):
        verify_proof(log.proof_file(INDEX), [stranger.verifier.vkey])
    with pytest.raises(ProofFileError, match="vkey"):
        verify_proof(log.proof_file(INDEX), ["not-a-vkey"])


def test_the_signing_key_must_be_named_for_the_origin():
    other = Log([entry(seq) for seq in range(SIZE)], key_name="someone-else.example")
    with pytest.raises(ProofFileError, match="origin"):
        verify_proof(other.proof_file(INDEX), [other.vkey])


def test_an_entry_of_another_programme_or_seq_is_refused():
    foreign = Log([entry(seq, programme="other-village") for seq in range(SIZE)])
    with pytest.raises(ProofFileError, match="other-village"):
        verify_proof(foreign.proof_file(INDEX), [foreign.vkey])
    shifted = Log([entry(seq + 1) for seq in range(SIZE)])
    with pytest.raises(ProofFileError, match="says seq 7"):
        verify_proof(shifted.proof_file(INDEX), [shifted.vkey])


def test_the_module_needs_only_the_standard_library_and_cryptography():
    code = ("import sys, audit.proof_file; bad = [m for m in sys.modules if m.split('.')[0] in "
            "('sqlalchemy', 'flask', 'psycopg', 'alembic', 'click', 'marshmallow')]; "
            "print(bad)")
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                               check=True)
    assert completed.stdout.strip() == "[]"
