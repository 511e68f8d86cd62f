"""The offline verifier: `python -m audit.verify DIR`, `jifen-verify DIR`, `jifen verify DIR`.

Checks an export directory (docs/FORMAT.md §7) without trusting the operator
and without a database: standard library and `cryptography` only (with
`ledger.canonical`, `ledger.merkle`, `ledger.entry_format` and `audit.note`,
which import nothing else). Per programme, in this order:

1. the signed checkpoints: every signature against the pinned verifier keys
   (`--vkey`; without them the export's own vkeys.txt, and the summary says
   so loudly), sizes that only grow, one origin naming the programme, the
   consistency proof from each checkpoint to the next, and any checkpoint
   the auditor saved earlier (`--checkpoint`): one root per size, or it is a
   split view;
2. every line of entries.jsonl, in order (`audit.verify_lines`): the exact
   canonical bytes of an entry, re-hashed (stored hashes are never
   trusted), `seq` without gaps from the range's start, `prev` the hash of
   the line before, the programme, postings that balance on accounts that
   exist, reversals that negate an earlier reversible entry once, and
   awards and deductions that follow the rule version in force, its points,
   scope, evidence, approval, caps and cooldown (`audit.verify_rules`); the
   Merkle root at every checkpoint size is recomputed as the lines stream
   past and must be the signed one;
3. the manifest's counts, head hash and root, balances.json against the
   balances and scores recomputed from postings (which sum to zero),
   rules.json against the rule versions recorded in the chain, and the size
   and SHA-256 of every other file.

The first problem found is reported and checking stops:
`<programme> entry <seq>: <field>: expected …, found …` (or `checkpoint
<size>`, or a file name, in place of `entry <seq>`). Exit status 0 when all
is well, 1 for a problem, 2 for a directory that is not a readable export
or bad arguments.

Streaming. entries.jsonl is read in chunks of whole lines of about
`CHUNK_BYTES`, twice: a quick look ahead finds every rule version the chain
defines and the earliest day each chunk's entries happened (so counts of
periods no later entry can fall in are dropped), then the full check. With
several workers (default: one per CPU) the chunks are checked in parallel
processes and joined here in order: their Merkle subtrees appended to one
frontier, their `prev` checked across the joins, their caps, cooldowns,
reversals and rule definitions checked in `seq` order. A chunk whose start
does not continue the chain, or that has a problem, is checked again here
from the true start, so the problem named is the one a single pass names.
Memory grows with accounts, members and open periods, not with entries;
the exceptions are small: one entry per reversal, and where every 64th
entry starts (8 bytes each) to read back what a reversal names.
"""

from __future__ import annotations

import argparse
import binascii
import bisect
import gc
import hashlib
import json
import multiprocessing
import os
import sys
import time
from array import array
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Any, NoReturn
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from audit.note import NoteError, Verifier, open_note, parse_checkpoint, parse_vkey
from audit.verify_lines import (
    ADMIN,
    NOT_REVERSIBLE_KINDS,
    REVERSAL,
    SCORE_KINDS,
    ChainPoint,
    ChunkResult,
    LineContext,
    chunks_of,
    flush_sums,
    look_ahead,
    read_lines,
    scan_lines,
    scan_range,
    start_worker,
)
from audit.verify_rules import (
    RULE_EVENT,
    AwardRules,
    Calendar,
    DefinitionError,
    Finding,
    Limits,
    Member,
    RuleVersion,
    parse_definition,
)
from ledger.merkle import Frontier, ProofError, verify_consistency

EXPORT_FORMAT = "jifen-export"
EXPORT_VERSION = 1
MANIFEST = "manifest.json"
CHUNK_BYTES = 4 << 20
"""Bytes of entries.jsonl per chunk: a worker's unit of work, and the memory it holds."""
IN_FLIGHT_PER_WORKER = 2
"""Chunks handed out ahead per worker: bounds the results waiting in memory."""
REQUIRED_FILES = ("programme.json", "organisation.json", "accounts.json", "entries.jsonl",
                  "rules.json", "checkpoints.jsonl", "vkeys.txt")
FILES_CHECKED_BY_CONTENT = frozenset({"entries.jsonl"})
"""Files whose SHA-256 is not recomputed: every byte of entries.jsonl is already bound to the
head hash through the chain of `prev` links, and its size is compared."""

Progress = Callable[[str, int, int], None]
"""`progress(programme, entries_checked, entries_in_export)`, called after each chunk."""


@dataclass(frozen=True)
class Problem:
    """The first thing found wrong, and where: `entry <seq>`, `checkpoint <size>` or a file."""

    programme: str | None
    where: str
    field: str
    expected: str
    found: str

    def __str__(self) -> str:
        prefix = f"{self.programme} " if self.programme else ""
        return f"{prefix}{self.where}: {self.field}: expected {self.expected}, found {self.found}"


@dataclass
class ProgrammeSummary:
    """What was checked of one programme, and its totals (points) as recomputed."""

    code: str
    from_seq: int = 0
    to_seq: int = -1
    entries_checked: int = 0
    checkpoints_verified: int = 0
    latest_checkpoint: tuple[int, str] | None = None
    """(size, root hex) of the newest checkpoint whose root was recomputed."""
    members: int = 0
    rule_versions: int = 0
    reversals: int = 0
    totals: dict[str, int] = field(default_factory=dict)
    """issued, deducted, expired, redeemed (at shops, settled or not), settled, in_vouchers,
    outstanding (members' spendable balances): over the range for a range export."""
    notes: list[str] = field(default_factory=list)
    """What could not be checked, and why."""


