"""PASETO v4.public tokens and PASERK k4 key strings: the voucher's signed, standard form.

A voucher token is a PASETO version 4 public token (Ed25519 over the
pre-authentication encoding, PAE), so any PASETO library can check one
offline with the programme's published key; nothing here is home-made but
the few lines the specification spells out:

    token  = "v4.public." + b64url(message || signature) [+ "." + b64url(footer)]
    signed = PAE(["v4.public.", message, footer, implicit_assertion])
    PAE    = LE64(count) || for each piece: LE64(len(piece)) || piece

The algorithm is pinned by the version: a token whose header is anything
but `v4.public.` is refused before any key is touched, so a token cannot
choose its own algorithm (the `alg: none` and RS/HS confusion of JWT cannot
happen). Base64url is the unpadded alphabet, and only its canonical
spelling is accepted, so one token has one text.

Keys travel as PASERK strings: `k4.public.<b64url key>` publishes a
verification key and `k4.pid.<b64url BLAKE2b-264>` names it; a token's
footer carries that id as `kid`, never a key itself. This module knows
nothing of databases or vouchers (see `redemption.signing_keys`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

HEADER = "v4.public."
PUBLIC_KEY_PREFIX = "k4.public."
KEY_ID_PREFIX = "k4.pid."
SIGNATURE_BYTES = 64
KEY_BYTES = 32
KEY_ID_DIGEST_BYTES = 33
"""PASERK's k4.pid is BLAKE2b with a 264-bit (33-byte) output."""
MAX_TOKEN_CHARS = 4_096
"""Far above any voucher token (about 400 characters); bounds the work of a refusal."""

_BASE64URL = re.compile(r"^[A-Za-z0-9_-]*$")


class TokenError(Exception):
    """The text is not a v4.public token that verifies; `reason` says what failed."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class VerifiedToken:
    """What a good signature vouches for: the message and the footer, as bytes."""

    message: bytes
    footer: bytes

    def claims(self) -> dict[str, Any]:
        """The message as a JSON object; raises `TokenError` if it is not one."""
        return _json_object(self.message, "message")


def pre_authentication_encoding(pieces: list[bytes]) -> bytes:
    """PAE: each piece prefixed by its length, so no two piece lists encode alike."""
    encoded = bytearray(_le64(len(pieces)))
    for piece in pieces:
        encoded += _le64(len(piece))
        encoded += piece
    return bytes(encoded)


def sign(message: bytes, secret_key: Ed25519PrivateKey, footer: bytes = b"",
         implicit_assertion: bytes = b"") -> str:
    """A v4.public token of `message`, with `footer` (may be empty) shown in clear."""
    signed = pre_authentication_encoding(
        [HEADER.encode("ascii"), message, footer, implicit_assertion]
    )
    signature = secret_key.sign(signed)
    token = HEADER + encode_base64url(message + signature)
    if footer:
        token += "." + encode_base64url(footer)
    return token


def read_footer(token: str) -> bytes:
    """The footer of a v4.public token, *not yet verified*: only to pick the key to verify with.

    Raises `TokenError` for anything that is not shaped like a v4.public token.
    """
    return _split(token)[1]


def verify(token: str, public_key: Ed25519PublicKey,
           implicit_assertion: bytes = b"") -> VerifiedToken:
    """The message and footer of `token` if `public_key` signed it; raises `TokenError`."""
    body, footer = _split(token)
    if len(body) < SIGNATURE_BYTES:
        raise TokenError("the token is too short to hold a signature")
    message, signature = body[:-SIGNATURE_BYTES], body[-SIGNATURE_BYTES:]
    signed = pre_authentication_encoding(
        [HEADER.encode("ascii"), message, footer, implicit_assertion]
    )
    if not verify_signature(public_key, signed, signature):
        raise TokenError("the signature does not verify")
    return VerifiedToken(message, footer)


def verify_signature(public_key: Ed25519PublicKey, message: bytes, signature: bytes) -> bool:
    """Plain Ed25519 (RFC 8032) verification, strict about lengths and encodings."""
    if len(signature) != SIGNATURE_BYTES:
        return False
    try:
        public_key.verify(signature, message)
    except InvalidSignature:
        return False
    return True


def footer_json(key_id: str) -> bytes:
    """The footer voucher tokens carry: `{"kid": "<k4.pid>"}`, compact JSON."""
    return json.dumps({"kid": key_id}, separators=(",", ":")).encode("utf-8")


def footer_key_id(footer: bytes) -> str:
    """The `kid` a footer names; raises `TokenError` when there is none."""
    key_id = _json_object(footer, "footer").get("kid")
    if not isinstance(key_id, str) or not key_id.startswith(KEY_ID_PREFIX):
        raise TokenError(f"the footer names no {KEY_ID_PREFIX} key id")
    return key_id


# -- PASERK --------------------------------------------------------------------------------


def public_paserk(public_key: Ed25519PublicKey | bytes) -> str:
    """`k4.public.<key>`: the form a shop app is given to verify tokens."""
    return PUBLIC_KEY_PREFIX + encode_base64url(_raw(public_key))


def key_id(public_key: Ed25519PublicKey | bytes) -> str:
    """`k4.pid.<id>`: BLAKE2b-264 of "k4.pid." followed by the key's k4.public string."""
    paserk = public_paserk(public_key)
    digest = hashlib.blake2b((KEY_ID_PREFIX + paserk).encode("ascii"),
                             digest_size=KEY_ID_DIGEST_BYTES).digest()
    return KEY_ID_PREFIX + encode_base64url(digest)


