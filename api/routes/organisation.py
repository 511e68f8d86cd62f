"""The organisation tree and the people in it: units, households, members, and role grants.

Who may do what follows the tree. Any staff role of the programme reads
units and households; members are listed only within the subtrees the
caller's roles cover, and a member key sees only its own member. Creating
a unit, household or member, or granting a role, needs `admin` on a
subtree holding the unit concerned; a new top unit (no parent) is outside
every subtree, so only an operator key creates one.

Long lists are keyset pages by code: `?limit=` (1-500, default 100) and
`?after=<the last code seen>`; the reply's `next_after` is the cursor for
the next page, null on the last one.
"""

from __future__ import annotations

from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from api.auth import (
    STAFF_ROLES,
    Caller,
    engine,
    require_member_access,
    require_operator,
    require_programme,
    require_staff,
    require_unit_role,
)
from api.idempotency import idempotent
from api.problems import ApiProblem
from api.schemas import CODE, RequestSchema
from ledger.organisation import (
    ROLES,
    UNIT_KINDS,
    create_household,
    create_member,
    create_unit,
    get_grant,
    get_household,
    get_unit,
    grant_role_once,
    list_grants,
    list_households,
    list_members_within,
    list_units,
    member_record,
    principal_roles,
    revoke_grant,
)
from ledger.programmes import CODE_PATTERN

blueprint = Blueprint("organisation", __name__, url_prefix="/programmes/<programme>",
                      description="Units, households, members and role grants.")

ADMIN = ("admin",)
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 500
MAX_GRANT_ID = 2**31 - 1
"""Grant ids are 32-bit: a larger one in a path is no grant (404), not a database error."""


# -- schemas ------------------------------------------------------------------------------


class PageQuerySchema(RequestSchema):
    limit = fields.Integer(load_default=DEFAULT_PAGE_SIZE,
                           validate=validate.Range(min=1, max=MAX_PAGE_SIZE))
    after = fields.String(load_default=None, metadata={
        "description": "the `next_after` of the previous page (a code)"})


class UnitSchema(Schema):
    code = fields.String(required=True)
    name = fields.String(required=True)
    kind = fields.String(required=True)
    parent = fields.String(required=True, allow_none=True, metadata={
        "description": "the parent unit's code; null for a top unit"})
    path = fields.String(required=True, metadata={
        "description": "codes from the top of the tree, e.g. /town/east/"})


class UnitPageSchema(Schema):
    items = fields.List(fields.Nested(UnitSchema), required=True)
    next_after = fields.String(required=True, allow_none=True)


class NewUnitSchema(RequestSchema):
    code = fields.String(required=True, validate=CODE)
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    kind = fields.String(required=True, validate=validate.OneOf(sorted(UNIT_KINDS)))
    parent = fields.String(load_default=None, allow_none=True, validate=CODE, metadata={
        "description": "the unit to create it under; omit for a top unit (operator only)"})


class HouseholdSchema(Schema):
    code = fields.String(required=True)
    name = fields.String(required=True)
    unit = fields.String(required=True)


class HouseholdPageSchema(Schema):
    items = fields.List(fields.Nested(HouseholdSchema), required=True)
    next_after = fields.String(required=True, allow_none=True)


class NewHouseholdSchema(RequestSchema):
    code = fields.String(required=True, validate=CODE)
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    unit = fields.String(required=True, validate=CODE)


class MemberSchema(Schema):
    code = fields.String(required=True)
    name = fields.String(required=True)
    household = fields.String(required=True)
    unit = fields.String(required=True)
    account = fields.String(required=True, metadata={"description": "member:<code>"})


class MemberPageSchema(Schema):
    items = fields.List(fields.Nested(MemberSchema), required=True)
    next_after = fields.String(required=True, allow_none=True)


class NewMemberSchema(RequestSchema):
    code = fields.String(required=True, validate=CODE)
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    household = fields.String(required=True, validate=CODE)
    unit = fields.String(load_default=None, allow_none=True, validate=CODE, metadata={
        "description": "default: the household's unit"})


class GrantSchema(Schema):
    id = fields.Integer(required=True)
    principal = fields.String(required=True)
    role = fields.String(required=True)
    unit = fields.String(required=True, metadata={"description": "the role holds on its subtree"})
    created_at = fields.String(required=True)
    revoked_at = fields.String(required=True, allow_none=True)


