"""The lines of entries.jsonl, checked: canonical bytes, links, postings, rule versions.

Part of the offline verifier (`audit/verify.py`): standard library and
`ledger.canonical` only. `scan_lines` checks a run of consecutive lines and
returns what the verifier needs to carry on without them: the last hash,
the Merkle subtrees over the run, the sums of postings per account, and
compact records of what depends on the whole chain in order (applications
of capped rules, reversals, admin entries). It runs in worker processes on
chunks of the file, or in the verifier itself.

Every line must be exactly the canonical bytes of an entry (docs/FORMAT.md
§2–3). One regular expression (`line_pattern`) accepts only canonical
text: the keys in their sorted order, integers without leading zeros,
strings that need no escape, `{}` for metadata or a metadata object that
re-encodes to itself; a match proves a line canonical without decoding it
as JSON. Anything else (escapes, unusual metadata, a wrong line) is decoded
with `json.loads`, checked field by field and re-encoded (`_slow_fields`):
that slow path is the definition, the pattern a shortcut that either agrees
with it or declines (tests/audit/test_verify_lines.py holds them to that).

Two ways through a run, with one outcome. `_scan_one_by_one` checks line
after line, in this order, and the first check that fails is the problem:
`line` (not canonical JSON, not an entry), `programme`, `seq`, `prev`,
`kind`, `postings`, `reverses`, then for awards and deductions `rule`,
`kind`, `scope`, `evidence`, `points`, `approver` (`verify_rules.AwardRules`).
`_scan_columns` is the fast way for runs where nothing is wrong: it matches
the whole run at once and checks each field as a column, with the loops in
C (`map`, `set`, `zip`); the few entries that are not plain awards or
deductions go through the same `_check_body` as one by one. At the first
doubt it gives up, and the run is checked one by one, which names the
problem exactly. Caps and cooldowns, which depend on every earlier entry,
are checked by the verifier from the records.
"""

from __future__ import annotations

import binascii
import functools
import gc
import hashlib
import json
import operator
import os
import re
from array import array
from dataclasses import dataclass, field
from datetime import date
from itertools import accumulate, compress, pairwise
from typing import Any

from audit.verify_rules import AwardRules, Finding, microseconds
from ledger.canonical import CanonicalError, check_plain_json, encode_plain

KINDS = frozenset({
    b"award", b"deduction", b"reversal", b"voucher_issue", b"voucher_redeem", b"voucher_cancel",
    b"voucher_expire", b"settlement", b"expiry", b"admin",
})
"""As `ledger.chain.KINDS`, in bytes (a test holds the two equal)."""
SCORE_KINDS = frozenset({b"award", b"deduction"})
NOT_REVERSIBLE_KINDS = frozenset({
    b"reversal", b"admin", b"voucher_issue", b"voucher_redeem", b"voucher_cancel",
    b"voucher_expire", b"settlement",
})
ISSUANCE = b"issuance"
PENALTY = b"penalty"
ENTRY_KEYS = frozenset({
    "actor", "approver", "evidence", "idempotency_key", "kind", "memo", "metadata",
    "occurred_at", "postings", "prev", "programme", "recorded_at", "reverses", "rule", "seq",
    "v",
})
INDEX_STRIDE_BITS = 6
"""The verifier remembers where every 64th entry starts, to read back what a reversal names."""

REVERSAL, ADMIN = 1, 2
"""Record tags: a reversal is (REVERSAL, seq, reverses, postings); an admin entry (ADMIN, seq,
metadata)."""
APPLICATION_FIELDS = ("seq", "member", "points", "rule", "day", "micros")
"""An application of a rule that caps or cools down, as `ChunkResult.applications` holds
it, one array of integers per field: its seq, the member (position in
`LineContext.members`), the points (a magnitude), the rule version (position in
`AwardRules.versions`), the local day, and, for rules that cool down, when it happened in
microseconds since 1970 (else 0)."""

