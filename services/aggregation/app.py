"""Aggregation: exact roll-ups by regime, period and unit hierarchy, with completeness."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from shared.runtime import Runtime, build_http_app

from .handlers import build_router
from .rollup import RollupStage
from .settings import AggregationSettings

MIGRATIONS = Path(__file__).parent / "migrations"


def build_app(settings: AggregationSettings) -> FastAPI:
    runtime = Runtime("aggregation", settings, MIGRATIONS)
    runtime.broker.include_router(build_router(runtime, RollupStage(runtime)))
    return build_http_app(runtime, title="baocao aggregation")