@dataclass
class Report:
    """The outcome: `ok`, the first `problem`, and a `summary` per programme."""

    directory: Path
    problem: Problem | None = None
    malformed: bool = False
    """The directory is not a readable export (a file missing, not JSON): exit status 2."""
    keys_pinned: bool = False
    summary: dict[str, ProgrammeSummary] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.problem is None

    @property
    def exit_status(self) -> int:
        return 0 if self.ok else 2 if self.malformed else 1

    def text(self) -> str:
        """The summary a person reads at the end of a run."""
        lines = []
        if not self.keys_pinned and self.summary:
            lines.append("WARNING: no verifier key was pinned (--vkey): checkpoints were checked "
                         "against the export's own vkeys.txt, which proves only that the export "
                         "agrees with itself, not that the operator signed it.")
        for summary in self.summary.values():
            lines.extend(_summary_lines(summary))
        if self.problem is not None:
            verdict = "NOT A READABLE EXPORT" if self.malformed else "PROBLEM"
            lines.append(f"{verdict}: {self.problem}")
        else:
            entries = sum(s.entries_checked for s in self.summary.values())
            lines.append(f"OK: {len(self.summary)} programme(s), {entries:,} entries verified "
                         f"in {self.directory}")
        return "\n".join(lines)


def _summary_lines(summary: ProgrammeSummary) -> list[str]:
    span = (f"entries {summary.from_seq}..{summary.to_seq}"
            if summary.to_seq >= summary.from_seq else f"no entries (from {summary.from_seq})")
    latest = ("no checkpoint root recomputed" if summary.latest_checkpoint is None else
              f"latest checkpoint: size {summary.latest_checkpoint[0]}, "
              f"root {summary.latest_checkpoint[1]}")
    lines = [f"{summary.code}: {span}, {summary.entries_checked:,} checked; "
             f"{summary.checkpoints_verified} checkpoint(s) verified ({latest})"]
    if summary.totals:
        totals = summary.totals
        lines.append(
            f"  points: issued {totals['issued']:,}, deducted {totals['deducted']:,}, "
            f"redeemed {totals['redeemed']:,} (settled {totals['settled']:,}), "
            f"expired {totals['expired']:,}, in vouchers {totals['in_vouchers']:,}, "
            f"outstanding {totals['outstanding']:,}")
    lines.append(f"  {summary.members:,} members, {summary.rule_versions} rule versions, "
                 f"{summary.reversals:,} reversals")
    lines.extend(f"  note: {note}" for note in summary.notes)
    return lines


class _Stop(Exception):
    """Carries the first problem out of the checks."""

    def __init__(self, problem: Problem, malformed: bool = False) -> None:
        super().__init__(str(problem))
        self.problem = problem
        self.malformed = malformed


def verify_export(
    directory: str | os.PathLike[str],
    *,
    vkeys: Sequence[str] | None = None,
    checkpoints: Sequence[str | os.PathLike[str]] | None = None,
    workers: int | None = None,
    progress: Progress | None = None,
) -> Report:
    """Check the export in `directory`; return what was checked and the first problem.

    `vkeys` are the signed-note verifier keys the auditor pins (strings);
    without them the export's own vkeys.txt is used and the report says so.
    `checkpoints` are files holding signed checkpoints the auditor saved
    earlier (the note text, or a checkpoints.jsonl line). `workers` is the
    number of processes that check chunks (default: one per CPU; 1 checks
    everything in this process). Never raises for a bad export: a directory
    that is not a readable export comes back with `malformed` set.
    """
    report = Report(Path(directory), keys_pinned=bool(vkeys))
    # The cyclic garbage collector is paused meanwhile: nothing kept here refers back to
    # itself, and its passes over millions of young objects cost a tenth of the time.
    collecting = gc.isenabled()
    gc.disable()
    try:
        pinned = _verifiers(vkeys or (), "--vkey")
        saved = [_saved_checkpoint(Path(path)) for path in checkpoints or ()]
        manifest = _manifest(report.directory)
        listed_codes = [listed["code"] for listed in manifest["programmes"]]
        for origin, _, name in saved:
            _saved_origin(origin, name, listed_codes)
        for listed in manifest["programmes"]:
            summary = ProgrammeSummary(listed["code"])
            report.summary[summary.code] = summary
            check = _ProgrammeCheck(report.directory, listed, pinned, saved, summary,
                                    workers or os.cpu_count() or 1, progress)
            check.run()
    except _Stop as stop:
        report.problem = stop.problem
        report.malformed = stop.malformed
    finally:
        if collecting:
            gc.enable()
    return report


# -- reading the directory ----------------------------------------------------------------


def _malformed(programme: str | None, where: str, expected: str, found: str) -> NoReturn:
    raise _Stop(Problem(programme, where, "file", expected, found), malformed=True)


def _read_json(path: Path, programme: str | None, what: str) -> Any:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        _malformed(programme, path.name, what, "no such file")
    except OSError as error:
        _malformed(programme, path.name, what, f"unreadable ({error.strerror})")
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as error:
        _malformed(programme, path.name, what, f"not JSON ({error})")


def _manifest(directory: Path) -> dict[str, Any]:
    if not directory.is_dir():
        _malformed(None, str(directory), "an export directory", "no such directory")
    manifest = _read_json(directory / MANIFEST, None, "the manifest of an export")
    if not isinstance(manifest, dict) or manifest.get("format") != EXPORT_FORMAT:
        _malformed(None, MANIFEST, f'"format": "{EXPORT_FORMAT}"',
                   repr(manifest.get("format") if isinstance(manifest, dict) else manifest))
    if manifest.get("version") != EXPORT_VERSION:
        _malformed(None, MANIFEST, f"version {EXPORT_VERSION}", repr(manifest.get("version")))
    programmes = manifest.get("programmes")
    if not isinstance(programmes, list) or not programmes:
        _malformed(None, MANIFEST, "a list of programmes", repr(programmes))
    codes = set()
    for listed in programmes:
        _check_listed(listed)
        if listed["code"] in codes:
            _malformed(None, MANIFEST, "each programme once", f"{listed['code']} twice")
        codes.add(listed["code"])
    return manifest


