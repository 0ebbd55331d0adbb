"""The sample-traffic generator's I/O: paces the plan's reports onto the inbound topic.

`python -m services.traffic [--rate N] [--count N] [--seed N]` publishes what
`services.traffic.reports.TrafficPlan` decides, as a province's local systems would: JSON
reports on `reports.inbound.v1` through an idempotent producer with `acks=all`. It also
listens to `reports.outcomes.v1`, as a sender does, so that a run against a system that
already holds reports from an earlier run resends above the revisions it holds.
SIGINT or SIGTERM stops it after flushing what is in flight.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import signal
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError

from services.traffic.reports import Planned, TrafficPlan
from shared import codec
from shared.catalog import load_catalog
from shared.clock import Clock
from shared.contracts import INBOUND, OUTCOMES, Outcome
from shared.kafka_client import client_options, producer_options
from shared.logging import configure_logging, get_logger
from shared.settings import ServiceSettings
from shared.topics import ensure_topics

log = get_logger("services.traffic")

LOG_EVERY = 100
# Sends awaited together: at 5 reports/s each is confirmed at once; at high rates the
# producer batches them.
IN_FLIGHT = 100
IDLE_WAIT_S = 60.0


def positive_rate(text: str) -> float:
    rate = float(text)
    if not rate > 0:
        raise argparse.ArgumentTypeError("the rate must be above 0")
    return rate


def positive_count(text: str) -> int:
    count = int(text)
    if count < 1:
        raise argparse.ArgumentTypeError("the count must be at least 1")
    return count


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="python -m services.traffic",
        description="Send realistic sample reports for the catalog's reporting units to "
        "the inbound topic: first reports, then corrections, duplicates and bad reports.",
    )
    root.add_argument(
        "--rate", type=positive_rate, default=5.0, help="reports per second (default 5)"
    )
    root.add_argument(
        "--count", type=positive_count, default=None, help="stop after N (default: never)"
    )
    root.add_argument(
        "--seed",
        type=int,
        default=None,
        help="seed of the random choices; the same seed sends the same report ids again",
    )
    return root


class Generator:
    """Sends the plan's reports at `rate` per second until `count` or a stop signal."""

    def __init__(
        self,
        settings: ServiceSettings,
        plan: TrafficPlan,
        clock: Clock,
        rate: float,
        count: int | None,
    ) -> None:
        self.settings = settings
        self.plan = plan
        self.clock = clock
        self.interval = 1.0 / rate
        self.count = count
        self.stopping = asyncio.Event()
        self.sent: Counter[str] = Counter()
        self.failed = 0
        self.topic = settings.kafka.topic(INBOUND)

    async def run(self) -> None:
        kafka = self.settings.kafka
        await ensure_topics(kafka)
        producer = AIOKafkaProducer(**client_options(kafka), **producer_options())
        # No group: every partition from its end; only verdicts from now on matter.
        consumer = AIOKafkaConsumer(
            kafka.topic(OUTCOMES),
            **client_options(kafka),
            group_id=None,
            auto_offset_reset="latest",
        )
        await producer.start()
        try:
            await consumer.start()
            listener = asyncio.create_task(self._listen(consumer), name="outcomes")
            try:
                await self._send_all(producer)
            finally:
                listener.cancel()
                await asyncio.gather(listener, return_exceptions=True)
                await consumer.stop()
        finally:
            await producer.stop()
        log.info("traffic_stopped", sent=sum(self.sent.values()), failed=self.failed, **self.sent)

    async def _send_all(self, producer: Any) -> None:
        started = time.monotonic()
        due = started
        in_flight: list[asyncio.Future[Any]] = []
        idle_logged = False
        while not self.stopping.is_set():
            if self.count is not None and sum(self.sent.values()) >= self.count:
                break
            planned = self.plan.next(self.clock.now())
            if planned is None:
                if not idle_logged:
                    log.warning("no_period_accepts_reports", now=self.clock.now().isoformat())
                    idle_logged = True
                await self._sleep(IDLE_WAIT_S)
                continue
            idle_logged = False
            in_flight.append(await self._send(producer, planned))
            if len(in_flight) >= IN_FLIGHT or self.interval >= 0.05:
                await self._settle(in_flight)
            total = sum(self.sent.values())
            if total % LOG_EVERY == 0:
                elapsed = time.monotonic() - started
                log.info(
                    "reports_sent",
                    sent=total,
                    failed=self.failed,
                    rate=round(total / elapsed, 2) if elapsed else None,
                    **self.sent,
                )
            due += self.interval
            await self._sleep(due - time.monotonic())
        await self._settle(in_flight)

    async def _send(self, producer: Any, planned: Planned) -> asyncio.Future[Any]:
        self.sent[planned.kind.value] += 1
        future: asyncio.Future[Any] = await producer.send(
            self.topic, codec.dumps(planned.report), key=planned.key
        )
        return future

    async def _settle(self, in_flight: list[asyncio.Future[Any]]) -> None:
        results = await asyncio.gather(*in_flight, return_exceptions=True)
        in_flight.clear()
        for result in results:
            if isinstance(result, BaseException):
                # A sample report that could not be sent is only a gap in the sample.
                self.failed += 1
                log.warning("send_failed", error=repr(result))

    async def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), seconds)

    async def _listen(self, consumer: Any) -> None:
        while True:
            try:
                batches = await consumer.getmany(timeout_ms=1000)
            except KafkaError as error:
                log.warning("outcomes_unreadable", error=repr(error))
                await asyncio.sleep(1)
                continue
            for records in batches.values():
                for record in records:
                    try:
                        outcome = codec.decode(Outcome, record.value)
                    except ValueError:
                        continue
                    self.plan.learn(outcome)


async def run(settings: ServiceSettings, arguments: argparse.Namespace) -> None:
    catalog = load_catalog(settings.catalog_dir)
    clock = settings.clock()
    plan = TrafficPlan(catalog, random.Random(arguments.seed))
    generator = Generator(settings, plan, clock, arguments.rate, arguments.count)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, generator.stopping.set)
    log.info(
        "traffic_started",
        topic=generator.topic,
        rate=arguments.rate,
        count=arguments.count,
        now=clock.now().isoformat(),
        open_slots=len(plan.slots(clock.now())),
    )
    await generator.run()


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parser().parse_args(argv)
    settings = ServiceSettings()
    configure_logging("traffic", settings.log_level, settings.log_format, settings.instance)
    asyncio.run(run(settings, arguments))
    return 0
