"""`jifen checkpoint`, `checkpoint-keys`, `proof` and `verify-proof`, as an operator runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

import api.cli  # noqa: F401  (registers every command on `main`, as the console script does)
from audit import checkpoints
from ledger.chain import Draft, append_batch, head
from ledger.cli import main
from ledger.merkle import verify_consistency
from ledger.programmes import create_programme
from ledger.storage import create_engine
from tests.conftest import make_village

JIFEN = Path(sys.executable).parent / "jifen"


def jifen(url: str, *arguments: str):
    return CliRunner().invoke(main, list(arguments), env={"JIFEN_DATABASE_URL": url})


def add_entries(engine, programme: str, count: int) -> None:
    append_batch(engine, programme, [Draft("admin", [], "system:test", metadata={"n": n})
                                     for n in range(count)])


@pytest.fixture
def village(engine):
    village = make_village(engine)
    add_entries(engine, village.code, 20)
    return village


def test_checkpoint_prints_the_signed_note(village, database_url):
    signed = jifen(database_url, "checkpoint", "--programme", village.code)
    assert signed.exit_code == 0, signed.output
    latest = checkpoints.latest_signed(village.engine, village.code)
    assert signed.output == latest.note + "\n"
    assert latest.size == 20


def test_checkpoint_without_a_programme_signs_every_one_with_entries(backend, databases):
    url = databases.new_url(backend)
    assert jifen(url, "db", "upgrade").exit_code == 0
    engine = create_engine(url)
    for code in ("alpha", "beta"):
        create_programme(engine, code, code)
        add_entries(engine, code, 3)
    create_programme(engine, "empty", "no entries yet")
    signed = jifen(url, "checkpoint")
    assert signed.exit_code == 0, signed.output
    assert signed.output.count("\n3\n") == 2
    assert "jifen-ledger/alpha\n" in signed.output and "jifen-ledger/beta\n" in signed.output
    named = jifen(url, "checkpoint", "-p", "empty")
    assert named.exit_code == 1 and "error: empty_chain:" in named.stderr
    engine.dispose()


def test_keys_are_listed_and_rotated(village, database_url):
    jifen(database_url, "checkpoint", "-p", village.code)
    first = checkpoints.published_vkeys(village.engine, village.code)
    rotated = jifen(database_url, "checkpoint-keys", "rotate", "--programme", village.code)
    assert rotated.exit_code == 0, rotated.output
    listed = jifen(database_url, "checkpoint-keys", "-p", village.code)
    rows = [line.split("\t") for line in listed.output.splitlines()]
    assert [(row[0], row[1]) for row in rows] == [(village.code, "signing"),
                                                  (village.code, "retired")]
    assert rows[1][3] == first[0] and rows[0][3] in rotated.output


def test_a_proof_file_written_by_jifen_proof_verifies(village, database_url, tmp_path):
    jifen(database_url, "checkpoint", "-p", village.code)
    vkey = checkpoints.published_vkeys(village.engine, village.code)[0]
    proof_file = tmp_path / "entry-7.tlog-proof"
    written = jifen(database_url, "proof", "-p", village.code, "--seq", "7", "--out",
                    str(proof_file))
    assert written.exit_code == 0, written.output
    assert proof_file.read_text(encoding="utf-8").startswith("c2sp.org/tlog-proof@v1\nextra ")
    checked = jifen(database_url, "verify-proof", str(proof_file), "--vkey", vkey)
    assert checked.exit_code == 0, checked.output
    assert checked.output.startswith("ok: entry 7 (admin, occurred ")
    assert f"jifen-ledger/{village.code} at size 20" in checked.output

    stranger = checkpoints.rotate_key(village.engine, village.code).vkey
    refused = jifen(database_url, "verify-proof", str(proof_file), "--vkey", stranger)
    assert refused.exit_code == 2 and "FAILED:" in refused.stderr
    proof_file.write_text(proof_file.read_text(encoding="utf-8").replace("index 7", "index 8"),
                          encoding="utf-8")
    tampered = jifen(database_url, "verify-proof", str(proof_file), "--vkey", vkey)
    assert tampered.exit_code == 2 and "inclusion" in tampered.stderr


def test_a_consistency_proof_from_jifen_proof_verifies(village, database_url):
    jifen(database_url, "checkpoint", "-p", village.code)
    add_entries(village.engine, village.code, 5)
    jifen(database_url, "checkpoint", "-p", village.code)
    printed = jifen(database_url, "proof", "-p", village.code, "--from", "20")
    assert printed.exit_code == 0, printed.output
    body = json.loads(printed.output)
    assert (body["old_size"], body["new_size"]) == (20, 25)
    verify_consistency(20, 25, bytes.fromhex(body["old_root"]), bytes.fromhex(body["new_root"]),
                       [bytes.fromhex(node) for node in body["proof"]])
    assert body["new_root"] == head(village.engine, village.code).root.hex()


@pytest.mark.parametrize(("arguments", "exit_code", "message"), [
    (["--seq", "3", "--from", "1"], 2, "either --seq"),
    (["--seq", "3", "--to", "5"], 2, "--to goes with --from"),
    (["--from", "1", "--size", "5"], 2, "--size goes with --seq"),
    (["--seq", "19"], 1, "error: no_checkpoint:"),
    (["--seq", "3", "--size", "999"], 1, "error: size_beyond_head:"),
])
def test_impossible_proofs_are_refused(village, database_url, arguments, exit_code, message):
    result = jifen(database_url, "proof", "-p", village.code, *arguments)
    assert result.exit_code == exit_code
    assert message in result.output + result.stderr


def test_checkpoint_every_keeps_signing_as_the_chain_grows(backend, databases):
    url = databases.new_url(backend)
    assert jifen(url, "db", "upgrade").exit_code == 0
    engine = create_engine(url)
    create_programme(engine, "loop", "loop")
    add_entries(engine, "loop", 2)
    process = subprocess.Popen([str(JIFEN), "checkpoint", "--every", "1"],
                               env={**os.environ, "JIFEN_DATABASE_URL": url},
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not _sizes(engine, "loop") and time.monotonic() < deadline:
            time.sleep(0.2)
        add_entries(engine, "loop", 3)
        while _sizes(engine, "loop") != [2, 5] and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _sizes(engine, "loop") == [2, 5]
        assert process.poll() is None  # still running
    finally:
        process.terminate()
        process.wait(timeout=10)
        engine.dispose()


def _sizes(engine, programme: str) -> list[int]:
    return [checkpoint.size
            for checkpoint in checkpoints.programme_checkpoints(engine, programme)]
