"""Lots and expiry: which awarded points are still spendable, and when they lapse.

Where a programme's points expire, every award is a *lot*: its points, what
is left of them and when they expire. Lots are never stored: they are
replayed from a member's postings in chain order, so, like balances, they
always recompute from entries. The replay's rules are the whole definition:

- **Policy.** `never`, `months:N` or `years:N`, set by `set_expiry_policy`,
  which records an admin entry and updates `programmes.expiry_policy` in the
  same transaction. A lot's expiry follows the policy in force when the lot
  was recorded: the latest policy entry before it in the chain (`never`
  before any). A policy change is not retroactive: lots already recorded
  keep the expiry they had.
- **`months:N`:** at 00:00, programme time zone, on the day N months after
  the award's local date (its `occurred_at`); a day the month lacks becomes
  its last day (31 January + 1 month = 28 or 29 February). **`years:N`:** at
  00:00 on 1 January of the award's local year + N, the end of the Nth
  calendar year counting the award's own. Expiry moments are always local
  midnights, so "as of a date" means as of its first moment.
- **Credits.** A credit from an `award` entry is a lot. A reversal gives its
  points back to the lots the reversed entry drew (the last drawn first).
  What cannot go back that way, points given back by reversing an *expiry*
  (the point of reversing an expiry is that they should not lapse again at
  once) and any other credit become a new lot of that entry, with the expiry
  the policy then in force gives its `occurred_at`.
- **Debits.** Any debit (voucher issue, deduction, expiry, reversal of an
  award) draws the lots with points left, soonest-expiring first, ties by
  seq, never-expiring last; the reversal of an award draws that award's own
  lot first. A lot past its expiry is still drawn: points stay spendable
  until an expiry entry takes them, because the balance, not the calendar,
  is what a shop relies on. Run `jifen expire` daily to keep that gap short.
- **Debt.** What no lot covers is debt (a deduction may take the balance
  below zero); any credit pays off debt before it fills a lot. So after
  every entry, remaining points minus debt equals the member's balance, and
  a member in debt has nothing left to expire.

`expire` posts one `expiry` entry per member with expired points left
(member −total, `expired` +total; metadata names the lots and points), dated
when the last of those lots expired. It is idempotent by construction: the
replay sees that an earlier expiry entry already drew those lots, so a rerun
with the same `as_of` posts nothing and a later `as_of` posts only what
expired since. The idempotency key (member, the member's last posting seq,
part, as_of) makes two runs racing from the same state post once.

Concurrency. The replay of every member runs outside the chain lock (a scan
of every posting must not stall awards). An award or spend can land between
that read and the post, and the expiry would then take the wrong lots' points.
So the guard of each batch, inside the lock, compares every member's latest
posting seq with the one the replay saw and leaves out the members that
moved; `expire` replays just those members again and retries, at most
`MAX_ATTEMPTS` times. Comparing seqs is enough: a member's lots depend only
on the member's postings and the policy entries before them, and the chain
is append-only.

The lots an expiry entry names (and those a voucher issue names, from
`draw_lots`) are a record of what the rules above drew; the replay never
reads them. They agree with it when computed inside the chain lock.
"""

from __future__ import annotations

import calendar
import heapq
import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, update
from sqlalchemy.engine import Connection, Engine

from ledger import errors
from ledger.accounts import EXPIRED, member_account
from ledger.chain import Draft, Entry, Posting, Prepared, append_batch
from ledger.entry_format import format_timestamp, parse_timestamp
from ledger.models import Account, Programme
from ledger.models import Entry as EntryRow
from ledger.models import Posting as PostingRow
from ledger.programmes import ProgrammeInfo, get_programme
from ledger.storage import read_transaction

POLICY_EVENT = "expiry_policy"
"""`metadata["event"]` of the admin entry that records a policy change."""
MAX_MONTHS = 1_200
MAX_YEARS = 100
MAX_LOTS_PER_ENTRY = 500
"""An expiry entry names its lots in metadata; more lots make several entries."""
EXPIRY_BATCH_ENTRIES = 1_000
"""Expiry entries posted per transaction: each batch holds the chain lock once."""
MAX_ATTEMPTS = 5
"""How many times `expire` replays members that moved under it before giving up."""
DEFAULT_ACTOR = "system:expiry"
MEMBER_PREFIX = member_account("")

