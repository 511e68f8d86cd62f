"""`jifen export`: a programme's books as the directory of docs/FORMAT.md §7.

What an auditor takes away and checks offline (`jifen verify DIR`): every
entry as the exact canonical bytes that were hashed, a CSV of the same for
spreadsheets, the organisation, accounts, rules, balances, and the signed
checkpoints with the consistency proofs between them.

Guarantees:

- **One snapshot.** Everything is read in one transaction (REPEATABLE READ on
  PostgreSQL, a WAL read snapshot on SQLite), so appends that land meanwhile
  are either wholly in the export or wholly out of it; the chain's size is
  fixed when the export starts.
- **Nothing corrupt leaves.** Each entry's canonical bytes are rebuilt from its
  stored columns, as `ledger.chain` built them, and its leaf hash, `prev` link
  and `seq` are checked against what is stored while it is written; so are
  the root of the range and the chain head. A database that fails is refused
  (`CorruptLedger`): an export must never launder a bad chain into a file that
  looks like evidence.
- **Flat memory.** Entries and postings are read in `seq` pages of
  `BATCH_ENTRIES`; nothing grows with the chain but counters.
- **Deterministic.** Nothing records when the export was made, so two exports
  of the same state are byte-identical.
- **Atomic.** The directory is written beside the target under a hidden
  `.NAME.partial-…` name, synced, and renamed into place at the end: a crash
  leaves no directory at the target that looks complete.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import aliased

from audit.checkpoints import list_checkpoints
from audit.models import CheckpointKey, MerkleNode
from audit.tiles import TILE_HEIGHT, consistency_proof
from ledger import errors
from ledger.chain import Entry, Posting, entry_from_row
from ledger.entry_format import entry_hash
from ledger.merkle import Frontier, merkle_root
from ledger.models import (
    Account,
    Balance,
    ChainHead,
    Household,
    Member,
    Programme,
    RuleVersion,
    Unit,
)
from ledger.models import Entry as EntryRow
from ledger.models import Posting as PostingRow
from ledger.storage import read_transaction

EXPORT_FORMAT = "jifen-export"
EXPORT_VERSION = 1
BATCH_ENTRIES = 5_000
"""Entries read, checked and written per page: bounds the memory an export needs."""
BATCH_NODES = 50_000
"""Stored level-8 node hashes read per page when computing a range export's start."""
MANIFEST = "manifest.json"

CSV_COLUMNS = ("seq", "recorded_at", "occurred_at", "kind", "rule", "rule_version", "quantity",
               "account", "points", "actor", "approver", "memo", "evidence", "reverses",
               "idempotency_key", "hash")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""A spreadsheet runs a cell that starts with one of these as a formula; see `_text_cell`."""

Progress = Callable[[str, int, int], None]
"""`progress(programme, entries_written, entries_in_range)`, called after each page."""


class ExportRefused(errors.LedgerError):
    """The export cannot be made as asked (target directory, range); nothing was written."""

    code = "export_refused"


class CorruptLedger(errors.LedgerError):
    """The database's chain does not check out; `details` name the entry and field."""

    code = "corrupt_ledger"


@dataclass(frozen=True)
class FileDigest:
    bytes: int
    sha256: str


@dataclass(frozen=True)
class ProgrammeExport:
    """What was exported of one programme: entries `from_seq`..`to_seq` and their root."""

    code: str
    from_seq: int
    to_seq: int
    head_hash: bytes | None
    """The hash of entry `to_seq`; None when the range is empty."""
    root: bytes
    checkpoints: int
    files: dict[str, FileDigest] = field(default_factory=dict)

    @property
    def entries(self) -> int:
        return self.to_seq - self.from_seq + 1


@dataclass(frozen=True)
class ExportSummary:
    directory: Path
    programmes: tuple[ProgrammeExport, ...]

    @property
    def entries(self) -> int:
        return sum(programme.entries for programme in self.programmes)

    @property
    def files(self) -> int:
        """Files written, the manifest included."""
        return 1 + sum(len(programme.files) for programme in self.programmes)


