"""Connector and hub simulator against real Kafka and PostgreSQL: the hub ends up with the
latest version of every synced scope, superseded versions are skipped, refusals are parked
(visible to operators) until a new version or an operator's command, and reconciliation
resends what the hub lost."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from decimal import Decimal
from functools import partial
from typing import Any

import asyncpg
import httpx
from fastapi import FastAPI
from pydantic import SecretStr

from services.connector.access import issue_credential
from services.connector.app import build_app
from services.connector.hub_client import JsonHub
from services.connector.settings import ConnectorSection, ConnectorSettings
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


def message(s: AggregateSnapshot) -> tuple[bytes, bytes]:
    return scope_key(s.regime, s.period, s.unit), codec.dumps(s)


class Gate(httpx.AsyncBaseTransport):
    """The simulator in-process, with a switch to refuse version 1 of every scope."""

    def __init__(self, hub_app: FastAPI) -> None:
        self.inner = httpx.ASGITransport(app=hub_app)
        self.refusing = True
        self.refused = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        version_1 = request.headers.get("idempotency-key", "").endswith("|1")
        if request.method == "PUT" and version_1 and self.refusing:
            self.refused += 1
            return httpx.Response(422, json={"status": "refused", "reasons": ["test says no"]})
        return await self.inner.handle_async_request(request)


@asynccontextmanager
async def connector_and_hub(
    namespace: str,
    bootstrap: str,
    dsn: str,
    *,
    levels: tuple[str, ...] = ("province",),
    operators: dict[str, str] | None = None,
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient, Gate, ConnectorSettings]]:
    """`operators`: name → digest of the operators the connector is given (none: open)."""
    digests = {name: SecretStr(digest) for name, digest in (operators or {}).items()}
    config = service_settings(
        ConnectorSettings,
        namespace,
        bootstrap,
        dsn,
        now=NOW,
        connector=ConnectorSection(sync_levels=levels, operators=digests),
    )
    hub_app = build_hub(service_settings(HubSimulatorSettings, namespace, bootstrap, dsn, now=NOW))
    gate = Gate(hub_app)
    async with running(hub_app) as hub:
        connector_app = build_app(config, hub=JsonHub(config.hub, transport=gate))
        async with running(connector_app) as connector:
            yield connector, hub, gate, config


async def test_the_hub_receives_the_latest_version_of_each_synced_scope(
    namespace: str, kafka_bootstrap: str, postgres_dsn: str
) -> None:
    versions = [snapshot("TB", v, 100 + v) for v in (2, 3, 4)]
    district = snapshot("TB.DH", 2, 5)  # not a synced level by default
    async with connector_and_hub(namespace, kafka_bootstrap, postgres_dsn) as (
        connector,
        hub,
        _,
        config,
    ):
        await produce(
            kafka_bootstrap,
            config.kafka.topic(AGGREGATES),
            [message(s) for s in [*versions, district]],
        )

        async def delivered() -> list[dict[str, Any]] | None:
            log = (await hub.get("/admin/received")).json()
            return log if log and log[-1]["version"] == 4 else None

        log = await eventually(delivered)
        async with TopicReader(kafka_bootstrap, config.kafka.topic(HUB_SYNC)) as sync:
            results = [codec.decode(HubSyncResult, r.value) for r in await sync.until(1)]
        held = (await hub.get("/admin/aggregates")).json()
        listing = (await connector.get("/v1/admin/deliveries")).json()
    stored_versions = [entry["version"] for entry in log]
    assert stored_versions == sorted(stored_versions)
    assert [h["unit"] for h in held] == ["TB"]
    assert held[0]["version"] == 4
    assert held[0]["values"] == {"RECEIVED_ONLINE": 104, "ONLINE_RATE": None}
    assert all(r.outcome in (DeliveryOutcome.STORED, DeliveryOutcome.UNCHANGED) for r in results)
    assert [(d["unit"], d["version"], d["acked_version"]) for d in listing] == [("TB", 4, 4)]
    assert listing[0]["last_outcome"] in ("stored", "unchanged")


async def test_the_sync_levels_setting_chooses_the_scopes_sent(
    namespace: str, kafka_bootstrap: str, postgres_dsn: str
) -> None:
    scopes = [snapshot("TB", 2, 1), snapshot("TB.DH", 2, 2), snapshot("TB.DH.N01", 2, 3)]
    async with connector_and_hub(
        namespace, kafka_bootstrap, postgres_dsn, levels=("province", "district")
    ) as (_, hub, _, config):
        await produce(kafka_bootstrap, config.kafka.topic(AGGREGATES), [message(s) for s in scopes])

        async def both() -> list[dict[str, Any]] | None:
            held = (await hub.get("/admin/aggregates")).json()
            return held if len(held) == 2 else None

        held = await eventually(both)
    assert [h["unit"] for h in held] == ["TB", "TB.DH"]  # the commune is not a synced level


async def test_a_refused_snapshot_is_parked_and_visible_until_a_new_version_arrives(
    namespace: str, kafka_bootstrap: str, postgres_dsn: str
) -> None:
    async with connector_and_hub(namespace, kafka_bootstrap, postgres_dsn) as (
        connector,
        hub,
        gate,
        config,
    ):
        topic = config.kafka.topic(AGGREGATES)
        await produce(kafka_bootstrap, topic, [message(snapshot("TB", 1, 1))])
        async with TopicReader(kafka_bootstrap, config.kafka.topic(HUB_SYNC)) as sync:
            first = codec.decode(HubSyncResult, (await sync.until(1))[0].value)

        async def parked_gauge() -> str | None:
            text = (await connector.get("/metrics")).text
            return text if "baocao_hub_parked_scopes 1.0" in text else None

        await eventually(parked_gauge)
        parked = (await connector.get("/v1/admin/deliveries", params={"state": "parked"})).json()
        await produce(kafka_bootstrap, topic, [message(snapshot("TB", 2, 2))])

        async def stored() -> list[dict[str, object]] | None:
            return (await hub.get("/admin/received")).json() or None

        log = await eventually(stored)
        still = (await connector.get("/v1/admin/deliveries", params={"state": "parked"})).json()
    assert first.outcome is DeliveryOutcome.REFUSED
    assert first.error == "test says no"
    assert gate.refused == 1  # parked: never retried
    assert [(p["unit"], p["parked_version"], p["last_error"]) for p in parked] == [
        ("TB", 1, "test says no")
    ]
    assert still == []
    assert [entry["version"] for entry in log] == [2]


async def parked(
    connector: httpx.AsyncClient, headers: dict[str, str] | None = None
) -> list[dict[str, Any]] | None:
    """The scopes parked, as an operator lists them; None while there are none."""
    listed = await connector.get(
        "/v1/admin/deliveries", params={"state": "parked"}, headers=headers
    )
    return listed.json() or None


async def park_province(
    connector: httpx.AsyncClient,
    bootstrap: str,
    config: ConnectorSettings,
    headers: dict[str, str] | None = None,
) -> None:
    """Version 1 of the province's snapshot, refused by the hub (the gate) and parked."""
    message_1 = message(snapshot("TB", 1, 1))
    await produce(bootstrap, config.kafka.topic(AGGREGATES), [message_1])
    await eventually(partial(parked, connector, headers))


