"""A SASL/SCRAM-SHA-512 broker with ACLs for a test (devstack/secure_kafka.py), started on
free ports with its state under the test's folder, and clients that log in to it; with
`tls`, it listens for SASL_SSL too, and `over_tls()` gives the same clients over TLS."""

from __future__ import annotations

import dataclasses
import os
import secrets
import ssl
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from pydantic import SecretStr

from devstack.paths import Layout
from devstack.secure_kafka import ADMIN_USER, MECHANISM, SecureKafka, SecureKafkaSpec
from shared.settings import KafkaSettings
from tests.system.cluster import free_ports


@dataclass(frozen=True)
class SecureBroker:
    bootstrap: str
    passwords: dict[str, str]  # user → password, the admin included
    protocol: Literal["SASL_PLAINTEXT", "SASL_SSL"] = "SASL_PLAINTEXT"
    tls_bootstrap: str | None = None  # the SASL_SSL listener, when there is one
    ca_file: Path | None = None  # the CA its certificate is signed by

    def over_tls(self) -> SecureBroker:
        """The same broker through its SASL_SSL listener, trusting its CA."""
        assert self.tls_bootstrap is not None, "started without tls"
        return dataclasses.replace(self, bootstrap=self.tls_bootstrap, protocol="SASL_SSL")

    def options(self, user: str) -> dict[str, Any]:
        options: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap,
            "security_protocol": self.protocol,
            "sasl_mechanism": MECHANISM,
            "sasl_plain_username": user,
            "sasl_plain_password": self.passwords[user],
        }
        if self.protocol == "SASL_SSL":
            options["ssl_context"] = ssl.create_default_context(cafile=str(self.ca_file))
        return options

    def settings(self, namespace: str, user: str = ADMIN_USER, **fields: Any) -> KafkaSettings:
        return KafkaSettings(
            bootstrap_servers=self.bootstrap,
            namespace=namespace,
            partitions=3,
            security_protocol=self.protocol,
            sasl_mechanism="SCRAM-SHA-512",
            sasl_username=user,
            sasl_password=SecretStr(self.passwords[user]),
            ssl_cafile=self.ca_file if self.protocol == "SASL_SSL" else None,
            **fields,
        )

    def env(self, user: str = ADMIN_USER) -> dict[str, str]:
        env = {
            "BAOCAO_KAFKA__BOOTSTRAP_SERVERS": self.bootstrap,
            "BAOCAO_KAFKA__SECURITY_PROTOCOL": self.protocol,
            "BAOCAO_KAFKA__SASL_MECHANISM": MECHANISM,
            "BAOCAO_KAFKA__SASL_USERNAME": user,
            "BAOCAO_KAFKA__SASL_PASSWORD": self.passwords[user],
        }
        if self.protocol == "SASL_SSL":
            env["BAOCAO_KAFKA__SSL_CAFILE"] = str(self.ca_file)
        return env

    def producer(self, user: str) -> AIOKafkaProducer:
        return AIOKafkaProducer(
            **self.options(user), acks="all", enable_idempotence=True, request_timeout_ms=10_000
        )

    def consumer(self, user: str, topic: str, group: str) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            topic,
            **self.options(user),
            group_id=group,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )


def _in_thread(call: Any) -> Any:
    """devstack runs its own event loop while it waits: off the test's loop."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(call).result()


@contextmanager
def secure_broker(state: Path, users: list[str], *, tls: bool = False) -> Iterator[SecureBroker]:
    """With `tls`, a SASL_SSL listener too, its certificates made at start."""
    passwords = {name: secrets.token_urlsafe(18) for name in [ADMIN_USER, *users]}
    broker_port, controller_port, tls_port = free_ports(3)
    spec = SecureKafkaSpec(
        passwords[ADMIN_USER],
        {u: passwords[u] for u in users},
        broker_port=broker_port,
        controller_port=controller_port,
        tls_port=tls_port if tls else None,
    )
    kafka = SecureKafka(Layout.from_env(os.environ), state, spec)
    try:
        _in_thread(kafka.start)
        ca_file = kafka.tls.ca if kafka.tls is not None else None
        yield SecureBroker(
            spec.bootstrap, passwords, tls_bootstrap=spec.tls_bootstrap, ca_file=ca_file
        )
    finally:
        _in_thread(kafka.stop)
