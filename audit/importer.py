"""`jifen import DIR`: load an export (docs/FORMAT.md §7) into a database that lacks its programmes.

For moving a programme to another database, or giving an auditor a working
copy: the programme, its organisation, accounts, every entry and posting
with exactly the stored values that were hashed, rule versions, balances,
the chain head, and the signed checkpoints with their public keys.

Guarantees:

- **Verified first.** The offline verifier (`audit.verify.verify_export`) runs
  over the directory before anything is written; an export that fails is
  refused whole. While importing, every file read is checked again against
  the manifest's SHA-256, and every entry against the one before (`seq`,
  `prev`, canonical bytes), so a file swapped after verification is refused
  too, and what is stored always passes `jifen db verify`.
- **All or nothing.** Everything is written in one transaction; a refusal at
  any point leaves the database as it was.
- **Whole chains only.** A range export or a prefix (`--to` before the head,
  which states no balances) is refused: the database's chain must start at
  `seq` 0 and its cached balances must be the export's.
- **Public keys only.** Checkpoint keys come in `retired` with no secret, so
  the imported copy can show and prove what was signed but never sign with
  the original's keys; `jifen checkpoint` there makes a new key (under the
  same origin name, as every rotation does), which auditors must pin anew.

What the export does not carry is not recreated: grants, claims, API keys,
shops and vouchers. `content_digest` (which tells an idempotent retry from a
conflicting reuse of a key) is recomputed as if every entry had named its
`occurred_at`; a retry, after import, of a request that left `occurred_at`
to the server is answered as a conflict, not a replay.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.engine import Connection, Engine

from audit.export import BATCH_ENTRIES, EXPORT_FORMAT, EXPORT_VERSION, MANIFEST
from audit.models import Checkpoint, CheckpointKey
from audit.note import NoteError, open_note, parse_checkpoint, parse_vkey
from audit.tiles import ensure_nodes
from audit.verify import verify_export
from ledger import errors
from ledger.canonical import encode_plain
from ledger.chain import Entry, Posting, RuleRef
from ledger.entry_format import entry_hash, format_timestamp
from ledger.merkle import Frontier
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
from ledger.storage import insert_rows, write_transaction

Progress = Callable[[str, int, int], None]
"""`progress(programme, entries_imported, entries_in_export)`, called after each batch."""

_REQUEST_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
"""As `ledger.chain` encodes a request for its `content_digest`."""


class ImportRefused(errors.LedgerError):
    """The export cannot be imported (it fails verification, is a range, or is malformed)."""

    code = "import_refused"


@dataclass(frozen=True)
class ImportedProgramme:
    code: str
    entries: int
    checkpoints: int
    root: bytes


@dataclass(frozen=True)
class ImportSummary:
    programmes: tuple[ImportedProgramme, ...]

    @property
    def entries(self) -> int:
        return sum(programme.entries for programme in self.programmes)


def import_export(
    engine: Engine,
    directory: str | Path,
    vkeys: Sequence[str] | None = None,
    *,
    progress: Progress | None = None,
) -> ImportSummary:
    """Verify the export in `directory`, then load all its programmes in one transaction.

    `vkeys` are the signed-note verifier keys the auditor pins (passed to the
    verifier; without them it trusts the export's own vkeys.txt). Raises
    `ImportRefused` when verification fails, for a range or prefix export,
    or when a file differs from the manifest; `AlreadyExists` when the
    database holds a programme of the same code. Nothing is written when
    anything is raised.
    """
    directory = Path(directory)
    report = verify_export(directory, vkeys=vkeys)
    if not report.ok:
        raise ImportRefused(f"the export in {directory} does not verify: {report.problem}; "
                            "nothing was imported", problem=str(report.problem))
    manifest = _manifest(directory)
    for listed in manifest["programmes"]:
        _check_whole(listed)
    imported = []
    with write_transaction(engine) as connection:
        codes = [listed["code"] for listed in manifest["programmes"]]
        taken = connection.execute(
            select(Programme.code).where(Programme.code.in_(codes)).order_by(Programme.code)
        ).scalars().first()
        if taken is not None:
            raise errors.AlreadyExists(f"programme {taken!r} already exists in this database; "
                                       "nothing was imported", programme=taken)
        for listed in manifest["programmes"]:
            files = _Files(directory / listed["code"], listed["files"])
            imported.append(_import_programme(connection, files, listed, progress))
    return ImportSummary(tuple(imported))


def _manifest(directory: Path) -> dict[str, Any]:
    try:
        manifest = json.loads((directory / MANIFEST).read_bytes())
    except (OSError, ValueError) as error:
        raise ImportRefused(f"{directory / MANIFEST} cannot be read: {error}") from error
    if (manifest.get("format"), manifest.get("version")) != (EXPORT_FORMAT, EXPORT_VERSION):
        raise ImportRefused(f"{directory} is not a {EXPORT_FORMAT} version {EXPORT_VERSION} "
                            "export")
    return manifest


def _check_whole(listed: dict[str, Any]) -> None:
    code = listed["code"]
    if listed["from_seq"] != 0:
        raise ImportRefused(f"{code}: a range export (from entry {listed['from_seq']}) is for "
                            "audits and cannot be imported; export the whole chain",
                            programme=code)
    if "balances.json" not in listed["files"]:
        raise ImportRefused(f"{code}: the export stops before the head (no balances.json) and "
                            "cannot be imported; export the whole chain", programme=code)


class _Files:
    """A programme's files, each checked against the manifest's size and SHA-256 as it is read."""

    def __init__(self, directory: Path, listed: dict[str, Any]) -> None:
        self.directory = directory
        self.listed = listed

    def json(self, name: str) -> Any:
        data = (self.directory / name).read_bytes()
        self._check(name, hashlib.sha256(data), len(data))
        return json.loads(data)

    def lines(self, name: str) -> Iterator[bytes]:
        """The file's lines without their LF; the digest is checked after the last one."""
        digest, size = hashlib.sha256(), 0
        with (self.directory / name).open("rb") as file:
            for line in file:
                digest.update(line)
                size += len(line)
                if not line.endswith(b"\n"):
                    raise ImportRefused(f"{self.directory / name}: the last line has no LF")
                yield line[:-1]
        self._check(name, digest, size)

    def _check(self, name: str, digest: Any, size: int) -> None:
        listed = self.listed.get(name)
        if listed is None or (listed["bytes"], listed["sha256"]) != (size, digest.hexdigest()):
            raise ImportRefused(f"{self.directory / name} is not the file the manifest lists "
                                "(changed since it was verified?); nothing was imported")


# -- one programme -----------------------------------------------------------------------


def _import_programme(connection: Connection, files: _Files, listed: dict[str, Any],
                      progress: Progress | None) -> ImportedProgramme:
    code = listed["code"]
    now = format_timestamp(datetime.now(UTC))
    about = files.json("programme.json")
    programme_id = connection.execute(
        insert(Programme).values(
            code=code, name=about["name"], time_zone=about["time_zone"],
            created_at=about["created_at"], notice_days=about["notice_days"],
            expiry_policy=about["expiry_policy"],
        ).returning(Programme.id)
    ).scalar_one()
    member_ids = _import_organisation(connection, programme_id, files.json("organisation.json"))
    account_ids = _import_accounts(connection, programme_id, files.json("accounts.json"),
                                   member_ids)

    chain = _ChainLoader(connection, programme_id, code, account_ids)
    total = listed["entries"]
    for count in chain.load(files.lines("entries.jsonl")):
        if progress is not None:
            progress(code, count, total)
    if chain.frontier.size != total or chain.frontier.root().hex() != listed["root"]:
        raise ImportRefused(f"{code}: entries.jsonl holds {chain.frontier.size} entries with "
                            f"root {chain.frontier.root().hex()}, not the manifest's {total} "
                            f"with root {listed['root']}")
    connection.execute(insert(ChainHead).values(
        programme_id=programme_id, size=chain.frontier.size, head_hash=chain.prev_hash,
        frontier=chain.frontier.to_bytes(), updated_at=chain.last_recorded_at or now,
    ))
    ensure_nodes(connection, programme_id, chain.frontier.size)

    rules = files.json("rules.json")
    if rules:
        connection.execute(insert(RuleVersion), [
            {"programme_id": programme_id, "code": rule["code"], "version": rule["version"],
             "entry_seq": rule["entry_seq"],
             "definition_json": encode_plain(rule["definition"]).decode("utf-8")}
            for rule in rules
        ])
    _import_balances(connection, programme_id, files.json("balances.json"), account_ids,
                     chain.frontier.size)
    checkpoints = _import_checkpoints(connection, programme_id, files, now)
    return ImportedProgramme(code, chain.frontier.size, checkpoints, chain.frontier.root())


def _import_organisation(connection: Connection, programme_id: int,
                         organisation: dict[str, Any]) -> dict[str, int]:
    """Units (parents first), households and members; returns member code -> id."""
    units: dict[str, tuple[int, str]] = {}
    for unit in organisation["units"]:
        parent = unit["parent"]
        if parent is not None and parent not in units:
            raise ImportRefused(f"unit {unit['code']!r} comes before its parent {parent!r}")
        parent_id, parent_path = units[parent] if parent is not None else (None, "/")
        path = f"{parent_path}{unit['code']}/"
        unit_id = connection.execute(
            insert(Unit).values(programme_id=programme_id, code=unit["code"], name=unit["name"],
                                kind=unit["kind"], parent_id=parent_id, path=path)
            .returning(Unit.id)
        ).scalar_one()
        units[unit["code"]] = (unit_id, path)

    def unit_id(code: str) -> int:
        if code not in units:
            raise ImportRefused(f"organisation.json names an unknown unit {code!r}")
        return units[code][0]

    households = organisation["households"]
    if households:
        connection.execute(insert(Household), [
            {"programme_id": programme_id, "code": household["code"], "name": household["name"],
             "unit_id": unit_id(household["unit"])}
            for household in households
        ])
    household_ids = dict(connection.execute(
        select(Household.code, Household.id).where(Household.programme_id == programme_id)
    ).all())
    members = organisation["members"]
    for member in members:
        if member["household"] not in household_ids:
            raise ImportRefused(f"member {member['code']!r} names an unknown household "
                                f"{member['household']!r}")
    if members:
        connection.execute(insert(Member), [
            {"programme_id": programme_id, "code": member["code"], "name": member["name"],
             "household_id": household_ids[member["household"]],
             "unit_id": unit_id(member["unit"])}
            for member in members
        ])
    return dict(connection.execute(
        select(Member.code, Member.id).where(Member.programme_id == programme_id)
    ).all())


def _import_accounts(connection: Connection, programme_id: int, accounts: list[dict[str, Any]],
                     member_ids: dict[str, int]) -> dict[str, int]:
    for account in accounts:
        if account["member"] is not None and account["member"] not in member_ids:
            raise ImportRefused(f"account {account['code']!r} names an unknown member "
                                f"{account['member']!r}")
    if accounts:
        connection.execute(insert(Account), [
            {"programme_id": programme_id, "code": account["code"], "kind": account["kind"],
             "member_id": member_ids[account["member"]] if account["member"] else None}
            for account in accounts
        ])
    return dict(connection.execute(
        select(Account.code, Account.id).where(Account.programme_id == programme_id)
    ).all())


def _import_balances(connection: Connection, programme_id: int, balances: dict[str, Any],
                     account_ids: dict[str, int], size: int) -> None:
    """The export's balances, which the verifier recomputed from its postings."""
    stated = balances["accounts"]
    if balances["size"] != size or set(stated) != set(account_ids):
        raise ImportRefused("balances.json does not state one balance for every account at the "
                            "chain's size")
    if account_ids:
        connection.execute(insert(Balance), [
            {"account_id": account_ids[code], "programme_id": programme_id,
             "balance_points": figures["balance"], "score_points": figures["score"]}
            for code, figures in stated.items()
        ])


def _import_checkpoints(connection: Connection, programme_id: int, files: _Files,
                        now: str) -> int:
    """The published keys (public halves, retired) and the checkpoints they signed."""
    verifiers = {}
    for line in files.lines("vkeys.txt"):
        text = line.decode("utf-8")
        verifier = parse_vkey(text)
        verifiers[text] = verifier
        connection.execute(insert(CheckpointKey).values(
            programme_id=programme_id, name=verifier.name, vkey=text,
            public_key=verifier.public_key.public_bytes_raw(), secret_seed=None,
            status="retired", created_at=now, retired_at=now,
        ))
    key_ids = dict(connection.execute(
        select(CheckpointKey.vkey, CheckpointKey.id)
        .where(CheckpointKey.programme_id == programme_id)
    ).all())
    by_name_and_id = {(verifier.name, verifier.key_id): key_ids[text]
                      for text, verifier in verifiers.items()}
    count = 0
    for line in files.lines("checkpoints.jsonl"):
        note = json.loads(line)["note"]
        try:
            text, signed_by = open_note(note, list(verifiers.values()))
            checkpoint = parse_checkpoint(text)
        except NoteError as error:
            raise ImportRefused(f"a checkpoint of {files.directory.name}: {error}") from error
        connection.execute(insert(Checkpoint).values(
            programme_id=programme_id, size=checkpoint.size, root_hash=checkpoint.root,
            note=note, key_id=by_name_and_id[signed_by[0].name, signed_by[0].key_id],
            signed_at=now,
        ))
        count += 1
    return count


class _ChainLoader:
    """Inserts entries and their postings a batch at a time: postings first, as `chain` does."""

    def __init__(self, connection: Connection, programme_id: int, code: str,
                 account_ids: dict[str, int]) -> None:
        self.connection = connection
        self.programme_id = programme_id
        self.code = code
        self.account_ids = account_ids
        self.frontier = Frontier()
        self.prev_hash: bytes | None = None
        self.last_recorded_at: str | None = None

    def load(self, lines: Iterator[bytes]) -> Iterator[int]:
        """Insert every line's entry; yields the count so far after each batch."""
        entries: list[dict[str, Any]] = []
        postings: list[dict[str, Any]] = []
        for line in lines:
            self._add(line, entries, postings)
            if len(entries) == BATCH_ENTRIES:
                self._flush(entries, postings)
                yield self.frontier.size
        self._flush(entries, postings)
        yield self.frontier.size

    def _flush(self, entries: list[dict[str, Any]], postings: list[dict[str, Any]]) -> None:
        insert_rows(self.connection, PostingRow.__table__, postings)
        insert_rows(self.connection, EntryRow.__table__, entries)
        entries.clear()
        postings.clear()

    def _add(self, line: bytes, entries: list[dict[str, Any]],
             postings: list[dict[str, Any]]) -> None:
        seq = self.frontier.size
        body = json.loads(line)
        rule = body["rule"]
        entry = Entry(
            programme=body["programme"], seq=body["seq"], kind=body["kind"],
            postings=tuple(Posting(leg["account"], leg["points"]) for leg in body["postings"]),
            actor=body["actor"], occurred_at=body["occurred_at"],
            recorded_at=body["recorded_at"], evidence=body["evidence"], memo=body["memo"],
            metadata=body["metadata"], idempotency_key=body["idempotency_key"],
            reverses=body["reverses"],
            rule=RuleRef(rule["code"], rule["version"], rule["quantity"]) if rule else None,
            approver=body["approver"],
            prev_hash=bytes.fromhex(body["prev"]) if body["prev"] is not None else None,
            hash=entry_hash(line),
        )
        # What the stored columns rebuild must be this very line, linked to the one before,
        # or `jifen db verify` would fail on the imported chain.
        if (entry.programme, entry.seq, entry.prev_hash) != (self.code, seq, self.prev_hash) \
                or entry.canonical_bytes() != line:
            raise ImportRefused(f"{self.code} entry {seq}: entries.jsonl line {seq + 1} is not "
                                "the next canonical entry of this chain")
        metadata_json = encode_plain(entry.metadata).decode("utf-8")
        legs = [[posting.account, posting.points] for posting in entry.postings]
        request = [entry.kind, legs, entry.actor, entry.occurred_at, entry.evidence, entry.memo,
                   metadata_json, entry.reverses, rule, entry.approver]
        entries.append({
            "programme_id": self.programme_id, "seq": seq, "kind": entry.kind,
            "actor": entry.actor, "occurred_at": entry.occurred_at,
            "recorded_at": entry.recorded_at, "evidence": entry.evidence, "memo": entry.memo,
            "metadata_json": metadata_json, "idempotency_key": entry.idempotency_key,
            "content_digest": hashlib.sha256(
                _REQUEST_ENCODER.encode(request).encode("utf-8")).digest(),
            "reverses_seq": entry.reverses,
            "rule_code": rule["code"] if rule else None,
            "rule_version": rule["version"] if rule else None,
            "rule_quantity": rule["quantity"] if rule else None,
            "approver": entry.approver, "prev_hash": entry.prev_hash, "hash": entry.hash,
        })
        for position, posting in enumerate(entry.postings):
            if posting.account not in self.account_ids:
                raise ImportRefused(f"{self.code} entry {seq}: unknown account "
                                    f"{posting.account!r}")
            postings.append({
                "programme_id": self.programme_id, "entry_seq": seq, "position": position,
                "account_id": self.account_ids[posting.account], "amount_points": posting.points,
            })
        self.frontier.append(entry.hash)
        self.prev_hash = entry.hash
        self.last_recorded_at = entry.recorded_at
