"""Claims: awards and deductions that need a second person before they post.

    pending (待审核) ──approve──▶ notice (公示, if the programme shows approved
       │                          claims for `notice_days`) ──window passes──▶ posted (入账)
       │                             │ ▲
       │                       object│ │dismiss
       │                             ▼ │
       └──────reject──────────▶ rejected ◀──uphold── objected

A claim is proposed by `ledger.awards` when its rule asks for approval. It
is workflow state, not ledger: it touches no balance. Only the posted fact
enters the chain, naming the proposer (`actor`) and the approver
(`approver`, never the same person). A rejection leaves an `admin` entry
with the reason. Every change of status is a conditional UPDATE made in the
same transaction as its entry, under the chain lock, so two reviewers
approving at the same moment post once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Connection, Engine

from ledger import errors
from ledger.awards import AwardRequest, NotInScope, Outcome, PlanningContext, post_plans
from ledger.chain import Entry, append
from ledger.entry_format import format_timestamp, parse_timestamp
from ledger.models import Claim, Member, Objection, Programme
from ledger.organisation import find_member, subtrees_of, within
from ledger.programmes import ProgrammeInfo, get_programme
from ledger.rules import RuleChanged
from ledger.storage import read_transaction, write_transaction

OPEN_STATUSES = ("pending", "notice", "objected")
MAX_REASON_CHARS = 2_000


class UnknownClaim(errors.LedgerError):
    code = "unknown_claim"


class ClaimNotOpen(errors.LedgerError):
    """The claim is not in a status that allows this step (e.g. already posted)."""

    code = "claim_not_open"


class SamePerson(errors.LedgerError):
    """The proposer of a claim cannot also approve or reject it."""

    code = "same_person"


class NoticeClosed(errors.LedgerError):
    code = "notice_closed"


@dataclass(frozen=True)
class ClaimInfo:
    id: int
    status: str
    member: str
    rule: str
    quantity: int | None
    points: int
    occurred_at: str
    evidence: str | None
    memo: str
    proposer: str
    decided_by: str | None
    notice_until: str | None
    reason: str | None
    entry_seq: int | None


def get_claim(engine: Engine, programme: str, claim_id: int) -> ClaimInfo:
    """One claim; raises `UnknownClaim`."""
    programme_info = get_programme(engine, programme)
    with read_transaction(engine) as connection:
        return _load(connection, programme_info, claim_id)


def list_claims(engine: Engine, programme: str, status: str | None = None) -> list[ClaimInfo]:
    """Claims of a programme, oldest first, optionally of one status."""
    programme_info = get_programme(engine, programme)
    with read_transaction(engine) as connection:
        query = _claim_query(programme_info).order_by(Claim.id)
        if status is not None:
            query = query.where(Claim.status == status)
        return [ClaimInfo(*row) for row in connection.execute(query)]


def approve(engine: Engine, programme: str, claim_id: int, *, reviewer: str,
            now: datetime | None = None) -> ClaimInfo:
    """Approve a pending claim: post it now, or open its notice window (公示).

    Raises `UnknownClaim`, `ClaimNotOpen` (not pending, e.g. a second
    reviewer was faster), `SamePerson`, `NotInScope` (no reviewer grant
    covering the member), and the award's refusals (`OverCap`, ...) when
    posting: the claim then stays pending.
    """
    programme_info = get_programme(engine, programme)
    now = now or datetime.now(UTC)
    claim = _check_reviewer(engine, programme_info, claim_id, reviewer, ("pending",))
    notice_days = _notice_days(engine, programme_info)
    if notice_days > 0:
        notice_until = format_timestamp(now + timedelta(days=notice_days))
        with write_transaction(engine) as connection:
            _move(connection, programme_info, claim_id, ("pending",), status="notice",
                  decided_by=reviewer, decided_at=format_timestamp(now),
                  notice_until=notice_until)
        return get_claim(engine, programme, claim_id)
    outcome = _post(engine, programme_info, claim, ("pending",), reviewer, now)
    if outcome.error is not None:
        raise outcome.error
    return get_claim(engine, programme, claim_id)


def reject(engine: Engine, programme: str, claim_id: int, *, reviewer: str, reason: str,
           now: datetime | None = None) -> Entry:
    """Reject an open claim; the chain records the rejection and its reason (admin entry).

    Raises `UnknownClaim`, `ClaimNotOpen`, `SamePerson`, `NotInScope`,
    `InvalidEntry` (no reason).
    """
    programme_info = get_programme(engine, programme)
    now = now or datetime.now(UTC)
    _check_reason(reason)
    claim = _check_reviewer(engine, programme_info, claim_id, reviewer, OPEN_STATUSES)

    def record(connection: Connection, programme: ProgrammeInfo, entries: Sequence[Entry]):
        _move(connection, programme, claim_id, OPEN_STATUSES, status="rejected",
              decided_by=reviewer, decided_at=format_timestamp(now), reason=reason,
              entry_seq=entries[0].seq)

    return append(
        engine, programme, kind="admin", postings=[], actor=reviewer,
        memo=f"claim {claim_id} rejected: {reason}",
        metadata={"event": "claim_rejected", "claim": claim_id, "member": claim.member,
                  "rule": claim.rule, "points": claim.points, "proposer": claim.proposer,
                  "reason": reason},
        idempotency_key=f"claim:{claim_id}:rejected",
        after_write=record,
    ).entry


def object_to(engine: Engine, programme: str, claim_id: int, *, by: str, reason: str,
              now: datetime | None = None) -> int:
    """Object to a claim during its public-notice window; it will not post until resolved.

    Anyone may object (a resident, a representative). Returns the
    objection's id. Raises `UnknownClaim`, `ClaimNotOpen`, `NoticeClosed`.
    """
    programme_info = get_programme(engine, programme)
    now = now or datetime.now(UTC)
    _check_reason(reason)
    if not isinstance(by, str) or not by.strip() or len(by) > 200:
        raise errors.InvalidEntry("say who objects (1-200 characters)", field="by")
    with write_transaction(engine) as connection:
        claim = _load(connection, programme_info, claim_id)
        if claim.status not in ("notice", "objected"):
            raise ClaimNotOpen(f"claim {claim_id} is {claim.status}, not on public notice",
                               claim=claim_id, status=claim.status)
        if parse_timestamp(claim.notice_until) <= now:
            raise NoticeClosed(f"the notice window of claim {claim_id} closed at "
                               f"{claim.notice_until}", claim=claim_id)
        objection_id = connection.execute(
            insert(Objection).values(
                claim_id=claim_id, programme_id=programme_info.id, raised_by=by, reason=reason,
                raised_at=format_timestamp(now), status="open",
            ).returning(Objection.id)
        ).scalar_one()
        _move(connection, programme_info, claim_id, ("notice", "objected"), status="objected")
    return objection_id


def resolve_objection(engine: Engine, programme: str, objection_id: int, *, reviewer: str,
                      uphold: bool, reason: str, now: datetime | None = None) -> ClaimInfo:
    """Uphold an objection (the claim is rejected) or dismiss it (back on notice).

    Raises `UnknownClaim` (no such objection), `ClaimNotOpen`, `NotInScope`,
    `SamePerson` (the proposer cannot judge objections to their own claim).
    """
    programme_info = get_programme(engine, programme)
    now = now or datetime.now(UTC)
    _check_reason(reason)
    with read_transaction(engine) as connection:
        objection = connection.execute(
            select(Objection.claim_id, Objection.status).where(
                Objection.id == objection_id, Objection.programme_id == programme_info.id)
        ).first()
    if objection is None or objection.status != "open":
        raise UnknownClaim(f"no open objection {objection_id}", objection=objection_id)
    if uphold:
        reject(engine, programme, objection.claim_id, reviewer=reviewer,
               reason=f"objection upheld: {reason}", now=now)
    else:
        _check_reviewer(engine, programme_info, objection.claim_id, reviewer, ("objected",))
    with write_transaction(engine) as connection:
        connection.execute(
            update(Objection).where(Objection.id == objection_id).values(
                status="upheld" if uphold else "dismissed", resolved_by=reviewer,
                resolved_at=format_timestamp(now))
        )
        still_open = connection.execute(
            select(func.count()).select_from(Objection).where(
                Objection.claim_id == objection.claim_id, Objection.status == "open")
        ).scalar_one()
        if not uphold and not still_open:
            _move(connection, programme_info, objection.claim_id, ("objected",),
                  status="notice")
    return get_claim(engine, programme, objection.claim_id)


def post_due(engine: Engine, programme: str, now: datetime | None = None) -> list[Outcome]:
    """Post every approved claim whose notice window has passed without an open objection.

    Safe to run again and from several processes: a claim posts once. A
    claim that cannot post (its rule changed, a cap is full) comes back
    `refused` with the reason, and stays on notice for a reviewer to decide.
    """
    programme_info = get_programme(engine, programme)
    now = now or datetime.now(UTC)
    with read_transaction(engine) as connection:
        due = [
            ClaimInfo(*row)
            for row in connection.execute(
                _claim_query(programme_info)
                .where(Claim.status == "notice", Claim.notice_until <= format_timestamp(now))
                .order_by(Claim.id)
            )
        ]
    outcomes = []
    for claim in due:  # one transaction each: a refused claim does not hold up the others
        try:
            outcome = _post(engine, programme_info, claim, ("notice",), claim.decided_by, now)
        except errors.LedgerError as error:
            request = AwardRequest(claim.member, claim.rule, claim.quantity, memo=claim.memo)
            outcome = Outcome("refused", request, claim.points, error=error)
        outcomes.append(replace(outcome, claim_id=claim.id))
    return outcomes


# -- internals -------------------------------------------------------------------------


def _claim_query(programme: ProgrammeInfo):
    return (
        select(Claim.id, Claim.status, Member.code, Claim.rule_code, Claim.quantity,
               Claim.points, Claim.occurred_at, Claim.evidence, Claim.memo, Claim.proposer,
               Claim.decided_by,
               Claim.notice_until, Claim.reason, Claim.entry_seq)
        .join(Member, Member.id == Claim.member_id)
        .where(Claim.programme_id == programme.id)
    )


def _load(connection: Connection, programme: ProgrammeInfo, claim_id: int) -> ClaimInfo:
    row = connection.execute(_claim_query(programme).where(Claim.id == claim_id)).first()
    if row is None:
        raise UnknownClaim(f"no claim {claim_id} in this programme", claim=claim_id)
    return ClaimInfo(*row)


def _notice_days(engine: Engine, programme: ProgrammeInfo) -> int:
    with read_transaction(engine) as connection:
        return connection.execute(
            select(Programme.notice_days).where(Programme.id == programme.id)
        ).scalar_one()


def _check_reason(reason: str) -> None:
    if not isinstance(reason, str) or not reason.strip() or len(reason) > MAX_REASON_CHARS:
        raise errors.InvalidEntry(f"give a reason (1-{MAX_REASON_CHARS} characters)",
                                  field="reason")


def _check_reviewer(engine: Engine, programme: ProgrammeInfo, claim_id: int, reviewer: str,
                    statuses: Sequence[str]) -> ClaimInfo:
    with read_transaction(engine) as connection:
        claim = _load(connection, programme, claim_id)
        if claim.status not in statuses:
            raise ClaimNotOpen(f"claim {claim_id} is {claim.status}", claim=claim_id,
                               status=claim.status)
        if reviewer == claim.proposer:
            raise SamePerson(f"{reviewer!r} proposed claim {claim_id} and cannot decide it",
                             claim=claim_id)
        member = find_member(connection, programme.id, claim.member)
        if not within(member.unit_path, subtrees_of(connection, programme.id, reviewer,
                                                    "reviewer")):
            raise NotInScope(f"{reviewer!r} is not a reviewer for unit {member.unit!r}",
                             actor=reviewer, member=claim.member)
    return claim


def _move(connection: Connection, programme: ProgrammeInfo, claim_id: int,
          from_statuses: Sequence[str], **values) -> None:
    """Change a claim's status if, and only if, it is still in `from_statuses`."""
    moved = connection.execute(
        update(Claim)
        .where(Claim.id == claim_id, Claim.programme_id == programme.id,
               Claim.status.in_(from_statuses))
        .values(**values)
    ).rowcount
    if moved != 1:
        status = connection.execute(select(Claim.status).where(Claim.id == claim_id)).scalar()
        raise ClaimNotOpen(f"claim {claim_id} is {status} (another decision came first)",
                           claim=claim_id, status=status)