def _check_listed(listed: Any) -> None:
    shape = {"code": str, "from_seq": int, "to_seq": int, "entries": int, "root": str,
             "checkpoints": int, "files": dict}
    if not isinstance(listed, dict) or any(
            type(listed.get(key)) is not kind for key, kind in shape.items()):
        _malformed(None, MANIFEST, "programmes with " + ", ".join(shape), json.dumps(listed)[:200])
    code = listed["code"]
    if "/" in code or code in (".", "..") or not code:
        _malformed(None, MANIFEST, "a programme code", repr(code))
    if listed["from_seq"] < 0 or listed["to_seq"] < listed["from_seq"] - 1 \
            or listed["entries"] != listed["to_seq"] - listed["from_seq"] + 1:
        _malformed(code, MANIFEST, "0 <= from_seq, entries = to_seq - from_seq + 1",
                   f"from_seq {listed['from_seq']}, to_seq {listed['to_seq']}, "
                   f"entries {listed['entries']}")
    if listed.get("head_hash") is not None and type(listed["head_hash"]) is not str:
        _malformed(code, MANIFEST, "head_hash a hex string or null", repr(listed["head_hash"]))


def _verifiers(vkeys: Sequence[str], where: str) -> list[Verifier]:
    verifiers = []
    for vkey in vkeys:
        try:
            verifiers.append(parse_vkey(vkey))
        except NoteError as error:
            _malformed(None, where, "signed-note verifier keys", f"{vkey[:60]!r}: {error}")
    return verifiers


def _saved_checkpoint(path: Path) -> tuple[str, str, str]:
    """(origin, note, file name) of a checkpoint the auditor kept."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        _malformed(None, str(path), "a saved checkpoint", f"unreadable ({error})")
    if text.lstrip().startswith("{"):
        try:
            text = json.loads(text)["note"]
        except (ValueError, KeyError, TypeError):
            _malformed(None, path.name, "a signed checkpoint note", "other JSON")
    origin = text.split("\n", 1)[0]
    return origin, text, path.name


def _saved_origin(origin: str, name: str, codes: list[str]) -> None:
    if not any(origin.endswith(f"/{code}") or origin == code for code in codes):
        _malformed(None, name, "a checkpoint of a programme in the export "
                   f"({', '.join(codes)})", f"origin {origin!r}")


# -- one programme ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Checkpoint:
    size: int
    root: bytes
    where: str
    saved: bool = False
    """Kept by the auditor (`--checkpoint`), not one of the export's."""


