"""deploy/k8s: every overlay renders, every resource validates, and the wiring holds."""

from __future__ import annotations

import copy
import importlib
import json
import re
import warnings
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pydantic
import pytest
import yaml
from deploy_support import (
    CONTRACT_ENV,
    DEPLOY,
    KUBERNETES_VERSION,
    OVERLAYS,
    REQUIRED_ENV,
    SCHEDULER_ENV,
    SERVICES,
    TOPICS,
    by_kind,
    load_yaml,
)

Render = Callable[[str], list[dict[str, Any]]]
CRD_SCHEMAS = DEPLOY / "schemas" / "crds"
KAFKA_CLUSTER = "huibao"
# prometheus-operator kinds are checked with the pydantic models that the PyPI package
# cloudcoil-models-prometheus-operator generates from that operator's CRDs.
PROMETHEUS_OPERATOR_GROUP = "monitoring.coreos.com"
PROMETHEUS_OPERATOR_MODELS = "cloudcoil.models.prometheus_operator"


def crd_schema_path(resource: dict[str, Any]) -> Path:
    """deploy/schemas/crds/<group>/<version>/<kind>.json"""
    group, _, version = str(resource["apiVersion"]).rpartition("/")
    kind = str(resource["kind"]).lower()
    return CRD_SCHEMAS / group / version / f"{kind}.json"


@cache
def crd_validator(path: Path) -> jsonschema.protocols.Validator:
    schema = json.loads(path.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def is_custom(resource: dict[str, Any]) -> bool:
    """Core Kubernetes API groups have no dot (apps/v1, v1, policy/v1, autoscaling/v2)."""
    group = resource["apiVersion"].rpartition("/")[0]
    return "." in group and not group.endswith(".k8s.io")


def _differences(given: Any, kept: Any, path: str) -> list[str]:
    """Where the model's dump `kept` differs from the input `given`: fields the model does
    not know (pydantic drops them) and values it converted."""
    if isinstance(given, dict) and isinstance(kept, dict):
        found = [f"{path}/{key}: not a field of the CRD" for key in given if key not in kept]
        for key in given.keys() & kept.keys():
            found += _differences(given[key], kept[key], f"{path}/{key}")
        return found
    if isinstance(given, list) and isinstance(kept, list) and len(given) == len(kept):
        return [
            message
            for index, (item, kept_item) in enumerate(zip(given, kept, strict=True))
            for message in _differences(item, kept_item, f"{path}/{index}")
        ]
    if given != kept or type(given) is not type(kept):
        return [f"{path}: {given!r} is read as {kept!r}"]
    return []


def prometheus_operator_errors(resource: dict[str, Any]) -> list[str]:
    """Validate with the cloudcoil model of the kind: its types, enums, patterns and required
    fields, and (strict, like the API server's field validation) no unknown field."""
    name = f"{resource['kind']}/{resource['metadata']['name']}"
    version = str(resource["apiVersion"]).rpartition("/")[2]
    try:
        module = importlib.import_module(f"{PROMETHEUS_OPERATOR_MODELS}.{version}")
    except ImportError:
        return [f"{name}: no cloudcoil model for {resource['apiVersion']}"]
    model = getattr(module, str(resource["kind"]), None)
    if not (isinstance(model, type) and issubclass(model, pydantic.BaseModel)):
        return [f"{name}: no cloudcoil model for {resource['apiVersion']} {resource['kind']}"]
    try:
        parsed = model.model_validate(resource)
    except pydantic.ValidationError as error:
        return [
            f"{name}: {'/'.join(map(str, detail['loc']))}: {detail['msg']}"
            for detail in error.errors()
        ]
    kept = parsed.model_dump(by_alias=True, exclude_unset=True, mode="json")
    return [f"{name}: {message}" for message in _differences(resource, kept, "")]


def validation_errors(resource: dict[str, Any]) -> list[str]:
    """Messages of every schema violation of one resource (empty when valid)."""
    name = f"{resource['kind']}/{resource['metadata']['name']}"
    if str(resource["apiVersion"]).startswith(f"{PROMETHEUS_OPERATOR_GROUP}/"):
        return prometheus_operator_errors(resource)
    if is_custom(resource):
        path = crd_schema_path(resource)
        if not path.is_file():
            return [f"{name}: no schema for {resource['apiVersion']} {resource['kind']} at {path}"]
        return [
            f"{name}: {'/'.join(map(str, error.absolute_path))}: {error.message}"
            for error in crd_validator(path).iter_errors(resource)
        ]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        return [f"{name}: {'/'.join(map(str, error.absolute_path))}: {error.message}"]
    except kubernetes_validate.SchemaNotFoundError as error:
        return [f"{name}: {error.message}"]
    return []


def containers(deployment: dict[str, Any]) -> list[dict[str, Any]]:
    return list(deployment["spec"]["template"]["spec"]["containers"])


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in container.get("env", [])}


