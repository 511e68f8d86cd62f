"""The `jifen` redemption commands, end to end: a shop, a voucher, its redemption, the
settlement and its statement, on both databases.

The commands come from the console script's module (`api.cli`), which is
what proves they are wired into `jifen`.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

from click.testing import CliRunner

from api.cli import main
from ledger.statements import balance_of
from redemption.redemptions import redeem
from redemption.vouchers import get_voucher
from tests.ledger.conftest import SHANGHAI
from tests.redemption.conftest import CASHIER, make_market


def jifen(url: str, *arguments: str):
    return CliRunner().invoke(main, list(arguments), env={"JIFEN_DATABASE_URL": url})


def test_a_voucher_from_issue_to_settlement_statement(engine, database_url, tmp_path):
    market = make_market(engine)
    programme = ["--programme", market.code]
    today = datetime.now(UTC).astimezone(SHANGHAI).date().isoformat()

    added = jifen(database_url, "shops", "add", *programme, "--unit", "village",
                  "--contact", "138", "market", "积分超市")
    assert added.exit_code == 0, added.output
    assert "account shop:market" in added.output
    item = jifen(database_url, "catalog", "add", *programme, "--price", "80", "--stock", "4",
                 "rice-5kg", "大米 5kg")
    assert item.exit_code == 0, item.output

    png = tmp_path / "voucher.png"
    issued = jifen(database_url, "vouchers", "issue", *programme, "--member", market.member(0),
                   "--item", "rice-5kg", "--shop", "market", "--idempotency-key", "cli-1",
                   "--qr-png", str(png))
    assert issued.exit_code == 0, issued.output
    voucher_id = issued.output.split()[1].rstrip(":")
    token = next(line.split()[1] for line in issued.output.splitlines()
                 if line.startswith("token:"))
    assert png.read_bytes().startswith(b"\x89PNG")
    again = jifen(database_url, "vouchers", "issue", *programme, "--member", market.member(0),
                  "--item", "rice-5kg", "--shop", "market", "--idempotency-key", "cli-1")
    assert again.output.split()[1].rstrip(":") == voucher_id
    shown = jifen(database_url, "vouchers", "show", *programme, voucher_id)
    assert f"token: {token}" in shown.output and "issued" in shown.output

    redeem(engine, market.code, "market", token, actor=CASHIER)

    settled = jifen(database_url, "settle", *programme, "--shop", "market", "--from", today,
                    "--to", today, "--reference", "转账 7", "--idempotency-key", "pay-1")
    assert settled.exit_code == 0, settled.output
    assert "settled: market" in settled.output and "80 points = 8.00 yuan" in settled.output
    assert "already settled" in jifen(
        database_url, "settle", *programme, "--shop", "market", "--from", today, "--to", today,
        "--reference", "转账 7", "--idempotency-key", "pay-1").output
    assert balance_of(engine, market.code, "settled").balance_points == 80

    as_csv = jifen(database_url, "settlement", "statement", *programme, "--shop", "market",
                   "--from", today, "--to", today, "--format", "csv")
    assert as_csv.stdout_bytes.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(as_csv.stdout_bytes.decode("utf-8-sig"))))
    assert "积分超市" in rows[0][0] and rows[2][0] == voucher_id
    out = tmp_path / "statement.json"
    jifen(database_url, "settlement", "statement", *programme, "--shop", "market",
          "--from", today, "--to", today, "--format", "json", "--out", str(out))
    exported = json.loads(out.read_text(encoding="utf-8"))
    assert exported["lines"][0]["voucher_id"] == voucher_id
    assert exported["lines"][0]["settlement_seq"] == exported["settlements"][0]["entry_seq"]


def test_cancel_expire_keys_and_refusals(engine, database_url):
    market = make_market(engine)
    programme = ["--programme", market.code]
    issued = jifen(database_url, "vouchers", "issue", *programme, "--member", market.member(1),
                   "--points", "30")
    voucher_id = issued.output.split()[1].rstrip(":")

    cancelled = jifen(database_url, "vouchers", "cancel", *programme, voucher_id)
    assert cancelled.exit_code == 0, cancelled.output
    assert "30 points back to m1" in cancelled.output
    assert get_voucher(engine, market.code, voucher_id).status == "cancelled"

    tomorrow = (datetime.now(UTC).astimezone(SHANGHAI).date() + timedelta(days=1)).isoformat()
    future = jifen(database_url, "vouchers", "expire", *programme, "--as-of", tomorrow)
    assert future.exit_code == 1 and "error: invalid_entry:" in future.stderr
    expired = jifen(database_url, "vouchers", "expire", *programme)
    assert expired.exit_code == 0 and f"{market.code}: 0 vouchers expired" in expired.output

    keys = jifen(database_url, "vouchers", "keys", *programme, "--rotate")
    published = json.loads(keys.output)
    assert [key["status"] for key in published] == ["signing", "retired"]
    assert published[0]["paserk"].startswith("k4.public.")

    refused = jifen(database_url, "vouchers", "issue", *programme, "--member", market.member(2),
                    "--points", "999999")
    assert refused.exit_code == 1
    assert "error: insufficient_balance:" in refused.stderr
    suspended = jifen(database_url, "shops", "suspend", *programme, "rice")
    assert suspended.exit_code == 0
    listed = jifen(database_url, "shops", "list", *programme)
    assert "rice\tsuspended\t王家米店" in listed.output
