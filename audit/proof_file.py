"""A resident's proof of one entry: the `c2sp.org/tlog-proof@v1` file.

Layout (c2sp.org/tlog-proof, lines separated by LF):

    c2sp.org/tlog-proof@v1
    extra <base64 of the entry's canonical bytes>
    index <seq, decimal, no leading zeroes>
    <base64 proof hash>            zero or more lines, from the leaf's sibling up
    <blank line>
    <the signed checkpoint note, verbatim>

The spec makes `extra` optional opaque data; here it always carries the
entry's canonical bytes (docs/FORMAT.md §1), which are what makes the file
useful to a resident: the verifier hashes them (RFC 6962 leaf hash), checks
the inclusion proof against the checkpoint's root, checks the checkpoint's
signature against a vkey the resident trusts, and shows the entry. Nothing
in `extra` is trusted before its hash has been proved in the signed tree.

Standard library, `cryptography` (through `audit.note`) and the ledger's
standard-library modules only: it runs on an auditor's bare machine.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from audit import note
from ledger.canonical import leaf_hash
from ledger.merkle import HASH_SIZE_BYTES, ProofError, verify_inclusion

HEADER = "c2sp.org/tlog-proof@v1"
FILE_SUFFIX = ".tlog-proof"
MAX_PROOF_HASHES = 64
"""An inclusion proof in a tree of fewer than 2**64 leaves has at most 64 hashes."""
_INDEX_LINE = re.compile(r"index (0|[1-9][0-9]{0,19})\Z")


class ProofFileError(ValueError):
    """A proof file is malformed, or does not prove what it claims."""


@dataclass(frozen=True)
class TlogProof:
    """The parts of a tlog-proof file, unverified."""

    index: int
    proof: tuple[bytes, ...]
    checkpoint_note: str
    extra: bytes | None = None

    def text(self) -> str:
        return format_proof(self.index, self.proof, self.checkpoint_note, self.extra)


@dataclass(frozen=True)
class VerifiedProof:
    """What a verified proof file established."""

    checkpoint: note.Checkpoint
    index: int
    entry_bytes: bytes
    entry: dict[str, Any]
    signed_by: tuple[str, ...]
    """The vkeys (of those given) whose signatures on the checkpoint verified."""


def format_proof(index: int, proof: Sequence[bytes], checkpoint_note: str,
                 extra: bytes | None = None) -> str:
    """The file's text. Raises `ProofFileError` for a negative index or a hash not 32 bytes."""
    if index < 0:
        raise ProofFileError(f"index {index} is negative")
    lines = [HEADER]
    if extra is not None:
        lines.append("extra " + base64.b64encode(extra).decode("ascii"))
    lines.append(f"index {index}")
    for proof_hash in proof:
        if len(proof_hash) != HASH_SIZE_BYTES:
            raise ProofFileError(f"proof hashes are {HASH_SIZE_BYTES} bytes, not "
                                 f"{len(proof_hash)}")
        lines.append(base64.b64encode(proof_hash).decode("ascii"))
    return "\n".join(lines) + "\n\n" + checkpoint_note


def _decode(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ProofFileError(f"{what} is not base64: {text[:60]!r}") from None


def parse_proof(text: str) -> TlogProof:
    """Split a proof file into its parts; raises `ProofFileError` if it breaks the layout."""
    head, separator, checkpoint_note = text.partition("\n\n")
    if not separator:
        raise ProofFileError("a tlog-proof needs a blank line before its checkpoint")
    lines = head.split("\n")
    if lines[0] != HEADER:
        raise ProofFileError(f"the first line must be {HEADER!r}, not {lines[0][:60]!r}")
    position = 1
    extra = None
    if position < len(lines) and lines[position].startswith("extra "):
        extra = _decode(lines[position][len("extra "):], "the extra data")
        position += 1
    if position >= len(lines) or not _INDEX_LINE.match(lines[position]):
        found = lines[position][:60] if position < len(lines) else "nothing"
        raise ProofFileError(f"expected 'index <decimal, no leading zeroes>', found {found!r}")
    index = int(lines[position].removeprefix("index "))
    proof_lines = lines[position + 1:]
    if len(proof_lines) > MAX_PROOF_HASHES:
        raise ProofFileError(f"an inclusion proof has at most {MAX_PROOF_HASHES} hashes")
    proof = []
    for number, line in enumerate(proof_lines, start=1):
        proof_hash = _decode(line, f"proof hash {number}")
        if len(proof_hash) != HASH_SIZE_BYTES:
            raise ProofFileError(f"proof hash {number} is {len(proof_hash)} bytes, not "
                                 f"{HASH_SIZE_BYTES}")
        proof.append(proof_hash)
    if not checkpoint_note.endswith("\n"):
        raise ProofFileError("the checkpoint note must end with a newline")
    return TlogProof(index, tuple(proof), checkpoint_note, extra)


def verify_proof(text: str, vkeys: Sequence[str], entry_bytes: bytes | None = None
                 ) -> VerifiedProof:
    """Check a proof file against trusted `vkeys`; return what it proves.

    The entry is the file's `extra` data, or `entry_bytes` when given (then
    the two must agree if both are present). Checks, in order: the layout;
    that a trusted key whose name is the checkpoint's origin signed it; that
    the entry's leaf hash is included at `index` under the signed root; that
    the entry is a JSON object whose `seq` is the index and whose `programme`
    is the origin's last path segment. Raises `ProofFileError` naming the
    first check that failed.
    """
    parsed = parse_proof(text)
    try:
        verifiers = [note.parse_vkey(vkey) for vkey in vkeys]
        checkpoint_text, signed_by = note.open_note(parsed.checkpoint_note, verifiers)
        checkpoint = note.parse_checkpoint(checkpoint_text)
    except note.NoteError as error:
        raise ProofFileError(f"checkpoint: {error}") from None
    origin_signers = [verifier for verifier in signed_by if verifier.name == checkpoint.origin]
    if not origin_signers:
        raise ProofFileError(f"no trusted key named {checkpoint.origin!r} (the checkpoint's "
                             "origin) signed it")
    if entry_bytes is None:
        entry_bytes = parsed.extra
    elif parsed.extra is not None and parsed.extra != entry_bytes:
        raise ProofFileError("the entry given differs from the one the proof file carries")
    if entry_bytes is None:
        raise ProofFileError("the proof file carries no entry (no 'extra' line); supply it")
    try:
        verify_inclusion(parsed.index, checkpoint.size, leaf_hash(entry_bytes),
                         parsed.proof, checkpoint.root)
    except ProofError as error:
        raise ProofFileError(f"inclusion: {error}") from None
    try:
        entry = json.loads(entry_bytes.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ProofFileError(f"the entry is not UTF-8 JSON: {error}") from None
    if not isinstance(entry, dict):
        raise ProofFileError("the entry is not a JSON object")
    if entry.get("seq") != parsed.index:
        raise ProofFileError(f"the entry says seq {entry.get('seq')!r} but is proved at "
                             f"index {parsed.index}")
    programme = checkpoint.origin.rsplit("/", 1)[-1]
    if entry.get("programme") != programme:
        raise ProofFileError(f"the entry belongs to programme {entry.get('programme')!r}, "
                             f"the checkpoint to {programme!r}")
    return VerifiedProof(checkpoint, parsed.index, entry_bytes, entry,
                         tuple(verifier.vkey for verifier in origin_signers))
