"""Awards and deductions under scoring rules: the one service that decides what may post.

`award` handles one request, `award_sheet` a whole sign-in sheet. Each
request is checked in two steps:

- before the chain lock, what cannot change under us: the member exists, the
  rule has a version in force when the activity happened, the member is in
  the rule's scope, the actor holds an allowed role on a subtree holding the
  member, evidence is given where required, the quantity earns points;
- inside the lock, what other writers could change: the rule version is
  still the newest, and every cap and cooldown holds counting what is in the
  chain plus the lines of the same sheet before this one. So caps hold when
  many organisers award the same member at the same moment.

A rule that needs a second person's approval does not post: the request
becomes a claim (`ledger.claims`). Deductions always post when the rules
allow (the spendable balance may go negative) and lower the score.
A dry run answers what would happen and writes nothing.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, exists, func, insert, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import aliased

from ledger import errors
from ledger.accounts import ISSUANCE, PENALTY, member_account
from ledger.chain import (
    Appended,
    Draft,
    Entry,
    Posting,
    Prepared,
    RuleRef,
    append_batch,
    check_client_key,
    get_entry,
    reverse,
)
from ledger.entry_format import format_timestamp
from ledger.models import Account, Claim, Member, RuleVersion
from ledger.models import Entry as EntryRow
from ledger.models import Posting as PostingRow
from ledger.organisation import MemberRecord, find_member, subtrees_of, unit_path, within
from ledger.programmes import ProgrammeInfo, get_programme
from ledger.rules import (
    Cap,
    Rule,
    RuleChanged,
    UnknownRule,
    period_label,
    period_window,
    rule_in_force,
    rule_versions,
)
from ledger.storage import read_transaction, write_transaction

MAX_SHEET_LINES = 5_000


class RuleNotInForce(errors.LedgerError):
    code = "rule_not_in_force"


class NotInScope(errors.LedgerError):
    """The actor holds no allowed role on a subtree that holds the member."""

    code = "not_in_scope"


class RuleOutOfScope(errors.LedgerError):
    """The member is outside the rule's scope (a unit subtree)."""

    code = "rule_out_of_scope"


class RoleNotAllowed(errors.LedgerError):
    code = "role_not_allowed"


class EvidenceRequired(errors.LedgerError):
    code = "evidence_required"


class OverCap(errors.LedgerError):
    code = "over_cap"


class CooldownActive(errors.LedgerError):
    code = "cooldown_active"


@dataclass(frozen=True)
class AwardRequest:
    """One award or deduction as an organiser asks for it (a line of a sign-in sheet)."""

    member: str
    rule: str
    quantity: int | None = None
    occurred_at: datetime | None = None
    evidence: str | None = None
    memo: str = ""
    idempotency_key: str | None = None


@dataclass(frozen=True)
class Outcome:
    """What became of one request.

    `status` is `posted`, `replayed` (an idempotent retry: the original
    entry), `proposed` (a claim awaiting approval), `would_post` or
    `would_propose` (dry run), or `refused` (with `error`).
    """

    status: str
    request: AwardRequest
    points: int | None = None
    """Signed: positive for awards, negative for deductions."""
    rule: RuleRef | None = None
    postings: tuple[Posting, ...] = ()
    entry: Entry | None = None
    claim_id: int | None = None
    error: errors.LedgerError | None = None


@dataclass
class Plan:
    """A request that passed the checks made before the lock."""

    request: AwardRequest
    member: MemberRecord
    rule: Rule
    magnitude: int
    occurred_at: datetime
    newest_version: int
    """The rule's newest version when planned: if another appears before the lock, the
    choice of version may be stale, and the request is refused with `rule_changed`."""

    @property
    def points(self) -> int:
        return self.magnitude if self.rule.sign == "award" else -self.magnitude

    @property
    def postings(self) -> tuple[Posting, ...]:
        if self.rule.sign == "award":
            return (Posting(self.member.account, self.magnitude),
                    Posting(ISSUANCE, -self.magnitude))
        return (Posting(self.member.account, -self.magnitude), Posting(PENALTY, self.magnitude))

    @property
    def rule_ref(self) -> RuleRef:
        return RuleRef(self.rule.code, self.rule.version, self.request.quantity)

    def draft(self, actor: str, approver: str | None = None) -> Draft:
        return Draft(
            kind=self.rule.sign,
            postings=self.postings,
            actor=actor,
            occurred_at=self.occurred_at,
            evidence=self.request.evidence,
            memo=self.request.memo,
            idempotency_key=self.request.idempotency_key,
            rule=self.rule_ref,
            approver=approver,
        )


