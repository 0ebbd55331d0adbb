"""A SASL/SCRAM-SHA-512 broker with ACLs for a test (devstack/secure_kafka.py), started on
free ports with its state under the test's folder, and clients that log in to it."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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

    def options(self, user: str) -> dict[str, Any]:
        return {
            "bootstrap_servers": self.bootstrap,
            "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": MECHANISM,
            "sasl_plain_username": user,
            "sasl_plain_password": self.passwords[user],
        }

    def settings(self, namespace: str, user: str = ADMIN_USER, **fields: Any) -> KafkaSettings:
        return KafkaSettings(
            bootstrap_servers=self.bootstrap,
            namespace=namespace,
            partitions=3,
            security_protocol="SASL_PLAINTEXT",
            sasl_mechanism="SCRAM-SHA-512",
            sasl_username=user,
            sasl_password=SecretStr(self.passwords[user]),
            **fields,
        )

    def env(self, user: str = ADMIN_USER) -> dict[str, str]:
        return {
            "BAOCAO_KAFKA__BOOTSTRAP_SERVERS": self.bootstrap,
            "BAOCAO_KAFKA__SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "BAOCAO_KAFKA__SASL_MECHANISM": MECHANISM,
            "BAOCAO_KAFKA__SASL_USERNAME": user,
            "BAOCAO_KAFKA__SASL_PASSWORD": self.passwords[user],
        }

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
def secure_broker(state: Path, users: list[str]) -> Iterator[SecureBroker]:
    passwords = {name: secrets.token_urlsafe(18) for name in [ADMIN_USER, *users]}
    broker_port, controller_port = free_ports(2)
    spec = SecureKafkaSpec(
        passwords[ADMIN_USER],
        {u: passwords[u] for u in users},
        broker_port=broker_port,
        controller_port=controller_port,
    )
    kafka = SecureKafka(Layout.from_env(os.environ), state, spec)
    try:
        _in_thread(kafka.start)
        yield SecureBroker(spec.bootstrap, passwords)
    finally:
        _in_thread(kafka.stop)
