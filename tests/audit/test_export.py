"""`jifen export`: the directory of docs/FORMAT.md §7, written from one snapshot, checked
entry by entry, deterministic, paged, and never left half-written.

Every test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select, text
from sqlalchemy.engine import Connection, Engine

import audit.export_cli  # noqa: F401  (adds export and import to `jifen`)
from audit import export as export_module
from audit.checkpoints import rotate_key, sign_checkpoint
from audit.export import CSV_COLUMNS, CorruptLedger, ExportRefused, export, is_export
from audit.verify import verify_export
from ledger.accounts import ISSUANCE
from ledger.canonical import encode_plain, leaf_hash
from ledger.chain import Draft, Entry, Posting, append, append_batch, get_entry, reverse
from ledger.chain import head as read_head
from ledger.cli import main
from ledger.demo import PROGRAMME, load_demo
from ledger.merkle import Frontier, merkle_root
from ledger.models import RuleVersion
from ledger.programmes import get_programme
from ledger.statements import balances
from ledger.storage import read_transaction
from tests.conftest import make_village

FULL_EXPORT_FILES = {"programme.json", "organisation.json", "accounts.json", "entries.jsonl",
                     "entries.csv", "rules.json", "balances.json", "checkpoints.jsonl",
                     "vkeys.txt"}
WHEN = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)


def load_signed_demo(engine: Engine) -> Engine:
    """The demo programme with two checkpoints by two keys: one at the demo's end, one after
    two more reversals (signed by a new key after a rotation)."""
    load_demo(engine)
    sign_checkpoint(engine, PROGRAMME)
    awards = [entry.seq for entry in entries_of(engine, PROGRAMME) if entry.kind == "award"]
    for seq in awards[:2]:
        reverse(engine, PROGRAMME, seq, actor="organiser:li-hua", memo="录入错误 (test)")
    rotate_key(engine, PROGRAMME)
    sign_checkpoint(engine, PROGRAMME)
    return engine


def entries_of(engine: Engine, programme: str) -> list[Entry]:
    return [get_entry(engine, programme, seq)
            for seq in range(read_head(engine, programme).size)]


def files_of(directory: Path) -> dict[str, bytes]:
    """Every file under `directory` by relative path."""
    return {str(path.relative_to(directory)): path.read_bytes()
            for path in sorted(directory.rglob("*")) if path.is_file()}


def leftovers(parent: Path, name: str) -> list[str]:
    """Hidden partial or replaced directories an export left beside `name`."""
    return sorted(path.name for path in parent.iterdir() if path.name.startswith(f".{name}."))


def admin_drafts(count: int, start: int = 0) -> list[Draft]:
    return [Draft("admin", [], "system:test", WHEN, memo=f"note {start + index}")
            for index in range(count)]


@pytest.fixture(scope="module")
def demo(backend, databases) -> Engine:
    """A database of this module's own holding the signed demo (load_demo needs an empty one)."""
    return load_signed_demo(databases.new_engine(backend))


