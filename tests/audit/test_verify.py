"""The offline verifier (audit/verify.py) on synthetic exports: a good one, and the tamper suite.

Every tamper is made on a known-good export from `exportkit` and must be
caught with the exact first problem: programme, where (`entry <seq>`,
`checkpoint <size>` or a file) and field. Each runs twice: in this process,
and with worker processes on chunks of a few hundred bytes, so that the
joining of chunks (and the second look at a chunk that has a problem) is
exercised too and must name the same problem. No database is used.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import sysconfig
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from audit import note, verify
from audit.verify import Problem, verify_export
from ledger.canonical import encode_plain
from ledger.entry_format import entry_hash
from ledger.merkle import Frontier
from tests.audit.exportkit import PROGRAMME, ExportBuilder, json_line, rule_definition

ROOT = Path(__file__).resolve().parents[2]
DAY = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)  # 09:00 in Asia/Shanghai


def build(directory: Path) -> tuple[ExportBuilder, dict[str, int]]:
    """A small programme with everything the verifier looks at; returns the seqs of note."""
    builder = ExportBuilder(directory, start=DAY)
    builder.add_unit("qingshui-town", "清水镇", kind="town")
    builder.add_unit("xingfu", "幸福村", "qingshui-town")
    builder.add_unit("xingfu-group-1", "幸福村一组", "xingfu", kind="group")
    builder.add_unit("other-village", "别的村", "qingshui-town")
    builder.add_household("h-zhang", "xingfu-group-1")
    builder.add_household("h-li", "xingfu")
    builder.add_household("h-far", "other-village")
    builder.add_member("m-zhang-wei", "h-zhang", "张伟")
    builder.add_member("m-zhang-fang", "h-zhang", "张芳")
    builder.add_member("m-li-na", "h-li", "李娜")
    builder.add_member("m-far", "h-far", "王远")
    builder.add_account("held", "hold")
    builder.add_account("shop:xingfu-store", "shop")
    builder.define_rule(rule_definition(
        "meeting", points=5, caps=[{"period": "day", "max_times": 1}], name="村民大会"))
    builder.define_rule(rule_definition(
        "volunteer", per_unit={"unit": "minute", "points": 5, "per": 60, "max_quantity": 480},
        caps=[{"period": "week", "max_points": 30}], name="志愿服务"))
    builder.define_rule(rule_definition(
        "sorting", points=2, caps=[{"per": "household", "period": "month", "max_times": 2}],
        name="垃圾分类"))
    builder.define_rule(rule_definition("litter", sign="deduction", points=3, name="乱扔垃圾"))
    builder.define_rule(rule_definition("good-deed", points=10, approval="above",
                                        approval_above_points=8, name="好人好事"))
    builder.define_rule(rule_definition("inspection", points=4, evidence_required=True,
                                        cooldown_minutes=120, scope="xingfu", name="入户检查"))
    seqs = {}
    seqs["first_award"] = builder.award("m-zhang-wei", "meeting", occurred_at=DAY)
    builder.award("m-li-na", "meeting", occurred_at=DAY)
    builder.award("m-zhang-wei", "volunteer", quantity=120, occurred_at=DAY)
    builder.award("m-zhang-fang", "volunteer", quantity=240, occurred_at=DAY)
    seqs["sorting"] = builder.award("m-zhang-wei", "sorting", occurred_at=DAY)
    builder.award("m-zhang-fang", "sorting", occurred_at=DAY + timedelta(days=1))
    builder.checkpoint()
    builder.award("m-li-na", "litter", memo="乱扔垃圾", occurred_at=DAY)
    builder.award("m-li-na", "good-deed", approver="reviewer:zhao-gang", occurred_at=DAY)
    builder.award("m-zhang-wei", "inspection", evidence="sha256:" + "ab" * 32,
                  occurred_at=DAY)
    seqs["reversed"] = builder.award("m-li-na", "volunteer", quantity=60, occurred_at=DAY)
    seqs["reversal"] = builder.reverse(seqs["reversed"])
    builder.append("voucher_issue", [("member:m-zhang-wei", -10), ("held", 10)],
                   actor="system:vouchers", memo="兑换券", metadata={"voucher": 1})
    builder.append("voucher_redeem", [("held", -10), ("shop:xingfu-store", 10)],
                   actor="shop:xingfu-store", metadata={"shop": "xingfu-store", "voucher": 1})
    builder.checkpoint()
    seqs["meeting_v2"] = builder.define_rule(rule_definition(
        "meeting", points=6, caps=[{"period": "day", "max_times": 1}], name="村民大会"))
    seqs["meeting_v2_seq"] = builder.size - 1
    seqs["second_day"] = builder.award("m-zhang-wei", "meeting",
                                       occurred_at=DAY + timedelta(days=1))
    builder.award("m-zhang-wei", "inspection", evidence="sha256:" + "cd" * 32,
                  occurred_at=DAY + timedelta(hours=3))
    for number in range(12):
        builder.award("m-far", "litter", memo=f"第{number}次", occurred_at=DAY)
    builder.checkpoint()
    seqs["last"] = builder.award("m-li-na", "meeting", occurred_at=DAY + timedelta(days=1))
    builder.checkpoint()
    return builder, seqs


@pytest.fixture(params=["in-process", "workers"])
def workers(request, monkeypatch) -> int:
    """Check every export twice: in this process, and in workers on tiny chunks."""
    if request.param == "in-process":
        return 1
    monkeypatch.setattr(verify, "CHUNK_BYTES", 700)
    return 2


@pytest.fixture()
def export(tmp_path):
    builder, seqs = build(tmp_path / "export")
    builder.finish()
    return Export(builder, seqs)


class Export:
    """A finished export and the helpers that tamper with it."""

    def __init__(self, builder: ExportBuilder, seqs: dict[str, int]) -> None:
        self.builder = builder
        self.seqs = seqs
        self.root = builder.root
        self.directory = builder.directory
        self.vkeys = builder.vkeys

    def verify(self, workers: int = 1, **options) -> verify.Report:
        return verify_export(self.root, vkeys=options.pop("vkeys", self.vkeys), workers=workers,
                             **options)

    @property
    def entries(self) -> Path:
        return self.directory / "entries.jsonl"

    def lines(self) -> list[bytes]:
        return self.entries.read_bytes().splitlines(keepends=True)

    def write_lines(self, lines: list[bytes]) -> None:
        self.entries.write_bytes(b"".join(lines))

    def body(self, seq: int) -> dict:
        return json.loads(self.lines()[seq])

    def replace(self, seq: int, body: dict) -> None:
        lines = self.lines()
        lines[seq] = encode_plain(body) + b"\n"
        self.write_lines(lines)

    def json_file(self, name: str):
        return json.loads((self.directory / name).read_bytes())

    def write_json(self, name: str, value) -> None:
        (self.directory / name).write_bytes(json_line(value))

    def rechain(self, from_seq: int) -> None:
        """Recompute every `prev` from `from_seq` on, then balances and manifest: a full
        rewrite, which only a signed checkpoint can catch."""
        lines = self.lines()
        previous = entry_hash(lines[from_seq - 1].rstrip(b"\n")) if from_seq else None
        balances: dict[str, list[int]] = {code: [0, 0] for code in self.builder.accounts}
        kinds = []
        for seq, line in enumerate(lines):
            body = json.loads(line)
            if seq >= from_seq:
                body["prev"] = previous.hex() if previous is not None else None
                line = lines[seq] = encode_plain(body) + b"\n"
            previous = entry_hash(line.rstrip(b"\n"))
            kinds.append(body["kind"])
            scored = body["kind"] in ("award", "deduction") or (
                body["kind"] == "reversal" and kinds[body["reverses"]] in ("award", "deduction"))
            for posting in body["postings"]:
                figures = balances[posting["account"]]
                figures[0] += posting["points"]
                if scored and posting["account"].startswith("member:"):
                    figures[1] += posting["points"]
        self.write_lines(lines)
        self.write_json("balances.json", {"size": len(lines), "accounts": {
            code: {"balance": balance, "score": score}
            for code, (balance, score) in sorted(balances.items())}})
        self.refresh_manifest()

    def refresh_manifest(self) -> None:
        """The manifest recomputed from the files as they now are (as an operator would)."""
        manifest = json.loads((self.root / "manifest.json").read_bytes())
        listed = manifest["programmes"][0]
        lines = self.lines()
        frontier = Frontier()
        for line in lines:
            frontier.append(entry_hash(line.rstrip(b"\n")))
        listed["to_seq"] = listed["from_seq"] + len(lines) - 1
        listed["entries"] = len(lines)
        listed["head_hash"] = entry_hash(lines[-1].rstrip(b"\n")).hex()
        listed["root"] = frontier.root().hex()
        listed["checkpoints"] = len((self.directory / "checkpoints.jsonl").read_bytes()
                                    .splitlines())
        for name in listed["files"]:
            data = (self.directory / name).read_bytes()
            listed["files"][name] = {"bytes": len(data),
                                     "sha256": hashlib.sha256(data).hexdigest()}
        (self.root / "manifest.json").write_bytes(json_line(manifest))


def where(report: verify.Report) -> tuple[str | None, str, str]:
    assert report.problem is not None, report.text()
    return report.problem.programme, report.problem.where, report.problem.field


# -- a good export ---------------------------------------------------------------------


def test_a_good_export_verifies_and_the_summary_adds_up(export, workers):
    report = export.verify(workers)
    assert report.ok, report.text()
    assert report.exit_status == 0
    summary = report.summary[PROGRAMME]
    assert summary.entries_checked == export.builder.size
    assert summary.checkpoints_verified == 4
    assert summary.latest_checkpoint == (export.builder.size,
                                         export.builder.frontier.root().hex())
    balances = {code: figures[0] for code, figures in export.builder.balances.items()}
    assert summary.totals == {
        "issued": -balances["issuance"], "deducted": balances["penalty"], "expired": 0,
        "settled": 0, "redeemed": 10, "in_vouchers": 0,
        "outstanding": sum(value for code, value in balances.items()
                           if code.startswith("member:")),
    }
    assert summary.reversals == 1
    assert summary.rule_versions == 7
    assert report.keys_pinned
    assert "OK: 1 programme(s)" in report.text()
    assert "WARNING" not in report.text()


def test_without_pinned_keys_the_export_own_keys_are_used_and_the_summary_says_so(export):
    report = verify_export(export.root, workers=1)
    assert report.ok
    assert not report.keys_pinned
    assert "WARNING: no verifier key was pinned" in report.text()


def test_a_range_export_verifies_from_its_start(tmp_path, workers):
    builder, seqs = build(tmp_path / "range")
    builder.finish(from_seq=9, to_seq=seqs["last"] - 1)
    report = verify_export(builder.root, vkeys=builder.vkeys, workers=workers)
    assert report.ok, report.text()
    summary = report.summary[PROGRAMME]
    assert (summary.from_seq, summary.entries_checked) == (9, seqs["last"] - 9)
    in_range = [size for size, _, _ in builder.checkpoints if 9 <= size <= seqs["last"]]
    assert summary.checkpoints_verified == len(in_range) == 3
    assert any("caps and cooldowns counted only" in line for line in summary.notes)


def test_a_range_export_with_a_forged_start_is_caught_by_a_signed_root(tmp_path):
    builder, seqs = build(tmp_path / "range")
    builder.finish(from_seq=8, to_seq=seqs["last"] - 1)
    start = json.loads((builder.directory / "start.json").read_bytes())
    start["frontier"][0] = "00" * 32
    (builder.directory / "start.json").write_bytes(json_line(start))
    report = verify_export(builder.root, vkeys=builder.vkeys, workers=1)
    assert where(report) == (PROGRAMME, f"checkpoint {builder.checkpoints[0][0]}", "root")


# -- the tamper suite ------------------------------------------------------------------


def test_a_flipped_byte_in_a_memo_breaks_the_next_link(export, workers):
    seq = export.seqs["sorting"]
    lines = export.lines()
    lines[seq] = lines[seq].replace(b'"actor":"organiser', b'"actor":"organizer')
    export.write_lines(lines)
    report = export.verify(workers)
    assert where(report) == (PROGRAMME, f"entry {seq + 1}", "prev")
    assert str(report.problem).startswith(f"{PROGRAMME} entry {seq + 1}: prev: expected ")


def test_a_flipped_byte_that_breaks_the_json_is_not_canonical(export, workers):
    seq = export.seqs["sorting"]
    lines = export.lines()
    lines[seq] = lines[seq].replace(b'"kind":"award"', b'"kind" "award"')
    export.write_lines(lines)
    assert where(export.verify(workers)) == (PROGRAMME, f"entry {seq}", "line")


def test_a_line_that_is_json_but_not_canonical_is_refused(export, workers):
    seq = export.seqs["sorting"]
    lines = export.lines()
    lines[seq] = json.dumps(json.loads(lines[seq]), ensure_ascii=False,
                            sort_keys=True).encode() + b"\n"
    export.write_lines(lines)
    report = export.verify(workers)
    assert where(report) == (PROGRAMME, f"entry {seq}", "line")
    assert "canonical" in report.problem.expected


def test_a_deleted_entry_leaves_a_gap(export, workers):
    seq = export.seqs["sorting"]
    lines = export.lines()
    del lines[seq]
    export.write_lines(lines)
    report = export.verify(workers)
    assert where(report) == (PROGRAMME, f"entry {seq}", "seq")
    assert (report.problem.expected, report.problem.found) == (str(seq), str(seq + 1))


def test_an_inserted_entry_is_out_of_sequence(export, workers):
    seq = export.seqs["sorting"]
    lines = export.lines()
    lines.insert(seq, lines[seq])
    export.write_lines(lines)
    assert where(export.verify(workers)) == (PROGRAMME, f"entry {seq + 1}", "seq")


def test_two_swapped_entries_are_out_of_sequence(export, workers):
    seq = export.seqs["sorting"]
    lines = export.lines()
    lines[seq], lines[seq + 1] = lines[seq + 1], lines[seq]
    export.write_lines(lines)
    report = export.verify(workers)
    assert where(report) == (PROGRAMME, f"entry {seq}", "seq")


def test_a_truncated_tail_falls_short_of_the_manifest(export, workers):
    lines = export.lines()
    export.write_lines(lines[:-2])
    report = export.verify(workers)
    assert where(report) == (PROGRAMME, "manifest.json", "entries")


def test_an_edited_balance_is_caught(export, workers):
    balances = export.json_file("balances.json")
    balances["accounts"]["member:m-li-na"]["balance"] += 1
    export.write_json("balances.json", balances)
    report = export.verify(workers)
    assert where(report) == (PROGRAMME, "balances.json", "balance")
    assert "member:m-li-na" in report.problem.expected


def test_an_edited_score_is_caught(export):
    balances = export.json_file("balances.json")
    balances["accounts"]["member:m-zhang-wei"]["score"] -= 1
    export.write_json("balances.json", balances)
    assert where(export.verify()) == (PROGRAMME, "balances.json", "score")


def test_an_edited_cap_in_rules_json_disagrees_with_the_chain(export, workers):
    rules = export.json_file("rules.json")
    rules[0]["definition"]["caps"][0]["max_times"] = 3
    export.write_json("rules.json", rules)
    report = export.verify(workers)
    assert where(report) == (PROGRAMME, "rules.json", "rule")
    assert report.problem.expected.endswith("definition.caps[0].max_times = 1")
    assert report.problem.found == "definition.caps[0].max_times = 3"


def test_an_edited_cap_in_the_admin_entry_breaks_the_chain(export, workers):
    body = export.body(0)
    body["metadata"]["rule"]["caps"][0]["max_times"] = 3
    export.replace(0, body)
    assert where(export.verify(workers)) == (PROGRAMME, "entry 1", "prev")


def test_a_checkpoint_signed_with_a_foreign_key_is_refused(export, workers):
    lines = (export.directory / "checkpoints.jsonl").read_bytes().splitlines()
    second = json.loads(lines[1])
    foreign = note.new_signer(f"jifen-test/{PROGRAMME}")
    text, _ = note.open_note(second["note"], [export.builder.signer.verifier])
    second["note"] = note.sign(text, foreign)
    lines[1] = json_line(second).rstrip(b"\n")
    (export.directory / "checkpoints.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    report = export.verify(workers)
    assert where(report) == (PROGRAMME, f"checkpoint {second['size']}", "signature")


def test_a_dropped_checkpoint_breaks_the_chain_of_proofs(export, workers):
    path = export.directory / "checkpoints.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    dropped = json.loads(lines.pop(1))
    path.write_bytes(b"".join(lines))
    export.refresh_manifest()
    after = json.loads(lines[1])
    report = export.verify(workers)
    assert where(report) == (PROGRAMME, f"checkpoint {after['size']}", "consistency")
    assert f"size {dropped['size']}" in report.problem.found


def test_a_rewritten_history_with_every_hash_recomputed_is_caught_by_a_signed_root(
        export, workers):
    seq = export.seqs["sorting"]
    body = export.body(seq)
    body["memo"] = "改过的备注"
    export.replace(seq, body)
    export.rechain(seq + 1)
    report = export.verify(workers)
    first_checkpoint = export.builder.checkpoints[0][0]
    assert seq < first_checkpoint
    assert where(report) == (PROGRAMME, f"checkpoint {first_checkpoint}", "root")


def test_an_award_over_its_cap_is_refused(tmp_path, workers):
    builder, _ = build(tmp_path / "export")
    seq = builder.award("m-zhang-wei", "meeting", occurred_at=DAY + timedelta(hours=5))
    builder.finish()
    report = verify_export(builder.root, vkeys=builder.vkeys, workers=workers)
    assert where(report) == (PROGRAMME, f"entry {seq}", "cap")
    assert "member m-zhang-wei already had 1 time(s)" in report.problem.found


def test_a_household_cap_counts_every_member_of_the_household(tmp_path, workers):
    builder, _ = build(tmp_path / "export")
    seq = builder.award("m-zhang-fang", "sorting", occurred_at=DAY + timedelta(days=2))
    builder.finish()
    report = verify_export(builder.root, vkeys=builder.vkeys, workers=workers)
    assert where(report) == (PROGRAMME, f"entry {seq}", "cap")
    assert "household h-zhang already had 2 time(s)" in report.problem.found


def test_a_reversed_award_no_longer_counts_against_the_cap(tmp_path, workers):
    builder, _ = build(tmp_path / "export")
    # 27 points; with the 5 reversed before it still counted, 32 would pass the cap of 30.
    builder.award("m-li-na", "volunteer", quantity=330, occurred_at=DAY)
    builder.finish()
    assert verify_export(builder.root, vkeys=builder.vkeys, workers=workers).ok


def test_an_award_under_a_retired_rule_version_is_refused(tmp_path, workers):
    builder, seqs = build(tmp_path / "export")
    seq = builder.award("m-zhang-fang", "meeting", version=1,
                        occurred_at=DAY + timedelta(days=3))
    builder.finish()
    report = verify_export(builder.root, vkeys=builder.vkeys, workers=workers)
    assert where(report) == (PROGRAMME, f"entry {seq}", "rule")
    assert report.problem.expected.startswith("version 2 (the newest)")


def test_points_other_than_the_rule_gives_are_refused(tmp_path, workers):
    builder, _ = build(tmp_path / "export")
    seq = builder.award("m-zhang-fang", "volunteer", quantity=60, points=6,
                        occurred_at=DAY + timedelta(days=9))
    builder.finish()
    report = verify_export(builder.root, vkeys=builder.vkeys, workers=workers)
    assert where(report) == (PROGRAMME, f"entry {seq}", "points")
    assert report.problem.expected.startswith("5 ")


@pytest.mark.parametrize(("award", "field"), [
    ({"member": "m-far", "rule": "inspection", "evidence": "sha256:" + "ee" * 32}, "scope"),
    ({"member": "m-li-na", "rule": "inspection"}, "evidence"),
    ({"member": "m-li-na", "rule": "good-deed"}, "approver"),
    ({"member": "m-zhang-wei", "rule": "inspection", "evidence": "sha256:" + "ee" * 32,
      "occurred_at": DAY + timedelta(hours=1)}, "cooldown"),
])
def test_what_the_rule_requires_is_checked(tmp_path, award, field):
    builder, _ = build(tmp_path / "export")
    seq = builder.award(award.pop("member"), award.pop("rule"),
                        occurred_at=award.pop("occurred_at", DAY + timedelta(days=5)), **award)
    builder.finish()
    report = verify_export(builder.root, vkeys=builder.vkeys, workers=1)
    assert where(report) == (PROGRAMME, f"entry {seq}", field)


def test_a_second_reversal_of_the_same_entry_is_refused(tmp_path, workers):
    builder, seqs = build(tmp_path / "export")
    seq = builder.reverse(seqs["reversed"])
    builder.finish()
    report = verify_export(builder.root, vkeys=builder.vkeys, workers=workers)
    assert where(report) == (PROGRAMME, f"entry {seq}", "reverses")
    assert f"entry {seqs['reversal']}" in report.problem.found


def test_a_reversal_that_does_not_negate_what_it_reverses_is_refused(tmp_path):
    builder, seqs = build(tmp_path / "export")
    seq = builder.append("reversal", [("member:m-zhang-wei", -4), ("issuance", 4)],
                         reverses=seqs["first_award"])
    builder.finish()
    report = verify_export(builder.root, vkeys=builder.vkeys, workers=1)
    assert where(report) == (PROGRAMME, f"entry {seq}", "postings")


def test_postings_that_do_not_balance_are_refused(export, workers):
    seq = export.seqs["sorting"]
    body = export.body(seq)
    body["postings"][1]["points"] = -3
    export.replace(seq, body)
    report = export.verify(workers)
    assert where(report) == (PROGRAMME, f"entry {seq}", "postings")
    assert report.problem.found == "a sum of -1"


def test_an_account_not_in_accounts_json_is_refused(export):
    seq = export.seqs["sorting"]
    body = export.body(seq)
    body["postings"][0]["account"] = "member:nobody"
    export.replace(seq, body)
    report = export.verify()
    assert where(report) == (PROGRAMME, f"entry {seq}", "postings")
    assert report.problem.found == "account member:nobody"


def test_an_entry_of_another_programme_is_refused(export, workers):
    seq = export.seqs["sorting"]
    body = export.body(seq)
    body["programme"] = "other"
    export.replace(seq, body)
    assert where(export.verify(workers)) == (PROGRAMME, f"entry {seq}", "programme")


def test_a_fork_two_roots_for_one_size_is_a_split_view(export, workers):
    size = json.loads(export.directory.joinpath("checkpoints.jsonl").read_bytes()
                      .splitlines()[1])["size"]
    other_root = hashlib.sha256(b"another history").digest()
    signed = note.sign(note.Checkpoint(export.builder.signer.name, size, other_root).text(),
                       export.builder.signer)
    saved = export.root.parent / "saved-checkpoint.txt"
    saved.write_text(signed, encoding="utf-8")
    report = export.verify(workers, checkpoints=[saved])
    assert where(report) == (PROGRAMME, "saved-checkpoint.txt", "split view")


def test_a_saved_checkpoint_between_the_export_checkpoints_is_recomputed(export, workers):
    size = 20
    lines = export.lines()[:size]
    frontier = Frontier()
    for line in lines:
        frontier.append(entry_hash(line.rstrip(b"\n")))
    saved = export.root.parent / "saved.txt"
    signer = export.builder.signer
    saved.write_text(note.sign(note.Checkpoint(signer.name, size, frontier.root()).text(),
                               signer), encoding="utf-8")
    assert export.verify(workers, checkpoints=[saved]).ok
    forked = note.sign(note.Checkpoint(signer.name, size, b"\x01" * 32).text(), signer)
    saved.write_text(forked, encoding="utf-8")
    assert where(export.verify(workers, checkpoints=[saved])) == (
        PROGRAMME, "saved.txt", "split view")


def test_two_checkpoints_of_one_size_with_different_roots_are_a_split_view(export):
    path = export.directory / "checkpoints.jsonl"
    lines = path.read_bytes().splitlines()
    last = json.loads(lines[-1])
    signer = export.builder.signer
    fork = {"consistency": [], "from_size": last["size"], "size": last["size"],
            "note": note.sign(note.Checkpoint(signer.name, last["size"], b"\x02" * 32).text(),
                              signer)}
    path.write_bytes(b"\n".join(lines) + b"\n" + json_line(fork))
    report = export.verify()
    assert where(report) == (PROGRAMME, f"checkpoint {last['size']}", "split view")


def test_a_checkpoint_size_that_goes_back_is_refused(export):
    path = export.directory / "checkpoints.jsonl"
    lines = path.read_bytes().splitlines()
    lines[1], lines[2] = lines[2], lines[1]
    path.write_bytes(b"\n".join(lines) + b"\n")
    report = export.verify()
    assert report.problem.field in ("consistency", "size")
    assert report.problem.where.startswith("checkpoint ")


def test_a_file_that_differs_from_the_manifest_is_reported(export):
    table = export.directory / "entries.csv"
    data = table.read_bytes()
    table.write_bytes(data.replace(b"seq", b"SEQ", 1))
    assert where(export.verify()) == (PROGRAMME, "entries.csv", "sha256")
    table.write_bytes(data + b"\r\n")
    assert where(export.verify()) == (PROGRAMME, "entries.csv", "bytes")


def test_a_manifest_root_that_differs_from_the_entries_is_reported(export):
    manifest = json.loads((export.root / "manifest.json").read_bytes())
    manifest["programmes"][0]["root"] = "00" * 32
    (export.root / "manifest.json").write_bytes(json_line(manifest))
    assert where(export.verify()) == (PROGRAMME, "manifest.json", "root")


# -- malformed directories (exit status 2) ---------------------------------------------


def test_a_missing_file_is_a_malformed_export(export):
    (export.directory / "accounts.json").unlink()
    report = export.verify()
    assert report.malformed and report.exit_status == 2
    assert where(report) == (PROGRAMME, "accounts.json", "file")


def test_a_file_that_is_not_json_is_a_malformed_export(export):
    (export.directory / "rules.json").write_text("[{", encoding="utf-8")
    report = export.verify()
    assert report.malformed
    assert "not JSON" in report.problem.found


def test_a_directory_without_a_manifest_is_not_an_export(tmp_path):
    report = verify_export(tmp_path, workers=1)
    assert report.malformed and report.exit_status == 2
    assert report.problem == Problem(None, "manifest.json", "file", "the manifest of an export",
                                     "no such file")


# -- the command line ----------------------------------------------------------------------


def run_cli(*arguments: str, env: dict | None = None, python: str = sys.executable
            ) -> subprocess.CompletedProcess:
    return subprocess.run([python, "-m", "audit.verify", *arguments], cwd=ROOT,
                          capture_output=True, text=True, env=env, timeout=120)


def test_the_command_exits_0_1_and_2_and_says_why(export, tmp_path):
    vkeys = tmp_path / "keys.vkeys"
    vkeys.write_text("\n".join(export.vkeys) + "\n", encoding="utf-8")
    good = run_cli(str(export.root), "--vkey", str(vkeys), "--quiet")
    assert good.returncode == 0, good.stderr
    assert "OK: 1 programme(s)" in good.stdout

    export.write_lines(export.lines()[:-1])
    bad = run_cli(str(export.root), "--vkey", export.vkeys[0], "--workers", "2")
    assert bad.returncode == 1
    assert f"PROBLEM: {PROGRAMME} manifest.json: entries: expected " in bad.stdout

    missing = run_cli(str(tmp_path / "nowhere"))
    assert missing.returncode == 2
    assert "NOT A READABLE EXPORT" in missing.stdout

    wrong = run_cli(str(export.root), "--workers", "0")
    assert wrong.returncode == 2
    assert "--workers must be at least 1" in wrong.stderr
    assert run_cli().returncode == 2
    assert run_cli(str(export.root), "--vkey", str(tmp_path / "no-such-file")).returncode == 2


def test_the_command_shows_progress_when_asked(export):
    result = run_cli(str(export.root), "--vkey", export.vkeys[0], "--progress")
    assert result.returncode == 0
    assert f"{PROGRAMME}: {export.builder.size:,}/{export.builder.size:,} entries" in \
        result.stderr


def test_the_verifier_imports_nothing_but_the_standard_library_and_cryptography():
    code = ("import sys, audit.verify; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('sqlalchemy', 'flask', 'click', 'alembic', 'psycopg', 'api', 'redemption')))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_the_verifier_runs_in_a_virtualenv_with_only_the_standard_library_and_cryptography(
        export, tmp_path):
    """A venv with no pip, whose only packages are audit/, ledger/ and cryptography (+cffi)."""
    env_dir = tmp_path / "bare-env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True)
    python = env_dir / "bin" / "python"
    packages = tmp_path / "packages"
    packages.mkdir()
    site_packages = Path(sysconfig.get_paths()["purelib"])
    for name in ("audit", "ledger"):
        (packages / name).symlink_to(ROOT / name)
    for entry in site_packages.iterdir():
        if entry.name in ("cryptography", "cffi", "pycparser") or \
                entry.name.startswith("_cffi_backend"):
            (packages / entry.name).symlink_to(entry)
    env_site = Path(subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True).stdout.strip())
    (env_site / "verifier.pth").write_text(f"{packages}\n", encoding="utf-8")
    environment = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)}
    probe = subprocess.run([str(python), "-c", "import sqlalchemy"], capture_output=True,
                           text=True, env=environment, cwd=tmp_path)
    assert probe.returncode != 0 and "No module named 'sqlalchemy'" in probe.stderr
    arguments = [str(python), "-m", "audit.verify", str(export.root), "--vkey",
                 export.vkeys[0], "--workers", "2"]
    good = subprocess.run(arguments, capture_output=True, text=True, env=environment,
                          cwd=tmp_path, timeout=120)
    assert good.returncode == 0, good.stdout + good.stderr
    seq = export.seqs["first_award"]
    lines = export.lines()
    lines[seq] = lines[seq].replace(b'"points":5', b'"points":50', 1)
    export.write_lines(lines)
    bad = subprocess.run(arguments, capture_output=True, text=True, env=environment,
                         cwd=tmp_path, timeout=120)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert f"PROBLEM: {PROGRAMME} entry {seq}: postings: expected a sum of 0" in bad.stdout


def test_jifen_verify_and_the_jifen_verify_script_report_as_the_module_does(export, tmp_path):
    from click.testing import CliRunner

    import audit.verify_cli  # noqa: F401  (adds `jifen verify`)
    from ledger.cli import main

    arguments = [str(export.root), "--vkey", export.vkeys[0], "--quiet"]
    module = run_cli(*arguments)
    script = subprocess.run([str(Path(sys.executable).parent / "jifen-verify"), *arguments],
                            capture_output=True, text=True, cwd=ROOT, timeout=120)
    command = CliRunner().invoke(main, ["verify", *arguments])
    assert module.returncode == script.returncode == command.exit_code == 0
    assert module.stdout == script.stdout == command.output
    export.write_lines(export.lines()[:-1])
    assert CliRunner().invoke(main, ["verify", *arguments]).exit_code == 1
    assert CliRunner().invoke(main, ["verify", str(tmp_path / "none")]).exit_code == 2


def test_every_programme_of_an_export_is_checked_and_a_problem_names_its_programme(tmp_path):
    root = tmp_path / "two"
    manifests = []
    vkeys = []
    for programme in ("xingfu-village", "heping-village"):
        builder = ExportBuilder(root, programme=programme, start=DAY)
        builder.add_unit("u", "村")
        builder.add_household("h", "u")
        builder.add_member("m1", "h")
        builder.define_rule(rule_definition("meeting", points=5))
        builder.award("m1", "meeting")
        builder.checkpoint()
        builder.finish()
        manifests.append(json.loads((root / "manifest.json").read_bytes()))
        vkeys += builder.vkeys
    manifest = {**manifests[0], "programmes": [listed for each in manifests
                                               for listed in each["programmes"]]}
    (root / "manifest.json").write_bytes(json_line(manifest))
    report = verify_export(root, vkeys=vkeys, workers=1)
    assert report.ok, report.text()
    assert sorted(report.summary) == ["heping-village", "xingfu-village"]
    entries = root / "heping-village" / "entries.jsonl"
    award = b'"member:m1","points":'
    entries.write_bytes(entries.read_bytes().replace(award + b"5", award + b"6"))
    assert where(verify_export(root, vkeys=vkeys, workers=1)) == (
        "heping-village", "entry 1", "postings")


def test_a_saved_checkpoint_of_another_log_is_a_bad_argument(export, tmp_path):
    stranger = note.new_signer("elsewhere/other-programme")
    saved = tmp_path / "other.txt"
    saved.write_text(note.sign(note.Checkpoint(stranger.name, 1, b"\x00" * 32).text(),
                               stranger), encoding="utf-8")
    report = export.verify(checkpoints=[saved])
    assert report.malformed and report.exit_status == 2
    assert where(report) == (None, "other.txt", "file")
