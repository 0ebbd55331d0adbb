"""deploy/ checked without an engine or a cluster: the Dockerfile by hadolint, the compose
file by the compose-spec schema (and `docker compose config` where the plugin exists), by
the names its services refer to and by its brokers' listeners, the Kubernetes manifests by
the API's JSON schemas, strictly (and the KEDA overlay by `kubectl kustomize` where kubectl
exists); and all of them against the code (commands, ports,
consumer groups, topics, the Kafka version). That Kafka itself accepts each compose
broker's configuration is tests/integration/test_compose_brokers.py."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from devstack.kafka import KAFKA_VERSION
from shared.contracts import ACCEPTED, AGGREGATES, INBOUND, OUTCOMES, RECEIVED
from shared.settings import REPO_ROOT, KafkaSettings
from shared.source_topics import inbound_pattern, inbound_topic
from tests.compose_file import (
    BROKERS,
    broker_properties,
    interpolate,
    listener_problems,
    load_compose,
    property_name,
    reference_problems,
)

DEPLOY = REPO_ROOT / "deploy"
K8S = DEPLOY / "k8s"
COMPOSE = DEPLOY / "compose" / "compose.yaml"
ENTRYPOINT = DEPLOY / "image" / "entrypoint.sh"
KUBERNETES_VERSION = "1.33.0"
COMMANDS = {"submission", "validation", "aggregation", "connector", "hub_simulator"}
# What KEDA must measure: each service's consumer groups and the topic each reads, None
# for every topic of the group (submission's by pattern, services/submission/handlers.py).
LAG: dict[str, dict[str, str | None]] = {
    "submission": {"submission": None, "submission-verdicts": OUTCOMES.name},
    "validation": {"validation": RECEIVED.name},
    "aggregation": {"aggregation": ACCEPTED.name},
    "connector": {"connector": AGGREGATES.name},
}
KEDA = DEPLOY / "k8s-keda"
SCALING = K8S / "scaling"
NOT_KUBERNETES = {"Component", "Kustomization", "ScaledObject", "TriggerAuthentication"}


def tool(name: str) -> str:
    """A validator installed in the venv by scripts/install (pinned in pyproject.toml)."""
    found = shutil.which(name, path=str(Path(sys.executable).parent))
    assert found, f"{name} is not installed: run scripts/install"
    return found


def manifests() -> Iterator[tuple[Path, dict[str, Any]]]:
    for path in sorted(K8S.rglob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                yield path, document


def of_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for _, d in manifests() if d["kind"] == kind}


def test_the_dockerfile_passes_hadolint() -> None:
    result = subprocess.run(
        [tool("hadolint"), "--failure-threshold", "info", str(REPO_ROOT / "Dockerfile")],
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr


def test_the_image_copies_what_exists_and_runs_as_a_user_with_a_health_check() -> None:
    text = (REPO_ROOT / "Dockerfile").read_text()
    copied = [line.split()[1] for line in text.splitlines() if line.startswith("COPY ")]

    for source in (s for s in copied if not s.startswith("--")):
        assert (REPO_ROOT / source).exists(), source
    assert "ARG PYTHON_IMAGE=python:3.11." in text  # the project's Python, a pinned patch
    assert "\nUSER ${UID}:${UID}\n" in text
    assert "HEALTHCHECK" in text
    assert "127.0.0.1:8080/healthz" in text


def run_entrypoint(*arguments: str) -> subprocess.CompletedProcess[str]:
    # The venv's python first on PATH, as /opt/baocao/bin is in the image.
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    return subprocess.run(
        ["sh", str(ENTRYPOINT), *arguments],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_the_entrypoint_runs_topic_provisioning_by_name() -> None:
    result = run_entrypoint("provision-topics", "--help")

    assert result.returncode == 0, result.stderr
    assert "python -m services.topics" in result.stdout
    assert "--dry-run" in result.stdout


def test_the_entrypoint_refuses_an_unknown_command_and_names_the_valid_ones() -> None:
    result = run_entrypoint("reporting")

    assert result.returncode == 64
    assert "unknown command 'reporting'" in result.stderr
    for command in COMMANDS:
        assert command in result.stderr


def test_every_service_the_entrypoint_names_is_a_runnable_module() -> None:
    text = ENTRYPOINT.read_text()

    for command in COMMANDS:
        assert command in text
        assert (REPO_ROOT / "services" / command / "__main__.py").exists()


def test_the_compose_file_matches_the_compose_specification() -> None:
    result = subprocess.run(
        [tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr


def test_docker_compose_accepts_the_file_where_the_plugin_exists() -> None:
    docker = shutil.which("docker")
    plugin = docker and subprocess.run(
        [docker, "compose", "version"], capture_output=True, check=False
    )
    if not plugin or plugin.returncode != 0:
        pytest.skip("the docker compose plugin is not installed: `docker compose config` not run")
    result = subprocess.run(
        [docker, "compose", "-f", str(COMPOSE), "config", "--quiet"],  # type: ignore[list-item]
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_compose_runs_every_service_on_the_kafka_version_of_the_local_run() -> None:
    services = load_compose()["services"]
    kafka = [s for name, s in services.items() if name.startswith("kafka-")]
    commands = {s["command"][0] for s in services.values() if "command" in s}

    assert len(kafka) == 3
    assert {s["image"] for s in kafka} == {f"apache/kafka:{KAFKA_VERSION}"}
    assert commands >= COMMANDS | {"provision-topics"}
    environment = services["aggregation"]["environment"]
    assert environment["BAOCAO_KAFKA__REPLICATION_FACTOR"] == "3"
    assert environment["BAOCAO_KAFKA__MIN_INSYNC_REPLICAS"] == "2"
    assert services["aggregation"]["depends_on"]["topics"] == {
        "condition": "service_completed_successfully"
    }


def test_every_name_a_compose_service_refers_to_is_declared() -> None:
    assert reference_problems(load_compose(), COMPOSE.parent) == []


def test_a_compose_reference_to_nothing_is_reported() -> None:
    broken = load_compose()
    services = broken["services"]
    services["grafana"]["depends_on"] = ["prometheus", "loki"]
    services["postgres"]["volumes"] = ["pgdata:/var/lib/postgresql"]
    services["acls"]["configs"] = [{"source": "kafka-admins", "target": "/etc/admin"}]
    services["prometheus"]["volumes"].append("./rules.yml:/etc/rules.yml:ro")

    assert reference_problems(broken, COMPOSE.parent) == [
        "postgres mounts volume pgdata, which is not declared",
        "acls uses config kafka-admins, which is not declared",
        "prometheus mounts ./rules.yml, which does not exist",
        "grafana depends on loki, which is not a service",
    ]


@pytest.mark.parametrize("broker", BROKERS)
def test_each_compose_broker_advertises_and_names_only_its_own_listeners(broker: str) -> None:
    assert listener_problems(broker_properties(load_compose(), broker)) == []


def test_a_listener_advertised_under_another_name_is_reported() -> None:
    properties = broker_properties(load_compose(), "kafka-1")
    properties["advertised.listeners"] = "PLAINTEXT://kafka-1:9092,HOST://localhost:19092"
    properties["inter.broker.listener.name"] = "BROKER"

    assert listener_problems(properties) == [
        "advertised listener PLAINTEXT is not among the listeners",
        "advertised listener PLAINTEXT has no security protocol",
        "listener BROKER is named but not among the listeners",
    ]


@pytest.mark.parametrize(
    ("variable", "name"),
    [
        ("KAFKA_LOG_DIRS", "log.dirs"),
        ("KAFKA_NODE_ID", "node.id"),
        (
            "KAFKA_LISTENER_NAME_HOST_SCRAM___SHA___512_SASL_JAAS_CONFIG",
            "listener.name.host.scram-sha-512.sasl.jaas.config",
        ),
        ("KAFKA_CONFLUENT__LICENSE_TOPIC", "confluent_license.topic"),
    ],
)
def test_kafka_variables_become_the_property_names_the_image_writes(
    variable: str, name: str
) -> None:
    assert property_name(variable) == name


def test_compose_interpolation_takes_each_default_and_refuses_a_variable_without_one() -> None:
    assert interpolate('password="${KAFKA_ADMIN_PASSWORD:-admin-dev}";') == 'password="admin-dev";'
    with pytest.raises(ValueError, match="KAFKA_ADMIN_PASSWORD"):
        interpolate("${KAFKA_ADMIN_PASSWORD}")


@pytest.mark.parametrize(
    ("path", "document"),
    [
        pytest.param(p, d, id=f"{p.relative_to(K8S)}:{d['kind']}/{d['metadata']['name']}")
        for p, d in manifests()
        if d["kind"] not in NOT_KUBERNETES
    ],
)
def test_every_kubernetes_manifest_matches_the_api_schema_strictly(
    path: Path, document: dict[str, Any]
) -> None:
    try:
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        where = ".".join(str(step) for step in error.path)
        pytest.fail(f"{path.name}: {document['kind']} at {where}: {error.message}")


def test_a_misspelled_field_is_caught_by_the_strict_schema() -> None:
    deployment = of_kind("Deployment")["validation"]
    broken = yaml.safe_load(yaml.safe_dump(deployment))
    container = broken["spec"]["template"]["spec"]["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")

    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_the_kustomization_lists_every_base_manifest() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    base = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}

    assert set(kustomization["resources"]) == base


def test_every_service_deployment_is_probed_bounded_and_protected() -> None:
    deployments = of_kind("Deployment")
    budgets = {
        d["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"]
        for d in of_kind("PodDisruptionBudget").values()
    }
    services = {
        d["spec"]["selector"]["app.kubernetes.io/name"] for d in of_kind("Service").values()
    }

    for name in LAG:
        deployment = deployments[name]
        pod = deployment["spec"]["template"]["spec"]
        container = pod["containers"][0]
        assert container["args"] == [name]
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
        assert container["ports"][0]["containerPort"] == 8080
        assert {"cpu", "memory"} <= set(container["resources"]["requests"])
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert deployment["spec"]["replicas"] >= 2
        assert name in budgets
        assert name in services
        # Secrets only by reference: no literal secret value in a manifest.
        for variable in container.get("env", []):
            if "PASSWORD" in variable["name"] or "SECRET" in variable["name"]:
                assert "secretKeyRef" in variable["valueFrom"], variable["name"]
            if variable["name"].endswith("DSN"):
                assert "secretKeyRef" in variable["valueFrom"], variable["name"]


def test_production_settings_replicate_three_times_with_two_in_sync() -> None:
    config = of_kind("ConfigMap")["baocao-config"]["data"]

    assert config["BAOCAO_KAFKA__REPLICATION_FACTOR"] == "3"
    assert config["BAOCAO_KAFKA__MIN_INSYNC_REPLICAS"] == "2"
    assert len(config["BAOCAO_KAFKA__BOOTSTRAP_SERVERS"].split(",")) >= 3
    assert not any("PASSWORD" in key or "SECRET" in key for key in config)


def kafka_triggers(scaler: dict[str, Any]) -> dict[str, str | None]:
    """consumer group → the topic its lag is measured on (None: all the group's topics)."""
    triggers = [t for t in scaler["spec"]["triggers"] if t["type"] == "kafka"]
    return {t["metadata"]["consumerGroup"]: t["metadata"].get("topic") for t in triggers}


def test_lag_scaling_measures_every_group_of_each_service_on_what_it_reads() -> None:
    scaled = of_kind("ScaledObject")
    kafka = KafkaSettings()

    assert set(scaled) == set(LAG)
    for name, groups in LAG.items():
        expected = {kafka.group(g): t and kafka.topic(t) for g, t in groups.items()}
        assert kafka_triggers(scaled[name]) == expected, name


def test_submission_lag_is_measured_on_the_per_source_topics_it_reads() -> None:
    config = of_kind("ConfigMap")["baocao-config"]["data"]
    kafka = KafkaSettings()
    pattern = inbound_pattern(kafka)

    # With sender authentication on, the group reads only the sources' own topics: a
    # trigger on the shared one would see no lag however many reports wait.
    assert config["BAOCAO_SUBMISSION__SENDER_AUTHENTICATION"] == "true"
    assert re.match(pattern, kafka.topic(INBOUND.name)) is None
    assert re.match(pattern, inbound_topic(kafka, "so-y-te"))
    # KEDA's Kafka scaler without a topic sums the lag over every topic of the group.
    assert kafka_triggers(of_kind("ScaledObject")["submission"])[kafka.group("submission")] is None


def test_lag_scaling_stays_within_the_partitions_and_above_the_base_replicas() -> None:
    scaled = of_kind("ScaledObject")
    deployments = of_kind("Deployment")
    partitions = int(of_kind("ConfigMap")["baocao-config"]["data"]["BAOCAO_KAFKA__PARTITIONS"])
    authentications = of_kind("TriggerAuthentication")

    for scaler in scaled.values():
        spec = scaler["spec"]
        deployment = deployments[spec["scaleTargetRef"]["name"]]
        assert deployment["spec"]["replicas"] == spec["minReplicaCount"]
        assert 2 <= spec["minReplicaCount"] <= spec["maxReplicaCount"] <= partitions
        for trigger in (t for t in spec["triggers"] if t["type"] == "kafka"):
            assert trigger["authenticationRef"]["name"] in authentications
            assert trigger["metadata"]["allowIdleConsumers"] == "false"


def test_with_keda_the_deployments_leave_their_replica_count_to_it() -> None:
    component = yaml.safe_load((SCALING / "kustomization.yaml").read_text())
    overlay = yaml.safe_load((KEDA / "kustomization.yaml").read_text())
    (patch,) = component["patches"]
    key, _, value = patch["target"]["labelSelector"].partition("=")
    targets = {s["spec"]["scaleTargetRef"]["name"] for s in of_kind("ScaledObject").values()}
    base = yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"]
    deployments = {
        d["metadata"]["name"]: d
        for name in base
        for d in yaml.safe_load_all((K8S / name).read_text())
        if d and d["kind"] == "Deployment"
    }

    assert overlay["resources"] == ["../k8s"]
    assert overlay["components"] == ["../k8s/scaling"]
    assert component["resources"] == ["keda.yaml"]
    assert patch["target"]["kind"] == "Deployment"
    assert yaml.safe_load(patch["patch"]) == [{"op": "remove", "path": "/spec/replicas"}]
    assert set(deployments) == targets
    for name, deployment in deployments.items():
        assert deployment["metadata"]["labels"].get(key) == value, name


def test_kustomize_builds_the_keda_overlay_where_kubectl_exists() -> None:
    kubectl = shutil.which("kubectl")
    if not kubectl:
        pytest.skip("kubectl is not installed: `kubectl kustomize deploy/k8s-keda` not run")

    def build(folder: Path) -> dict[tuple[str, str], dict[str, Any]]:
        result = subprocess.run(
            [kubectl, "kustomize", str(folder)], capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, result.stderr
        built = [d for d in yaml.safe_load_all(result.stdout) if d]
        return {(d["kind"], d["metadata"]["name"]): d for d in built}

    base, scaled = build(K8S), build(KEDA)

    assert set(scaled) - set(base) == {("ScaledObject", n) for n in LAG} | {
        ("TriggerAuthentication", "baocao-kafka")
    }
    for key, document in base.items():
        if key[0] == "Deployment":
            assert "replicas" not in scaled[key]["spec"], key
            document["spec"].pop("replicas")
        assert scaled[key] == document, key


def relabel(rules: list[dict[str, Any]], labels: dict[str, str]) -> dict[str, str] | None:
    """Prometheus's `keep` and `replace` relabelling (the actions the k8s scrape config
    uses) applied to a target's labels; None when the target is dropped."""
    labels = dict(labels)
    for rule in rules:
        value = rule.get("separator", ";").join(labels.get(s, "") for s in rule["source_labels"])
        match = re.fullmatch(rule.get("regex", "(.*)"), value)
        action = rule.get("action", "replace")
        if action == "keep":
            if match is None:
                return None
        elif action == "replace":
            if match is not None:
                replacement = re.sub(r"\$(\d+)", r"\\\1", rule.get("replacement", "$1"))
                labels[rule["target_label"]] = match.expand(replacement)
        else:
            raise AssertionError(f"relabel action {action} is not simulated here")
    return labels


def test_the_k8s_scrape_config_names_each_job_after_the_service_the_alerts_name() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.k8s.yml").read_text())
    (scrape,) = config["scrape_configs"]
    rules = scrape["relabel_configs"]
    alerts = (DEPLOY / "prometheus" / "rules" / "alerts.yml").read_text()
    (alerted,) = re.findall(r'up\{job=~"([^"]+)"\}', alerts)
    jobs = set()
    for name, deployment in of_kind("Deployment").items():
        template = deployment["spec"]["template"]["metadata"]
        meta = {
            "__address__": "10.0.0.7",
            "__meta_kubernetes_pod_name": f"{name}-7d9c5-x2x4q",
            **{
                "__meta_kubernetes_pod_label_" + re.sub(r"\W", "_", key): value
                for key, value in template["labels"].items()
            },
            **{
                "__meta_kubernetes_pod_annotation_" + re.sub(r"\W", "_", key): value
                for key, value in template.get("annotations", {}).items()
            },
        }
        target = relabel(rules, meta)
        assert target is not None, f"{name}'s pods are not scraped"
        command = deployment["spec"]["template"]["spec"]["containers"][0]["args"][0]
        assert target["job"] == command
        assert target["__address__"] == "10.0.0.7:8080"
        assert target["__metrics_path__"] == "/metrics"
        jobs.add(target["job"])
    assert jobs == set(alerted.split("|"))
    stranger = {
        "__address__": "10.0.0.9",
        "__meta_kubernetes_pod_label_app_kubernetes_io_name": "x",
    }
    assert relabel(rules, stranger) is None
