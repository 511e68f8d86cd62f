"""Award or deduct points for one person: choose a rule, fill in the details, check, confirm.

1. the rules of the catalog that can be used for this person, by category
   (`sign` award or deduction; in force today, in the person's scope, and
   allowed to one of the caller's roles over the person's unit);
2. the details: the quantity where the rule counts units (minutes, yuan),
   the day it happened, a note (for a deduction, the reason, required) and
   a photo as evidence (for a deduction, or where the rule requires one);
3. a check: the award is tried as a dry run (`ledger.awards.award_sheet`,
   exactly as `POST /awards?dry_run=true`), and the page says what will
   happen, or why it cannot, in plain words;
4. confirm: it posts (or becomes a claim for a reviewer) under the
   idempotency key of the form's attempt, so a double tap posts once.

A photo is kept in the evidence folder by its SHA-256 (web/evidence.py) when
the details are checked; the entry's evidence is `sha256:<hex>`.
"""

from __future__ import annotations

from datetime import datetime, time

from flask import Blueprint, abort, current_app, redirect, render_template, request, url_for

from api.auth import require_member_access
from ledger import errors
from ledger.awards import AwardRequest, Outcome, award_sheet
from ledger.chain import MAX_MEMO_CHARS
from ledger.organisation import unit_path_of, within
from ledger.rules import InvalidQuantity, Rule, current_rules
from web import evidence
from web.accounts import STAFF
from web.photos import MAX_PHOTO_BYTES, PhotoError
from web.refusals import words_for
from web.routes.desk import (
    DESK_ROLES,
    Desk,
    attempt_key,
    new_attempt,
    open_desk,
    person,
    refusal_words,
)
from web.sessions import engine, signed_in

blueprint = Blueprint("desk_awards", __name__, url_prefix="/desk/members/<member>")

SIGNS = "any(award, deduction)"
MAX_QUANTITY_DIGITS = 9


@blueprint.url_value_preprocessor
def accept_photos(endpoint: str | None, _values: dict | None) -> None:
    """A phone's photo may be larger than the API's body limit: allow it where one is sent."""
    if endpoint == "pages.desk_awards.check":
        request.max_content_length = max(current_app.config.get("MAX_CONTENT_LENGTH") or 0,
                                         MAX_PHOTO_BYTES + 64 * 1024)


@blueprint.get(f"/<{SIGNS}:sign>")
@signed_in(STAFF)
def rules(member: str, sign: str):
    desk = open_desk()
    require_member_access(desk.programme.code, member, DESK_ROLES)
    found = person(desk, member)
    usable = [rule for rule in current_rules(engine(), desk.programme.code)
              if rule.sign == sign and _usable(desk, rule, found["person"].unit_path)]
    return render_template("desk/rules.html", desk=desk, sign=sign, rules=usable, **found)


@blueprint.get(f"/<{SIGNS}:sign>/<rule>")
@signed_in(STAFF)
def details(member: str, sign: str, rule: str):
    desk = open_desk()
    require_member_access(desk.programme.code, member, DESK_ROLES)
    return _details_page(desk, member, sign, _rule(desk, rule, sign), _Form.empty(desk))


@blueprint.post(f"/<{SIGNS}:sign>/<rule>")
@signed_in(STAFF)
def check(member: str, sign: str, rule: str):
    """Try the award as a dry run and show what will happen, or why it cannot."""
    desk = open_desk()
    require_member_access(desk.programme.code, member, DESK_ROLES)
    chosen = _rule(desk, rule, sign)
    form = _Form.read(desk)
    try:
        form.keep_photo(desk)
        form.fix_moment(desk)
        outcome = _try(desk, member, chosen, form, dry_run=True)
    except (errors.LedgerError, PhotoError) as refusal:
        return _details_page(desk, member, sign, chosen, form, refusal), 422
    return render_template("desk/confirm.html", desk=desk, sign=sign, rule=chosen, form=form,
                           outcome=outcome, **person(desk, member))


@blueprint.post(f"/<{SIGNS}:sign>/<rule>/confirm")
@signed_in(STAFF)
def confirm(member: str, sign: str, rule: str):
    """Post the award (or propose it as a claim), once however often the form is sent."""
    desk = open_desk()
    require_member_access(desk.programme.code, member, DESK_ROLES)
    chosen = _rule(desk, rule, sign)
    form = _Form.read(desk)
    try:
        outcome = _try(desk, member, chosen, form, dry_run=False)
    except errors.LedgerError as refusal:
        status = 409 if refusal.code in ("idempotency_conflict", "rule_changed") else 422
        return _details_page(desk, member, sign, chosen, form, refusal), status
    if outcome.claim_id is not None:
        return redirect(url_for("pages.desk_claims.claim", claim_id=outcome.claim_id,
                                done="proposed"), code=303)
    return redirect(url_for("pages.desk_entries.entry", seq=outcome.entry.seq, done=sign),
                    code=303)