class _ProgrammeCheck:
    """Every check of one programme's directory, in the order the module docstring gives."""

    def __init__(self, directory: Path, listed: dict[str, Any], pinned: list[Verifier],
                 saved: list[tuple[str, str, str]], summary: ProgrammeSummary, workers: int,
                 progress: Progress | None) -> None:
        self.code = listed["code"]
        self.listed = listed
        self.directory = directory / self.code
        self.pinned = pinned
        self.saved = saved
        self.summary = summary
        self.workers = workers
        self.progress = progress
        self.from_seq = listed["from_seq"]
        self.to_seq = listed["to_seq"]
        summary.from_seq, summary.to_seq = self.from_seq, self.to_seq
        self.saved_checkpoints: list[_Checkpoint] = []

    def fail(self, where: str, field_name: str, expected: str, found: str) -> NoReturn:
        raise _Stop(Problem(self.code, where, field_name, expected, found))

    def run(self) -> None:
        if not self.directory.is_dir():
            _malformed(self.code, self.code, "the programme's directory", "no such directory")
        for name in (*REQUIRED_FILES, *self.listed["files"]):
            if not (self.directory / name).is_file():
                _malformed(self.code, name, "a file of the export (docs/FORMAT.md §7)",
                           "no such file")
        self._load()
        signed = self._check_checkpoints()
        cuts = self._cuts(signed)
        self._stream(cuts)
        self._check_manifest()
        self._check_balances()
        self._check_rules_file()
        self._check_files()
        self._finish_summary()

    # -- the small files ------------------------------------------------------------------

    def _load(self) -> None:
        programme = self._json("programme.json", dict, "the programme")
        if programme.get("code") != self.code:
            self.fail("programme.json", "programme", self.code, repr(programme.get("code")))
        try:
            zone = ZoneInfo(programme.get("time_zone"))
        except (ZoneInfoNotFoundError, ValueError, TypeError):
            _malformed(self.code, "programme.json", "a known time zone",
                       repr(programme.get("time_zone")))
        self.calendar = Calendar(zone)
        organisation = self._json("organisation.json", dict, "the organisation")
        self.unit_paths = self._unit_paths(organisation.get("units"))
        households = {household.get("code") for household in
                      self._list_of(organisation.get("households"), "organisation.json")}
        members: dict[str, dict] = {}
        for member in self._list_of(organisation.get("members"), "organisation.json"):
            members[member.get("code")] = member
        accounts = self._json("accounts.json", list, "the accounts")
        self.accounts: dict[bytes, str] = {}
        self.members: dict[bytes, Member] = {}
        for account in accounts:
            if not isinstance(account, dict) or type(account.get("code")) is not str:
                _malformed(self.code, "accounts.json", "accounts with a code and a kind",
                           json.dumps(account)[:200])
            code = account["code"].encode()
            self.accounts[code] = account.get("kind")
            if account.get("kind") == "member":
                member = members.get(account.get("member"))
                if member is None or member.get("household") not in households \
                        or member.get("unit") not in self.unit_paths:
                    self.fail("organisation.json", "members",
                              f"member {account.get('member')} of account {account['code']}, "
                              "with a household and a unit", "none")
                self.members[code] = Member(member["code"], member["household"],
                                            member["unit"], self.unit_paths[member["unit"]])
        self.summary.members = len(self.members)
        self.rules_file = self._json("rules.json", list, "the rule versions")
        for rule in self.rules_file:
            if not isinstance(rule, dict) or set(rule) != {"code", "version", "entry_seq",
                                                           "definition"} \
                    or type(rule["version"]) is not int or type(rule["entry_seq"]) is not int:
                _malformed(self.code, "rules.json", "rule versions with code, version, "
                           "entry_seq and definition", json.dumps(rule)[:200])
        self.start = self._start()
        self.balances_file = None
        if (self.directory / "balances.json").is_file():
            self.balances_file = self._json("balances.json", dict, "the stated balances")
        elif self.from_seq == 0:
            self.summary.notes.append("no balances.json (an export that stops before the "
                                      "head): stated balances not compared")
        self.checkpoint_lines = self._checkpoint_lines()
        vkeys_text = (self.directory / "vkeys.txt").read_text(encoding="utf-8")
        self.export_vkeys = [line for line in vkeys_text.splitlines() if line.strip()]

    def _json(self, name: str, kind: type, what: str) -> Any:
        value = _read_json(self.directory / name, self.code, what)
        if not isinstance(value, kind):
            _malformed(self.code, name, f"{what} as a JSON {kind.__name__}",
                       type(value).__name__)
        return value

    def _list_of(self, value: Any, name: str) -> list[dict]:
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            _malformed(self.code, name, "lists of objects", json.dumps(value)[:200])
        return value

    def _unit_paths(self, units: Any) -> dict[str, str]:
        """Unit code -> `/town/village/` path; parents come before their children."""
        paths: dict[str, str] = {}
        for unit in self._list_of(units, "organisation.json"):
            parent = unit.get("parent")
            if parent is not None and parent not in paths:
                _malformed(self.code, "organisation.json", "units after their parents",
                           f"unit {unit.get('code')} before its parent {parent}")
            paths[unit.get("code")] = f"{paths[parent] if parent else '/'}{unit.get('code')}/"
        return paths

    def _start(self) -> tuple[Frontier, bytes | None]:
        """The frontier and last hash before the range (start.json), or the empty tree."""
        if self.from_seq == 0:
            return Frontier(), None
        start = self._json("start.json", dict, "the chain before the range")
        try:
            frontier = Frontier.from_bytes(
                start["size"], b"".join(bytes.fromhex(node) for node in start["frontier"]))
            prev = bytes.fromhex(start["prev"])
        except (KeyError, TypeError, ValueError) as error:
            _malformed(self.code, "start.json", "size, prev and frontier (hex)", str(error))
        if start["size"] != self.from_seq:
            self.fail("start.json", "size", str(self.from_seq), str(start["size"]))
        if len(prev) != 32:
            _malformed(self.code, "start.json", "prev, a 32-byte hash", start["prev"])
        if self.from_seq % 2 and frontier.to_bytes()[-32:] != prev:
            # Entry size-1 is then the frontier's last subtree, alone.
            self.fail("start.json", "prev", frontier.to_bytes()[-32:].hex(), prev.hex())
        return frontier, prev

    def _checkpoint_lines(self) -> list[dict[str, Any]]:
        lines = []
        raw = (self.directory / "checkpoints.jsonl").read_bytes()
        for number, line in enumerate(raw.splitlines(), 1):
            try:
                value = json.loads(line)
            except ValueError as error:
                _malformed(self.code, "checkpoints.jsonl", "one JSON object per line",
                           f"line {number}: {error}")
            if not isinstance(value, dict) or type(value.get("size")) is not int \
                    or type(value.get("note")) is not str \
                    or not isinstance(value.get("consistency"), list) \
                    or not (value.get("from_size") is None or type(value["from_size"]) is int):
                _malformed(self.code, "checkpoints.jsonl", "consistency, from_size, note, size",
                           f"line {number}")
            lines.append(value)
        return lines

    # -- checkpoints ----------------------------------------------------------------------

    def _verifiers(self) -> list[Verifier]:
        if self.pinned:
            return self.pinned
        return _verifiers(self.export_vkeys, f"{self.code}/vkeys.txt")

    def _open(self, signed_note: str, where: str) -> tuple[str, int, bytes]:
        verifiers = self._verifiers()
        try:
            text, _ = open_note(signed_note, verifiers)
            checkpoint = parse_checkpoint(text)
        except NoteError as error:
            keys = ", ".join(sorted({verifier.name for verifier in verifiers})) or "none"
            source = "a pinned key" if self.pinned else "a key in vkeys.txt"
            self.fail(where, "signature", f"a checkpoint signed by {source} ({keys})",
                      str(error))
        return checkpoint.origin, checkpoint.size, checkpoint.root

    def _check_checkpoints(self) -> dict[int, _Checkpoint]:
        """Signatures, sizes, origin and consistency proofs; the roots to recompute, by size."""
        signed: dict[int, _Checkpoint] = {}
        previous: tuple[int, bytes] | None = None
        origin = None
        for line in self.checkpoint_lines:
            where = f"checkpoint {line['size']}"
            line_origin, size, root = self._open(line["note"], where)
            if size != line["size"]:
                self.fail(where, "size", f"{line['size']} (the line's size)",
                          f"{size} in the signed note")
            if origin is None:
                origin = line_origin
                if not (origin == self.code or origin.endswith(f"/{self.code}")):
                    self.fail(where, "origin", f"an origin naming {self.code}", origin)
            elif line_origin != origin:
                self.fail(where, "origin", origin, line_origin)
            if previous is not None:
                previous_size, previous_root = previous
                if size == previous_size and root != previous_root:
                    self.fail(where, "split view", f"root {previous_root.hex()} (signed for "
                              f"size {size} on the line before)", f"root {root.hex()}")
                if size <= previous_size:
                    self.fail(where, "size", f"more than {previous_size} (sizes only grow)",
                              str(size))
            self._check_consistency(where, previous, line, size, root)
            if size > self.to_seq + 1:
                self.fail(where, "size", f"at most {self.to_seq + 1} (the entries exported)",
                          str(size))
            signed[size] = _Checkpoint(size, root, where)
            previous = (size, root)
        for saved_origin, note_text, name in self.saved:
            if saved_origin != origin and not (origin is None and (
                    saved_origin == self.code or saved_origin.endswith(f"/{self.code}"))):
                continue
            _, size, root = self._open(note_text, name)
            known = signed.get(size)
            if known is not None and known.root != root:
                self.fail(name, "split view", f"root {known.root.hex()} ({known.where} of the "
                          "export)", f"root {root.hex()}")
            self.saved_checkpoints.append(_Checkpoint(size, root, name, saved=True))
        return signed

    def _check_consistency(self, where: str, previous: tuple[int, bytes] | None,
                           line: dict[str, Any], size: int, root: bytes) -> None:
        from_size = line["from_size"]
        wanted = None if previous is None else previous[0]
        if from_size != wanted:
            self.fail(where, "consistency", "a proof from " + (
                "nothing (the first checkpoint)" if wanted is None else
                f"size {wanted} (the checkpoint before)"), f"a proof from size {from_size}")
        try:
            proof = [bytes.fromhex(node) for node in line["consistency"]]
        except (TypeError, ValueError):
            self.fail(where, "consistency", "a proof of hex hashes", "other text")
        if previous is None or previous[0] == 0:
            if proof:
                self.fail(where, "consistency", "no proof (nothing before to prove)",
                          f"{len(proof)} hashes")
            return
        try:
            verify_consistency(previous[0], size, previous[1], root, proof)
        except ProofError as error:
            self.fail(where, "consistency", f"a proof that size {size} extends size "
                      f"{previous[0]}", str(error))

    def _cuts(self, signed: dict[int, _Checkpoint]) -> dict[int, list[_Checkpoint]]:
        """Tree sizes in the range whose roots must be recomputed, with what they must be."""
        cuts: dict[int, list[_Checkpoint]] = {}
        for checkpoint in (*signed.values(), *self.saved_checkpoints):
            if self.from_seq <= checkpoint.size <= self.to_seq + 1:
                cuts.setdefault(checkpoint.size, []).append(checkpoint)
            elif not checkpoint.saved and checkpoint.size < self.from_seq:
                self.summary.notes.append(
                    f"checkpoint {checkpoint.size} is before the range: its root is checked "
                    "only through the consistency proof to the next one")
            else:
                self.summary.notes.append(
                    f"{checkpoint.where} (size {checkpoint.size}) is outside entries "
                    f"{self.from_seq}..{self.to_seq}: its root was not recomputed")
        return cuts

    def _check_cut(self, size: int, root: bytes, cuts: dict[int, list[_Checkpoint]]) -> None:
        for checkpoint in cuts.get(size, ()):
            if checkpoint.root != root:
                self.fail(checkpoint.where, "split view" if checkpoint.saved else "root",
                          f"root {checkpoint.root.hex()} (signed)",
                          f"root {root.hex()} (recomputed from entries 0..{size - 1})")
            if not checkpoint.saved:
                self.summary.checkpoints_verified += 1
                self.summary.latest_checkpoint = (size, root.hex())

    # -- the entries ----------------------------------------------------------------------

    def _stream(self, cuts: dict[int, list[_Checkpoint]]) -> None:
        tasks = chunks_of(str(self.directory / "entries.jsonl"), CHUNK_BYTES)
        parallel = self.workers > 1 and len(tasks) > 1
        versions, earliest = self._look_ahead(tasks, parallel)
        self.rule_versions = versions
        self.member_accounts = tuple(sorted(self.members))
        self.members_by_number = [self.members[account] for account in self.member_accounts]
        award_rules = AwardRules(list(versions.values()), self.members, self.unit_paths,
                                 self.calendar)
        self.versions_by_number = award_rules.versions
        context = LineContext(self.code.encode(), frozenset(self.accounts),
                              self.member_accounts, award_rules, tuple(sorted(cuts)))
        self.limits = Limits(list(versions.values()), self.calendar)
        frontier, last_hash = self.start
        self.state = _ChainState(self.from_seq, last_hash, frontier.copy())
        self.defined: dict[bytes, int] = {}
        for rule in versions.values():
            if rule.entry_seq is None:
                self.defined[rule.code.encode()] = max(self.defined.get(rule.code.encode(), 0),
                                                       rule.version)
        self.chain_rules: list[dict[str, Any]] = [
            rule for rule in self.rules_file if rule["entry_seq"] < self.from_seq]
        self.reversed: dict[int, int] = {}
        self.balances: dict[bytes, int] = {}
        self.scores: dict[bytes, int] = {}
        self.offset_seqs = array("q", [self.from_seq])
        self.offsets = array("q", [0])
        """Where entry offset_seqs[i] starts in the file: every 64th, for reading back."""
        self.unchecked_reversals = 0
        self._check_cut(self.from_seq, frontier.root(), cuts)
        results = self._results(tasks, context, parallel)
        try:
            for number, result in enumerate(results):
                self.limits.set_horizon(earliest[number] if earliest else None)
                self._join(result, tasks[number], context, cuts)
                if self.progress is not None:
                    self.progress(self.code, self.state.seq - self.from_seq,
                                  self.to_seq + 1 - self.from_seq)
        finally:
            results.close()
        if not self.summary.checkpoints_verified:
            self.summary.notes.append("no signed checkpoint covers these entries: nothing "
                                      "proves they are the ones the operator signed")
        if self.unchecked_reversals:
            self.summary.notes.append(
                f"{self.unchecked_reversals} reversal(s) of entries before the range: their "
                "targets are not in this export and were not compared")
        if self.from_seq > 0:
            self.summary.notes.append(
                "range export: caps and cooldowns counted only the applications in the range, "
                "and rule versions before it are taken from rules.json as stated")

    def _look_ahead(self, tasks: list[tuple[str, int, int]], parallel: bool,
                    ) -> tuple[dict[tuple[bytes, int], RuleVersion], list[bytes | None]]:
        """Every rule version the chain defines (and those before a range), and for each chunk
        the earliest day any later entry happened (for dropping closed periods)."""
        versions: dict[tuple[bytes, int], RuleVersion] = {}
        for rule in self.rules_file:
            if rule["entry_seq"] < self.from_seq:
                try:
                    parsed = parse_definition(rule["definition"], rule["version"], None)
                except DefinitionError as error:
                    self.fail("rules.json", "rule", "rule definitions",
                              f"{rule['code']} version {rule['version']}: {error}")
                versions[(parsed.code.encode(), parsed.version)] = parsed
        # The earliest days are worth a look only if some rule caps or cools down. rules.json
        # says so before the chain is read; if it hides one, no period is ever dropped (the
        # counts stay exact, memory grows) and rules.json is reported at the end.
        limited_hint = any(rule["definition"].get("caps") or rule["definition"].get(
            "cooldown_minutes") for rule in self.rules_file if isinstance(rule["definition"],
                                                                           dict))
        jobs = [(*task, limited_hint) for task in tasks]
        if parallel:
            with _pool(self.workers, None) as pool:
                found = pool.map(look_ahead, jobs, chunksize=1)
        else:
            found = [look_ahead(job) for job in jobs]
        for admins, _ in found:
            for seq, metadata in admins:
                rule = _rule_of(metadata, seq)
                if isinstance(rule, RuleVersion):
                    versions.setdefault((rule.code.encode(), rule.version), rule)
        earliest: list[bytes | None] = []
        if limited_hint:
            running = None
            for _, day in reversed(found):
                if day is not None and (running is None or day < running):
                    running = day
                earliest.append(running)
            earliest.reverse()
        return versions, earliest

    def _results(self, tasks: list[tuple[str, int, int]], context: LineContext,
                 parallel: bool) -> Iterator[ChunkResult]:
        if not parallel:
            for path, start, end in tasks:
                data, offset, at_end = read_lines(path, start, end)
                yield scan_lines(data, offset, context, self.state.point(), at_end)
            return
        with _pool(self.workers, context) as pool:
            pending: deque = deque()
            queued = iter(tasks)
            for task in queued:
                pending.append(pool.apply_async(scan_range, (task,)))
                if len(pending) >= self.workers * IN_FLIGHT_PER_WORKER:
                    break
            while pending:
                result = pending.popleft().get()
                task = next(queued, None)
                if task is not None:
                    pending.append(pool.apply_async(scan_range, (task,)))
                yield result
            for balances, scores in pool.map(flush_sums, range(self.workers), chunksize=1):
                self._add_sums(balances, scores)

    def _join(self, result: ChunkResult, task: tuple[str, int, int], context: LineContext,
              cuts: dict[int, list[_Checkpoint]]) -> None:
        """Carry the chain on through one chunk, in order; raises at the first problem."""
        state = self.state
        continues = result.entries == 0 or (
            result.first_seq == state.seq and result.first_prev == state.prev_hex())
        if result.problem is not None or not continues:
            path, start, end = task
            data, offset, at_end = read_lines(path, start, end)
            result = scan_lines(data, offset, context, state.point(), at_end)
        for seq, offset in result.index:
            self.offset_seqs.append(seq)
            self.offsets.append(offset)
        steps = [(size, 0, cut) for size, cut in ((cut[0], cut) for cut in result.cuts)]
        steps += [(record[1], 1, record) for record in result.records]
        steps.sort(key=lambda step: step[:2])
        applications = zip(*result.applications, strict=True)
        for position, is_record, step in steps:
            applications = self._applications(applications, position)
            if is_record:
                self._record(step)
            else:
                self._check_piece_cut(step, cuts)
        self._applications(applications, 1 << 62)
        self._add_sums(result.balances, result.scores)
        for level, subtree in result.pieces:
            state.frontier.append_subtree(level, subtree)
        if result.entries:
            state.seq += result.entries
            state.last_hash = result.last_hash
            self._check_cut(state.seq, state.frontier.root(), cuts)
        if result.problem is not None:
            seq, finding = result.problem
            self.fail(f"entry {seq}", finding.field, finding.expected, finding.found)

    def _add_sums(self, balances: dict[bytes, int], scores: dict[bytes, int]) -> None:
        for sums, moved in ((self.balances, balances), (self.scores, scores)):
            for account, points in moved.items():
                sums[account] = sums.get(account, 0) + points

    def _check_piece_cut(self, cut: tuple[int, list[tuple[int, bytes]]],
                         cuts: dict[int, list[_Checkpoint]]) -> None:
        size, pieces = cut
        frontier = self.state.frontier.copy()
        for level, subtree in pieces:
            frontier.append_subtree(level, subtree)
        self._check_cut(size, frontier.root(), cuts)

    def _applications(self, applications: Iterator[tuple[int, ...]],
                      before_seq: int) -> Iterator[tuple[int, ...]]:
        """Check caps and cooldowns of the next applications, up to entry `before_seq`.

        Returns the rest (`applications` holds `APPLICATION_FIELDS` per entry).
        """
        check = self.limits.check
        versions = self.versions_by_number
        members = self.members_by_number
        for application in applications:
            seq, member, magnitude, rule, day, micros = application
            if seq >= before_seq:
                return chain((application,), applications)
            try:
                check(versions[rule], members[member], magnitude, day, micros)
            except Finding as finding:
                self.fail(f"entry {seq}", finding.field, finding.expected, finding.found)
        return iter(())

    def _record(self, record: tuple) -> None:
        tag, seq = record[0], record[1]
        try:
            if tag == REVERSAL:
                self._reversal(seq, record[2], record[3])
            elif tag == ADMIN:
                self._admin(seq, record[2])
        except Finding as finding:
            self.fail(f"entry {seq}", finding.field, finding.expected, finding.found)

    def _admin(self, seq: int, metadata: dict[str, Any]) -> None:
        if metadata.get("event") != RULE_EVENT:
            return
        rule = _rule_of(metadata, seq)
        if isinstance(rule, str):
            raise Finding("rule", "a rule version: metadata {event, rule, version} "
                          "(docs/RULES.md)", rule)
        code = rule.code.encode()
        wanted = self.defined.get(code, 0) + 1
        if rule.version != wanted:
            raise Finding("rule", f"version {wanted} of rule {rule.code}",
                          f"version {rule.version}")
        if self.rule_versions.get((code, rule.version)) != rule:
            _malformed(self.code, "entries.jsonl", "the same file throughout",
                       f"entry {seq} changed while it was being verified")
        self.defined[code] = rule.version
        self.chain_rules.append({"code": rule.code, "version": rule.version, "entry_seq": seq,
                                 "definition": metadata["rule"]})

    def _reversal(self, seq: int, reverses: int, legs: list[tuple[bytes, int]]) -> None:
        """Reversed once, reversible, its postings negated exactly; scores and caps follow."""
        self.summary.reversals += 1
        if reverses < self.from_seq:
            self.unchecked_reversals += 1
            return
        if reverses in self.reversed:
            raise Finding("reverses", f"entry {reverses} reversed once",
                          f"a second reversal (the first was entry {self.reversed[reverses]})")
        original = self._read_entry(reverses)
        kind = original["kind"].encode()
        if kind in NOT_REVERSIBLE_KINDS:
            raise Finding("reverses", "an entry that can be reversed",
                          f"a {original['kind']} entry")
        negated = [(posting["account"].encode(), -posting["points"])
                   for posting in original["postings"]]
        if legs != negated:
            raise Finding("postings", f"the postings of entry {reverses}, negated",
                          "other postings")
        self.reversed[reverses] = seq
        if kind in SCORE_KINDS:
            for account, points in legs:
                if account in self.members:
                    self.scores[account] = self.scores.get(account, 0) + points
            rule = original["rule"]
            member_account, points = negated[0]
            if rule is not None and member_account in self.members:
                self.limits.unapply(rule["code"].encode(), self.members[member_account],
                                    abs(points), original["occurred_at"].encode())

    def _read_entry(self, seq: int) -> dict[str, Any]:
        """Entry `seq` of the file, already checked, read back for a reversal."""
        position = bisect.bisect_right(self.offset_seqs, seq) - 1
        first_seq = self.offset_seqs[position]
        with open(self.directory / "entries.jsonl", "rb") as file:
            file.seek(self.offsets[position])
            for _ in range(seq - first_seq):
                file.readline()
            return json.loads(file.readline())

    # -- after the entries ----------------------------------------------------------------

    def _check_manifest(self) -> None:
        state = self.state
        found = state.seq - self.from_seq
        listed = self.listed
        if found != listed["entries"]:
            self.fail(MANIFEST, "entries", f"{found} entries (seq {self.from_seq}.."
                      f"{state.seq - 1} in entries.jsonl)",
                      f"{listed['entries']} (seq {self.from_seq}..{self.to_seq})")
        head = None if state.seq == self.from_seq else state.last_hash.hex()
        if listed.get("head_hash") != head:
            self.fail(MANIFEST, "entries", f"head hash {head or 'null'} (of the last entry)",
                      f"head hash {listed.get('head_hash')}")
        root = state.frontier.root().hex()
        if listed["root"] != root:
            self.fail(MANIFEST, "root", f"{root} (recomputed)", listed["root"])
        if listed["checkpoints"] != len(self.checkpoint_lines):
            self.fail(MANIFEST, "checkpoints", f"{len(self.checkpoint_lines)} (lines of "
                      "checkpoints.jsonl)", str(listed["checkpoints"]))
        self.summary.entries_checked = found

    def _check_balances(self) -> None:
        total = sum(self.balances.values())
        if self.from_seq == 0 and total:
            self.fail("entries.jsonl", "balance", "balances that sum to 0", f"a sum of {total}")
        stated = self.balances_file
        if stated is None:
            return
        if self.from_seq != 0:
            self.fail("balances.json", "size", "no stated balances in a range export",
                      str(stated.get("size")))
        if stated.get("size") != self.state.seq:
            self.fail("balances.json", "size", f"{self.state.seq} (the entries exported)",
                      str(stated.get("size")))
        listed = stated.get("accounts")
        if not isinstance(listed, dict):
            _malformed(self.code, "balances.json", "accounts: {code: {balance, score}}",
                       type(listed).__name__)
        for code in sorted(self.accounts):
            balance = self.balances.get(code, 0)
            score = self.scores.get(code, 0)
            figures = listed.get(code.decode())
            if not isinstance(figures, dict):
                self.fail("balances.json", "balance", f"{balance} for {code.decode()}",
                          "no balance")
            if figures.get("balance") != balance:
                self.fail("balances.json", "balance",
                          f"{balance} for {code.decode()} (recomputed from postings)",
                          str(figures.get("balance")))
            if figures.get("score") != score:
                self.fail("balances.json", "score",
                          f"{score} for {code.decode()} (recomputed from postings)",
                          str(figures.get("score")))
        extra = sorted(set(listed) - {code.decode() for code in self.accounts})
        if extra:
            self.fail("balances.json", "balance", "accounts listed in accounts.json",
                      f"account {extra[0]}")

    def _check_rules_file(self) -> None:
        stated = self.rules_file
        recorded = self.chain_rules
        self.summary.rule_versions = len(recorded)
        for position in range(max(len(stated), len(recorded))):
            if position >= len(stated):
                rule = recorded[position]
                self.fail("rules.json", "rule", f"rule {rule['code']} version "
                          f"{rule['version']} (entry {rule['entry_seq']})", "no such line")
            if position >= len(recorded):
                rule = stated[position]
                self.fail("rules.json", "rule", "only the rule versions the chain records",
                          f"rule {rule['code']} version {rule['version']} "
                          f"(entry {rule['entry_seq']})")
            difference = _first_difference(recorded[position], stated[position], "")
            if difference is not None:
                path, expected, found = difference
                rule = recorded[position]
                self.fail("rules.json", "rule",
                          f"rule {rule['code']} version {rule['version']} as entry "
                          f"{rule['entry_seq']} records it: {path} = {expected}",
                          f"{path} = {found}")

    def _check_files(self) -> None:
        for name, stated in sorted(self.listed["files"].items()):
            if not isinstance(stated, dict):
                _malformed(self.code, MANIFEST, "files: {name: {bytes, sha256}}", name)
            path = self.directory / name
            size = path.stat().st_size
            if stated.get("bytes") != size:
                self.fail(name, "bytes", f"{size} (the file)", str(stated.get("bytes")))
            if name in FILES_CHECKED_BY_CONTENT:
                continue
            digest = _sha256_of(path)
            if stated.get("sha256") != digest:
                self.fail(name, "sha256", f"{digest} (the file)", str(stated.get("sha256")))

    def _finish_summary(self) -> None:
        by_kind: dict[str, int] = {}
        for code, balance in self.balances.items():
            kind = "member" if code in self.members else self.accounts.get(code)
            key = code.decode() if kind == "system" else kind
            by_kind[key] = by_kind.get(key, 0) + balance
        self.summary.totals = {
            "issued": -by_kind.get("issuance", 0),
            "deducted": by_kind.get("penalty", 0),
            "expired": by_kind.get("expired", 0),
            "settled": by_kind.get("settled", 0),
            "redeemed": by_kind.get("shop", 0) + by_kind.get("settled", 0),
            "in_vouchers": by_kind.get("hold", 0),
            "outstanding": by_kind.get("member", 0),
        }