class GrantListSchema(Schema):
    items = fields.List(fields.Nested(GrantSchema), required=True)


class GrantQuerySchema(RequestSchema):
    principal = fields.String(load_default=None, validate=validate.Length(min=1, max=200))
    include_revoked = fields.Boolean(load_default=False)


class NewGrantSchema(RequestSchema):
    principal = fields.String(required=True, validate=validate.Length(min=1, max=200),
                              metadata={"description": "who: the principal of staff keys"})
    role = fields.String(required=True, validate=validate.OneOf(sorted(ROLES)))
    unit = fields.String(required=True, validate=CODE)


# -- units --------------------------------------------------------------------------------


@blueprint.route("/units", methods=["GET"])
@blueprint.arguments(PageQuerySchema, location="query", as_kwargs=True)
@blueprint.response(200, UnitPageSchema)
def get_units(programme: str, limit: int, after: str | None):
    """The programme's units by code, a page at a time."""
    require_staff(programme, STAFF_ROLES)
    return page(list_units(engine(), programme, after=cursor(after), limit=limit + 1), limit)


@blueprint.route("/units/<unit>", methods=["GET"])
@blueprint.response(200, UnitSchema)
def get_one_unit(programme: str, unit: str):
    """One unit, with its parent and path."""
    require_staff(programme, STAFF_ROLES)
    return get_unit(engine(), programme, unit)


@blueprint.route("/units", methods=["POST"])
@idempotent
@blueprint.arguments(NewUnitSchema)
@blueprint.response(201, UnitSchema)
def post_unit(body: dict, programme: str):
    """Create a unit under `parent` (admin there), or a top unit (operator keys only)."""
    if body["parent"] is None:
        require_operator()
    else:
        require_admin_on(programme, body["parent"])
    create_unit(engine(), programme, body["code"], body["name"], body["kind"], body["parent"])
    return get_unit(engine(), programme, body["code"])


# -- households ---------------------------------------------------------------------------


@blueprint.route("/households", methods=["GET"])
@blueprint.arguments(PageQuerySchema, location="query", as_kwargs=True)
@blueprint.response(200, HouseholdPageSchema)
def get_households(programme: str, limit: int, after: str | None):
    """The programme's households (户) by code, a page at a time."""
    require_staff(programme, STAFF_ROLES)
    return page(list_households(engine(), programme, after=cursor(after), limit=limit + 1),
                limit)


@blueprint.route("/households/<household>", methods=["GET"])
@blueprint.response(200, HouseholdSchema)
def get_one_household(programme: str, household: str):
    """One household and its unit."""
    require_staff(programme, STAFF_ROLES)
    return get_household(engine(), programme, household)


@blueprint.route("/households", methods=["POST"])
@idempotent
@blueprint.arguments(NewHouseholdSchema)
@blueprint.response(201, HouseholdSchema)
def post_household(body: dict, programme: str):
    """Create a household in a unit (admin on a subtree holding it)."""
    require_admin_on(programme, body["unit"])
    create_household(engine(), programme, body["code"], body["name"], body["unit"])
    return get_household(engine(), programme, body["code"])


# -- members ------------------------------------------------------------------------------


@blueprint.route("/members", methods=["GET"])
@blueprint.arguments(PageQuerySchema, location="query", as_kwargs=True)
@blueprint.response(200, MemberPageSchema)
def get_members(programme: str, limit: int, after: str | None):
    """Members by code: within the caller's subtrees for staff, only itself for a member key."""
    caller = require_programme(programme)
    if caller.kind == "member":
        own = _member_info(programme, caller.holder.principal)
        after = cursor(after)
        return {"items": [own] if after is None or own["code"] > after else [],
                "next_after": None}
    caller = require_staff(programme, STAFF_ROLES)
    subtrees = None if caller.kind == "operator" else _staff_subtrees(programme, caller)
    return page(list_members_within(engine(), programme, subtrees, after=cursor(after),
                                    limit=limit + 1), limit)


@blueprint.route("/members/<member>", methods=["GET"])
@blueprint.response(200, MemberSchema)
def get_one_member(programme: str, member: str):
    """One member: their household, unit and account (their own, for a member key)."""
    require_member_access(programme, member)
    return _member_info(programme, member)