_TEXT = rb'[ !#-\[\]-~]*'
"""Printable ASCII but `"` and `\\`: strings that need no escape and no UTF-8 check."""
_INT = rb'(?:0|-?[1-9][0-9]{0,14})'
"""At most 15 digits, so below 2^53: larger numbers are left to the slow path to judge."""
_DATE = rb'\d{4}-\d\d-\d\d'
_TIME = rb'T(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d\.\d{6}Z'
_TIMESTAMP = _DATE + _TIME
_POSTING = rb'\{"account":"[ !#-\[\]-~]+","points":' + _INT + rb'\}'
_POSTINGS = re.compile(rb'\{"account":"([^"]*)","points":(-?[0-9]+)\}')
_TIMESTAMP_TEXT = re.compile(_TIMESTAMP.decode())
_OCCURRED = b'occurred_at'
_ADMIN = b'"kind":"admin'


def line_pattern(programme: bytes, line_feed: bool = False) -> re.Pattern[bytes]:
    """The canonical form of an entry of `programme` (and its LF), with groups for the checks.

    Groups: approver, evidence (`"` when given), kind, memo, metadata (when
    not `{}`), occurred_at, the two postings of a two-posting entry (account,
    points, account, points) or the postings text of any other, prev,
    recorded_at's date, reverses, rule code, quantity, version, seq. A group
    is empty or None (`findall` or `groups`) where the JSON has null, and
    never empty otherwise: empty strings are left to the slow path. Nothing
    in the pattern matches a line feed, so a match never spans two lines.
    """
    return _compiled(programme, line_feed)


@functools.lru_cache(maxsize=16)
def _compiled(programme: bytes, line_feed: bool) -> re.Pattern[bytes]:
    return re.compile(
        rb'\{"actor":"' + _TEXT + rb'"'
        rb',"approver":(?:null|"([ !#-\[\]-~]+)")'
        rb',"evidence":(?:null|(")' + _TEXT + rb'")'
        rb',"idempotency_key":(?:null|"' + _TEXT + rb'")'
        rb',"kind":"([a-z_]{1,32})"'
        rb',"memo":"([^"\\\x00-\x1f]*)"'
        rb',"metadata":(?:\{\}|(\{[^\n]+?\}))'
        rb',"occurred_at":"(' + _TIMESTAMP + rb')"'
        rb',"postings":\[(?:\{"account":"([ !#-\[\]-~]+)","points":(' + _INT + rb')\}'
        rb',\{"account":"([ !#-\[\]-~]+)","points":(' + _INT + rb')\}'
        rb'|((?:' + _POSTING + rb'(?:,' + _POSTING + rb')*)?))\]'
        rb',"prev":(?:null|"([0-9a-f]{64})")'
        rb',"programme":"' + re.escape(programme) + rb'"'
        rb',"recorded_at":"(' + _DATE + rb')' + _TIME + rb'"'
        rb',"reverses":(?:null|(' + _INT + rb'))'
        rb',"rule":(?:null|\{"code":"([ !#-\[\]-~]+)","quantity":(?:null|(' + _INT + rb'))'
        rb',"version":(' + _INT + rb')\})'
        rb',"seq":(0|[1-9][0-9]{0,14}),"v":1\}' + (b"\n" if line_feed else b""))


@dataclass(frozen=True)
class LineContext:
    """What every chunk of one programme is checked against."""

    programme: bytes
    accounts: frozenset[bytes]
    """Every account in accounts.json."""
    members: tuple[bytes, ...]
    """The accounts of members, in the order records number them."""
    rules: AwardRules
    cut_sizes: tuple[int, ...] = ()
    """Tree sizes at which the verifier needs the root (checkpoints), ascending."""
    member_number: dict[bytes, int] = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "member_number",
                           {account: number for number, account in enumerate(self.members)})


@dataclass(frozen=True)
class ChainPoint:
    """Where a run of lines must continue the chain: its first `seq` and `prev`."""

    seq: int
    prev: bytes | None
    """The hash the first line must name, None before entry 0."""


