"""PASETO v4.public and PASERK k4: conformance to the published vectors, and other libraries.

The vectors are read from the shared folder beside the repository (never
copied into it): the PASETO v4 and PASERK k4.public vectors, and Project
Wycheproof's Ed25519 verification vectors, which our signature check must
answer exactly as they say. pyseto, a PASETO library that is not ours,
verifies our tokens with the key we publish, and we verify its tokens.
These tests touch no database except the last ones (published keys,
rotation, the key directory), which run on both.
"""

from __future__ import annotations

import json
import stat

import pyseto
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from sqlalchemy import select

from redemption import signing_keys, tokens
from redemption.models import SigningKey
from redemption.vouchers import issue_voucher, voucher_token
from tests.conftest import SHARED_VECTORS, make_village
from tests.redemption.conftest import ORGANISER, award

PASETO_VECTORS = SHARED_VECTORS / "paseto-v4" / "v4.json"
PASERK_VECTORS = SHARED_VECTORS / "paseto-v4" / "PASERK-k4.public.json"
WYCHEPROOF_VECTORS = SHARED_VECTORS / "wycheproof-ed25519" / "ed25519_test.json"


def load_vectors(path):
    if not path.exists():
        pytest.skip(f"conformance vectors not found at {path}: the shared folder is absent")
    return json.loads(path.read_text(encoding="utf-8"))["tests"]


def public_vectors(prefix: str) -> list[dict]:
    return [vector for vector in load_vectors(PASETO_VECTORS)
            if vector["name"].startswith(prefix)]


def test_every_v4_public_vector_signs_to_the_exact_token_and_verifies():
    vectors = public_vectors("4-S-")
    assert len(vectors) == 3
    for vector in vectors:
        secret = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(vector["secret-key-seed"]))
        public = Ed25519PublicKey.from_public_bytes(bytes.fromhex(vector["public-key"]))
        message = vector["payload"].encode()
        footer = vector["footer"].encode()
        implicit = vector["implicit-assertion"].encode()

        assert tokens.sign(message, secret, footer, implicit) == vector["token"], vector["name"]
        verified = tokens.verify(vector["token"], public, implicit)
        assert (verified.message, verified.footer) == (message, footer), vector["name"]


def test_every_v4_failure_vector_is_refused():
    vectors = public_vectors("4-F-")
    assert len(vectors) == 5
    for vector in vectors:
        public_hex = vector.get("public-key")
        public = (Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_hex)) if public_hex
                  else Ed25519PrivateKey.generate().public_key())
        with pytest.raises(tokens.TokenError):
            tokens.verify(vector["token"], public, vector["implicit-assertion"].encode())


def test_a_signed_vector_fails_under_another_implicit_assertion_or_with_a_byte_changed():
    vector = public_vectors("4-S-3")[0]
    public = Ed25519PublicKey.from_public_bytes(bytes.fromhex(vector["public-key"]))
    with pytest.raises(tokens.TokenError, match="signature"):
        tokens.verify(vector["token"], public, b'{"test-vector":"4-S-2"}')
    body, footer = vector["token"][len(tokens.HEADER):].split(".")
    raw = bytearray(tokens.decode_base64url(body))
    raw[3] ^= 0x01
    tampered = tokens.HEADER + tokens.encode_base64url(bytes(raw)) + "." + footer
    with pytest.raises(tokens.TokenError, match="signature"):
        tokens.verify(tampered, public, vector["implicit-assertion"].encode())


def test_paserk_k4_public_vectors_encode_and_the_wrong_version_is_refused():
    vectors = load_vectors(PASERK_VECTORS)
    good = [vector for vector in vectors if not vector["expect-fail"]]
    assert len(good) == 3
    for vector in good:
        key = bytes.fromhex(vector["key"])
        assert tokens.public_paserk(key) == vector["paserk"]
        parsed = tokens.parse_public_paserk(vector["paserk"])
        assert tokens.public_paserk(parsed) == vector["paserk"]
    for vector in vectors:
        if vector["expect-fail"]:
            with pytest.raises(tokens.TokenError):
                tokens.public_paserk(bytes.fromhex(vector["key"]))
    with pytest.raises(tokens.TokenError):
        tokens.parse_public_paserk(good[1]["paserk"].replace("k4.", "k3.", 1))


def test_our_ed25519_check_agrees_with_every_wycheproof_verdict():
    path = WYCHEPROOF_VECTORS
    if not path.exists():
        pytest.skip(f"conformance vectors not found at {path}: the shared folder is absent")
    groups = json.loads(path.read_text(encoding="utf-8"))["testGroups"]
    disagreements = []
    checked = 0
    for group in groups:
        public = Ed25519PublicKey.from_public_bytes(bytes.fromhex(group["publicKey"]["pk"]))
        for case in group["tests"]:
            accepted = tokens.verify_signature(public, bytes.fromhex(case["msg"]),
                                               bytes.fromhex(case["sig"]))
            checked += 1
            if accepted != (case["result"] == "valid"):
                disagreements.append((case["tcId"], case["comment"], case["result"]))
    assert checked == 151
    assert disagreements == []


