"""The `jifen` command line (the HTTP server's `jifen serve` is added by `api.cli`).

Every command reads the database URL from `JIFEN_DATABASE_URL` (default a
SQLite file under ./var/). A refusal prints `error: <code>: <message>` on
standard error and exits 1; a failed verification exits 2.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import click
from sqlalchemy import make_url
from sqlalchemy.engine import Engine

from ledger import errors, migrations
from ledger.awards import describe
from ledger.catalogs import FORMATS, export_catalog, import_catalog, load_catalog
from ledger.chain import head as read_head
from ledger.claims import list_claims, post_due
from ledger.demo import load_demo
from ledger.expiry import expire as expire_lots
from ledger.programmes import list_programmes
from ledger.rules import Rule, current_rules
from ledger.statements import AccountBalance
from ledger.statements import balances as read_balances
from ledger.storage import create_engine, database_url
from ledger.verify import verify_chain

CLI_ACTOR = "system:cli"
"""The operator at the shell: holds every role (see ledger.organisation.SYSTEM_PREFIX)."""
EXIT_REFUSED = 1
EXIT_VERIFICATION_FAILED = 2


@contextmanager
def _refusals() -> Iterator[None]:
    try:
        yield
    except errors.LedgerError as error:
        click.echo(f"error: {error.code}: {error.message}", err=True)
        sys.exit(EXIT_REFUSED)


def _engine(require_current_schema: bool = True) -> Engine:
    engine = create_engine()
    if require_current_schema and not migrations.is_up_to_date(engine):
        click.echo(
            f"error: schema_outdated: the database at {_safe_url()} is not at the current "
            "schema; run `jifen db upgrade` first",
            err=True,
        )
        sys.exit(EXIT_REFUSED)
    return engine


def _safe_url() -> str:
    return make_url(database_url()).render_as_string(hide_password=True)


@click.group()
def main() -> None:
    """jifen-ledger: the books of community points programmes (积分制)."""


@main.group()
def db() -> None:
    """Create, migrate and verify the database."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Create the database, or migrate it to the current schema."""
    with _refusals():
        engine = _engine(require_current_schema=False)
        before = migrations.current_revision(engine)
        migrations.upgrade(engine)
        after = migrations.current_revision(engine)
    if before == after:
        click.echo(f"database {_safe_url()} is at the current schema ({after})")
    else:
        click.echo(f"database {_safe_url()} migrated from {before or 'empty'} to {after}")


@db.command("verify")
@click.option("--programme", "-p", multiple=True, help="Programme code (default: every one).")
def db_verify(programme: tuple[str, ...]) -> None:
    """Recompute every hash, link, sum, root and balance; report the first problem."""

    with _refusals():
        engine = _engine()
        codes = list(programme) or [info.code for info in list_programmes(engine)]
        failed = False
        for code in codes:
            result = verify_chain(engine, code)
            if result.ok:
                click.echo(f"{code}: ok, {result.entries_checked} entries, "
                           f"root {result.root.hex()}")
            else:
                failed = True
                click.echo(f"{code}: FAILED after {result.entries_checked} good entries: "
                           f"{result.problem}", err=True)
    if failed:
        sys.exit(EXIT_VERIFICATION_FAILED)


@main.command()
@click.option("--if-empty", is_flag=True,
              help="Do nothing (and succeed) if the database already holds data.")
def demo(if_empty: bool) -> None:
    """Load the demo programme into an empty database."""

    with _refusals():
        engine = _engine()
        try:
            code = load_demo(engine)
        except errors.DatabaseNotEmpty as error:
            if not if_empty:
                raise
            click.echo(f"demo not loaded: {error.message}")
            return
    click.echo(f"loaded the demo programme {code!r}")


@main.command()
def programmes() -> None:
    """List the programmes."""

    with _refusals():
        for info in list_programmes(_engine()):
            click.echo(f"{info.code}\t{info.name}\t{info.time_zone}")


@main.command()
@click.option("--programme", "-p", required=True, help="Programme code.")
def balances(programme: str) -> None:
    """Every account's spendable balance and score."""

    with _refusals():
        rows = read_balances(_engine(), programme)
    click.echo(_balance_table(rows))


@main.command()
@click.option("--programme", "-p", multiple=True, help="Programme code (default: every one).")
def head(programme: tuple[str, ...]) -> None:
    """The chain head: size, last entry hash and Merkle root."""

    with _refusals():
        engine = _engine()
        codes = list(programme) or [info.code for info in list_programmes(engine)]
        for code in codes:
            tip = read_head(engine, code)
            last = tip.head_hash.hex() if tip.head_hash else "(none)"
            click.echo(f"{code}: size {tip.size}, last entry hash {last}, root {tip.root.hex()}")


@main.command()
@click.option("--as-of", "as_of", type=click.DateTime(formats=["%Y-%m-%d"]), required=True,
              help="Expire lots due on or before the start of this day (programme time).")
@click.option("--programme", "-p", multiple=True, help="Programme code (default: every one).")
def expire(as_of: datetime, programme: tuple[str, ...]) -> None:
    """Post expiry entries for points past their expiry (idempotent: safe to run again)."""
    with _refusals():
        engine = _engine()
        codes = list(programme) or [info.code for info in list_programmes(engine)]
        for code in codes:
            entries = expire_lots(engine, code, as_of.date(), actor=CLI_ACTOR)
            expired = sum(entry.postings[1].points for entry in entries)
            click.echo(f"{code}: {len(entries)} expiry entries, {expired} points expired")