_POLICY_PATTERN = re.compile(r"^(months|years):([1-9][0-9]{0,3})$")


class InvalidExpiryPolicy(errors.LedgerError):
    """The policy text is not `never`, `months:N` or `years:N` within the limits."""

    code = "invalid_expiry_policy"


class ExpiryRaced(errors.LedgerError):
    """Members kept receiving entries while `expire` ran; what posted stays, rerun it."""

    code = "expiry_raced"


@dataclass(frozen=True)
class ExpiryPolicy:
    """When a programme's lots expire: `unit` is "never", "months" or "years"."""

    unit: str
    count: int = 0

    def __str__(self) -> str:
        return "never" if self.unit == "never" else f"{self.unit}:{self.count}"

    def expires_at(self, awarded_at: datetime, zone: ZoneInfo) -> datetime | None:
        """When a lot awarded at `awarded_at` expires (a local midnight, in UTC), or None."""
        if self.unit == "never":
            return None
        awarded_on = awarded_at.astimezone(zone).date()
        if self.unit == "months":
            months_since_year_zero = awarded_on.year * 12 + awarded_on.month - 1 + self.count
            year, month_index = divmod(months_since_year_zero, 12)
            month = month_index + 1
            day = min(awarded_on.day, calendar.monthrange(year, month)[1])
            expiry_day = date(year, month, day)
        else:
            expiry_day = date(awarded_on.year + self.count, 1, 1)
        return datetime.combine(expiry_day, time(), zone).astimezone(UTC)


NEVER = ExpiryPolicy("never")


@dataclass(frozen=True)
class Lot:
    """Points one entry credited: `remaining` of `points` are left to spend or expire."""

    seq: int
    points: int
    remaining: int
    expires_at: datetime | None


def parse_expiry_policy(text: Any) -> ExpiryPolicy:
    """The policy `text` names; raises `InvalidExpiryPolicy`.

    Only the canonical spelling is accepted (no spaces, capitals or leading
    zeros), so the text stored and hashed is the one that was validated.
    """
    if text == "never":
        return NEVER
    match = _POLICY_PATTERN.match(text) if isinstance(text, str) else None
    if match is None:
        raise InvalidExpiryPolicy(
            f"expiry policy {text!r} must be 'never', 'months:N' (1-{MAX_MONTHS}) or "
            f"'years:N' (1-{MAX_YEARS})",
            policy=text,
        )
    unit, count = match.group(1), int(match.group(2))
    limit = MAX_MONTHS if unit == "months" else MAX_YEARS
    if count > limit:
        raise InvalidExpiryPolicy(
            f"expiry policy {text!r}: {unit} must be at most {limit}", policy=text
        )
    return ExpiryPolicy(unit, count)


# -- policy ------------------------------------------------------------------------------


def set_expiry_policy(engine: Engine, programme: str, policy: str, actor: str) -> Entry | None:
    """Make `policy` the programme's expiry policy from the next entry on.

    Records an admin entry (metadata `{"event": "expiry_policy", "policy": ...}`)
    and updates `programmes.expiry_policy` in the same transaction. Returns
    the admin entry, or None when `policy` is already in force (nothing is
    written). Who may change it is the caller's decision. Raises
    `InvalidExpiryPolicy`, `UnknownProgramme` and the chain's errors.
    """
    parsed = parse_expiry_policy(policy)
    text = str(parsed)

    def unless_in_force(connection: Connection, programme_info: ProgrammeInfo,
                        prepared: Sequence[Prepared]) -> set[int]:
        history = _policy_history(connection, programme_info.id)
        in_force = history[-1][1] if history else NEVER
        return {0} if in_force == parsed else set()

    def update_programme(connection: Connection, programme_info: ProgrammeInfo,
                         entries: Sequence[Entry]) -> None:
        connection.execute(
            update(Programme).where(Programme.id == programme_info.id).values(expiry_policy=text)
        )

    draft = Draft(
        kind="admin",
        postings=[],
        actor=actor,
        memo=f"expiry policy: {text}",
        metadata={"event": POLICY_EVENT, "policy": text},
    )
    appended = append_batch(engine, programme, [draft], guard=unless_in_force,
                            after_write=update_programme)[0]
    return appended.entry if appended is not None else None


