"""Aggregation: exact roll-ups by regime, period and unit hierarchy, with completeness."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from fastapi import FastAPI

from shared.contracts import Completeness
from shared.observability.progress import ProgressExporter, RegimePeriod
from shared.runtime import Runtime, build_http_app

from . import store
from .handlers import build_router
from .rollup import RollupStage
from .settings import AggregationSettings

MIGRATIONS = Path(__file__).parent / "migrations"


def build_app(settings: AggregationSettings) -> FastAPI:
    runtime = Runtime("aggregation", settings, MIGRATIONS)
    runtime.broker.include_router(build_router(runtime, RollupStage(runtime)))

    # Completeness gauges of the open periods, province scope, from the stored snapshots.
    async def province(keys: Sequence[RegimePeriod]) -> dict[RegimePeriod, Completeness]:
        async with runtime.pool.acquire() as conn:
            return await store.completeness_at(conn, runtime.catalog.province, keys)

    progress = ProgressExporter(runtime.metrics, runtime.catalog, runtime.clock, province)
    runtime.samplers["regime_progress"] = progress.sample
    return build_http_app(runtime, title="baocao aggregation")
