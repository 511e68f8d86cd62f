"""One entry of the books, its evidence photo, and reversing it with a reason.

An entry is read as the API reads it (`GET /entries/<seq>`: any staff role
of the programme). Reversing is the API's too (`POST /entries/<seq>/reversal`
through `ledger.awards.reverse_award`): a reviewer or admin over every
member the entry touches, for awards and deductions only, once; the reason
is the reversal's memo. The form's attempt is the idempotency key, so a
double tap reverses once and shows the same page.

Evidence photos (web/evidence.py) are served to the programme's staff only,
from the programme's own folder.
"""

from __future__ import annotations

import re

from flask import Blueprint, abort, redirect, render_template, request, send_file, url_for

from api.auth import STAFF_ROLES
from ledger import errors
from ledger.accounts import member_account
from ledger.awards import REVERSING_ROLES, reverse_award
from ledger.chain import MAX_MEMO_CHARS, Entry, get_entry, reversal_of
from ledger.organisation import member_names
from web import evidence
from web.accounts import STAFF
from web.routes.desk import (
    Desk,
    attempt_key,
    new_attempt,
    open_desk,
    refusal_words,
    rule_names,
    staff_names,
)
from web.sessions import engine, signed_in

blueprint = Blueprint("desk_entries", __name__, url_prefix="/desk")

MAX_SEQ = 2**63 - 1
REVERSIBLE_KINDS = ("award", "deduction")
DONE = ("award", "deduction", "reversed")
_DIGEST = re.compile(r"^[0-9a-f]{64}$")
MEMBER_PREFIX = member_account("")


@blueprint.get("/entries")
@signed_in(STAFF)
def find():
    """The entry whose number was typed on the desk's first page."""
    typed = request.args.get("seq", "").strip().lstrip("#")
    if not typed.isdigit() or len(typed) > 19 or int(typed) > MAX_SEQ:
        return redirect(url_for("pages.desk.home"))
    return redirect(url_for(".entry", seq=int(typed)))


@blueprint.get(f"/entries/<int(max={MAX_SEQ}):seq>")
@signed_in(STAFF)
def entry(seq: int):
    desk = open_desk(STAFF_ROLES)
    return _entry_page(desk, seq)


@blueprint.post(f"/entries/<int(max={MAX_SEQ}):seq>/reversal")
@signed_in(STAFF)
def reverse(seq: int):
    """Reverse an award or deduction, saying why; once, however often the form is sent."""
    desk = open_desk(REVERSING_ROLES)
    reason = request.form.get("reason", "").strip()[:MAX_MEMO_CHARS + 1]
    try:
        reverse_award(engine(), desk.programme.code, seq, actor=desk.actor, memo=reason,
                      idempotency_key=attempt_key())
    except errors.LedgerError as refusal:
        status = 409 if refusal.code in ("already_reversed", "idempotency_conflict") else (
            403 if refusal.code == "not_in_scope" else 422)
        return _entry_page(desk, seq, refusal, reason), status
    return redirect(url_for(".entry", seq=seq, done="reversed"), code=303)


@blueprint.get("/evidence/<digest>")
@signed_in(STAFF)
def photo(digest: str):
    """An evidence photo of the caller's programme."""
    desk = open_desk(STAFF_ROLES)
    if not _DIGEST.match(digest):
        abort(404)
    path = evidence.store().find(desk.programme.code, evidence.PREFIX + digest)
    media_type = evidence.media_type_of(path) if path else None
    if media_type is None:
        abort(404)
    return send_file(path, mimetype=media_type, download_name=f"{digest}.{media_type[6:]}",
                     max_age=0)


def _entry_page(desk: Desk, seq: int, refusal: errors.LedgerError | None = None,
                reason: str = ""):
    try:
        found = get_entry(engine(), desk.programme.code, seq)
    except errors.UnknownEntry as unknown:
        return render_template("desk/entry.html", desk=desk, entry=None,
                               refusal=refusal_words(unknown)), 404
    reversed_by = reversal_of(engine(), desk.programme.code, seq)
    members = _members(desk, found)
    photo_kept = evidence.store().find(desk.programme.code, found.evidence)
    return render_template(
        "desk/entry.html", desk=desk, entry=found, members=members, reversed_by=reversed_by,
        rules=rule_names(desk.programme.code), staff=staff_names(desk.programme.code),
        photo=photo_kept is not None and evidence.media_type_of(photo_kept) is not None,
        can_reverse=(found.kind in REVERSIBLE_KINDS and reversed_by is None
                     and desk.holds(REVERSING_ROLES)),
        done=request.args.get("done") if request.method == "GET" else None,
        refusal=refusal_words(refusal) if refusal else None, reason=reason,
        attempt=new_attempt())


def _members(desk: Desk, found: Entry) -> list[tuple[str, str, int]]:
    """(code, name, points) of each member account the entry posts to."""
    postings = [(posting.account.removeprefix(MEMBER_PREFIX), posting.points)
                for posting in found.postings if posting.account.startswith(MEMBER_PREFIX)]
    names = member_names(engine(), desk.programme.code, [code for code, _ in postings])
    return [(code, names.get(code, code), points) for code, points in postings]