def export(
    engine: Engine,
    out_dir: str | os.PathLike[str],
    programmes: Sequence[str] | None = None,
    from_seq: int | None = None,
    to_seq: int | None = None,
    *,
    force: bool = False,
    progress: Progress | None = None,
) -> ExportSummary:
    """Write the export directory of `programmes` (default: every one) to `out_dir`.

    `from_seq`/`to_seq` (inclusive; defaults 0 and the last entry) make a
    range export; an empty range (`to_seq == from_seq - 1`) is allowed.
    `out_dir` must not exist or be empty; with `force`, an earlier export there
    (a directory whose manifest says `jifen-export`) is replaced, and nothing
    else ever is.

    Raises `ExportRefused` (target directory, a range outside a chain),
    `UnknownProgramme`, and `CorruptLedger` when a stored hash, link or head
    does not match what the entries recompute to. Nothing is left at
    `out_dir` when anything is raised.
    """
    target = Path(out_dir)
    _check_target(target, force)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.parent / f".{target.name}.partial-{uuid.uuid4().hex[:12]}"
    partial.mkdir()
    try:
        with read_transaction(engine) as connection:
            if connection.dialect.name == "postgresql":
                connection.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            infos = _programmes(connection, programmes)
            written = tuple(
                _export_programme(connection, info, partial / info.code, from_seq, to_seq,
                                  progress)
                for info in infos
            )
        with _OutputFile(partial / MANIFEST) as manifest:
            manifest.write(json_line(_manifest(written)))
        _sync_directory(partial)
        _put_in_place(partial, target, force)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return ExportSummary(target, written)


def json_line(value: Any) -> bytes:
    """A JSON file's bytes as §7 writes them: sorted keys, no whitespace, UTF-8, one LF."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"),
                      allow_nan=False).encode("utf-8") + b"\n"


def is_export(directory: Path) -> bool:
    """Whether `directory` holds a manifest that says it is a jifen export."""
    try:
        manifest = json.loads((directory / MANIFEST).read_bytes())
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and manifest.get("format") == EXPORT_FORMAT


# -- the target directory ------------------------------------------------------------------


def _check_target(target: Path, force: bool) -> None:
    if not target.exists():
        return
    if not target.is_dir():
        raise ExportRefused(f"{target} exists and is not a directory", path=str(target))
    if not any(target.iterdir()):
        return
    if not force:
        raise ExportRefused(f"{target} is not empty; give --force to replace an earlier export "
                            "there", path=str(target))
    if not is_export(target):
        raise ExportRefused(f"{target} is not empty and holds no jifen export; --force replaces "
                            "only an earlier export", path=str(target))


def _put_in_place(partial: Path, target: Path, force: bool) -> None:
    """Rename the finished export onto `target`; an earlier export there is set aside first.

    The target is checked again, for whatever appeared there while the export
    ran. Between the two renames of a replacement a crash leaves no export at
    `target` and the earlier one under `.NAME.replaced-…`: never a mix.
    """
    _check_target(target, force)
    if target.exists() and any(target.iterdir()):
        replaced = target.parent / f".{target.name}.replaced-{uuid.uuid4().hex[:12]}"
        target.rename(replaced)
        partial.rename(target)
        _sync_directory(target.parent)
        shutil.rmtree(replaced)
        return
    partial.replace(target)  # absent, or an empty directory, which rename replaces
    _sync_directory(target.parent)


def _sync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


class _OutputFile:
    """A file written once, whose size and SHA-256 are counted as it is written."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = path.open("xb")
        self._sha256 = hashlib.sha256()
        self._bytes = 0

    def write(self, data: bytes) -> None:
        self._file.write(data)
        self._sha256.update(data)
        self._bytes += len(data)

    def digest(self) -> FileDigest:
        return FileDigest(self._bytes, self._sha256.hexdigest())

    def __enter__(self) -> _OutputFile:
        return self

    def __exit__(self, *_exception: object) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()


# -- one programme -----------------------------------------------------------------------


@dataclass(frozen=True)
class _ProgrammeRow:
    id: int
    code: str
    name: str
    time_zone: str
    notice_days: int
    expiry_policy: str
    created_at: str


def _programmes(connection: Connection, codes: Sequence[str] | None) -> list[_ProgrammeRow]:
    rows = connection.execute(
        select(Programme.id, Programme.code, Programme.name, Programme.time_zone,
               Programme.notice_days, Programme.expiry_policy, Programme.created_at)
        .order_by(Programme.code)
    ).all()
    found = {row.code: _ProgrammeRow(*row) for row in rows}
    if not codes:
        return list(found.values())
    for code in codes:
        if code not in found:
            raise errors.UnknownProgramme(f"no programme with code {code!r}", programme=code)
    return [found[code] for code in sorted(set(codes))]


