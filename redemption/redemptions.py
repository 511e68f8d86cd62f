"""Checking and redeeming a voucher at a shop: exactly once, however many devices scan it.

A shop device sends what it scanned (the token in the QR code) or what was
typed (the short code). `check` answers, without writing anything: is it
genuine, unspent, valid at this shop, not expired, and what is it worth.
`redeem` posts a `voucher_redeem` entry (`held` −points, `shop:<code>`
+points) and marks the voucher redeemed.

Exactly once. The voucher's row moves `issued` → `redeemed` by a conditional
UPDATE (`WHERE status = 'issued' AND expires_at > now`) run by the entry's
guard, inside the chain lock and in the entry's transaction: of any number
of redemptions racing for one voucher the database lets one match, and the
others are refused `already_redeemed` with when and where it happened.
Nothing is decided by a Python check followed by an update; the checks
made before the lock only spare the lock a request that would be refused
anyway. The redemption row's primary key (the voucher) backs this up.

Retries. With an idempotency key, a shop that retries (lost response,
double tap) gets the same redemption back, marked `created=False`; the key
is scoped to the shop.

Refusal codes, each its own exception (`redemption.errors`): `forged`,
`unknown_signing_key`, `wrong_programme`, `unknown_voucher`,
`already_redeemed`, `cancelled`, `expired`, `wrong_shop`, `shop_suspended`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection, Engine

from ledger import errors
from ledger.chain import Draft, Entry, Posting, Prepared, append_batch
from ledger.entry_format import format_timestamp
from ledger.programmes import ProgrammeInfo, get_programme
from ledger.storage import read_transaction
from redemption import codes, tokens
from redemption.errors import (
    Forged,
    RedemptionError,
    ShopSuspended,
    UnknownShop,
    UnknownSigningKey,
    UnknownVoucher,
    VoucherExpired,
    WrongProgramme,
    WrongShop,
)
from redemption.models import CatalogItem, Shop
from redemption.models import Redemption as RedemptionRow
from redemption.models import Voucher as VoucherRow
from redemption.shops import ACTIVE, ShopInfo, require_shop, shop_account
from redemption.signing_keys import verification_key
from redemption.vouchers import (
    HELD,
    ISSUED,
    REDEEMED,
    Voucher,
    check_actor,
    check_client_key,
    find_by_short_code,
    refuse_unless_issued,
    require_held,
    require_voucher,
)

REDEEM_KEY_PREFIX = "voucher-redeem:"


@dataclass(frozen=True)
class CheckResult:
    """What a shop is told before redeeming: `valid`, or the refusal `redeem` would give."""

    valid: bool
    voucher_id: str | None
    value_points: int | None
    item: str | None
    expires_at: str | None
    valid_at: tuple[str, ...] | None
    """Shops where it can be redeemed; None for every shop."""
    refusal: str | None = None
    message: str = ""
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Redemption:
    voucher_id: str
    programme: str
    shop: str
    entry_seq: int
    value_points: int
    item: str | None
    redeemed_at: str
    actor: str
    idempotency_key: str | None
    settlement_seq: int | None
    created: bool
    """False when an idempotent retry got the earlier redemption back."""


def check(engine: Engine, programme: str, shop: str, token_or_code: str) -> CheckResult:
    """Would `shop` be able to redeem this voucher now? Writes nothing.

    A voucher refusal comes back in the result (`valid=False`, `refusal`
    being the code `redeem` would raise). Raises only `UnknownProgramme`
    and `UnknownShop`: those are mistakes of the caller, not of the voucher.
    """
    with read_transaction(engine) as connection:
        programme_info = get_programme(connection, programme)
        shop_info = require_shop(connection, programme_info.id, programme, shop)
        voucher = None
        try:
            voucher = identify(connection, programme_info, token_or_code)
            _refuse(connection, shop_info, voucher, format_timestamp(datetime.now(UTC)))
        except UnknownShop:
            raise
        except RedemptionError as refusal:
            return _result(voucher, refusal)
    return _result(voucher, None)


def redeem(engine: Engine, programme: str, shop: str, token_or_code: str, *, actor: str,
           idempotency_key: str | None = None) -> Redemption:
    """Redeem the voucher at `shop`: its held points move to `shop:<code>`, exactly once.

    `actor` names the device or cashier. Raises `UnknownProgramme`,
    `UnknownShop`, `InvalidEntry`, each refusal listed in the module's
    docstring, `IdempotencyConflict` (the key was used by this shop for
    another voucher) and `StorageBusy`.
    """
    check_actor(actor)
    check_client_key(idempotency_key)
    with read_transaction(engine) as connection:
        programme_info = get_programme(connection, programme)
        shop_info = require_shop(connection, programme_info.id, programme, shop)
        voucher = identify(connection, programme_info, token_or_code)
        if idempotency_key is not None:
            earlier = _redemption_by_key(connection, shop_info, idempotency_key)
            if earlier is not None:
                return _same_voucher(earlier, voucher, idempotency_key)
        # Refusing here spares the chain lock; the guard decides, not this.
        _refuse(connection, shop_info, voucher, format_timestamp(datetime.now(UTC)))

    metadata: dict[str, Any] = {"shop": shop_info.code, "voucher": voucher.id}
    if voucher.item is not None:
        metadata["item"] = voucher.item
    draft = Draft(
        kind="voucher_redeem",
        postings=[Posting(HELD, -voucher.value_points),
                  Posting(shop_account(shop_info.code), voucher.value_points)],
        actor=actor,
        memo=f"voucher {voucher.id} redeemed at {shop_info.code}",
        metadata=metadata,
        idempotency_key=(f"{REDEEM_KEY_PREFIX}{shop_info.code}:{idempotency_key}"
                         if idempotency_key else None),
    )
    appended = append_batch(engine, programme, [draft], guard=_redeem_guard(shop_info, voucher),
                            after_write=_record(shop_info, voucher, actor, idempotency_key))[0]
    with read_transaction(engine) as connection:
        row = connection.execute(
            _redemption_query().where(RedemptionRow.programme_id == programme_info.id,
                                      RedemptionRow.entry_seq == appended.entry.seq)
        ).one()
    return _redemption(row, programme, created=appended.created)


def identify(connection: Connection, programme: ProgrammeInfo, token_or_code: str) -> Voucher:
    """The voucher a scanned token or a typed short code stands for.

    A token is verified against the published key its footer names, and
    what it claims must be what the voucher row says. Raises `Forged`,
    `UnknownSigningKey`, `WrongProgramme`, `UnknownVoucher`.
    """
    if not isinstance(token_or_code, str):
        raise Forged("a voucher is a token or a short code, as text", reason="not text")
    text = token_or_code.strip()
    if "." not in text:
        try:
            short_code = codes.parse(text)
        except codes.ShortCodeError as error:
            raise Forged(f"not a valid short code: {error.reason}", reason=error.reason) from None
        return find_by_short_code(connection, programme, short_code)
    try:
        key_id = tokens.footer_key_id(tokens.read_footer(text))
    except tokens.TokenError as error:
        raise Forged(f"not a voucher token: {error.reason}", reason=error.reason) from None
    key = verification_key(connection, key_id)
    if key is None:
        raise UnknownSigningKey(f"the token is signed by key {key_id}, which is not published",
                                key_id=key_id)
    try:
        claims = tokens.verify(text, key.public_key).claims()
    except tokens.TokenError as error:
        raise Forged(f"the token does not verify: {error.reason}", reason=error.reason) from None
    claimed_programme = claims.get("programme")
    if key.programme_id != programme.id:
        raise WrongProgramme(
            f"the voucher belongs to programme {claimed_programme!r}, not {programme.code!r}",
            programme=claimed_programme)
    if claimed_programme != programme.code or not isinstance(claims.get("jti"), str):
        raise Forged("the token's claims do not name a voucher of this programme",
                     reason="claims")
    voucher = require_voucher(connection, programme, claims["jti"])
    if voucher.claims() != claims:
        raise Forged("the token's claims differ from the voucher's", reason="claims")
    return voucher


def get_redemption(engine: Engine, programme: str, voucher_id: str) -> Redemption:
    """The redemption of a voucher; raises `UnknownVoucher` when it was not redeemed."""
    with read_transaction(engine) as connection:
        programme_info = get_programme(connection, programme)
        row = connection.execute(
            _redemption_query().where(RedemptionRow.programme_id == programme_info.id,
                                      RedemptionRow.voucher_id == voucher_id)
        ).first()
    if row is None:
        raise UnknownVoucher(f"voucher {voucher_id!r} was not redeemed", voucher=voucher_id)
    return _redemption(row, programme, created=False)


def _refuse(connection: Connection, shop: ShopInfo, voucher: Voucher, now: str) -> None:
    if not shop.active:
        raise ShopSuspended(f"shop {shop.code} is suspended and can redeem nothing",
                            shop=shop.code)
    refuse_unless_issued(connection, voucher)
    if voucher.expires_at <= now:
        raise VoucherExpired(f"voucher {voucher.display_code} expired at {voucher.expires_at}",
                             voucher=voucher.id, expires_at=voucher.expires_at)
    if voucher.shops is not None and shop.code not in voucher.shops:
        raise WrongShop(f"voucher {voucher.display_code} is not valid at {shop.code}",
                        voucher=voucher.id, valid_at=list(voucher.shops))


def _redeem_guard(shop: ShopInfo, voucher: Voucher):
    def guard(connection: Connection, programme_info: ProgrammeInfo,
              prepared: Sequence[Prepared]) -> None:
        status = connection.execute(select(Shop.status).where(Shop.id == shop.id)).scalar_one()
        if status != ACTIVE:
            raise ShopSuspended(f"shop {shop.code} is suspended and can redeem nothing",
                                shop=shop.code)
        now = format_timestamp(datetime.now(UTC))
        redeemed = connection.execute(
            update(VoucherRow)
            .where(VoucherRow.id == voucher.id, VoucherRow.status == ISSUED,
                   VoucherRow.expires_at > now)
            .values(status=REDEEMED)
        ).rowcount
        if redeemed != 1:
            current = require_voucher(connection, programme_info, voucher.id)
            refuse_unless_issued(connection, current)
            raise VoucherExpired(f"voucher {current.display_code} expired at "
                                 f"{current.expires_at}", voucher=current.id,
                                 expires_at=current.expires_at)
        require_held(connection, programme_info, voucher.value_points)

    return guard


def _record(shop: ShopInfo, voucher: Voucher, actor: str, idempotency_key: str | None):
    def record(connection: Connection, programme_info: ProgrammeInfo,
               entries: Sequence[Entry]) -> None:
        entry = entries[0]
        connection.execute(insert(RedemptionRow).values(
            voucher_id=voucher.id, programme_id=programme_info.id, shop_id=shop.id,
            entry_seq=entry.seq, value_points=voucher.value_points,
            redeemed_at=entry.recorded_at, actor=actor, idempotency_key=idempotency_key,
            settlement_seq=None))

    return record


def _redemption_by_key(connection: Connection, shop: ShopInfo, key: str):
    return connection.execute(
        _redemption_query().where(RedemptionRow.shop_id == shop.id,
                                  RedemptionRow.idempotency_key == key)
    ).first()


def _same_voucher(row: Any, voucher: Voucher, key: str) -> Redemption:
    if row.voucher_id != voucher.id:
        raise errors.IdempotencyConflict(
            f"idempotency key {key!r} was used by this shop for voucher {row.voucher_id}",
            idempotency_key=key, voucher=row.voucher_id)
    return _redemption(row, voucher.programme, created=False)


def _redemption_query():
    return (
        select(RedemptionRow, Shop.code.label("shop_code"), CatalogItem.code.label("item_code"))
        .join(Shop, Shop.id == RedemptionRow.shop_id)
        .join(VoucherRow, VoucherRow.id == RedemptionRow.voucher_id)
        .outerjoin(CatalogItem, CatalogItem.id == VoucherRow.item_id)
    )


def _redemption(row: Any, programme: str, created: bool) -> Redemption:
    return Redemption(row.voucher_id, programme, row.shop_code, row.entry_seq, row.value_points,
                      row.item_code, row.redeemed_at, row.actor, row.idempotency_key,
                      row.settlement_seq, created)


def _result(voucher: Voucher | None, refusal: RedemptionError | None) -> CheckResult:
    known = {
        "voucher_id": voucher.id if voucher else None,
        "value_points": voucher.value_points if voucher else None,
        "item": voucher.item if voucher else None,
        "expires_at": voucher.expires_at if voucher else None,
        "valid_at": voucher.shops if voucher else None,
    }
    if refusal is None:
        return CheckResult(valid=True, **known)
    return CheckResult(valid=False, refusal=refusal.code, message=refusal.message,
                       details=json.loads(json.dumps(refusal.details)), **known)
