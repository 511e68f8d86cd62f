"""The points catalog (积分超市的货架): what vouchers can be for, priced in points.

An item is `goods` (rice, oil, soap: with a stock count that never goes
below zero) or `cash_off` (a discount worth `value_fen` at the till). The
catalog is the programme's, so changing it needs `admin` on a top unit;
every key of the programme reads it (residents choose from it, shops look
up what a voucher is for).
"""

from __future__ import annotations

from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from api.auth import engine, require_programme
from api.idempotency import idempotent
from api.routes.organisation import require_root_admin
from api.schemas import CODE, RequestSchema
from ledger.chain import MAX_POINTS
from redemption import catalog

blueprint = Blueprint("items", __name__, url_prefix="/programmes/<programme>",
                      description="Catalog items (积分超市): goods with stock, or cash off.")


class ItemSchema(Schema):
    code = fields.String(required=True)
    name = fields.String(required=True)
    kind = fields.String(required=True, metadata={"description": "goods or cash_off"})
    price_points = fields.Integer(required=True)
    value_fen = fields.Integer(required=True, allow_none=True, metadata={
        "description": "what a cash-off item takes off the bill, in fen (分); null for goods"})
    stock = fields.Integer(required=True, allow_none=True, metadata={
        "description": "units left of goods; null for cash-off items"})


class ItemListSchema(Schema):
    items = fields.List(fields.Nested(ItemSchema), required=True)


class NewItemSchema(RequestSchema):
    code = fields.String(required=True, validate=CODE)
    name = fields.String(required=True,
                         validate=validate.Length(min=1, max=catalog.MAX_NAME_CHARS))
    kind = fields.String(required=True, validate=validate.OneOf(catalog.KINDS))
    price_points = fields.Integer(required=True, strict=True,
                                  validate=validate.Range(min=1, max=MAX_POINTS))
    stock = fields.Integer(load_default=None, allow_none=True, strict=True,
                           validate=validate.Range(min=0, max=catalog.MAX_STOCK),
                           metadata={"description": "goods only: units in stock"})
    value_fen = fields.Integer(load_default=None, allow_none=True, strict=True,
                               validate=validate.Range(min=1, max=MAX_POINTS),
                               metadata={"description": "cash_off only: value in fen (分)"})


class RestockSchema(RequestSchema):
    units = fields.Integer(required=True, strict=True,
                           validate=validate.Range(min=1, max=catalog.MAX_STOCK))


@blueprint.route("/items", methods=["POST"])
@idempotent
@blueprint.arguments(NewItemSchema)
@blueprint.response(201, ItemSchema)
def post_item(body: dict, programme: str):
    """Add an item: goods need `stock`, cash-off items `value_fen` (admin on a top unit)."""
    require_root_admin(programme)
    return catalog.create_item(engine(), programme, body["code"], body["name"],
                               kind=body["kind"], price_points=body["price_points"],
                               stock=body["stock"], value_fen=body["value_fen"])


@blueprint.route("/items", methods=["GET"])
@blueprint.response(200, ItemListSchema)
def get_items(programme: str):
    """Every item of the catalog, by code, with its stock (any key of the programme)."""
    require_programme(programme)
    return {"items": catalog.list_items(engine(), programme)}


@blueprint.route("/items/<code>/restock", methods=["POST"])
@idempotent
@blueprint.arguments(RestockSchema)
@blueprint.response(200, ItemSchema, description="the item, with its stock after")
def restock_item(body: dict, programme: str, code: str):
    """Add units to a goods item's stock (admin on a top unit).

    Not idempotent by itself: send an `Idempotency-Key` so that a retried
    delivery is counted once.
    """
    require_root_admin(programme)
    return catalog.restock(engine(), programme, code, body["units"])