@dataclass
class ChunkResult:
    """What a run of lines left behind; `entries` lines checked out, then `problem` (if any)."""

    offset: int
    """Byte offset in the file of the first line."""
    first_seq: int | None = None
    first_prev: bytes | None = None
    """The hash (hex, ASCII) the first line names as `prev`: as given or as found."""
    entries: int = 0
    last_hash: bytes | None = None
    pieces: list[tuple[int, bytes]] = field(default_factory=list)
    """Perfect subtrees (level, hash) that tile the run's leaves, in order."""
    cuts: list[tuple[int, list[tuple[int, bytes]]]] = field(default_factory=list)
    """For each cut size inside the run: the subtrees from the run's start up to it."""
    balances: dict[bytes, int] = field(default_factory=dict)
    scores: dict[bytes, int] = field(default_factory=dict)
    """Score moved by awards and deductions; reversals are left to the verifier."""
    applications: tuple[array, ...] = field(
        default_factory=lambda: tuple(array("q") for _ in APPLICATION_FIELDS))
    """Applications of rules that cap or cool down, in seq order: `APPLICATION_FIELDS`."""
    records: list[tuple] = field(default_factory=list)
    """Reversals and admin entries, in order."""
    index: list[tuple[int, int]] = field(default_factory=list)
    """(seq, byte offset) of each entry whose seq is a multiple of 2**INDEX_STRIDE_BITS."""
    problem: tuple[int | None, Finding] | None = None
    """(seq, problem) of the first line that failed."""


def scan_lines(data: bytes, offset: int, context: LineContext, start: ChainPoint | None,
               at_end_of_file: bool) -> ChunkResult:
    """Check the complete lines in `data` (which begins at byte `offset` of the file).

    With `start` None (a worker, which does not know what came before) the
    first line's own `seq` and `prev` are taken as given and reported, for the
    caller to compare with the chain; otherwise they are checked.
    Stops at the first problem.
    """
    result = None
    if data.endswith(b"\n"):
        result = _scan_columns(data, offset, context, start)
    if result is None:
        result = _scan_one_by_one(data, offset, context, start, at_end_of_file)
    return result


def _scan_one_by_one(data: bytes, offset: int, context: LineContext, start: ChainPoint | None,
                     at_end_of_file: bool) -> ChunkResult:
    expected_seq = None if start is None else start.seq
    expected_prev = None if start is None or start.prev is None else binascii.hexlify(start.prev)
    result = ChunkResult(offset, first_seq=expected_seq, first_prev=expected_prev)
    digests: list[bytes] = []
    fullmatch = line_pattern(context.programme).fullmatch
    position = 0
    seq = None
    try:
        while position < len(data):
            end = data.find(b"\n", position)
            if end < 0:
                if at_end_of_file:
                    raise Finding("line", "a line ending in LF", "the end of the file")
                break
            line = data[position:end]
            match = fullmatch(line)
            fields = None if match is None else _fields_of(match.groups(), line)
            if fields is None:
                fields = _slow_fields(line)
                if fields[7] != context.programme:
                    raise Finding("programme", context.programme.decode(), _text(fields[7]))
            seq, prev = fields[0], fields[6]
            if expected_seq is None:
                expected_seq = result.first_seq = seq
                expected_prev = result.first_prev = prev
            if seq != expected_seq:
                raise Finding("seq", str(expected_seq), str(seq))
            if prev != expected_prev:
                raise Finding("prev", _text(expected_prev), _text(prev))
            _check_body(result, context, fields)
            digest = hashlib.sha256(b"\x00" + line).digest()
            digests.append(digest)
            expected_prev = binascii.hexlify(digest)
            if not seq & (1 << INDEX_STRIDE_BITS) - 1:
                result.index.append((seq, offset + position))
            expected_seq += 1
            position = end + 1
    except Finding as problem:
        result.problem = (expected_seq if expected_seq is not None else seq, problem)
    if digests:
        _close(result, context, expected_seq - len(digests), digests)
    return result


_Fields = tuple
"""(seq, kind, legs, approved, has_evidence, metadata, prev, programme, reverses, rule code,
quantity, version, occurred_at) of one line, strings as bytes, null as None."""


def _fields_of(groups: tuple, line: bytes) -> _Fields | None:
    """The fields of a line the pattern matched, or None if its text needs the slow path."""
    (approver, evidence, kind, memo, metadata, occurred_at, account, points, other_account,
     other_points, postings, prev, recorded_day, reverses, code, quantity, version,
     seq) = groups
    if not memo.isascii() and not _utf8(memo):
        return None
    if not (_valid_day(occurred_at) and _valid_day(recorded_day)):
        return None
    if metadata:
        metadata = _plain_object(metadata)
        if metadata is None:
            return None
    if account:
        legs = [(account, int(points)), (other_account, int(other_points))]
    else:
        legs = [(account, int(points)) for account, points in _POSTINGS.findall(postings)]
    return (
        int(seq), kind, legs, bool(approver) and approver != _actor(line), bool(evidence),
        metadata or None, prev or None, None, int(reverses) if reverses else None, code or None,
        int(quantity) if quantity else None, int(version) if version else None, occurred_at,
    )


