"""`jifen` commands for checkpoints and proofs: checkpoint, checkpoint-keys, proof, verify-proof.

Added to the `jifen` group of `ledger.cli` (the console script's `api.cli`
imports this module), so `ledger` never imports `audit`. Refusals print
`error: <code>: <message>` and exit 1; a proof that does not verify exits 2.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from audit import checkpoints, proofs
from audit.proof_file import ProofFileError, verify_proof
from ledger import errors
from ledger.cli import EXIT_REFUSED, EXIT_VERIFICATION_FAILED, _engine, _refusals, main
from ledger.programmes import list_programmes


@main.command()
@click.option("--programme", "-p", multiple=True,
              help="Programme code (default: every programme with entries).")
@click.option("--every", "every_seconds", type=click.IntRange(min=1), default=None,
              help="Keep running, signing again every SECONDS (for hosts without cron).")
def checkpoint(programme: tuple[str, ...], every_seconds: int | None) -> None:
    """Sign a checkpoint of each programme's chain now and print its signed note.

    A programme whose latest checkpoint already covers its chain prints that
    one again. Safe to run from cron: concurrent runs never sign two notes
    for one size. Exits 1 if any programme was refused (e.g.
    checkpoint_inconsistent); programmes with no entries are skipped unless named.
    """
    engine = _engine()
    while True:
        refused = _sign_all(engine, programme)
        if every_seconds is None:
            break
        time.sleep(every_seconds)
    if refused:
        sys.exit(EXIT_REFUSED)


def _sign_all(engine, named: tuple[str, ...]) -> bool:
    """Sign each programme; report refusals and go on to the next. True if any was refused."""
    with _refusals():
        codes = list(named) or [info.code for info in list_programmes(engine)]
    refused = False
    for code in codes:
        try:
            signed = checkpoints.sign_checkpoint(engine, code)
        except checkpoints.EmptyChain:
            if named:
                click.echo(f"error: empty_chain: programme {code!r} has no entries yet", err=True)
                refused = True
            continue
        except errors.LedgerError as error:
            click.echo(f"error: {error.code}: {error.message}", err=True)
            refused = True
            continue
        click.echo(signed.note)
    return refused


@main.group("checkpoint-keys", invoke_without_command=True)
@click.option("--programme", "-p", multiple=True, help="Programme code (default: every one).")
@click.pass_context
def checkpoint_keys(context: click.Context, programme: tuple[str, ...]) -> None:
    """List checkpoint verifier keys (vkeys): programme, status, created, vkey.

    Give a vkey to `jifen verify-proof --vkey` or to an auditor. Retired keys
    stay listed: they verify the checkpoints they signed.
    """
    if context.invoked_subcommand is not None:
        return
    with _refusals():
        engine = _engine()
        codes = list(programme) or [info.code for info in list_programmes(engine)]
        for code in codes:
            for key in checkpoints.published_keys(engine, code):
                click.echo(f"{code}\t{key.status}\t{key.created_at}\t{key.vkey}")


@checkpoint_keys.command("rotate")
@click.option("--programme", "-p", required=True, help="Programme code.")
def checkpoint_keys_rotate(programme: str) -> None:
    """Make a new checkpoint key for PROGRAMME; the old one is retired, still published."""
    with _refusals():
        key = checkpoints.rotate_key(_engine(), programme)
    click.echo(f"{programme}: new signing key {key.vkey}")


@main.command()
@click.option("--programme", "-p", required=True, help="Programme code.")
@click.option("--seq", type=click.IntRange(min=0), default=None,
              help="Prove entry SEQ is in the tree (a c2sp.org/tlog-proof@v1 file).")
@click.option("--size", type=click.IntRange(min=1), default=None,
              help="With --seq: the checkpointed tree size (default: the latest checkpoint).")
@click.option("--from", "old_size", type=click.IntRange(min=1), default=None,
              help="Prove the tree of this size is a prefix of the --to one (JSON).")
@click.option("--to", "new_size", type=click.IntRange(min=1), default=None,
              help="With --from: the larger size (default: the latest checkpoint).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write to this file instead of standard output.")
def proof(programme: str, seq: int | None, size: int | None, old_size: int | None,
          new_size: int | None, out: Path | None) -> None:
    """Write an inclusion proof (--seq) or a consistency proof (--from, --to)."""
    if (seq is None) == (old_size is None):
        raise click.UsageError("give either --seq (inclusion) or --from (consistency)")
    if seq is None and size is not None:
        raise click.UsageError("--size goes with --seq; use --to with --from")
    if seq is not None and new_size is not None:
        raise click.UsageError("--to goes with --from; use --size with --seq")
    with _refusals():
        engine = _engine()
        if seq is not None:
            text = proofs.proof_file(engine, programme, seq, size)
        else:
            found = proofs.consistency(engine, programme, old_size, new_size)
            text = json.dumps(found.as_json(), ensure_ascii=False, indent=1) + "\n"
    if out is None:
        click.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
        click.echo(f"wrote {out}", err=True)


@main.command("verify-proof")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--vkey", "vkeys", multiple=True, required=True,
              help="A checkpoint vkey you trust (repeatable; from `jifen checkpoint-keys`).")
def verify_proof_command(file: Path, vkeys: tuple[str, ...]) -> None:
    """Check a tlog-proof FILE: signature, inclusion, and the entry it carries."""
    try:
        verified = verify_proof(file.read_text(encoding="utf-8"), vkeys)
    except (ProofFileError, UnicodeDecodeError) as error:
        click.echo(f"FAILED: {file}: {error}", err=True)
        sys.exit(EXIT_VERIFICATION_FAILED)
    entry = verified.entry
    checkpoint = verified.checkpoint
    click.echo(f"ok: entry {verified.index} ({entry.get('kind')}, occurred "
               f"{entry.get('occurred_at')}) is in {checkpoint.origin} at size "
               f"{checkpoint.size}, root {checkpoint.root.hex()}")
    for posting in entry.get("postings") or []:
        click.echo(f"  {posting.get('account')}\t{posting.get('points')}")
    if entry.get("memo"):
        click.echo(f"  memo: {entry['memo']}")
    click.echo(f"  signed by {', '.join(verified.signed_by)}")
