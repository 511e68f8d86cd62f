"""Ed25519 as audit.note uses it, against Project Wycheproof (../shared/vectors/wycheproof-ed25519).

A checkpoint signature is checked by `audit.note.open_note` with the
`Verifier` that `parse_vkey` builds from a published vkey. Wycheproof's
messages are arbitrary bytes, not note text (none ends in a newline), so
each vector is checked through that same `Verifier`, built from a vkey made
of the vector's public key; and every vector's signature, put in a note, is
refused as a `NoteError` (never a crash), whatever its length or encoding.
"""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.exceptions import InvalidSignature

from audit.note import ED25519, NoteError, key_id, open_note, parse_vkey
from tests.conftest import SHARED_VECTORS

WYCHEPROOF = SHARED_VECTORS / "wycheproof-ed25519" / "ed25519_test.json"
NAME = "wycheproof.example/ed25519"


def cases() -> list[tuple[bytes, dict]]:
    if not WYCHEPROOF.exists():
        pytest.skip(f"public test vectors not found at {WYCHEPROOF}")
    document = json.loads(WYCHEPROOF.read_text(encoding="utf-8"))
    found = [(bytes.fromhex(group["publicKey"]["pk"]), test)
             for group in document["testGroups"] for test in group["tests"]]
    assert len(found) == document["numberOfTests"]
    return found


def vkey_of(public_key: bytes) -> str:
    encoded = base64.b64encode(bytes([ED25519]) + public_key).decode()
    return f"{NAME}+{key_id(NAME, public_key).hex()}+{encoded}"


def test_every_wycheproof_vector_verifies_exactly_as_published():
    outcomes = {"valid": 0, "invalid": 0}
    for public_key, test in cases():
        verifier = parse_vkey(vkey_of(public_key))
        signature, message = bytes.fromhex(test["sig"]), bytes.fromhex(test["msg"])
        try:
            verifier.public_key.verify(signature, message)
            accepted = True
        except InvalidSignature:
            accepted = False
        assert accepted == (test["result"] == "valid"), (test["tcId"], test["comment"])
        outcomes[test["result"]] += 1
    assert outcomes["valid"] > 0 and outcomes["invalid"] > 0


def test_every_wycheproof_signature_in_a_note_is_refused_cleanly():
    """None of them signs this text; malformed lengths and encodings are NoteErrors too."""
    for public_key, test in cases():
        verifier = parse_vkey(vkey_of(public_key))
        blob = verifier.key_id + bytes.fromhex(test["sig"])
        note = f"{NAME}\n1\n{base64.b64encode(bytes(32)).decode()}\n\n" \
               f"\u2014 {NAME} {base64.b64encode(blob).decode()}\n"
        with pytest.raises(NoteError):
            open_note(note, [verifier])