def _check_body(result: ChunkResult, context: LineContext, fields: _Fields) -> None:
    """Everything about one entry after its seq and prev; adds it to `result`. Raises `Finding`."""
    (seq, kind, legs, approved, has_evidence, metadata, _, _, reverses, code, quantity, version,
     occurred_at) = fields
    if kind not in KINDS:
        raise Finding("kind", ", ".join(sorted(k.decode() for k in KINDS)), _text(kind))
    count = len(legs)
    if count < 2 and (count or kind != b"admin"):
        wanted = "no postings or at least two" if kind == b"admin" else "at least two"
        raise Finding("postings", wanted, str(count))
    total = 0
    for account, points in legs:
        if not points:
            raise Finding("postings", "non-zero points", f"0 for {_text(account)}")
        if account not in context.accounts:
            raise Finding("postings", "accounts listed in accounts.json",
                          f"account {_text(account)}")
        total += points
    if total:
        raise Finding("postings", "a sum of 0", f"a sum of {total}")
    if len({account for account, _ in legs}) != count:
        twice = next(account for number, (account, _) in enumerate(legs)
                     if any(account == other for other, _ in legs[:number]))
        raise Finding("postings", "each account at most once", f"account {_text(twice)} twice")
    if kind == b"reversal":
        if reverses is None:
            raise Finding("reverses", "the seq of the entry reversed", "null")
        if not 0 <= reverses < seq:
            raise Finding("reverses", f"an earlier entry (0..{seq - 1})", str(reverses))
    elif reverses is not None:
        raise Finding("reverses", f"null for a {kind.decode()} entry", str(reverses))
    if kind in SCORE_KINDS:
        account, points = legs[0]
        sink = ISSUANCE if kind == b"award" else PENALTY
        if code is None:
            raise Finding("rule", "a rule version (every award and deduction names one)", "null")
        if count != 2 or account not in context.member_number or legs[1][0] != sink \
                or (points > 0) != (kind == b"award"):
            direction = "+p, issuance -p" if kind == b"award" else "-p, penalty +p"
            raise Finding("postings", f"a member account {direction}",
                          ", ".join(f"{_text(account)} {points:+d}" for account, points in legs))
        day = context.rules.check(seq, kind, account, points, code, version, quantity,
                                  occurred_at, has_evidence, approved)
        result.scores[account] = result.scores.get(account, 0) + points
        if code in context.rules.limited:
            for column, value in zip(result.applications, (
                    seq, context.member_number[account], abs(points),
                    context.rules.index[(code, version)], day,
                    microseconds(occurred_at) if code in context.rules.cooling else 0),
                    strict=True):
                column.append(value)
    elif code is not None:
        raise Finding("rule", f"null for a {kind.decode()} entry", f"rule {_text(code)}")
    for account, points in legs:
        result.balances[account] = result.balances.get(account, 0) + points
    if kind == b"reversal":
        result.records.append((REVERSAL, seq, reverses, legs))
    elif kind == b"admin":
        result.records.append((ADMIN, seq, metadata or {}))


def _close(result: ChunkResult, context: LineContext, first: int, digests: list[bytes]) -> None:
    """The run's size, last hash and Merkle subtrees, from its leaf hashes."""
    result.first_seq = first
    result.entries = len(digests)
    result.last_hash = digests[-1]
    result.pieces = subtree_pieces(first, digests)
    result.cuts = [(cut, subtree_pieces(first, digests[:cut - first]))
                   for cut in context.cut_sizes if first < cut < first + len(digests)]


_DIGEST = operator.methodcaller("digest")
_DAY_OF = operator.itemgetter(slice(0, 10))


