"""Awards and deductions under scoring rules: one at a time, or a whole sign-in sheet.

A rule that needs a second person turns the request into a claim (202).
`?dry_run=true` answers what would happen and writes nothing.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from flask import request
from flask_smorest import Blueprint
from marshmallow import fields, validate

from api.auth import engine, require_staff
from api.idempotency import idempotent, ledger_key
from api.observability import record_appended, record_refusals
from api.problems import ApiProblem
from api.schemas import (
    CODE,
    EntrySchema,
    PostingSchema,
    RefusalSchema,
    RequestSchema,
    RuleRefSchema,
)
from ledger import sheets
from ledger.awards import AwardRequest, Outcome, award_sheet
from ledger.programmes import get_programme

blueprint = Blueprint("awards", __name__, url_prefix="/programmes/<programme>",
                      description="Award or deduct points under a rule (single or a sheet).")

APPLYING_ROLES = ("organiser", "reviewer", "admin")


class AwardSchema(RequestSchema):
    member = fields.String(required=True, validate=CODE)
    rule = fields.String(required=True, validate=CODE)
    quantity = fields.Integer(load_default=None, allow_none=True, strict=True,
                              validate=validate.Range(min=1, max=2**53 - 1),
                              metadata={"description": "for per-unit rules, e.g. minutes"})
    occurred_at = fields.AwareDateTime(
        load_default=None, allow_none=True, default_timezone=None,
        metadata={"description": "when it happened (ISO 8601 with offset); default now"})
    evidence = fields.String(load_default=None, allow_none=True,
                             validate=validate.Length(min=1, max=256))
    memo = fields.String(load_default="", validate=validate.Length(max=2000))


class DryRunSchema(RequestSchema):
    dry_run = fields.Boolean(load_default=False)


class OutcomeSchema(RequestSchema):
    status = fields.String(required=True, metadata={
        "description": "posted, replayed, proposed, would_post, would_propose or refused"})
    line = fields.Integer(metadata={"description": "sheet line (1 is the header)"})
    member = fields.String(required=True)
    rule = fields.String(required=True)
    points = fields.Integer(allow_none=True)
    rule_version = fields.Nested(RuleRefSchema, allow_none=True)
    postings = fields.List(fields.Nested(PostingSchema))
    entry = fields.Nested(EntrySchema, allow_none=True)
    claim = fields.Integer(allow_none=True)
    error = fields.Nested(RefusalSchema, allow_none=True)


class SheetLineSchema(AwardSchema):
    pass


class SheetSchema(RequestSchema):
    lines = fields.List(fields.Nested(SheetLineSchema), required=True,
                        validate=validate.Length(min=1, max=5000))


class SheetResultSchema(RequestSchema):
    posted = fields.Integer(required=True)
    replayed = fields.Integer(required=True)
    proposed = fields.Integer(required=True)
    would_post = fields.Integer(required=True, metadata={"description": "dry run"})
    would_propose = fields.Integer(required=True, metadata={"description": "dry run"})
    refused = fields.Integer(required=True)
    lines = fields.List(fields.Nested(OutcomeSchema), required=True)


@blueprint.route("/awards", methods=["POST"])
@idempotent
@blueprint.arguments(AwardSchema)
@blueprint.arguments(DryRunSchema, location="query", as_kwargs=True)
@blueprint.response(201, OutcomeSchema, description="posted")
@blueprint.alt_response(200, schema=OutcomeSchema, description="replayed, or a dry run")
@blueprint.alt_response(202, schema=OutcomeSchema, description="proposed as a claim")
def post_award(body: dict, programme: str, dry_run: bool):
    """Award or deduct points for one member under one rule."""
    caller = require_staff(programme, APPLYING_ROLES)
    request_ = _award_request(programme, body, ledger_key())
    outcome = award_sheet(engine(), programme, [request_], actor=caller.actor,
                          dry_run=dry_run)[0]
    if outcome.error is not None:
        raise outcome.error
    record_appended([outcome.entry] if outcome.status == "posted" else [])
    status = {"posted": 201, "proposed": 202}.get(outcome.status, 200)
    return _outcome(outcome), status


@blueprint.route("/award-sheets", methods=["POST"])
@idempotent
@blueprint.arguments(DryRunSchema, location="query", as_kwargs=True)
@blueprint.response(200, SheetResultSchema)
@blueprint.doc(requestBody={
    "description": "A sign-in sheet: a CSV or XLSX file (multipart field `sheet`, columns "
                   "member, rule, quantity, occurred_at, evidence, memo), or JSON `{lines: [...]}`",
    "content": {
        "application/json": {"schema": SheetSchema},
        "multipart/form-data": {"schema": {"type": "object", "properties": {
            "sheet": {"type": "string", "format": "binary"}}}},
    },
})
def post_award_sheet(programme: str, dry_run: bool):
    """Award a whole sign-in sheet: every line gets its own outcome; accepted lines post together.

    Sending the same sheet again posts nothing more: with an `Idempotency-Key`
    the lines are keyed by it, without one by the SHA-256 of the sheet.
    """
    caller = require_staff(programme, APPLYING_ROLES)
    zone = get_programme(engine(), programme).zone
    if request.mimetype == "multipart/form-data":
        upload = request.files.get("sheet")
        if upload is None:
            raise ApiProblem("invalid_sheet", "send the sheet as the multipart field `sheet`")
        content = upload.read()
        parsed = sheets.parse_sheet(content, upload.filename or "", zone)
    elif request.is_json:
        body = SheetSchema().load(request.get_json())
        content = request.get_data()
        parsed = [sheets.SheetLine(index + 2, _award_request(programme, line, None), None)
                  for index, line in enumerate(body["lines"])]
    else:
        raise ApiProblem("unsupported_media_type",
                         "send multipart/form-data with a `sheet` file, or JSON {lines: [...]}")
    base_key = ledger_key() or f"sheet:{hashlib.sha256(content).hexdigest()[:32]}"
    readable = [line for line in parsed if line.error is None]
    requests = [_with_key(line.request, f"{base_key}:{line.number}") for line in readable]
    outcomes = award_sheet(engine(), programme, requests, actor=caller.actor, dry_run=dry_run)
    by_number = {line.number: outcome for line, outcome in zip(readable, outcomes, strict=True)}
    lines = []
    for line in parsed:
        if line.error is not None:
            lines.append({"status": "refused", "line": line.number, "member": line.member or "",
                          "rule": line.rule or "", "points": None,
                          "error": {"code": line.error.code, "message": line.error.message}})
        else:
            lines.append(_outcome(by_number[line.number]) | {"line": line.number})
    record_appended(outcome.entry for outcome in outcomes if outcome.status == "posted")
    record_refusals(line["error"]["code"] for line in lines if line["status"] == "refused")
    counts = {status: sum(line["status"] == status for line in lines)
              for status in ("posted", "replayed", "proposed", "would_post", "would_propose",
                             "refused")}
    return counts | {"lines": lines}


def _award_request(programme: str, body: dict, key: str | None) -> AwardRequest:
    occurred_at: datetime | None = body.get("occurred_at")
    return AwardRequest(member=body["member"], rule=body["rule"], quantity=body.get("quantity"),
                        occurred_at=occurred_at, evidence=body.get("evidence"),
                        memo=body.get("memo", ""), idempotency_key=key)


def _with_key(request_: AwardRequest, key: str) -> AwardRequest:
    return AwardRequest(request_.member, request_.rule, request_.quantity, request_.occurred_at,
                        request_.evidence, request_.memo, key)


def _outcome(outcome: Outcome) -> dict:
    return {
        "status": outcome.status,
        "member": outcome.request.member,
        "rule": outcome.request.rule,
        "points": outcome.points,
        "rule_version": outcome.rule,
        "postings": list(outcome.postings),
        "entry": outcome.entry,
        "claim": outcome.claim_id,
        "error": ({"code": outcome.error.code, "message": outcome.error.message}
                  if outcome.error else None),
    }
