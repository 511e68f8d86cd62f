"""Reading entry lines (audit/verify_lines.py): the fast pattern agrees with the slow definition.

A line the pattern accepts must give exactly the fields `json.loads` gives
after checking the line is canonical; any line that is not canonical must be
refused by both. The two ways through a run of lines (columns, one by one)
must leave the same result, and chunks of the file must cover every line once.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from audit import verify_lines
from audit.verify_lines import (
    ChainPoint,
    LineContext,
    _compiled_lines,
    _fields_of,
    _scan_columns,
    _scan_one_by_one,
    _slow_fields,
    admin_lines,
    chunks_of,
    earliest_day,
    line_pattern,
    read_lines,
    subtree_pieces,
)
from audit.verify_rules import AwardRules, Calendar, Finding, Member, parse_definition
from ledger import chain
from ledger.canonical import encode_plain
from ledger.entry_format import entry_bytes, entry_hash, format_timestamp
from ledger.merkle import Frontier, merkle_root
from ledger.rules import parse_rule

PROGRAMME = b"xingfu-village"
WHEN = datetime(2026, 11, 3, 1, 30, tzinfo=UTC)


def line(**changes) -> bytes:
    fields = {
        "programme": "xingfu-village", "seq": 7, "prev_hash": bytes(range(32)), "kind": "award",
        "postings": [("member:m-zhang-wei", 5), ("issuance", -5)], "actor": "organiser:li-hua",
        "occurred_at": format_timestamp(WHEN), "recorded_at": format_timestamp(WHEN),
        "evidence": None, "memo": "参加村民代表大会", "metadata": {},
        "idempotency_key": "sheet-1", "reverses": None,
        "rule": {"code": "meeting", "quantity": None, "version": 1}, "approver": None,
    }
    fields.update(changes)
    return entry_bytes(**fields)


CANONICAL_LINES = [
    line(),
    line(seq=0, prev_hash=None),
    line(memo=""),
    line(memo="换行\n和\"引号\"和\\反斜杠"),  # escapes: left to the slow path
    line(memo="tab\there"),
    line(evidence="sha256:" + "ab" * 32, approver="reviewer:zhao-gang"),
    line(approver="organiser:li-hua"),  # approved by the actor: not an approval
    line(rule={"code": "volunteer", "quantity": 90, "version": 3}),
    line(kind="deduction", postings=[("member:m-zhang-wei", -3), ("penalty", 3)]),
    line(kind="reversal", rule=None, reverses=3),
    line(kind="admin", postings=[], rule=None, metadata={"event": "rule_version", "version": 2,
                                                        "rule": {"code": "x", "caps": []}}),
    line(kind="voucher_issue", rule=None, metadata={"lots": [[1, 5]], "voucher": 9},
         postings=[("member:m-zhang-wei", -5), ("held", 5)]),
    line(kind="settlement", rule=None, postings=[("shop:a", -7), ("settled", 4), ("x", 3)]),
    line(postings=[("member:m-zhang-wei", 0), ("issuance", 0)]),
    line(postings=[("member:m-zhang-wei", 9_007_199_254_740_991),
                   ("issuance", -9_007_199_254_740_991)]),
    line(metadata={"nested": {"a": [1, "二", None, True]}, "b": ""}),
    line(metadata={"text": '},"occurred_at":"2020-01-01T00:00:00.000000Z'}),
    line(idempotency_key=None, actor="system:demo"),
    line(memo="\u2028\u3000 \U0001f600"),
]


def comparable(fields: tuple) -> tuple:
    """The fields both paths give (the pattern checks the programme itself)."""
    return fields[:7] + fields[8:]


@pytest.mark.parametrize("text", CANONICAL_LINES, ids=range(len(CANONICAL_LINES)))
def test_a_canonical_line_reads_the_same_by_the_pattern_and_by_json(text):
    slow = _slow_fields(text)
    match = line_pattern(PROGRAMME).fullmatch(text)
    if match is not None:
        fast = _fields_of(match.groups(), text)
        if fast is not None:
            assert comparable(fast) == comparable(slow)
    rows = _compiled_lines(PROGRAMME).findall(text + b"\n")
    if rows:
        assert len(rows) == 1
        fast = _fields_of(rows[0], text)
        if fast is not None:
            assert comparable(fast) == comparable(slow)


def test_the_pattern_takes_the_common_lines():
    for text in (CANONICAL_LINES[0], CANONICAL_LINES[5], CANONICAL_LINES[9],
                 CANONICAL_LINES[10], CANONICAL_LINES[11]):
        match = line_pattern(PROGRAMME).fullmatch(text)
        assert match is not None and _fields_of(match.groups(), text) is not None, text


NOT_CANONICAL = [
    ("spaces", lambda body: json.dumps(body, ensure_ascii=False, sort_keys=True).encode()),
    ("key order", lambda body: json.dumps(dict(reversed(body.items())), ensure_ascii=False,
                                          separators=(",", ":")).encode()),
    ("ascii escapes", lambda body: json.dumps(body, sort_keys=True,
                                              separators=(",", ":")).encode()),
    ("duplicate key", lambda body: encode_plain(body)[:-1] + b',"v":1}'),
    ("float", lambda body: encode_plain(body).replace(b'"points":5', b'"points":5.0')),
    ("leading zero", lambda body: encode_plain(body).replace(b'"seq":7', b'"seq":07')),
    ("minus zero", lambda body: encode_plain(body).replace(b'"points":5', b'"points":-0')),
    ("too big", lambda body: encode_plain(body).replace(b'"points":5',
                                                         b'"points":9007199254740993')),
    ("escaped slash", lambda body: encode_plain(body).replace(b"li-hua", b"li\\/hua")),
    ("unicode escape", lambda body: encode_plain(body).replace("参".encode(), b"\\u53c2")),
    ("upper-case escape", lambda body: encode_plain({**body, "memo": "\x1f"}).replace(
        b"\\u001f", b"\\u001F")),
    ("lone surrogate", lambda body: encode_plain(body).replace("参".encode(), b"\\ud800")),
    ("invalid utf-8", lambda body: encode_plain(body).replace("参".encode(), b"\xff\xfe")),
    ("raw control", lambda body: encode_plain(body).replace("参".encode(), b"\x01")),
    ("raw control in prev", lambda body: encode_plain(body).replace(b'"prev":"00',
                                                                    b'"prev":"\x01')),
    ("missing key", lambda body: encode_plain({k: v for k, v in body.items() if k != "rule"})),
    ("extra key", lambda body: encode_plain({**body, "hash": "00"})),
    ("version 2", lambda body: encode_plain({**body, "v": 2})),
    ("bad date", lambda body: encode_plain({**body, "occurred_at":
                                            "2026-02-30T01:00:00.000000Z"})),
    ("bad time", lambda body: encode_plain({**body, "recorded_at":
                                            "2026-11-03T24:00:00.000000Z"})),
    ("seq not a number", lambda body: encode_plain({**body, "seq": "7"})),
    ("true as seq", lambda body: encode_plain(body).replace(b'"seq":7', b'"seq":true')),
    ("not an object", lambda body: b"[1,2]"),
    ("empty", lambda body: b""),
    ("carriage return", lambda body: encode_plain(body) + b"\r"),
]


@pytest.mark.parametrize(("name", "spoil"), NOT_CANONICAL, ids=[n for n, _ in NOT_CANONICAL])
def test_a_line_that_is_not_a_canonical_entry_is_refused_by_both_paths(name, spoil):
    text = spoil(json.loads(line()))
    with pytest.raises(Finding) as refused:
        _slow_fields(text)
    assert refused.value.field == "line"
    match = line_pattern(PROGRAMME).fullmatch(text)
    assert match is None or _fields_of(match.groups(), text) is None
    assert not _compiled_lines(PROGRAMME).findall(text + b"\n") or \
        _fields_of(_compiled_lines(PROGRAMME).findall(text + b"\n")[0], text) is None


def test_the_ledgers_kinds_are_the_verifiers():
    assert {kind.encode() for kind in chain.KINDS} == verify_lines.KINDS
    assert {kind.encode() for kind in chain.SCORE_KINDS} == verify_lines.SCORE_KINDS
    assert {kind.encode() for kind in chain.NOT_REVERSIBLE_KINDS} == \
        verify_lines.NOT_REVERSIBLE_KINDS


# -- runs of lines -------------------------------------------------------------------------


def context(cut_sizes: tuple[int, ...] = ()) -> LineContext:
    calendar = Calendar(ZoneInfo("Asia/Shanghai"))
    members = {f"member:m{number}".encode(): Member(f"m{number}", f"h{number // 2}", "u", "/u/")
               for number in range(6)}
    rules = [parse_definition(parse_rule({
        "code": "meeting", "name": "会", "category": "c", "sign": "award", "points": 5,
        "caps": [{"period": "day", "max_times": 3}]}).as_json(), 1, None),
        parse_definition(parse_rule({
            "code": "litter", "name": "垃圾", "category": "c", "sign": "deduction",
            "points": 2}).as_json(), 1, None)]
    accounts = frozenset([*members, b"issuance", b"penalty", b"held"])
    return LineContext(PROGRAMME, accounts, tuple(sorted(members)),
                       AwardRules(rules, members, {"u": "/u/"}, calendar), cut_sizes)


def chain_of(count: int, seed: int = 1) -> bytes:
    generator = random.Random(seed)
    lines, previous = [], None
    for seq in range(count):
        member = f"member:m{generator.randrange(6)}"
        when = WHEN + timedelta(days=seq // 10)
        if seq % 17 == 5:
            fields = dict(kind="voucher_issue", postings=[(member, -1), ("held", 1)],
                          rule=None, metadata={"voucher": seq})
        elif seq % 9 == 4:
            fields = dict(kind="deduction", postings=[(member, -2), ("penalty", 2)],
                          rule={"code": "litter", "quantity": None, "version": 1})
        else:
            fields = dict(postings=[(member, 5), ("issuance", -5)],
                          memo=generator.choice(["会", "村民大会", "meeting"]))
        text = line(seq=seq, prev_hash=previous, occurred_at=format_timestamp(when),
                    **{"memo": "", **fields})
        previous = entry_hash(text)
        lines.append(text + b"\n")
    return b"".join(lines)


def test_columns_and_one_by_one_leave_the_same_result():
    data = chain_of(300)
    for start in (None, ChainPoint(0, None)):
        columns = _scan_columns(data, 0, context((7, 100, 257)), start)
        single = _scan_one_by_one(data, 0, context((7, 100, 257)), start, True)
        assert columns is not None and single.problem is None
        assert columns == single


def test_a_run_that_does_not_continue_the_chain_is_left_to_the_one_by_one_scan():
    data = chain_of(40)
    wrong_start = ChainPoint(0, b"\x00" * 32)
    assert _scan_columns(data, 0, context(), wrong_start) is None
    result = _scan_one_by_one(data, 0, context(), wrong_start, True)
    assert result.problem[0] == 0 and result.problem[1].field == "prev"


def test_subtree_pieces_rebuild_the_root_from_any_start():
    leaves = [entry_hash(bytes([number])) for number in range(70)]
    for start in range(0, 33):
        for end in range(start + 1, 70, 7):
            frontier = Frontier()
            frontier.extend(leaves[:start])
            for level, subtree in subtree_pieces(start, leaves[start:end]):
                frontier.append_subtree(level, subtree)
            assert frontier.root() == merkle_root(leaves[:end])


@pytest.mark.parametrize("chunk_bytes", [1, 97, 700, 4096, 1 << 20])
@pytest.mark.parametrize("final_line_feed", [True, False])
def test_chunks_of_the_file_hold_every_line_once(tmp_path: Path, chunk_bytes: int,
                                                 final_line_feed: bool):
    data = chain_of(60) if final_line_feed else chain_of(60)[:-1]
    path = tmp_path / "entries.jsonl"
    path.write_bytes(data)
    seen = b""
    chunks = chunks_of(str(path), chunk_bytes)
    for number, (_, start, end) in enumerate(chunks):
        chunk, offset, at_end = read_lines(str(path), start, end)
        assert (offset, at_end) == (len(seen), number == len(chunks) - 1)
        assert chunk.endswith(b"\n") or (at_end and not final_line_feed)
        seen += chunk
    assert seen == data


def test_the_look_ahead_finds_admin_entries_and_the_earliest_day():
    admin = line(kind="admin", postings=[], rule=None, seq=3,
                 metadata={"event": "rule_version", "version": 1, "rule": {"code": "x"}})
    decoy = line(memo='"kind":"admin', seq=4, occurred_at="2026-01-05T00:00:00.000000Z")
    data = b"\n".join([line(), admin, decoy]) + b"\n"
    assert admin_lines(data) == [(3, {"event": "rule_version", "version": 1,
                                      "rule": {"code": "x"}})]
    assert earliest_day(data) == b"2026-01-05"
