"""Refusals in plain words: a sentence for each refusal code a page can meet, in the page's
language, with what the refusal's details tell (which member, which day, how much is used).

The ledger's refusals carry a stable `code` and details (ledger/errors.py);
people should never see either. `in_plain_words` turns one into a sentence
through the pages' catalogs (web/i18n.py); a code without a sentence here
falls back to the refusal's own message, so a new refusal is shown, in
English, rather than hidden.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from flask_babel import gettext as _

from api.problems import ApiProblem
from ledger import errors

Details = Mapping[str, Any]


def in_plain_words(refusal: errors.LedgerError | ApiProblem) -> str:
    """What went wrong, for a person, in the page's language."""
    if isinstance(refusal, ApiProblem):
        code, details, message = refusal.code, refusal.extra, refusal.detail
    else:
        code, details, message = refusal.code, refusal.details, refusal.message
    return words_for(code, details, message)


def words_for(code: str, details: Details, message: str) -> str:
    sentence = _SENTENCES.get(code)
    if sentence is None:
        return message
    return sentence(details) or message


def _invalid_entry(details: Details) -> str | None:
    field = details.get("field")
    if field == "occurred_at":
        return _("The date cannot be later than today.")
    if field in ("memo", "reason"):
        return _("Write a reason, in at most 2,000 characters.")
    if field == "q":
        return _("Type 1 to 50 characters to search for.")
    return None


def _invalid_sheet(details: Details) -> str | None:
    reason = details.get("reason")
    line, value = details.get("line"), details.get("value", "")
    return {
        "empty": lambda: _("The file is empty."),
        "no_lines": lambda: _("The sheet has a header row but no lines under it."),
        "too_many_lines": lambda: _("A sheet may have at most %(num)d lines; split it in two.",
                                    num=details.get("max_lines", 0)),
        "not_text": lambda: _("The file cannot be read as text. Save it from Excel as CSV "
                              "(UTF-8) or XLSX and try again."),
        "unreadable": lambda: _("The file cannot be read. Save it from Excel as CSV or XLSX "
                                "and try again."),
        "missing_columns": lambda: _("The first row must name the columns, with at least "
                                     "成员 (member) and 规则 (rule)."),
        "incomplete_line": lambda: _("Line %(line)s has no member or no rule.", line=line),
        "bad_quantity": lambda: _("Line %(line)s: the quantity “%(value)s” is not a whole "
                                  "number.", line=line, value=value),
        "bad_date": lambda: _("Line %(line)s: “%(value)s” is not a date like 2026-11-20 or "
                              "2026-11-20 09:30.", line=line, value=value),
    }.get(reason, lambda: None)()


def _over_cap(details: Details) -> str:
    times, points = details.get("used_times", 0), details.get("used_points", 0)
    period = details.get("period")
    used = {
        "day": lambda: _("That day it has already been used %(times)d time(s), for %(points)d "
                         "point(s).", times=times, points=points),
        "week": lambda: _("That week it has already been used %(times)d time(s), for "
                          "%(points)d point(s).", times=times, points=points),
        "month": lambda: _("That month it has already been used %(times)d time(s), for "
                           "%(points)d point(s).", times=times, points=points),
        "year": lambda: _("That year it has already been used %(times)d time(s), for "
                          "%(points)d point(s).", times=times, points=points),
    }.get(period, lambda: _("It has already been used %(times)d time(s), for %(points)d "
                            "point(s), in all.", times=times, points=points))()
    return _("The limit of this rule is reached for this person (or household).") + " " + used


def _claim_not_open(details: Details) -> str:
    status = details.get("status")
    return {
        "notice": lambda: _("This claim has already been approved and is on public notice."),
        "objected": lambda: _("This claim has been objected to; it waits for the objection "
                              "to be settled."),
        "posted": lambda: _("This claim has already been approved and its points are in the "
                            "books."),
        "rejected": lambda: _("This claim has already been rejected."),
    }.get(status, lambda: _("This claim has already been decided."))()


_SENTENCES: dict[str, Callable[[Details], str | None]] = {
    "unknown_member": lambda d: _("No one in the programme has the code %(member)s.",
                                  member=d.get("member", "")),
    "unknown_rule": lambda d: _("There is no rule %(rule)s in the programme's catalog.",
                                rule=d.get("rule", "")),
    "rule_not_in_force": lambda d: _("This rule was not in force on %(day)s.",
                                     day=d.get("day", "")),
    "rule_out_of_scope": lambda d: _("This rule does not apply where this person lives."),
    "not_in_scope": lambda d: _("This person is not in the units your roles cover, so you "
                                "may not do this for them."),
    "role_not_allowed": lambda d: _("Your role may not use this rule here; it is for another "
                                    "role."),
    "evidence_required": lambda d: _("This rule needs evidence: add a photo."),
    "invalid_quantity": lambda d: _("The quantity does not fit this rule: give a whole number, "
                                    "no more than the rule allows and enough for at least one "
                                    "point."),
    "over_cap": _over_cap,
    "cooldown_active": lambda d: _("This rule was used for this person a short while ago; it "
                                   "cannot be used again so soon."),
    "rule_changed": lambda d: _("The rule changed a moment ago. Nothing was done; check and "
                                "confirm again."),
    "idempotency_conflict": lambda d: _("This form was already sent with other content. Go back "
                                        "and start again."),
    "invalid_entry": _invalid_entry,
    "invalid_sheet": _invalid_sheet,
    "same_person": lambda d: _("You proposed this claim yourself, so another reviewer must "
                               "approve or reject it."),
    "claim_not_open": _claim_not_open,
    "unknown_claim": lambda d: _("There is no such claim."),
    "already_reversed": lambda d: _("This entry has already been reversed (by entry "
                                    "%(seq)s).", seq=d.get("reversed_by", "?")),
    "not_reversible": lambda d: _("Only awards and deductions can be reversed here."),
    "unknown_entry": lambda d: _("There is no entry number %(seq)s.", seq=d.get("seq", "")),
    "storage_busy": lambda d: _("The system is busy. Nothing was done; wait a moment and try "
                                "again."),
    "forbidden": lambda d: _("Your roles do not allow this here. Ask the programme office."),
    "not_an_image": lambda d: _("The file is not a photo (JPEG, PNG, WebP or GIF)."),
    "too_large": lambda d: _("The photo is too large. Take it again, or choose a smaller "
                             "one."),
}