def expiry_policy(engine: Engine, programme: str) -> ExpiryPolicy:
    """The policy in force now, as the chain records it; raises `UnknownProgramme`."""
    with read_transaction(engine) as connection:
        programme_info = get_programme(connection, programme)
        history = _policy_history(connection, programme_info.id)
    return history[-1][1] if history else NEVER


def _policy_history(connection: Connection, programme_id: int) -> list[tuple[int, ExpiryPolicy]]:
    """Every policy change as (seq of its admin entry, policy), in chain order."""
    rows = connection.execute(
        select(EntryRow.seq, EntryRow.metadata_json)
        .where(
            EntryRow.programme_id == programme_id,
            EntryRow.kind == "admin",
            EntryRow.metadata_json.like(f'%"event":"{POLICY_EVENT}"%'),
        )
        .order_by(EntryRow.seq)
    )
    history = []
    for seq, metadata_json in rows:
        metadata = json.loads(metadata_json)
        if metadata.get("event") == POLICY_EVENT:
            history.append((seq, parse_expiry_policy(metadata.get("policy"))))
    return history


# -- the replay --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Movement:
    """One posting on a member's account, with what the replay needs of its entry."""

    seq: int
    points: int
    kind: str
    occurred_at: str
    reverses: int | None


@dataclass
class _OpenLot:
    seq: int
    points: int
    remaining: int
    expires_at: datetime | None

    @property
    def order(self) -> tuple[int, str, int]:
        """Soonest-expiring first, ties by seq, never-expiring last."""
        if self.expires_at is None:
            return (1, "", self.seq)
        return (0, format_timestamp(self.expires_at), self.seq)

    def frozen(self) -> Lot:
        return Lot(self.seq, self.points, self.remaining, self.expires_at)


@dataclass
class _MemberLots:
    """A member's lots, replayed posting by posting in seq order."""

    policies: Sequence[tuple[int, ExpiryPolicy]]
    zone: ZoneInfo
    lots: dict[int, _OpenLot] = field(default_factory=dict)
    debt_points: int = 0
    last_seq: int | None = None
    kinds: dict[int, str] = field(default_factory=dict)
    draws: dict[int, list[tuple[int, int]]] = field(default_factory=dict)
    """Debit seq -> the (lot seq, points) it drew, for reversals to give back."""
    _queue: list[tuple[tuple[int, str, int], int]] = field(default_factory=list)
    _queued: set[int] = field(default_factory=set)

    def apply(self, movement: _Movement) -> None:
        if self.last_seq is not None and movement.seq <= self.last_seq:
            raise errors.IntegrityViolation(
                f"postings replayed out of order: {movement.seq} after {self.last_seq}"
            )
        self.last_seq = movement.seq
        self.kinds[movement.seq] = movement.kind
        if movement.points > 0:
            self._credit(movement)
        else:
            first = None
            if movement.kind == "reversal" and self.kinds.get(movement.reverses) == "award":
                first = self.lots.get(movement.reverses)
            self.draws[movement.seq] = self._draw(-movement.points, first)

    def _credit(self, movement: _Movement) -> None:
        points = movement.points
        paid = min(points, self.debt_points)
        self.debt_points -= paid
        points -= paid
        reversed_seq = movement.reverses
        if (movement.kind == "reversal" and reversed_seq in self.draws
                and self.kinds.get(reversed_seq) != "expiry"):
            for lot_seq, drawn in reversed(self.draws[reversed_seq]):
                lot = self.lots[lot_seq]
                returned = min(points, drawn, lot.points - lot.remaining)
                if returned > 0:
                    lot.remaining += returned
                    points -= returned
                    self._enqueue(lot)
        if movement.kind == "award" or points > 0:
            self._new_lot(movement, points)

    def _new_lot(self, movement: _Movement, remaining: int) -> None:
        policy = self._policy_before(movement.seq)
        expires_at = policy.expires_at(parse_timestamp(movement.occurred_at), self.zone)
        points = movement.points if movement.kind == "award" else remaining
        lot = _OpenLot(movement.seq, points, remaining, expires_at)
        self.lots[movement.seq] = lot
        self._enqueue(lot)

    def _policy_before(self, seq: int) -> ExpiryPolicy:
        in_force = NEVER
        for policy_seq, policy in self.policies:
            if policy_seq >= seq:
                break
            in_force = policy
        return in_force

    def _draw(self, points: int, first: _OpenLot | None) -> list[tuple[int, int]]:
        drawn: list[tuple[int, int]] = []
        if first is not None and first.remaining > 0:
            taken = min(points, first.remaining)
            first.remaining -= taken
            points -= taken
            drawn.append((first.seq, taken))
        while points > 0 and self._queue:
            lot = self.lots[self._queue[0][1]]
            if lot.remaining == 0:
                heapq.heappop(self._queue)
                self._queued.discard(lot.seq)
                continue
            taken = min(points, lot.remaining)
            lot.remaining -= taken
            points -= taken
            drawn.append((lot.seq, taken))
        self.debt_points += points
        return drawn

    def _enqueue(self, lot: _OpenLot) -> None:
        if lot.remaining > 0 and lot.seq not in self._queued:
            heapq.heappush(self._queue, (lot.order, lot.seq))
            self._queued.add(lot.seq)

    def preview_draw(self, points: int) -> list[tuple[int, int]]:
        """What a debit of `points` would draw now, without drawing it."""
        drawn = []
        for lot in sorted(self.open_lots(), key=lambda lot: lot.order):
            if points == 0:
                break
            taken = min(points, lot.remaining)
            drawn.append((lot.seq, taken))
            points -= taken
        return drawn

    def open_lots(self) -> list[_OpenLot]:
        return [lot for lot in self.lots.values() if lot.remaining > 0]

    def expired_lots(self, as_of: datetime) -> list[_OpenLot]:
        """Lots with points left whose expiry is at or before `as_of`, in drawing order."""
        expired = [lot for lot in self.open_lots()
                   if lot.expires_at is not None and lot.expires_at <= as_of]
        return sorted(expired, key=lambda lot: lot.order)


