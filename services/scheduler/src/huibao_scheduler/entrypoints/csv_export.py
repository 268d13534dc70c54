"""The CSV form of a feedback report: one long table a spreadsheet opens as is.

Columns: section, unit, name, period, key, value, previous, change, rank, of.
- `metrics` rows: the unit's metrics for the quarter, previous quarter, change and rank.
- `month` rows: the unit's own Party Day completeness per month.
- `child` rows: each child's completeness per month (key = expected/held/on_time/late/missing).
- `attention` rows: children needing attention (key = missing/late, value = count).

Every cell goes through `huibao_platform.spreadsheet.safe_cell`: a unit named like a formula
(`=HYPERLINK(...)`) is written with a leading `'`, numbers as they are.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from huibao_platform.spreadsheet import safe_cell

_COLUMNS = ("section", "unit", "name", "period", "key", "value", "previous", "change", "rank", "of")
_MONTH_KEYS = ("expected", "held", "on_time", "late", "missing")


def feedback_csv(report: dict[str, Any]) -> str:
    """Render a stored feedback report (its JSON form) as CSV."""
    out = io.StringIO()
    w = _SafeWriter(csv.writer(out, lineterminator="\n"))
    w.writerow(_COLUMNS)
    unit, name, quarter = report["unit"], report["name"], report["quarter"]
    ranks = {r["metric"]: r for r in report["ranks"]}
    for metric, value in report["metrics"].items():
        rank = ranks.get(metric, {})
        w.writerow(
            (
                "metrics",
                unit,
                name,
                quarter,
                metric,
                _cell(value),
                _cell(report["previous"].get(metric)),
                _cell(report["change"].get(metric)),
                _cell(rank.get("rank")),
                _cell(rank.get("of")),
            )
        )
    for month in report["months"]:
        for key in _MONTH_KEYS:
            w.writerow(("month", unit, name, month["period"], key, month[key], "", "", "", ""))
    for child in report["children"]:
        for month in child["months"]:
            for key in _MONTH_KEYS:
                w.writerow(
                    (
                        "child",
                        child["id"],
                        child["name"],
                        month["period"],
                        key,
                        month[key],
                        "",
                        "",
                        "",
                        "",
                    )
                )
    for item in report["attention"]:
        for key in ("missing", "late"):
            w.writerow(
                ("attention", item["id"], item["name"], quarter, key, item[key], "", "", "", "")
            )
    return out.getvalue()


def _cell(value: Any) -> str:
    return "" if value is None else str(value)


class _SafeWriter:
    """A `csv.writer` whose every cell is made safe for spreadsheets."""

    def __init__(self, writer: Any) -> None:
        self._writer = writer

    def writerow(self, row: Any) -> None:
        self._writer.writerow([safe_cell(v) for v in row])
