"""The three boards (三张榜单) as JSON: standings, public disclosure, honour roll.

Boards are public (no key needed): they are what a village posts in its
hall, and they name nobody in full. Names of members and households are
masked (张三丰 → 张*丰); no member code, member id or account name appears.
Unit names, rule names, points, dates, memos and entry `seq`s do: the
`seq` lets a resident ask for the proof of an entry, and the memo is the
reason people may object to. Responses may be cached for a minute.

Every board takes `unit` (a subtree; default the whole programme) and a
period: `period` = day, week, month, year (the one holding `at`, a local
date, default today) or lifetime; or `from` and `to` (local dates, `to`
excluded) for a range. See `audit.boards` for what counts and how.
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import date

from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from api.auth import engine
from api.problems import ApiProblem
from api.schemas import CODE, RequestSchema
from audit import boards
from ledger.rules import PERIODS

blueprint = Blueprint("boards", __name__, url_prefix="/programmes/<programme>/boards",
                      description="积分榜, 公示榜, 光荣榜: the community boards, names masked "
                                  "(no authentication).")

BOARDS_MAX_AGE_SECONDS = 60
"""How long a browser or proxy may cache a board: a wall display polls; the ledger moves
by the minute, not the millisecond."""
MAX_OFFSET = 2**31 - 1
MAX_SEQ = 2**63 - 1
_CURSOR_TEXT = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_CURSOR_POSITION = re.compile(r"^before:(0|[1-9][0-9]{0,18})\.(0|[1-9][0-9]{0,9})$")


class BoardDate(fields.Date):
    """A calendar day (YYYY-MM-DD) in the programme's time zone, within the boards' calendar."""

    def __init__(self, **kwargs) -> None:
        super().__init__(format="iso", validate=validate.Range(
            min=boards.EARLIEST_DATE, max=boards.LATEST_DATE), **kwargs)


class BoardQuerySchema(RequestSchema):
    unit = fields.String(load_default=None, validate=CODE, metadata={
        "description": "a unit's code: its whole subtree; absent for the programme"})
    period = fields.String(load_default=None, validate=validate.OneOf((*PERIODS, boards.RANGE)),
                           metadata={"description": "the period holding `at`; `range` (or "
                                                    "just `from` and `to`) for a range"})
    at = BoardDate(load_default=None, metadata={
        "description": "a local date in the period (default today); ignored for lifetime"})
    start = BoardDate(data_key="from", load_default=None, metadata={
        "description": "first local date of a range"})
    end = BoardDate(data_key="to", load_default=None, metadata={
        "description": "local date the range ends before (excluded)"})


class StandingsQuerySchema(BoardQuerySchema):
    by = fields.String(load_default="member", validate=validate.OneOf(boards.BY))
    limit = fields.Integer(load_default=50, validate=validate.Range(
        min=1, max=boards.MAX_STANDINGS_ROWS))
    offset = fields.Integer(load_default=0, validate=validate.Range(min=0, max=MAX_OFFSET),
                            metadata={"description": "`next_offset` of the previous page"})


class DisclosureQuerySchema(BoardQuerySchema):
    limit = fields.Integer(load_default=50, validate=validate.Range(
        min=1, max=boards.MAX_DISCLOSURE_LINES))
    cursor = fields.String(load_default=None, metadata={
        "description": "`next_cursor` of the previous page, unchanged; absent for the newest"})


class HonourQuerySchema(BoardQuerySchema):
    top = fields.Integer(load_default=10, validate=validate.Range(min=1,
                                                                  max=boards.MAX_HONOUR_TOP))


class PeriodSchema(Schema):
    kind = fields.String(required=True, metadata={
        "description": "day, week, month, year, lifetime or range"})
    label = fields.String(required=True, metadata={"description": "as a person says it"})
    start = fields.Date(required=True, allow_none=True, metadata={
        "description": "first local date; null for lifetime"})
    end = fields.Date(required=True, allow_none=True, metadata={
        "description": "local date the period ends before; null for lifetime"})


class UnitRefSchema(Schema):
    code = fields.String(required=True)
    name = fields.String(required=True)


class StandingSchema(Schema):
    """A member's row (`name` set, `members` null) or a household's (`name` null)."""

    rank = fields.Integer(required=True, metadata={"description": "ties share a rank: 1, 2, 2, 4"})
    name = fields.Function(lambda row: getattr(row, "name", None), required=True,
                           allow_none=True, metadata={"description": "masked; null for a "
                                                                     "household"})
    household = fields.String(required=True, metadata={"description": "masked"})
    unit = fields.String(required=True, metadata={"description": "the unit's name"})
    members = fields.Function(lambda row: getattr(row, "members", None), required=True,
                              allow_none=True, metadata={
                                  "description": "a household's members; null for a member"})
    score_points = fields.Integer(required=True)


class StandingsSchema(Schema):
    period = fields.Nested(PeriodSchema, required=True)
    unit = fields.Nested(UnitRefSchema, required=True, allow_none=True)
    by = fields.String(required=True)
    items = fields.List(fields.Nested(StandingSchema), required=True)
    next_offset = fields.Integer(required=True, allow_none=True, metadata={
        "description": "pass as `offset` for the next page; null on the last"})


class DisclosureLineSchema(Schema):
    seq = fields.Integer(required=True, metadata={"description": "the entry in the chain"})
    kind = fields.String(required=True, metadata={"description": "award, deduction or "
                                                                 "reversal"})
    occurred_at = fields.String(required=True, metadata={"description": "as recorded, UTC"})
    occurred_on = fields.Date(required=True, metadata={"description": "the local date"})
    name = fields.String(required=True, metadata={"description": "masked"})
    household = fields.String(required=True, metadata={"description": "masked"})
    unit = fields.String(required=True)
    rule = fields.String(required=True, allow_none=True)
    rule_name = fields.String(required=True, allow_none=True)
    category = fields.String(required=True, allow_none=True)
    points = fields.Integer(required=True, metadata={"description": "signed"})
    memo = fields.String(required=True, metadata={"description": "the reason, as recorded"})
    reverses = fields.Integer(required=True, allow_none=True, metadata={
        "description": "for a reversal: the entry it undoes"})
    reversed = fields.Boolean(required=True)
    reversed_by = fields.Integer(required=True, allow_none=True, metadata={
        "description": "the reversal that undid this award or deduction"})


class NoticeClaimSchema(Schema):
    claim = fields.Integer(required=True, metadata={
        "description": "the claim to object to (POST /claims/{claim}/objections)"})
    occurred_at = fields.String(required=True)
    occurred_on = fields.Date(required=True)
    name = fields.String(required=True, metadata={"description": "masked"})
    household = fields.String(required=True, metadata={"description": "masked"})
    unit = fields.String(required=True)
    rule = fields.String(required=True)
    rule_name = fields.String(required=True, allow_none=True)
    category = fields.String(required=True, allow_none=True)
    points = fields.Integer(required=True, metadata={"description": "signed"})
    memo = fields.String(required=True)
    notice_until = fields.String(required=True, metadata={
        "description": "objections are taken until then (UTC)"})


class DisclosureSchema(Schema):
    period = fields.Nested(PeriodSchema, required=True)
    unit = fields.Nested(UnitRefSchema, required=True, allow_none=True)
    items = fields.List(fields.Nested(DisclosureLineSchema), required=True)
    next_cursor = fields.String(required=True, allow_none=True, metadata={
        "description": "pass as `cursor` for the next (older) page; null on the last"})
    in_notice = fields.List(fields.Nested(NoticeClaimSchema), required=True, metadata={
        "description": "claims in their public-notice window (公示期), whatever the period"})


class HonourCategorySchema(Schema):
    category = fields.String(required=True)
    items = fields.List(fields.Nested(StandingSchema), required=True)


class HonourSchema(Schema):
    period = fields.Nested(PeriodSchema, required=True)
    unit = fields.Nested(UnitRefSchema, required=True, allow_none=True)
    top = fields.Integer(required=True)
    categories = fields.List(fields.Nested(HonourCategorySchema), required=True)
    households = fields.List(fields.Nested(StandingSchema), required=True)


CACHING = {"Cache-Control": f"public, max-age={BOARDS_MAX_AGE_SECONDS}"}


@blueprint.route("/standings", methods=["GET"])
@blueprint.arguments(StandingsQuerySchema, location="query", as_kwargs=True)
@blueprint.response(200, StandingsSchema)
@blueprint.doc(security=[])
def get_standings(programme: str, unit: str | None, period: str | None, at: date | None,
                  start: date | None, end: date | None, by: str, limit: int, offset: int):
    """积分榜: members (or households, `by=household`) ranked by score in the period.

    Default period: lifetime. Every member of the unit is on it, at 0 if
    they scored nothing; a household's score is the sum of its members'.
    """
    board = boards.standings(engine(), programme, unit=unit,
                             period=_period(period, at, start, end, "lifetime"), by=by,
                             limit=limit, offset=offset)
    return board, 200, CACHING


@blueprint.route("/disclosure", methods=["GET"])
@blueprint.arguments(DisclosureQuerySchema, location="query", as_kwargs=True)
@blueprint.response(200, DisclosureSchema)
@blueprint.doc(security=[])
def get_disclosure(programme: str, unit: str | None, period: str | None, at: date | None,
                   start: date | None, end: date | None, limit: int, cursor: str | None):
    """公示榜: awards, deductions and reversals, newest recorded first; and claims in notice.

    Default period: lifetime, a page at a time (`next_cursor`).
    """
    board = boards.disclosure(engine(), programme, unit=unit,
                              period=_period(period, at, start, end, "lifetime"), limit=limit,
                              before=None if cursor is None else decode_cursor(cursor))
    return {"period": board.period, "unit": board.unit, "items": board.items,
            "next_cursor": (None if board.next_before is None
                            else encode_cursor(*board.next_before)),
            "in_notice": board.in_notice}, 200, CACHING


@blueprint.route("/honour", methods=["GET"])
@blueprint.arguments(HonourQuerySchema, location="query", as_kwargs=True)
@blueprint.response(200, HonourSchema)
@blueprint.doc(security=[])
def get_honour(programme: str, unit: str | None, period: str | None, at: date | None,
               start: date | None, end: date | None, top: int):
    """光荣榜: per category of award rules, the members ranked `top` or better; households.

    Default period: this month. Only positive scores are honoured; a shared
    last place can make a list longer than `top`.
    """
    board = boards.honour_roll(engine(), programme, unit=unit,
                               period=_period(period, at, start, end, "month"), top=top)
    return board, 200, CACHING


def _period(kind: str | None, at: date | None, start: date | None, end: date | None,
            default: str) -> boards.PeriodQuery:
    """The period asked for: `from`/`to` alone make a range; nothing at all, `default`."""
    if kind is None:
        kind = boards.RANGE if start is not None or end is not None else default
    return boards.PeriodQuery(kind, at, start, end)


def encode_cursor(seq: int, position: int) -> str:
    """Opaque to clients, so the position it holds may change form without breaking them."""
    return base64.urlsafe_b64encode(f"before:{seq}.{position}".encode("ascii")).decode(
        "ascii").rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, int]:
    """The (seq, position) a cursor holds; 400 `invalid_cursor` for any this API did not issue."""
    position = _position(cursor)
    if position is None or encode_cursor(*position) != cursor:
        raise ApiProblem("invalid_cursor", "the cursor is not one this API gave out; pass the "
                         "`next_cursor` of the previous page unchanged, or none for the newest "
                         "page")
    return position


def _position(cursor: str) -> tuple[int, int] | None:
    if not _CURSOR_TEXT.match(cursor):
        return None
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError):
        return None
    match = _CURSOR_POSITION.match(text)
    if match is None or int(match.group(1)) > MAX_SEQ:
        return None
    return int(match.group(1)), int(match.group(2))
