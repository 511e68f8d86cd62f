"""`jifen` commands for redemption: shops, catalog, vouchers, settlement.

They are added to the `jifen` group of `ledger.cli` (the console script's
`api.cli` imports this module), so `ledger` never imports `redemption`.
Refusals print `error: <code>: <message>` and exit 1, as every command does.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import click

from ledger.cli import CLI_ACTOR, _engine, _refusals, main
from ledger.programmes import list_programmes
from redemption import catalog, qr, settlement, shops, signing_keys, vouchers

DATE = click.DateTime(formats=["%Y-%m-%d"])


@main.group("shops")
def shops_group() -> None:
    """Partner shops (合作商户) where vouchers are redeemed."""


@shops_group.command("add")
@click.option("--programme", "-p", required=True, help="Programme code.")
@click.option("--unit", "units", multiple=True, help="A unit the shop serves (repeatable).")
@click.option("--contact", default="", help="Who to call at the shop.")
@click.argument("code")
@click.argument("name")
def shops_add(programme: str, units: tuple[str, ...], contact: str, code: str,
              name: str) -> None:
    """Register shop CODE called NAME and open its account shop:CODE."""
    with _refusals():
        shop = shops.create_shop(_engine(), programme, code, name, units, contact)
    click.echo(f"shop {shop.code} ({shop.name}) registered; account {shop.account}")


@shops_group.command("list")
@click.option("--programme", "-p", required=True, help="Programme code.")
def shops_list(programme: str) -> None:
    """Every shop of a programme with its status and the units it serves."""
    with _refusals():
        found = shops.list_shops(_engine(), programme)
    for shop in found:
        click.echo(f"{shop.code}\t{shop.status}\t{shop.name}\t{','.join(shop.units)}\t"
                   f"{shop.contact}")


@shops_group.command("suspend")
@click.option("--programme", "-p", required=True, help="Programme code.")
@click.argument("code")
def shops_suspend(programme: str, code: str) -> None:
    """Stop shop CODE redeeming vouchers."""
    with _refusals():
        shops.suspend_shop(_engine(), programme, code)
    click.echo(f"shop {code} suspended")


@shops_group.command("reactivate")
@click.option("--programme", "-p", required=True, help="Programme code.")
@click.argument("code")
def shops_reactivate(programme: str, code: str) -> None:
    """Let suspended shop CODE redeem again."""
    with _refusals():
        shops.reactivate_shop(_engine(), programme, code)
    click.echo(f"shop {code} active")


@main.group("catalog")
def catalog_group() -> None:
    """The points catalog (积分超市): goods with stock, and cash-off items."""


@catalog_group.command("add")
@click.option("--programme", "-p", required=True, help="Programme code.")
@click.option("--price", "price_points", type=int, required=True, help="Price in points.")
@click.option("--stock", type=int, default=None, help="Units in stock (goods).")
@click.option("--value-fen", type=int, default=None, help="Value off the bill in fen (cash-off).")
@click.argument("code")
@click.argument("name")
def catalog_add(programme: str, price_points: int, stock: int | None, value_fen: int | None,
                code: str, name: str) -> None:
    """Add item CODE called NAME: goods with --stock, or cash-off with --value-fen."""
    kind = catalog.CASH_OFF if value_fen is not None else catalog.GOODS
    with _refusals():
        item = catalog.create_item(_engine(), programme, code, name, kind=kind,
                                   price_points=price_points, stock=stock, value_fen=value_fen)
    click.echo(f"item {item.code} ({item.name}): {item.kind}, {item.price_points} points")


@catalog_group.command("restock")
@click.option("--programme", "-p", required=True, help="Programme code.")
@click.argument("code")
@click.argument("units", type=int)
def catalog_restock(programme: str, code: str, units: int) -> None:
    """Add UNITS to the stock of goods item CODE."""
    with _refusals():
        item = catalog.restock(_engine(), programme, code, units)
    click.echo(f"item {item.code}: {item.stock} in stock")


@main.group("vouchers")
def vouchers_group() -> None:
    """Vouchers (抵扣券): issue, cancel, expire, show, and the keys that sign them."""


@vouchers_group.command("issue")
@click.option("--programme", "-p", required=True, help="Programme code.")
@click.option("--member", required=True, help="Member whose points pay for it.")
@click.option("--points", type=int, default=None, help="A fixed value in points.")
@click.option("--item", default=None, help="A catalog item (its price in points).")
@click.option("--shop", "shop_codes", multiple=True,
              help="A shop where it is valid (repeatable; default every shop).")
@click.option("--idempotency-key", default=None, help="Issue once, however often run.")
@click.option("--actor", default=CLI_ACTOR, show_default=True, help="Who issues it.")
@click.option("--qr-png", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write its QR code here as PNG.")
@click.option("--qr-svg", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write its QR code here as SVG.")
def vouchers_issue(programme: str, member: str, points: int | None, item: str | None,
                   shop_codes: tuple[str, ...], idempotency_key: str | None, actor: str,
                   qr_png: Path | None, qr_svg: Path | None) -> None:
    """Turn a member's points into a voucher; print its id, short code and token."""
    with _refusals():
        engine = _engine()
        voucher = vouchers.issue_voucher(engine, programme, member, actor=actor, points=points,
                                         item=item, shops=list(shop_codes) or None,
                                         idempotency_key=idempotency_key)
        token = vouchers.voucher_token(engine, programme, voucher.id)
    if qr_png:
        qr_png.write_bytes(qr.qr_png(token))
    if qr_svg:
        qr_svg.write_bytes(qr.qr_svg(token))
    _show(voucher, token)


