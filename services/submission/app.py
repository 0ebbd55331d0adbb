"""Submission: ingests reports from local systems over Kafka and HTTP; loses none."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from shared.runtime import Runtime, build_http_app

from .access import Access
from .admin import build_admin_api
from .api import build_api
from .handlers import build_router
from .ingest import Ingest
from .settings import SubmissionSettings


def build_app(settings: SubmissionSettings) -> FastAPI:
    runtime = Runtime("submission", settings, Path(__file__).parent / "migrations")
    section = settings.submission
    ingest = Ingest(runtime, section)
    access = Access(section.sender_authentication, section.rate_limit, section.failed_checks)
    runtime.broker.include_router(
        build_router(runtime, ingest, authenticates=section.sender_authentication)
    )
    app = build_http_app(runtime, title="baocao submission")
    app.include_router(build_api(ingest, section, lambda: runtime.pool, access))
    app.include_router(build_admin_api(runtime, access))
    return app