def _export_programme(
    connection: Connection,
    programme: _ProgrammeRow,
    directory: Path,
    from_seq: int | None,
    to_seq: int | None,
    progress: Progress | None,
) -> ProgrammeExport:
    head = connection.execute(
        select(ChainHead.size, ChainHead.head_hash, ChainHead.frontier)
        .where(ChainHead.programme_id == programme.id)
    ).one()
    first = 0 if from_seq is None else from_seq
    last = head.size - 1 if to_seq is None else to_seq
    _check_range(programme.code, head.size, first, last)
    directory.mkdir()
    files: dict[str, FileDigest] = {}

    def write_json(name: str, value: Any) -> None:
        with _OutputFile(directory / name) as output:
            output.write(json_line(value))
        files[name] = output.digest()

    write_json("programme.json", {
        "code": programme.code, "name": programme.name, "time_zone": programme.time_zone,
        "notice_days": programme.notice_days, "expiry_policy": programme.expiry_policy,
        "created_at": programme.created_at,
    })
    write_json("organisation.json", _organisation(connection, programme.id))
    accounts = _accounts(connection, programme.id)
    write_json("accounts.json", [
        {"code": code, "kind": kind, "member": member}
        for code, kind, member in sorted(accounts.values())
    ])
    write_json("rules.json", _rules(connection, programme.id, last))

    start = _start(connection, programme.id, first)
    if first > 0:
        write_json("start.json", {"size": first, "prev": start.prev_hash.hex(),
                                  "frontier": [node.hex() for node in start.frontier_hashes()]})
    chain = _ChainWriter(connection, programme, directory, accounts, start, progress)
    chain.write(first, last)
    files.update(chain.files)
    _check_head(programme.code, head, chain, last)

    if first == 0 and last == head.size - 1:
        write_json("balances.json", _balances(connection, programme.id, head.size))
    checkpoints = _checkpoint_lines(connection, programme.id, first, last + 1)
    with _OutputFile(directory / "checkpoints.jsonl") as output:
        for line in checkpoints:
            output.write(json_line(line))
    files["checkpoints.jsonl"] = output.digest()
    vkeys = connection.execute(
        select(CheckpointKey.vkey).where(CheckpointKey.programme_id == programme.id)
        .order_by(CheckpointKey.id)
    ).scalars()
    with _OutputFile(directory / "vkeys.txt") as output:
        for vkey in vkeys:
            output.write(vkey.encode("utf-8") + b"\n")
    files["vkeys.txt"] = output.digest()
    _sync_directory(directory)
    return ProgrammeExport(programme.code, first, last,
                           chain.prev_hash if last >= first else None, chain.frontier.root(),
                           len(checkpoints), dict(sorted(files.items())))


def _check_range(programme: str, size: int, first: int, last: int) -> None:
    if not 0 <= first <= size:
        raise ExportRefused(f"{programme}: --from {first} is outside its chain of {size} entries",
                            programme=programme)
    if last > size - 1:
        raise ExportRefused(f"{programme}: --to {last} is past its last entry ({size - 1})",
                            programme=programme)
    if last < first - 1:
        raise ExportRefused(f"{programme}: --to {last} is before --from {first}; an empty range "
                            f"ends at {first - 1}", programme=programme)


def _organisation(connection: Connection, programme_id: int) -> dict[str, list[dict[str, Any]]]:
    parent = aliased(Unit)
    units = connection.execute(
        select(Unit.code, Unit.name, Unit.kind, parent.code)
        .outerjoin(parent, parent.id == Unit.parent_id)
        .where(Unit.programme_id == programme_id)
        .order_by(Unit.path)
    ).all()
    households = connection.execute(
        select(Household.code, Household.name, Unit.code)
        .join(Unit, Unit.id == Household.unit_id)
        .where(Household.programme_id == programme_id)
        .order_by(Household.code)
    ).all()
    members = connection.execute(
        select(Member.code, Member.name, Household.code, Unit.code)
        .join(Household, Household.id == Member.household_id)
        .join(Unit, Unit.id == Member.unit_id)
        .where(Member.programme_id == programme_id)
        .order_by(Member.code)
    ).all()
    return {
        "units": [{"code": code, "name": name, "kind": kind, "parent": parent_code}
                  for code, name, kind, parent_code in units],
        "households": [{"code": code, "name": name, "unit": unit}
                       for code, name, unit in households],
        "members": [{"code": code, "name": name, "household": household, "unit": unit}
                    for code, name, household, unit in members],
    }


