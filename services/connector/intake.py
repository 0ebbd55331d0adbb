"""Taking in snapshot versions from aggregates.v1: keep the latest per scope, durably."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from pydantic import ValidationError

from shared import codec, outbox
from shared.batches import Record
from shared.catalog import Catalog
from shared.contracts import AGGREGATES, NEWEST_RECEIPT_HEADER, AggregateSnapshot
from shared.runtime import Runtime

from . import store
from .delivery import Deliverer
from .store import Known


class SyncLevelsError(ValueError):
    """The sync levels setting names a unit type the catalog does not have."""


def sync_levels(catalog: Catalog, levels: Iterable[str]) -> frozenset[str]:
    """The unit types to sync, checked against the catalog: a misspelt level would
    otherwise send nothing to the hub, silently."""
    known = {unit.type for unit in catalog.units}
    wanted = frozenset(levels)
    unknown = sorted(wanted - known)
    if unknown:
        raise SyncLevelsError(
            f"BAOCAO_CONNECTOR__SYNC_LEVELS names unit types the catalog does not have: "
            f"{', '.join(unknown)}; the catalog's unit types are {', '.join(sorted(known))}"
        )
    return wanted


def newest_receipt(record: Record) -> datetime | None:
    for name, value in record.headers or ():
        if name == NEWEST_RECEIPT_HEADER:
            try:
                return datetime.fromisoformat(value.decode())
            except ValueError:
                return None
    return None


class SnapshotIntake:
    def __init__(self, runtime: Runtime, levels: Iterable[str], deliverer: Deliverer) -> None:
        self._rt = runtime
        self._levels = sync_levels(runtime.catalog, levels)
        self._deliverer = deliverer

    def synced(self, snapshot: AggregateSnapshot) -> bool:
        """Only the configured levels go to the hub (by default the province)."""
        unit = self._rt.catalog.unit(snapshot.unit)
        return unit is not None and unit.type in self._levels

    async def take(self, records: Sequence[Record]) -> None:
        known: list[Known] = []
        dead: list[outbox.OutboxMessage] = []
        for record in records:
            try:
                snapshot = codec.decode_internal(AggregateSnapshot, record.value or b"")
            except (ValueError, ValidationError) as error:
                dlq = self._rt.settings.kafka.dlq(AGGREGATES)
                dead.append(outbox.dead_letter(record, dlq, "deliver", str(error)))
                continue
            if self.synced(snapshot):
                known.append(Known(snapshot, newest_receipt(record)))
        async with self._rt.pool.acquire() as conn, conn.transaction():
            moved = await store.remember(conn, known)
            await outbox.write(conn, dead)
        if dead:
            # Counted after the commit, so a batch retried after a failure counts once.
            self._rt.metrics.dlq_messages.labels(topic=AGGREGATES.name).inc(len(dead))
            self._rt.relay.notify()
        if moved:
            self._deliverer.notify()
