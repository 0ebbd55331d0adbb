"""Connector: delivers every snapshot's latest version to the national hub, through outages."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from shared.contracts import HUB_SYNC
from shared.runtime import Runtime, build_http_app

from .access import Operators
from .api import answer_refusal, build_api
from .delivery import Deliverer
from .handlers import build_router
from .hub_client import HubAdapter, JsonHub
from .intake import SnapshotIntake
from .ledger import PostgresLedger
from .settings import ConnectorSettings


def build_app(settings: ConnectorSettings, hub: HubAdapter | None = None) -> FastAPI:
    """`hub` replaces the JSON adapter (another transport or message format, or a test's)."""
    runtime = Runtime("connector", settings, Path(__file__).parent / "migrations")
    runtime.metrics.prepare_delivery(runtime.catalog.regime_codes)
    ledger = PostgresLedger(lambda: runtime.pool, lambda: runtime.relay.notify())
    deliverer = Deliverer(
        ledger,
        hub or JsonHub(settings.hub),
        settings.connector,
        runtime.clock,
        runtime.metrics,
        runtime.topic(HUB_SYNC),
    )
    intake = SnapshotIntake(runtime, settings.connector.sync_levels, deliverer)
    runtime.broker.include_router(build_router(runtime, intake))
    runtime.background += [deliverer.run, deliverer.reconcile_forever, deliverer.watch_backlog]
    app = build_http_app(runtime, title="baocao connector")
    operators = Operators(settings.connector.operators)
    app.include_router(build_api(deliverer, lambda: runtime.pool, operators, runtime.clock))
    answer_refusal(app)
    return app
