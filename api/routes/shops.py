"""Partner shops (合作商户) and the points supermarket (积分超市): registered, suspended, listed.

A shop serves the whole programme (the units it lists are for people and
for suggesting where vouchers should be valid), so registering, suspending
and reactivating one needs `admin` on a top unit, as issuing its device
keys does (`POST /keys` with `kind: shop`, principal = the shop's code).
Any staff role reads shops; a shop's own key reads its own record. A
suspended shop keeps its account and history but redeems nothing.
"""

from __future__ import annotations

from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from api.auth import STAFF_ROLES, Caller, engine, require_programme, require_staff
from api.idempotency import idempotent
from api.problems import ApiProblem
from api.routes.organisation import require_root_admin
from api.schemas import CODE, RequestSchema
from redemption import shops

blueprint = Blueprint("shops", __name__, url_prefix="/programmes/<programme>",
                      description="Partner shops: register, suspend, reactivate, read.")


class ShopSchema(Schema):
    code = fields.String(required=True)
    name = fields.String(required=True)
    units = fields.List(fields.String(), required=True,
                        metadata={"description": "codes of the units it serves"})
    contact = fields.String(required=True)
    status = fields.String(required=True, metadata={"description": "active or suspended"})
    account = fields.String(required=True, metadata={
        "description": "`shop:<code>`: credited by redemptions, emptied by settlements"})


class ShopListSchema(Schema):
    items = fields.List(fields.Nested(ShopSchema), required=True)


class NewShopSchema(RequestSchema):
    code = fields.String(required=True, validate=CODE)
    name = fields.String(required=True, validate=validate.Length(min=1,
                                                                 max=shops.MAX_NAME_CHARS))
    units = fields.List(fields.String(validate=CODE), load_default=list,
                        validate=validate.Length(max=shops.MAX_UNITS_PER_SHOP))
    contact = fields.String(load_default="", validate=validate.Length(max=shops.MAX_NAME_CHARS))


@blueprint.route("/shops", methods=["POST"])
@idempotent
@blueprint.arguments(NewShopSchema)
@blueprint.response(201, ShopSchema)
def post_shop(body: dict, programme: str):
    """Register a shop and open its account `shop:<code>` (admin on a top unit)."""
    require_root_admin(programme)
    return shops.create_shop(engine(), programme, body["code"], body["name"], body["units"],
                             body["contact"])


@blueprint.route("/shops", methods=["GET"])
@blueprint.response(200, ShopListSchema)
def get_shops(programme: str):
    """Every shop of the programme, by code (any staff role)."""
    require_staff(programme, STAFF_ROLES)
    return {"items": shops.list_shops(engine(), programme)}


@blueprint.route("/shops/<code>", methods=["GET"])
@blueprint.response(200, ShopSchema)
def get_shop(programme: str, code: str):
    """One shop (any staff role, or the shop's own key)."""
    require_shop_access(programme, code, STAFF_ROLES)
    return shops.get_shop(engine(), programme, code)


@blueprint.route("/shops/<code>/suspend", methods=["POST"])
@idempotent
@blueprint.response(200, ShopSchema)
def suspend_shop(programme: str, code: str):
    """Stop a shop redeeming vouchers; its account and history stay (admin on a top unit)."""
    require_root_admin(programme)
    return shops.suspend_shop(engine(), programme, code)


@blueprint.route("/shops/<code>/reactivate", methods=["POST"])
@idempotent
@blueprint.response(200, ShopSchema)
def reactivate_shop(programme: str, code: str):
    """Let a suspended shop redeem again (admin on a top unit)."""
    require_root_admin(programme)
    return shops.reactivate_shop(engine(), programme, code)


def require_shop_access(programme: str, shop: str, roles: tuple[str, ...]) -> Caller:
    """The shop's own key, or staff holding one of `roles` anywhere in the programme.

    A shop key speaks for one shop (its principal): it reads that shop's
    records and no other's. Member keys read no shop's records.
    """
    caller = require_programme(programme)
    if caller.kind == "shop":
        if caller.holder.principal != shop:
            raise ApiProblem("forbidden", f"this key belongs to shop {caller.holder.principal!r}, "
                             f"not {shop!r}; a shop key reads only its own shop")
        return caller
    return require_staff(programme, roles)
