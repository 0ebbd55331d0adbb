"""Topic provisioning against the real broker: creates, then changes nothing, then sets a
drifted setting back without touching the topic's other settings."""

from __future__ import annotations

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from services.topics.admin import read_state
from services.topics.cli import provision
from services.topics.plan import DAY_MS
from services.topics.settings import TopicsSettings
from shared.settings import KafkaSettings
from tests.harness import eventually


async def test_provisioning_is_idempotent_and_repairs_drift(
    kafka_bootstrap: str, namespace: str
) -> None:
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap, namespace=namespace, partitions=3)
    settings = TopicsSettings(kafka=kafka)
    inbound = f"{namespace}reports.inbound.v1"

    first = await provision(settings, dry_run=False)
    again = await provision(settings, dry_run=False)

    assert len(first.create) == 12
    assert not first.problems
    assert not again.changes
    assert len(again.in_sync) == 12

    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        drift = {"retention.ms": "60000", "max.message.bytes": "2097152"}
        await admin.alter_configs(
            [ConfigResource(ConfigResourceType.TOPIC, inbound, configs=drift)]
        )

        async def drifted() -> bool:
            # A configuration change reaches the broker's metadata a moment after it is made.
            state = (await read_state(admin, [inbound]))[inbound]
            return state.configs["retention.ms"] == "60000"

        await eventually(drifted)
        dry = await provision(settings, dry_run=True)
        assert [c.topic for c in dry.reconfigure] == [inbound]

        repaired = await provision(settings, dry_run=False)

        assert [c.topic for c in repaired.reconfigure] == [inbound]
        state = (await read_state(admin, [inbound]))[inbound]
        assert state.configs["retention.ms"] == str(14 * DAY_MS)
        assert state.configs["max.message.bytes"] == "2097152"  # an operator's own setting
        assert state.partitions == 3
    finally:
        await admin.close()
    assert not (await provision(settings, dry_run=False)).changes
