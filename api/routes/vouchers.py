"""Vouchers (抵扣券): a resident's points held for one purchase, its token, QR code and keys.

A member's own key turns that member's points into a voucher; an organiser
or admin over the member's unit may do it for them. The voucher comes with
its token (PASETO v4.public, signed with the programme's Ed25519 key) and a
short code to type when the camera fails; its QR code is served as PNG and
SVG. The member or staff over the member read it; the member or an admin
cancel it, which returns the points.

The verification keys are public (`GET /voucher-keys`, no key needed): a
shop app downloads them once and checks tokens offline with any PASETO
library. They reveal nothing but which tokens are genuine.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict
from datetime import UTC, datetime, time, timedelta

from flask import Response
from flask_smorest import Blueprint
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from api.auth import STAFF_ROLES, engine, require_member_access, require_programme
from api.idempotency import idempotent, ledger_key
from api.schemas import CODE, RequestSchema
from ledger.chain import MAX_IDEMPOTENCY_KEY_CHARS, MAX_MEMO_CHARS, MAX_POINTS
from ledger.models import CODE_LENGTH
from ledger.programmes import get_programme
from redemption import qr, redemptions, signing_keys, vouchers
from redemption.settings import MAX_VOUCHER_VALIDITY_DAYS

blueprint = Blueprint("vouchers", __name__, url_prefix="/programmes/<programme>",
                      description="Vouchers: issue, read, QR codes, cancel.")
public_blueprint = Blueprint("voucher_keys", __name__, url_prefix="/programmes/<programme>",
                             description="The public keys that verify voucher tokens "
                                         "(no authentication).")

ISSUING_ROLES = ("organiser", "admin")
"""Staff who may turn a member's points into a voucher for them (over the member's unit)."""
CANCELLING_ROLES = ("admin",)
VOUCHER_STATUSES = (vouchers.ISSUED, vouchers.REDEEMED, vouchers.CANCELLED, vouchers.EXPIRED)
MAX_PAGE_VOUCHERS = 1_000
MAX_SERVICE_KEY_CHARS = min(
    vouchers.MAX_CLIENT_KEY_CHARS,
    MAX_IDEMPOTENCY_KEY_CHARS - len(redemptions.REDEEM_KEY_PREFIX) - CODE_LENGTH - len(":"))
"""The longest client key the redemption services take, and that still fits the entry's
key once `redeem` has prefixed it with the shop's code."""
KEYS_MAX_AGE_SECONDS = 300
"""How long a shop app or proxy may cache the published keys: a withdrawn key stops
verifying here at once, and in offline apps within this time."""


class VoucherSchema(Schema):
    id = fields.String(required=True)
    member = fields.String(required=True)
    value_points = fields.Integer(required=True)
    item = fields.String(required=True, allow_none=True,
                         metadata={"description": "the catalog item it is for; null for points"})
    shops = fields.List(fields.String(), required=True, allow_none=True,
                        metadata={"description": "where it is valid; null for every shop"})
    status = fields.String(required=True, metadata={"description": ", ".join(VOUCHER_STATUSES)})
    short_code = fields.String(required=True, attribute="display_code", metadata={
        "description": "XXXX-XXXX-XXX, to type when the camera fails (last: a check character)"})
    key_id = fields.String(required=True, metadata={"description": "k4.pid of the signing key"})
    issued_at = fields.String(required=True)
    expires_at = fields.String(required=True, metadata={"description": "valid before this"})
    issue_seq = fields.Integer(required=True, metadata={"description": "the voucher_issue entry"})
    closed_seq = fields.Integer(required=True, allow_none=True, metadata={
        "description": "the first entry that returned its points (cancel or expiry)"})
    closed_at = fields.String(required=True, allow_none=True)


class VoucherWithTokenSchema(VoucherSchema):
    token = fields.String(required=True, metadata={
        "description": "PASETO v4.public: what the QR code holds; a bearer secret"})


class VoucherListSchema(Schema):
    items = fields.List(fields.Nested(VoucherSchema), required=True)


