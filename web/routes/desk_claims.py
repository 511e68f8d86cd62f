"""Claims waiting for a second person (待审核): approve, or reject with a reason.

A rule that needs approval turns an award or deduction into a claim
(`ledger.claims`). The list shows a reviewer the pending claims of the
people in their units, and everyone the open claims they proposed
themselves. Deciding is the API's `POST /claims/<id>/approve` and
`/reject`: the `reviewer` role, and `ledger.claims` refuses a reviewer
outside the person's units and the proposer deciding their own claim
(`same_person`), which the page says in plain words before anyone tries.

A double tap is harmless: a claim is decided once, and a second approval or
rejection of a claim this same reviewer has just decided that way shows the
decision, not a refusal.
"""

from __future__ import annotations

from flask import Blueprint, redirect, render_template, request, url_for

from ledger import claims, errors
from ledger.organisation import member_names, member_record, within
from web import evidence
from web.accounts import STAFF
from web.routes.desk import Desk, open_desk, refusal_words, rule_names, staff_names
from web.sessions import engine, signed_in

blueprint = Blueprint("desk_claims", __name__, url_prefix="/desk/claims")

DECIDING_ROLES = ("reviewer",)
"""Who decides claims (`api.routes.claims.DECIDING_ROLES`)."""
MAX_LISTED = 200
DONE = ("proposed", "approved", "rejected")


@blueprint.get("")
@signed_in(STAFF)
def pending():
    desk = open_desk()
    open_claims = [claim for status in claims.OPEN_STATUSES
                   for claim in claims.list_claims(engine(), desk.programme.code, status)]
    proposed = [claim for claim in open_claims if claim.proposer == desk.actor][:MAX_LISTED]
    to_decide = []
    for claim in open_claims:
        if len(to_decide) == MAX_LISTED:
            break
        if claim.status == "pending" and claim.proposer != desk.actor and _reviews(desk, claim):
            to_decide.append(claim)
    return render_template(
        "desk/claims.html", desk=desk, to_decide=to_decide, proposed=proposed,
        names=member_names(engine(), desk.programme.code,
                           [claim.member for claim in to_decide + proposed]),
        rules=rule_names(desk.programme.code), staff=staff_names(desk.programme.code),
        is_reviewer=desk.holds(DECIDING_ROLES))


@blueprint.get("/<int(max=2147483647):claim_id>")
@signed_in(STAFF)
def claim(claim_id: int):
    return _claim_page(open_desk(), claim_id)


@blueprint.post("/<int(max=2147483647):claim_id>/approve")
@signed_in(STAFF)
def approve(claim_id: int):
    desk = open_desk(DECIDING_ROLES)
    try:
        claims.approve(engine(), desk.programme.code, claim_id, reviewer=desk.actor)
    except errors.LedgerError as refusal:
        if not _already_decided_so(desk, claim_id, refusal, ("notice", "posted")):
            return _claim_page(desk, claim_id, refusal), _status(refusal)
    return redirect(url_for(".claim", claim_id=claim_id, done="approved"), code=303)


@blueprint.post("/<int(max=2147483647):claim_id>/reject")
@signed_in(STAFF)
def reject(claim_id: int):
    desk = open_desk(DECIDING_ROLES)
    reason = request.form.get("reason", "").strip()[:claims.MAX_REASON_CHARS + 1]
    try:
        claims.reject(engine(), desk.programme.code, claim_id, reviewer=desk.actor,
                      reason=reason)
    except errors.LedgerError as refusal:
        if not _already_decided_so(desk, claim_id, refusal, ("rejected",)):
            return _claim_page(desk, claim_id, refusal, reason), _status(refusal)
    return redirect(url_for(".claim", claim_id=claim_id, done="rejected"), code=303)


def _reviews(desk: Desk, claim: claims.ClaimInfo) -> bool:
    """May the caller decide `claim` (a reviewer over the person's unit)?"""
    subtrees = desk.subtrees(DECIDING_ROLES)
    return bool(subtrees) and within(
        member_record(engine(), desk.programme.code, claim.member).unit_path, subtrees)


def _already_decided_so(desk: Desk, claim_id: int, refusal: errors.LedgerError,
                        statuses: tuple[str, ...]) -> bool:
    """Was the refusal only that this reviewer's own decision came first (a double tap)?"""
    if not isinstance(refusal, claims.ClaimNotOpen):
        return False
    found = claims.get_claim(engine(), desk.programme.code, claim_id)
    return found.status in statuses and found.decided_by == desk.actor


def _status(refusal: errors.LedgerError) -> int:
    if refusal.code in ("same_person", "not_in_scope"):
        return 403
    if refusal.code == "unknown_claim":
        return 404
    return 409 if refusal.code in ("claim_not_open", "rule_changed") else 422


def _claim_page(desk: Desk, claim_id: int, refusal: errors.LedgerError | None = None,
                reason: str = ""):
    try:
        found = claims.get_claim(engine(), desk.programme.code, claim_id)
    except claims.UnknownClaim as unknown:
        return render_template("desk/claim.html", desk=desk, claim=None,
                               refusal=refusal_words(unknown)), 404
    photo = evidence.store().find(desk.programme.code, found.evidence)
    return render_template(
        "desk/claim.html", desk=desk, claim=found,
        name=member_names(engine(), desk.programme.code, [found.member]).get(found.member, ""),
        rules=rule_names(desk.programme.code), staff=staff_names(desk.programme.code),
        photo=photo is not None and evidence.media_type_of(photo) is not None,
        own=found.proposer == desk.actor,
        reviews=desk.holds(DECIDING_ROLES) and _reviews(desk, found),
        done=request.args.get("done") if request.method == "GET" else None,
        refusal=refusal_words(refusal) if refusal else None, reason=reason)