def acknowledged(
    connector: httpx.AsyncClient, unit: str, version: int, headers: dict[str, str] | None = None
) -> Callable[[], Awaitable[bool]]:
    """Whether the connector has recorded the hub's acknowledgement of `unit` at `version`:
    the hub stores a PUT before the connector reads its answer and commits it, and only an
    acknowledged scope is one reconciliation checks."""

    async def check() -> bool:
        listed = (await connector.get("/v1/admin/deliveries", headers=headers)).json()
        return any(d["unit"] == unit and d["acked_version"] == version for d in listed)

    return check


async def received(hub: httpx.AsyncClient) -> list[dict[str, Any]] | None:
    """What the hub stored, in order; None while it stored nothing."""
    return (await hub.get("/admin/received")).json() or None


async def test_an_operator_releases_parked_snapshots_once_the_cause_is_fixed(
    namespace: str, kafka_bootstrap: str, postgres_dsn: str
) -> None:
    async with connector_and_hub(namespace, kafka_bootstrap, postgres_dsn) as (
        connector,
        hub,
        gate,
        config,
    ):
        await park_province(connector, kafka_bootstrap, config)
        gate.refusing = False
        released = (await connector.post("/v1/admin/deliveries/retry-parked")).json()
        log = await eventually(partial(received, hub))
    assert released == {"released": 1}
    assert [entry["version"] for entry in log] == [1]


async def test_reconciliation_resends_what_the_hub_lost(
    namespace: str, kafka_bootstrap: str, postgres_dsn: str
) -> None:
    async with connector_and_hub(namespace, kafka_bootstrap, postgres_dsn) as (
        connector,
        hub,
        _,
        config,
    ):
        await produce(
            kafka_bootstrap, config.kafka.topic(AGGREGATES), [message(snapshot("TB", 3, 3))]
        )

        async def stored() -> list[dict[str, Any]] | None:
            return (await hub.get("/admin/received")).json() or None

        await eventually(stored)
        await eventually(acknowledged(connector, "TB", 3))
        # The hub is restored from a backup older than what it acknowledged.
        schema = f"{namespace}hub_simulator"
        conn = await asyncpg.connect(postgres_dsn)
        try:
            await conn.execute(f'DELETE FROM "{schema}".aggregates')
            await conn.execute(f'DELETE FROM "{schema}".received')
        finally:
            await conn.close()
        answer = (await connector.post("/v1/admin/deliveries/reconcile")).json()
        log = await eventually(stored)
    assert answer == {"checked": 1, "rewound": 1, "complete": True}
    assert [entry["version"] for entry in log] == [3]


async def audit_log(dsn: str, namespace: str) -> list[dict[str, Any]]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            f'SELECT at, actor, action, target, details FROM "{namespace}connector".audit_log'
            " ORDER BY id"
        )
    finally:
        await conn.close()
    return [dict(r) | {"details": codec.loads(r["details"])} for r in rows]