def configmap_data(resources: list[dict[str, Any]], name: str) -> dict[str, str]:
    """Data of the ConfigMap a Deployment refers to (name as rendered, hash suffix included)."""
    return dict(by_kind(resources, "ConfigMap")[name].get("data", {}))


def effective_env(resources: list[dict[str, Any]], container: dict[str, Any]) -> dict[str, Any]:
    """Variable -> literal value, or the source dict for values from Secrets."""
    values: dict[str, Any] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            values.update(configmap_data(resources, source["configMapRef"]["name"]))
    for name, item in env_of(container).items():
        values[name] = item["value"] if "value" in item else item["valueFrom"]
    return values


# --- rendering and schemas -------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders(render: Render, overlay: str) -> None:
    resources = render(overlay)
    kinds = {r["kind"] for r in resources}
    assert {
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
        "ConfigMap",
        "Kafka",
        "KafkaNodePool",
        "KafkaTopic",
        "KafkaUser",
        "Cluster",
        "ServiceMonitor",
        "PrometheusRule",
        "Namespace",
    } <= kinds
    names = [(r["kind"], r["metadata"]["name"]) for r in resources]
    assert len(names) == len(set(names)), "duplicate resources"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_resource_is_valid(render: Render, overlay: str) -> None:
    """Core kinds against the Kubernetes schemas, prometheus-operator kinds against the
    cloudcoil models, Strimzi and CloudNativePG kinds against deploy/schemas/crds."""
    errors = [message for r in render(overlay) for message in validation_errors(r)]
    assert not errors, "\n".join(errors)


def test_crd_schemas_are_valid_json_schema() -> None:
    paths = sorted(CRD_SCHEMAS.rglob("*.json"))
    assert len(paths) == 5
    for path in paths:
        crd_validator(path)  # check_schema raises on a broken schema


def test_validators_reject_mistakes(render: Render) -> None:
    """A misspelt or mistyped field fails, in core and in custom resources alike."""
    resources = render("dev")
    deployment = copy.deepcopy(by_kind(resources, "Deployment")["huibao-rollup"])
    containers(deployment)[0]["livenesProbe"] = containers(deployment)[0].pop("livenessProbe")
    assert validation_errors(deployment)

    topic = copy.deepcopy(by_kind(resources, "KafkaTopic")["huibao-activity-accepted"])
    topic["spec"]["partitions"] = "6"
    assert validation_errors(topic)

    user = copy.deepcopy(by_kind(resources, "KafkaUser")["huibao-rollup"])
    user["spec"]["authorization"]["acls"][0]["operations"] = ["Reed"]
    assert validation_errors(user)

    cluster = copy.deepcopy(by_kind(resources, "Cluster")["huibao-db"])
    cluster["spec"]["instance"] = cluster["spec"].pop("instances")
    assert validation_errors(cluster)

    unknown = {"apiVersion": "example.org/v1", "kind": "Widget", "metadata": {"name": "w"}}
    assert validation_errors(unknown)


