"""A programme's redemption settings: what a point is worth to a shop, how long vouchers last.

Both are integers: money is counted in fen (分, 1/100 yuan), so the default
rate of 10 fen per point is 0.10 yuan. A programme without a row of its own
uses the defaults.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.engine import Connection, Engine

from ledger import errors
from ledger.entry_format import format_timestamp
from ledger.programmes import get_programme
from ledger.storage import read_transaction, write_transaction
from redemption.models import RedemptionSettings

DEFAULT_FEN_PER_POINT = 10
DEFAULT_VOUCHER_VALIDITY_DAYS = 30
MAX_FEN_PER_POINT = 100_000
MAX_VOUCHER_VALIDITY_DAYS = 3_660


@dataclass(frozen=True)
class Settings:
    fen_per_point: int = DEFAULT_FEN_PER_POINT
    voucher_validity_days: int = DEFAULT_VOUCHER_VALIDITY_DAYS


def get_settings(engine: Engine, programme: str) -> Settings:
    """The programme's settings (the defaults until set); raises `UnknownProgramme`."""
    with read_transaction(engine) as connection:
        programme_info = get_programme(connection, programme)
        return settings_on(connection, programme_info.id)


def settings_on(connection: Connection, programme_id: int) -> Settings:
    row = connection.execute(
        select(RedemptionSettings.fen_per_point, RedemptionSettings.voucher_validity_days)
        .where(RedemptionSettings.programme_id == programme_id)
    ).first()
    return Settings(*row) if row else Settings()


def set_settings(engine: Engine, programme: str, *, fen_per_point: int | None = None,
                 voucher_validity_days: int | None = None) -> Settings:
    """Change either setting; returns the settings now in force.

    A new rate applies to settlements made from now on (each settlement
    records the rate it used). Raises `UnknownProgramme`, `InvalidEntry` for
    a value that is not a positive integer within its limit.
    """
    _check_positive(fen_per_point, "fen_per_point", MAX_FEN_PER_POINT)
    _check_positive(voucher_validity_days, "voucher_validity_days", MAX_VOUCHER_VALIDITY_DAYS)
    with write_transaction(engine) as connection:
        programme_info = get_programme(connection, programme)
        current = settings_on(connection, programme_info.id)
        wanted = Settings(
            fen_per_point if fen_per_point is not None else current.fen_per_point,
            voucher_validity_days if voucher_validity_days is not None
            else current.voucher_validity_days,
        )
        table = RedemptionSettings.__table__
        values = {"fen_per_point": wanted.fen_per_point,
                  "voucher_validity_days": wanted.voucher_validity_days,
                  "updated_at": format_timestamp(datetime.now(UTC))}
        updated = connection.execute(
            table.update().where(table.c.programme_id == programme_info.id).values(**values)
        ).rowcount
        if updated == 0:
            connection.execute(table.insert().values(programme_id=programme_info.id, **values))
    return wanted


def _check_positive(value: int | None, name: str, limit: int) -> None:
    if value is not None and (type(value) is not int or not 0 < value <= limit):
        raise errors.InvalidEntry(f"{name} must be an integer from 1 to {limit}", field=name)
