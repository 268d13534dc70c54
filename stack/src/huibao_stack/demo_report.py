"""The demo's table: one row per county and the city total, read from the rollup API."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from huibao_client import AsyncHuibaoClient
from huibao_contracts.periods import Period

COLUMNS = (
    ("branches expected", "party_day.expected", "{:.0f}"),
    ("held", "party_day.held", "{:.0f}"),
    ("on time", "party_day.on_time", "{:.0f}"),
    ("late", "party_day.late", "{:.0f}"),
    ("attendance", "party_day.attendance_rate", "{:.1%}"),
    ("lessons", "lesson.delivered", "{:.0f}"),
    ("training participants", "training.participants", "{:.0f}"),
)


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the table; `node_id` None for the city total."""

    node_id: str | None
    name: str
    totals: dict[str, Any]


async def county_table(huibao: AsyncHuibaoClient, root: str, period: Period) -> list[Row]:
    """Every county of `root` for `period`, then the city total, from the rollup API."""
    children = await huibao.children(root, period, metric="party_day.held", limit=500)
    rows = [Row(c.id, c.name, dict(c.metrics)) for c in sorted(children.items, key=lambda c: c.id)]
    summary = await huibao.summary(root, period)
    rows.append(Row(None, "city total", dict(summary.metrics)))
    return rows


def render_table(rows: list[Row], title: str) -> str:
    """A plain-text table, wide characters accounted for."""
    header = ["county", *[c[0] for c in COLUMNS]]
    body = [[r.name, *[_fmt(r.totals.get(m), f) for _, m, f in COLUMNS]] for r in rows]
    widths = [max(_width(x) for x in col) for col in zip(header, *body, strict=True)]
    lines = [title, _line(header, widths), "  ".join("-" * w for w in widths)]
    lines += [_line(b, widths) for b in body[:-1]]
    lines += ["  ".join("-" * w for w in widths), _line(body[-1], widths)]
    return "\n".join(lines)


def _fmt(value: Any, fmt: str) -> str:
    return "—" if value is None else fmt.format(float(value))


def _width(text: str) -> int:
    return sum(2 if ord(ch) > 0x2E80 else 1 for ch in text)


def _line(cells: list[str], widths: list[int]) -> str:
    out = []
    for i, (cell, w) in enumerate(zip(cells, widths, strict=True)):
        pad = " " * (w - _width(cell))
        out.append(cell + pad if i == 0 else pad + cell)
    return "  ".join(out)