def award(
    engine: Engine,
    programme: str,
    request: AwardRequest,
    *,
    actor: str,
    dry_run: bool = False,
) -> Outcome:
    """Award or deduct points under a rule, or propose a claim if it needs approval.

    Raises the refusal: `UnknownMember`, `UnknownRule`, `RuleNotInForce`,
    `RuleOutOfScope`, `NotInScope`, `RoleNotAllowed`, `EvidenceRequired`,
    `InvalidQuantity`, `OverCap`, `CooldownActive`, `RuleChanged`, and the
    ledger's errors (`IdempotencyConflict`, `InvalidEntry`, ...).
    """
    outcome = award_sheet(engine, programme, [request], actor=actor, dry_run=dry_run)[0]
    if outcome.error is not None:
        raise outcome.error
    return outcome


def award_sheet(
    engine: Engine,
    programme: str,
    requests: Sequence[AwardRequest],
    *,
    actor: str,
    dry_run: bool = False,
) -> list[Outcome]:
    """Award a whole sign-in sheet: each line gets its own outcome, accepted lines post together.

    Lines are checked in order, so a cap filled by line 3 refuses line 9.
    With idempotency keys on the lines (e.g. `<sheet>:<line>`), sending the
    sheet again posts nothing more: posted lines come back `replayed`.
    """
    if len(requests) > MAX_SHEET_LINES:
        raise errors.InvalidEntry(
            f"a sheet holds at most {MAX_SHEET_LINES} lines, not {len(requests)}", field="lines"
        )
    programme_info = get_programme(engine, programme)
    now = datetime.now(UTC)
    outcomes: list[Outcome | None] = [None] * len(requests)
    plans: dict[int, Plan] = {}
    with read_transaction(engine) as connection:
        context = PlanningContext(connection, programme_info, actor)
        for index, request in enumerate(requests):
            try:
                check_client_key(request.idempotency_key)
                plans[index] = context.plan(request, now)
            except errors.LedgerError as error:
                outcomes[index] = Outcome("refused", request, error=error)
        if dry_run:
            tally = _Tally()
            for index, plan in plans.items():
                error = _check_limits(connection, programme_info, plan, tally)
                status = "would_propose" if plan.rule.needs_approval(plan.magnitude) else \
                    "would_post"
                outcomes[index] = Outcome(status, plan.request, plan.points, plan.rule_ref,
                                          plan.postings, error=error)
                if error is not None:
                    outcomes[index] = Outcome("refused", plan.request, plan.points,
                                              plan.rule_ref, plan.postings, error=error)
            return outcomes

    to_propose = {i: plan for i, plan in plans.items() if plan.rule.needs_approval(plan.magnitude)}
    if to_propose:
        for index, claim_id in _propose(engine, programme_info, to_propose, actor).items():
            plan = to_propose[index]
            outcomes[index] = Outcome("proposed", plan.request, plan.points, plan.rule_ref,
                                      plan.postings, claim_id=claim_id)
    to_post = [(i, plan) for i, plan in sorted(plans.items()) if i not in to_propose]
    if to_post:
        for (index, _), outcome in zip(to_post, post_plans(engine, programme_info, to_post, actor),
                                       strict=True):
            outcomes[index] = outcome
    return outcomes


