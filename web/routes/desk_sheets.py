"""Sign-in sheets (签到表): upload a CSV or XLSX, see what each line would do, confirm.

Uploading reads the sheet (`ledger.sheets`, the API's reader) and tries
every line as a dry run (`ledger.awards.award_sheet`, as the API's
`POST /award-sheets?dry_run=true` does): each line says it will be awarded,
that it needs a reviewer, or why it cannot be, in plain words. The sheet is
kept in the evidence folder by its SHA-256 (web/evidence.py), and the
confirmation names it by that digest, so what is posted is exactly the file
that was checked.

Confirming posts the good lines together; the refused ones are refused
again and post nothing. Each line's idempotency key is
`sheet:<first 32 hex digits of the sheet's SHA-256>:<line number>`, the
key the API gives a sheet sent without an Idempotency-Key, so confirming
twice, uploading the same file again, or sending it through the API as
well never awards a line twice: posted lines come back as already awarded.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from flask import Blueprint, Response, abort, g, render_template, request
from flask_babel import gettext as _

from ledger import errors, sheets
from ledger.awards import AwardRequest, Outcome, award_sheet
from ledger.chain import entries_by_key
from ledger.organisation import member_names
from web import evidence
from web.accounts import STAFF
from web.i18n import chosen_language
from web.refusals import words_for
from web.routes.desk import DESK_ROLES, Desk, open_desk, refusal_words, rule_names
from web.sessions import engine, signed_in

blueprint = Blueprint("desk_sheets", __name__, url_prefix="/desk/sheets")

TEMPLATE_COLUMNS = {"zh_CN": "成员,规则,数量,日期,备注",
                    "en": "member,rule,quantity,occurred_at,memo"}


@dataclass(frozen=True)
class Line:
    """One line of the sheet as the page shows it."""

    number: int
    member: str
    name: str
    rule: str
    status: str
    """An `Outcome` status (`would_post`, `posted`, `refused`, ...)."""
    points: int | None
    refusal: str | None


@blueprint.get("")
@signed_in(STAFF)
def upload_form():
    return render_template("desk/sheet_upload.html", desk=open_desk(DESK_ROLES))


@blueprint.get("/template.csv")
@signed_in(STAFF)
def template():
    """An empty sheet with the header row, for Excel (UTF-8 with BOM)."""
    header = TEMPLATE_COLUMNS.get(chosen_language(), TEMPLATE_COLUMNS["zh_CN"])
    return Response("\ufeff" + header + "\r\n", mimetype="text/csv",
                    headers={"Content-Disposition": 'attachment; filename="sign-in-sheet.csv"'})


@blueprint.post("")
@signed_in(STAFF)
def check():
    """Read the sheet and show each line's outcome as a dry run; post nothing."""
    desk = open_desk(DESK_ROLES)
    upload = request.files.get("sheet")
    if upload is None or not upload.filename:
        return _upload_page(desk, words_for("invalid_sheet", {"reason": "empty"}, ""))
    content = upload.read()
    try:
        parsed = sheets.parse_sheet(content, upload.filename, desk.programme.zone)
    except sheets.InvalidSheet as refusal:
        return _upload_page(desk, refusal_words(refusal))
    reference = evidence.store().keep(desk.programme.code, content)
    moment = datetime.now(desk.programme.zone).replace(microsecond=0)
    lines = _outcomes(desk, parsed, reference, moment, dry_run=True)
    return render_template("desk/sheet_check.html", desk=desk, lines=lines,
                           filename=upload.filename, reference=reference,
                           moment=moment.isoformat(), counts=_counts(lines))


@blueprint.post("/confirm")
@signed_in(STAFF)
def confirm():
    """Post the sheet's good lines; a sheet confirmed again posts nothing more."""
    desk = open_desk(DESK_ROLES)
    reference = request.form.get("sheet", "")
    path = evidence.store().find(desk.programme.code, reference)
    if path is None:
        abort(400)
    filename = request.form.get("filename", "")[:200]
    try:
        moment = datetime.fromisoformat(request.form.get("moment", ""))
    except ValueError:
        abort(400)
    if moment.tzinfo is None:
        abort(400)
    try:
        parsed = sheets.parse_sheet(path.read_bytes(), filename, desk.programme.zone)
        lines = _outcomes(desk, parsed, reference, moment, dry_run=False)
    except errors.IdempotencyConflict as refusal:
        g.refusal_code = refusal.code
        return _upload_page(desk, _("This same file was already posted by someone else, or "
                                    "with other content. Nothing was posted."), status=409)
    except errors.LedgerError as refusal:
        return _upload_page(desk, refusal_words(refusal), status=409)
    return render_template("desk/sheet_done.html", desk=desk, lines=lines, filename=filename,
                           counts=_counts(lines))


def _outcomes(desk: Desk, parsed: list[sheets.SheetLine], reference: str, moment: datetime,
              dry_run: bool) -> list[Line]:
    """Each line's outcome, in the sheet's order; unreadable lines are refused as read.

    A line without a date happened at `moment`, fixed when the sheet was checked and sent
    back with the confirmation, so that confirming twice is the same request twice. A line
    already posted from this sheet (its key has an entry) is not tried again: it shows as
    already awarded, however long ago the sheet was posted.
    """
    base_key = "sheet:" + reference.removeprefix(evidence.PREFIX)[:32]
    readable = [line for line in parsed if line.error is None]
    requests = [AwardRequest(line.request.member, line.request.rule, line.request.quantity,
                             line.request.occurred_at or moment, line.request.evidence,
                             line.request.memo, f"{base_key}:{line.number}")
                for line in readable]
    already = entries_by_key(engine(), desk.programme.code,
                             [request_.idempotency_key for request_ in requests])
    fresh = [request_ for request_ in requests if request_.idempotency_key not in already]
    tried = iter(award_sheet(engine(), desk.programme.code, fresh, actor=desk.actor,
                             dry_run=dry_run))
    outcomes = [Outcome("replayed", request_) if request_.idempotency_key in already
                else next(tried) for request_ in requests]
    by_number: dict[int, Outcome] = {line.number: outcome
                                     for line, outcome in zip(readable, outcomes, strict=True)}
    names = member_names(engine(), desk.programme.code,
                         [outcome.request.member for outcome in outcomes
                          if outcome.error is None])
    rules = rule_names(desk.programme.code)
    shown = []
    for line in parsed:
        outcome = by_number.get(line.number)
        refusal = line.error if outcome is None else outcome.error
        shown.append(Line(
            line.number, line.member or "", names.get(line.member or "", ""),
            rules.get(line.rule or "", line.rule or ""),
            "refused" if outcome is None else outcome.status,
            None if outcome is None else outcome.points,
            refusal_words(refusal) if refusal is not None else None))
    return shown


def _counts(lines: list[Line]) -> dict[str, int]:
    """How many lines of each status, and `good` (will be or were awarded or proposed),
    `to_review` (of those, waiting for a reviewer)."""
    counts = {status: sum(line.status == status for line in lines) for status in (
        "would_post", "would_propose", "posted", "proposed", "replayed", "refused")}
    return counts | {
        "good": sum(counts[status] for status in ("would_post", "would_propose", "posted",
                                                   "proposed")),
        "to_review": counts["would_propose"] + counts["proposed"]}


def _upload_page(desk: Desk, refusal: str, status: int = 422):
    return render_template("desk/sheet_upload.html", desk=desk, refusal=refusal), status
