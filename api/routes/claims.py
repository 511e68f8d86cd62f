"""Claims (待审核): awards and deductions waiting for a second person, and their notice (公示).

Organisers propose claims through `POST /awards` (a rule needing approval
answers 202). Here reviewers approve or reject them, anyone of the
programme objects during the public-notice window, reviewers resolve
objections, and `post-due` posts what has waited out its window. The
ledger (`ledger.claims`) decides scope and refuses a proposer deciding
their own claim (`same_person`).
"""

from __future__ import annotations

from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from api.auth import STAFF_ROLES, engine, require_programme, require_staff
from api.idempotency import idempotent
from api.problems import ApiProblem
from api.schemas import EntrySchema, RefusalSchema, RequestSchema
from ledger import claims
from ledger.awards import Outcome
from ledger.chain import get_entry

blueprint = Blueprint("claims", __name__, url_prefix="/programmes/<programme>",
                      description="Approve, reject and object to claims (待审核, 公示).")

DECIDING_ROLES = ("reviewer",)
POSTING_DUE_ROLES = ("reviewer", "admin")
MAX_PAGE_CLAIMS = 200
MAX_ID = 2**31 - 1
"""Claim and objection ids are 32-bit in the database; larger ids cannot exist."""
CLAIM_STATUSES = ("pending", "notice", "objected", "posted", "rejected")
REASON = validate.Length(min=1, max=claims.MAX_REASON_CHARS)


class ClaimSchema(Schema):
    id = fields.Integer(required=True)
    status = fields.String(required=True, metadata={"description": ", ".join(CLAIM_STATUSES)})
    member = fields.String(required=True)
    rule = fields.String(required=True)
    quantity = fields.Integer(allow_none=True)
    points = fields.Integer(required=True, metadata={"description": "signed: deductions < 0"})
    occurred_at = fields.String(required=True)
    evidence = fields.String(allow_none=True)
    memo = fields.String(required=True)
    proposer = fields.String(required=True)
    decided_by = fields.String(allow_none=True)
    notice_until = fields.String(allow_none=True,
                                 metadata={"description": "end of the public-notice window"})
    reason = fields.String(allow_none=True, metadata={"description": "why it was rejected"})
    entry_seq = fields.Integer(allow_none=True, metadata={
        "description": "the posted entry, or the admin entry recording the rejection"})


class ClaimListQuerySchema(RequestSchema):
    status = fields.String(load_default=None, validate=validate.OneOf(CLAIM_STATUSES))
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=MAX_PAGE_CLAIMS))
    after_id = fields.Integer(load_default=None, validate=validate.Range(min=0, max=MAX_ID),
                              metadata={"description": "`next_after_id` of the previous page"})


class ClaimPageSchema(Schema):
    items = fields.List(fields.Nested(ClaimSchema), required=True)
    next_after_id = fields.Integer(allow_none=True, required=True, metadata={
        "description": "pass as `after_id` for the next page; null on the last page"})


class DecisionSchema(Schema):
    claim = fields.Nested(ClaimSchema, required=True)
    entry = fields.Nested(EntrySchema, allow_none=True, required=True, metadata={
        "description": "what the decision wrote to the chain: the posted award, the admin "
                       "entry of a rejection, or null (the claim went on public notice)"})


class ReasonSchema(RequestSchema):
    reason = fields.String(required=True, validate=REASON)


class ObjectionResultSchema(Schema):
    objection = fields.Integer(required=True)
    claim = fields.Nested(ClaimSchema, required=True)


class ResolveSchema(RequestSchema):
    uphold = fields.Boolean(required=True, metadata={
        "description": "true: the objection stands and the claim is rejected; false: dismissed"})
    reason = fields.String(required=True, validate=REASON)


class DueOutcomeSchema(Schema):
    claim = fields.Integer(required=True)
    status = fields.String(required=True, metadata={"description": "posted, replayed or refused"})
    points = fields.Integer(allow_none=True)
    entry = fields.Nested(EntrySchema, allow_none=True)
    error = fields.Nested(RefusalSchema, allow_none=True)


class PostDueSchema(Schema):
    posted = fields.Integer(required=True)
    refused = fields.Integer(required=True)
    outcomes = fields.List(fields.Nested(DueOutcomeSchema), required=True)


