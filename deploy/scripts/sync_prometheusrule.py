"""Write deploy/k8s/base/monitoring/prometheusrule.yaml from deploy/prometheus/alerts.yml.

The alert rules have one source, alerts.yml (checked and unit-tested with promtool).
Kubernetes gets the same groups in a PrometheusRule. Run after editing alerts.yml:

    python deploy/scripts/sync_prometheusrule.py

tests/deploy fails when the two files disagree.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "deploy" / "prometheus" / "alerts.yml"
TARGET = ROOT / "deploy" / "k8s" / "base" / "monitoring" / "prometheusrule.yaml"

HEADER = """\
# GENERATED from deploy/prometheus/alerts.yml by deploy/scripts/sync_prometheusrule.py.
# Edit alerts.yml, then run the script; tests/deploy checks that both agree.
# Your Prometheus must select this rule (its ruleSelector; kube-prometheus-stack
# wants a "release" label).
"""


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (PromQL, descriptions) as literal blocks."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def render() -> str:
    """The PrometheusRule document for the groups of alerts.yml."""
    groups: Any = yaml.safe_load(SOURCE.read_text(encoding="utf-8"))["groups"]
    rule = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "huibao"},
        "spec": {"groups": groups},
    }
    body = yaml.dump(rule, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=1000)
    return HEADER + body


def main() -> int:
    """Write the file, or with --check only compare; exit 1 when it differs."""
    text = render()
    if "--check" in sys.argv[1:]:
        return 0 if TARGET.read_text(encoding="utf-8") == text else 1
    TARGET.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