def post_plans(
    engine: Engine,
    programme: ProgrammeInfo,
    plans: Sequence[tuple[int, Plan]],
    actor: str,
    approver: str | None = None,
    after_write=None,
) -> list[Outcome]:
    """Post planned requests in one transaction; caps are checked under the chain lock."""
    refusals: dict[int, errors.LedgerError] = {}
    drafts = [plan.draft(actor, approver) for _, plan in plans]
    plan_of_draft = {id(draft): plan for draft, (_, plan) in zip(drafts, plans, strict=True)}
    position_of_draft = {id(draft): position for position, draft in enumerate(drafts)}

    def guard(connection: Connection, programme: ProgrammeInfo, fresh: Sequence[Prepared]):
        tally = _Tally()
        left_out = set()
        for position, item in enumerate(fresh):
            plan = plan_of_draft[id(item.draft)]
            error = _check_limits(connection, programme, plan, tally, check_version=True)
            if error is not None:
                refusals[position_of_draft[id(item.draft)]] = error
                left_out.add(position)
        return left_out

    results = append_batch(engine, programme.code, drafts, guard=guard, after_write=after_write)
    outcomes = []
    for position, ((_, plan), appended) in enumerate(zip(plans, results, strict=True)):
        if appended is None:
            outcomes.append(Outcome("refused", plan.request, plan.points, plan.rule_ref,
                                    plan.postings, error=refusals[position]))
        else:
            outcomes.append(Outcome("posted" if appended.created else "replayed", plan.request,
                                    plan.points, plan.rule_ref, plan.postings,
                                    entry=appended.entry))
    return outcomes


class PlanningContext:
    """Reads shared by the lines of one sheet: rule versions, the actor's subtrees."""

    def __init__(self, connection: Connection, programme: ProgrammeInfo, actor: str) -> None:
        self.connection = connection
        self.programme = programme
        self.actor = actor
        self.zone = programme.zone
        self._versions: dict[str, list[Rule]] = {}
        self._subtrees: dict[str, list[str]] = {}
        self._scopes: dict[str, str] = {}

    def versions(self, code: str) -> list[Rule]:
        if code not in self._versions:
            self._versions[code] = rule_versions(self.connection, self.programme.id, code)
        return self._versions[code]

    def subtrees(self, role: str) -> list[str]:
        if role not in self._subtrees:
            self._subtrees[role] = subtrees_of(self.connection, self.programme.id, self.actor,
                                               role)
        return self._subtrees[role]

    def scope_path(self, unit: str) -> str:
        if unit not in self._scopes:
            self._scopes[unit] = unit_path(self.connection, self.programme.id, unit)
        return self._scopes[unit]

    def plan(self, request: AwardRequest, now: datetime) -> Plan:
        if not isinstance(request.member, str) or not isinstance(request.rule, str):
            raise errors.InvalidEntry("member and rule must be codes", field="member")
        member = find_member(self.connection, self.programme.id, request.member)
        versions = self.versions(request.rule)
        if not versions:
            raise UnknownRule(f"no rule {request.rule!r} in this programme", rule=request.rule)
        occurred_at = request.occurred_at or now
        if occurred_at.tzinfo is None:
            raise errors.InvalidEntry("occurred_at must carry a time zone", field="occurred_at")
        rule = rule_in_force(versions, occurred_at, self.zone)
        if rule is None:
            day = occurred_at.astimezone(self.zone).date().isoformat()
            latest = versions[-1]
            window = (f"from {latest.in_force_from or 'the start'} "
                      f"until {latest.in_force_until or 'further notice'}")
            raise RuleNotInForce(
                f"rule {request.rule!r} was not in force on {day} (it is in force {window})",
                rule=request.rule, day=day,
            )
        if rule.scope is not None and not member.unit_path.startswith(
            self.scope_path(rule.scope)
        ):
            raise RuleOutOfScope(
                f"rule {rule.code!r} applies only within unit {rule.scope!r}; member "
                f"{member.code!r} belongs to {member.unit!r}",
                rule=rule.code, member=member.code,
            )
        self._authorise(rule, member)
        if rule.evidence_required and not request.evidence:
            raise EvidenceRequired(
                f"rule {rule.code!r} requires evidence (e.g. the SHA-256 of a photo or sheet)",
                rule=rule.code, field="evidence",
            )
        magnitude = rule.points_for(request.quantity)
        return Plan(request, member, rule, magnitude, occurred_at, versions[-1].version)

    def _authorise(self, rule: Rule, member: MemberRecord) -> None:
        if any(within(member.unit_path, self.subtrees(role)) for role in rule.roles):
            return
        other_roles = [role for role in ("organiser", "reviewer", "admin")
                       if role not in rule.roles and within(member.unit_path,
                                                            self.subtrees(role))]
        if other_roles:
            raise RoleNotAllowed(
                f"rule {rule.code!r} may be applied by {', '.join(rule.roles)}; "
                f"{self.actor!r} is {', '.join(other_roles)} here",
                rule=rule.code, actor=self.actor,
            )
        raise NotInScope(
            f"{self.actor!r} may not act for member {member.code!r} in unit {member.unit!r}: "
            "no grant of an allowed role covers that unit",
            actor=self.actor, member=member.code,
        )


