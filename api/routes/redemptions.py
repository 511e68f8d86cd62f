"""A shop's scanning device checks and redeems vouchers: exactly once, however often it scans.

The device sends what it scanned (`token`, from the QR code) or what the
resident read out (`code`, the short code). `check` answers whether the
voucher could be redeemed here now, and what it is worth, and writes
nothing; `redeem` moves the held points to the shop's account. The
database, not this view, decides who wins when several devices redeem one
voucher at once (`redemption.redemptions`); the losers get `409
already_redeemed` with when and where.

Only shop keys redeem, each for its own shop (the key's principal). The
operator may act for a shop by naming it; no other key redeems.

Short codes are guessable in principle (50 random bits), so each API key
may send at most `MAX_UNKNOWN_CODES` codes that name no voucher in
`GUESS_WINDOW_SECONDS`; past that, its typed codes are refused `429
too_many_guesses` until the window moves on (scanned tokens still work: a
signature cannot be guessed). A typo never counts: the check character
catches it before any lookup. The count is kept per process, so under
gunicorn a key gets this many per worker.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from datetime import UTC, date, datetime
from types import SimpleNamespace

from flask import Response, current_app, g
from flask_smorest import Blueprint
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from api.auth import Caller, engine, require_programme
from api.idempotency import idempotent
from api.observability import record_appended
from api.problems import ApiProblem, problem
from api.routes.settlement import PeriodDate, ShopStatementLineSchema
from api.routes.shops import require_shop_access
from api.routes.vouchers import redemption_key
from api.schemas import CODE, RequestSchema
from ledger.programmes import get_programme
from redemption import redemptions, settlement, tokens
from redemption.errors import UnknownVoucher

blueprint = Blueprint("redemptions", __name__, url_prefix="/programmes/<programme>",
                      description="Shop devices: check and redeem vouchers; the day's list.")

READING_ROLES = ("admin", "auditor")
MAX_SHORT_CODE_CHARS = 32
"""A short code is 11 characters; hyphens and spaces a person types are allowed around them."""
MAX_UNKNOWN_CODES = 20
GUESS_WINDOW_SECONDS = 600


class ScanSchema(RequestSchema):
    token = fields.String(load_default=None, allow_none=True,
                          validate=validate.Length(min=1, max=tokens.MAX_TOKEN_CHARS),
                          metadata={"description": "what the QR code holds (v4.public.…)"})
    code = fields.String(load_default=None, allow_none=True,
                         validate=validate.Length(min=1, max=MAX_SHORT_CODE_CHARS),
                         metadata={"description": "the short code, as typed (XXXX-XXXX-XXX)"})
    shop = fields.String(load_default=None, allow_none=True, validate=CODE, metadata={
        "description": "the shop; a shop key's own shop when absent (an operator key must "
                       "name one)"})

    @validates_schema
    def token_or_code(self, data: dict, **_) -> None:
        if (data.get("token") is None) == (data.get("code") is None):
            raise ValidationError("send either the scanned token or the typed code", "token")


class RefusalDetailsSchema(Schema):
    code = fields.String(required=True, metadata={
        "description": "what `redeem` would answer: forged, unknown_signing_key, "
                       "wrong_programme, unknown_voucher, already_redeemed, cancelled, "
                       "expired, wrong_shop or shop_suspended"})
    message = fields.String(required=True)
    details = fields.Dict(required=True, metadata={
        "description": "e.g. `redeemed_at`, `shop` and `seq` of an earlier redemption"})


class CheckSchema(Schema):
    valid = fields.Boolean(required=True, metadata={
        "description": "genuine, unspent, valid at this shop and not expired: redeem would "
                       "succeed now"})
    shop = fields.String(required=True)
    voucher = fields.String(required=True, allow_none=True, attribute="voucher_id",
                            metadata={"description": "null when the voucher is not identified"})
    value_points = fields.Integer(required=True, allow_none=True)
    item = fields.String(required=True, allow_none=True)
    expires_at = fields.String(required=True, allow_none=True)
    valid_at = fields.List(fields.String(), required=True, allow_none=True,
                           metadata={"description": "shops where it is valid; null for every"})
    refusal = fields.Nested(RefusalDetailsSchema, required=True, allow_none=True,
                            metadata={"description": "why not, when `valid` is false"})


class RedemptionSchema(Schema):
    voucher = fields.String(required=True, attribute="voucher_id")
    shop = fields.String(required=True)
    entry_seq = fields.Integer(required=True, metadata={
        "description": "the voucher_redeem entry in the programme's chain"})
    value_points = fields.Integer(required=True)
    item = fields.String(required=True, allow_none=True)
    redeemed_at = fields.String(required=True)
    actor = fields.String(required=True)
    settlement_seq = fields.Integer(required=True, allow_none=True)


class DayQuerySchema(RequestSchema):
    day = PeriodDate(data_key="date", load_default=None, metadata={
        "description": "a day in the programme's time zone; default today"})


class DaySchema(Schema):
    shop = fields.String(required=True)
    date = fields.String(required=True)
    time_zone = fields.String(required=True)
    count = fields.Integer(required=True)
    total_points = fields.Integer(required=True)
    items = fields.List(fields.Nested(ShopStatementLineSchema), required=True)


@blueprint.route("/redemptions/check", methods=["POST"])
@blueprint.arguments(ScanSchema)
@blueprint.response(200, CheckSchema)
def check_voucher(body: dict, programme: str):
    """Could this shop redeem the voucher now, and what is it worth? Writes nothing.

    A voucher that cannot be redeemed is still a 200: `valid` is false and
    `refusal` holds the code `redeem` would answer.
    """
    caller, shop = _scanning_shop(programme, body["shop"])
    guesses = _guesses()
    if body["code"] is not None and (wait := guesses.wait_seconds(caller)):
        return _too_many_guesses(wait)
    result = redemptions.check(engine(), programme, shop, body["token"] or body["code"])
    if body["code"] is not None and result.refusal == UnknownVoucher.code:
        guesses.count(caller)
    refusal = None
    if result.refusal is not None:
        refusal = {"code": result.refusal, "message": result.message, "details": result.details}
    return {"valid": result.valid, "shop": shop, "voucher_id": result.voucher_id,
            "value_points": result.value_points, "item": result.item,
            "expires_at": result.expires_at, "valid_at": result.valid_at, "refusal": refusal}


@blueprint.route("/redemptions", methods=["POST"])
@idempotent
@blueprint.arguments(ScanSchema)
@blueprint.response(201, RedemptionSchema, description="redeemed")
@blueprint.alt_response(200, schema=RedemptionSchema,
                        description="redeemed earlier under the same Idempotency-Key")
def redeem_voucher(body: dict, programme: str):
    """Redeem the voucher: its points move from the hold to this shop's account, exactly once.

    A second redemption, from any device, is `409 already_redeemed` with
    `redeemed_at`, `shop` and `seq`; a retry with the same
    `Idempotency-Key` gets the first answer again.
    """
    caller, shop = _scanning_shop(programme, body["shop"])
    guesses = _guesses()
    if body["code"] is not None and (wait := guesses.wait_seconds(caller)):
        return _too_many_guesses(wait)
    try:
        redemption = redemptions.redeem(engine(), programme, shop,
                                        body["token"] or body["code"], actor=caller.actor,
                                        idempotency_key=redemption_key())
    except UnknownVoucher:
        if body["code"] is not None:
            guesses.count(caller)
        raise
    if redemption.created:
        record_appended([SimpleNamespace(kind="voucher_redeem")])
    return redemption, 201 if redemption.created else 200


@blueprint.route("/shops/<code>/redemptions", methods=["GET"])
@blueprint.arguments(DayQuerySchema, location="query", as_kwargs=True)
@blueprint.response(200, DaySchema)
def get_shop_redemptions(programme: str, code: str, day: date | None):
    """A shop's redemptions on one day, oldest first (its own key, or an admin or auditor)."""
    require_shop_access(programme, code, READING_ROLES)
    if day is None:
        day = datetime.now(UTC).astimezone(get_programme(engine(), programme).zone).date()
    found = settlement.statement(engine(), programme, code, day, day)
    return {"shop": found.shop, "date": day.isoformat(), "time_zone": found.time_zone,
            "count": len(found.lines), "total_points": found.total_points,
            "items": found.lines}


