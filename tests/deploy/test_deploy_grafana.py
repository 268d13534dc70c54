"""deploy/grafana: the provisioned datasource and the dashboard JSON."""

from __future__ import annotations

import json
from typing import Any

import pytest
from deploy_support import DEPLOY, METRIC_NAMES, load_yaml, promql_metric_names

GRAFANA = DEPLOY / "grafana"


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    document = json.loads(
        (GRAFANA / "dashboards" / "huibao-overview.json").read_text(encoding="utf-8")
    )
    assert isinstance(document, dict)
    return document


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, those inside collapsed rows included; rows themselves are layout only."""
    found: list[dict[str, Any]] = []
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            found.extend(panel.get("panels", []))
        else:
            found.append(panel)
    return found


def test_datasource_is_provisioned() -> None:
    config = load_yaml(GRAFANA / "provisioning" / "datasources" / "prometheus.yml")
    (source,) = config["datasources"]
    assert (source["type"], source["uid"], source["url"]) == (
        "prometheus",
        "prometheus",
        "http://prometheus:9090",
    )
    provider = load_yaml(GRAFANA / "provisioning" / "dashboards" / "huibao.yml")
    (entry,) = provider["providers"]
    assert entry["options"]["path"] == "/var/lib/grafana/dashboards"


def test_dashboard_identity(dashboard: dict[str, Any]) -> None:
    assert dashboard["uid"] == "huibao-overview"
    assert dashboard["title"]
    (variable,) = dashboard["templating"]["list"]
    assert (variable["name"], variable["type"], variable["query"]) == (
        "datasource",
        "datasource",
        "prometheus",
    )
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))


BUILT_IN = {
    "timeseries",
    "stat",
    "gauge",
    "bargauge",
    "table",
    "text",
    "row",
    "piechart",
    "heatmap",
}


def test_every_panel_queries_prometheus(dashboard: dict[str, Any]) -> None:
    found = panels(dashboard)
    assert len(found) >= 10
    for panel in found:
        title = panel["title"]
        assert panel["type"] in BUILT_IN, title
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, title
        assert panel["targets"], title
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), title
        for target in panel["targets"]:
            assert target.get("datasource", panel["datasource"])["type"] == "prometheus", title
            unknown = promql_metric_names(target["expr"]) - METRIC_NAMES
            assert not unknown, f"{title}: metrics outside the catalogue: {sorted(unknown)}"


def test_required_panels_exist(dashboard: dict[str, Any]) -> None:
    """Intake rate, rejects by reason, consumer lag, outbox backlog, Party Day completeness."""
    exprs = {
        panel["title"]: " ".join(t["expr"] for t in panel["targets"]) for panel in panels(dashboard)
    }
    wanted = {
        "Intake rate": "huibao_intake_events_total",
        "Rejects by reason": "by (reason)",
        "Consumer lag": "huibao_consumer_lag",
        "Outbox backlog": "huibao_outbox_backlog",
        "Party Day completeness, whole tree (current cycle)": "huibao_cycle_branches",
    }
    for title, fragment in wanted.items():
        assert fragment in exprs[title], title