@pytest.mark.parametrize(
    ("kind", "mistake"),
    [
        ("ServiceMonitor", lambda spec: spec["endpoints"][0].update(intervall="30s")),
        ("ServiceMonitor", lambda spec: spec["endpoints"][0].update(scheme="ftp")),
        ("ServiceMonitor", lambda spec: spec["endpoints"][0].update(interval="thirty seconds")),
        ("ServiceMonitor", lambda spec: spec["endpoints"][0].update(port=8001)),
        ("ServiceMonitor", lambda spec: spec.pop("selector")),
        ("PrometheusRule", lambda spec: spec["groups"][0]["rules"][0].update(fors="2m")),
        ("PrometheusRule", lambda spec: spec["groups"][0]["rules"][0].update({"for": "2 min"})),
        ("PrometheusRule", lambda spec: spec["groups"][0].update(interval="often")),
        ("PrometheusRule", lambda spec: spec["groups"][0].pop("name")),
    ],
)
def test_prometheus_operator_models_reject_mistakes(
    render: Render, kind: str, mistake: Callable[[dict[str, Any]], Any]
) -> None:
    """The cloudcoil models refuse an unknown field, a bad enum, pattern or type, and a
    missing required field, for each prometheus-operator kind the overlays render."""
    (resource,) = by_kind(render("dev"), kind).values()
    assert not prometheus_operator_errors(resource)
    broken = copy.deepcopy(resource)
    mistake(broken["spec"])
    assert prometheus_operator_errors(broken), (kind, broken["spec"])


def test_prometheus_operator_kinds_have_no_schema_of_ours(render: Render) -> None:
    """Every prometheus-operator kind rendered is checked by a cloudcoil model, and no
    hand-written schema for that group is left in deploy/schemas."""
    kinds = {
        (r["apiVersion"], r["kind"])
        for overlay in OVERLAYS
        for r in render(overlay)
        if r["apiVersion"].startswith(f"{PROMETHEUS_OPERATOR_GROUP}/")
    }
    assert kinds == {
        ("monitoring.coreos.com/v1", "ServiceMonitor"),
        ("monitoring.coreos.com/v1", "PrometheusRule"),
    }
    assert not (CRD_SCHEMAS / PROMETHEUS_OPERATOR_GROUP).exists()
    pod_monitor = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PodMonitor",
        "metadata": {"name": "m"},
        "spec": {"selector": {}, "podMetricsEndpoints": [{"port": "http", "pth": "/m"}]},
    }
    assert validation_errors(pod_monitor), "a kind we do not render yet is checked too"
    unknown_kind = {**pod_monitor, "kind": "PodMonitr"}
    assert validation_errors(unknown_kind)


