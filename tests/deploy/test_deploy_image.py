"""Dockerfile and .dockerignore: one non-root multi-stage image built with uv from uv.lock."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from deploy_support import ROOT, SERVICES

DOCKERFILE = ROOT / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    text = DOCKERFILE.read_text(encoding="utf-8")
    text = re.sub(r"\\\n", " ", text)
    result = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, rest = stripped.partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


def stages() -> list[list[tuple[str, str]]]:
    found: list[list[tuple[str, str]]] = []
    for keyword, args in instructions():
        if keyword == "FROM":
            found.append([])
        if found:
            found[-1].append((keyword, args))
    return found


def workspace() -> dict[str, object]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_multi_stage_from_python_slim() -> None:
    """Every stage starts from the one base image, python:3.11-slim (global ARG)."""
    assert "PYTHON_IMAGE=python:3.11-slim" in [a for k, a in instructions() if k == "ARG"]
    names = [stage[0][1] for stage in stages()]
    assert names == ["${PYTHON_IMAGE} AS build", "${PYTHON_IMAGE} AS runtime"]


def test_build_stage_uses_uv_frozen() -> None:
    build = " ".join(a for k, a in stages()[0] if k in {"RUN", "ENV"})
    assert re.search(r"pip install [^&]*\"?uv==", build)
    assert "uv sync --frozen --no-dev --all-packages" in build
    assert "UV_PROJECT_ENVIRONMENT=/app/.venv" in build


def test_final_stage_is_non_root_and_carries_only_the_venv() -> None:
    final = stages()[-1]
    users = [a for k, a in final if k == "USER"]
    assert users
    assert users[-1].split(":")[0] == "10001"
    copies = [a for k, a in final if k == "COPY"]
    assert copies == ["--from=build /app/.venv /app/.venv"]
    env = " ".join(a for k, a in final if k == "ENV")
    assert "PATH=/app/.venv/bin:" in env
    assert "HUIBAO_HTTP_HOST=0.0.0.0" in env
    # so the image carries no admin token: whoever runs it must give one (or it refuses)
    assert "HUIBAO_ADMIN_TOKEN" not in env
    assert "useradd" in " ".join(a for k, a in final if k == "RUN")
    assert "--uid 10001" in " ".join(a for k, a in final if k == "RUN")


def test_manifests_copied_are_the_workspace_members() -> None:
    """The dependency layer copies every member's pyproject.toml (and nothing else)."""
    tool = workspace()["tool"]
    assert isinstance(tool, dict)
    members = set(tool["uv"]["workspace"]["members"])
    copied = set()
    for keyword, args in stages()[0]:
        match = (
            re.fullmatch(r"(\S+)/pyproject\.toml \1/pyproject\.toml", args)
            if keyword == "COPY"
            else None
        )
        if match:
            copied.add(match.group(1))
    assert copied == members
    sources = [args.split()[0] for keyword, args in stages()[0] if keyword == "COPY"]
    for source in sources:
        if source == "uv.lock":
            continue  # see test_lock_file_exists
        for part in source.split():
            assert (ROOT / part.rstrip("/")).exists(), f"COPY source {part} does not exist"


def test_lock_file_exists() -> None:
    """uv.lock is committed and locks every workspace member (the image builds from it)."""
    lock_file = ROOT / "uv.lock"
    assert lock_file.is_file(), "uv.lock is missing: `uv lock` at the workspace root"
    lock = tomllib.loads(lock_file.read_text(encoding="utf-8"))
    tool = workspace()["tool"]
    assert isinstance(tool, dict)
    editable = {
        p["source"]["editable"]: p["name"]
        for p in lock["package"]
        if "editable" in p.get("source", {})
    }
    members = tool["uv"]["workspace"]["members"]
    names = {
        m: tomllib.loads((ROOT / m / "pyproject.toml").read_text(encoding="utf-8"))["project"][
            "name"
        ]
        for m in members
    }
    assert editable == names, "uv.lock does not lock the workspace members: run `uv lock`"
    assert set(lock["manifest"]["members"]) == {*names.values(), "huibao-workspace"}


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_console_scripts_exist(service: str) -> None:
    script = SERVICES[service][0]
    pyproject = ROOT / "services" / service / "pyproject.toml"
    scripts = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["scripts"]
    assert script in scripts, f"{pyproject} does not declare {script}"


def test_dockerignore() -> None:
    patterns = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {
        ".venv",
        ".git",
        "**/__pycache__",
        ".pytest_cache",
        ".mypy_cache",
        ".ruff_cache",
        "tests/output",
    } <= patterns
    needed = {"pyproject.toml", "uv.lock", "contracts", "libs", "services", "stack"}
    assert not needed & patterns, "the build needs these"
    assert not any(Path(p).parts[0] in needed for p in patterns if not p.startswith("**"))
