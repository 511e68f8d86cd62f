"""The organiser's desk: find a person, see their points, and start an award or deduction.

The desk is for staff who apply the rules: organisers, reviewers and admins
(`DESK_ROLES`, the API's applying roles). Every check is the API's own
(`api.auth.require_staff`, `require_member_access`): a staff account acts
with its principal's grants, each on a unit's subtree, so the desk finds
only the people of the units its roles cover, and the ledger refuses
anything outside them. The other parts of the desk are their own modules:
awarding one person (`desk_awards`), sign-in sheets (`desk_sheets`),
claims waiting for a reviewer (`desk_claims`), entries and their reversal
(`desk_entries`). This module holds what they share.

Writes are idempotent against a double tap or a reload: a form carries an
`attempt` made when the form was shown, and the ledger's idempotency key is
`desk:<attempt>`, so sending the form again posts nothing more.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime

from flask import Blueprint, abort, g, render_template, request

from api.auth import Caller, require_member_access, require_staff
from ledger.accounts import member_account
from ledger.awards import REVERSING_ROLES
from ledger.errors import LedgerError
from ledger.organisation import (
    MAX_SEARCH_CHARS,
    get_household,
    get_unit,
    member_record,
    principal_roles,
    search_members,
    within,
)
from ledger.programmes import ProgrammeInfo, get_programme
from ledger.rules import current_rules
from ledger.statements import balance_of, statement
from web.accounts import STAFF, list_accounts
from web.formats import local_time
from web.refusals import in_plain_words
from web.sessions import engine, signed_in

blueprint = Blueprint("desk", __name__, url_prefix="/desk")

DESK_ROLES = ("organiser", "reviewer", "admin")
"""The roles that apply rules (`api.routes.awards.APPLYING_ROLES`): who the desk is for."""
MAX_MATCHES = 30
HISTORY_LINES = 20
ATTEMPT = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
ATTEMPT_KEY_PREFIX = "desk:"


@dataclass(frozen=True)
class Desk:
    """Who is at the desk: their programme, the caller as the API sees it, and their roles."""

    programme: ProgrammeInfo
    caller: Caller
    roles: dict[str, list[str]]
    """Role -> the unit paths it is held on."""

    @property
    def actor(self) -> str:
        return self.caller.actor

    def subtrees(self, roles: tuple[str, ...] = DESK_ROLES) -> list[str]:
        return [path for role in roles for path in self.roles.get(role, [])]

    def holds(self, roles: tuple[str, ...], unit_path: str | None = None) -> bool:
        """Does the caller hold one of `roles` (on a subtree holding `unit_path`, if given)?"""
        paths = self.subtrees(roles)
        return bool(paths) and (unit_path is None or within(unit_path, paths))

    def today(self) -> date:
        return datetime.now(UTC).astimezone(self.programme.zone).date()

    def when(self, timestamp: str) -> str:
        """A ledger timestamp in the programme's time zone, to the minute."""
        return local_time(timestamp, self.programme.zone)

    def day(self, timestamp: str) -> str:
        return local_time(timestamp, self.programme.zone)[:10]


def open_desk(roles: tuple[str, ...] = DESK_ROLES) -> Desk:
    """The signed-in staff account at the desk, if it holds one of `roles` anywhere in its
    programme; otherwise the API's `forbidden` (a page in plain words)."""
    account = g.signed_in.account
    caller = require_staff(account.programme, roles)
    return Desk(get_programme(engine(), account.programme), caller,
                principal_roles(engine(), account.programme, account.principal))


def new_attempt() -> str:
    """What a form carries so that sending it twice writes once."""
    return secrets.token_urlsafe(16)


def attempt_key() -> str:
    """The ledger's idempotency key for the attempt the posted form carries (400 without)."""
    attempt = request.form.get("attempt", "")
    if not ATTEMPT.match(attempt):
        abort(400)
    return ATTEMPT_KEY_PREFIX + attempt


def refusal_words(refusal: LedgerError) -> str:
    """A refusal in plain words, noting its code for the request log."""
    g.refusal_code = refusal.code
    return in_plain_words(refusal)


def staff_names(programme: str) -> dict[str, str]:
    """Principal -> the display name of a staff account acting as it, to name who did what."""
    return {account.principal: account.display_name
            for account in list_accounts(engine(), programme) if account.kind == STAFF}


def rule_names(programme: str) -> dict[str, str]:
    return {rule.code: rule.name for rule in current_rules(engine(), programme)}


@blueprint.get("")
@signed_in(STAFF)
def home():
    """Search for a person by name, household or unit, within the caller's units."""
    desk = open_desk()
    asked = request.args.get("q", "").strip()[:MAX_SEARCH_CHARS]
    matches = None
    if asked:
        matches = search_members(engine(), desk.programme.code, asked, desk.subtrees(),
                                 MAX_MATCHES + 1)
    return render_template("desk/home.html", desk=desk, asked=asked,
                           matches=matches[:MAX_MATCHES] if matches else matches,
                           more=bool(matches) and len(matches) > MAX_MATCHES,
                           can_reverse=desk.holds(REVERSING_ROLES))


@blueprint.get("/members/<member>")
@signed_in(STAFF)
def member(member: str):
    """One person: where they belong, their points, their latest entries; award or deduct."""
    desk = open_desk()
    require_member_access(desk.programme.code, member, DESK_ROLES)
    history = statement(engine(), desk.programme.code, member_account(member),
                        limit=HISTORY_LINES).lines
    return render_template("desk/member.html", desk=desk, **person(desk, member),
                           history=history, rules=rule_names(desk.programme.code),
                           reversed_seqs={line.reverses for line in history if line.reverses},
                           balance=balance_of(engine(), desk.programme.code,
                                              member_account(member)))


def person(desk: Desk, code: str) -> dict:
    """The member, their household and unit, for a page (`person`, `household`, `unit`)."""
    record = member_record(engine(), desk.programme.code, code)
    return {"person": record,
            "household": get_household(engine(), desk.programme.code, record.household),
            "unit": get_unit(engine(), desk.programme.code, record.unit)}