# --- the services ----------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_deployments_run_hardened(render: Render, overlay: str) -> None:
    deployments = by_kind(render(overlay), "Deployment")
    assert set(deployments) == {f"huibao-{service}" for service in SERVICES}
    for name, deployment in deployments.items():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] == 10001, name
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", name
        assert pod.get("automountServiceAccountToken") is False, name
        for container in containers(deployment):
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False, name
            assert security["readOnlyRootFilesystem"] is True, name
            assert security["capabilities"]["drop"] == ["ALL"], name
            resources = container["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]), name
            assert "memory" in resources["limits"], name
            mounts = {mount["mountPath"] for mount in container.get("volumeMounts", [])}
            assert "/tmp" in mounts, f"{name}: a read-only root needs a writable /tmp"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_deployments_command_ports_and_probes(render: Render, overlay: str) -> None:
    resources = render(overlay)
    deployments = by_kind(resources, "Deployment")
    services = by_kind(resources, "Service")
    for service, (script, port) in SERVICES.items():
        name = f"huibao-{service}"
        (container,) = containers(deployments[name])
        assert container["command"] == [script]
        assert container["ports"] == [{"name": "http", "containerPort": port, "protocol": "TCP"}]
        assert env_of(container)["HUIBAO_HTTP_PORT"]["value"] == str(port)
        for probe, path in (
            ("startupProbe", "/health/live"),
            ("livenessProbe", "/health/live"),
            ("readinessProbe", "/health/ready"),
        ):
            assert container[probe]["httpGet"] == {"path": path, "port": "http"}, (name, probe)
        (service_port,) = services[name]["spec"]["ports"]
        assert service_port["port"] == port
        assert service_port["targetPort"] == "http"
        assert (
            services[name]["spec"]["selector"]
            == deployments[name]["spec"]["selector"]["matchLabels"]
        )


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_deployments_follow_the_env_contract(render: Render, overlay: str) -> None:
    resources = render(overlay)
    for name, deployment in by_kind(resources, "Deployment").items():
        (container,) = containers(deployment)
        env = effective_env(resources, container)
        unknown = set(env) - CONTRACT_ENV
        assert not unknown, f"{name}: variables outside the contract: {sorted(unknown)}"
        required = REQUIRED_ENV | {
            "KAFKA_SASL_MECHANISM",
            "KAFKA_SASL_USERNAME",
            "KAFKA_SASL_PASSWORD",
        }
        if name == "huibao-scheduler":
            required |= SCHEDULER_ENV
        assert required <= set(env), f"{name}: missing {sorted(required - set(env))}"
        assert env["HUIBAO_HTTP_HOST"] == "0.0.0.0"
        # bound beyond loopback, a service refuses to start without a token of its own
        assert env["HUIBAO_ADMIN_TOKEN"] == {
            "secretKeyRef": {"name": "huibao-admin", "key": "token"}
        }, name
        assert env["HUIBAO_TIMEZONE"] == "Asia/Shanghai"
        assert env["HUIBAO_LOG_FORMAT"] in {"json", "console", "auto"}
        assert env["KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
        assert env["KAFKA_SASL_USERNAME"] == name, "the KafkaUser of the service"
        assert env["KAFKA_SASL_PASSWORD"] == {"secretKeyRef": {"name": name, "key": "password"}}
        if name == "huibao-scheduler":
            assert env["HUIBAO_CLOCK"] == "system"
            assert env["HUIBAO_ROLLUP_URL"] == "http://huibao-rollup:8002"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_kafka_settings_match_the_listeners(render: Render, overlay: str) -> None:
    """Bootstrap address, port and protocol agree with a listener of the Kafka resource."""
    resources = render(overlay)
    (kafka,) = by_kind(resources, "Kafka").values()
    listeners = {listener["port"]: listener for listener in kafka["spec"]["kafka"]["listeners"]}
    for name, deployment in by_kind(resources, "Deployment").items():
        (container,) = containers(deployment)
        env = effective_env(resources, container)
        host, _, port = env["KAFKA_BOOTSTRAP_SERVERS"].partition(":")
        assert host == f"{kafka['metadata']['name']}-kafka-bootstrap", name
        listener = listeners[int(port)]
        assert listener["authentication"]["type"] == "scram-sha-512"
        expected = "SASL_SSL" if listener["tls"] else "SASL_PLAINTEXT"
        assert env["KAFKA_SECURITY_PROTOCOL"] == expected, name
        if listener["tls"]:
            cafile = Path(env["KAFKA_SSL_CAFILE"])
            mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
            assert str(cafile.parent) in mounts, f"{name}: CA file not mounted"
            volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
            secret = volumes[mounts[str(cafile.parent)]["name"]]["secret"]
            assert secret["secretName"] == f"{kafka['metadata']['name']}-cluster-ca-cert"
    if overlay == "prod":
        assert any(listener["tls"] for listener in listeners.values())


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_secrets_come_from_the_operators(render: Render, overlay: str) -> None:
    """Every Secret a pod reads is rendered here, or produced by Strimzi or CloudNativePG.

    The only exception is huibao-admin in prod, created by the operator of the
    installation (docs/operations.md#secrets).
    """
    resources = render(overlay)
    produced = set(by_kind(resources, "Secret"))
    produced |= set(by_kind(resources, "KafkaUser"))  # User Operator: Secret per user
    produced |= {f"{name}-app" for name in by_kind(resources, "Cluster")}  # CNPG owner credentials
    produced |= {f"{name}-cluster-ca-cert" for name in by_kind(resources, "Kafka")}
    external = {"huibao-admin"} if overlay == "prod" else set()
    for name, deployment in by_kind(resources, "Deployment").items():
        pod = deployment["spec"]["template"]["spec"]
        referenced = {v["secret"]["secretName"] for v in pod.get("volumes", []) if "secret" in v}
        for container in pod["containers"]:
            for item in container.get("env", []):
                ref = item.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    referenced.add(ref["name"])
        missing = referenced - produced - external
        assert not missing, f"{name} reads Secrets nobody creates: {sorted(missing)}"
    if overlay == "prod":
        assert not by_kind(resources, "Secret"), "prod commits no Secret"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_database_url_is_the_cnpg_rw_service(render: Render, overlay: str) -> None:
    resources = render(overlay)
    (cluster,) = by_kind(resources, "Cluster").values()
    initdb = cluster["spec"]["bootstrap"]["initdb"]
    assert (initdb["database"], initdb["owner"]) == ("huibao", "huibao")
    for name, deployment in by_kind(resources, "Deployment").items():
        (container,) = containers(deployment)
        # CNPG's <cluster>-app Secret: uri = postgresql://huibao:...@<cluster>-rw.<ns>:5432/huibao
        assert env_of(container)["DATABASE_URL"]["valueFrom"] == {
            "secretKeyRef": {"name": f"{cluster['metadata']['name']}-app", "key": "uri"}
        }, name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_disruption_budgets_and_autoscaling(render: Render, overlay: str) -> None:
    resources = render(overlay)
    deployments = by_kind(resources, "Deployment")
    budgets = by_kind(resources, "PodDisruptionBudget")
    for name, deployment in deployments.items():
        assert budgets[name]["spec"]["selector"] == deployment["spec"]["selector"], name
    (hpa,) = by_kind(resources, "HorizontalPodAutoscaler").values()
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "huibao-rollup",
    }
    assert "replicas" not in deployments["huibao-rollup"]["spec"], "the HPA owns the replicas"
    accepted = by_kind(resources, "KafkaTopic")["huibao-activity-accepted"]
    assert hpa["spec"]["maxReplicas"] == accepted["spec"]["partitions"] == 6
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]


