"""Sign-in sheets (签到表): CSV or XLSX files of award lines, read into award requests.

The first row names the columns, in English or Chinese, in any order:

    member (成员, 编号)   rule (规则)   quantity (数量)   occurred_at (时间, 日期)
    evidence (证据)      memo (备注)

Only member and rule are required. `occurred_at` may carry an offset
(`2026-11-20T09:30+08:00`) or not (`2026-11-20 09:30`: programme time), or
be a date alone (`2026-11-20`: noon, programme time). CSV files may be
UTF-8 (with or without the BOM Excel writes) or GB 18030 (what Excel on a
Chinese Windows saves). A line that cannot be read is reported with its
number and the reason, and the other lines still go through.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from ledger import errors
from ledger.awards import AwardRequest

MAX_LINES = 5_000
COLUMNS = {
    "member": ("member", "成员", "编号", "成员编号"),
    "rule": ("rule", "规则", "规则编号"),
    "quantity": ("quantity", "数量"),
    "occurred_at": ("occurred_at", "时间", "日期"),
    "evidence": ("evidence", "证据"),
    "memo": ("memo", "备注"),
}


class InvalidSheet(errors.LedgerError):
    """The sheet, or one line of it, cannot be read. `details['reason']` says why, for
    people's words: `empty`, `no_lines`, `too_many_lines`, `not_text`, `unreadable`,
    `missing_columns` (with `missing`), and for a line (with `line`) `incomplete_line`,
    `bad_quantity` or `bad_date` (with the cell's `value`)."""

    code = "invalid_sheet"


@dataclass(frozen=True)
class SheetLine:
    """One line of the sheet: a request, or why it could not be read."""

    number: int
    """The line's row number in the file, the header being row 1."""
    request: AwardRequest | None
    error: errors.LedgerError | None
    member: str | None = None
    rule: str | None = None


def parse_sheet(content: bytes, filename: str, zone: ZoneInfo) -> list[SheetLine]:
    """Read a CSV or XLSX sheet; raises `InvalidSheet` when the file as a whole is unusable."""
    if content[:2] == b"PK" or filename.lower().endswith(".xlsx"):
        rows = _xlsx_rows(content)
    else:
        rows = _csv_rows(content)
    if not rows:
        raise InvalidSheet("the sheet is empty", reason="empty")
    columns = _columns(rows[0])
    lines = []
    for number, row in enumerate(rows[1:], start=2):
        if all(cell in (None, "") for cell in row):
            continue
        lines.append(_line(number, row, columns, zone))
    if len(lines) > MAX_LINES:
        raise InvalidSheet(f"a sheet holds at most {MAX_LINES} lines, not {len(lines)}",
                           reason="too_many_lines", lines=len(lines), max_lines=MAX_LINES)
    if not lines:
        raise InvalidSheet("the sheet has a header but no lines", reason="no_lines")
    return lines


def _csv_rows(content: bytes) -> list[list[str]]:
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = content.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise InvalidSheet("the CSV file is neither UTF-8 nor GB 18030 text", reason="not_text")
    try:
        return [row for row in csv.reader(io.StringIO(text))]
    except csv.Error as error:
        raise InvalidSheet(f"the CSV file cannot be read: {error}", reason="unreadable") from error


def _xlsx_rows(content: bytes) -> list[list[object]]:
    from openpyxl import load_workbook  # only sheets in XLSX need openpyxl

    try:
        workbook = load_workbook(io.BytesIO(content), read_only=True, data_only=True)
    except Exception as error:  # openpyxl raises many kinds for a damaged file
        raise InvalidSheet(f"the XLSX file cannot be read: {type(error).__name__}",
                           reason="unreadable") from error
    rows = [list(row) for row in workbook.worksheets[0].iter_rows(values_only=True)]
    workbook.close()
    return rows


def _columns(header: list[object]) -> dict[str, int]:
    names = {alias: field for field, aliases in COLUMNS.items() for alias in aliases}
    columns: dict[str, int] = {}
    for index, cell in enumerate(header):
        field = names.get(str(cell or "").strip().lower())
        if field is not None:
            columns.setdefault(field, index)
    missing = [field for field in ("member", "rule") if field not in columns]
    if missing:
        raise InvalidSheet(
            f"the header row has no {' or '.join(missing)} column; columns are "
            + ", ".join(f"{field} ({'/'.join(aliases[1:])})" for field, aliases in COLUMNS.items()),
            reason="missing_columns", missing=missing,
        )
    return columns


def _line(number: int, row: list[object], columns: dict[str, int], zone: ZoneInfo) -> SheetLine:
    def cell(field: str) -> object:
        index = columns.get(field)
        value = row[index] if index is not None and index < len(row) else None
        return value.strip() if isinstance(value, str) else value

    member, rule = str(cell("member") or ""), str(cell("rule") or "")
    try:
        if not member or not rule:
            raise InvalidSheet(f"line {number}: member and rule are required",
                               reason="incomplete_line", line=number)
        request = AwardRequest(
            member=member,
            rule=rule,
            quantity=_quantity(cell("quantity"), number),
            occurred_at=_moment(cell("occurred_at"), number, zone),
            evidence=str(cell("evidence")) if cell("evidence") not in (None, "") else None,
            memo=str(cell("memo") or ""),
        )
    except InvalidSheet as error:
        return SheetLine(number, None, error, member or None, rule or None)
    return SheetLine(number, request, None, member, rule)


def _quantity(value: object, number: int) -> int | None:
    if value in (None, ""):
        return None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    raise InvalidSheet(f"line {number}: quantity {value!r} is not a whole number",
                       reason="bad_quantity", line=number, value=str(value))


def _moment(value: object, number: int, zone: ZoneInfo) -> datetime | None:
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime.combine(value, time(12))
    else:
        text = str(value)
        try:
            moment = (datetime.combine(date.fromisoformat(text), time(12)) if len(text) == 10
                      else datetime.fromisoformat(text))
        except ValueError:
            raise InvalidSheet(f"line {number}: occurred_at {text!r} is not a date or time like "
                               "2026-11-20 09:30", reason="bad_date", line=number,
                               value=text) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=zone)