def _movements_query(programme_id: int):
    return (
        select(
            Account.code,
            PostingRow.entry_seq,
            PostingRow.amount_points,
            EntryRow.kind,
            EntryRow.occurred_at,
            EntryRow.reverses_seq,
        )
        .join(Account, Account.id == PostingRow.account_id)
        .join(
            EntryRow,
            (EntryRow.programme_id == PostingRow.programme_id)
            & (EntryRow.seq == PostingRow.entry_seq),
        )
        .where(PostingRow.programme_id == programme_id, Account.kind == "member")
    )


def _replay(
    connection: Connection,
    programme: ProgrammeInfo,
    policies: Sequence[tuple[int, ExpiryPolicy]],
    accounts: Iterable[str] | None = None,
    recorded_until: str | None = None,
) -> Iterator[tuple[str, _MemberLots]]:
    """Replay member accounts (all, or `accounts`), yielding (account, lots) one by one."""
    if accounts is None:
        yield from _replay_rows(connection, programme, policies, None, recorded_until)
        return
    wanted = sorted(set(accounts))
    for start in range(0, len(wanted), 500):
        yield from _replay_rows(connection, programme, policies, wanted[start : start + 500],
                                recorded_until)


def _replay_rows(
    connection: Connection,
    programme: ProgrammeInfo,
    policies: Sequence[tuple[int, ExpiryPolicy]],
    accounts: Sequence[str] | None,
    recorded_until: str | None,
) -> Iterator[tuple[str, _MemberLots]]:
    query = _movements_query(programme.id)
    if accounts is not None:
        query = query.where(Account.code.in_(accounts))
    if recorded_until is not None:
        query = query.where(EntryRow.recorded_at <= recorded_until)
    query = query.order_by(PostingRow.account_id, PostingRow.entry_seq)
    rows = connection.execute(query.execution_options(yield_per=5_000))
    account, lots = None, None
    for code, seq, points, kind, occurred_at, reverses in rows:
        if code != account:
            if lots is not None:
                yield account, lots
            account, lots = code, _MemberLots(policies, programme.zone)
        lots.apply(_Movement(seq, points, kind, occurred_at, reverses))
    if lots is not None:
        yield account, lots


