"""Refusals of the redemption area, each with the stable `code` a shop app branches on.

They are `ledger.errors.LedgerError`s, so the API and the CLI report them
the way they report the ledger's own. Nothing was written when one is raised.
"""

from __future__ import annotations

from ledger.errors import LedgerError


class RedemptionError(LedgerError):
    """Base of the redemption area's refusals."""

    code = "redemption_error"


class Forged(RedemptionError):
    """Not a voucher we signed: a bad signature, a malformed token, or a short code whose
    check character does not match (`details['reason']` says which)."""

    code = "forged"


class UnknownSigningKey(RedemptionError):
    """The token names a key that is not published (never existed here, or withdrawn)."""

    code = "unknown_signing_key"


class WrongProgramme(RedemptionError):
    """A genuine voucher of another programme."""

    code = "wrong_programme"


class UnknownVoucher(RedemptionError):
    code = "unknown_voucher"


class AlreadyRedeemed(RedemptionError):
    """Redeemed before; `details` say when (`redeemed_at`), where (`shop`) and the entry."""

    code = "already_redeemed"


class VoucherCancelled(RedemptionError):
    code = "cancelled"


class VoucherExpired(RedemptionError):
    code = "expired"


class WrongShop(RedemptionError):
    """The voucher is valid only at other shops (`details['valid_at']`)."""

    code = "wrong_shop"


class ShopSuspended(RedemptionError):
    """A suspended shop can redeem nothing until it is reactivated."""

    code = "shop_suspended"


class UnknownShop(RedemptionError):
    code = "unknown_shop"


class UnknownItem(RedemptionError):
    code = "unknown_item"


class InsufficientBalance(RedemptionError):
    """The member's spendable balance would go below zero."""

    code = "insufficient_balance"


class OutOfStock(RedemptionError):
    code = "out_of_stock"


class NothingToSettle(RedemptionError):
    """The shop has no unsettled redemption in the period."""

    code = "nothing_to_settle"
