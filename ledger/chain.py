"""Appending entries to a programme's hash chain: the only way anything is written.

`append` posts one entry, `append_batch` many in one transaction, `reverse`
posts the entry that undoes another. All three go through `_post`, which:

1. validates every draft and canonicalises what it can *before* taking the
   lock (the lock window bounds the chain's write rate);
2. locks the chain head in the database (`SELECT … FOR UPDATE` on
   PostgreSQL, `BEGIN IMMEDIATE` on SQLite; never a Python lock: gunicorn
   runs several processes);
3. settles idempotency keys (same key and content: the original entry comes
   back and nothing is posted; same key, other content: `IdempotencyConflict`);
4. lets the caller's guard check rules and balances, inside the lock;
5. assigns `seq`, `prev` and `recorded_at`, builds the canonical bytes and
   leaf hashes, extends the Merkle frontier;
6. inserts postings then entries (the database refuses an entry whose
   postings do not sum to zero), updates balances and the head, commits.

A batch is all or nothing: if any draft is refused, nothing is written.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.engine import Connection, Engine

from ledger import errors
from ledger.accounts import AccountRef, resolve_accounts
from ledger.canonical import CanonicalError, check_plain_json, encode_plain
from ledger.entry_format import FORMAT_VERSION, entry_bytes, entry_hash, format_timestamp
from ledger.merkle import Frontier
from ledger.models import Account, Balance, ChainHead
from ledger.models import Entry as EntryRow
from ledger.models import Posting as PostingRow
from ledger.programmes import ProgrammeInfo, get_programme
from ledger.storage import insert_rows, read_transaction, write_transaction

MAX_POINTS = 2**53 - 1
"""Largest |amount|: canonical JSON numbers stay exact in every JSON parser."""
MAX_POSTINGS_PER_ENTRY = 64
MAX_BATCH_ENTRIES = 50_000
MAX_ACTOR_CHARS = 200
MAX_MEMO_CHARS = 2_000
MAX_EVIDENCE_CHARS = 256
MAX_IDEMPOTENCY_KEY_CHARS = 200
MAX_METADATA_BYTES = 16_384
MAX_CLOCK_SKEW = timedelta(minutes=5)
"""How far in the future `occurred_at` may be, to allow for unsynchronised clocks."""

RESERVED_KEY_PREFIXES = ("claim:", "rule:", "expiry:", "voucher-", "settlement:")
"""Idempotency keys the ledger's own services use; a client may not send them, or a
client's entry could take the key a later claim, rule change or expiry needs."""

KINDS = frozenset(
    {
        "award",
        "deduction",
        "reversal",
        "voucher_issue",
        "voucher_redeem",
        "voucher_cancel",
        "voucher_expire",
        "settlement",
        "expiry",
        "admin",
    }
)
SCORE_KINDS = frozenset({"award", "deduction"})
"""Kinds whose postings on member accounts also move the member's score."""
POSTING_FREE_KINDS = frozenset({"admin"})
"""Kinds that record a fact (a rule or key change) and move no points."""
NOT_REVERSIBLE_KINDS = frozenset(
    {"reversal", "admin", "voucher_issue", "voucher_redeem", "voucher_cancel", "voucher_expire",
     "settlement"}
)
"""Reversals and admin facts stand; voucher and settlement entries are undone only by their
own services (cancel, expiry), which keep the voucher's state in step with the chain."""

_FORMAT_VERSION = str(FORMAT_VERSION).encode("ascii")
_REQUEST_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))