def _replay_member(connection: Connection, programme: ProgrammeInfo, member_code: str,
                   recorded_until: str | None = None) -> _MemberLots:
    account = member_account(member_code)
    known = connection.execute(
        select(Account.id).where(Account.programme_id == programme.id, Account.code == account,
                                 Account.kind == "member")
    ).first()
    if known is None:
        raise errors.UnknownMember(f"no member {member_code!r} in this programme",
                                   member=member_code)
    policies = _policy_history(connection, programme.id)
    replayed = dict(_replay(connection, programme, policies, [account], recorded_until))
    if account in replayed:
        return replayed[account]
    return _MemberLots(policies, programme.zone)


def _snapshot(connection: Connection) -> None:
    """One consistent view for several reads (SQLite's read transaction already is one)."""
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")


# -- public reads --------------------------------------------------------------------------


def member_lots(engine: Engine, programme: str, member_code: str,
                as_of: datetime | None = None) -> list[Lot]:
    """Every lot of a member, spent or not, in seq order, replayed from the chain.

    With `as_of`, the lots as they stood then: only entries recorded at or
    before it are replayed. Raises `UnknownProgramme`, `UnknownMember`.
    """
    recorded_until = None if as_of is None else format_timestamp(_aware(as_of, "as_of"))
    with read_transaction(engine) as connection:
        _snapshot(connection)
        programme_info = get_programme(connection, programme)
        lots = _replay_member(connection, programme_info, member_code, recorded_until)
    return [lot.frozen() for lot in sorted(lots.lots.values(), key=lambda lot: lot.seq)]


def draw_lots(engine_or_connection: Engine | Connection, programme: str, member_code: str,
              points: int) -> list[tuple[int, int]]:
    """The (lot seq, points) a debit of `points` would draw now, soonest-expiring first.

    What the member's lots cannot cover is not listed (it would be debt).
    A voucher issue names these in its metadata; call this with the
    connection a guard is given, inside the chain lock, for the answer to
    be the one the replay will give. Raises `UnknownProgramme`,
    `UnknownMember`, `InvalidAmount` for points that are not a positive integer.
    """
    if type(points) is not int or points <= 0:
        raise errors.InvalidAmount(f"points to draw must be a positive integer, not {points!r}",
                                   field="points")
    if isinstance(engine_or_connection, Engine):
        with read_transaction(engine_or_connection) as connection:
            _snapshot(connection)
            return draw_lots(connection, programme, member_code, points)
    programme_info = get_programme(engine_or_connection, programme)
    lots = _replay_member(engine_or_connection, programme_info, member_code)
    return lots.preview_draw(points)


# -- expiring ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _MemberExpiry:
    """The expiry drafts of one member, valid while the member's last posting is `after_seq`."""

    account: str
    after_seq: int
    drafts: list[Draft]


def expire(engine: Engine, programme: str, as_of: datetime | date,
           actor: str = DEFAULT_ACTOR) -> list[Entry]:
    """Post an expiry entry for every member whose lots expired by `as_of`.

    `as_of` is a moment (time-zone aware) or a date, meaning its first moment
    in the programme's time zone; it must not be in the future, since points
    never expire early. Returns the entries posted (none when everything
    expired was already expired). Raises `UnknownProgramme`, `InvalidEntry`
    for a bad `as_of`, `ExpiryRaced` when members kept moving for
    `MAX_ATTEMPTS` rounds (what posted stays; rerun), and the chain's errors.
    """
    programme_info = get_programme(engine, programme)
    if isinstance(as_of, date) and not isinstance(as_of, datetime):
        as_of = datetime.combine(as_of, time(), programme_info.zone)
    as_of = _aware(as_of, "as_of").astimezone(UTC)
    if as_of > datetime.now(UTC):
        raise errors.InvalidEntry(f"as_of {as_of.isoformat()} is in the future", field="as_of")
    as_of_text = format_timestamp(as_of)

    with read_transaction(engine) as connection:
        _snapshot(connection)
        policies = _policy_history(connection, programme_info.id)
        if all(policy == NEVER for _, policy in policies):
            return []
        pending = [
            plan
            for account, lots in _replay(connection, programme_info, policies)
            if (plan := _plan(account, lots, as_of, as_of_text, actor)) is not None
        ]

    posted: list[Entry] = []
    for _ in range(MAX_ATTEMPTS):
        moved = []
        for batch in _batches(pending):
            posted_now, moved_now = _post_batch(engine, programme, batch)
            posted.extend(posted_now)
            moved.extend(moved_now)
        if not moved:
            return posted
        with read_transaction(engine) as connection:
            _snapshot(connection)
            policies = _policy_history(connection, programme_info.id)
            pending = [
                plan
                for account, lots in _replay(connection, programme_info, policies, moved)
                if (plan := _plan(account, lots, as_of, as_of_text, actor)) is not None
            ]
    if not pending:
        return posted
    raise ExpiryRaced(
        f"{len(pending)} members kept receiving entries while expiring; run expire again",
        accounts=[plan.account for plan in pending][:20],
    )