# --- Kafka (Strimzi) -------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_kafka_is_kraft_with_node_pools(render: Render, overlay: str) -> None:
    resources = render(overlay)
    (kafka,) = by_kind(resources, "Kafka").values()
    assert kafka["metadata"]["name"] == KAFKA_CLUSTER
    assert "zookeeper" not in kafka["spec"]
    assert kafka["spec"]["kafka"]["authorization"]["type"] == "simple"
    assert kafka["spec"]["kafka"]["config"]["auto.create.topics.enable"] is False
    roles: set[str] = set()
    for pool in by_kind(resources, "KafkaNodePool").values():
        roles |= set(pool["spec"]["roles"])
    assert roles == {"controller", "broker"}
    for kind in ("KafkaNodePool", "KafkaTopic", "KafkaUser"):
        for name, resource in by_kind(resources, kind).items():
            assert resource["metadata"]["labels"]["strimzi.io/cluster"] == KAFKA_CLUSTER, name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_topics(render: Render, overlay: str) -> None:
    resources = render(overlay)
    topics = {t["spec"]["topicName"]: t for t in by_kind(resources, "KafkaTopic").values()}
    assert {name: t["spec"]["partitions"] for name, t in topics.items()} == TOPICS
    brokers = sum(
        p["spec"]["replicas"]
        for p in by_kind(resources, "KafkaNodePool").values()
        if "broker" in p["spec"]["roles"]
    )
    for name, topic in topics.items():
        assert topic["metadata"]["name"] == name.replace(".", "-")
        replicas = topic["spec"]["replicas"]
        assert 1 <= replicas <= brokers, name
        assert topic["spec"]["config"]["min.insync.replicas"] == max(1, replicas - 1), name
    # replication comes from one place (the base's KafkaTopic patch), the same for all
    layouts = {
        (t["spec"]["replicas"], t["spec"]["config"]["min.insync.replicas"]) for t in topics.values()
    }
    assert len(layouts) == 1, layouts
    source_text = (DEPLOY / "k8s" / "base" / "kafka" / "topics.yaml").read_text(encoding="utf-8")
    for source in yaml.safe_load_all(source_text):
        assert "replicas" not in source["spec"], source["metadata"]["name"]
        assert "min.insync.replicas" not in source["spec"]["config"], source["metadata"]["name"]