class _Tally:
    """What earlier lines of the same sheet add to each cap, and their times per member."""

    def __init__(self) -> None:
        self.used: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
        self.times: dict[tuple[str, int], list[datetime]] = defaultdict(list)


def _check_limits(
    connection: Connection,
    programme: ProgrammeInfo,
    plan: Plan,
    tally: _Tally,
    check_version: bool = False,
) -> errors.LedgerError | None:
    """Caps and cooldown for one plan, counting the chain and earlier lines; None if it fits."""
    rule = plan.rule
    if check_version:
        newest = connection.execute(
            _NEWEST_VERSION, {"programme_id": programme.id, "code": rule.code}
        ).scalar_one()
        if newest != plan.newest_version:
            return RuleChanged(f"rule {rule.code!r} changed to version {newest} while awarding; "
                               "send the request again", rule=rule.code)
    occurred = format_timestamp(plan.occurred_at)
    pending: list[tuple[tuple, int]] = []
    for index, cap in enumerate(rule.caps):
        start, end = period_window(cap.period, plan.occurred_at, programme.zone)
        if cap.per == "member":
            subject, accounts = plan.member.id, [plan.member.account]
        else:
            subject, accounts = plan.member.household_id, _household_accounts(
                connection, programme.id, plan.member.household_id)
        key = (rule.code, index, cap.per, subject, start)
        times, points = _usage(connection, programme.id, rule.code, accounts, start, end)
        times += tally.used[key][0]
        points += tally.used[key][1]
        if cap.max_times is not None and times + 1 > cap.max_times:
            return _over_cap(rule, cap, plan, times, points, programme)
        if cap.max_points is not None and points + plan.magnitude > cap.max_points:
            return _over_cap(rule, cap, plan, times, points, programme)
        pending.append((key, plan.magnitude))
    if rule.cooldown_minutes:
        cooldown = timedelta(minutes=rule.cooldown_minutes)
        low = format_timestamp(plan.occurred_at - cooldown)
        high = format_timestamp(plan.occurred_at + cooldown)
        nearby = [moment for moment in tally.times[(rule.code, plan.member.id)]
                  if abs(moment - plan.occurred_at) < cooldown]
        if nearby or _applied_between(connection, programme.id, rule.code, plan.member.account,
                                      low, high):
            return CooldownActive(
                f"rule {rule.code!r} can be applied to {plan.member.code!r} at most once every "
                f"{rule.cooldown_minutes} minutes; another application is within that time of "
                f"{occurred}",
                rule=rule.code, member=plan.member.code,
            )
    for key, magnitude in pending:
        tally.used[key][0] += 1
        tally.used[key][1] += magnitude
    tally.times[(rule.code, plan.member.id)].append(plan.occurred_at)
    return None


def _over_cap(rule: Rule, cap: Cap, plan: Plan, times: int, points: int,
              programme: ProgrammeInfo) -> OverCap:
    period = period_label(cap.period, plan.occurred_at, programme.zone)
    subject = plan.member.code if cap.per == "member" else plan.member.household
    return OverCap(
        f"rule {rule.code!r} allows {cap.describe()}; {cap.per} {subject!r} already has "
        f"{times} time(s) and {points} point(s) in {period}",
        rule=rule.code, cap=cap.describe(), period=cap.period, used_times=times,
        used_points=points, member=plan.member.code,
    )