@dataclass
class _ChainState:
    """Where the chain stands after the entries joined so far."""

    seq: int
    last_hash: bytes | None
    frontier: Frontier

    def point(self) -> ChainPoint:
        return ChainPoint(self.seq, self.last_hash)

    def prev_hex(self) -> bytes | None:
        return None if self.last_hash is None else binascii.hexlify(self.last_hash)


def _rule_of(metadata: dict[str, Any], seq: int) -> RuleVersion | str:
    """The rule version an admin entry's metadata records, or what is wrong with it."""
    if metadata.get("event") != RULE_EVENT:
        return "another event"
    version = metadata.get("version")
    if type(version) is not int or version < 1:
        return f"version {version!r}"
    try:
        return parse_definition(metadata.get("rule"), version, seq)
    except DefinitionError as error:
        return str(error)


def _first_difference(expected: Any, found: Any, path: str) -> tuple[str, str, str] | None:
    """Where two JSON values first differ: (path, expected, found), or None if equal."""
    if type(expected) is dict and type(found) is dict:
        for key in sorted(set(expected) | set(found)):
            if key not in found or key not in expected:
                return (f"{path}.{key}".lstrip("."),
                        json.dumps(expected.get(key), ensure_ascii=False) if key in expected
                        else "(absent)",
                        json.dumps(found.get(key), ensure_ascii=False) if key in found
                        else "(absent)")
            difference = _first_difference(expected[key], found[key], f"{path}.{key}")
            if difference is not None:
                return difference
        return None
    if type(expected) is list and type(found) is list and len(expected) == len(found):
        for index, (left, right) in enumerate(zip(expected, found, strict=True)):
            difference = _first_difference(left, right, f"{path}[{index}]")
            if difference is not None:
                return difference
        return None
    if type(expected) is type(found) and expected == found:
        return None
    return (path.lstrip(".") or "(the whole line)", json.dumps(expected, ensure_ascii=False),
            json.dumps(found, ensure_ascii=False))


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _pool(workers: int, context: LineContext | None):
    """Worker processes: forked where the platform can (fast, nothing to pickle)."""
    methods = multiprocessing.get_all_start_methods()
    start_method = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    return start_method.Pool(workers, initializer=start_worker,
                             initargs=(context, start_method.Barrier(workers)))


