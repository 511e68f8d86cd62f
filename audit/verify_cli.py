"""`jifen verify DIR`: the offline verifier (audit/verify.py) as a `jifen` command.

Added to the `jifen` command of `ledger.cli` by `api.cli`. It only hands its
arguments to `audit.verify.main`, so `jifen verify`, `jifen-verify` and
`python -m audit.verify` print the same report and exit with the same
status: 0 verified, 1 a problem found, 2 not a readable export or bad
arguments. (`jifen db verify` checks the database instead.)
"""

from __future__ import annotations

from pathlib import Path

import click

from audit import verify
from ledger.cli import main


@main.command("verify", context_settings={"show_default": True})
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("--vkey", "vkeys", multiple=True, metavar="VKEY|FILE",
              help="A checkpoint verifier key to pin, or a file of them; repeatable. Without "
                   "one the export's own vkeys.txt is used, and the report says so.")
@click.option("--checkpoint", "checkpoints", multiple=True, metavar="FILE",
              type=click.Path(path_type=Path),
              help="A signed checkpoint saved from an earlier audit; repeatable.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Processes that check chunks of the entries (default: one per CPU).")
@click.option("--quiet", is_flag=True, help="No progress line.")
@click.option("--progress", is_flag=True,
              help="A progress line even when stderr is not a terminal.")
@click.pass_context
def verify_command(context: click.Context, directory: Path, vkeys: tuple[str, ...],
                   checkpoints: tuple[Path, ...], workers: int | None, quiet: bool,
                   progress: bool) -> None:
    """Verify an export directory offline: hashes, links, postings, rules, checkpoints."""
    arguments = [str(directory)]
    for vkey in vkeys:
        arguments += ["--vkey", vkey]
    for checkpoint in checkpoints:
        arguments += ["--checkpoint", str(checkpoint)]
    if workers is not None:
        arguments += ["--workers", str(workers)]
    if quiet:
        arguments.append("--quiet")
    if progress:
        arguments.append("--progress")
    context.exit(verify.main(arguments))
