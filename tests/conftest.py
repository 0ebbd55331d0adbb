"""Markers by folder, and the real servers' addresses for the tests that need them.

Unit tests need nothing. Integration and system tests need the Kafka broker and the
PostgreSQL server that `scripts/servers start` runs (or any others named by
`BAOCAO_KAFKA__BOOTSTRAP_SERVERS` and `BAOCAO_POSTGRES__DSN`): when they are unreachable
the tests fail loudly, they are never skipped.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from shared.settings import KafkaSettings, PostgresSettings
from tests.harness import drop_namespace

FOLDER_MARKERS = ("unit", "integration", "system")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        folder = Path(str(item.fspath)).parent.name
        if folder in FOLDER_MARKERS:
            item.add_marker(getattr(pytest.mark, folder))


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    servers = os.environ.get("BAOCAO_KAFKA__BOOTSTRAP_SERVERS", KafkaSettings().bootstrap_servers)
    host, _, port = servers.split(",")[0].rpartition(":")
    if not _reachable(host, int(port)):
        pytest.fail(
            f"Kafka is not reachable at {servers}: run scripts/servers start", pytrace=False
        )
    return servers


@pytest.fixture(scope="session")
def postgres_dsn() -> str:
    dsn = os.environ.get("BAOCAO_POSTGRES__DSN", PostgresSettings().dsn.get_secret_value())
    parts = urlsplit(dsn)
    if not _reachable(parts.hostname or "127.0.0.1", parts.port or 5432):
        pytest.fail(
            f"PostgreSQL is not reachable at {dsn}: run scripts/servers start", pytrace=False
        )
    return dsn


def fresh_namespace() -> str:
    return f"t{uuid.uuid4().hex[:10]}_"


@pytest.fixture
def namespace(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh prefix for topics, consumer groups and schemas: tests never share state.

    Its topics and schemas are dropped afterwards: a broker keeps files open for every
    partition, and a whole suite's worth of them would exhaust its file handles.
    """
    prefix = fresh_namespace()
    yield prefix
    bootstrap = (
        request.getfixturevalue("kafka_bootstrap")
        if "kafka_bootstrap" in request.fixturenames
        else None
    )
    dsn = (
        request.getfixturevalue("postgres_dsn") if "postgres_dsn" in request.fixturenames else None
    )
    drop_namespace(prefix, bootstrap, dsn)
