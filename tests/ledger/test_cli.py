"""The `jifen` command line: upgrade, demo, balances, head, verify, and its refusals."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from ledger.chain import head as read_head
from ledger.cli import main
from ledger.demo import PROGRAMME
from ledger.storage import create_engine


@pytest.fixture
def url(backend, databases) -> str:
    """An empty database (not migrated) of this test's own."""
    return databases.new_url(backend)


def jifen(url: str, *arguments: str):
    return CliRunner().invoke(main, list(arguments), env={"JIFEN_DATABASE_URL": url})


def test_upgrade_demo_balances_head_and_verify(url):
    assert "migrated from empty" in jifen(url, "db", "upgrade").output
    assert "at the current schema" in jifen(url, "db", "upgrade").output

    loaded = jifen(url, "demo")
    assert loaded.exit_code == 0, loaded.output
    shown = jifen(url, "balances", "--programme", PROGRAMME)
    assert shown.exit_code == 0
    assert "member:m-liu-xiaohong" in shown.output and "issuance" in shown.output
    size = read_head(create_engine(url), PROGRAMME).size
    assert size > 50  # rule versions, awards, approved deductions, a reversal
    head = jifen(url, "head")
    assert f"{PROGRAMME}: size {size}," in head.output
    verified = jifen(url, "db", "verify")
    assert verified.exit_code == 0
    assert f"{PROGRAMME}: ok, {size} entries" in verified.output


def test_demo_refuses_a_database_that_holds_data(url):
    jifen(url, "db", "upgrade")
    jifen(url, "demo")
    again = jifen(url, "demo")
    assert again.exit_code == 1
    assert "error: database_not_empty:" in again.stderr
    size_before = read_head(create_engine(url), PROGRAMME).size
    tolerated = jifen(url, "demo", "--if-empty")
    assert tolerated.exit_code == 0
    assert "demo not loaded" in tolerated.output
    assert read_head(create_engine(url), PROGRAMME).size == size_before  # nothing was added


def test_commands_refuse_an_unmigrated_database(url):
    refused = jifen(url, "demo")
    assert refused.exit_code == 1
    assert "run `jifen db upgrade` first" in refused.stderr


def test_unknown_programme_is_a_clear_refusal(url):
    jifen(url, "db", "upgrade")
    refused = jifen(url, "balances", "--programme", "nowhere")
    assert refused.exit_code == 1
    assert "error: unknown_programme: no programme with code 'nowhere'" in refused.stderr


def test_verify_exits_2_and_names_the_first_problem(url):
    jifen(url, "db", "upgrade")
    jifen(url, "demo")
    engine = create_engine(url)
    with engine.begin() as connection:  # an attacker's edit, going round the triggers
        if engine.dialect.name == "sqlite":
            connection.execute(text("DROP TRIGGER entries_append_only_update"))
        else:
            connection.execute(text("DROP TRIGGER entries_append_only ON entries"))
        connection.execute(text("UPDATE entries SET memo = 'nothing happened' WHERE seq = 3"))
    engine.dispose()
    failed = jifen(url, "db", "verify")
    assert failed.exit_code == 2
    assert f"{PROGRAMME}: FAILED after 3 good entries: entry 3: hash:" in failed.stderr


def test_the_console_script_is_installed_and_runs():
    script = Path(sys.executable).parent / "jifen"
    completed = subprocess.run([str(script), "--help"], capture_output=True, text=True)
    assert completed.returncode == 0
    assert "db" in completed.stdout and "demo" in completed.stdout