class NewVoucherSchema(RequestSchema):
    member = fields.String(required=True, validate=CODE)
    points = fields.Integer(load_default=None, allow_none=True, strict=True,
                            validate=validate.Range(min=1, max=MAX_POINTS),
                            metadata={"description": "a fixed value; or give `item`"})
    item = fields.String(load_default=None, allow_none=True, validate=CODE,
                         metadata={"description": "a catalog item (its price); or `points`"})
    shops = fields.List(fields.String(validate=CODE), load_default=None, allow_none=True,
                        validate=validate.Length(min=1, max=vouchers.MAX_SHOPS_PER_VOUCHER),
                        metadata={"description": "where it is valid; absent for every shop"})
    expires_in_days = fields.Integer(
        load_default=None, allow_none=True, strict=True,
        validate=validate.Range(min=0, max=MAX_VOUCHER_VALIDITY_DAYS - 1),
        metadata={"description": "valid through the end of the day this many days from today "
                                 "(programme time; 0: today); default the programme's setting"})

    @validates_schema
    def points_or_item(self, data: dict, **_) -> None:
        if (data.get("points") is None) == (data.get("item") is None):
            raise ValidationError("give either points or item", "points")


class CancelSchema(RequestSchema):
    memo = fields.String(load_default="", validate=validate.Length(max=MAX_MEMO_CHARS))


class VoucherListQuerySchema(RequestSchema):
    status = fields.String(load_default=None, validate=validate.OneOf(VOUCHER_STATUSES))
    limit = fields.Integer(load_default=100,
                           validate=validate.Range(min=1, max=MAX_PAGE_VOUCHERS))


class PublishedKeySchema(Schema):
    kid = fields.String(required=True, metadata={"description": "PASERK k4.pid: a token "
                                                 "footer's `kid` names its key"})
    paserk = fields.String(required=True, metadata={"description": "PASERK k4.public"})
    status = fields.String(required=True, metadata={
        "description": "signing (signs new vouchers) or retired (signs no more, still verifies)"})
    created_at = fields.String(required=True)
    retired_at = fields.String(required=True, allow_none=True)


class KeyQuerySchema(RequestSchema):
    kid = fields.String(load_default=None, validate=validate.Regexp(
        r"^k4\.pid\.[A-Za-z0-9_-]{44}$", error="must be a PASERK k4.pid"), metadata={
        "description": "only this key: what a token's footer names (absent: every key)"})


class PublishedKeysSchema(Schema):
    keys = fields.List(fields.Nested(PublishedKeySchema), required=True)


@blueprint.route("/vouchers", methods=["POST"])
@idempotent
@blueprint.arguments(NewVoucherSchema)
@blueprint.response(201, VoucherWithTokenSchema)
def post_voucher(body: dict, programme: str):
    """Turn a member's points into a voucher (the member's own key, or an organiser or admin).

    The points move from the member to the programme's hold in a
    `voucher_issue` entry; the member's balance cannot go below zero.
    """
    caller = require_member_access(programme, body["member"], ISSUING_ROLES)
    expires_at = None
    if body["expires_in_days"] is not None:
        expires_at = _end_of_day_in(programme, body["expires_in_days"])
    voucher = vouchers.issue_voucher(
        engine(), programme, body["member"], actor=caller.actor, points=body["points"],
        item=body["item"], shops=body["shops"], expires_at=expires_at,
        idempotency_key=redemption_key())
    return _with_token(voucher)


@blueprint.route("/vouchers/<voucher_id>", methods=["GET"])
@blueprint.response(200, VoucherWithTokenSchema)
def get_voucher(programme: str, voucher_id: str):
    """A voucher with its token (the member's own key, or staff over the member)."""
    return _with_token(_readable_voucher(programme, voucher_id))


@blueprint.route("/vouchers/<voucher_id>/qr.png", methods=["GET"])
@blueprint.response(200, {"type": "string", "format": "binary"}, content_type="image/png",
                    description="the token as a QR code (error correction M)")
def get_voucher_qr_png(programme: str, voucher_id: str):
    """The voucher's QR code as PNG (the member's own key, or staff over the member)."""
    voucher = _readable_voucher(programme, voucher_id)
    return _image(qr.qr_png(vouchers.voucher_token(engine(), programme, voucher.id)),
                  "image/png")


@blueprint.route("/vouchers/<voucher_id>/qr.svg", methods=["GET"])
@blueprint.response(200, {"type": "string"}, content_type="image/svg+xml",
                    description="the token as a QR code (error correction M)")
