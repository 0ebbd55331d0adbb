"""Each compose broker's configuration, rendered from its environment as the apache/kafka
image renders it (tests/compose_file.py), is accepted by Kafka itself: the storage tool of
the jars scripts/install fetched formats a node with it, as the image's first start does.
No Docker: the JVM runs here, on a folder of the test's."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from devstack import DevstackError
from devstack.kafka import run_storage_tool
from devstack.paths import Layout
from tests.compose_file import BROKERS, broker_properties, load_compose, node_environment, render


@pytest.fixture(scope="module")
def layout() -> Layout:
    found = Layout.from_env(os.environ)
    if not (found.kafka_lib / "VERSIONS").exists():
        pytest.fail(f"no Kafka jars in {found.kafka_lib}: run scripts/install", pytrace=False)
    return found


def format_storage(layout: Layout, broker: str, folder: Path, **changed: str) -> str:
    """The image's first start of `broker`: its storage formatted with its CLUSTER_ID."""
    compose = load_compose()
    properties = broker_properties(compose, broker) | changed
    properties["log.dirs"] = str(folder / "data")  # the container's volume, here
    config = folder / "server.properties"
    config.write_text(render(properties))
    cluster_id = node_environment(compose["services"][broker])["CLUSTER_ID"]
    return run_storage_tool(layout, "format", "-t", cluster_id, "-c", str(config))


@pytest.mark.parametrize("broker", BROKERS)
def test_kafka_accepts_the_configuration_each_compose_broker_starts_with(
    layout: Layout, broker: str, tmp_path: Path
) -> None:
    output = format_storage(layout, broker, tmp_path)

    assert "Formatting metadata directory" in output
    assert (tmp_path / "data" / "meta.properties").exists()


def test_a_broker_advertising_a_listener_it_has_no_protocol_for_is_refused(
    layout: Layout, tmp_path: Path
) -> None:
    advertised = "PLAINTEXT://kafka-1:9092,HOST://localhost:19092"

    with pytest.raises(DevstackError, match="No security protocol defined for listener PLAINTEXT"):
        format_storage(layout, "kafka-1", tmp_path, **{"advertised.listeners": advertised})