def _acls(user: dict[str, Any]) -> set[tuple[str, str, str, frozenset[str]]]:
    return {
        (
            acl["resource"]["type"],
            acl["resource"]["name"],
            acl["resource"].get("patternType", "literal"),
            frozenset(acl["operations"]),
        )
        for acl in user["spec"]["authorization"]["acls"]
    }


READ = frozenset({"Read", "Describe"})
WRITE = frozenset({"Write", "Describe"})
EXPECTED_ACLS = {
    "huibao-reporting": {
        ("topic", "huibao.activity.submitted", "literal", READ),
        ("group", "huibao-reporting", "literal", READ),
        ("topic", "huibao.activity.accepted", "literal", WRITE),
        ("topic", "huibao.activity.rejected", "literal", WRITE),
        ("topic", "huibao.orgunit.changes", "literal", WRITE),
    },
    "huibao-rollup": {
        ("topic", "huibao.activity.accepted", "literal", READ),
        ("topic", "huibao.orgunit.changes", "literal", READ),
        ("topic", "huibao.activity.rejected", "literal", WRITE),
        ("group", "huibao-rollup", "prefix", READ),
    },
    "huibao-scheduler": {
        ("topic", "huibao.cycle.events", "literal", WRITE),
        ("topic", "huibao.notifications", "literal", WRITE),
        ("topic", "huibao.feedback.issued", "literal", WRITE),
    },
}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_kafka_users_have_least_privilege(render: Render, overlay: str) -> None:
    users = by_kind(render(overlay), "KafkaUser")
    assert set(users) == set(EXPECTED_ACLS)
    for name, user in users.items():
        assert user["spec"]["authentication"]["type"] == "scram-sha-512", name
        assert user["spec"]["authorization"]["type"] == "simple", name
        assert _acls(user) == EXPECTED_ACLS[name], name
        for acl in user["spec"]["authorization"]["acls"]:
            assert acl.get("type", "allow") == "allow"
            assert "All" not in acl["operations"]
            if acl["resource"]["type"] == "topic":
                assert acl["resource"]["name"] in TOPICS


def _granted(user: dict[str, Any], operation: str, topic: str) -> bool:
    """True when the user's ACLs allow `operation` on `topic`, as Kafka's simple authorizer
    decides: literal or prefixed names, the `*` wildcard, `All`, and Write/Read implying
    Describe; a deny wins."""

    def matches(acl: dict[str, Any]) -> bool:
        res = acl["resource"]
        if res["type"] != "topic":
            return False
        name, pattern = res["name"], res.get("patternType", "literal")
        if name == "*":
            return True
        return topic.startswith(name) if pattern == "prefix" else topic == name

    def covers(acl: dict[str, Any]) -> bool:
        ops = set(acl["operations"])
        if "All" in ops or operation in ops:
            return True
        return operation == "Describe" and bool(ops & {"Read", "Write", "Delete", "Alter"})

    acls = [a for a in user["spec"]["authorization"]["acls"] if matches(a) and covers(a)]
    if any(a.get("type", "allow") == "deny" for a in acls):
        return False
    return any(a.get("type", "allow") == "allow" for a in acls)