@pytest.mark.parametrize("token", [
    "v4.local.AAAA",
    "v2.public.AAAA",
    "V4.public.AAAA",
    "v4.public.",
    "v4.public.AAAA=",
    "v4.public.AA AA",
    "v4.public.AAAA.",
    "v4.public.AAAA.BBBB.CCCC",
    "v4.public." + "A" * 5_000,
])
def test_anything_but_a_well_formed_v4_public_token_is_refused_before_any_key_is_tried(token):
    with pytest.raises(tokens.TokenError):
        tokens.verify(token, Ed25519PrivateKey.generate().public_key())


def test_base64url_with_nonzero_padding_bits_is_refused():
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    secret = Ed25519PrivateKey.generate()
    token = tokens.sign(b'{"a":1}', secret)
    # 7 + 64 bytes make 95 characters: the last one carries two unused bits.
    last = alphabet.index(token[-1])
    assert last % 4 == 0
    respelled = token[:-1] + alphabet[last | 1]
    assert tokens.verify(token, secret.public_key()).message == b'{"a":1}'
    with pytest.raises(tokens.TokenError, match="padding bits"):
        tokens.verify(respelled, secret.public_key())


def test_pyseto_verifies_our_token_with_the_published_paserk_and_we_verify_pyseto_tokens():
    secret = Ed25519PrivateKey.generate()
    key_id = tokens.key_id(secret.public_key())
    ours = tokens.sign(b'{"jti":"abc","points":5}', secret, tokens.footer_json(key_id))

    published = pyseto.Key.from_paserk(tokens.public_paserk(secret.public_key()))
    assert published.to_paserk_id() == key_id
    decoded = pyseto.decode(published, ours)
    assert decoded.payload == b'{"jti":"abc","points":5}'
    assert json.loads(decoded.footer) == {"kid": key_id}

    pem = secret.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    theirs = pyseto.encode(pyseto.Key.new(version=4, purpose="public", key=pem),
                           b'{"jti":"xyz"}', footer=tokens.footer_json(key_id))
    verified = tokens.verify(theirs.decode("ascii"), secret.public_key())
    assert verified.message == b'{"jti":"xyz"}'
    assert tokens.footer_key_id(verified.footer) == key_id
    with pytest.raises(tokens.TokenError):
        tokens.verify(theirs.decode("ascii"), Ed25519PrivateKey.generate().public_key())


# -- keys in the database ------------------------------------------------------------------------


def test_rotation_publishes_the_new_key_first_and_keeps_the_old_one_verifying(engine):
    village = make_village(engine)
    first = signing_keys.rotate_key(engine, village.code)
    second = signing_keys.rotate_key(engine, village.code)

    published = signing_keys.published_keys(engine, village.code)

    assert [(key["kid"], key["status"]) for key in published] == [
        (second.key_id, "signing"), (first.key_id, "retired")]
    for key in published:
        parsed = tokens.parse_public_paserk(key["paserk"])
        assert tokens.key_id(parsed) == key["kid"]
        assert pyseto.Key.from_paserk(key["paserk"]).to_paserk_id() == key["kid"]
    assert signing_keys.ensure_signing_key(engine, village.code) == second.key_id

    signing_keys.withdraw_key(engine, village.code, first.key_id)
    assert [key["kid"] for key in signing_keys.published_keys(engine, village.code)] == [
        second.key_id]


def test_a_voucher_token_verifies_with_pyseto_and_the_published_key(engine):
    village = make_village(engine)
    award(engine, village.code, village.account(0), 50)
    voucher = issue_voucher(engine, village.code, village.members[0], actor=ORGANISER, points=20)
    token = voucher_token(engine, village.code, voucher.id)

    [published] = signing_keys.published_keys(engine, village.code)
    decoded = pyseto.decode(pyseto.Key.from_paserk(published["paserk"]), token,
                            deserializer=json)

    assert decoded.payload == {"exp": voucher.expires_at, "jti": voucher.id, "points": 20,
                               "programme": village.code}
    assert decoded.footer == {"kid": published["kid"]}
    assert "m0" not in token and village.members[0] not in json.dumps(decoded.payload)
    assert voucher_token(engine, village.code, voucher.id) == token  # Ed25519 is deterministic


def test_with_a_key_directory_the_seed_is_a_private_file_and_not_in_the_database(
    engine, tmp_path, monkeypatch
):
    monkeypatch.setenv(signing_keys.KEY_DIRECTORY_VARIABLE, str(tmp_path))
    village = make_village(engine)
    award(engine, village.code, village.account(0), 50)
    voucher = issue_voucher(engine, village.code, village.members[0], actor=ORGANISER, points=20)

    [seed_file] = list(tmp_path.iterdir())
    assert stat.S_IMODE(seed_file.stat().st_mode) == 0o600
    assert len(seed_file.read_bytes()) == 32
    with engine.connect() as connection:
        stored = connection.execute(
            select(SigningKey.secret_seed).where(SigningKey.key_id == voucher.key_id)
        ).scalar_one()
    assert stored is None
    token = voucher_token(engine, village.code, voucher.id)
    [published] = signing_keys.published_keys(engine, village.code)
    assert pyseto.decode(pyseto.Key.from_paserk(published["paserk"]), token).payload

    monkeypatch.delenv(signing_keys.KEY_DIRECTORY_VARIABLE)
    with pytest.raises(signing_keys.SigningKeyUnavailable):
        voucher_token(engine, village.code, voucher.id)
