"""Submission and validation running together in the test's event loop, on real servers.

What a local system meets: it sends on the inbound topic or `POST /v1/reports`, and reads
verdicts on reports.outcomes.v1 or at `GET /v1/reports/{report_id}`. Both services share
the test's namespace and start their clocks at `NOW`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer

from services.submission.app import build_app as submission_app
from services.submission.settings import SubmissionSettings
from services.validation.app import build_app as validation_app
from services.validation.settings import ValidationSettings
from shared import codec
from shared.contracts import Outcome
from tests.harness import eventually, running, service_settings

NOW = datetime.fromisoformat("2026-03-16T10:00:00+07:00")


@dataclass
class Front:
    """The two services' addresses as a sender sees them."""

    http: httpx.AsyncClient
    settings: SubmissionSettings
    validation: httpx.AsyncClient  # validation's own endpoints (/metrics)

    def topic(self, name: Any) -> str:
        return self.settings.kafka.topic(name)

    async def verdict(self, report_id: str, timeout: float = 60.0) -> Outcome:
        """The verdict `GET /v1/reports/{report_id}` gives once it is known."""

        async def known() -> Outcome | None:
            answer = await self.http.get(f"/v1/reports/{report_id}")
            return codec.decode(Outcome, answer.content) if answer.status_code == 200 else None

        return await eventually(known, timeout=timeout, interval=0.2)


Headers = list[tuple[str, bytes | None]]


async def produce_with_headers(
    bootstrap: str, topic: str, messages: Sequence[tuple[bytes | None, bytes, Headers]]
) -> None:
    """Send records with headers, as some senders' Kafka clients add them."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        sent = [
            await producer.send(topic, value=value, key=key, headers=headers)
            for key, value, headers in messages
        ]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


@contextlib.asynccontextmanager
async def front(
    namespace: str, bootstrap: str, dsn: str, **submission: Any
) -> AsyncIterator[Front]:
    """Validation, then submission (whose HTTP client is yielded), started and stopped."""
    judge = service_settings(ValidationSettings, namespace, bootstrap, dsn, now=NOW)
    intake = service_settings(SubmissionSettings, namespace, bootstrap, dsn, now=NOW, **submission)
    async with (
        running(validation_app(judge)) as validation,
        running(submission_app(intake)) as http,
    ):
        yield Front(http, intake, validation)
