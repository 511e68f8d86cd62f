"""`jifen import`: an export, verified first, loaded whole into an empty database; exported
again it gives the same bytes. A bad export, a range, or a programme already there is
refused with nothing written.

Every test runs on SQLite and PostgreSQL; the round trip also crosses between them.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

import audit.export_cli  # noqa: F401  (adds export and import to `jifen`)
from audit import importer
from audit.checkpoints import list_checkpoints, sign_checkpoint
from audit.export import export
from audit.importer import ImportRefused, import_export
from audit.models import CheckpointKey
from audit.note import new_signer
from audit.tiles import inclusion_proof, root_at
from audit.verify import verify_export
from ledger import errors
from ledger.awards import AwardRequest, award
from ledger.chain import head as read_head
from ledger.cli import main
from ledger.demo import PROGRAMME
from ledger.models import Entry, Programme
from ledger.programmes import get_programme
from ledger.storage import read_transaction
from ledger.verify import verify_chain
from tests.audit.test_export import files_of, load_signed_demo

TAMPERED_MEMO = ("村民代表大会签到".encode(), "村民代表大会缺席".encode())
"""An attendance turned into an absence: the same number of bytes."""


@pytest.fixture(scope="module")
def demo(backend, databases) -> Engine:
    return load_signed_demo(databases.new_engine(backend))


@pytest.fixture(scope="module")
def exported(demo, tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("export") / "out"
    export(demo, directory)
    return directory


def copy_of(exported: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "copy"
    shutil.copytree(exported, copy)
    return copy


def tamper_entries(directory: Path) -> None:
    path = directory / PROGRAMME / "entries.jsonl"
    data = path.read_bytes()
    assert TAMPERED_MEMO[0] in data
    path.write_bytes(data.replace(*TAMPERED_MEMO, 1))


def rows_in(engine: Engine) -> tuple[int, int]:
    """How many programmes and entries the database holds."""
    with read_transaction(engine) as connection:
        return (connection.execute(select(func.count()).select_from(Programme)).scalar_one(),
                connection.execute(select(func.count()).select_from(Entry)).scalar_one())


def assert_same_books(original: Engine, imported: Engine) -> None:
    """The imported chain verifies, has the same head, proofs and checkpoints."""
    verification = verify_chain(imported, PROGRAMME)
    assert verification.ok, str(verification.problem)
    tip = read_head(original, PROGRAMME)
    assert read_head(imported, PROGRAMME) == tip
    checkpoints = []
    for engine in (original, imported):
        with read_transaction(engine) as connection:
            programme_id = get_programme(connection, PROGRAMME).id
            checkpoints.append((
                [(checkpoint.size, checkpoint.root, checkpoint.note, checkpoint.vkey)
                 for checkpoint in list_checkpoints(connection, programme_id)],
                inclusion_proof(connection, programme_id, 7, tip.size - 1),
                root_at(connection, programme_id, tip.size - 3),
            ))
    assert checkpoints[0] == checkpoints[1]
    assert len(checkpoints[0][0]) == 2


# -- the round trip -----------------------------------------------------------------------


def test_export_verify_import_export_gives_identical_bytes(demo, exported, fresh_engine,
                                                           tmp_path):
    assert verify_export(exported).ok
    summary = import_export(fresh_engine, exported)
    [imported] = summary.programmes
    assert (imported.code, imported.entries, imported.checkpoints) == (
        PROGRAMME, read_head(demo, PROGRAMME).size, 2)
    assert_same_books(demo, fresh_engine)
    export(fresh_engine, tmp_path / "again")
    assert files_of(tmp_path / "again") == files_of(exported)


def test_the_imported_copy_carries_on_awarding_and_signing(exported, fresh_engine):
    import_export(fresh_engine, exported)
    before = read_head(fresh_engine, PROGRAMME)
    outcome = award(fresh_engine, PROGRAMME, AwardRequest(
        "m-zhao-min", "meeting.residents-assembly",
        occurred_at=datetime.now(UTC) - timedelta(hours=1)), actor="system:test")
    assert outcome.status == "posted" and outcome.entry.seq == before.size
    verification = verify_chain(fresh_engine, PROGRAMME)
    assert verification.ok, str(verification.problem)
    signed = sign_checkpoint(fresh_engine, PROGRAMME)  # consistent with the imported ones
    assert signed.size == before.size + 1


def test_the_round_trip_crosses_backends(demo, exported, backend, databases, postgres_available,
                                         tmp_path):
    other = "postgresql" if backend == "sqlite" else "sqlite"
    if other == "postgresql" and not postgres_available:
        pytest.skip("PostgreSQL not available")
    target = databases.new_engine(other)
    import_export(target, exported)
    assert_same_books(demo, target)
    export(target, tmp_path / "again")
    assert files_of(tmp_path / "again") == files_of(exported)


def test_checkpoint_keys_come_in_public_and_retired(exported, fresh_engine):
    import_export(fresh_engine, exported)
    with read_transaction(fresh_engine) as connection:
        keys = connection.execute(
            select(CheckpointKey.vkey, CheckpointKey.status, CheckpointKey.secret_seed)
            .order_by(CheckpointKey.id)).all()
    vkeys = (exported / PROGRAMME / "vkeys.txt").read_text("ascii").splitlines()
    assert keys == [(vkey, "retired", None) for vkey in vkeys]


def test_idempotency_digests_of_requests_that_named_their_time_survive(demo, exported,
                                                                       fresh_engine):
    import_export(fresh_engine, exported)
    digests = []
    for engine in (demo, fresh_engine):
        with read_transaction(engine) as connection:
            digests.append(connection.execute(
                select(Entry.seq, Entry.content_digest)
                .where(Entry.kind.in_(["award", "deduction"])).order_by(Entry.seq)).all())
    assert len(digests[0]) > 10 and digests[0] == digests[1]


# -- refusals -----------------------------------------------------------------------------


def test_a_tampered_export_is_refused_and_nothing_is_written(exported, fresh_engine, tmp_path):
    copy = copy_of(exported, tmp_path)
    tamper_entries(copy)
    assert not verify_export(copy).ok
    with pytest.raises(ImportRefused, match="does not verify"):
        import_export(fresh_engine, copy)
    assert rows_in(fresh_engine) == (0, 0)


def test_files_changed_after_verification_are_refused(exported, fresh_engine, tmp_path,
                                                      monkeypatch):
    """Defence in depth: even past a verifier that said yes, the importer checks each file
    against the manifest, and each entry against the one before."""
    monkeypatch.setattr(importer, "verify_export", lambda *_a, **_k: _Passed())
    copy = copy_of(exported, tmp_path)
    organisation = copy / PROGRAMME / "organisation.json"
    organisation.write_bytes(organisation.read_bytes().replace("李娜".encode(), "李四".encode()))
    with pytest.raises(ImportRefused, match="organisation.json is not the file the manifest"):
        import_export(fresh_engine, copy)
    assert rows_in(fresh_engine) == (0, 0)
    shutil.copy(exported / PROGRAMME / "organisation.json", organisation)
    tamper_entries(copy)
    manifest_path = copy / "manifest.json"
    manifest = json.loads(manifest_path.read_bytes())  # a forger who also fixes the manifest
    data = (copy / PROGRAMME / "entries.jsonl").read_bytes()
    manifest["programmes"][0]["files"]["entries.jsonl"] = {
        "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(ImportRefused, match="is not the next canonical entry of this chain"):
        import_export(fresh_engine, copy)
    assert rows_in(fresh_engine) == (0, 0)


class _Passed:
    ok = True
    problem = None
    summary = ""


def test_pinned_keys_are_checked_before_importing(exported, fresh_engine):
    foreign = new_signer(f"jifen-ledger/{PROGRAMME}").verifier.vkey
    with pytest.raises(ImportRefused, match="does not verify"):
        import_export(fresh_engine, exported, vkeys=[foreign])
    assert rows_in(fresh_engine) == (0, 0)
    published = (exported / PROGRAMME / "vkeys.txt").read_text("ascii").splitlines()
    assert import_export(fresh_engine, exported, vkeys=published).entries > 0


def test_a_programme_already_in_the_database_is_refused(exported, fresh_engine):
    import_export(fresh_engine, exported)
    before = rows_in(fresh_engine)
    with pytest.raises(errors.AlreadyExists, match=f"programme '{PROGRAMME}' already exists"):
        import_export(fresh_engine, exported)
    assert rows_in(fresh_engine) == before


@pytest.mark.parametrize("from_seq, to_seq, refusal", [
    (5, None, "a range export"),
    (None, 20, "stops before the head"),
])
def test_range_and_prefix_exports_are_refused(demo, fresh_engine, tmp_path, from_seq, to_seq,
                                              refusal):
    export(demo, tmp_path / "part", from_seq=from_seq, to_seq=to_seq)
    with pytest.raises(ImportRefused, match=refusal):
        import_export(fresh_engine, tmp_path / "part")
    assert rows_in(fresh_engine) == (0, 0)


# -- the command line ---------------------------------------------------------------------


def jifen(engine: Engine, *arguments: str):
    url = engine.url.render_as_string(hide_password=False)
    return CliRunner().invoke(main, list(arguments), env={"JIFEN_DATABASE_URL": url})


def test_jifen_import_exits_0_then_1_for_a_programme_there_or_a_bad_export(
        exported, fresh_engine, tmp_path):
    copy = copy_of(exported, tmp_path)
    tamper_entries(copy)
    refused = jifen(fresh_engine, "import", str(copy))
    assert refused.exit_code == 1
    assert "error: import_refused: the export in" in refused.stderr
    assert rows_in(fresh_engine) == (0, 0)
    imported = jifen(fresh_engine, "import", str(exported))
    assert imported.exit_code == 0, imported.output
    assert f"imported 1 programmes, {rows_in(fresh_engine)[1]} entries" in imported.output
    again = jifen(fresh_engine, "import", str(exported))
    assert again.exit_code == 1
    assert "error: already_exists:" in again.stderr
