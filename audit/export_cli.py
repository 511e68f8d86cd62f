"""`jifen export` and `jifen import`: the export directory of docs/FORMAT.md §7.

Added to the `jifen` command of `ledger.cli` by `api.cli`. Refusals print
`error: <code>: <message>` and exit 1, as every `jifen` command does.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from audit.export import export
from audit.importer import import_export
from ledger.cli import _engine, _refusals, main


class _ProgressLine:
    """`programme: done/total entries` rewritten in place, on a terminal only."""

    def __init__(self, verb: str) -> None:
        self.verb = verb
        self.shown = sys.stderr.isatty()
        self.dirty = False

    def __call__(self, programme: str, done: int, total: int) -> None:
        if self.shown:
            click.echo(f"\r{programme}: {self.verb} {done}/{total} entries", nl=False, err=True)
            self.dirty = True

    def end(self) -> None:
        if self.dirty:
            click.echo("", err=True)
            self.dirty = False


@main.command("export")
@click.option("--out", "out_dir", required=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="Directory to write; must not exist or be empty (see --force).")
@click.option("--programme", "-p", multiple=True, help="Programme code (default: every one).")
@click.option("--from", "from_seq", type=click.IntRange(min=0),
              help="First entry (seq) of a range export; its start.json links it to the chain.")
@click.option("--to", "to_seq", type=click.IntRange(min=-1),
              help="Last entry (seq) to export (default: the last one).")
@click.option("--force", is_flag=True,
              help="Replace an earlier export in --out (never a directory that is not one).")
def export_command(out_dir: Path, programme: tuple[str, ...], from_seq: int | None,
                   to_seq: int | None, force: bool) -> None:
    """Write entries, CSV, rules, balances, signed checkpoints and a manifest for auditors."""
    progress = _ProgressLine("exported")
    with _refusals():
        try:
            summary = export(_engine(), out_dir, list(programme) or None, from_seq, to_seq,
                             force=force, progress=progress)
        finally:
            progress.end()
    for written in summary.programmes:
        click.echo(f"{written.code}: entries {written.from_seq}..{written.to_seq} "
                   f"({written.entries}), root {written.root.hex()}, "
                   f"{written.checkpoints} checkpoints")
    click.echo(f"exported {len(summary.programmes)} programmes, {summary.entries} entries, "
               f"{summary.files} files to {summary.directory}")


@main.command("import")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--vkey", multiple=True,
              help="A checkpoint verifier key to pin (signed-note vkey); repeat for several.")
def import_command(directory: Path, vkey: tuple[str, ...]) -> None:
    """Verify an export, then load its programmes into this database (all or nothing)."""
    progress = _ProgressLine("imported")
    with _refusals():
        try:
            summary = import_export(_engine(), directory, list(vkey) or None, progress=progress)
        finally:
            progress.end()
    for imported in summary.programmes:
        click.echo(f"{imported.code}: {imported.entries} entries, {imported.checkpoints} "
                   f"checkpoints, root {imported.root.hex()}")
    click.echo(f"imported {len(summary.programmes)} programmes, {summary.entries} entries "
               f"from {directory}")