def _not_reversed():
    reversal = aliased(EntryRow)
    return ~exists().where(
        and_(reversal.programme_id == EntryRow.programme_id,
             reversal.reverses_seq == EntryRow.seq)
    )


# The queries of the cap and cooldown checks, built once (they run inside the chain lock).
_APPLICATIONS = (
    select(func.count(), func.coalesce(func.sum(func.abs(PostingRow.amount_points)), 0))
    .select_from(PostingRow)
    .join(Account, Account.id == PostingRow.account_id)
    .join(EntryRow, and_(EntryRow.programme_id == PostingRow.programme_id,
                         EntryRow.seq == PostingRow.entry_seq))
    .where(
        Account.programme_id == bindparam("programme_id"),
        Account.code.in_(bindparam("accounts", expanding=True)),
        EntryRow.rule_code == bindparam("rule_code"),
        _not_reversed(),
    )
)
_APPLICATIONS_BETWEEN = _APPLICATIONS.where(EntryRow.occurred_at >= bindparam("start"),
                                            EntryRow.occurred_at < bindparam("end"))
_APPLIED_NEAR = (
    select(PostingRow.entry_seq)
    .join(Account, Account.id == PostingRow.account_id)
    .join(EntryRow, and_(EntryRow.programme_id == PostingRow.programme_id,
                         EntryRow.seq == PostingRow.entry_seq))
    .where(
        Account.programme_id == bindparam("programme_id"),
        Account.code == bindparam("account"),
        EntryRow.rule_code == bindparam("rule_code"),
        EntryRow.occurred_at > bindparam("low"),
        EntryRow.occurred_at < bindparam("high"),
        _not_reversed(),
    )
    .limit(1)
)
_HOUSEHOLD_MEMBERS = select(Member.code).where(
    Member.programme_id == bindparam("programme_id"),
    Member.household_id == bindparam("household_id"),
)
_NEWEST_VERSION = select(func.max(RuleVersion.version)).where(
    RuleVersion.programme_id == bindparam("programme_id"),
    RuleVersion.code == bindparam("code"),
)


def _usage(
    connection: Connection, programme_id: int, rule_code: str, accounts: list[str],
    start: str | None, end: str | None,
) -> tuple[int, int]:
    """Times and points a rule was applied to these accounts in [start, end), unreversed."""
    parameters = {"programme_id": programme_id, "accounts": accounts, "rule_code": rule_code}
    if start is None:
        times, points = connection.execute(_APPLICATIONS, parameters).one()
    else:
        parameters |= {"start": start, "end": end}
        times, points = connection.execute(_APPLICATIONS_BETWEEN, parameters).one()
    return int(times), int(points)


def _applied_between(connection: Connection, programme_id: int, rule_code: str, account: str,
                     low: str, high: str) -> bool:
    parameters = {"programme_id": programme_id, "account": account, "rule_code": rule_code,
                  "low": low, "high": high}
    return connection.execute(_APPLIED_NEAR, parameters).first() is not None


def _household_accounts(connection: Connection, programme_id: int, household_id: int) -> list[str]:
    parameters = {"programme_id": programme_id, "household_id": household_id}
    return [member_account(code)
            for (code,) in connection.execute(_HOUSEHOLD_MEMBERS, parameters)]


