"""How the pages write times and money for people.

The ledger records UTC timestamps (`2026-11-22T06:03:00.000000Z`); pages
show them in the programme's time zone, to the minute. Money is counted in
fen (分) everywhere and shown in yuan with two decimals.
"""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

from ledger.entry_format import parse_timestamp

MINUTE_FORMAT = "%Y-%m-%d %H:%M"


def local_time(timestamp: str, zone: ZoneInfo) -> str:
    """`2026-11-22 14:03`: a ledger timestamp in the programme's time zone."""
    return parse_timestamp(timestamp).astimezone(zone).strftime(MINUTE_FORMAT)


def last_valid_day(expires_at: str, zone: ZoneInfo) -> str | None:
    """The last day a voucher is valid on, when it expires at a midnight (as vouchers made
    with `expires_in_days` do); None when it expires at some other moment."""
    moment = parse_timestamp(expires_at).astimezone(zone)
    if (moment.hour, moment.minute, moment.second, moment.microsecond) != (0, 0, 0, 0):
        return None
    return (moment - timedelta(days=1)).date().isoformat()


def yuan(fen: int) -> str:
    """`¥12.05` for 1205 fen."""
    sign = "-" if fen < 0 else ""
    return f"{sign}¥{abs(fen) // 100}.{abs(fen) % 100:02d}"