def _accounts(connection: Connection, programme_id: int) -> dict[int, tuple[str, str, str | None]]:
    """Account id -> (code, kind, member code): postings name accounts by id."""
    rows = connection.execute(
        select(Account.id, Account.code, Account.kind, Member.code)
        .outerjoin(Member, Member.id == Account.member_id)
        .where(Account.programme_id == programme_id)
    )
    return {account_id: (code, kind, member) for account_id, code, kind, member in rows}


def _rules(connection: Connection, programme_id: int, last: int) -> list[dict[str, Any]]:
    """Every rule version recorded up to entry `last`: those in force anywhere in the range."""
    rows = connection.execute(
        select(RuleVersion.code, RuleVersion.version, RuleVersion.entry_seq,
               RuleVersion.definition_json)
        .where(RuleVersion.programme_id == programme_id, RuleVersion.entry_seq <= last)
        .order_by(RuleVersion.entry_seq, RuleVersion.code)
    )
    return [{"code": code, "version": version, "entry_seq": entry_seq,
             "definition": json.loads(definition)}
            for code, version, entry_seq, definition in rows]


def _balances(connection: Connection, programme_id: int, size: int) -> dict[str, Any]:
    """The cached balances, as the database states them: the verifier recomputes them."""
    rows = connection.execute(
        select(Account.code, Balance.balance_points, Balance.score_points)
        .join(Balance, Balance.account_id == Account.id)
        .where(Account.programme_id == programme_id)
        .order_by(Account.code)
    )
    return {"size": size, "accounts": {code: {"balance": balance, "score": score}
                                       for code, balance, score in rows}}


@dataclass(frozen=True)
class _Start:
    """The chain before a range: the frontier of the first `size` leaves and the last hash."""

    frontier: Frontier
    prev_hash: bytes | None

    def frontier_hashes(self) -> list[bytes]:
        data = self.frontier.to_bytes()
        return [data[offset:offset + 32] for offset in range(0, len(data), 32)]


def _start(connection: Connection, programme_id: int, size: int) -> _Start:
    """The frontier of the first `size` leaves, from stored level-8 nodes where there are some.

    A frontier is one subtree hash per set bit of `size`; the bits from 8 up
    are the frontier of the level-8 nodes over the first `size >> 8` tiles, the
    bits below it that of the leaves after them. Level-8 nodes not stored yet
    (appended since the last checkpoint) are hashed from their leaves, a page
    at a time, so memory stays flat. Stored hashes are taken as they are: a
    wrong one gives roots that match no signed checkpoint, which the verifier
    reports.
    """
    whole_tiles = size >> TILE_HEIGHT
    tiles = Frontier()
    for page_start in range(0, whole_tiles, BATCH_NODES):
        page_end = min(whole_tiles, page_start + BATCH_NODES)
        stored = connection.execute(
            select(MerkleNode.hash)
            .where(MerkleNode.programme_id == programme_id, MerkleNode.level == TILE_HEIGHT,
                   MerkleNode.index >= page_start, MerkleNode.index < page_end)
            .order_by(MerkleNode.index)
        ).scalars().all()
        tiles.extend(stored)
        if len(stored) < page_end - page_start:
            break
    for tile_index in range(tiles.size, whole_tiles):
        leaves = _leaf_hashes(connection, programme_id, tile_index << TILE_HEIGHT,
                              (tile_index + 1) << TILE_HEIGHT)
        tiles.append(merkle_root(leaves))
    rest = Frontier()
    rest.extend(_leaf_hashes(connection, programme_id, whole_tiles << TILE_HEIGHT, size))
    frontier = Frontier.from_bytes(size, tiles.to_bytes() + rest.to_bytes())
    prev_hash = None
    if size > 0:
        prev_hash = _leaf_hashes(connection, programme_id, size - 1, size)[0]
    return _Start(frontier, prev_hash)