# Statements of the append path, built once: SQLAlchemy then reuses their compiled SQL
# without rebuilding a cache key on every append.
_LOCK_HEAD = (
    select(ChainHead.size, ChainHead.head_hash, ChainHead.frontier)
    .where(ChainHead.programme_id == bindparam("programme_id"))
    .with_for_update()
)
_FIND_KEYS = select(EntryRow.idempotency_key, EntryRow.seq, EntryRow.content_digest).where(
    EntryRow.programme_id == bindparam("programme_id"),
    EntryRow.idempotency_key.in_(bindparam("keys", expanding=True)),
)
_MOVE_BALANCE = (
    update(Balance)
    .where(Balance.account_id == bindparam("account"))
    .values(
        balance_points=Balance.balance_points + bindparam("balance_delta"),
        score_points=Balance.score_points + bindparam("score_delta"),
    )
)
_MOVE_HEAD = (
    update(ChainHead)
    .where(ChainHead.programme_id == bindparam("programme"),
           ChainHead.size == bindparam("old_size"))
    .values(size=bindparam("new_size"), head_hash=bindparam("new_hash"),
            frontier=bindparam("new_frontier"), updated_at=bindparam("now"))
)


@dataclass(frozen=True)
class Posting:
    """One leg of an entry: `points` added to `account` (negative takes away)."""

    account: str
    points: int


@dataclass(frozen=True)
class RuleRef:
    """The scoring rule version an award or deduction was made under."""

    code: str
    version: int
    quantity: int | None = None
    """For per-unit rules, how many units (e.g. minutes of volunteering)."""

    def as_json(self) -> dict[str, Any]:
        return {"code": self.code, "quantity": self.quantity, "version": self.version}


@dataclass(frozen=True)
class Draft:
    """An entry as a caller proposes it; `occurred_at` None means "now"."""

    kind: str
    postings: Sequence[Posting]
    actor: str
    occurred_at: datetime | None = None
    evidence: str | None = None
    memo: str = ""
    metadata: Mapping[str, Any] | None = None
    idempotency_key: str | None = None
    rule: RuleRef | None = None
    approver: str | None = None
    """Who approved a claim, for entries that needed a second person."""


@dataclass(frozen=True)
class Entry:
    """An entry as recorded in the chain."""

    programme: str
    seq: int
    kind: str
    postings: tuple[Posting, ...]
    actor: str
    occurred_at: str
    recorded_at: str
    evidence: str | None
    memo: str
    metadata: dict[str, Any]
    idempotency_key: str | None
    reverses: int | None
    rule: RuleRef | None
    approver: str | None
    prev_hash: bytes | None
    hash: bytes

    def canonical_bytes(self) -> bytes:
        """The RFC 8785 bytes that are hashed (docs/FORMAT.md); `hash` is not among them."""
        return entry_bytes(
            programme=self.programme,
            seq=self.seq,
            prev_hash=self.prev_hash,
            kind=self.kind,
            postings=[(posting.account, posting.points) for posting in self.postings],
            actor=self.actor,
            occurred_at=self.occurred_at,
            recorded_at=self.recorded_at,
            evidence=self.evidence,
            memo=self.memo,
            metadata=self.metadata,
            idempotency_key=self.idempotency_key,
            reverses=self.reverses,
            rule=self.rule.as_json() if self.rule else None,
            approver=self.approver,
        )


@dataclass(frozen=True)
class Appended:
    """The outcome of posting one draft: `created` is False for an idempotent replay."""

    entry: Entry
    created: bool


@dataclass(frozen=True)
class Head:
    """A chain's tip: `size` entries, the last one's hash, and the Merkle root."""

    programme: str
    size: int
    head_hash: bytes | None
    root: bytes


Guard = Callable[[Connection, ProgrammeInfo, Sequence["Prepared"]], Collection[int] | None]
"""Called inside the lock with the drafts about to be posted (replays excluded).

It raises to refuse the whole transaction, or returns the positions (in the
sequence it was given) of drafts to leave out: those come back as None."""

AfterWrite = Callable[[Connection, ProgrammeInfo, Sequence[Entry]], None]
"""Called inside the lock, in the same transaction, with the entries just written
(not replays): where a caller records state that must commit with them."""