@vouchers_group.command("cancel")
@click.option("--programme", "-p", required=True, help="Programme code.")
@click.option("--actor", default=CLI_ACTOR, show_default=True, help="Who cancels it.")
@click.argument("voucher_id")
def vouchers_cancel(programme: str, actor: str, voucher_id: str) -> None:
    """Cancel a voucher: its points go back to the member."""
    with _refusals():
        voucher = vouchers.cancel_voucher(_engine(), programme, voucher_id, actor=actor)
    click.echo(f"voucher {voucher.id} cancelled; {voucher.value_points} points back to "
               f"{voucher.member} (entry {voucher.closed_seq})")


@vouchers_group.command("expire")
@click.option("--as-of", "as_of", type=DATE, default=None,
              help="Expire vouchers due before the start of this day (default: now).")
@click.option("--programme", "-p", multiple=True, help="Programme code (default: every one).")
def vouchers_expire(as_of: datetime | None, programme: tuple[str, ...]) -> None:
    """Return the points of vouchers past their expiry (idempotent: safe to run again)."""
    with _refusals():
        engine = _engine()
        codes = list(programme) or [info.code for info in list_programmes(engine)]
        for code in codes:
            expired = vouchers.expire_vouchers(engine, code, as_of.date() if as_of else None)
            points = sum(voucher.value_points for voucher in expired)
            click.echo(f"{code}: {len(expired)} vouchers expired, {points} points returned")


@vouchers_group.command("show")
@click.option("--programme", "-p", required=True, help="Programme code.")
@click.argument("voucher_id")
def vouchers_show(programme: str, voucher_id: str) -> None:
    """A voucher's state, short code and token."""
    with _refusals():
        engine = _engine()
        voucher = vouchers.get_voucher(engine, programme, voucher_id)
        token = vouchers.voucher_token(engine, programme, voucher.id)
    _show(voucher, token)


@vouchers_group.command("keys")
@click.option("--programme", "-p", required=True, help="Programme code.")
@click.option("--rotate", is_flag=True, help="First make a new signing key (the old one "
              "is retired: published, still verifying).")
def vouchers_keys(programme: str, rotate: bool) -> None:
    """The published verification keys (PASERK k4.public), as JSON."""
    with _refusals():
        engine = _engine()
        if rotate:
            signing_keys.rotate_key(engine, programme)
        keys = signing_keys.published_keys(engine, programme)
    click.echo(json.dumps(keys, indent=2))


@main.command("settle")
@click.option("--programme", "-p", required=True, help="Programme code.")
@click.option("--shop", required=True, help="Shop code.")
@click.option("--from", "start", type=DATE, required=True, help="First day (programme time).")
@click.option("--to", "end", type=DATE, required=True, help="Last day, included.")
@click.option("--reference", required=True, help="The payment's reference (transfer, receipt).")
@click.option("--idempotency-key", required=True, help="Settle once, however often run.")
@click.option("--actor", default=CLI_ACTOR, show_default=True, help="Who settles.")
def settle(programme: str, shop: str, start: datetime, end: datetime, reference: str,
           idempotency_key: str, actor: str) -> None:
    """Pay a shop for its unsettled redemptions in a period; post the settlement entry."""
    with _refusals():
        done = settlement.settle(_engine(), programme, shop, start.date(), end.date(),
                                 payment_reference=reference, actor=actor,
                                 idempotency_key=idempotency_key)
    state = "settled" if done.created else "already settled"
    click.echo(f"{state}: {done.shop} {done.period_start}..{done.period_end}, "
               f"{done.redemption_count} redemptions, {done.total_points} points = "
               f"{done.total_fen / 100:.2f} yuan, entry {done.entry_seq}, "
               f"reference {done.payment_reference}")


@main.group("settlement")
def settlement_group() -> None:
    """Settlement statements of shops."""


@settlement_group.command("statement")
@click.option("--programme", "-p", required=True, help="Programme code.")
@click.option("--shop", required=True, help="Shop code.")
@click.option("--from", "start", type=DATE, required=True, help="First day (programme time).")
@click.option("--to", "end", type=DATE, required=True, help="Last day, included.")
@click.option("--format", "format_name", type=click.Choice(["csv", "json"]), default="csv",
              show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write here instead of standard output.")
def settlement_statement(programme: str, shop: str, start: datetime, end: datetime,
                         format_name: str, out: Path | None) -> None:
    """Every redemption at a shop in a period, with totals; CSV opens in Excel."""
    with _refusals():
        found = settlement.statement(_engine(), programme, shop, start.date(), end.date())
    if format_name == "csv":
        data = settlement.statement_csv(found)
    else:
        data = (json.dumps(settlement.statement_json(found), ensure_ascii=False, indent=2)
                + "\n").encode("utf-8")
    if out:
        out.write_bytes(data)
    else:
        click.echo(data, nl=False)


def _show(voucher: vouchers.Voucher, token: str) -> None:
    click.echo(f"voucher {voucher.id}: {voucher.status}, {voucher.value_points} points"
               f"{' for ' + voucher.item if voucher.item else ''}, member {voucher.member}, "
               f"expires {voucher.expires_at}, valid at "
               f"{', '.join(voucher.shops) if voucher.shops else 'every shop'}")
    click.echo(f"short code: {voucher.display_code}")
    click.echo(f"token: {token}")
