"""API keys of a programme: created by an admin, shown once, listed without secrets, revoked.

A key speaks for its principal, so issuing one is handing out that
principal's powers. The admin issuing or revoking it must therefore hold
`admin` over everything the key reaches: a member key, over the member's
unit; a staff key, over every unit on which its principal holds a role (a
principal with no role yet, and a shop, which sits in no unit: admin on a
top unit). A village admin cannot mint a key for the town's admin.

The secret is in the 201 response and nowhere else: the ledger keeps its
SHA-256, and the idempotency record of the request keeps the response
with `secret: null`. A retry with the same `Idempotency-Key` therefore
gets the key's record without its secret; a client that lost the first
response revokes that key and creates another.
"""

from __future__ import annotations

import functools

from flask import g, json
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from api.auth import Caller, engine, require_staff
from api.idempotency import idempotent
from api.problems import ApiProblem
from api.routes.organisation import require_root_admin
from api.schemas import RequestSchema
from ledger.keys import KeyHolder, create_key, list_keys, revoke_key
from ledger.organisation import list_grants, member_record

blueprint = Blueprint("keys", __name__, url_prefix="/programmes/<programme>",
                      description="API keys: issue (the secret is shown once), list, revoke.")

ADMIN = ("admin",)
ISSUABLE_KINDS = ("staff", "member", "shop")
"""Operator keys belong to the installation, not a programme: `jifen keys create`."""


class KeySchema(Schema):
    prefix = fields.String(required=True, metadata={"description": "names the key; not secret"})
    kind = fields.String(required=True, metadata={"description": "staff, member or shop"})
    principal = fields.String(required=True, metadata={
        "description": "the staff principal, member code or shop the key speaks for"})
    label = fields.String(required=True)
    created_at = fields.String(required=True)
    revoked_at = fields.String(required=True, allow_none=True)


class NewKeyResultSchema(KeySchema):
    secret = fields.String(required=True, allow_none=True, metadata={
        "description": "the whole key, jf_<prefix>_<secret>: shown in this response only "
                       "(null when an Idempotency-Key retry replays it)"})


class KeyListSchema(Schema):
    items = fields.List(fields.Nested(KeySchema), required=True)


class NewKeySchema(RequestSchema):
    kind = fields.String(required=True, validate=validate.OneOf(ISSUABLE_KINDS))
    principal = fields.String(required=True, validate=validate.Length(min=1, max=200))
    label = fields.String(required=True, validate=validate.Length(min=1, max=200),
                          metadata={"description": "for people: whose device, which desk"})


def secret_shown_once(view):
    """Add the new key's secret to the response after `idempotent` has kept it without one.

    Should a concurrent twin of this request have kept its response first,
    this request's response is that replay; the key this request created
    would then have a secret nobody ever sees, so it is revoked at once.
    """

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        response = view(*args, **kwargs)
        new_key = g.pop("new_key", None)
        if new_key is None:
            return response
        if response.headers.get("Idempotent-Replayed") == "true":
            revoke_key(engine(), new_key.holder.prefix, new_key.holder.programme)
            return response
        body = response.get_json()
        body["secret"] = new_key.secret
        response.set_data(json.dumps(body))
        response.headers["Cache-Control"] = "no-store"
        return response

    return wrapper


@blueprint.route("/keys", methods=["GET"])
@blueprint.response(200, KeyListSchema)
def get_keys(programme: str):
    """The programme's keys, revoked ones too, oldest first; never their secrets (admin keys)."""
    require_staff(programme, ADMIN)
    return {"items": [_key(holder, created_at, revoked_at)
                      for holder, created_at, revoked_at in list_keys(engine(), programme)]}


@blueprint.route("/keys", methods=["POST"])
@secret_shown_once
@idempotent
@blueprint.arguments(NewKeySchema)
@blueprint.response(201, NewKeyResultSchema)
def post_key(body: dict, programme: str):
    """Issue a staff, member or shop key; the response holds its secret, once."""
    require_staff(programme, ADMIN)
    _require_admin_over(programme, body["kind"], body["principal"])
    new_key = create_key(engine(), kind=body["kind"], principal=body["principal"],
                         label=body["label"], programme=programme)
    g.new_key = new_key
    _, created_at, _ = _find(programme, new_key.holder.prefix)
    return _key(new_key.holder, created_at, None) | {"secret": None}


@blueprint.route("/keys/<prefix>", methods=["DELETE"])
@idempotent
@blueprint.response(200, KeySchema, description="the key, now revoked")
def delete_key(programme: str, prefix: str):
    """Revoke a key from now on (admin over what the key reaches)."""
    require_staff(programme, ADMIN)
    holder, _, revoked_at = _find(programme, prefix)
    if revoked_at is not None:
        raise ApiProblem("unknown_key", f"key {prefix!r} was revoked at {revoked_at}",
                         prefix=prefix)
    _require_admin_over(programme, holder.kind, holder.principal)
    revoke_key(engine(), prefix, programme)
    return _key(*_find(programme, prefix))


def _require_admin_over(programme: str, kind: str, principal: str) -> Caller:
    """`admin` over everything a `kind` key of `principal` reaches (see the module docstring)."""
    if kind == "member":
        return require_staff(programme, ADMIN,
                             member_record(engine(), programme, principal).unit_path)
    grants = list_grants(engine(), programme, principal=principal) if kind == "staff" else []
    if not grants:
        return require_root_admin(programme)
    for grant in grants:
        caller = require_staff(programme, ADMIN, grant.unit_path)
    return caller


def _find(programme: str, prefix: str) -> tuple[KeyHolder, str, str | None]:
    for holder, created_at, revoked_at in list_keys(engine(), programme):
        if holder.prefix == prefix:
            return holder, created_at, revoked_at
    raise ApiProblem("unknown_key", f"no key with prefix {prefix!r} in this programme",
                     prefix=prefix)


def _key(holder: KeyHolder, created_at: str, revoked_at: str | None) -> dict:
    return {"prefix": holder.prefix, "kind": holder.kind, "principal": holder.principal,
            "label": holder.label, "created_at": created_at, "revoked_at": revoked_at}
