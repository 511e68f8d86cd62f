"""Checkpoints, their keys and proofs over HTTP: who may read what, and proofs that verify."""

from __future__ import annotations

import base64

import pytest

from audit.note import open_note, parse_checkpoint, parse_vkey
from audit.proof_file import verify_proof
from ledger.accounts import ISSUANCE
from ledger.canonical import leaf_hash
from ledger.chain import Posting, append, head
from ledger.merkle import verify_consistency, verify_inclusion
from ledger.programmes import create_programme
from tests.api.conftest import make_api_town


def award(town, member: str, points: int = 3) -> int:
    engine = town.client.application.extensions["jifen"].engine
    return append(engine, town.code, kind="award", actor="system:test",
                  postings=[Posting(f"member:{member}", points),
                            Posting(ISSUANCE, -points)]).entry.seq


def size_of(town) -> int:
    return head(town.client.application.extensions["jifen"].engine, town.code).size


@pytest.fixture
def signed_town(app, client):
    """A town with awards to e0 and e1 and one checkpoint signed by its admin."""
    town = make_api_town(app, client)
    town.e0_seq = award(town, "e0")
    town.e1_seq = award(town, "e1")
    signed = town.post("/checkpoints", "admin")
    assert signed.status_code == 200, signed.json
    town.checkpoint = signed.json
    return town


def public_get(town, path: str, **kwargs):
    return town.client.get(town.url(path), **kwargs)


def test_an_admin_signs_and_anyone_reads_the_checkpoint_and_its_key(signed_town):
    town = signed_town
    assert town.checkpoint["size"] == size_of(town)
    keys = public_get(town, "/checkpoint-keys")
    assert keys.status_code == 200
    assert [key["status"] for key in keys.json["keys"]] == ["signing"]
    assert public_get(town, "/checkpoint-keys?status=retired").json == {"keys": []}
    vkey = keys.json["keys"][0]["vkey"]
    assert town.checkpoint["vkey"] == vkey
    latest = public_get(town, "/checkpoint")
    assert latest.status_code == 200 and latest.mimetype == "text/plain"
    assert latest.get_data(as_text=True) == town.checkpoint["note"]
    text, _ = open_note(latest.get_data(as_text=True), [parse_vkey(vkey)])
    checkpoint = parse_checkpoint(text)
    assert checkpoint.origin.endswith("/" + town.code)
    assert checkpoint.root.hex() == town.checkpoint["root"]
    listed = public_get(town, "/checkpoints")
    assert listed.json == {"items": [town.checkpoint], "next_after": None}


def test_signing_again_returns_the_same_checkpoint(signed_town):
    again = signed_town.post("/checkpoints", "admin")
    assert again.status_code == 200 and again.json == signed_town.checkpoint


def test_a_member_downloads_a_proof_of_their_own_entry_and_it_verifies(signed_town):
    town = signed_town
    response = town.get(f"/entries/{town.e0_seq}/tlog-proof", "member")
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.headers["Content-Disposition"] == (
        f'attachment; filename="{town.code}-{town.e0_seq}.tlog-proof"')
    verified = verify_proof(response.get_data(as_text=True), [town.checkpoint["vkey"]])
    assert verified.index == town.e0_seq
    assert {"account": "member:e0", "points": 3} in verified.entry["postings"]
    refused = town.get(f"/entries/{town.e1_seq}/tlog-proof", "member")
    assert refused.status_code == 403 and refused.json["code"] == "forbidden"
    refused = town.get(f"/proofs/inclusion?seq={town.e1_seq}", "member")
    assert refused.status_code == 403


def test_an_inclusion_proof_verifies_against_the_signed_root(signed_town):
    town = signed_town
    size = town.checkpoint["size"]
    for seq in range(size):
        response = town.get(f"/proofs/inclusion?seq={seq}", "auditor")
        assert response.status_code == 200
        body = response.json
        assert (body["seq"], body["size"], body["root"]) == (seq, size, town.checkpoint["root"])
        assert body["checkpoint"] == town.checkpoint["note"]
        verify_inclusion(seq, size, bytes.fromhex(body["leaf_hash"]),
                         [bytes.fromhex(node) for node in body["proof"]],
                         bytes.fromhex(town.checkpoint["root"]))
    unsigned = town.get(f"/proofs/inclusion?seq=0&size={size - 1}", "auditor").json
    assert unsigned["checkpoint"] is None and unsigned["size"] == size - 1


