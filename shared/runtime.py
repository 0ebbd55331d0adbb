"""What every service process is made of, and its HTTP face.

A service is a Kafka broker with its subscribers, a PostgreSQL pool on its own schema, an
outbox relay, optional background loops, samplers of its gauges (outbox backlog, consumer
lag of its groups, and whatever the service adds), and an HTTP app serving `/metrics`,
`/healthz`, `/readyz` and `/asyncapi.json` (plus the service's own routes). Start order
matters: the database is migrated and the topics exist before the first batch is consumed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, KafkaTimeoutError
from aiokafka.partitioner import DefaultPartitioner
from fastapi import FastAPI, Response
from faststream.kafka import KafkaBroker
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram512
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from shared import collector, outbox
from shared.asyncapi import document
from shared.batches import (
    BatchConsumer,
    Process,
    Record,
    TransientError,
    raw_bodies,
    tolerant_parser,
)
from shared.catalog import Catalog, load_catalog
from shared.clock import Clock
from shared.contracts import TopicSpec
from shared.db import Pool, create_pool, migrate
from shared.kafka_client import client_options, producer_options, send_batched
from shared.logging import configure_logging, get_logger
from shared.observability.lag import ConsumerLagMonitor, subscriptions_of
from shared.observability.metrics import Metrics
from shared.observability.sampling import sample_forever
from shared.outbox import OutboxMessage, OutboxRelay
from shared.settings import KafkaSettings, ServiceSettings
from shared.topics import ensure_topics
from shared.web import ExactJSONResponse

log = get_logger(__name__)

JSON_CONTENT = ("content-type", b"application/json")
# How long each part of a stop may take. A broker that stops answering, or a database
# connection never given back, must not keep a stopping service (a rolling update, a
# test) waiting for ever. The broker part covers faststream's 30 s drain of in-flight
# batches; whatever is not committed by then is redelivered, as after a crash.
STOP_DRAIN_S = 35.0  # the broker and the producer: what is in flight
STOP_RELEASE_S = 10.0  # background tasks and the pool: what they hold
BackgroundLoop = Callable[[], Coroutine[Any, Any, None]]
Sample = Callable[[], Awaitable[object]]


def broker_security(kafka: KafkaSettings) -> BaseSecurity | None:
    options = client_options(kafka)
    ssl_context = options.get("ssl_context")
    if kafka.security_protocol.startswith("SASL"):
        user = kafka.sasl_username or ""
        password = kafka.sasl_password.get_secret_value() if kafka.sasl_password else ""
        cls = SASLScram512 if kafka.sasl_mechanism == "SCRAM-SHA-512" else SASLPlaintext
        return cls(user, password, ssl_context=ssl_context, use_ssl=ssl_context is not None)
    if ssl_context is not None:
        return BaseSecurity(ssl_context=ssl_context)
    return None


def build_broker(
    service: str, settings: ServiceSettings, registry: CollectorRegistry
) -> KafkaBroker:
    kafka = settings.kafka
    return KafkaBroker(
        # faststream takes a string as one address: a cluster's "a:9092,b:9092" is split here.
        [address.strip() for address in kafka.bootstrap_servers.split(",") if address.strip()],
        security=broker_security(kafka),
        client_id=f"baocao-{service}",
        allow_auto_create_topics=False,  # topics are created by `ensure_topics`
        middlewares=[KafkaPrometheusMiddleware(registry=registry, app_name=f"baocao-{service}")],
        # Records reach the handlers as they are: nothing a sender puts in a body or a header
        # can make faststream raise before them (and skip a batch).
        parser=tolerant_parser,
        decoder=raw_bodies,
        description=f"baocao {service}",
        graceful_timeout=30.0,
        request_timeout_ms=kafka.request_timeout_ms,
        metadata_max_age_ms=kafka.metadata_max_age_ms,
        # faststream's lines go through the JSON log setup; per-batch lines only at DEBUG.
        logger=logging.getLogger("faststream"),
        log_level=logging.DEBUG,
        **producer_options(),
    )


@dataclass
class Runtime:
    """The parts of one service process, built once by its `app.build_app`."""

    service: str
    settings: ServiceSettings
    migrations: Path
    registry: CollectorRegistry = field(
        default_factory=lambda: CollectorRegistry(auto_describe=True)
    )
    catalog: Catalog = field(init=False)
    clock: Clock = field(init=False)
    metrics: Metrics = field(init=False)
    broker: KafkaBroker = field(init=False)
    relay: OutboxRelay = field(init=False)
    background: list[BackgroundLoop] = field(default_factory=list)
    samplers: dict[str, Sample] = field(default_factory=dict)
    _pool: Pool | None = None
    _producer: AIOKafkaProducer | None = None
    _partitioner: DefaultPartitioner = field(default_factory=DefaultPartitioner)
    _ready: bool = False

    def __post_init__(self) -> None:
        self.catalog = load_catalog(self.settings.catalog_dir)
        self.clock = self.settings.clock()
        self.metrics = Metrics(self.registry)
        self.broker = build_broker(self.service, self.settings, self.registry)

    @property
    def pool(self) -> Pool:
        if self._pool is None:
            raise RuntimeError("the service has not started: no database pool yet")
        return self._pool

    def topic(self, name: Any) -> str:
        return self.settings.kafka.topic(name)

    def group(self, name: str | None = None) -> str:
        return self.settings.kafka.group(name or self.service)

    async def publish(self, messages: Sequence[OutboxMessage]) -> None:
        """Send messages (an outbox's rows, validation's verdicts, submission's forwarded
        reports) and return once the broker has acknowledged them all.

        They go through the service's own producer as record batches (`send_batched`),
        not through faststream's publish path, four times dearer again than aiokafka's
        per-message send: the messages are encoded already.

        A failure that may pass (a timeout, a leader moving, a lost connection) raises
        `TransientError`: a batch consumer then retries its batch whole.
        """
        try:
            await self._send(messages)
        except KafkaError as error:
            if error.retriable or isinstance(error, KafkaTimeoutError):
                raise TransientError(f"the broker did not acknowledge: {error!r}") from error
            raise

    async def _send(self, messages: Sequence[OutboxMessage]) -> None:
        producer = self._producer
        if producer is None:
            raise RuntimeError("the service has not started: no producer yet")
        await send_batched(producer, messages, self._partitioner, (JSON_CONTENT,))

    async def publish_now(self, message: OutboxMessage) -> None:
        await self.publish([message])

    def batch_consumer(self, stage: str, source: TopicSpec, process: Process) -> BatchConsumer:
        """Runs `process` over batches of `source`; a poison record goes to its `.dlq`."""

        async def dead_letter(record: Record, error: str) -> None:
            message = outbox.dead_letter(record, self.settings.kafka.dlq(source), stage, error)
            async with self.pool.acquire() as conn:
                await outbox.write(conn, [message])
            self.metrics.dlq_messages.labels(topic=source.name).inc()
            self.relay.notify()

        self.metrics.dlq_messages.labels(topic=source.name)  # at zero until the first
        return BatchConsumer(stage, process, dead_letter, self.metrics)

    async def sample_outbox(self) -> None:
        async with self.pool.acquire() as conn:
            waiting, oldest_s = await outbox.backlog(conn)
        self.metrics.outbox_backlog.set(waiting)
        self.metrics.outbox_oldest_age.set(oldest_s)

    async def run_samplers(self) -> None:
        """Sample every gauge of the service each `metrics_interval_s`, until cancelled."""
        lag = ConsumerLagMonitor(self.settings.kafka, subscriptions_of(self.broker), self.metrics)
        every = self.settings.metrics_interval_s
        samplers = {"outbox": self.sample_outbox, "consumer_lag": lag.sample, **self.samplers}
        try:
            await asyncio.gather(
                *(sample_forever(name, sample, every) for name, sample in samplers.items())
            )
        finally:
            await lag.close()

    async def start(self) -> None:
        settings = self.settings
        self._pool = await create_pool(
            settings.postgres, settings.postgres.schema_name(self.service)
        )
        await migrate(self._pool, self.migrations)
        await ensure_topics(settings.kafka)
        self._producer = AIOKafkaProducer(
            **client_options(settings.kafka),
            **producer_options(),
            client_id=f"baocao-{self.service}-outbox",
        )
        await self._producer.start()
        self.relay = OutboxRelay(self._pool, self.publish, self.metrics)
        await self.broker.start()
        self._ready = True

    async def stop(self) -> None:
        self._ready = False
        await _bounded("broker", self.broker.stop(), STOP_DRAIN_S)
        if self._producer is not None:
            await _bounded("producer", self._producer.stop(), STOP_DRAIN_S)
        if self._pool is not None and not await _bounded(
            "database pool", self._pool.close(), STOP_RELEASE_S
        ):
            self._pool.terminate()

    async def ready(self) -> bool:
        if not self._ready or self._pool is None:
            return False
        try:
            await asyncio.wait_for(self._pool.fetchval("SELECT 1"), 2.0)
        except Exception:
            return False
        return await self.broker.ping(timeout=2.0)


async def _bounded(part: str, stopping: Awaitable[object], seconds: float) -> bool:
    """Wait for one part of a stop; False (and a warning) when it took too long. The part
    is then cancelled but not awaited: `wait_for` would wait for the cancellation too,
    which is what a hung part may never finish."""
    task = asyncio.ensure_future(stopping)
    done, _ = await asyncio.wait({task}, timeout=seconds)
    if task in done:
        task.result()  # a part that failed raises, as it did before
        return True
    task.cancel()
    log.warning("stop_timed_out", part=part, seconds=seconds)
    return False


def build_http_app(
    runtime: Runtime,
    *,
    title: str,
    on_started: Callable[[], Awaitable[None]] | None = None,
) -> FastAPI:
    """The service's HTTP app; its lifespan starts and stops everything in order."""

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        settings = runtime.settings
        configure_logging(
            runtime.service, settings.log_level, settings.log_format, settings.instance
        )
        try:
            await runtime.start()
            if on_started is not None:
                await on_started()
        except BaseException:
            await runtime.stop()  # what did start (pool, producer, consumers) is released
            raise
        tasks = [
            asyncio.create_task(runtime.relay.run(), name="outbox-relay"),
            asyncio.create_task(runtime.run_samplers(), name="samplers"),
        ]
        tasks += [
            asyncio.create_task(loop(), name=getattr(loop, "__name__", "loop"))
            for loop in runtime.background
        ]
        log.info("service_started", http=f"{settings.host}")
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await _bounded(
                "background tasks", asyncio.gather(*tasks, return_exceptions=True), STOP_RELEASE_S
            )
            await runtime.stop()
            log.info("service_stopped")

    app = FastAPI(title=title, lifespan=lifespan)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(runtime.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": runtime.service}

    @app.get("/readyz", include_in_schema=False)
    async def readyz(response: Response) -> dict[str, str]:
        ready = await runtime.ready()
        response.status_code = 200 if ready else 503
        return {"status": "ready" if ready else "not_ready", "service": runtime.service}

    @app.get("/asyncapi.json", include_in_schema=False)
    async def asyncapi() -> ExactJSONResponse:
        """Every topic and its payload schema (the same document on every service)."""
        return ExactJSONResponse(document())

    return app


def server_config(app: Any, settings: ServiceSettings, port: int) -> uvicorn.Config:
    # uvloop: every service spends much of its time in the event loop's socket work
    # (Kafka, PostgreSQL, HTTP), which libuv does at a fraction of asyncio's cost.
    # Forwarded headers only from the proxies named: uvicorn's own default trusts any
    # loopback peer, and anyone else's X-Forwarded-For would choose their own address.
    trusted = list(settings.forwarded_allow_ips)
    return uvicorn.Config(
        app,
        host=settings.host,
        port=port,
        loop="uvloop",
        log_config=None,
        lifespan="on",
        timeout_graceful_shutdown=30,
        proxy_headers=bool(trusted),
        forwarded_allow_ips=trusted,
    )


def serve(app: FastAPI, settings: ServiceSettings, port: int) -> None:
    """Run until SIGINT/SIGTERM; the lifespan drains the broker and closes the pool."""
    # Built by now: the catalog, the compiled rules, every module. In this process only
    # (tests build apps in theirs, and keep their collector as it was).
    collector.tune(settings.gc_young_threshold)
    collector.freeze_startup()
    uvicorn.Server(server_config(app, settings, port)).run()