def parse_public_paserk(paserk: str) -> Ed25519PublicKey:
    """The key a `k4.public.` string holds; raises `TokenError` for any other version or size."""
    if not isinstance(paserk, str) or not paserk.startswith(PUBLIC_KEY_PREFIX):
        raise TokenError(f"a public key must be a {PUBLIC_KEY_PREFIX} PASERK")
    raw = decode_base64url(paserk[len(PUBLIC_KEY_PREFIX):])
    if len(raw) != KEY_BYTES:
        raise TokenError(f"a k4.public key holds {KEY_BYTES} bytes, not {len(raw)}")
    return Ed25519PublicKey.from_public_bytes(raw)


# -- encodings -----------------------------------------------------------------------------


def encode_base64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def decode_base64url(text: str) -> bytes:
    """Unpadded base64url, canonical spelling only; raises `TokenError`."""
    if not _BASE64URL.match(text) or len(text) % 4 == 1:
        raise TokenError("not unpadded base64url")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as error:
        raise TokenError("not unpadded base64url") from error
    if encode_base64url(data) != text:
        raise TokenError("base64url with non-zero padding bits")
    return data


def _split(token: str) -> tuple[bytes, bytes]:
    if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS:
        raise TokenError(f"a token is text of at most {MAX_TOKEN_CHARS} characters")
    if not token.startswith(HEADER):
        raise TokenError(f"only {HEADER} tokens are accepted")
    parts = token[len(HEADER):].split(".")
    if len(parts) > 2:
        raise TokenError("a token has at most a body and a footer after its header")
    body = decode_base64url(parts[0])
    footer = decode_base64url(parts[1]) if len(parts) == 2 else b""
    if len(parts) == 2 and not footer:
        raise TokenError("an empty footer is written by leaving it out")
    return body, footer


def _json_object(data: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise TokenError(f"the {what} is not JSON") from error
    if not isinstance(value, dict):
        raise TokenError(f"the {what} is not a JSON object")
    return value


def _le64(number: int) -> bytes:
    """Little-endian 64-bit with the top bit cleared, as PAE specifies."""
    return (number & 0x7FFF_FFFF_FFFF_FFFF).to_bytes(8, "little")


def _raw(public_key: Ed25519PublicKey | bytes) -> bytes:
    if isinstance(public_key, bytes):
        if len(public_key) != KEY_BYTES:
            raise TokenError(f"an Ed25519 public key holds {KEY_BYTES} bytes")
        return public_key
    return public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
