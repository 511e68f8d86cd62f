"""Redemption: points turned into vouchers (抵扣券) and spent at partner shops.

Member points → voucher (a hold) → redeemed at a shop (the shop's account)
→ settled (the programme pays the shop). Every movement of points is an
entry appended through `ledger.chain`; this package keeps its own tables
for what the points were moved for, and never writes the ledger's. It knows
nothing of HTTP: `api/` calls these functions.
"""
