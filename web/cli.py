"""`jifen staff`: sign-ins for the pages (staff and shop devices), and `jifen residents`:
residents' points cards; added to `ledger.cli`'s `jifen` group by the console script's
`api.cli`, which imports this module.

Passwords are asked for twice without echo, or read from the first line of
standard input with `--password-stdin` (for scripts); never as an argument,
which would leave them in the shell's history and in `ps`.
"""

from __future__ import annotations

import sys

import click

from ledger.cli import CLI_ACTOR, _engine, _refusals, main
from ledger.demo import PROGRAMME as DEMO_PROGRAMME
from ledger.programmes import list_programmes
from web import accounts, residents
from web.demo import SIGN_INS, load_demo_sign_ins, load_demo_wallets


@main.group("staff")
def staff_group() -> None:
    """Sign-ins for the pages: staff, who act with their grants, and shop devices."""


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return click.prompt("Password", hide_input=True, confirmation_prompt=True)


@staff_group.command("add")
@click.option("--programme", "-p", required=True, help="Programme code.")
@click.option("--principal", required=True,
              help="Whom the account acts as: a staff principal (its grants give the roles), "
                   "or with --shop the shop's code.")
@click.option("--shop", "is_shop", is_flag=True, help="A shop's scanning device.")
@click.option("--name", "display_name", default=None,
              help="The name the pages show (default: the username).")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.argument("username")
def staff_add(programme: str, principal: str, is_shop: bool, display_name: str | None,
              password_stdin: bool, username: str) -> None:
    """Add sign-in USERNAME, acting as PRINCIPAL of the programme."""
    with _refusals():
        account = accounts.create_account(
            _engine(), username=username, programme=programme,
            kind=accounts.SHOP if is_shop else accounts.STAFF, principal=principal,
            display_name=display_name or username, password=_password(password_stdin))
    click.echo(f"{account.kind} account {account.username} added, acting as "
               f"{account.principal} in {account.programme}")


@staff_group.command("list")
@click.option("--programme", "-p", default=None, help="Programme code (default: every one).")
def staff_list(programme: str | None) -> None:
    """Every sign-in, with whom it acts as and whether it is locked or disabled."""
    with _refusals():
        found = accounts.list_accounts(_engine(), programme)
    for account in found:
        state = ("disabled" if account.disabled_at else
                 f"locked until {account.locked_until}" if account.locked_until else "active")
        click.echo(f"{account.username}\t{account.kind}\t{account.programme}\t"
                   f"{account.principal}\t{account.display_name}\t{state}")


@staff_group.command("password")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.argument("username")
def staff_password(password_stdin: bool, username: str) -> None:
    """Set a new password for USERNAME; signs out its sessions and lifts a lockout."""
    with _refusals():
        accounts.set_password(_engine(), username, _password(password_stdin))
    click.echo(f"password of {username} changed; its sessions are signed out")


@staff_group.command("unlock")
@click.argument("username")
def staff_unlock(username: str) -> None:
    """Lift USERNAME's lockout after too many wrong passwords."""
    with _refusals():
        accounts.unlock(_engine(), username)
    click.echo(f"{username} unlocked")


@staff_group.command("disable")
@click.argument("username")
def staff_disable(username: str) -> None:
    """Refuse USERNAME's sign-ins from now on, and sign out its sessions."""
    with _refusals():
        accounts.disable(_engine(), username)
    click.echo(f"{username} disabled")


@staff_group.command("demo")
def staff_demo() -> None:
    """Add the demo's shop, sign-ins and vouchers to the demo programme (if missing); print
    them. Does nothing, successfully, without the demo programme."""
    with _refusals():
        engine = _engine()
        if DEMO_PROGRAMME not in {info.code for info in list_programmes(engine)}:
            click.echo(f"no demo programme {DEMO_PROGRAMME!r}: no demo sign-ins added")
            return
        vouchers = load_demo_sign_ins(engine)
        wallets = load_demo_wallets(engine)
    click.echo("demo sign-ins for the pages (username / password):")
    for sign_in in SIGN_INS:
        click.echo(f"  {sign_in.role:<10} {sign_in.username:<13} {sign_in.password}")
    click.echo("demo vouchers to redeem on the shop page (short code):")
    for voucher in vouchers:
        click.echo(f"  {voucher.display_code}  {voucher.value_points} points  {voucher.status}")
    click.echo("demo residents' points cards (open the address on a phone, or type the code "
               "at /w):")
    for wallet in wallets:
        click.echo(f"  {wallet.member:<16} {residents.display(wallet.code)}  "
                   f"{residents.wallet_url(wallet.code)}  {wallet.name}")


@main.group("residents")
def residents_group() -> None:
    """Residents' points cards: the code (a QR code on the card) that opens their wallet."""


@residents_group.command("code")
@click.option("--programme", "-p", required=True, help="Programme code.")
@click.option("--member", "-m", required=True, help="Member code.")
@click.option("--base-url", default=None,
              help=f"Where residents reach the pages (default {residents.PUBLIC_URL_VARIABLE}, "
                   "else http://JIFEN_BIND).")
def residents_code(programme: str, member: str, base_url: str | None) -> None:
    """Make a new card code for MEMBER and print it with the wallet's address (for the card's
    QR code). The member's old code stops working. The code is shown only now."""
    with _refusals():
        new_code = residents.issue_code(_engine(), programme, member, issued_by=CLI_ACTOR)
    click.echo(f"card code of {new_code.member} ({new_code.name}): {new_code.display_code}")
    click.echo(f"wallet address (the card's QR code): "
               f"{residents.wallet_url(new_code.code, base_url)}")
    click.echo("the old code, if any, no longer works; this code is not stored and cannot be "
               "shown again")


@residents_group.command("revoke")
@click.option("--programme", "-p", required=True, help="Programme code.")
@click.option("--member", "-m", required=True, help="Member code.")
def residents_revoke(programme: str, member: str) -> None:
    """Stop MEMBER's card code from working (a lost card), and close the wallets it opened."""
    with _refusals():
        residents.revoke_code(_engine(), programme, member)
    click.echo(f"card code of {member} revoked; its wallets are closed")


@residents_group.command("show")
@click.option("--programme", "-p", required=True, help="Programme code.")
@click.option("--member", "-m", required=True, help="Member code.")
def residents_show(programme: str, member: str) -> None:
    """Whether MEMBER has a working card code, since when and made by whom (never the code)."""
    with _refusals():
        live = residents.live_code(_engine(), programme, member)
    if live is None:
        click.echo(f"{member} has no working card code")
    else:
        click.echo(f"{member} has a card code made at {live.issued_at} by {live.issued_by}")
