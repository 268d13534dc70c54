"""Reading the JSON log lines the services and the launcher write (ECS field names, see
docs/operations.md#logs and huibao_platform/logs.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

REQUIRED = frozenset(
    {"@timestamp", "log.level", "message", "ecs.version", "log.logger", "service.name"}
)
"""On every line: the fields ecs-logging requires, the logger and the service."""

ECS_FIELDS = frozenset(
    {
        *REQUIRED,
        "event.action",
        "event.duration",
        "event.id",
        "event.provider",
        "event.original",
        "error.type",
        "error.message",
        "error.stack_trace",
        "http.request.id",
        "http.request.method",
        "http.response.status_code",
        "trace.id",
        "organization.id",
    }
)
"""The ECS fields our lines use; any other key is under `huibao.`."""


def parse_line(raw: str, where: str = "") -> dict[str, Any]:
    """One log line as a dict; AssertionError naming `where` when it is not one JSON object
    with the required fields and nothing outside ECS or `huibao.*`."""
    try:
        line = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise AssertionError(f"{where} is not JSON: {raw[:300]}") from None
    assert isinstance(line, dict), f"{where} is not a JSON object: {raw[:300]}"
    missing = REQUIRED - line.keys()
    assert not missing, f"{where} lacks {sorted(missing)}: {raw[:300]}"
    stray = [k for k in line if k not in ECS_FIELDS and not k.startswith("huibao.")]
    assert not stray, f"{where} has keys outside ECS and huibao.*: {stray}"
    assert "\n" not in line["message"], f"{where}: a multi-line message: {raw[:300]}"
    return line


def read_log(path: Path) -> list[dict[str, Any]]:
    """Every line of a log file, parsed; fails on the first that is not a proper line."""
    text = path.read_text(encoding="utf-8")
    return [
        parse_line(raw, f"{path.name}:{n}")
        for n, raw in enumerate(text.splitlines(), 1)
        if raw.strip()
    ]


def action(line: dict[str, Any]) -> str | None:
    """What one of our lines says happened (`http_request`); None for a library's line."""
    value = line.get("event.action")
    return value if isinstance(value, str) else None
