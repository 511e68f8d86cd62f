"""C2SP signed notes (c2sp.org/signed-note) with Ed25519 signatures, and tlog checkpoints.

A signed note is UTF-8 text ending in a newline, a blank line, then one or
more signature lines `— <key name> <base64(key id || signature)>`. The key
id is the first 4 bytes of SHA-256(key name || "\\n" || 0x01 || public key);
0x01 is the Ed25519 signature type. A verifier key ("vkey") is written
`<name>+<hex key id>+<base64(0x01 || public key)>`, a signer key ("skey")
`PRIVATE+KEY+<name>+<hex key id>+<base64(0x01 || seed)>`.

A checkpoint (c2sp.org/tlog-checkpoint) is a note whose text is the origin
line, the tree size in decimal, and the base64 Merkle root, each followed
by a newline. Standard library and `cryptography` only.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ED25519 = 0x01
SIGNATURE_PREFIX = "\u2014 "
"""An em dash and a space start every signature line."""


class NoteError(ValueError):
    """A note, key or checkpoint is malformed, or no trusted key signed it."""


@dataclass(frozen=True)
class Verifier:
    name: str
    key_id: bytes
    public_key: Ed25519PublicKey

    @property
    def vkey(self) -> str:
        encoded = base64.b64encode(bytes([ED25519]) + self.public_key.public_bytes_raw()).decode()
        return f"{self.name}+{self.key_id.hex()}+{encoded}"


@dataclass(frozen=True)
class Signer:
    name: str
    key_id: bytes
    private_key: Ed25519PrivateKey

    @property
    def verifier(self) -> Verifier:
        return Verifier(self.name, self.key_id, self.private_key.public_key())

    @property
    def skey(self) -> str:
        seed = self.private_key.private_bytes_raw()
        encoded = base64.b64encode(bytes([ED25519]) + seed).decode()
        return f"PRIVATE+KEY+{self.name}+{self.key_id.hex()}+{encoded}"


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes

    def text(self) -> str:
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n"


def key_id(name: str, public_key: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + bytes([ED25519]) + public_key).digest()[:4]


def _check_name(name: str) -> None:
    if not name or "+" in name or any(character.isspace() for character in name):
        raise NoteError(f"key name {name!r} must be non-empty, with no spaces or '+'")


def new_signer(name: str) -> Signer:
    _check_name(name)
    private_key = Ed25519PrivateKey.generate()
    return Signer(name, key_id(name, private_key.public_key().public_bytes_raw()), private_key)


def parse_vkey(text: str) -> Verifier:
    """A verifier key; raises `NoteError` if malformed or its id does not match."""
    parts = text.strip().split("+", 2)  # base64 may itself hold '+'
    if len(parts) != 3:
        raise NoteError("a vkey reads <name>+<hex key id>+<base64 key>")
    name, hex_id, encoded = parts
    _check_name(name)
    try:
        identifier, raw = bytes.fromhex(hex_id), base64.b64decode(encoded, validate=True)
    except (ValueError, binascii.Error) as error:
        raise NoteError(f"vkey {name!r} is not hex and base64: {error}") from None
    if len(identifier) != 4 or len(raw) != 33 or raw[0] != ED25519:
        raise NoteError(f"vkey {name!r} is not an Ed25519 verifier key")
    if key_id(name, raw[1:]) != identifier:
        raise NoteError(f"vkey {name!r}: key id {hex_id} does not match its key")
    return Verifier(name, identifier, Ed25519PublicKey.from_public_bytes(raw[1:]))


def parse_skey(text: str) -> Signer:
    """A signer key (`PRIVATE+KEY+...`); raises `NoteError`."""
    parts = text.strip().split("+", 4)
    if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"]:
        raise NoteError("an skey reads PRIVATE+KEY+<name>+<hex key id>+<base64 key>")
    _, _, name, hex_id, encoded = parts
    _check_name(name)
    try:
        identifier, raw = bytes.fromhex(hex_id), base64.b64decode(encoded, validate=True)
    except (ValueError, binascii.Error) as error:
        raise NoteError(f"skey {name!r} is not hex and base64: {error}") from None
    if len(raw) != 33 or raw[0] != ED25519:
        raise NoteError(f"skey {name!r} is not an Ed25519 signer key")
    private_key = Ed25519PrivateKey.from_private_bytes(raw[1:])
    if key_id(name, private_key.public_key().public_bytes_raw()) != identifier:
        raise NoteError(f"skey {name!r}: key id {hex_id} does not match its key")
    return Signer(name, identifier, private_key)


def sign(text: str, *signers: Signer) -> str:
    """The signed note: `text` (which must end in a newline), a blank line, the signatures."""
    if not text.endswith("\n") or "\n\n" in text or not signers:
        raise NoteError("note text must end in a newline, hold no blank line, and be signed")
    lines = []
    for signer in signers:
        signature = signer.private_key.sign(text.encode("utf-8"))
        encoded = base64.b64encode(signer.key_id + signature).decode()
        lines.append(f"{SIGNATURE_PREFIX}{signer.name} {encoded}\n")
    return text + "\n" + "".join(lines)


def open_note(note: str, verifiers: list[Verifier]) -> tuple[str, list[Verifier]]:
    """The note's text and the known keys that signed it; raises `NoteError`.

    Signatures by unknown keys are ignored; a signature by a known key that
    does not verify is an error; at least one known key must have signed.
    """
    split = note.rfind("\n\n")
    if split < 0 or not note.endswith("\n"):
        raise NoteError("a signed note needs its text, a blank line and signature lines")
    text, signature_block = note[: split + 1], note[split + 2 :]
    known = {(verifier.name, verifier.key_id): verifier for verifier in verifiers}
    signed_by: list[Verifier] = []
    for line in signature_block.splitlines():
        if not line.startswith(SIGNATURE_PREFIX):
            raise NoteError(f"not a signature line: {line!r}")
        name, _, encoded = line[len(SIGNATURE_PREFIX):].rpartition(" ")
        try:
            blob = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            raise NoteError(f"signature of {name!r} is not base64") from None
        if len(blob) < 5:
            raise NoteError(f"signature of {name!r} is too short")
        verifier = known.get((name, blob[:4]))
        if verifier is None:
            continue
        if len(blob) != 4 + 64:  # an Ed25519 signature is exactly 64 bytes
            raise NoteError(f"the signature of {name!r} is {len(blob) - 4} bytes, not 64")
        try:
            verifier.public_key.verify(blob[4:], text.encode("utf-8"))
        except InvalidSignature:
            raise NoteError(f"the signature of {name!r} does not verify") from None
        signed_by.append(verifier)
    if not signed_by:
        raise NoteError("no trusted key signed this note")
    return text, signed_by


def parse_checkpoint(text: str) -> Checkpoint:
    """The origin, size and root of checkpoint text (extension lines are allowed after)."""
    lines = text.split("\n")
    if len(lines) < 4 or not lines[0] or not lines[1].isdigit() or (
        lines[1] != "0" and lines[1].startswith("0")
    ):
        raise NoteError("a checkpoint reads <origin>\\n<size>\\n<base64 root>\\n")
    try:
        root = base64.b64decode(lines[2], validate=True)
    except binascii.Error:
        raise NoteError("the checkpoint root is not base64") from None
    if len(root) != 32:
        raise NoteError("the checkpoint root must be 32 bytes")
    return Checkpoint(lines[0], int(lines[1]), root)
