"""Times and money as the pages write them."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from web.formats import last_valid_day, local_time, yuan

SHANGHAI = ZoneInfo("Asia/Shanghai")


def test_times_are_shown_in_the_programme_time_zone_to_the_minute():
    assert local_time("2026-11-22T16:30:59.000000Z", SHANGHAI) == "2026-11-23 00:30"


def test_a_voucher_expiring_at_midnight_is_valid_through_the_day_before():
    assert last_valid_day("2026-12-22T16:00:00.000000Z", SHANGHAI) == "2026-12-22"
    assert last_valid_day("2026-12-22T16:00:01.000000Z", SHANGHAI) is None


def test_money_is_written_in_yuan_with_two_decimals():
    assert [yuan(fen) for fen in (0, 5, 250, 123456, -70)] == [
        "¥0.00", "¥0.05", "¥2.50", "¥1234.56", "-¥0.70"]
