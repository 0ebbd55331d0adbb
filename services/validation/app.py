"""Validation: judges every report against its regime's rules and says why, in two languages."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from shared.runtime import Runtime, build_http_app

from .handlers import build_router
from .settings import ValidationSettings
from .verdicts import VerdictStage


def build_app(settings: ValidationSettings) -> FastAPI:
    runtime = Runtime("validation", settings, Path(__file__).parent / "migrations")
    runtime.broker.include_router(build_router(runtime, VerdictStage(runtime)))
    return build_http_app(runtime, title="baocao validation")