@pytest.fixture(scope="module")
def exported(demo, tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("export") / "out"
    export(demo, directory)
    report = verify_export(directory, workers=1)
    assert report.ok, str(report.problem)
    return directory


# -- the files ----------------------------------------------------------------------------


def test_a_full_export_writes_the_files_and_manifest_of_format_7(demo, exported):
    tip = read_head(demo, PROGRAMME)
    manifest = json.loads((exported / "manifest.json").read_bytes())
    assert sorted(path.name for path in exported.iterdir()) == ["manifest.json", PROGRAMME]
    assert {path.name for path in (exported / PROGRAMME).iterdir()} == FULL_EXPORT_FILES
    assert (manifest["format"], manifest["version"]) == ("jifen-export", 1)
    [listed] = manifest["programmes"]
    assert {key: listed[key] for key in listed if key != "files"} == {
        "code": PROGRAMME, "from_seq": 0, "to_seq": tip.size - 1, "entries": tip.size,
        "head_hash": tip.head_hash.hex(), "root": tip.root.hex(), "checkpoints": 2,
    }
    assert set(listed["files"]) == FULL_EXPORT_FILES
    for name, stated in listed["files"].items():
        data = (exported / PROGRAMME / name).read_bytes()
        assert stated == {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}, name


def test_json_files_are_sorted_compact_utf8_with_one_final_lf(exported):
    for path in [exported / "manifest.json", *(exported / PROGRAMME).glob("*.json")]:
        data = path.read_bytes()
        value = json.loads(data)
        assert data == json.dumps(value, ensure_ascii=False, sort_keys=True,
                                  separators=(",", ":")).encode("utf-8") + b"\n", path.name
    organisation = (exported / PROGRAMME / "organisation.json").read_text("utf-8")
    assert "幸福村" in organisation and "\\u" not in organisation


def test_programme_organisation_accounts_rules_and_balances_are_the_databases(demo, exported):
    directory = exported / PROGRAMME

    def read(name: str):
        return json.loads((directory / name).read_bytes())

    about = read("programme.json")
    assert set(about) == {"code", "name", "time_zone", "notice_days", "expiry_policy",
                          "created_at"}
    assert (about["code"], about["time_zone"]) == (PROGRAMME, "Asia/Shanghai")
    organisation = read("organisation.json")
    units = organisation["units"]
    assert units[0] == {"code": "qingshui-town", "name": "清水镇", "kind": "town",
                        "parent": None}
    seen: set[str] = set()
    for unit in units:  # parents before children
        assert unit["parent"] is None or unit["parent"] in seen
        seen.add(unit["code"])
    members = organisation["members"]
    assert [member["code"] for member in members] == sorted(member["code"] for member in members)
    assert {"code": "m-li-na", "name": "李娜", "household": "h-li", "unit": "xingfu-group-1"} \
        in members
    accounts = read("accounts.json")
    assert [account["code"] for account in accounts] == sorted(a["code"] for a in accounts)
    assert {"code": "member:m-li-na", "kind": "member", "member": "m-li-na"} in accounts
    assert {"code": "issuance", "kind": "system", "member": None} in accounts
    stated = read("balances.json")
    assert stated == {"size": read_head(demo, PROGRAMME).size, "accounts": {
        row.account: {"balance": row.balance_points, "score": row.score_points}
        for row in balances(demo, PROGRAMME)}}
    rules = read("rules.json")
    with read_transaction(demo) as connection:
        stored = connection.execute(
            select(RuleVersion.code, RuleVersion.version, RuleVersion.entry_seq,
                   RuleVersion.definition_json)
            .where(RuleVersion.programme_id == get_programme(demo, PROGRAMME).id)
        ).all()
    assert len(rules) == len(stored) > 10
    assert sorted((rule["code"], rule["version"], rule["entry_seq"],
                   encode_plain(rule["definition"]).decode()) for rule in rules) == sorted(stored)
    assert [rule["entry_seq"] for rule in rules] == sorted(rule["entry_seq"] for rule in rules)


def test_each_entries_line_is_the_canonical_bytes_whose_leaf_hash_is_stored(demo, exported):
    lines = (exported / PROGRAMME / "entries.jsonl").read_bytes().split(b"\n")
    assert lines.pop() == b""  # every line, the last included, ends in LF
    stored = entries_of(demo, PROGRAMME)
    assert len(lines) == len(stored)
    for line, entry in zip(lines, stored, strict=True):
        assert leaf_hash(line) == entry.hash
        assert line == entry.canonical_bytes() == encode_plain(json.loads(line))


def test_checkpoints_carry_their_notes_and_the_consistency_proof_between_them(demo, exported):
    lines = (exported / PROGRAMME / "checkpoints.jsonl").read_bytes().splitlines()
    first, second = (json.loads(line) for line in lines)
    size = read_head(demo, PROGRAMME).size
    assert (first["from_size"], first["consistency"], first["size"]) == (None, [], size - 2)
    assert (second["from_size"], second["size"]) == (size - 2, size)
    assert second["consistency"] and all(len(bytes.fromhex(node)) == 32
                                         for node in second["consistency"])
    assert first["note"].startswith(f"jifen-ledger/{PROGRAMME}\n{size - 2}\n")
    vkeys = (exported / PROGRAMME / "vkeys.txt").read_text("ascii").splitlines()
    assert len(vkeys) == 2 and all(vkey.startswith(f"jifen-ledger/{PROGRAMME}+")
                                   for vkey in vkeys)
    for line, vkey in zip((first, second), vkeys, strict=True):  # each signed by its key
        key_id = bytes.fromhex(vkey.split("+")[1])
        signature = line["note"].rsplit(" ", 1)[1]
        assert base64.b64decode(signature)[:4] == key_id


def test_the_csv_opens_as_utf8_with_chinese_intact_one_row_per_posting(demo, exported):
    data = (exported / PROGRAMME / "entries.csv").read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")
    assert data.count(b"\r\n") == data.count(b"\n")  # CRLF everywhere (no memo holds a LF)
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    assert tuple(rows[0]) == CSV_COLUMNS
    stored = entries_of(demo, PROGRAMME)
    assert len(rows) - 1 == sum(max(1, len(entry.postings)) for entry in stored)
    by_seq: dict[int, list[dict[str, str]]] = {}
    for row in rows[1:]:
        by_seq.setdefault(int(row[0]), []).append(dict(zip(CSV_COLUMNS, row, strict=True)))
    for entry in stored:
        cells = by_seq[entry.seq]
        legs = [(posting.account, str(posting.points)) for posting in entry.postings]
        assert [(cell["account"], cell["points"]) for cell in cells] == (legs or [("", "")])
        for cell in cells:
            assert (cell["memo"], cell["hash"], cell["kind"]) == (
                entry.memo, entry.hash.hex(), entry.kind)
            assert cell["rule"] == (entry.rule.code if entry.rule else "")
    assert any("村民代表大会签到" in cell["memo"] for cells in by_seq.values() for cell in cells)


def test_csv_cells_that_a_spreadsheet_would_run_are_shown_as_text(engine, tmp_path):
    village = make_village(engine)
    append(engine, village.code, kind="award",
           postings=[Posting(village.account(0), 5), Posting(ISSUANCE, -5)],
           actor="organiser:test", occurred_at=WHEN, memo='=HYPERLINK("http://x","点我")',
           idempotency_key="-1+1")
    export(engine, tmp_path / "out", [village.code])
    rows = list(csv.DictReader(io.StringIO(
        (tmp_path / "out" / village.code / "entries.csv").read_text("utf-8-sig"), newline="")))
    assert [(row["memo"], row["idempotency_key"], row["points"]) for row in rows] == [
        ("'=HYPERLINK(\"http://x\",\"点我\")", "'-1+1", "5"),
        ("'=HYPERLINK(\"http://x\",\"点我\")", "'-1+1", "-5"),
    ]
    line = (tmp_path / "out" / village.code / "entries.jsonl").read_bytes()
    assert json.loads(line)["memo"] == '=HYPERLINK("http://x","点我")'  # JSONL stays exact


# -- determinism, ranges, paging -------------------------------------------------------------


def test_two_exports_of_the_same_state_are_byte_identical(demo, exported, tmp_path):
    export(demo, tmp_path / "again")
    assert files_of(tmp_path / "again") == files_of(exported)


def test_a_range_export_starts_from_the_frontier_and_hash_before_it(demo, tmp_path):
    stored = entries_of(demo, PROGRAMME)
    hashes = [entry.hash for entry in stored]
    summary = export(demo, tmp_path / "range", from_seq=20, to_seq=40)
    report = verify_export(tmp_path / "range", workers=1)
    assert report.ok, str(report.problem)
    directory = tmp_path / "range" / PROGRAMME
    assert {path.name for path in directory.iterdir()} == (
        FULL_EXPORT_FILES - {"balances.json"} | {"start.json"})
    start = json.loads((directory / "start.json").read_bytes())
    expected = Frontier()
    expected.extend(hashes[:20])
    assert start == {"size": 20, "prev": hashes[19].hex(),
                     "frontier": [expected.to_bytes()[i:i + 32].hex()
                                  for i in range(0, len(expected.to_bytes()), 32)]}
    lines = (directory / "entries.jsonl").read_bytes().splitlines()
    assert [json.loads(line)["seq"] for line in lines] == list(range(20, 41))
    [listed] = json.loads((tmp_path / "range" / "manifest.json").read_bytes())["programmes"]
    assert (listed["from_seq"], listed["to_seq"], listed["entries"]) == (20, 40, 21)
    assert listed["root"] == merkle_root(hashes[:41]).hex() == summary.programmes[0].root.hex()
    assert listed["head_hash"] == hashes[40].hex()
    rules = json.loads((directory / "rules.json").read_bytes())
    assert rules and max(rule["entry_seq"] for rule in rules) <= 40
    # Both checkpoints lie past entry 40: none is within the range.
    assert (directory / "checkpoints.jsonl").read_bytes() == b""


def test_a_range_export_keeps_the_checkpoints_from_its_start_and_the_last_before(demo, tmp_path):
    size = read_head(demo, PROGRAMME).size
    export(demo, tmp_path / "tail", from_seq=size - 1)
    lines = [json.loads(line) for line in
             (tmp_path / "tail" / PROGRAMME / "checkpoints.jsonl").read_bytes().splitlines()]
    assert [(line["from_size"], line["size"]) for line in lines] == [(None, size - 2),
                                                                      (size - 2, size)]


def test_an_empty_range_is_allowed_and_a_range_outside_the_chain_is_refused(demo, tmp_path):
    size = read_head(demo, PROGRAMME).size
    summary = export(demo, tmp_path / "empty", from_seq=size)
    [written] = summary.programmes
    assert (written.from_seq, written.to_seq, written.entries, written.head_hash) == (
        size, size - 1, 0, None)
    assert verify_export(tmp_path / "empty", workers=1).ok
    assert (tmp_path / "empty" / PROGRAMME / "entries.jsonl").read_bytes() == b""
    assert written.root == read_head(demo, PROGRAMME).root
    for from_seq, to_seq in [(size + 1, None), (None, size), (10, 8)]:
        with pytest.raises(ExportRefused):
            export(demo, tmp_path / "refused", from_seq=from_seq, to_seq=to_seq)
        assert not (tmp_path / "refused").exists()
        assert leftovers(tmp_path, "refused") == []


def test_a_range_start_folds_stored_tiles_and_fresh_leaves_into_the_same_frontier(engine,
                                                                                    tmp_path):
    village = make_village(engine)
    append_batch(engine, village.code, admin_drafts(700))
    sign_checkpoint(engine, village.code)  # stores the level-8 nodes of tiles 0 and 1
    append_batch(engine, village.code, admin_drafts(600, start=700))
    hashes = [entry.hash for entry in entries_of(engine, village.code)]
    for from_seq in (256, 1100, 1299):
        export(engine, tmp_path / str(from_seq), [village.code], from_seq=from_seq)
        start = json.loads((tmp_path / str(from_seq) / village.code / "start.json").read_bytes())
        expected = Frontier()
        expected.extend(hashes[:from_seq])
        assert bytes.fromhex("".join(start["frontier"])) == expected.to_bytes(), from_seq
        report = verify_export(tmp_path / str(from_seq), workers=1)
        assert report.ok, str(report.problem)  # its roots meet the signed checkpoint


def test_entries_are_read_a_page_at_a_time(demo, exported, tmp_path, monkeypatch):
    monkeypatch.setattr(export_module, "BATCH_ENTRIES", 10)
    calls: list[tuple[str, int, int]] = []
    export(demo, tmp_path / "paged", progress=lambda *call: calls.append(call))
    size = read_head(demo, PROGRAMME).size
    assert calls == [(PROGRAMME, min(done, size), size) for done in range(10, size + 10, 10)]
    assert files_of(tmp_path / "paged") == files_of(exported)  # pages change no byte


def test_the_export_is_one_snapshot_whatever_is_appended_meanwhile(engine, tmp_path,
                                                                    monkeypatch):
    village = make_village(engine)
    append_batch(engine, village.code, [
        Draft("award", [Posting(village.account(index % 4), 3), Posting(ISSUANCE, -3)],
              "organiser:test", WHEN) for index in range(30)])
    before = read_head(engine, village.code)
    figures = {row.account: row.balance_points for row in balances(engine, village.code)}
    monkeypatch.setattr(export_module, "BATCH_ENTRIES", 10)

    def append_meanwhile(programme: str, done: int, total: int) -> None:
        if done == 10:  # another process posts while the export is half-way
            append(engine, village.code, kind="award",
                   postings=[Posting(village.account(0), 7), Posting(ISSUANCE, -7)],
                   actor="organiser:test", occurred_at=WHEN)

    summary = export(engine, tmp_path / "out", [village.code], progress=append_meanwhile)
    assert read_head(engine, village.code).size == before.size + 1
    assert (summary.programmes[0].entries, summary.programmes[0].root) == (before.size,
                                                                           before.root)
    stated = json.loads((tmp_path / "out" / village.code / "balances.json").read_bytes())
    assert stated["size"] == before.size
    assert {code: value["balance"] for code, value in stated["accounts"].items()} == figures


# -- refusals and crashes ----------------------------------------------------------------------


def allow_entry_updates(connection: Connection) -> None:
    """Drop the append-only trigger on entries, as someone with database access could."""
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql("DROP TRIGGER entries_append_only_update")
    else:
        connection.exec_driver_sql("DROP TRIGGER entries_append_only ON entries")


def test_a_corrupt_database_is_refused_and_nothing_is_left(fresh_engine, tmp_path):
    load_demo(fresh_engine)
    with fresh_engine.begin() as connection:
        allow_entry_updates(connection)
        connection.exec_driver_sql("UPDATE entries SET memo = 'nothing happened' WHERE seq = 30")
    with pytest.raises(CorruptLedger) as refused:
        export(fresh_engine, tmp_path / "out")
    assert refused.value.details == {"seq": 30, "field": "hash"}
    assert "entry 30: hash: expected" in refused.value.message
    assert not (tmp_path / "out").exists() and leftovers(tmp_path, "out") == []


def test_a_forged_hash_is_refused_at_the_next_link(fresh_engine, tmp_path):
    load_demo(fresh_engine)
    forged = get_entry(fresh_engine, PROGRAMME, 30)
    forged_bytes = Entry(**{**forged.__dict__, "memo": "nothing happened"}).canonical_bytes()
    with fresh_engine.begin() as connection:
        allow_entry_updates(connection)
        connection.execute(text("UPDATE entries SET memo = 'nothing happened', hash = :hash "
                                "WHERE seq = 30"), {"hash": leaf_hash(forged_bytes)})
    with pytest.raises(CorruptLedger) as refused:
        export(fresh_engine, tmp_path / "out")
    assert refused.value.details == {"seq": 31, "field": "prev"}


def test_a_failure_midway_leaves_no_export_behind(demo, tmp_path, monkeypatch):
    monkeypatch.setattr(export_module, "BATCH_ENTRIES", 10)

    def fail(programme: str, done: int, total: int) -> None:
        if done == 20:
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        export(demo, tmp_path / "out", progress=fail)
    assert not (tmp_path / "out").exists() and leftovers(tmp_path, "out") == []


def test_a_killed_export_leaves_only_a_hidden_partial_directory(demo, database_url_of_demo,
                                                               tmp_path):
    script = (
        "import os, sys\n"
        "from audit import export as module\n"
        "from ledger.storage import create_engine\n"
        "module.BATCH_ENTRIES = 10\n"
        "def die(programme, done, total):\n"
        "    if done == 20:\n"
        "        os._exit(9)  # as if killed: no cleanup runs\n"
        "module.export(create_engine(sys.argv[1]), sys.argv[2], progress=die)\n"
    )
    completed = subprocess.run([sys.executable, "-c", script, database_url_of_demo,
                                str(tmp_path / "out")], capture_output=True, text=True,
                               cwd=Path(__file__).resolve().parents[2])
    assert completed.returncode == 9, completed.stderr
    assert not (tmp_path / "out").exists()
    [partial] = leftovers(tmp_path, "out")
    assert partial.startswith(".out.partial-") and not is_export(tmp_path / partial)


@pytest.fixture(scope="module")
def database_url_of_demo(demo) -> str:
    return demo.url.render_as_string(hide_password=False)


def test_the_target_must_be_empty_or_an_earlier_export_replaced_with_force(demo, tmp_path):
    (tmp_path / "empty").mkdir()
    export(demo, tmp_path / "empty")
    assert is_export(tmp_path / "empty")
    with pytest.raises(ExportRefused, match="give --force"):
        export(demo, tmp_path / "empty")
    (tmp_path / "empty" / "stale.txt").write_text("from an earlier export")
    export(demo, tmp_path / "empty", force=True)
    assert not (tmp_path / "empty" / "stale.txt").exists() and is_export(tmp_path / "empty")
    assert leftovers(tmp_path, "empty") == []
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "thesis.txt").write_text("not an export")
    with pytest.raises(ExportRefused, match="holds no jifen export"):
        export(demo, tmp_path / "home", force=True)
    assert (tmp_path / "home" / "thesis.txt").read_text() == "not an export"
    (tmp_path / "file").write_text("")
    with pytest.raises(ExportRefused, match="not a directory"):
        export(demo, tmp_path / "file")


