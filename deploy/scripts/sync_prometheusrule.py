"""Write deploy/k8s/base/monitoring/prometheusrule.yaml from deploy/prometheus/alerts.yml.

The alert rules have one source, alerts.yml (checked and unit-tested with promtool).
Kubernetes gets the same groups in a PrometheusRule. Run after editing alerts.yml or
DOCS_BASE_URL:

    python deploy/scripts/sync_prometheusrule.py

Every alert's runbook_url is DOCS_BASE_URL followed by a path into the repository
(docs/operations.md#<alert in lower case>). The base is configured here only: the script
rewrites the runbook_url lines of alerts.yml and alerts_test.yml to it (a text edit that
keeps comments and layout), then renders the PrometheusRule. With --check it changes
nothing and exits 1 when any of the three files is not what it would write.

tests/deploy fails when the files disagree.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "deploy" / "prometheus" / "alerts.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "alerts_test.yml"
TARGET = ROOT / "deploy" / "k8s" / "base" / "monitoring" / "prometheusrule.yaml"

# Where the repository's files are browsed, ending in "/": a runbook_url is this base
# plus the file's path in the repository. The project publishes no repository address
# (no project URL in pyproject, README or image labels), so this is a placeholder on a
# reserved example domain: set your forge's address (for example
# https://<forge>/<owner>/huibao/blob/main/) and run this script.
DOCS_BASE_URL = "https://git.example.org/huibao/huibao/blob/main/"

# A runbook_url line of alerts.yml or alerts_test.yml; group 2 is the path in the
# repository (the part from "docs/" on), whatever base precedes it.
_RUNBOOK_LINE = re.compile(r"^([ \t]*runbook_url:[ \t]*)\S*?(docs/\S+)[ \t]*$", re.MULTILINE)

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


def with_docs_base(text: str) -> str:
    """`text` with every runbook_url set to DOCS_BASE_URL + its path in the repository."""
    return _RUNBOOK_LINE.sub(lambda m: f"{m.group(1)}{DOCS_BASE_URL}{m.group(2)}", text)


def main() -> int:
    """Rewrite the runbook URLs and the PrometheusRule, or with --check only compare;
    exit 1 when a file differs."""
    check = "--check" in sys.argv[1:]
    stale = False
    for path in (SOURCE, RULE_TESTS):
        current = path.read_text(encoding="utf-8")
        wanted = with_docs_base(current)
        if wanted != current:
            stale = True
            if not check:
                path.write_text(wanted, encoding="utf-8")
    text = render()
    if TARGET.read_text(encoding="utf-8") != text:
        stale = True
        if not check:
            TARGET.write_text(text, encoding="utf-8")
    return 1 if check and stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