def _plan(account: str, lots: _MemberLots, as_of: datetime, as_of_text: str,
          actor: str) -> _MemberExpiry | None:
    expired = lots.expired_lots(as_of)
    if not expired or lots.last_seq is None:
        return None
    member_code = account.removeprefix(MEMBER_PREFIX)
    drafts = []
    for part, start in enumerate(range(0, len(expired), MAX_LOTS_PER_ENTRY)):
        chunk = expired[start : start + MAX_LOTS_PER_ENTRY]
        total = sum(lot.remaining for lot in chunk)
        drafts.append(
            Draft(
                kind="expiry",
                postings=[Posting(account, -total), Posting(EXPIRED, total)],
                actor=actor,
                occurred_at=max(lot.expires_at for lot in chunk),
                memo=f"{total} points of {member_code} expired unused",
                metadata={"as_of": as_of_text,
                          "lots": [[lot.seq, lot.remaining] for lot in chunk]},
                idempotency_key=f"expiry:{member_code}:{lots.last_seq}:{part}:{as_of_text}",
            )
        )
    return _MemberExpiry(account, lots.last_seq, drafts)


def _batches(plans: Sequence[_MemberExpiry]) -> Iterator[list[_MemberExpiry]]:
    """Plans grouped about `EXPIRY_BATCH_ENTRIES` drafts at a time, a member never split."""
    batch: list[_MemberExpiry] = []
    size = 0
    for plan in plans:
        if batch and size + len(plan.drafts) > EXPIRY_BATCH_ENTRIES:
            yield batch
            batch, size = [], 0
        batch.append(plan)
        size += len(plan.drafts)
    if batch:
        yield batch


def _post_batch(engine: Engine, programme: str,
                batch: Sequence[_MemberExpiry]) -> tuple[list[Entry], list[str]]:
    """Post one batch; returns the entries created and the accounts that moved meanwhile."""
    expected = {plan.account: plan.after_seq for plan in batch}
    moved: set[str] = set()

    def unmoved(connection: Connection, programme_info: ProgrammeInfo,
                prepared: Sequence[Prepared]) -> set[int]:
        latest = _latest_posting_seqs(connection, programme_info.id, expected)
        moved.update(account for account, seq in expected.items() if latest.get(account) != seq)
        return {position for position, item in enumerate(prepared)
                if item.draft.postings[0].account in moved}

    drafts = [draft for plan in batch for draft in plan.drafts]
    try:
        results = append_batch(engine, programme, drafts, guard=unmoved)
    except errors.IdempotencyConflict:
        # Another run posted from the same state with other content (another
        # actor); replaying these members again sees that entry.
        return [], list(expected)
    created = [result.entry for result in results if result is not None and result.created]
    return created, sorted(moved)


def _latest_posting_seqs(connection: Connection, programme_id: int,
                         accounts: Iterable[str]) -> dict[str, int]:
    wanted = sorted(set(accounts))
    latest: dict[str, int] = {}
    for start in range(0, len(wanted), 500):
        rows = connection.execute(
            select(Account.code, func.max(PostingRow.entry_seq))
            .join(PostingRow, PostingRow.account_id == Account.id)
            .where(Account.programme_id == programme_id,
                   Account.code.in_(wanted[start : start + 500]))
            .group_by(Account.code)
        )
        latest.update({code: seq for code, seq in rows})
    return latest


def _aware(moment: datetime, name: str) -> datetime:
    if not isinstance(moment, datetime) or moment.utcoffset() is None:
        raise errors.InvalidEntry(f"{name} must be a date and time with a time zone", field=name)
    return moment