@dataclass
class Prepared:
    """A validated draft, canonicalised except for `seq`, `prev` and `recorded_at`."""

    draft: Draft
    occurred_at: str
    """As hashed: the draft's, or the moment it was prepared when it gave none."""
    metadata: dict[str, Any]
    metadata_json: str
    content_digest: bytes
    body_head: bytes
    body_tail: bytes
    reverses: int | None = None
    reversed_kind: str | None = None
    accounts: list[AccountRef] = field(default_factory=list)

    @property
    def moves_score(self) -> bool:
        return self.draft.kind in SCORE_KINDS or self.reversed_kind in SCORE_KINDS


def append(
    engine: Engine,
    programme: str,
    *,
    kind: str,
    postings: Sequence[Posting],
    actor: str,
    occurred_at: datetime | None = None,
    evidence: str | None = None,
    memo: str = "",
    metadata: Mapping[str, Any] | None = None,
    idempotency_key: str | None = None,
    rule: RuleRef | None = None,
    approver: str | None = None,
    guard: Guard | None = None,
    after_write: AfterWrite | None = None,
) -> Appended:
    """Post one entry to `programme`'s chain and return it.

    Raises `UnknownProgramme`, `UnknownAccount`, `InvalidEntry` (and its
    kinds `InvalidAmount`, `UnbalancedPostings`, `UnknownKind`) when the draft
    is wrong, `IdempotencyConflict` when the key was used for other content,
    `StorageBusy` when the database stayed locked, and whatever `guard`
    raises. Nothing is written when anything is raised.
    """
    draft = Draft(kind, postings, actor, occurred_at, evidence, memo, metadata, idempotency_key,
                  rule, approver)
    appended = append_batch(engine, programme, [draft], guard=guard, after_write=after_write)[0]
    if appended is None:
        raise errors.LedgerError("the guard left out the only draft; it must raise instead")
    return appended


def append_batch(
    engine: Engine,
    programme: str,
    drafts: Sequence[Draft],
    *,
    guard: Guard | None = None,
    after_write: AfterWrite | None = None,
) -> list[Appended | None]:
    """Post many entries in one transaction, in order; all or nothing.

    Results are in the order of `drafts`; a draft the guard left out gives
    None. Raises as `append` does, for the first draft that is wrong (its
    position is `details['index']`); `InvalidEntry` for more than
    `MAX_BATCH_ENTRIES` drafts or a key given twice for the same content;
    `IdempotencyConflict` for a key given twice for different content.
    """
    if len(drafts) > MAX_BATCH_ENTRIES:
        raise errors.InvalidEntry(
            f"a batch holds at most {MAX_BATCH_ENTRIES} entries, not {len(drafts)}", field="drafts"
        )
    now = datetime.now(UTC)
    prepared = [_prepare(draft, now, index) for index, draft in enumerate(drafts)]
    return _post(engine, programme, prepared, guard, after_write)


