"""Residents' card codes (web/residents.py): issue, replace, revoke, the sessions they open,
the database's own guard, the migration, `jifen residents` and the demo's cards.

Every test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from click.testing import CliRunner
from sqlalchemy import insert, select

import web.cli  # noqa: F401  (adds `jifen residents`, as the console script's api.cli does)
from ledger import errors
from ledger.cli import main
from ledger.demo import MEMBERS, PROGRAMME, load_demo
from ledger.models import Base
from ledger.organisation import member_record
from ledger.programmes import get_programme
from ledger.storage import read_transaction, write_transaction
from tests.redemption.test_schema import touched_tables
from web import residents
from web.demo import demo_card_code, load_demo_wallets
from web.resident_models import ResidentCode, ResidentSession

RESIDENT_TABLES = {"resident_codes", "resident_sessions"}
NOW = "2026-12-01T00:00:00.000000Z"


def test_migration_0007_matches_the_models(engine):
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)
    assert [difference for difference in differences
            if touched_tables(difference) & RESIDENT_TABLES] == []


def test_the_database_allows_one_live_code_per_member_whatever_python_does(village):
    programme_id = get_programme(village.engine, village.code).id
    member_id = member_record(village.engine, village.code, village.members[0]).id

    def code_row(code: str, revoked_at: str | None = None) -> dict:
        return {"programme_id": programme_id, "member_id": member_id,
                "code_sha256": code.encode().ljust(32, b"-"), "issued_by": "test",
                "issued_at": NOW, "revoked_at": revoked_at}

    with write_transaction(village.engine) as db:
        db.execute(insert(ResidentCode).values(code_row(f"old{village.code}", NOW)))
        db.execute(insert(ResidentCode).values(code_row(f"live{village.code}")))
    with pytest.raises(errors.IntegrityViolation), write_transaction(village.engine) as db:
        db.execute(insert(ResidentCode).values(code_row(f"second{village.code}")))
    with pytest.raises(errors.IntegrityViolation), write_transaction(village.engine) as db:
        db.execute(insert(ResidentCode).values(code_row(f"old{village.code}", NOW)))


def test_only_the_codes_hash_is_stored(village):
    new_code = residents.issue_code(village.engine, village.code, village.members[0],
                                    issued_by="org")
    opened = residents.open_wallet(village.engine, new_code.code)
    with read_transaction(village.engine) as db:
        stored = [tuple(row) for row in db.execute(select(ResidentCode))]
        stored += [tuple(row) for row in db.execute(select(ResidentSession))]
    text = repr(stored)
    assert new_code.code not in text and opened.token not in text
    assert len(new_code.code) == residents.CODE_CHARS
    assert set(new_code.code) <= set("0123456789ABCDEFGHJKMNPQRSTVWXYZ")


def test_codes_are_read_forgivingly_and_sessions_act_as_the_member(village):
    member = village.members[1]
    new_code = residents.issue_code(village.engine, village.code, member, issued_by="org")
    typed = new_code.display_code.lower().replace("0", "o").replace("1", "l")

    opened = residents.open_wallet(village.engine, f"  {typed} ")

    resident = residents.find_session(village.engine, opened.token)
    assert (resident.programme, resident.member, resident.name) == (village.code, member,
                                                                     "居民1")
    holder = resident.caller().holder
    assert (holder.kind, holder.principal, holder.programme) == ("member", member, village.code)
    assert residents.canonical("ABCDE-FGHJK-MNPQR-STVWU") is None  # U is not a code letter
    assert residents.canonical("x" * 500) is None
    with pytest.raises(residents.UnknownCode):
        residents.open_wallet(village.engine, residents.new_code())


def test_replacing_or_revoking_a_card_closes_every_wallet_it_opened(village):
    member = village.members[0]
    first = residents.issue_code(village.engine, village.code, member, issued_by="org")
    phones = [residents.open_wallet(village.engine, first.code).token for _ in range(2)]

    second = residents.issue_code(village.engine, village.code, member, issued_by="org")

    assert [residents.find_session(village.engine, token) for token in phones] == [None, None]
    with pytest.raises(residents.UnknownCode):
        residents.open_wallet(village.engine, first.code)
    token = residents.open_wallet(village.engine, second.code).token
    residents.revoke_code(village.engine, village.code, member)
    assert residents.find_session(village.engine, token) is None
    assert residents.live_code(village.engine, village.code, member) is None
    with pytest.raises(residents.NoLiveCode):
        residents.revoke_code(village.engine, village.code, member)
    with pytest.raises(errors.UnknownMember):
        residents.issue_code(village.engine, village.code, "nobody", issued_by="org")


def test_a_wallet_session_expires_and_is_renewed_when_used(village):
    new_code = residents.issue_code(village.engine, village.code, village.members[0],
                                    issued_by="org")
    start = datetime.now(UTC)
    opened = residents.open_wallet(village.engine, new_code.code, now=start)
    days = residents.WALLET_SESSION_DAYS

    fresh = residents.find_session(village.engine, opened.token, now=start + timedelta(days=1))
    assert not fresh.renewed
    later = start + timedelta(days=days - 1)
    renewed = residents.find_session(village.engine, opened.token, now=later)
    assert renewed.renewed and renewed.expires_at > opened.resident.expires_at
    assert residents.find_session(village.engine, opened.token,
                                  now=later + timedelta(days=days + 1)) is None
    residents.end_session(village.engine, opened.resident.session_id)
    assert residents.find_session(village.engine, opened.token, now=later) is None


@pytest.fixture
def run(database_url, monkeypatch):
    monkeypatch.setenv("JIFEN_DATABASE_URL", database_url)
    monkeypatch.delenv(residents.PUBLIC_URL_VARIABLE, raising=False)
    monkeypatch.delenv("JIFEN_BIND", raising=False)
    return lambda *arguments: CliRunner().invoke(main, list(arguments))


def test_jifen_residents_code_revoke_and_show(village, run):
    member = village.members[0]
    made = run("residents", "code", "-p", village.code, "-m", member, "--base-url",
               "https://jifen.example.cn/")
    assert made.exit_code == 0, made.output
    code = made.output.split(": ", 1)[1].split()[0].replace("-", "")
    assert f"https://jifen.example.cn/w#{code}" in made.output
    assert residents.code_opens(village.engine, code) == (village.code, member)
    assert "made at" in run("residents", "show", "-p", village.code, "-m", member).output

    again = run("residents", "code", "-p", village.code, "-m", member)
    assert "http://127.0.0.1:8000/w#" in again.output
    assert residents.code_opens(village.engine, code) is None

    assert run("residents", "revoke", "-p", village.code, "-m", member).exit_code == 0
    refused = run("residents", "revoke", "-p", village.code, "-m", member)
    assert refused.exit_code == 1 and "no_live_code" in refused.output
    assert "no working card code" in run("residents", "show", "-p", village.code, "-m",
                                          member).output


def test_the_demo_gives_every_resident_a_card_and_prints_it(fresh_engine, monkeypatch):
    load_demo(fresh_engine)
    wallets = load_demo_wallets(fresh_engine)
    assert [wallet.member for wallet in wallets] == [member for member, _, _ in MEMBERS]
    assert load_demo_wallets(fresh_engine) == wallets  # a second start changes nothing
    for wallet in wallets:
        assert wallet.code == demo_card_code(wallet.member)
        assert residents.code_opens(fresh_engine, wallet.code) == (PROGRAMME, wallet.member)

    residents.issue_code(fresh_engine, PROGRAMME, wallets[0].member, issued_by="org")
    assert [wallet.member for wallet in load_demo_wallets(fresh_engine)] == [
        wallet.member for wallet in wallets[1:]]

    monkeypatch.setenv("JIFEN_DATABASE_URL",
                       fresh_engine.url.render_as_string(hide_password=False))
    monkeypatch.delenv(residents.PUBLIC_URL_VARIABLE, raising=False)
    printed = CliRunner().invoke(main, ["staff", "demo"])
    assert printed.exit_code == 0, printed.output
    assert f"{residents.display(wallets[1].code)}  http://" in printed.output
    assert residents.display(wallets[0].code) not in printed.output
