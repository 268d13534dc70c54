"""docker-compose.yml: valid against the compose-spec schema, and wired as the services expect."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_support import (
    CONTRACT_ENV,
    REQUIRED_ENV,
    ROOT,
    SCHEDULER_ENV,
    SERVICES,
    TOPICS,
    load_yaml,
)

from huibao_platform.settings import DEVELOPMENT_ADMIN_TOKEN

COMPOSE = ROOT / "docker-compose.yml"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document = load_yaml(COMPOSE)
    assert isinstance(document, dict)
    return document


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return dict(compose["services"])


def check_compose(check_jsonschema: str, path: Path) -> subprocess.CompletedProcess[str]:
    """`check-jsonschema --builtin-schema vendor.compose-spec PATH` (the compose-spec schema
    that check-jsonschema ships; nothing is fetched)."""
    return subprocess.run(
        [check_jsonschema, "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_matches_the_compose_spec(check_jsonschema: str) -> None:
    result = check_compose(check_jsonschema, COMPOSE)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok -- validation done" in result.stdout


def test_the_compose_spec_check_finds_mistakes(check_jsonschema: str, tmp_path: Path) -> None:
    """The same check refuses a misspelt key and a mistyped value."""
    for key, value in (("restartt", "always"), ("ports", "8001:8001")):
        document = load_yaml(COMPOSE)
        document["services"]["rollup"][key] = value
        broken = tmp_path / f"{key}.yml"
        broken.write_text(yaml.safe_dump(document), encoding="utf-8")
        result = check_compose(check_jsonschema, broken)
        assert result.returncode != 0, key
        assert "rollup" in result.stdout + result.stderr, key


def test_every_service_has_an_image_or_build_and_a_healthcheck(
    services: dict[str, dict[str, Any]],
) -> None:
    assert set(services) == {"kafka", "kafka-init", "postgres", "prometheus", "grafana", *SERVICES}
    for name, service in services.items():
        assert "image" in service or "build" in service, name
        if name == "kafka-init":
            assert service["restart"] == "no", "one-shot"
            continue
        test = service["healthcheck"]["test"]
        assert test, name
        assert test[0] in {"CMD", "CMD-SHELL"}, name


def test_images_are_pinned(services: dict[str, dict[str, Any]]) -> None:
    assert services["kafka"]["image"] == "apache/kafka:3.9.1"
    assert services["kafka-init"]["image"] == "apache/kafka:3.9.1"
    assert services["postgres"]["image"] == "postgres:16"
    for name in ("prometheus", "grafana"):
        image = services[name]["image"]
        assert re.fullmatch(r"(prom/prometheus|grafana/grafana):v?\d+\.\d+\.\d+", image), image


def test_grafana_is_pinned_to_a_patch_release(services: dict[str, dict[str, Any]]) -> None:
    """A full x.y.z tag of the 12 line (12.4 is its last minor, with extended support), not a
    floating `12`, `12.4`, `latest` or a `.0` release of a line whose fixes came later."""
    image = services["grafana"]["image"]
    match = re.fullmatch(r"grafana/grafana:(\d+)\.(\d+)\.(\d+)", image)
    assert match, f"{image}: not pinned to a patch release"
    major, minor, patch = map(int, match.groups())
    assert (major, minor) == (12, 4), image
    assert patch >= 5, f"{image}: older than the 12.4.5 fixes"


def test_depends_on_names_existing_services(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for dependency, rule in service.get("depends_on", {}).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            assert dependency != name
            if dependency == "kafka-init":
                assert rule["condition"] == "service_completed_successfully"
            elif "healthcheck" in services[dependency] and dependency not in {"prometheus"}:
                assert rule["condition"] == "service_healthy", (name, dependency)
    for name in SERVICES:
        assert {"postgres", "kafka", "kafka-init"} <= set(services[name]["depends_on"]), name
    assert "rollup" in services["scheduler"]["depends_on"]


def test_kafka_is_single_node_kraft(services: dict[str, dict[str, Any]]) -> None:
    env = services["kafka"]["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{env['KAFKA_NODE_ID']}@kafka:9093"
    assert "ZOOKEEPER" not in " ".join(env)
    assert str(env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"]).lower() == "false"
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", env["CLUSTER_ID"]), "base64url of 16 bytes"


def test_kafka_init_creates_every_topic(services: dict[str, dict[str, Any]]) -> None:
    script = "\n".join(services["kafka-init"]["command"])
    assert "/opt/kafka/bin/kafka-topics.sh" in script
    assert "--create --if-not-exists" in script
    created = {
        topic: int(partitions)
        for topic, partitions in re.findall(r"^\s*create (\S+) (\d+)\s*$", script, re.MULTILINE)
    }
    assert created == TOPICS


def test_services_follow_the_env_contract(services: dict[str, dict[str, Any]]) -> None:
    for name, (script, port) in SERVICES.items():
        service = services[name]
        env = {key: str(value) for key, value in service["environment"].items()}
        unknown = set(env) - CONTRACT_ENV
        assert not unknown, f"{name}: variables outside the contract: {sorted(unknown)}"
        required = REQUIRED_ENV | (SCHEDULER_ENV if name == "scheduler" else set())
        assert required <= set(env), f"{name}: missing {sorted(required - set(env))}"
        assert env["HUIBAO_HTTP_PORT"] == str(port)
        assert env["HUIBAO_HTTP_HOST"] == "0.0.0.0"
        # bound beyond loopback, a service refuses to start without a token of its own
        assert env["HUIBAO_ADMIN_TOKEN"].startswith("${HUIBAO_ADMIN_TOKEN:-"), name
        assert DEVELOPMENT_ADMIN_TOKEN not in env["HUIBAO_ADMIN_TOKEN"], name
        assert env["HUIBAO_TIMEZONE"] == "Asia/Shanghai"
        assert env["DATABASE_URL"].startswith("postgresql://")
        assert "@postgres:5432/" in env["DATABASE_URL"]
        assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
        assert env["KAFKA_SECURITY_PROTOCOL"] == "PLAINTEXT"
        assert service["command"] == [script]
        assert service["build"]["dockerfile"] == "Dockerfile"
        assert f":{port}/health/ready" in " ".join(service["healthcheck"]["test"])
        assert any(str(mapping).endswith(f":{port}") for mapping in service["ports"])
    assert services["scheduler"]["environment"]["HUIBAO_ROLLUP_URL"] == "http://rollup:8002"
    assert services["scheduler"]["environment"]["HUIBAO_CLOCK"] == "system"


def test_bind_mounts_exist(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = str(volume).split(":", 1)[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name}: {source} does not exist"


def test_prometheus_and_grafana_mounts(services: dict[str, dict[str, Any]]) -> None:
    assert "./deploy/prometheus:/etc/prometheus:ro" in services["prometheus"]["volumes"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in services["prometheus"]["command"]
    volumes = services["grafana"]["volumes"]
    assert "./deploy/grafana/provisioning:/etc/grafana/provisioning:ro" in volumes
    assert "./deploy/grafana/dashboards:/var/lib/grafana/dashboards:ro" in volumes
