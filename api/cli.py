"""`jifen serve`: the HTTP API under gunicorn, added to the `jifen` command of `ledger.cli`.

The console script points here, so `ledger` never imports `api`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

import api
import audit.cli  # noqa: F401  (adds the checkpoint, proof and verify-proof commands)
import audit.export_cli  # noqa: F401  (adds export and import)
import audit.verify_cli  # noqa: F401  (adds verify: the offline verifier)
import redemption.cli  # noqa: F401  (adds the shops, catalog, vouchers and settle commands)
import web.cli  # noqa: F401  (adds `jifen staff`: sign-ins for the pages)
from ledger.cli import _engine, _refusals, main
from ledger.demo import PROGRAMME as DEMO_PROGRAMME
from ledger.demo import demo_credentials
from ledger.programmes import list_programmes
from web.demo import SIGN_INS as DEMO_SIGN_INS

__all__ = ["main"]


@main.command()
@click.option("--bind", default=None, help="host:port (default JIFEN_BIND or 127.0.0.1:8000).")
@click.option("--workers", type=int, default=None, help="gunicorn workers (default 2 x cores + 1).")
def serve(bind: str | None, workers: int | None) -> None:
    """Start the HTTP API under gunicorn; print its URL and, with the demo loaded, its keys."""
    if bind:
        os.environ["JIFEN_BIND"] = bind
    if workers:
        os.environ["JIFEN_WORKERS"] = str(workers)
    address = os.environ.get("JIFEN_BIND", "127.0.0.1:8000")
    with _refusals():
        engine = _engine()
        demo_loaded = any(info.code == DEMO_PROGRAMME for info in list_programmes(engine))
        engine.dispose()
    click.echo(f"jifen-ledger API on http://{address}  (docs: http://{address}/docs)")
    if demo_loaded:
        click.echo(f"demo programme {DEMO_PROGRAMME!r}; demo API keys (Authorization: Bearer …):")
        for who, role, key in demo_credentials():
            click.echo(f"  {role:<10} {who:<10} {key}")
        click.echo(f"  try: curl -H 'Authorization: Bearer {demo_credentials()[0][2]}' "
                   f"http://{address}/programmes/{DEMO_PROGRAMME}/head")
        click.echo(f"pages on http://{address}/ ; demo sign-ins (username / password):")
        for sign_in in DEMO_SIGN_INS:
            click.echo(f"  {sign_in.role:<10} {sign_in.username:<13} {sign_in.password}")
        click.echo(f"residents' wallets on http://{address}/w (the demo's points cards: "
                   f"`jifen staff demo`); public boards on http://{address}/boards")
    config = Path(api.__file__).resolve().parent / "gunicorn.conf.py"
    gunicorn = Path(sys.executable).parent / "gunicorn"
    os.execv(str(gunicorn), [str(gunicorn), "-c", str(config), "api.app:create_app()"])