def _scan_columns(data: bytes, offset: int, context: LineContext,
                  start: ChainPoint | None) -> ChunkResult | None:
    """The checks of `_scan_one_by_one`, a field at a time over the whole run; None at a doubt.

    Every line must match the pattern from its start (`^` in multiline mode)
    to its LF, so as many matches as lines means every line matched; all
    the checks that can fail make this return None instead of naming a
    problem. What is left to Python line by line is the rule check of each
    award and deduction (`AwardRules.check`) and the sums per account.
    """
    rows = _compiled_lines(context.programme).findall(data)
    lines = data.split(b"\n")
    lines.pop()  # after the last LF
    count = len(lines)
    if not rows or len(rows) != count:
        return None
    (approver, evidence, kind, memo, metadata, occurred_at, account, points, other_account,
     other_points, postings, prev, recorded_day, reverses, code, quantity, version,
     seq) = zip(*rows, strict=True)
    # The text the pattern leaves open: UTF-8 memos, real dates.
    if not all(map(bytes.isascii, memo)) and not _utf8(b"\n".join(memo)):
        return None
    days = set(map(_DAY_OF, occurred_at))
    days.update(recorded_day)
    if not days <= _VALID_DAYS and not all(map(_valid_day, days)):
        return None
    # seq and prev: a run without gaps, each line naming the hash of the one before.
    seqs = list(map(int, seq))
    first = seqs[0]
    if (start is not None and first != start.seq) or seqs != list(range(first, first + count)):
        return None
    digests = list(map(_DIGEST, map(hashlib.sha256, map(b"\x00".__add__, lines))))
    first_prev = prev[0] or None
    if start is not None and first_prev != (None if start.prev is None else
                                            binascii.hexlify(start.prev)):
        return None
    if list(prev[1:]) != list(map(binascii.hexlify, digests[:-1])):
        return None
    if not set(kind) <= KINDS:
        return None
    result = ChunkResult(offset, first_seq=first, first_prev=first_prev)
    # Plain awards and deductions: two postings, no metadata, not a reversal.
    special = set(compress(range(count), metadata))
    special.update(compress(range(count), map(operator.not_, account)))
    special.update(compress(range(count), reverses))
    special.update(compress(range(count), map(operator.not_, map(SCORE_KINDS.__contains__,
                                                                 kind))))
    try:
        if len(special) < count:
            _plain_columns(result, context, special, seqs, kind, account, points, other_account,
                           other_points, approver, evidence, code, quantity, version,
                           occurred_at, lines)
        plain_applications = len(result.applications[0])
        for row in sorted(special):
            fields = _fields_of(rows[row], lines[row])
            if fields is None:
                return None
            _check_body(result, context, fields)
    except Finding:
        return None
    if len(result.applications[0]) > plain_applications:
        _sort_applications(result.applications)
    stride = 1 << INDEX_STRIDE_BITS
    indexed = range(-first % stride, count, stride)
    if indexed:
        starts = list(accumulate(map((1).__add__, map(len, lines)), initial=0))
        result.index.extend((seqs[row], offset + starts[row]) for row in indexed)
    _close(result, context, first, digests)
    return result


@functools.lru_cache(maxsize=16)
def _compiled_lines(programme: bytes) -> re.Pattern[bytes]:
    """`line_pattern` anchored at the start of a line, for finding every line of a run."""
    return re.compile(b"(?m)^" + line_pattern(programme, line_feed=True).pattern)