# -- the command line -----------------------------------------------------------------------


def _vkey_arguments(values: Sequence[str]) -> list[str]:
    """Each `--vkey` is a vkey, or a file of them (one per line)."""
    vkeys = []
    for value in values:
        path = Path(value)
        if "+" not in value or path.is_file():
            try:
                vkeys.extend(line.strip() for line in path.read_text(encoding="utf-8")
                             .splitlines() if line.strip())
            except (OSError, UnicodeDecodeError) as error:
                raise ValueError(f"--vkey {value}: not a vkey, and not a readable file "
                                 f"({error})") from None
        else:
            vkeys.append(value)
    return vkeys


def _usage_error(message: str) -> int:
    print(f"jifen-verify: error: {message}", file=sys.stderr)
    return 2


class _ProgressLine:
    """One line on stderr, rewritten as chunks are checked."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.shown = False

    def __call__(self, programme: str, checked: int, total: int) -> None:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        share = f"{100 * checked / total:5.1f}%" if total else "100.0%"
        print(f"\r{programme}: {checked:,}/{total:,} entries {share}  "
              f"{checked / elapsed:,.0f}/s ", end="", file=sys.stderr, flush=True)
        self.shown = True

    def close(self) -> None:
        if self.shown:
            print(file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jifen-verify",
        description="Verify a jifen-ledger export directory offline (docs/AUDIT.md).",
        epilog="Exit status: 0 verified, 1 a problem found (printed), 2 not a readable export "
               "or bad arguments.")
    parser.add_argument("directory", help="the export directory (holds manifest.json)")
    parser.add_argument("--vkey", action="append", default=[], metavar="VKEY|FILE",
                        help="a checkpoint verifier key to pin, or a file of them; repeatable")
    parser.add_argument("--checkpoint", action="append", default=[], metavar="FILE",
                        help="a signed checkpoint saved from an earlier audit; repeatable")
    parser.add_argument("--workers", type=int, default=None,
                        help="processes that check chunks (default: one per CPU)")
    progress = parser.add_mutually_exclusive_group()
    progress.add_argument("--quiet", action="store_true", help="no progress line")
    progress.add_argument("--progress", action="store_true",
                          help="a progress line even when stderr is not a terminal")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m audit.verify` and `jifen-verify`: the exit status."""
    parser = build_parser()
    try:
        arguments = parser.parse_args(argv)
    except SystemExit as exit_:
        return 2 if exit_.code else 0
    if arguments.workers is not None and arguments.workers < 1:
        return _usage_error("--workers must be at least 1")
    try:
        vkeys = _vkey_arguments(arguments.vkey)
    except ValueError as error:
        return _usage_error(str(error))
    show_progress = arguments.progress or (not arguments.quiet and sys.stderr.isatty())
    progress_line = _ProgressLine() if show_progress else None
    report = verify_export(arguments.directory, vkeys=vkeys, checkpoints=arguments.checkpoint,
                           workers=arguments.workers, progress=progress_line)
    if progress_line is not None:
        progress_line.close()
    print(report.text())
    return report.exit_status


if __name__ == "__main__":
    sys.exit(main())