def _leaf_hashes(connection: Connection, programme_id: int, start: int, stop: int) -> list[bytes]:
    """The stored hashes of entries start..stop-1 (at most one tile); raises on a gap."""
    hashes = connection.execute(
        select(EntryRow.hash)
        .where(EntryRow.programme_id == programme_id, EntryRow.seq >= start, EntryRow.seq < stop)
        .order_by(EntryRow.seq)
    ).scalars().all()
    if len(hashes) != stop - start:
        raise CorruptLedger(f"entries {start}..{stop - 1} are not all stored: a gap in the chain",
                            seq=start, field="seq")
    return hashes


class _ChainWriter:
    """Writes entries.jsonl and entries.csv page by page, checking every entry on the way."""

    def __init__(self, connection: Connection, programme: _ProgrammeRow, directory: Path,
                 accounts: dict[int, tuple[str, str, str | None]], start: _Start,
                 progress: Progress | None) -> None:
        self.connection = connection
        self.programme = programme
        self.directory = directory
        self.account_codes = {account_id: code for account_id, (code, _, _) in accounts.items()}
        self.frontier = start.frontier.copy()
        self.prev_hash = start.prev_hash
        self.progress = progress
        self.files: dict[str, FileDigest] = {}

    def write(self, first: int, last: int) -> None:
        with _OutputFile(self.directory / "entries.jsonl") as lines, \
                _OutputFile(self.directory / "entries.csv") as table:
            table.write(_csv_rows([CSV_COLUMNS], bom=True))
            for page_start in range(first, last + 1, BATCH_ENTRIES):
                page_end = min(last + 1, page_start + BATCH_ENTRIES)
                rows: list[tuple[Any, ...]] = []
                for entry in self._page(page_start, page_end):
                    canonical = self._checked(entry)
                    lines.write(canonical + b"\n")
                    rows.extend(_csv_entry(entry))
                table.write(_csv_rows(rows))
                if self.progress is not None:
                    self.progress(self.programme.code, page_end - first, last + 1 - first)
        self.files["entries.jsonl"] = lines.digest()
        self.files["entries.csv"] = table.digest()

    def _page(self, page_start: int, page_end: int) -> Iterator[Entry]:
        entries_table = EntryRow.__table__
        programme_id = self.programme.id
        rows = self.connection.execute(
            select(entries_table)
            .where(entries_table.c.programme_id == programme_id,
                   entries_table.c.seq >= page_start, entries_table.c.seq < page_end)
            .order_by(entries_table.c.seq)
        ).all()
        legs: dict[int, list[Posting]] = {}
        for entry_seq, account_id, points in self.connection.execute(
            select(PostingRow.entry_seq, PostingRow.account_id, PostingRow.amount_points)
            .where(PostingRow.programme_id == programme_id, PostingRow.entry_seq >= page_start,
                   PostingRow.entry_seq < page_end)
            .order_by(PostingRow.entry_seq, PostingRow.position)
        ).all():
            legs.setdefault(entry_seq, []).append(Posting(self.account_codes[account_id], points))
        if len(rows) != page_end - page_start:
            seqs = {row.seq for row in rows}
            missing = next(seq for seq in range(page_start, page_end) if seq not in seqs)
            raise CorruptLedger(f"{self.programme.code} entry {missing} is missing: a gap in "
                                "the chain", seq=missing, field="seq")
        for row in rows:
            yield entry_from_row(self.programme.code, row, tuple(legs.pop(row.seq, ())))

    def _checked(self, entry: Entry) -> bytes:
        """The entry's canonical bytes, once its `seq`, `prev` and hash check out."""
        code = self.programme.code
        if entry.seq != self.frontier.size:
            raise CorruptLedger(f"{code} entry {self.frontier.size}: found entry {entry.seq} in "
                                "its place", seq=self.frontier.size, field="seq")
        if entry.prev_hash != self.prev_hash:
            raise CorruptLedger(
                f"{code} entry {entry.seq}: prev: expected {_hex(self.prev_hash)}, found "
                f"{_hex(entry.prev_hash)}; refusing to export a corrupt chain",
                seq=entry.seq, field="prev")
        canonical = entry.canonical_bytes()
        leaf = entry_hash(canonical)
        if leaf != entry.hash:
            raise CorruptLedger(
                f"{code} entry {entry.seq}: hash: expected {leaf.hex()} (recomputed from the "
                f"stored fields), found {entry.hash.hex()}; refusing to export a corrupt chain",
                seq=entry.seq, field="hash")
        self.frontier.append(leaf)
        self.prev_hash = leaf
        return canonical


