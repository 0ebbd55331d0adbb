"""deploy/ turns security on: Kafka authenticates every client (SASL) and authorizes every
request (ACLs, nothing allowed by default), the services log in, and sender authentication
is on in compose and in Kubernetes, as the README's local default is off."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from services.connector.settings import ConnectorSettings
from services.submission.settings import SubmissionSection, SubmissionSettings
from shared.settings import REPO_ROOT, KafkaSettings

pytestmark = pytest.mark.unit

DEPLOY = REPO_ROOT / "deploy"


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "compose" / "compose.yaml").read_text())
    return loaded


def test_the_compose_brokers_authenticate_every_listener_and_allow_nothing_by_default() -> None:
    services = compose()["services"]
    for name in ("kafka-1", "kafka-2", "kafka-3"):
        env = services[name]["environment"]
        protocols = dict(
            p.split(":") for p in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(",")
        )
        assert set(protocols.values()) == {"SASL_PLAINTEXT"}, name
        assert env["KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND"] == "false"
        assert env["KAFKA_AUTHORIZER_CLASS_NAME"].endswith("StandardAuthorizer")
        assert env["KAFKA_SUPER_USERS"] == "User:admin"
        assert "SCRAM-SHA-512" in env["KAFKA_SASL_ENABLED_MECHANISMS"]


def test_the_compose_services_log_in_and_authenticate_senders() -> None:
    services = compose()["services"]
    for name in ("submission", "validation", "aggregation", "connector"):
        env = services[name]["environment"]
        assert env["BAOCAO_KAFKA__SECURITY_PROTOCOL"] == "SASL_PLAINTEXT"
        assert env["BAOCAO_KAFKA__SASL_USERNAME"] == "baocao"
        assert env["BAOCAO_SUBMISSION__SENDER_AUTHENTICATION"] == "true"
    assert services["topics"]["depends_on"] == {
        "acls": {"condition": "service_completed_successfully"}
    }
    assert services["acls"]["environment"]["SYSTEM_USER"] == "baocao"


def test_kubernetes_turns_sender_authentication_on_and_the_local_run_leaves_it_off() -> None:
    documents = yaml.safe_load_all((DEPLOY / "k8s" / "configmap.yaml").read_text())
    (config,) = [d for d in documents if d and d["kind"] == "ConfigMap"]
    assert config["data"]["BAOCAO_SUBMISSION__SENDER_AUTHENTICATION"] == "true"
    assert config["data"]["BAOCAO_KAFKA__SECURITY_PROTOCOL"] == "SASL_SSL"
    assert SubmissionSettings().submission.sender_authentication is False


def test_the_acl_script_gives_the_system_its_own_topics_and_groups_only() -> None:
    script = (DEPLOY / "kafka" / "acls.sh").read_text()
    assert '--allow-principal "User:$SYSTEM_USER"' in script
    assert "for prefix in reports. aggregates. hub.; do" in script
    assert "--group baocao." in script
    assert "--cluster" not in script


def test_sender_authentication_on_a_plaintext_broker_is_refused_unless_acknowledged() -> None:
    plaintext = KafkaSettings(security_protocol="PLAINTEXT")
    with pytest.raises(ValidationError, match="anyone can write a source's topic"):
        SubmissionSettings(
            kafka=plaintext, submission=SubmissionSection(sender_authentication=True)
        )
    acknowledged = SubmissionSection(sender_authentication=True, unauthenticated_kafka=True)
    assert SubmissionSettings(
        kafka=plaintext, submission=acknowledged
    ).submission.sender_authentication
    for protocol in ("SASL_PLAINTEXT", "SASL_SSL"):
        kafka = KafkaSettings(security_protocol=protocol)
        SubmissionSettings(kafka=kafka, submission=SubmissionSection(sender_authentication=True))
    assert SubmissionSettings(kafka=plaintext).submission.sender_authentication is False


def test_the_deployed_settings_pass_the_start_up_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    env = compose()["x-baocao-env"]
    for name, value in env.items():
        monkeypatch.setenv(name, str(value))
    assert SubmissionSettings().kafka.security_protocol == "SASL_PLAINTEXT"
    documents = yaml.safe_load_all((DEPLOY / "k8s" / "configmap.yaml").read_text())
    (config,) = [d for d in documents if d and d["kind"] == "ConfigMap"]
    for name, value in config["data"].items():
        monkeypatch.setenv(name, str(value))
    assert SubmissionSettings().kafka.security_protocol == "SASL_SSL"


def test_the_connectors_operator_endpoints_need_a_named_operator_in_compose_and_kubernetes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = compose()["services"]["connector"]["environment"]
    digest = env["BAOCAO_CONNECTOR__OPERATORS__COMPOSE"]
    assert digest.startswith("${BAOCAO_CONNECTOR_OPERATOR_SHA256:-")
    assert digest[-65:-1] == hashlib.sha256(b"compose.connector-operator-development").hexdigest()
    for name, value in compose()["x-baocao-env"].items():
        monkeypatch.setenv(name, str(value))
    monkeypatch.setenv("BAOCAO_CONNECTOR__OPERATORS__COMPOSE", digest[-65:-1])
    assert set(ConnectorSettings().connector.operators) == {"compose"}
    documents = yaml.safe_load_all((DEPLOY / "k8s" / "connector.yaml").read_text())
    (deployment,) = [d for d in documents if d and d["kind"] == "Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    variables = {v["name"]: v for v in container["env"]}
    reference = variables["BAOCAO_CONNECTOR__OPERATORS"]["valueFrom"]
    assert reference["secretKeyRef"] == {"name": "baocao-connector-operators", "key": "operators"}


def test_with_sender_authentication_on_the_connector_does_not_start_without_an_operator(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    documents = yaml.safe_load_all((DEPLOY / "k8s" / "configmap.yaml").read_text())
    (config,) = [d for d in documents if d and d["kind"] == "ConfigMap"]
    for name, value in config["data"].items():
        monkeypatch.setenv(name, str(value))
    # Kubernetes' configuration without the operators' Secret: the start is refused.
    with pytest.raises(ValidationError, match="its operator endpoints would be open"):
        ConnectorSettings()
    monkeypatch.setenv("BAOCAO_CONNECTOR__OPERATORS", json.dumps({"nguyen-van-a": "0" * 64}))
    assert set(ConnectorSettings().connector.operators) == {"nguyen-van-a"}
