"""Submission: ingests reports from local systems over Kafka and HTTP; loses none."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from shared.runtime import Runtime, build_http_app

from .admin import build_admin_api
from .api import build_api
from .handlers import build_router
from .ingest import Ingest
from .settings import SubmissionSettings


def build_app(settings: SubmissionSettings) -> FastAPI:
    runtime = Runtime("submission", settings, Path(__file__).parent / "migrations")
    ingest = Ingest(runtime, settings.submission.max_report_bytes)
    runtime.broker.include_router(build_router(runtime, ingest))
    app = build_http_app(runtime, title="baocao submission")
    app.include_router(build_api(ingest, settings.submission, lambda: runtime.pool))
    app.include_router(build_admin_api(runtime))
    return app
