"""Reports kept flowing while a test breaks something: a background task sends them in small
batches, each once the batch before it has all its verdicts, so that from the first batch
to the last some reports are always between submission and their verdict. Each batch waits
for the one before it, so a unit's next revision never overtakes its last (a revision sent
before the previous one is judged would be judged stale)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Iterator
from functools import partial
from itertools import islice
from types import TracebackType

from aiokafka import AIOKafkaProducer

from shared import codec
from shared.contracts import Outcome, Report
from tests.harness import TopicReader, eventually

# Long enough for the group to rebalance and a partition to change leader after a crash.
BATCH_VERDICTS_TIMEOUT_S = 120.0


class ReportStream:
    """`async with ReportStream(...) as stream:` sends `reports` (at most `limit` batches of
    `size`) until the block ends; `sent` and `in_flight` say where the flow is. It reads
    `outcomes` while it runs: nothing else may poll that reader meanwhile."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        outcomes: TopicReader,
        reports: Iterable[Report],
        *,
        size: int,
        limit: int,
    ) -> None:
        self.sent: list[Report] = []
        self.batches = 0  # sent and acknowledged by the brokers
        self.in_flight = False  # a batch is being sent or waits for its verdicts
        self._topic = topic
        self._outcomes = outcomes
        self._reports = iter(reports)
        self._size = size
        self._limit = limit
        self._judged: set[str] = set()
        self._read = 0
        self._stop = asyncio.Event()
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap, acks="all", enable_idempotence=True
        )
        self._task: asyncio.Task[None] | None = None

    async def flowing(self, since: int = 0) -> bool:
        """Whether two batches more than `since` were sent and one is on its way now (being
        sent, or waiting for its verdicts). Raises if the stream failed or ran out."""
        assert self._task is not None
        if self._task.done() and not self._task.cancelled() and self._task.exception():
            raise AssertionError("the report stream failed") from self._task.exception()
        assert self.batches < self._limit, f"the stream sent all its {self._limit} batches"
        return self.batches >= since + 2 and self.in_flight

    async def __aenter__(self) -> ReportStream:
        await self._producer.start()
        self._task = asyncio.create_task(self._run(), name="report-stream")
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Lets the batch in flight be judged, then stops; on an error, stops at once."""
        self._stop.set()
        assert self._task is not None
        try:
            if kind is not None:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
            else:
                await self._task
        finally:
            await self._producer.stop()

    def _batches(self) -> Iterator[list[Report]]:
        for _ in range(self._limit):
            batch = list(islice(self._reports, self._size))
            if not batch:
                return
            yield batch

    async def _run(self) -> None:
        for batch in self._batches():
            if self._stop.is_set():
                return
            self.in_flight = True
            futures = [await self._producer.send(self._topic, codec.dumps(r)) for r in batch]
            await asyncio.gather(*futures)
            self.sent.extend(batch)
            self.batches += 1
            judged = partial(self._all_judged, {r.report_id for r in batch})
            await eventually(judged, timeout=BATCH_VERDICTS_TIMEOUT_S, interval=0.2)
            self.in_flight = False

    async def _all_judged(self, ids: set[str]) -> bool:
        records = await self._outcomes.poll()
        for record in records[self._read :]:
            self._judged.add(codec.decode(Outcome, record.value).report_id)
        self._read = len(records)
        return ids <= self._judged