def _plain_columns(result: ChunkResult, context: LineContext, special: set[int],
                   seqs: list[int], *columns: Any) -> None:
    """The rows not in `special`: awards and deductions with their two postings."""
    (kind, account, points, other_account, other_points, approver, evidence, code, quantity,
     version, occurred_at, lines) = columns
    if special:
        keep = list(map(operator.not_, map(special.__contains__, range(len(seqs)))))
        (seqs, kind, account, points, other_account, other_points, approver, evidence,
         code, quantity, version, occurred_at, lines) = (
            list(compress(column, keep)) for column in (
                seqs, kind, account, points, other_account, other_points, approver,
                evidence, code, quantity, version, occurred_at, lines))
    points = list(map(int, points))
    other_points = list(map(int, other_points))
    if not (all(points) and all(other_points) and not any(map(operator.add, points, other_points))
            and set(account) <= context.member_number.keys()
            and set(other_account) <= context.accounts
            and not any(map(operator.eq, account, other_account)) and all(code)
            and set(zip(kind, other_account, map((0).__lt__, points), strict=True))
            <= _PLAIN_SHAPES):
        raise Finding("postings", "plain awards and deductions", "something else")
    versions = list(map(int, version))
    quantities = [int(value) if value else None for value in quantity]
    approved = [bool(value) and value != _actor(line)
                for value, line in zip(approver, lines, strict=True)]
    check = context.rules.check
    days = list(map(check, seqs, kind, account, points, code, versions, quantities,
                    occurred_at, map(bool, evidence), approved))
    balances = result.balances
    scores = result.scores
    for member, moved in zip(account, points, strict=True):
        balances[member] = balances.get(member, 0) + moved
        scores[member] = scores.get(member, 0) + moved
    for sink in (ISSUANCE, PENALTY):
        moved = sum(compress(other_points, map(sink.__eq__, other_account)))
        if moved:
            balances[sink] = balances.get(sink, 0) + moved
    rules = context.rules
    if not rules.limited:
        return
    counted = list(map(rules.limited.__contains__, code))
    code = list(compress(code, counted))
    times = [0] * len(code)
    if rules.cooling:
        occurred_at = list(compress(occurred_at, counted))
        for row in compress(range(len(code)), map(rules.cooling.__contains__, code)):
            times[row] = microseconds(occurred_at[row])
    for column, values in zip(result.applications, (
            compress(seqs, counted),
            map(context.member_number.__getitem__, compress(account, counted)),
            map(abs, compress(points, counted)),
            map(rules.index.__getitem__, zip(code, compress(versions, counted), strict=True)),
            compress(days, counted), times), strict=True):
        column.extend(values)


_PLAIN_SHAPES = frozenset({(b"award", ISSUANCE, True), (b"deduction", PENALTY, False)})


def _sort_applications(applications: tuple[array, ...]) -> None:
    """Put applications back in seq order (the special rows were added after the plain ones)."""
    rows = sorted(zip(*applications, strict=True))
    for column, values in zip(applications, zip(*rows, strict=True), strict=True):
        column[:] = array("q", values)


def _actor(data: bytes, position: int = 0) -> bytes:
    """The actor of the canonical line at `position` (the first key: no need to parse)."""
    start = position + len(b'{"actor":"')
    return data[start:data.find(b'"', start)]