def _propose(
    engine: Engine, programme: ProgrammeInfo, plans: dict[int, Plan], actor: str
) -> dict[int, int]:
    """Record plans that need a second person as pending claims (待审核); index -> claim id.

    A request whose idempotency key already names a claim gets that claim
    back when its content is the same, and `IdempotencyConflict` otherwise.
    """
    proposed_at = format_timestamp(datetime.now(UTC))
    claim_ids: dict[int, int] = {}
    with write_transaction(engine) as connection:
        for index, plan in sorted(plans.items()):
            request = plan.request
            row = {
                "programme_id": programme.id,
                "status": "pending",
                "member_id": plan.member.id,
                "rule_code": plan.rule.code,
                "quantity": request.quantity,
                "points": plan.points,
                "occurred_at": format_timestamp(plan.occurred_at),
                "evidence": request.evidence,
                "memo": request.memo,
                "proposer": actor,
                "proposed_at": proposed_at,
                "idempotency_key": request.idempotency_key,
            }
            if request.idempotency_key is not None:
                existing = connection.execute(
                    select(Claim).where(Claim.programme_id == programme.id,
                                        Claim.idempotency_key == request.idempotency_key)
                ).first()
                if existing is not None:
                    same = all(
                        getattr(existing, key) == row[key]
                        for key in ("member_id", "rule_code", "quantity", "points", "evidence",
                                    "memo", "proposer")
                    ) and (request.occurred_at is None or existing.occurred_at
                           == row["occurred_at"])
                    if not same:
                        raise errors.IdempotencyConflict(
                            f"idempotency key {request.idempotency_key!r} was used for claim "
                            f"{existing.id} with different content",
                            idempotency_key=request.idempotency_key, claim=existing.id,
                        )
                    claim_ids[index] = existing.id
                    continue
            claim_ids[index] = connection.execute(
                insert(Claim).values(**row).returning(Claim.id)
            ).scalar_one()
    return claim_ids


def describe(outcome: Outcome) -> dict[str, Any]:
    """An outcome as plain data, for the CLI and the API."""
    data: dict[str, Any] = {
        "status": outcome.status,
        "member": outcome.request.member,
        "rule": outcome.request.rule,
        "points": outcome.points,
    }
    if outcome.entry is not None:
        data["seq"] = outcome.entry.seq
    if outcome.claim_id is not None:
        data["claim"] = outcome.claim_id
    if outcome.error is not None:
        data["error"] = {"code": outcome.error.code, "message": outcome.error.message}
    return data


REVERSING_ROLES = ("reviewer", "admin")
"""Who may reverse an award or deduction: a second look, as for approving a claim."""


def reverse_award(
    engine: Engine,
    programme: str,
    seq: int,
    *,
    actor: str,
    memo: str,
    idempotency_key: str | None = None,
) -> Appended:
    """Undo an award or deduction that should not have posted (wrong member, entered twice).

    A reversal moves points without a rule to check it, so it is not left to
    whoever awards: the actor must hold `reviewer` or `admin` on subtrees
    holding every member account the entry posts to. Only awards and
    deductions are reversed here; vouchers, settlements and expiry belong to
    their own services, which decide who may undo them. The reversal names
    what it reverses and says why (`memo`); a retry with the same
    `idempotency_key` returns the first reversal (`Appended.created` False).

    Raises `UnknownEntry`, `NotReversible` (not an award or deduction),
    `NotInScope`, `AlreadyReversed`, `IdempotencyConflict`, `InvalidEntry`
    (no memo, or a reserved idempotency key).
    """
    check_client_key(idempotency_key)
    if not isinstance(memo, str) or not memo.strip():
        raise errors.InvalidEntry("say why the entry is reversed", field="memo")
    original = get_entry(engine, programme, seq)
    if original.kind not in ("award", "deduction"):
        raise errors.NotReversible(
            f"entry {seq} is a {original.kind} entry; only awards and deductions are reversed "
            "this way", seq=seq, kind=original.kind,
        )
    accounts = [posting.account for posting in original.postings]
    with read_transaction(engine) as connection:
        programme_info = get_programme(connection, programme)
        member_codes = connection.execute(
            select(Member.code)
            .join(Account, Account.member_id == Member.id)
            .where(Account.programme_id == programme_info.id, Account.code.in_(accounts))
            .order_by(Member.code)
        ).scalars().all()
        members = [find_member(connection, programme_info.id, code) for code in member_codes]
        subtrees = [path for role in REVERSING_ROLES
                    for path in subtrees_of(connection, programme_info.id, actor, role)]
    outside = [member for member in members if not within(member.unit_path, subtrees)]
    if outside or not subtrees:
        where = f" for unit {outside[0].unit!r}" if outside else ""
        raise NotInScope(
            f"{actor!r} may not reverse entry {seq}: it needs the role "
            f"{' or '.join(REVERSING_ROLES)}{where}",
            actor=actor, seq=seq, members=[member.code for member in outside],
        )
    return reverse(engine, programme, seq, actor=actor, memo=memo,
                   idempotency_key=idempotency_key)