def get_voucher_qr_svg(programme: str, voucher_id: str):
    """The voucher's QR code as SVG (the member's own key, or staff over the member)."""
    voucher = _readable_voucher(programme, voucher_id)
    return _image(qr.qr_svg(vouchers.voucher_token(engine(), programme, voucher.id)),
                  "image/svg+xml")


@blueprint.route("/vouchers/<voucher_id>/cancel", methods=["POST"])
@idempotent
@blueprint.arguments(CancelSchema)
@blueprint.response(200, VoucherSchema, description="the voucher, cancelled")
def cancel_voucher(body: dict, programme: str, voucher_id: str):
    """Cancel an unredeemed voucher: its points go back to the member (the member or an admin).

    Cancelling a cancelled voucher changes nothing and answers the same.
    """
    caller = require_programme(programme)
    voucher = vouchers.get_voucher(engine(), programme, voucher_id)
    require_member_access(programme, voucher.member, CANCELLING_ROLES)
    return vouchers.cancel_voucher(engine(), programme, voucher.id, actor=caller.actor,
                                   memo=body["memo"])


@blueprint.route("/members/<member>/vouchers", methods=["GET"])
@blueprint.arguments(VoucherListQuerySchema, location="query", as_kwargs=True)
@blueprint.response(200, VoucherListSchema)
def get_member_vouchers(programme: str, member: str, status: str | None, limit: int):
    """A member's vouchers, newest first (the member's own key, or staff over the member)."""
    require_member_access(programme, member)
    return {"items": vouchers.list_vouchers(engine(), programme, member=member, status=status,
                                            limit=limit)}


@public_blueprint.route("/voucher-keys", methods=["GET"])
@public_blueprint.arguments(KeyQuerySchema, location="query", as_kwargs=True)
@public_blueprint.response(200, PublishedKeysSchema)
@public_blueprint.doc(security=[])
def get_voucher_keys(programme: str, kid: str | None):
    """The keys that verify this programme's voucher tokens, as PASERK (public: no key needed).

    The signing key comes first; retired keys sign nothing new but still
    verify the vouchers they signed; withdrawn keys are left out. A shop
    app meeting a token whose `kid` it does not know asks for that one
    (`?kid=`): an empty list means the key is not, or no longer, published.
    """
    keys = [key for key in signing_keys.published_keys(engine(), programme)
            if kid is None or key["kid"] == kid]
    return {"keys": keys}, 200, {"Cache-Control": f"public, max-age={KEYS_MAX_AGE_SECONDS}"}


def redemption_key() -> str | None:
    """`ledger_key()`, shortened to fit the redemption services' limit on a client's key.

    The API takes `Idempotency-Key` headers of up to 150 characters and
    `ledger_key()` prefixes them with the API key's id; the redemption
    services take at most 150, and `redeem` prefixes the key again with the
    shop's code, within the chain's 200. A key longer than
    `MAX_SERVICE_KEY_CHARS` is therefore replaced by its SHA-256, which is
    as unique and the same on every retry.
    """
    key = ledger_key()
    if key is None or len(key) <= MAX_SERVICE_KEY_CHARS:
        return key
    return "api-sha256:" + hashlib.sha256(key.encode("ascii")).hexdigest()


def _readable_voucher(programme: str, voucher_id: str) -> vouchers.Voucher:
    """The voucher, if the caller is its member's own key or staff over that member."""
    require_programme(programme)
    voucher = vouchers.get_voucher(engine(), programme, voucher_id)
    require_member_access(programme, voucher.member, STAFF_ROLES)
    return voucher


def _with_token(voucher: vouchers.Voucher) -> dict:
    return asdict(voucher) | {
        "display_code": voucher.display_code,
        "token": vouchers.voucher_token(engine(), voucher.programme, voucher.id)}


def _end_of_day_in(programme: str, days: int) -> datetime:
    """The first moment after the day `days` from today, in the programme's time zone."""
    zone = get_programme(engine(), programme).zone
    today = datetime.now(UTC).astimezone(zone).date()
    return datetime.combine(today + timedelta(days=days + 1), time(), zone)


def _image(data: bytes, mimetype: str) -> Response:
    response = Response(data, mimetype=mimetype)
    response.headers["Cache-Control"] = "private, no-store"
    return response