def _slow_fields(line: bytes) -> tuple:
    """The fields of a line decoded as JSON, after checking it is an entry in canonical form."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as error:
        raise Finding("line", "UTF-8 text", f"an invalid byte at {error.start}") from None
    try:
        body = json.loads(text)
    except (ValueError, RecursionError) as error:
        raise Finding("line", "an entry in canonical JSON", f"not JSON ({error})") from None
    if type(body) is not dict or set(body) != ENTRY_KEYS:
        found = sorted(body) if type(body) is dict else type(body).__name__
        raise Finding("line", "an object with the keys of an entry (docs/FORMAT.md §2)",
                          str(found))
    try:
        check_plain_json(body)
    except CanonicalError as error:
        raise Finding("line", "plain ledger JSON (no floats, |integers| < 2^53)",
                          str(error)) from None
    _check_types(body)
    canonical = encode_plain(body)
    if canonical != line:
        differs = next((at for at, (a, b) in enumerate(zip(canonical, line, strict=False))
                        if a != b), min(len(canonical), len(line)))
        raise Finding("line", "the canonical form (RFC 8785)",
                          f"other bytes from byte {differs}")
    rule = body["rule"] or {"code": None, "quantity": None, "version": None}
    return (
        body["seq"], body["kind"].encode(),
        [(posting["account"].encode(), posting["points"]) for posting in body["postings"]],
        body["approver"] is not None and body["approver"] != body["actor"],
        body["evidence"] is not None, body["metadata"] or None, _encoded(body["prev"]),
        body["programme"].encode(), body["reverses"], _encoded(rule["code"]), rule["quantity"],
        rule["version"], body["occurred_at"].encode(),
    )


def _check_types(body: dict[str, Any]) -> None:
    def wrong(key: str, wanted: str) -> Finding:
        return Finding("line", f"{key}: {wanted}", json.dumps(body[key], ensure_ascii=False))

    if type(body["v"]) is not int or body["v"] != 1:
        raise wrong("v", "1 (format version 1)")
    for key in ("programme", "kind", "actor", "memo"):
        if type(body[key]) is not str:
            raise wrong(key, "a string")
    for key in ("prev", "evidence", "idempotency_key", "approver"):
        if body[key] is not None and type(body[key]) is not str:
            raise wrong(key, "a string or null")
    if type(body["seq"]) is not int or body["seq"] < 0:
        raise wrong("seq", "a whole number")
    if body["reverses"] is not None and type(body["reverses"]) is not int:
        raise wrong("reverses", "a whole number or null")
    for key in ("occurred_at", "recorded_at"):
        value = body[key]
        if type(value) is not str or not _TIMESTAMP_TEXT.fullmatch(value) \
                or not _valid_day(value.encode()):
            raise wrong(key, "a UTC timestamp YYYY-MM-DDTHH:MM:SS.ffffffZ")
    if type(body["metadata"]) is not dict:
        raise wrong("metadata", "an object")
    postings = body["postings"]
    if type(postings) is not list or not all(
        type(posting) is dict and set(posting) == {"account", "points"}
        and type(posting["account"]) is str and type(posting["points"]) is int
        for posting in postings
    ):
        raise wrong("postings", 'a list of {"account": string, "points": integer}')
    rule = body["rule"]
    if rule is not None and not (
        type(rule) is dict and set(rule) == {"code", "quantity", "version"}
        and type(rule["code"]) is str and type(rule["version"]) is int
        and (rule["quantity"] is None or type(rule["quantity"]) is int)
    ):
        raise wrong("rule", '{"code": string, "quantity": integer or null, "version": integer}')


def _plain_object(text: bytes) -> dict[str, Any] | None:
    """The metadata object `text` holds if it is canonical plain JSON, else None."""
    try:
        value = json.loads(text.decode("utf-8"))
    except (ValueError, RecursionError):
        return None
    if type(value) is not dict:
        return None
    try:
        check_plain_json(value)
    except CanonicalError:
        return None
    return value if encode_plain(value) == text else None


_VALID_DAYS: set[bytes] = set()
"""Dates (YYYY-MM-DD) already found real."""


def _valid_day(timestamp: bytes) -> bool:
    day = timestamp[:10]
    if day in _VALID_DAYS:
        return True
    try:
        date.fromisoformat(day.decode())
    except ValueError:
        return False
    _VALID_DAYS.add(day)
    return True


def _utf8(text: bytes) -> bool:
    try:
        text.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _encoded(value: str | None) -> bytes | None:
    return None if value is None else value.encode()


def _text(value: bytes | None) -> str:
    return "null" if value is None else value.decode("utf-8", "backslashreplace")


# -- Merkle subtrees over a run of leaves ------------------------------------------------


def subtree_pieces(start: int, leaves: list[bytes]) -> list[tuple[int, bytes]]:
    """The perfect subtrees (level, hash) that tile leaves [start, start + len(leaves)).

    Each starts on a multiple of its size, so `Frontier.append_subtree` can
    add them in order to a frontier of `start` leaves.
    """
    pieces = []
    done = 0
    while done < len(leaves):
        position = start + done
        level = (position & -position).bit_length() - 1 if position else 62
        while 1 << level > len(leaves) - done:
            level -= 1
        pieces.append((level, _perfect_root(leaves[done:done + (1 << level)])))
        done += 1 << level
    return pieces


def _perfect_root(level: list[bytes]) -> bytes:
    """RFC 6962 root of 2**k leaf hashes: node = SHA-256(0x01 || left || right)."""
    while len(level) > 1:
        level = list(map(_DIGEST, map(hashlib.sha256, map(
            bytes.__add__, map(b"\x01".__add__, level[0::2]), level[1::2]))))
    return level[0]


# -- reading chunks of the file ------------------------------------------------------------


def chunks_of(path: str, chunk_bytes: int) -> list[tuple[str, int, int]]:
    """(path, start, end) of runs of whole lines, about `chunk_bytes` each, covering the file.

    Every run but the last ends just after an LF; the last ends where the file
    does (with or without one). Finding the ends reads a line per chunk.
    """
    size = os.path.getsize(path)
    bounds = [0]
    with open(path, "rb") as file:
        for nominal in range(chunk_bytes, size, chunk_bytes):
            if nominal <= bounds[-1]:
                continue
            file.seek(nominal - 1)
            bounds.append(nominal - 1 + len(file.readline()))
    if bounds[-1] < size:
        bounds.append(size)
    return [(path, start, end) for start, end in pairwise(bounds)]


def read_lines(path: str, start: int, end: int) -> tuple[bytes, int, bool]:
    """Bytes [start, end) of the file, a run from `chunks_of`: (data, start, at end of file)."""
    with open(path, "rb") as file:
        file.seek(start)
        data = file.read(end - start)
        return data, start, file.read(1) == b""


def admin_lines(data: bytes) -> list[tuple[int, dict[str, Any]]]:
    """(seq, metadata) of the admin entries among the lines of `data`.

    A quick look ahead, so that workers know every rule version before they
    check awards; the lines themselves are checked in their turn.
    """
    found = []
    position = data.find(_ADMIN)
    while position >= 0:
        line_start = data.rfind(b"\n", 0, position) + 1
        line_end = data.find(b"\n", position)
        line_end = len(data) if line_end < 0 else line_end
        try:
            body = json.loads(data[line_start:line_end])
        except (ValueError, RecursionError):
            body = None
        if type(body) is dict and body.get("kind") == "admin" and type(body.get("seq")) is int \
                and type(body.get("metadata")) is dict:
            found.append((body["seq"], body["metadata"]))
        position = data.find(_ADMIN, line_end)
    return found


def earliest_day(data: bytes) -> bytes | None:
    """The earliest `occurred_at` date (YYYY-MM-DD) among the lines of `data`.

    For dropping the counts of periods no later entry can fall in
    (`verify_rules.Limits`). Every line has the key once at its top level;
    the same word elsewhere (in a memo, in metadata) only adds text that is
    not a date or is an earlier one, which makes the answer earlier or
    unusable, never later.
    """
    earliest = None
    find = data.find
    skip = len(_OCCURRED) + 3  # occurred_at":"
    position = find(_OCCURRED)
    while position >= 0:
        day = data[position + skip:position + skip + 10]
        if earliest is None or day < earliest:
            earliest = day
        position = find(_OCCURRED, position + skip)
    return earliest


_context: LineContext | None = None
_barrier: Any = None
_balances: dict[bytes, int] = {}
_scores: dict[bytes, int] = {}


def start_worker(context: LineContext | None, barrier: Any = None) -> None:
    """Pool initializer: the context every chunk of this programme is checked against, and
    the barrier `flush_sums` waits at."""
    global _context, _barrier
    _context, _barrier = context, barrier
    gc.disable()  # as in the verifier: no cycles here, and the collector's passes cost


def scan_range(task: tuple[str, int, int]) -> ChunkResult:
    """Worker: check the lines that begin in bytes [start, end) of the file.

    The sums per account stay in the worker, added to those of its other
    chunks, and come back once, from `flush_sums`: sending them with every
    chunk cost as much as computing them. A chunk that the verifier checks
    again (it did not continue the chain, or had a problem) always ends the
    verification with that problem, so its sums here never count.
    """
    path, start, end = task
    data, offset, at_end = read_lines(path, start, end)
    result = scan_lines(data, offset, _context, None, at_end)
    for sums, moved in ((_balances, result.balances), (_scores, result.scores)):
        for account, points in moved.items():
            sums[account] = sums.get(account, 0) + points
        moved.clear()
    return result


def flush_sums(_: int) -> tuple[dict[bytes, int], dict[bytes, int]]:
    """Worker: the sums of balances and scores of every chunk it checked, once.

    The verifier sends one of these per worker; the barrier holds each
    worker until all have taken one, so no worker takes two.
    """
    global _balances, _scores
    sums = (_balances, _scores)
    _balances, _scores = {}, {}
    _barrier.wait()
    return sums


def look_ahead(task: tuple[str, int, int, bool]) -> tuple[list[tuple[int, dict]], bytes | None]:
    """Worker: the admin entries of a chunk and, if asked, its earliest day."""
    path, start, end, want_day = task
    data, _, _ = read_lines(path, start, end)
    return admin_lines(data), earliest_day(data) if want_day else None
