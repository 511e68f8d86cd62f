"""Programmes: which points schemes a key may see, and the operator creating new ones.

A programme is the unit of installation: its own chain, time zone, tree
and keys. Only an operator key creates one; staff see their own.
"""

from __future__ import annotations

from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from api.auth import STAFF_ROLES, authenticate, engine, require_operator, require_staff
from api.idempotency import idempotent
from api.schemas import CODE, RequestSchema
from ledger.programmes import DEFAULT_TIME_ZONE, create_programme, get_programme, list_programmes

blueprint = Blueprint("programmes", __name__, url_prefix="/programmes",
                      description="Points programmes (积分制 schemes), one chain each.")


class ProgrammeSchema(Schema):
    code = fields.String(required=True)
    name = fields.String(required=True)
    time_zone = fields.String(required=True, metadata={
        "description": "IANA zone; days, weeks and caps are counted in it"})


class ProgrammeListSchema(Schema):
    items = fields.List(fields.Nested(ProgrammeSchema), required=True)


class NewProgrammeSchema(RequestSchema):
    code = fields.String(required=True, validate=CODE)
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    time_zone = fields.String(load_default=DEFAULT_TIME_ZONE,
                              validate=validate.Length(min=1, max=64),
                              metadata={"description": f"IANA zone, default {DEFAULT_TIME_ZONE}"})


@blueprint.route("", methods=["GET"])
@blueprint.response(200, ProgrammeListSchema)
def get_programmes():
    """The programmes this key may see: every one for an operator, else the key's own."""
    caller = authenticate()
    if caller.kind == "operator":
        return {"items": list_programmes(engine())}
    require_staff(caller.holder.programme, STAFF_ROLES)
    return {"items": [get_programme(engine(), caller.holder.programme)]}


@blueprint.route("", methods=["POST"])
@idempotent
@blueprint.arguments(NewProgrammeSchema)
@blueprint.response(201, ProgrammeSchema)
def post_programme(body: dict):
    """Create a programme with its empty chain (operator keys only)."""
    require_operator()
    return create_programme(engine(), body["code"], body["name"], body["time_zone"])


@blueprint.route("/<programme>", methods=["GET"])
@blueprint.response(200, ProgrammeSchema)
def get_one_programme(programme: str):
    """One programme: its name and time zone."""
    require_staff(programme, STAFF_ROLES)
    return get_programme(engine(), programme)

