"""Balances, scores and statements: what a resident has, and how they came by it.

`balance_points` is what can be spent; `score_points` what boards rank
(awards minus deductions, never lowered by spending). A statement is a
member's history, newest first, a page at a time: the `next_cursor` of one
page fetches the next, and pages never shift while entries are appended.
"""

from __future__ import annotations

import base64
import binascii
import re

from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from api.auth import engine, require_member_access, require_staff
from api.problems import ApiProblem
from api.schemas import RequestSchema
from ledger.accounts import member_account
from ledger.statements import MAX_PAGE_ENTRIES, balance_of, balances, statement

blueprint = Blueprint("statements", __name__, url_prefix="/programmes/<programme>",
                      description="Balances, scores and members' statements.")

ALL_BALANCES_ROLES = ("auditor", "admin")
MAX_SEQ = 2**63 - 1
_CURSOR_TEXT = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_CURSOR_POSITION = re.compile(r"^before:(0|[1-9][0-9]{0,18})$")


class AccountBalanceSchema(Schema):
    account = fields.String(required=True)
    kind = fields.String(required=True, metadata={"description": "system, member, shop or hold"})
    balance_points = fields.Integer(required=True)
    score_points = fields.Integer(required=True)


class BalancesSchema(Schema):
    items = fields.List(fields.Nested(AccountBalanceSchema), required=True)


class MemberBalanceSchema(Schema):
    member = fields.String(required=True)
    account = fields.String(required=True)
    balance_points = fields.Integer(required=True, metadata={"description": "what can be spent"})
    score_points = fields.Integer(required=True, metadata={
        "description": "awards minus deductions; what boards rank"})


class StatementQuerySchema(RequestSchema):
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=MAX_PAGE_ENTRIES))
    cursor = fields.String(load_default=None, metadata={
        "description": "`next_cursor` of the previous page, unchanged; absent for the newest"})


class StatementLineSchema(Schema):
    """One entry as it touched the member's account."""

    seq = fields.Integer(required=True)
    kind = fields.String(required=True)
    points = fields.Integer(required=True, metadata={"description": "signed, on this account"})
    occurred_at = fields.String(required=True)
    recorded_at = fields.String(required=True)
    actor = fields.String(required=True)
    approver = fields.String(allow_none=True)
    rule_code = fields.String(allow_none=True)
    rule_version = fields.Integer(allow_none=True)
    memo = fields.String(required=True)
    evidence = fields.String(allow_none=True)
    reverses = fields.Integer(allow_none=True)


class StatementSchema(Schema):
    member = fields.String(required=True)
    account = fields.String(required=True)
    items = fields.List(fields.Nested(StatementLineSchema), required=True)
    next_cursor = fields.String(allow_none=True, required=True, metadata={
        "description": "pass as `cursor` for the next (older) page; null on the last page"})


@blueprint.route("/balances", methods=["GET"])
@blueprint.response(200, BalancesSchema)
def list_balances(programme: str):
    """Every account of the programme with its balance and score, by account code."""
    require_staff(programme, ALL_BALANCES_ROLES)
    return {"items": balances(engine(), programme)}


@blueprint.route("/members/<member>/balance", methods=["GET"])
@blueprint.response(200, MemberBalanceSchema)
def member_balance(programme: str, member: str):
    """A member's balance and score (a member key: only its own)."""
    require_member_access(programme, member)
    figures = balance_of(engine(), programme, member_account(member))
    return {"member": member, "account": figures.account,
            "balance_points": figures.balance_points, "score_points": figures.score_points}


@blueprint.route("/members/<member>/statement", methods=["GET"])
@blueprint.arguments(StatementQuerySchema, location="query", as_kwargs=True)
@blueprint.response(200, StatementSchema)
def member_statement(programme: str, member: str, limit: int, cursor: str | None):
    """A member's history, newest first, a page at a time (a member key: only its own)."""
    require_member_access(programme, member)
    before_seq = None if cursor is None else decode_cursor(cursor)
    page = statement(engine(), programme, member_account(member), before_seq, limit)
    return {"member": member, "account": page.account, "items": page.lines,
            "next_cursor": (None if page.next_before_seq is None
                            else encode_cursor(page.next_before_seq))}


def encode_cursor(before_seq: int) -> str:
    """Opaque to clients, so the position it holds may change form without breaking them."""
    return base64.urlsafe_b64encode(f"before:{before_seq}".encode("ascii")).decode(
        "ascii").rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The `before_seq` a cursor holds; 400 `invalid_cursor` for anything this API did not issue."""
    before_seq = _position(cursor)
    if before_seq is None or encode_cursor(before_seq) != cursor:
        raise ApiProblem("invalid_cursor", "the cursor is not one this API gave out; pass the "
                         "`next_cursor` of the previous page unchanged, or none for the newest "
                         "page")
    return before_seq


def _position(cursor: str) -> int | None:
    if not _CURSOR_TEXT.match(cursor):
        return None
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError):
        return None
    match = _CURSOR_POSITION.match(text)
    if match is None or int(match.group(1)) > MAX_SEQ:
        return None
    return int(match.group(1))