async def test_with_operators_given_every_operator_endpoint_needs_an_operators_credential(
    namespace: str, kafka_bootstrap: str, postgres_dsn: str
) -> None:
    credential, digest = issue_credential("nguyen-van-a")
    secret = credential.get_secret_value()
    async with connector_and_hub(
        namespace, kafka_bootstrap, postgres_dsn, operators={"nguyen-van-a": digest}
    ) as (connector, _, _, _):
        calls = [
            ("GET", "/v1/admin/deliveries"),
            ("POST", "/v1/admin/deliveries/retry-parked"),
            ("POST", "/v1/admin/deliveries/reconcile"),
        ]
        for method, path in calls:
            missing = await connector.request(method, path)
            assert missing.status_code == 401, path
            assert missing.headers["WWW-Authenticate"].startswith("Bearer")
            assert [i["code"] for i in missing.json()["issues"]] == ["E140"]
            others = f"tran-thi-b.{secret.partition('.')[2]}"
            for wrong in (secret + "x", digest, secret[:-1], secret.partition(".")[2], others):
                refused = await connector.request(
                    method, path, headers={"Authorization": f"Bearer {wrong}"}
                )
                assert refused.status_code == 401, (path, wrong)
                assert [i["code"] for i in refused.json()["issues"]] == ["E140"]
        # Refused calls did nothing, and left no trace in the audit log.
        assert await audit_log(postgres_dsn, namespace) == []
        for method, path in calls:
            allowed = await connector.request(
                method, path, headers={"Authorization": f"Bearer {secret}"}
            )
            assert allowed.status_code == 200, (path, allowed.text)
        assert (await connector.get("/healthz")).status_code == 200  # probes stay open
        documented = (await connector.get("/openapi.json")).json()["paths"]
        assert "401" in documented["/v1/admin/deliveries"]["get"]["responses"]
    # Listing is no action; each action is on record under the operator who called.
    logged = await audit_log(postgres_dsn, namespace)
    assert [(e["actor"], e["action"]) for e in logged] == [
        ("nguyen-van-a", "deliveries.retry_parked"),
        ("nguyen-van-a", "deliveries.reconcile"),
    ]


async def test_each_operator_action_is_audited_with_who_when_and_what(
    namespace: str, kafka_bootstrap: str, postgres_dsn: str
) -> None:
    a, a_digest = issue_credential("nguyen-van-a")
    b, b_digest = issue_credential("tran-thi-b")
    digests = {"nguyen-van-a": a_digest, "tran-thi-b": b_digest}

    def bearer(credential: SecretStr) -> dict[str, str]:
        return {"Authorization": f"Bearer {credential.get_secret_value()}"}

    async with connector_and_hub(namespace, kafka_bootstrap, postgres_dsn, operators=digests) as (
        connector,
        hub,
        gate,
        config,
    ):
        await park_province(connector, kafka_bootstrap, config, bearer(a))
        gate.refusing = False
        for headers in ({}, {"Authorization": "Bearer nguyen-van-a.guess"}):
            refused = await connector.post("/v1/admin/deliveries/retry-parked", headers=headers)
            assert refused.status_code == 401
        assert await parked(connector, bearer(a)) is not None  # the refused released nothing
        assert await audit_log(postgres_dsn, namespace) == []
        none = await connector.post(
            "/v1/admin/deliveries/retry-parked", params={"regime": "KTXH-M"}, headers=bearer(b)
        )
        released = await connector.post(
            "/v1/admin/deliveries/retry-parked", params={"regime": "KSTT-TTHC"}, headers=bearer(a)
        )

        await eventually(partial(received, hub))
        await eventually(acknowledged(connector, "TB", 1, bearer(b)))
        reconciled = await connector.post("/v1/admin/deliveries/reconcile", headers=bearer(b))
    assert none.json() == {"released": 0}
    assert released.json() == {"released": 1}
    assert reconciled.json() == {"checked": 1, "rewound": 0, "complete": True}
    logged = await audit_log(postgres_dsn, namespace)
    assert [(e["actor"], e["action"], e["target"], e["details"]) for e in logged] == [
        (
            "tran-thi-b",
            "deliveries.retry_parked",
            "deliveries:KTXH-M",
            {"regime": "KTXH-M", "released": []},
        ),
        (
            "nguyen-van-a",
            "deliveries.retry_parked",
            "deliveries:KSTT-TTHC",
            {
                "regime": "KSTT-TTHC",
                "released": [
                    {"regime": "KSTT-TTHC", "period": "2026-Q1", "unit": "TB", "version": 1}
                ],
            },
        ),
        (
            "tran-thi-b",
            "deliveries.reconcile",
            "deliveries",
            {"checked": 1, "rewound": 0, "complete": True},
        ),
    ]
    # When: on the service's clock (which starts at NOW), in the order of the calls.
    times = [e["at"] for e in logged]
    assert times == sorted(times)
    assert times[0] >= NOW