def _scanning_shop(programme: str, named: str | None) -> tuple[Caller, str]:
    """The caller, and the shop it checks or redeems for: a shop key's own, or the one the
    operator names.

    A shop key naming another shop is refused: a device of one shop must
    never credit another's account.
    """
    caller: Caller = require_programme(programme)
    if caller.kind == "shop":
        own = caller.holder.principal
        if named is not None and named != own:
            raise ApiProblem("forbidden", f"this key belongs to shop {own!r}; it cannot act "
                             f"for {named!r}")
        return caller, own
    if caller.kind == "operator":
        if named is None:
            raise ValidationError({"shop": ["an operator key must name the shop"]})
        return caller, named
    raise ApiProblem("forbidden", f"only a shop's key checks and redeems vouchers, not a "
                     f"{caller.kind} key")


class ShortCodeGuesses:
    """Short codes naming no voucher, by API key, over the last `GUESS_WINDOW_SECONDS`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._misses: dict[int, deque[float]] = {}

    def wait_seconds(self, caller: Caller) -> int:
        """0 if the key may send a code now; else how long until it may."""
        now = time.monotonic()
        with self._lock:
            misses = self._recent(caller.holder.key_id, now)
            if len(misses) < MAX_UNKNOWN_CODES:
                return 0
            return max(1, int(misses[0] + GUESS_WINDOW_SECONDS - now) + 1)

    def count(self, caller: Caller) -> None:
        now = time.monotonic()
        with self._lock:
            self._recent(caller.holder.key_id, now).append(now)

    def _recent(self, key_id: int, now: float) -> deque[float]:
        misses = self._misses.setdefault(key_id, deque())
        while misses and misses[0] <= now - GUESS_WINDOW_SECONDS:
            misses.popleft()
        return misses


def _guesses() -> ShortCodeGuesses:
    """This app's count (each app its own: tests build many, on databases whose key ids
    overlap)."""
    return current_app.extensions.setdefault("jifen.short_code_guesses", ShortCodeGuesses())


def _too_many_guesses(wait_seconds: int) -> Response:
    g.refusal_code = "too_many_guesses"
    response = problem("too_many_guesses", f"this key sent {MAX_UNKNOWN_CODES} short codes that "
                       f"name no voucher in the last {GUESS_WINDOW_SECONDS // 60} minutes; "
                       f"scan the QR code, or type codes again in {wait_seconds} s",
                       retry_after_seconds=wait_seconds)
    response.headers["Retry-After"] = str(wait_seconds)
    return response