# Who may write and who may read each topic, and nothing more: the rollup applies what
# is on `accepted`, so a forged record there would change aggregates (issue 12.6).
WRITERS = {
    "huibao.activity.submitted": set(),
    "huibao.activity.accepted": {"huibao-reporting"},
    "huibao.activity.rejected": {"huibao-reporting", "huibao-rollup"},
    "huibao.orgunit.changes": {"huibao-reporting"},
    "huibao.cycle.events": {"huibao-scheduler"},
    "huibao.notifications": {"huibao-scheduler"},
    "huibao.feedback.issued": {"huibao-scheduler"},
}
READERS = {
    "huibao.activity.submitted": {"huibao-reporting"},
    "huibao.activity.accepted": {"huibao-rollup"},
    "huibao.activity.rejected": set(),
    "huibao.orgunit.changes": {"huibao-rollup"},
    "huibao.cycle.events": set(),
    "huibao.notifications": set(),
    "huibao.feedback.issued": set(),
}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_only_reporting_writes_accepted(render: Render, overlay: str) -> None:
    resources = render(overlay)
    users = by_kind(resources, "KafkaUser")
    assert set(WRITERS) == set(TOPICS)
    for topic in TOPICS:
        writers = {n for n, u in users.items() if _granted(u, "Write", topic)}
        readers = {n for n, u in users.items() if _granted(u, "Read", topic)}
        assert writers == WRITERS[topic], (overlay, topic, writers)
        assert readers == READERS[topic], (overlay, topic, readers)
        for name, user in users.items():  # no user may change or delete a topic
            for operation in ("Alter", "AlterConfigs", "Delete", "Create"):
                assert not _granted(user, operation, topic), (overlay, name, operation, topic)
    for name, user in users.items():
        kinds = {a["resource"]["type"] for a in user["spec"]["authorization"]["acls"]}
        assert kinds <= {"topic", "group"}, (name, kinds)  # no cluster or transactional ACLs
    # the ACLs bind: the cluster enforces them, authenticates every listener, and no user
    # is a super user
    kafka = by_kind(resources, "Kafka")[KAFKA_CLUSTER]["spec"]["kafka"]
    assert kafka["authorization"]["type"] == "simple"
    assert not kafka["authorization"].get("superUsers")
    assert all(listener.get("authentication") for listener in kafka["listeners"])
    assert kafka.get("config", {}).get("allow.everyone.if.no.acl.found") in (None, False)


def test_the_writers_check_finds_a_forger() -> None:
    rollup = {"spec": {"authorization": {"acls": [
        {"resource": {"type": "topic", "name": "huibao.activity.accepted"},
         "operations": ["Read", "Describe"]},
    ]}}}  # fmt: skip
    assert not _granted(rollup, "Write", "huibao.activity.accepted")
    for grant in (
        {"resource": {"type": "topic", "name": "huibao.activity.", "patternType": "prefix"},
         "operations": ["Write"]},
        {"resource": {"type": "topic", "name": "*"}, "operations": ["All"]},
    ):  # fmt: skip
        forger = copy.deepcopy(rollup)
        forger["spec"]["authorization"]["acls"].append(grant)
        assert _granted(forger, "Write", "huibao.activity.accepted"), grant


# --- monitoring --------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_service_monitor_selects_the_services(render: Render, overlay: str) -> None:
    resources = render(overlay)
    (monitor,) = by_kind(resources, "ServiceMonitor").values()
    (expression,) = monitor["spec"]["selector"]["matchExpressions"]
    selected = {
        name
        for name, service in by_kind(resources, "Service").items()
        if service["metadata"]["labels"].get(expression["key"]) in expression["values"]
    }
    assert selected == {f"huibao-{service}" for service in SERVICES}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert (endpoint["port"], endpoint["path"]) == ("http", "/metrics")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_prometheus_rule_equals_alerts_yml(render: Render, overlay: str) -> None:
    """The PrometheusRule carries exactly the groups of deploy/prometheus/alerts.yml."""
    (rule,) = by_kind(render(overlay), "PrometheusRule").values()
    alerts = load_yaml(DEPLOY / "prometheus" / "alerts.yml")
    assert rule["spec"]["groups"] == alerts["groups"], (
        "run: python deploy/scripts/sync_prometheusrule.py"
    )


def test_contracts_topics_agree() -> None:
    """contracts/src/huibao_contracts/topics.py names the same topics and partitions."""
    path = DEPLOY.parent / "contracts" / "src" / "huibao_contracts" / "topics.py"
    if not path.is_file():
        pytest.skip("contracts topics module not present")
    text = path.read_text(encoding="utf-8")
    constants = dict(re.findall(r'^([A-Z_]+): Final = "([^"]+)"', text, flags=re.MULTILINE))
    partitions = {
        constants[key]: int(value)
        for key, value in re.findall(r"^\s+([A-Z_]+): (\d+),", text, flags=re.MULTILINE)
    }
    assert partitions == TOPICS