@blueprint.route("/members", methods=["POST"])
@idempotent
@blueprint.arguments(NewMemberSchema)
@blueprint.response(201, MemberSchema)
def post_member(body: dict, programme: str):
    """Add a member to a household, with their points account (admin over their unit)."""
    require_staff(programme, ADMIN)
    unit = body["unit"] or get_household(engine(), programme, body["household"]).unit
    require_admin_on(programme, unit)
    return create_member(engine(), programme, body["code"], body["name"], body["household"],
                         body["unit"])


# -- grants -------------------------------------------------------------------------------


@blueprint.route("/grants", methods=["GET"])
@blueprint.arguments(GrantQuerySchema, location="query", as_kwargs=True)
@blueprint.response(200, GrantListSchema)
def get_grants(programme: str, principal: str | None, include_revoked: bool):
    """Who holds which role on which subtree (admin keys)."""
    require_staff(programme, ADMIN)
    return {"items": list_grants(engine(), programme, principal=principal,
                                 include_revoked=include_revoked)}


@blueprint.route("/grants", methods=["POST"])
@idempotent
@blueprint.arguments(NewGrantSchema)
@blueprint.response(201, GrantSchema)
def post_grant(body: dict, programme: str):
    """Give a principal a role on a unit's subtree (admin on a subtree holding the unit).

    A role the principal already holds on that unit is refused
    (`already_exists`), so revoking a grant always takes the role away.
    """
    require_admin_on(programme, body["unit"])
    grant_id = grant_role_once(engine(), programme, body["principal"], body["role"],
                               body["unit"])
    return get_grant(engine(), programme, grant_id)


@blueprint.route(f"/grants/<int(max={MAX_GRANT_ID}):grant>", methods=["DELETE"])
@idempotent
@blueprint.response(200, GrantSchema, description="the grant, now revoked")
def delete_grant(programme: str, grant: int):
    """Revoke a grant from now on (admin on a subtree holding its unit)."""
    require_staff(programme, ADMIN)
    held = get_grant(engine(), programme, grant)
    require_staff(programme, ADMIN, held.unit_path)
    revoke_grant(engine(), programme, grant)
    return get_grant(engine(), programme, grant)


# -- shared by the organisation's routes and others ---------------------------------------


def require_admin_on(programme: str, unit: str) -> Caller:
    """`admin` on a subtree holding `unit`.

    Asking for the role first means a caller without it is told 403
    whatever unit they name, rather than learning which units exist.
    """
    require_staff(programme, ADMIN)
    return require_unit_role(programme, ADMIN, unit)


def require_root_admin(programme: str) -> Caller:
    """`admin` on a top unit of the tree (or an operator key).

    For what belongs to no unit, such as a rule without a scope or a shop:
    it affects the whole programme, so only an admin of a whole tree may
    change it, not an admin of one village.
    """
    caller = require_staff(programme, ADMIN)
    if caller.kind == "operator":
        return caller
    paths = principal_roles(engine(), programme, caller.holder.principal).get("admin", [])
    if any(path.count("/") == 2 for path in paths):
        return caller
    raise ApiProblem("forbidden", f"{caller.holder.principal!r} needs the role admin on a top "
                     "unit of the programme: this concerns the whole programme",
                     needed_roles=list(ADMIN))


def _staff_subtrees(programme: str, caller: Caller) -> list[str]:
    """The unit paths on which a staff caller holds any staff role."""
    held = principal_roles(engine(), programme, caller.holder.principal)
    return sorted({path for role in STAFF_ROLES for path in held.get(role, [])})


def cursor(after: str | None) -> str | None:
    """A page cursor is a code; anything else is `invalid_cursor` (400), never a 500."""
    if after is not None and not CODE_PATTERN.match(after):
        raise ApiProblem("invalid_cursor", f"?after must be the `next_after` of a previous "
                         f"page (a code), not {after!r}")
    return after


def page(rows: list, limit: int) -> dict:
    """A page from up to `limit + 1` rows: the extra row only says that more follow."""
    items = rows[:limit]
    return {"items": items, "next_after": items[-1].code if len(rows) > limit else None}


def _member_info(programme: str, member: str) -> dict:
    record = member_record(engine(), programme, member)
    return {"code": record.code, "name": record.name, "household": record.household,
            "unit": record.unit, "account": record.account}
