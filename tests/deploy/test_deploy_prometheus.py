"""deploy/prometheus: promtool accepts the configuration and rules, the rule unit tests pass,
and every alert uses catalogued metrics and links an existing runbook entry."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from deploy_support import DEPLOY, METRIC_NAMES, ROOT, SERVICES, load_yaml, promql_metric_names

PROMETHEUS = DEPLOY / "prometheus"
SYNC_SCRIPT = DEPLOY / "scripts" / "sync_prometheusrule.py"
_spec = importlib.util.spec_from_file_location("sync_prometheusrule", SYNC_SCRIPT)
assert _spec is not None
assert _spec.loader is not None
sync_prometheusrule = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sync_prometheusrule)
DOCS_BASE_URL: str = sync_prometheusrule.DOCS_BASE_URL
OPERATIONS = ROOT / "docs" / "operations.md"
EXPECTED_ALERTS = {
    "HuibaoServiceDown",
    "HuibaoConsumerLagHigh",
    "HuibaoRejectRateHigh",
    "HuibaoOutboxBacklogGrowing",
    "HuibaoOutboxStale",
    "HuibaoCycleOverdue",
}


def promtool_run(promtool: str, *args: str) -> str:
    result = subprocess.run(
        [promtool, *args], capture_output=True, text=True, timeout=120, check=False, cwd=PROMETHEUS
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"promtool {' '.join(args)}:\n{output}"
    return output


def alert_rules() -> list[dict[str, Any]]:
    groups = load_yaml(PROMETHEUS / "alerts.yml")["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def markdown_anchors(path: Path) -> set[str]:
    """GitHub-style heading anchors plus explicit <a id="..."> anchors."""
    text = path.read_text(encoding="utf-8")
    anchors = set(re.findall(r'<a (?:id|name)="([^"]+)"', text))
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*$", text, flags=re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        anchors.add(slug)
    return anchors


def test_promtool_check_config(promtool: str) -> None:
    output = promtool_run(promtool, "check", "config", "prometheus.yml")
    assert "SUCCESS" in output


def test_promtool_check_rules(promtool: str) -> None:
    output = promtool_run(promtool, "check", "rules", "alerts.yml")
    assert f"SUCCESS: {len(EXPECTED_ALERTS)} rules found" in output


def test_promtool_test_rules(promtool: str) -> None:
    output = promtool_run(promtool, "test", "rules", "alerts_test.yml")
    assert "SUCCESS" in output


def test_every_alert_is_unit_tested() -> None:
    tests = load_yaml(PROMETHEUS / "alerts_test.yml")["tests"]
    tested = {case["alertname"] for test in tests for case in test.get("alert_rule_test", [])}
    assert tested == EXPECTED_ALERTS


def test_alerts_have_severity_runbook_and_summary() -> None:
    rules = alert_rules()
    assert {rule["alert"] for rule in rules} == EXPECTED_ALERTS
    anchors = markdown_anchors(OPERATIONS)
    for rule in rules:
        name = rule["alert"]
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        assert rule["annotations"]["summary"], name
        assert rule["annotations"]["description"], name
        assert re.fullmatch(r"\d+[smh]", rule["for"]), name
        runbook = rule["annotations"]["runbook_url"]
        assert runbook == f"{DOCS_BASE_URL}docs/operations.md#{name.lower()}", name
        assert name.lower() in anchors, f"docs/operations.md has no #{name.lower()}"


def runbook_urls() -> list[tuple[str, str]]:
    """(file, runbook_url) of every alert rule and every expected alert of the rule tests."""
    urls = [("alerts.yml", str(rule["annotations"]["runbook_url"])) for rule in alert_rules()]
    for test in load_yaml(PROMETHEUS / "alerts_test.yml")["tests"]:
        for case in test.get("alert_rule_test", []):
            for alert in case.get("exp_alerts", []):
                if "runbook_url" in alert.get("exp_annotations", {}):
                    urls.append(("alerts_test.yml", str(alert["exp_annotations"]["runbook_url"])))
    return urls


def test_runbook_urls_are_absolute_links_to_existing_docs() -> None:
    """Each runbook_url is DOCS_BASE_URL (an absolute https URL configured in one place)
    plus the path of a file of this repository and an anchor that file has."""
    base = urlsplit(DOCS_BASE_URL)
    assert base.scheme == "https", DOCS_BASE_URL
    assert base.netloc, DOCS_BASE_URL
    assert DOCS_BASE_URL.endswith("/"), DOCS_BASE_URL
    urls = runbook_urls()
    assert len(urls) >= len(EXPECTED_ALERTS)
    for source, url in urls:
        assert url.startswith(DOCS_BASE_URL), (source, url)
        path, _, anchor = url.removeprefix(DOCS_BASE_URL).partition("#")
        target = ROOT / path
        assert target.resolve().is_relative_to(ROOT), (source, url)
        assert target.is_file(), f"{source}: {url} names no file of the repository"
        assert anchor, f"{source}: {url} has no anchor"
        assert anchor in markdown_anchors(target), f"{source}: {path} has no #{anchor}"


def test_sync_script_keeps_the_runbook_base_in_one_place() -> None:
    """The script's --check passes (alerts.yml, alerts_test.yml and the PrometheusRule are
    what it writes), and its rewrite moves any other base to DOCS_BASE_URL."""
    result = subprocess.run(
        [sys.executable, str(SYNC_SCRIPT), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, "run: python deploy/scripts/sync_prometheusrule.py"
    stale = "          runbook_url: https://old.example.com/x/docs/operations.md#a\n"
    assert sync_prometheusrule.with_docs_base(stale) == (
        f"          runbook_url: {DOCS_BASE_URL}docs/operations.md#a\n"
    )


def test_alerts_use_catalogued_metrics() -> None:
    for rule in alert_rules():
        unknown = promql_metric_names(rule["expr"]) - METRIC_NAMES
        assert not unknown, f"{rule['alert']}: metrics outside the catalogue: {sorted(unknown)}"


def test_scrape_jobs_are_the_kubernetes_service_names() -> None:
    """Alert rules select jobs by name; compose and Kubernetes must name them alike."""
    config = load_yaml(PROMETHEUS / "prometheus.yml")
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    for service, (_, port) in SERVICES.items():
        job = jobs[f"huibao-{service}"]
        assert job.get("metrics_path", "/metrics") == "/metrics"
        (static,) = job["static_configs"]
        assert static["targets"] == [f"{service}:{port}"]
    assert config["rule_files"] == ["alerts.yml"]


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        (
            'sum by (job) (rate(huibao_intake_events_total{outcome="rejected"}[5m]))',
            {"huibao_intake_events_total"},
        ),
        ("histogram_quantile(0.95, sum by (le) (rate(x_bucket[$__rate_interval])))", {"x_bucket"}),
        ('up{job=~"a|b"} == 0 or absent(up{job="c"})', {"up"}),
        ("max(a) / max(b) > 0.5 and on(job) c", {"a", "b", "c"}),
    ],
)
def test_promql_metric_name_extraction(expr: str, names: set[str]) -> None:
    assert promql_metric_names(expr) == names