def reverse(
    engine: Engine,
    programme: str,
    seq: int,
    *,
    actor: str,
    memo: str,
    occurred_at: datetime | None = None,
    idempotency_key: str | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Appended:
    """Post the entry that undoes entry `seq`: the same postings, negated.

    The reversal names what it reverses (`reverses`), and an entry can be
    reversed once. Raises `UnknownEntry`, `NotReversible` (a reversal or an
    admin entry), `AlreadyReversed`, `IdempotencyConflict`, `InvalidEntry`
    (also for a reserved idempotency key).
    """
    check_client_key(idempotency_key)
    original = get_entry(engine, programme, seq)
    if original.kind in NOT_REVERSIBLE_KINDS:
        raise errors.NotReversible(
            f"entry {seq} is a {original.kind} entry and cannot be reversed", seq=seq
        )
    draft = Draft(
        kind="reversal",
        postings=[Posting(posting.account, -posting.points) for posting in original.postings],
        actor=actor,
        occurred_at=occurred_at,
        memo=memo,
        metadata=metadata,
        idempotency_key=idempotency_key,
    )
    prepared = _prepare(draft, datetime.now(UTC), 0, reverses=seq, reversed_kind=original.kind)
    return _post(engine, programme, [prepared], _refuse_second_reversal, None)[0]


def check_client_key(key: str | None) -> None:
    """Refuse a client's idempotency key that a ledger service reserves (`InvalidEntry`)."""
    if isinstance(key, str) and key.startswith(RESERVED_KEY_PREFIXES):
        raise errors.InvalidEntry(
            f"idempotency keys starting with {', '.join(RESERVED_KEY_PREFIXES)} are reserved "
            "for the ledger's own use",
            field="idempotency_key",
        )


def head(engine: Engine, programme: str) -> Head:
    """The chain's size, last hash and Merkle root; takes no lock."""
    with read_transaction(engine) as connection:
        programme_info = get_programme(connection, programme)
        row = connection.execute(
            select(ChainHead.size, ChainHead.head_hash, ChainHead.frontier).where(
                ChainHead.programme_id == programme_info.id
            )
        ).one()
    frontier = Frontier.from_bytes(row.size, row.frontier)
    return Head(programme, row.size, row.head_hash, frontier.root())


def get_entry(engine: Engine, programme: str, seq: int) -> Entry:
    """The entry at `seq`; raises `UnknownEntry`."""
    with read_transaction(engine) as connection:
        programme_info = get_programme(connection, programme)
        found = load_entries(connection, programme_info, [seq])
    if not found:
        raise errors.UnknownEntry(f"programme {programme!r} has no entry {seq}", seq=seq)
    return found[seq]


def reversal_of(engine: Engine, programme: str, seq: int) -> int | None:
    """The `seq` of the entry that reversed entry `seq`, or None while it stands."""
    with read_transaction(engine) as connection:
        programme_info = get_programme(connection, programme)
        return connection.execute(
            select(EntryRow.seq).where(EntryRow.programme_id == programme_info.id,
                                       EntryRow.reverses_seq == seq)
        ).scalar_one_or_none()


def entries_by_key(engine: Engine, programme: str, keys: Sequence[str]) -> dict[str, int]:
    """Idempotency key -> `seq`, for those of `keys` that some entry was posted under: what
    posting them again would replay rather than post."""
    found: dict[str, int] = {}
    wanted = list(dict.fromkeys(keys))
    with read_transaction(engine) as connection:
        programme_info = get_programme(connection, programme)
        for start in range(0, len(wanted), 500):
            rows = connection.execute(
                _FIND_KEYS, {"programme_id": programme_info.id, "keys": wanted[start:start + 500]})
            found.update({key: seq for key, seq, _digest in rows})
    return found


def load_entries(
    connection: Connection, programme: ProgrammeInfo, seqs: Iterable[int]
) -> dict[int, Entry]:
    """Entries by `seq`, with their postings, as stored."""
    wanted = sorted(set(seqs))
    if not wanted:
        return {}
    entries_table = EntryRow.__table__
    rows = connection.execute(
        select(entries_table)
        .where(entries_table.c.programme_id == programme.id, entries_table.c.seq.in_(wanted))
        .order_by(entries_table.c.seq)
    ).all()
    postings: dict[int, list[Posting]] = {}
    posting_rows = connection.execute(
        select(PostingRow.entry_seq, Account.code, PostingRow.amount_points)
        .join(Account, Account.id == PostingRow.account_id)
        .where(PostingRow.programme_id == programme.id, PostingRow.entry_seq.in_(wanted))
        .order_by(PostingRow.entry_seq, PostingRow.position)
    )
    for entry_seq, account, points in posting_rows:
        postings.setdefault(entry_seq, []).append(Posting(account, points))
    return {
        row.seq: entry_from_row(programme.code, row, tuple(postings.get(row.seq, ())))
        for row in rows
    }


def entry_from_row(programme: str, row: Any, postings: tuple[Posting, ...]) -> Entry:
    """An entry from its stored columns (an `entries` row) and its postings, in order."""
    return Entry(
        programme=programme,
        seq=row.seq,
        kind=row.kind,
        postings=postings,
        actor=row.actor,
        occurred_at=row.occurred_at,
        recorded_at=row.recorded_at,
        evidence=row.evidence,
        memo=row.memo,
        metadata=json.loads(row.metadata_json),
        idempotency_key=row.idempotency_key,
        reverses=row.reverses_seq,
        rule=(
            RuleRef(row.rule_code, row.rule_version, row.rule_quantity)
            if row.rule_code is not None
            else None
        ),
        approver=row.approver,
        prev_hash=row.prev_hash,
        hash=row.hash,
    )


# -- validation, before the lock ---------------------------------------------------------


def _prepare(
    draft: Draft,
    now: datetime,
    index: int,
    reverses: int | None = None,
    reversed_kind: str | None = None,
) -> Prepared:
    """Check every field of `draft`; canonicalise what does not depend on the chain."""
    where = {"index": index} if index else {}
    if draft.kind not in KINDS:
        raise errors.UnknownKind(
            f"unknown entry kind {draft.kind!r}; known kinds: {', '.join(sorted(KINDS))}",
            field="kind",
            **where,
        )
    if draft.kind == "reversal" and reverses is None:
        raise errors.InvalidEntry(
            "post reversals with reverse(), which names the entry reversed", field="kind", **where
        )
    _check_postings(draft, where)
    _check_text(draft.actor, "actor", MAX_ACTOR_CHARS, where, required=True)
    _check_text(draft.memo, "memo", MAX_MEMO_CHARS, where)
    if draft.evidence is not None:
        _check_text(draft.evidence, "evidence", MAX_EVIDENCE_CHARS, where, required=True)
    if draft.idempotency_key is not None:
        key = draft.idempotency_key
        if not isinstance(key, str) or not key or len(key) > MAX_IDEMPOTENCY_KEY_CHARS or not (
            key.isascii() and key.isprintable()
        ):
            raise errors.InvalidEntry(
                f"idempotency_key must be 1-{MAX_IDEMPOTENCY_KEY_CHARS} printable ASCII characters",
                field="idempotency_key",
                **where,
            )
    if draft.approver is not None:
        _check_text(draft.approver, "approver", MAX_ACTOR_CHARS, where, required=True)
        if draft.approver == draft.actor:
            raise errors.InvalidEntry("the approver must be another person than the actor",
                                      field="approver", **where)
    if draft.rule is not None:
        rule = draft.rule
        if not (isinstance(rule, RuleRef) and isinstance(rule.code, str) and rule.code
                and type(rule.version) is int and rule.version >= 1
                and (rule.quantity is None
                     or (type(rule.quantity) is int and 0 < rule.quantity <= MAX_POINTS))):
            raise errors.InvalidEntry(
                "rule must name a rule code, a version >= 1 and an optional positive quantity",
                field="rule", **where,
            )
    requested_at = None
    if draft.occurred_at is not None:
        if not isinstance(draft.occurred_at, datetime) or draft.occurred_at.utcoffset() is None:
            raise errors.InvalidEntry(
                "occurred_at must be a date and time with a time zone", field="occurred_at", **where
            )
        if draft.occurred_at > now + MAX_CLOCK_SKEW:
            raise errors.InvalidEntry(
                f"occurred_at {draft.occurred_at.isoformat()} is in the future",
                field="occurred_at",
                **where,
            )
        requested_at = format_timestamp(draft.occurred_at)
    metadata = dict(draft.metadata or {})
    try:
        check_plain_json(metadata, "metadata")
    except CanonicalError as error:
        raise errors.InvalidEntry(str(error), field="metadata", **where) from error
    metadata_json = encode_plain(metadata).decode("utf-8")
    if len(metadata_json.encode("utf-8")) > MAX_METADATA_BYTES:
        raise errors.InvalidEntry(
            f"metadata is larger than {MAX_METADATA_BYTES} bytes", field="metadata", **where
        )
    postings = [[posting.account, posting.points] for posting in draft.postings]
    rule = draft.rule.as_json() if draft.rule else None
    # What the client asked for, to tell a retry from a conflicting reuse of its key:
    # positional, so one short encoding does (the hashed body is encoded separately).
    request = [draft.kind, postings, draft.actor, requested_at, draft.evidence, draft.memo,
               metadata_json, reverses, rule, draft.approver]
    content_digest = hashlib.sha256(_REQUEST_ENCODER.encode(request).encode("utf-8")).digest()
    occurred_at = requested_at or format_timestamp(now)
    # The hashed body sorts its keys; those before "prev" do not depend on the chain, so
    # they are encoded here, outside the lock (see `_canonical_bytes`).
    body_head = encode_plain({
        "actor": draft.actor, "approver": draft.approver, "evidence": draft.evidence,
        "idempotency_key": draft.idempotency_key, "kind": draft.kind, "memo": draft.memo,
        "metadata": metadata, "occurred_at": occurred_at,
        "postings": [{"account": account, "points": points} for account, points in postings],
    })[:-1]
    body_tail = (b',"reverses":' + (b"null" if reverses is None else str(reverses).encode())
                 + b',"rule":' + (b"null" if rule is None else encode_plain(rule)))
    return Prepared(draft, occurred_at, metadata, metadata_json, content_digest, body_head,
                    body_tail, reverses, reversed_kind)


def _check_postings(draft: Draft, where: dict[str, int]) -> None:
    postings = list(draft.postings)
    if not postings and draft.kind in POSTING_FREE_KINDS:
        return
    if len(postings) < 2:
        raise errors.UnbalancedPostings(
            f"a {draft.kind} entry needs at least two postings, not {len(postings)}",
            field="postings",
            **where,
        )
    if len(postings) > MAX_POSTINGS_PER_ENTRY:
        raise errors.InvalidEntry(
            f"an entry holds at most {MAX_POSTINGS_PER_ENTRY} postings", field="postings", **where
        )
    seen: set[str] = set()
    for position, posting in enumerate(postings):
        path = f"postings[{position}]"
        if not isinstance(posting, Posting):
            raise errors.InvalidEntry(f"{path} is not a Posting", field=path, **where)
        if not isinstance(posting.account, str) or not posting.account:
            raise errors.InvalidEntry(f"{path}.account must be an account code", field=path,
                                      **where)
        if posting.account in seen:
            raise errors.InvalidEntry(
                f"{path}: account {posting.account!r} appears twice in one entry",
                field=f"{path}.account",
                **where,
            )
        seen.add(posting.account)
        points = posting.points
        if type(points) is not int:
            raise errors.InvalidAmount(
                f"{path}.points must be an integer number of points, not {points!r}",
                field=f"{path}.points",
                **where,
            )
        if points == 0 or abs(points) > MAX_POINTS:
            raise errors.InvalidAmount(
                f"{path}.points must be non-zero with |points| <= {MAX_POINTS}, not {points}",
                field=f"{path}.points",
                **where,
            )
    total = sum(posting.points for posting in postings)
    if total != 0:
        raise errors.UnbalancedPostings(
            f"postings must sum to zero; these sum to {total}", field="postings", total=total,
            **where
        )


def _check_text(
    value: Any, name: str, max_chars: int, where: dict[str, int], required: bool = False
) -> None:
    if not isinstance(value, str):
        raise errors.InvalidEntry(f"{name} must be text", field=name, **where)
    if required and not value.strip():
        raise errors.InvalidEntry(f"{name} must not be empty", field=name, **where)
    if len(value) > max_chars:
        raise errors.InvalidEntry(f"{name} is longer than {max_chars} characters", field=name,
                                  **where)
    if "\x00" in value:
        raise errors.InvalidEntry(f"{name} must not contain the NUL character", field=name,
                                  **where)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        raise errors.InvalidEntry(f"{name} is not valid Unicode text", field=name,
                                  **where) from error


# -- posting, inside the lock ------------------------------------------------------------


def _post(
    engine: Engine,
    programme_code: str,
    prepared: list[Prepared],
    guard: Guard | None,
    after_write: AfterWrite | None,
) -> list[Appended | None]:
    if not prepared:
        return []
    with write_transaction(engine) as connection:
        programme = get_programme(connection, programme_code)
        accounts = resolve_accounts(
            connection,
            programme.id,
            (posting.account for item in prepared for posting in item.draft.postings),
        )
        for item in prepared:
            item.accounts = [accounts[posting.account] for posting in item.draft.postings]

        head_row = connection.execute(_LOCK_HEAD, {"programme_id": programme.id}).one()

        replays = _settle_idempotency(connection, programme, prepared)
        fresh_indexes = [index for index in range(len(prepared)) if index not in replays]
        if guard is not None and fresh_indexes:
            left_out = guard(connection, programme, [prepared[i] for i in fresh_indexes]) or ()
            fresh_indexes = [
                index for position, index in enumerate(fresh_indexes) if position not in left_out
            ]
        created = _write(connection, programme, head_row, [prepared[i] for i in fresh_indexes])
        if after_write is not None and created:
            after_write(connection, programme, created)
    results: list[Appended | None] = [None] * len(prepared)
    for index, entry in replays.items():
        results[index] = Appended(entry, created=False)
    for index, entry in zip(fresh_indexes, created, strict=True):
        results[index] = Appended(entry, created=True)
    return results


def _settle_idempotency(
    connection: Connection, programme: ProgrammeInfo, prepared: list[Prepared]
) -> dict[int, Entry]:
    """Map draft index -> original entry for drafts whose key was used before.

    Raises `IdempotencyConflict` when a key comes back with other content, in
    the chain or twice within the batch.
    """
    by_key: dict[str, int] = {}
    for index, item in enumerate(prepared):
        key = item.draft.idempotency_key
        if key is None:
            continue
        if key in by_key and prepared[by_key[key]].content_digest != item.content_digest:
            raise errors.IdempotencyConflict(
                f"idempotency key {key!r} is used twice in this batch for different entries",
                idempotency_key=key,
            )
        by_key.setdefault(key, index)
    if not by_key:
        return {}
    found: dict[str, tuple[int, bytes]] = {}
    keys = list(by_key)
    for start in range(0, len(keys), 500):
        rows = connection.execute(
            _FIND_KEYS, {"programme_id": programme.id, "keys": keys[start : start + 500]}
        )
        for key, seq, digest in rows:
            found[key] = (seq, digest)
    replays: dict[int, int] = {}
    for index, item in enumerate(prepared):
        key = item.draft.idempotency_key
        if key is None:
            continue
        if key in found:
            seq, digest = found[key]
            if digest != item.content_digest:
                raise errors.IdempotencyConflict(
                    f"idempotency key {key!r} was used for entry {seq} with different content",
                    idempotency_key=key,
                    seq=seq,
                )
            replays[index] = seq
        elif by_key[key] != index:
            raise errors.InvalidEntry(
                f"idempotency key {key!r} appears twice in this batch", field="idempotency_key",
                index=index,
            )
    originals = load_entries(connection, programme, replays.values())
    return {index: originals[seq] for index, seq in replays.items()}


def _refuse_second_reversal(
    connection: Connection, programme: ProgrammeInfo, prepared: Sequence[Prepared]
) -> None:
    for item in prepared:
        reversed_by = connection.execute(
            select(EntryRow.seq).where(
                EntryRow.programme_id == programme.id, EntryRow.reverses_seq == item.reverses
            )
        ).scalar_one_or_none()
        if reversed_by is not None:
            raise errors.AlreadyReversed(
                f"entry {item.reverses} was already reversed by entry {reversed_by}",
                seq=item.reverses,
                reversed_by=reversed_by,
            )


def _canonical_bytes(item: Prepared, seq: int, prev_hash: bytes | None, programme_part: bytes,
                     recorded_part: bytes) -> bytes:
    """The entry's RFC 8785 bytes, spliced from parts encoded ahead of time.

    Equal, byte for byte, to `Entry.canonical_bytes()` (which encodes the whole
    body as a dict, and which verification uses): keys in sorted order are
    the head (actor … postings), then prev, programme, recorded_at, the tail
    (reverses, rule), seq and v. Every test that verifies a chain checks it.
    """
    prev = b"null" if prev_hash is None else b'"' + prev_hash.hex().encode("ascii") + b'"'
    return b"".join((item.body_head, b',"prev":', prev, programme_part, recorded_part,
                     item.body_tail, b',"seq":', str(seq).encode("ascii"),
                     b',"v":', _FORMAT_VERSION, b"}"))


def _write(
    connection: Connection, programme: ProgrammeInfo, head_row: Any, fresh: list[Prepared]
) -> list[Entry]:
    if not fresh:
        return []
    recorded_at = format_timestamp(datetime.now(UTC))
    programme_part = b',"programme":' + encode_plain(programme.code)
    recorded_part = b',"recorded_at":"' + recorded_at.encode("ascii") + b'"'
    frontier = Frontier.from_bytes(head_row.size, head_row.frontier)
    prev_hash = head_row.head_hash
    seq = head_row.size
    entries: list[Entry] = []
    entry_rows: list[dict[str, Any]] = []
    posting_rows: list[dict[str, Any]] = []
    deltas: dict[int, list[int]] = {}
    for item in fresh:
        draft = item.draft
        postings = tuple(draft.postings)
        occurred_at = item.occurred_at
        leaf = entry_hash(_canonical_bytes(item, seq, prev_hash, programme_part, recorded_part))
        entries.append(
            Entry(programme.code, seq, draft.kind, postings, draft.actor, occurred_at,
                  recorded_at, draft.evidence, draft.memo, item.metadata,
                  draft.idempotency_key, item.reverses, draft.rule, draft.approver, prev_hash,
                  leaf)
        )
        frontier.append(leaf)
        entry_rows.append(
            {
                "programme_id": programme.id,
                "seq": seq,
                "kind": draft.kind,
                "actor": draft.actor,
                "occurred_at": occurred_at,
                "recorded_at": recorded_at,
                "evidence": draft.evidence,
                "memo": draft.memo,
                "metadata_json": item.metadata_json,
                "idempotency_key": draft.idempotency_key,
                "content_digest": item.content_digest,
                "reverses_seq": item.reverses,
                "rule_code": draft.rule.code if draft.rule else None,
                "rule_version": draft.rule.version if draft.rule else None,
                "rule_quantity": draft.rule.quantity if draft.rule else None,
                "approver": draft.approver,
                "prev_hash": prev_hash,
                "hash": leaf,
            }
        )
        moves_score = item.moves_score
        for position, (posting, account) in enumerate(zip(postings, item.accounts, strict=True)):
            posting_rows.append(
                {
                    "programme_id": programme.id,
                    "entry_seq": seq,
                    "position": position,
                    "account_id": account.id,
                    "amount_points": posting.points,
                }
            )
            delta = deltas.setdefault(account.id, [0, 0])
            delta[0] += posting.points
            if moves_score and account.kind == "member":
                delta[1] += posting.points
        prev_hash = leaf
        seq += 1

    if posting_rows:
        insert_rows(connection, PostingRow.__table__, posting_rows)
    insert_rows(connection, EntryRow.__table__, entry_rows)
    if deltas:
        connection.execute(
            _MOVE_BALANCE,
            [
                {"account": account_id, "balance_delta": delta[0], "score_delta": delta[1]}
                for account_id, delta in deltas.items()
            ],
        )
    moved = connection.execute(
        _MOVE_HEAD,
        {"programme": programme.id, "old_size": head_row.size, "new_size": seq,
         "new_hash": prev_hash, "new_frontier": frontier.to_bytes(), "now": recorded_at},
    ).rowcount
    if moved != 1:
        raise errors.IntegrityViolation(
            f"the head of {programme.code!r} moved while locked; nothing was written"
        )
    return entries