class _Form:
    """The details as sent: quantity, day, note, evidence and the attempt; once checked, the
    exact moment recorded (`occurred_at`), so that sending the confirmation again is the very
    same request."""

    def __init__(self, quantity: str, day: str, memo: str, evidence_reference: str,
                 attempt: str, moment: str = "") -> None:
        self.quantity = quantity
        self.day = day
        self.memo = memo
        self.evidence = evidence_reference
        self.attempt = attempt
        self.moment = moment

    @classmethod
    def empty(cls, desk: Desk) -> _Form:
        return cls("", desk.today().isoformat(), "", "", new_attempt())

    @classmethod
    def read(cls, desk: Desk) -> _Form:
        attempt_key()  # a form without its attempt is not one of ours
        reference = request.form.get("evidence", "")
        if reference and evidence.store().find(desk.programme.code, reference) is None:
            abort(400)
        return cls(request.form.get("quantity", "").strip()[:MAX_QUANTITY_DIGITS + 1],
                   request.form.get("day", "").strip()[:10],
                   request.form.get("memo", "").strip()[:MAX_MEMO_CHARS + 1],
                   reference, request.form["attempt"],
                   request.form.get("moment", "").strip()[:40])

    def fix_moment(self, desk: Desk) -> None:
        """When it happened: now for today, noon (programme time) for an earlier day, as
        sign-in sheets read a date alone."""
        try:
            day = datetime.strptime(self.day, "%Y-%m-%d").date()
        except ValueError:
            abort(400)
        today = desk.today()
        if day > today:
            raise errors.InvalidEntry("the day is in the future", field="occurred_at")
        moment = (datetime.now(desk.programme.zone).replace(microsecond=0) if day == today
                  else datetime.combine(day, time(12), tzinfo=desk.programme.zone))
        self.moment = moment.isoformat()

    def occurred_at(self) -> datetime:
        """The moment fixed when the details were checked (400 if it is not one)."""
        try:
            moment = datetime.fromisoformat(self.moment)
        except ValueError:
            abort(400)
        if moment.tzinfo is None:
            abort(400)
        return moment

    def keep_photo(self, desk: Desk) -> None:
        """Keep the photo sent with the form, if any; it becomes the evidence."""
        photo = request.files.get("photo")
        if photo is None or not photo.filename:
            return
        content = photo.read(MAX_PHOTO_BYTES + 1)
        evidence.check_photo(content)
        self.evidence = evidence.store().keep(desk.programme.code, content)


def _try(desk: Desk, member: str, rule: Rule, form: _Form, dry_run: bool) -> Outcome:
    """The form as an award request, tried (dry run) or posted; raises the refusal."""
    if rule.sign == "deduction" and not form.memo:
        raise errors.InvalidEntry("say why points are deducted", field="memo")
    request_ = AwardRequest(member=member, rule=rule.code, quantity=_quantity(form.quantity),
                            occurred_at=form.occurred_at(),
                            evidence=form.evidence or None, memo=form.memo,
                            idempotency_key=attempt_key())
    outcome = award_sheet(engine(), desk.programme.code, [request_], actor=desk.actor,
                          dry_run=dry_run)[0]
    if outcome.error is not None:
        raise outcome.error
    return outcome


def _quantity(text: str) -> int | None:
    if not text:
        return None
    if not text.isdigit() or len(text) > MAX_QUANTITY_DIGITS:
        raise InvalidQuantity("the quantity must be a whole number", field="quantity")
    return int(text)


def _rule(desk: Desk, code: str, sign: str) -> Rule:
    for rule in current_rules(engine(), desk.programme.code):
        if rule.code == code and rule.sign == sign:
            return rule
    abort(404)


def _usable(desk: Desk, rule: Rule, unit_path: str) -> bool:
    """Can the caller use `rule` for a person at `unit_path` today?"""
    if not rule.in_force_at(datetime.now(desk.programme.zone), desk.programme.zone):
        return False
    if rule.scope is not None and not unit_path.startswith(
            unit_path_of(engine(), desk.programme.code, rule.scope)):
        return False
    return within(unit_path, desk.subtrees(tuple(rule.roles)))


def _details_page(desk: Desk, member: str, sign: str, rule: Rule, form: _Form,
                  refusal: errors.LedgerError | PhotoError | None = None):
    if isinstance(refusal, PhotoError):
        words = words_for(refusal.reason, {}, refusal.reason)
    elif refusal is not None:
        words = refusal_words(refusal)
    else:
        words = None
    return render_template("desk/details.html", desk=desk, sign=sign, rule=rule, form=form,
                           refusal=words, **person(desk, member))