# -- the command line ---------------------------------------------------------------------


def jifen(url: str, *arguments: str):
    return CliRunner().invoke(main, list(arguments), env={"JIFEN_DATABASE_URL": url})


def test_jifen_export_prints_a_summary_and_refuses_with_exit_1(database_url_of_demo, tmp_path):
    out = str(tmp_path / "out")
    written = jifen(database_url_of_demo, "export", "--out", out, "--programme", PROGRAMME)
    assert written.exit_code == 0, written.output
    assert "exported 1 programmes, " in written.output and f"10 files to {out}" in written.output
    assert f"{PROGRAMME}: entries 0.." in written.output
    refused = jifen(database_url_of_demo, "export", "--out", out)
    assert refused.exit_code == 1
    assert "error: export_refused:" in refused.stderr and "--force" in refused.stderr
    ranged = jifen(database_url_of_demo, "export", "--out", out, "--force", "--from", "5",
                   "--to", "9")
    assert ranged.exit_code == 0, ranged.output
    assert f"{PROGRAMME}: entries 5..9 (5)" in ranged.output
    unknown = jifen(database_url_of_demo, "export", "--out", str(tmp_path / "x"), "-p", "nowhere")
    assert unknown.exit_code == 1 and "error: unknown_programme:" in unknown.stderr