def test_a_consistency_proof_links_two_checkpoints_for_anyone(signed_town):
    town = signed_town
    first = town.checkpoint
    award(town, "e2")
    second = town.post("/checkpoints", "admin").json
    response = public_get(town, f"/proofs/consistency?from={first['size']}")
    assert response.status_code == 200
    body = response.json
    assert (body["old_size"], body["new_size"]) == (first["size"], second["size"])
    assert (body["old_checkpoint"], body["new_checkpoint"]) == (first["note"], second["note"])
    verify_consistency(first["size"], second["size"], bytes.fromhex(first["root"]),
                       bytes.fromhex(second["root"]),
                       [bytes.fromhex(node) for node in body["proof"]])
    at_size = public_get(town, f"/checkpoint?size={first['size']}")
    assert at_size.get_data(as_text=True) == first["note"]
    assert "immutable" in at_size.headers["Cache-Control"]
    assert public_get(town, "/checkpoint").get_data(as_text=True) == second["note"]
    missing = public_get(town, f"/checkpoint?size={first['size'] - 1}")
    assert (missing.status_code, missing.json["code"]) == (404, "no_checkpoint")
    page = public_get(town, "/checkpoints?limit=1")
    assert page.json == {"items": [first], "next_after": first["size"]}
    rest = public_get(town, f"/checkpoints?after={first['size']}&limit=1")
    assert rest.json["items"] == [second]


@pytest.mark.parametrize(("path", "status", "code"), [
    ("/proofs/inclusion?seq=0&size=999999", 422, "size_beyond_head"),
    ("/proofs/inclusion?seq=3&size=3", 422, "seq_outside_tree"),
    ("/proofs/consistency?from=4&to=3", 422, "invalid_proof_range"),
    ("/proofs/consistency?from=1&to=999999", 422, "size_beyond_head"),
    ("/entries/0/tlog-proof?size=1", 404, "no_checkpoint"),
    ("/entries/999999/tlog-proof", 404, "no_checkpoint"),
    ("/proofs/inclusion?seq=-1", 422, "validation_error"),
])
def test_impossible_proofs_are_problems_with_stable_codes(signed_town, path, status, code):
    response = signed_town.get(path, "auditor")
    assert (response.status_code, response.json["code"]) == (status, code)
    assert response.mimetype == "application/problem+json"


def test_before_the_first_checkpoint(town):
    latest = town.client.get(town.url("/checkpoint"))
    assert (latest.status_code, latest.json["code"]) == (404, "no_checkpoint")
    proof = town.get("/entries/0/tlog-proof", "auditor")
    assert (proof.status_code, proof.json["code"]) == (404, "no_checkpoint")
    assert town.client.get(town.url("/checkpoint-keys")).json == {"keys": []}


def test_an_empty_chain_cannot_be_signed(app, client):
    town = make_api_town(app, client)
    code = f"empty-{town.code}"
    create_programme(app.extensions["jifen"].engine, code, "empty")  # no rules: no entries
    response = client.post(f"/programmes/{code}/checkpoints",
                           headers={"Authorization": f"Bearer {town.keys['operator']}"})
    assert (response.status_code, response.json["code"]) == (422, "empty_chain")


def test_the_tlog_proof_carries_the_bytes_the_chain_hashed(signed_town):
    town = signed_town
    text = town.get(f"/entries/{town.e0_seq}/tlog-proof", "auditor").get_data(as_text=True)
    extra = base64.b64decode(text.split("\n")[1].removeprefix("extra "))
    entry = town.get(f"/entries/{town.e0_seq}", "auditor").json
    assert leaf_hash(extra).hex() == entry["hash"]