@blueprint.route("/claims", methods=["GET"])
@blueprint.arguments(ClaimListQuerySchema, location="query", as_kwargs=True)
@blueprint.response(200, ClaimPageSchema)
def list_claims(programme: str, status: str | None, limit: int, after_id: int | None):
    """Claims, oldest first, a page at a time (keyset on `id`: new claims join the end)."""
    require_staff(programme, STAFF_ROLES)
    # ledger.claims.list_claims has no keyset arguments yet, so the page is cut here.
    every = claims.list_claims(engine(), programme, status)
    after = [claim for claim in every if after_id is None or claim.id > after_id]
    page = after[:limit]
    return {"items": page, "next_after_id": page[-1].id if len(after) > limit else None}


@blueprint.route(f"/claims/<int(max={MAX_ID}):claim_id>", methods=["GET"])
@blueprint.response(200, ClaimSchema)
def get_claim(programme: str, claim_id: int):
    """One claim."""
    require_staff(programme, STAFF_ROLES)
    return claims.get_claim(engine(), programme, claim_id)


@blueprint.route(f"/claims/<int(max={MAX_ID}):claim_id>/approve", methods=["POST"])
@idempotent
@blueprint.response(200, DecisionSchema)
def approve_claim(programme: str, claim_id: int):
    """Approve a pending claim: it posts now, or goes on public notice if the programme has one."""
    caller = require_staff(programme, DECIDING_ROLES)
    claim = claims.approve(engine(), programme, claim_id, reviewer=caller.actor)
    return _decision(programme, claim)


@blueprint.route(f"/claims/<int(max={MAX_ID}):claim_id>/reject", methods=["POST"])
@idempotent
@blueprint.arguments(ReasonSchema)
@blueprint.response(200, DecisionSchema)
def reject_claim(body: dict, programme: str, claim_id: int):
    """Reject an open claim; the chain records the rejection and its reason."""
    caller = require_staff(programme, DECIDING_ROLES)
    claims.reject(engine(), programme, claim_id, reviewer=caller.actor, reason=body["reason"])
    return _decision(programme, claims.get_claim(engine(), programme, claim_id))


@blueprint.route(f"/claims/<int(max={MAX_ID}):claim_id>/objections", methods=["POST"])
@idempotent
@blueprint.arguments(ReasonSchema)
@blueprint.response(201, ObjectionResultSchema)
def object_to_claim(body: dict, programme: str, claim_id: int):
    """Object to a claim on public notice; it will not post until a reviewer resolves it.

    Any key of the programme may object, staff or resident (shop devices may
    not); the objection names the key's actor.
    """
    caller = require_programme(programme)
    if caller.kind == "shop":
        raise ApiProblem("forbidden", "a shop key may not object to claims")
    objection_id = claims.object_to(engine(), programme, claim_id, by=caller.actor,
                                    reason=body["reason"])
    return {"objection": objection_id, "claim": claims.get_claim(engine(), programme, claim_id)}


@blueprint.route(f"/objections/<int(max={MAX_ID}):objection_id>/resolve", methods=["POST"])
@idempotent
@blueprint.arguments(ResolveSchema)
@blueprint.response(200, DecisionSchema)
def resolve_objection(body: dict, programme: str, objection_id: int):
    """Uphold an objection (the claim is rejected) or dismiss it (the claim goes back on notice)."""
    caller = require_staff(programme, DECIDING_ROLES)
    claim = claims.resolve_objection(engine(), programme, objection_id, reviewer=caller.actor,
                                     uphold=body["uphold"], reason=body["reason"])
    return _decision(programme, claim)


@blueprint.route("/claims/post-due", methods=["POST"])
@idempotent
@blueprint.response(200, PostDueSchema)
def post_due_claims(programme: str):
    """Post every approved claim whose notice window has passed without an open objection.

    Safe to call again, and from several places at once: a claim posts once.
    """
    require_staff(programme, POSTING_DUE_ROLES)
    outcomes = [_due_outcome(outcome) for outcome in claims.post_due(engine(), programme)]
    return {"posted": sum(outcome["status"] == "posted" for outcome in outcomes),
            "refused": sum(outcome["status"] == "refused" for outcome in outcomes),
            "outcomes": outcomes}


def _decision(programme: str, claim: claims.ClaimInfo) -> dict:
    entry = None if claim.entry_seq is None else get_entry(engine(), programme, claim.entry_seq)
    return {"claim": claim, "entry": entry}


def _due_outcome(outcome: Outcome) -> dict:
    # `ledger.claims` keys each claim's posting `claim:<id>`; the outcome carries no claim id.
    claim_id = int(outcome.request.idempotency_key.removeprefix("claim:"))
    return {
        "claim": claim_id,
        "status": outcome.status,
        "points": outcome.points,
        "entry": outcome.entry,
        "error": ({"code": outcome.error.code, "message": outcome.error.message}
                  if outcome.error else None),
    }