def _check_head(programme: str, head: Any, chain: _ChainWriter, last: int) -> None:
    """When the range ends at the head, the head must be what the entries recompute to."""
    if last != head.size - 1:
        return
    stored_root = Frontier.from_bytes(head.size, head.frontier).root()
    if chain.prev_hash != head.head_hash or chain.frontier.root() != stored_root:
        raise CorruptLedger(
            f"{programme} chain head: root: expected {chain.frontier.root().hex()} (recomputed), "
            f"found {stored_root.hex()} with last hash {_hex(head.head_hash)}; refusing to "
            "export a corrupt chain", field="root")


def _hex(value: bytes | None) -> str:
    return value.hex() if value is not None else "null"


# -- CSV ----------------------------------------------------------------------------------


def _csv_entry(entry: Entry) -> list[tuple[Any, ...]]:
    """One row per posting (one with no account for an entry without postings)."""
    rule = entry.rule
    shared = (entry.seq, entry.recorded_at, entry.occurred_at, entry.kind,
              rule.code if rule else "", rule.version if rule else "",
              _blank(rule.quantity if rule else None))
    after = (_text_cell(entry.actor), _text_cell(entry.approver), _text_cell(entry.memo),
             _text_cell(entry.evidence), _blank(entry.reverses),
             _text_cell(entry.idempotency_key), entry.hash.hex())
    legs = [(posting.account, posting.points) for posting in entry.postings] or [("", "")]
    return [(*shared, account, points, *after) for account, points in legs]


def _blank(value: Any) -> Any:
    return "" if value is None else value


def _text_cell(value: str | None) -> str:
    """Free text as a cell that a spreadsheet shows and never runs.

    Excel and LibreOffice evaluate a cell starting with `=`, `+`, `-` or `@`
    (a memo like `=HYPERLINK(...)` would run on the auditor's machine); such
    text gets a leading `'`, the spreadsheet convention for "this is text".
    The CSV is a view; entries.jsonl keeps the text exactly.
    """
    if value is None:
        return ""
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def _csv_rows(rows: Sequence[Sequence[Any]], bom: bool = False) -> bytes:
    """Rows as CSV, CRLF line ends, UTF-8 (with the BOM Excel needs to read it as UTF-8)."""
    buffer = io.StringIO()
    if bom:
        buffer.write("\ufeff")
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)
    return buffer.getvalue().encode("utf-8")


# -- checkpoints and the manifest --------------------------------------------------------


def _checkpoint_lines(connection: Connection, programme_id: int, first: int,
                      end_size: int) -> list[dict[str, Any]]:
    """The signed checkpoints up to `end_size`, each with a consistency proof from the one before.

    A range export keeps those from `first` on, plus the last one below `first`,
    so the chain of proofs reaches back to a checkpoint the auditor already holds.
    """
    stored = [checkpoint for checkpoint in list_checkpoints(connection, programme_id)
              if checkpoint.size <= end_size]
    stored.sort(key=lambda checkpoint: checkpoint.size)
    below = [checkpoint for checkpoint in stored if checkpoint.size < first]
    kept = below[-1:] + [checkpoint for checkpoint in stored if checkpoint.size >= first]
    lines = []
    previous: int | None = None
    for checkpoint in kept:
        proof: list[bytes] = []
        if previous:  # from the empty tree (or to it) there is nothing to prove
            proof = consistency_proof(connection, programme_id, previous, checkpoint.size)
        lines.append({"consistency": [node.hex() for node in proof], "from_size": previous,
                      "note": checkpoint.note, "size": checkpoint.size})
        previous = checkpoint.size
    return lines


def _manifest(programmes: Sequence[ProgrammeExport]) -> dict[str, Any]:
    return {
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "programmes": [
            {
                "code": programme.code,
                "from_seq": programme.from_seq,
                "to_seq": programme.to_seq,
                "entries": programme.entries,
                "head_hash": programme.head_hash.hex() if programme.head_hash else None,
                "root": programme.root.hex(),
                "checkpoints": programme.checkpoints,
                "files": {name: {"bytes": digest.bytes, "sha256": digest.sha256}
                          for name, digest in programme.files.items()},
            }
            for programme in programmes
        ],
    }