def _post(engine: Engine, programme: ProgrammeInfo, claim: ClaimInfo,
          from_statuses: Sequence[str], approver: str, now: datetime) -> Outcome:
    """Post an approved claim under the rules as they stand, naming proposer and approver."""
    with read_transaction(engine) as connection:
        request = AwardRequest(
            member=claim.member, rule=claim.rule, quantity=claim.quantity,
            occurred_at=parse_timestamp(claim.occurred_at), evidence=claim.evidence,
            memo=claim.memo, idempotency_key=f"claim:{claim.id}",
        )
        plan = PlanningContext(connection, programme, claim.proposer).plan(request, now)
    if plan.points != claim.points:
        raise RuleChanged(
            f"rule {claim.rule!r} now gives {plan.points} points, the claim says "
            f"{claim.points}; reject it and propose again", rule=claim.rule)
    values = {"status": "posted"}
    if claim.decided_by is None:
        values |= {"decided_by": approver, "decided_at": format_timestamp(now)}

    def record(connection: Connection, programme: ProgrammeInfo, entries: Sequence[Entry]):
        _move(connection, programme, claim.id, from_statuses, entry_seq=entries[0].seq,
              **values)

    try:
        return post_plans(engine, programme, [(claim.id, plan)], actor=claim.proposer,
                          approver=approver, after_write=record)[0]
    except errors.IdempotencyConflict:
        # Another reviewer posted the claim (key `claim:<id>`) since our status check.
        with read_transaction(engine) as connection:
            status = _load(connection, programme, claim.id).status
        if status in from_statuses:
            raise
        raise ClaimNotOpen(f"claim {claim.id} is {status} (another decision came first)",
                           claim=claim.id, status=status) from None
