"""The CSV-injection rule: one for every CSV the services write, the same as the dashboard's.

The JavaScript half runs in Node (the dashboard's own `csv.js`) when `node` is installed.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from huibao_platform.spreadsheet import csv_text, safe_cell, wants_csv
from huibao_scheduler.entrypoints.csv_export import feedback_csv

CSV_JS = Path(__file__).resolve().parents[2] / "dashboard/src/huibao_dashboard/static/csv.js"

CASES: list[tuple[object, str]] = [
    ('=HYPERLINK("http://x")', '\'=HYPERLINK("http://x")'),
    ("+SUM(A1)", "'+SUM(A1)"),
    ("-2+3", "'-2+3"),
    ("@cmd", "'@cmd"),
    ("\t=1", "'\t=1"),
    ("\r=1", "'\r=1"),
    ("\t5", "'\t5"),
    ("-Infinity", "'-Infinity"),
    ("-5", "-5"),
    ("+1.5e3", "+1.5e3"),
    ("-.5", "-.5"),
    ("城关镇第一村党支部", "城关镇第一村党支部"),
    ("a=b", "a=b"),
    ("", ""),
    (-5, "-5"),
    (0.25, "0.25"),
    (None, ""),
]


@pytest.mark.parametrize(("value", "shown"), CASES)
def test_formula_like_text_gets_a_quote_and_numbers_stay(value: object, shown: str) -> None:
    assert str(safe_cell(value)) == shown
    (row,) = list(csv.reader(io.StringIO(csv_text(["h"], [[value]]))))[1:]
    assert row == [shown]


@pytest.mark.parametrize(
    ("fmt", "accept", "csv_wanted"),
    [
        ("csv", None, True),
        ("csv", "application/json", True),
        ("json", "text/csv", False),
        (None, "text/csv", True),
        (None, "application/json, text/csv;q=0.5", True),
        (None, "application/json", False),
        (None, None, False),
    ],
)
def test_format_decides_and_accept_only_when_no_format(
    fmt: str | None, accept: str | None, csv_wanted: bool
) -> None:
    assert wants_csv(fmt, accept) is csv_wanted


def test_the_feedback_csv_neutralises_names_and_keeps_negative_changes() -> None:
    report = {
        "unit": "u",
        "name": '=HYPERLINK("http://x")',
        "quarter": "2026-Q3",
        "ranks": [],
        "metrics": {"lesson.delivered": 3},
        "previous": {"lesson.delivered": 8},
        "change": {"lesson.delivered": -5},
        "months": [],
        "children": [{"id": "u.b1", "name": "@child", "months": []}],
        "attention": [{"id": "u.b1", "name": "+child", "missing": 1, "late": 0}],
    }
    rows = list(csv.reader(io.StringIO(feedback_csv(report))))
    assert rows[1][2] == '\'=HYPERLINK("http://x")'
    assert rows[1][7] == "-5"
    assert {r[2] for r in rows if r[0] == "attention"} == {"'+child"}


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_the_dashboard_export_applies_the_same_rule(tmp_path: Path) -> None:
    module = tmp_path / "csv.mjs"
    module.write_text(CSV_JS.read_text(encoding="utf-8"), encoding="utf-8")
    texts = [v for v, _ in CASES if isinstance(v, str)]
    script = (
        f"import {{ toCsv }} from {json.dumps(module.as_uri())};\n"
        f"const cells = {json.dumps(texts)};\n"
        "process.stdout.write(toCsv(['h'], cells.map((c) => [c])));\n"
    )
    out = subprocess.run(
        ["node", "--input-type=module", "-e", script],
        capture_output=True,
        check=True,
        timeout=30,
    ).stdout.decode()  # bytes: universal newlines would turn a quoted CR into LF
    from_js = [r[0] if r else "" for r in csv.reader(io.StringIO(out))][1:]
    assert from_js == [str(safe_cell(t)) for t in texts]
