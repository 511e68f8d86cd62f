"""Settlement (结算): a shop's statement for a period, and the entry that records its payment.

A statement lists every redemption at the shop in the period (dates in the
programme's time zone, both included), each with the `seq` of its
`voucher_redeem` entry, and the totals in points and in money (fen, at the
programme's rate). It comes as JSON, or as CSV for Excel (UTF-8 with a
byte-order mark, so Chinese names open intact). An admin on a top unit
settles: one `settlement` entry moves the unsettled total from the shop's
account to `settled` and records the payment's reference. The shop's own
key, admins and auditors read statements.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date
from types import SimpleNamespace

from flask import Response
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from api.auth import engine
from api.idempotency import idempotent
from api.observability import record_appended
from api.routes.organisation import require_root_admin
from api.routes.shops import require_shop_access
from api.schemas import RequestSchema
from redemption import codes, settlement

blueprint = Blueprint("settlement", __name__, url_prefix="/programmes/<programme>",
                      description="Shops' statements (JSON, CSV) and settlements.")

READING_ROLES = ("admin", "auditor")
EARLIEST_DATE = date(1970, 1, 1)
LATEST_DATE = date(9999, 12, 30)
"""Dates whose day after still exists in every time zone; the rest cannot hold a redemption."""


class PeriodDate(fields.Date):
    """A calendar day (YYYY-MM-DD) in the programme's time zone, within representable time."""

    def __init__(self, **kwargs) -> None:
        super().__init__(format="iso", validate=validate.Range(min=EARLIEST_DATE,
                                                               max=LATEST_DATE), **kwargs)


class ShopStatementLineSchema(Schema):
    voucher = fields.String(required=True, attribute="voucher_id")
    short_code = fields.Function(lambda line: codes.display(line.short_code), required=True)
    entry_seq = fields.Integer(required=True, metadata={
        "description": "the voucher_redeem entry in the programme's chain"})
    value_points = fields.Integer(required=True)
    item = fields.String(required=True, allow_none=True)
    redeemed_at = fields.String(required=True, metadata={"description": "as recorded, UTC"})
    redeemed_at_local = fields.String(required=True,
                                      metadata={"description": "the programme's local time"})
    settlement_seq = fields.Integer(required=True, allow_none=True, metadata={
        "description": "the settlement entry that paid it; null while unsettled"})
    money_fen = fields.Integer(required=True, metadata={
        "description": "at the rate of its settlement, or today's rate while unsettled"})


class SettlementSchema(Schema):
    shop = fields.String(required=True)
    entry_seq = fields.Integer(required=True, metadata={"description": "the settlement entry"})
    period_start = fields.String(required=True)
    period_end = fields.String(required=True)
    redemption_count = fields.Integer(required=True)
    total_points = fields.Integer(required=True)
    fen_per_point = fields.Integer(required=True)
    total_fen = fields.Integer(required=True)
    payment_reference = fields.String(required=True)
    actor = fields.String(required=True)
    settled_at = fields.String(required=True)


class ShopStatementSchema(Schema):
    shop = fields.String(required=True)
    shop_name = fields.String(required=True)
    period_start = fields.String(required=True)
    period_end = fields.String(required=True)
    time_zone = fields.String(required=True)
    fen_per_point = fields.Integer(required=True, metadata={
        "description": "the programme's rate today (分 per point), used for unsettled lines"})
    lines = fields.List(fields.Nested(ShopStatementLineSchema), required=True)
    total_points = fields.Integer(required=True)
    total_fen = fields.Integer(required=True)
    unsettled_points = fields.Integer(required=True)
    unsettled_fen = fields.Integer(required=True)
    settlements = fields.List(fields.Nested(SettlementSchema), required=True, metadata={
        "description": "the settlements that paid lines of this statement"})


class StatementQuerySchema(RequestSchema):
    start = PeriodDate(required=True, metadata={"description": "first day (YYYY-MM-DD)"})
    end = PeriodDate(required=True, metadata={"description": "last day, included"})
    format_name = fields.String(data_key="format", load_default="json",
                                validate=validate.OneOf(("json", "csv")))


class SettleSchema(RequestSchema):
    start = PeriodDate(required=True, metadata={"description": "first day (YYYY-MM-DD)"})
    end = PeriodDate(required=True, metadata={"description": "last day, included"})
    payment_reference = fields.String(
        required=True, validate=validate.Length(min=1, max=settlement.MAX_REFERENCE_CHARS),
        metadata={"description": "the payment's bank transfer or receipt number"})


@blueprint.route("/shops/<code>/statement", methods=["GET"])
@blueprint.arguments(StatementQuerySchema, location="query", as_kwargs=True)
@blueprint.response(200, ShopStatementSchema)
@blueprint.doc(responses={"200": {
    "description": "the statement: JSON, or CSV with `?format=csv`",
    "content": {"application/json": {"schema": ShopStatementSchema},
                "text/csv": {"schema": {"type": "string"}}}}})
def get_statement(programme: str, code: str, start: date, end: date, format_name: str):
    """A shop's redemptions in a period with totals, as JSON or CSV (`?format=csv`).

    The shop's own key, an admin or an auditor. CSV is UTF-8 with a
    byte-order mark (Excel opens Chinese intact), sent as an attachment.
    """
    require_shop_access(programme, code, READING_ROLES)
    found = settlement.statement(engine(), programme, code, start, end)
    if format_name == "json":
        return found
    response = Response(settlement.statement_csv(found), content_type="text/csv; charset=utf-8")
    response.headers["Content-Disposition"] = (
        f'attachment; filename="statement-{found.shop}-{found.period_start}-'
        f'{found.period_end}.csv"')
    return response


@blueprint.route("/shops/<code>/settlements", methods=["POST"])
@idempotent
@blueprint.arguments(SettleSchema)
@blueprint.response(201, SettlementSchema, description="settled: the entry is posted")
@blueprint.alt_response(200, schema=SettlementSchema,
                        description="settled earlier by the same request")
def post_settlement(body: dict, programme: str, code: str):
    """Pay a shop for its unsettled redemptions in a period (admin on a top unit).

    One `settlement` entry moves the total from `shop:<code>` to `settled`.
    A payment is named by its shop, period and reference: sending the same
    again, with any `Idempotency-Key` or none, gets the first settlement
    back (200); a new payment needs a new reference.
    """
    caller = require_root_admin(programme)
    done = settlement.settle(engine(), programme, code, body["start"], body["end"],
                             payment_reference=body["payment_reference"], actor=caller.actor,
                             idempotency_key=payment_key(code, body))
    if done.created:
        record_appended([SimpleNamespace(kind="settlement")])
    return done, 201 if done.created else 200


def payment_key(shop: str, body: dict) -> str:
    """The settlement's key for the service: the payment itself, not the request.

    Not `ledger_key()`: that would let the same payment, resent under another
    `Idempotency-Key` (a second admin, a client that lost its key), post a
    second settlement for what the first left unsettled. The header still
    replays responses as for every write.
    """
    request_ = json.dumps([shop, body["start"].isoformat(), body["end"].isoformat(),
                           body["payment_reference"]], ensure_ascii=False)
    return "request-sha256:" + hashlib.sha256(request_.encode("utf-8")).hexdigest()