@main.group()
def claims() -> None:
    """Claims awaiting a second person (待审核) or public notice (公示)."""


@claims.command("list")
@click.option("--programme", "-p", required=True, help="Programme code.")
@click.option("--status", type=click.Choice(["pending", "notice", "objected", "posted",
                                             "rejected"]))
def claims_list(programme: str, status: str | None) -> None:
    """Claims of a programme, oldest first."""
    with _refusals():
        rows = list_claims(_engine(), programme, status)
    for claim in rows:
        click.echo(f"{claim.id}\t{claim.status}\t{claim.member}\t{claim.rule}\t"
                   f"{claim.points:+d}\tproposed by {claim.proposer}\t{claim.memo}")


@claims.command("post-due")
@click.option("--programme", "-p", multiple=True, help="Programme code (default: every one).")
def claims_post_due(programme: tuple[str, ...]) -> None:
    """Post approved claims whose notice window passed without an open objection."""
    with _refusals():
        engine = _engine()
        codes = list(programme) or [info.code for info in list_programmes(engine)]
        for code in codes:
            outcomes = post_due(engine, code)
            for outcome in outcomes:
                click.echo(f"{code}: {describe(outcome)}")
            click.echo(f"{code}: {sum(o.status == 'posted' for o in outcomes)} claims posted")


def _balance_table(rows: list[AccountBalance]) -> str:
    width = max((len(row.account) for row in rows), default=7)
    lines = [f"{'account':<{width}}  {'kind':<6}  {'balance':>8}  {'score':>6}"]
    lines += [
        f"{row.account:<{width}}  {row.kind:<6}  {row.balance_points:>8}  {row.score_points:>6}"
        for row in rows
    ]
    return "\n".join(lines)


# -- rules: catalog files (docs/RULES.md) -------------------------------------------------


@main.group()
def rules() -> None:
    """Import, export and list scoring rules (catalog files: docs/RULES.md)."""


@rules.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--programme", "-p", help="Programme code (default: the catalog's `programme`).")
@click.option("--actor", default=CLI_ACTOR, show_default=True,
              help="Who records the rules, as their admin entries will name them.")
def rules_import(file: Path, programme: str | None, actor: str) -> None:
    """Record every new or changed rule of a catalog file; unchanged rules add nothing."""

    with _refusals():
        catalog = load_catalog(file)
        code = programme or catalog.programme
        if code is None:
            raise errors.UnknownProgramme(
                f"{file} names no programme: give --programme, or `programme:` in the file"
            )
        report = import_catalog(_engine(), code, catalog, actor)
    for rule_code, version in report.created:
        click.echo(f"{rule_code}: version {version}")
    click.echo(f"imported {file} into {code}: {len(report.created)} rules new or changed, "
               f"{len(report.unchanged)} unchanged")


@rules.command("export")
@click.option("--programme", "-p",
              help="Programme code (default: the only programme in the database).")
@click.option("--format", "format_name", type=click.Choice(FORMATS),
              help="yaml or json (default: json if --out ends in .json, else yaml).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the catalog to this file instead of standard output.")
def rules_export(programme: str | None, format_name: str | None, out: Path | None) -> None:
    """Write the newest version of every rule as a catalog file."""

    if format_name is None:
        format_name = "json" if out is not None and out.suffix.lower() == ".json" else "yaml"
    with _refusals():
        engine = _engine()
        code = programme or _only_programme(engine)
        text = export_catalog(engine, code, format_name)
    if out is None:
        click.echo(text, nl=False)
        return
    out.write_text(text, encoding="utf-8")
    click.echo(f"wrote the rules of {code} to {out}")


@rules.command("list")
@click.option("--programme", "-p", required=True, help="Programme code.")
def rules_list(programme: str) -> None:
    """The newest version of every rule: code, version, points, approval, category, name."""

    with _refusals():
        found = current_rules(_engine(), programme)
    click.echo(_rule_table(found))


def _only_programme(engine: Engine) -> str:
    codes = [info.code for info in list_programmes(engine)]
    if len(codes) != 1:
        raise errors.UnknownProgramme(
            f"give --programme: the database holds {len(codes)} programmes "
            f"({', '.join(codes) or 'none'})"
        )
    return codes[0]


def _rule_table(found: list[Rule]) -> str:
    def points(rule: Rule) -> str:
        sign = "+" if rule.sign == "award" else "-"
        if rule.per_unit is None:
            return f"{sign}{rule.points}"
        per_unit = rule.per_unit
        return f"{sign}{per_unit.points}/{per_unit.per} {per_unit.unit}"

    def approval(rule: Rule) -> str:
        if rule.approval == "above":
            return f"above {rule.approval_above_points}"
        return rule.approval

    rows = [(rule.code, f"v{rule.version}", points(rule), approval(rule), rule.category,
             rule.name) for rule in found]
    header = ("code", "version", "points", "approval", "category", "name")
    widths = [max([len(header[column])] + [len(row[column]) for row in rows])
              for column in range(4)]
    return "\n".join(
        "  ".join(f"{cell:<{width}}" for cell, width in zip(row[:4], widths, strict=True))
        + f"  {row[4]}  {row[5]}"
        for row in [header, *rows]
    )
