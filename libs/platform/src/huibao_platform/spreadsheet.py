"""CSV cells a spreadsheet opens as data, never as a formula (OWASP's CSV-injection rule).

A text cell starting with `=`, `+`, `-`, `@`, a tab or a carriage return would be taken
for a formula by Excel, LibreOffice or Google Sheets (`=HYPERLINK("http://…")` in a unit's
name becomes a link); such a cell is written with a leading `'`, which the spreadsheet
shows as text and does not evaluate. Numbers stay numbers: an int or a float is written as
it is (a negative count is `-5`), and so is text that is a plain number (`-5`, `+1.5e3`).
The dashboard's own export (`huibao_dashboard/static/csv.js`) applies the same rule.

Every CSV answer of every service is written through `csv_text` / `safe_cell`.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence
from typing import Any

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
"""The first characters that make a spreadsheet read a cell as a formula."""

_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")

CSV_MEDIA_TYPE = "text/csv; charset=utf-8"
"""The media type of every CSV answer."""


def wants_csv(fmt: str | None, accept: str | None) -> bool:
    """The one content-negotiation rule: CSV when `?format=csv`, or when no `format` is
    given and the Accept header names `text/csv`; JSON otherwise."""
    return fmt == "csv" or (fmt is None and "text/csv" in (accept or ""))


def safe_cell(value: Any) -> Any:
    """`value` as a CSV cell: None is empty, numbers stay, formula-like text gets a `'`."""
    if value is None:
        return ""
    if isinstance(value, int | float):
        return value
    text = str(value)
    if text.startswith(FORMULA_START) and not _NUMBER.fullmatch(text):
        return "'" + text
    return text


def write_rows(writer: Any, rows: Iterable[Sequence[Any]]) -> None:
    """Write `rows` to a `csv.writer`, every cell through `safe_cell`."""
    for row in rows:
        writer.writerow([safe_cell(v) for v in row])


def csv_text(
    header: Sequence[str], rows: Iterable[Sequence[Any]], lineterminator: str = "\r\n"
) -> str:
    """The CSV text (RFC 4180 quoting) of a header row and data rows, cells made safe."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator=lineterminator)
    write_rows(writer, [header])
    write_rows(writer, rows)
    return buf.getvalue()
