"""Connector and hub simulator against real Kafka and PostgreSQL: the hub ends up with the
latest version of every scope, superseded versions are skipped, refusals are parked."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import httpx

from services.connector.app import build_app
from services.connector.hub_client import JsonHub
from services.connector.settings import ConnectorSettings
from services.hub_simulator.app import build_app as build_hub
from services.hub_simulator.settings import HubSimulatorSettings
from shared import codec
from shared.contracts import (
    AGGREGATES,
    HUB_SYNC,
    AggregateSnapshot,
    Completeness,
    DeliveryOutcome,
    HubSyncResult,
    scope_key,
)
from tests.harness import TopicReader, eventually, produce, running, service_settings

NOW = datetime.fromisoformat("2026-03-16T10:00:00+07:00")


def snapshot(unit: str, version: int, online: int) -> AggregateSnapshot:
    return AggregateSnapshot(
        regime="KSTT-TTHC",
        regime_version=1,
        period="2026-Q1",
        unit=unit,
        version=version,
        values={"RECEIVED_ONLINE": Decimal(online), "ONLINE_RATE": None},
        completeness=Completeness(
            expected=17,
            reported=1,
            on_time=1,
            rate=Decimal("5.88"),
            on_time_rate=Decimal("5.88"),
            missing=(),
        ),
        computed_at=NOW,
    )


async def test_the_hub_receives_the_latest_version_of_each_synced_scope(
    namespace: str, kafka_bootstrap: str, postgres_dsn: str
) -> None:
    config = service_settings(ConnectorSettings, namespace, kafka_bootstrap, postgres_dsn, now=NOW)
    hub_config = service_settings(
        HubSimulatorSettings, namespace, kafka_bootstrap, postgres_dsn, now=NOW
    )
    hub_app = build_hub(hub_config)
    versions = [snapshot("TB", v, 100 + v) for v in (1, 2, 3)]
    district = snapshot("TB.DH", 1, 5)  # not a synced level by default
    messages = [
        (scope_key("KSTT-TTHC", "2026-Q1", s.unit), codec.dumps(s)) for s in [*versions, district]
    ]
    async with running(hub_app) as hub:
        transport = httpx.ASGITransport(app=hub_app)
        connector = build_app(config, hub=JsonHub(config.hub, transport=transport))
        async with running(connector):
            await produce(kafka_bootstrap, config.kafka.topic(AGGREGATES), messages)

            async def delivered() -> list[dict[str, Any]] | None:
                log = (await hub.get("/admin/received")).json()
                return log if log and log[-1]["version"] == 3 else None

            log = await eventually(delivered)
            async with TopicReader(kafka_bootstrap, config.kafka.topic(HUB_SYNC)) as sync:
                results = [codec.decode(HubSyncResult, r.value) for r in await sync.until(1)]
        held = (await hub.get("/admin/aggregates")).json()
    stored_versions = [entry["version"] for entry in log]
    assert stored_versions == sorted(stored_versions)
    assert [h["unit"] for h in held] == ["TB"]
    assert held[0]["version"] == 3
    assert held[0]["values"] == {"RECEIVED_ONLINE": 103, "ONLINE_RATE": None}
    assert all(r.outcome in (DeliveryOutcome.STORED, DeliveryOutcome.UNCHANGED) for r in results)


async def test_a_snapshot_the_hub_refuses_is_parked_until_a_new_version_arrives(
    namespace: str, kafka_bootstrap: str, postgres_dsn: str
) -> None:
    config = service_settings(ConnectorSettings, namespace, kafka_bootstrap, postgres_dsn, now=NOW)
    hub_config = service_settings(
        HubSimulatorSettings, namespace, kafka_bootstrap, postgres_dsn, now=NOW
    )
    hub_app = build_hub(hub_config)
    refused = 0

    def refuse_version_1(request: httpx.Request) -> httpx.Response | None:
        nonlocal refused
        if request.method == "PUT" and request.headers["idempotency-key"].endswith("|1"):
            refused += 1
            return httpx.Response(422, json={"status": "refused", "reasons": ["test says no"]})
        return None

    class Gate(httpx.AsyncBaseTransport):
        def __init__(self) -> None:
            self.inner = httpx.ASGITransport(app=hub_app)

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            return refuse_version_1(request) or await self.inner.handle_async_request(request)

    key = scope_key("KSTT-TTHC", "2026-Q1", "TB")
    async with running(hub_app) as hub:
        connector = build_app(config, hub=JsonHub(config.hub, transport=Gate()))
        async with running(connector):
            await produce(
                kafka_bootstrap,
                config.kafka.topic(AGGREGATES),
                [(key, codec.dumps(snapshot("TB", 1, 1)))],
            )
            async with TopicReader(kafka_bootstrap, config.kafka.topic(HUB_SYNC)) as sync:
                first = codec.decode(HubSyncResult, (await sync.until(1))[0].value)
                await produce(
                    kafka_bootstrap,
                    config.kafka.topic(AGGREGATES),
                    [(key, codec.dumps(snapshot("TB", 2, 2)))],
                )

                async def stored() -> list[dict[str, object]] | None:
                    return (await hub.get("/admin/received")).json() or None

                log = await eventually(stored)
    assert first.outcome is DeliveryOutcome.REFUSED
    assert refused == 1  # parked: never retried
    assert [entry["version"] for entry in log] == [2]
