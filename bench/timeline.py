"""When each report's effects appeared, read back from the topics after a run.

A report's times, all in epoch seconds on the machine's clock:
- `received`: its `received_at`, stamped by submission (turned back into real time);
- `verdict`: when its verdict was published on reports.outcomes.v1;
- `snapshot`: when the first province snapshot that counts it was published on
  aggregates.v1 (accepted reports only);
- `hub`: when the hub acknowledged a version of that snapshot at least as new
  (hub.sync.v1; stored, unchanged or stale all mean the hub holds it).

Which snapshot counts a report is found exactly, not guessed from clocks: accepted reports
of a regime and period share one partition, so aggregation applies them in that order, and
every province snapshot it publishes is the fold of a prefix of that sequence. Each
snapshot is matched, in version order, with the shortest prefix whose fold gives exactly
its figures (the `baocao-newest-receipt` header narrows where the prefix may end). A
report then counts from the first snapshot whose prefix holds it. The same walk checks the
pipeline: a snapshot that matches no prefix, or a final snapshot that is not the fold of
every accepted report, is a counting error and is reported as such.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from services.aggregation.folds import (
    Figures,
    Frame,
    State,
    apply,
    empty,
    fold,
    frame_for,
    snapshot,
)
from shared import codec
from shared.catalog import Catalog
from shared.contracts import (
    NEWEST_RECEIPT_HEADER,
    AcceptedReport,
    AggregateSnapshot,
    DeliveryOutcome,
)

RegimePeriod = tuple[str, str]
RealTime = Callable[[datetime], float]
DELIVERED = {
    o.value for o in (DeliveryOutcome.STORED, DeliveryOutcome.UNCHANGED, DeliveryOutcome.STALE)
}


@dataclass
class ReportTimes:
    received: float
    status: str
    verdict: float
    snapshot: float | None = None
    counted_by: int | None = None  # the province snapshot version that first counts it
    hub: float | None = None


@dataclass
class Timeline:
    reports: dict[str, ReportTimes] = field(default_factory=dict)
    duplicate_answers: list[float] = field(default_factory=list)
    snapshots: int = 0
    unmatched_snapshots: list[str] = field(default_factory=list)
    inexact: list[str] = field(default_factory=list)
    never_counted: int = 0

    def done(self, report_id: str) -> float:
        """When everything the report causes up to the province snapshot had happened."""
        times = self.reports[report_id]
        return max(times.verdict, times.snapshot or 0.0)


def _timestamp(record: Any) -> float:
    return float(record.timestamp) / 1000.0


def _header(record: Any, name: str) -> str | None:
    for key, value in record.headers or ():
        if key == name:
            return bytes(value).decode()
    return None


def build(
    catalog: Catalog,
    real_time: RealTime,
    outcomes: Iterable[Any],
    accepted: Iterable[Any],
    aggregates: Iterable[Any],
    hub_sync: Iterable[Any],
) -> Timeline:
    timeline = Timeline()
    for record in outcomes:
        document = orjson.loads(record.value)
        status = document["status"]
        if status == "duplicate":
            timeline.duplicate_answers.append(_timestamp(record))
            continue
        received = document.get("received_at")
        timeline.reports.setdefault(
            document["report_id"],
            ReportTimes(
                received=real_time(datetime.fromisoformat(received)) if received else 0.0,
                status=status,
                verdict=_timestamp(record),
            ),
        )

    sequences: dict[RegimePeriod, list[AcceptedReport]] = defaultdict(list)
    for record in accepted:
        report = codec.decode(AcceptedReport, record.value)
        sequences[(report.regime, report.period)].append(report)

    province = catalog.province
    published: dict[RegimePeriod, list[tuple[float, AggregateSnapshot, datetime | None]]]
    published = defaultdict(list)
    for record in aggregates:
        if not record.key.endswith(f"|{province}".encode()):
            continue
        snap = codec.decode(AggregateSnapshot, record.value)
        newest = _header(record, NEWEST_RECEIPT_HEADER)
        published[(snap.regime, snap.period)].append(
            (_timestamp(record), snap, datetime.fromisoformat(newest) if newest else None)
        )

    acknowledged: dict[RegimePeriod, list[tuple[int, float]]] = defaultdict(list)
    for record in hub_sync:
        document = orjson.loads(record.value)
        if document["unit"] == province and document["outcome"] in DELIVERED:
            attempted = real_time(datetime.fromisoformat(document["attempted_at"]))
            acknowledged[(document["regime"], document["period"])].append(
                (int(document["version"]), attempted)
            )

    for key, reports in sequences.items():
        _attribute(catalog, key, reports, published.get(key, []), timeline)
        _acknowledge(reports, acknowledged.get(key, []), timeline)
    return timeline


def _attribute(
    catalog: Catalog,
    key: RegimePeriod,
    reports: Sequence[AcceptedReport],
    snapshots: Sequence[tuple[float, AggregateSnapshot, datetime | None]],
    timeline: Timeline,
) -> None:
    frame = frame_for(catalog, *key)
    if frame is None:
        timeline.unmatched_snapshots += [f"{key}: no frame"] * len(snapshots)
        return
    province = catalog.province
    state: State = empty()
    position = 0
    for published_at, snap, newest in snapshots:
        timeline.snapshots += 1
        target = _figures(snap)
        trial, end = state, position
        matched = False
        while end < len(reports):
            trial = apply(trial, reports[end])
            end += 1
            if newest is not None and reports[end - 1].received_at != newest:
                continue  # a batch ends with its newest report
            if snapshot(trial, frame, province) == target:
                matched = True
                break
        if not matched:
            timeline.unmatched_snapshots.append(f"{key[0]} {key[1]} v{snap.version}")
            continue
        _count_in(reports[position:end], published_at, snap.version, timeline)
        state, position = trial, end
    if snapshots:
        position = _rest_of_last_batch(
            frame, province, reports, position, state, snapshots[-1], timeline
        )
    timeline.never_counted += len(reports) - position
    final = snapshot(fold(reports), frame, province)
    if not snapshots:
        timeline.inexact.append(f"{key[0]} {key[1]}: no province snapshot")
        return
    last = snapshots[-1][1]
    if _figures(last) != final:
        timeline.inexact.append(f"{key[0]} {key[1]} v{last.version}")


def _rest_of_last_batch(
    frame: Frame,
    province: str,
    reports: Sequence[AcceptedReport],
    position: int,
    state: State,
    last: tuple[float, AggregateSnapshot, datetime | None],
    timeline: Timeline,
) -> int:
    """Count in the last snapshot the rest of its batch: the reports after its matched
    prefix, received with its newest one, up to the last after which the figures are the
    snapshot's. A submission batch can hold several revisions of one unit, and an earlier
    one may give the province the figures of the last: the shortest prefix stops there,
    and no later snapshot shows the rest, as they changed nothing in the end. Returns
    where the uncounted reports start."""
    published_at, snap, newest = last
    target = _figures(snap)
    end = position
    for index in range(position, len(reports)):
        if reports[index].received_at != newest:
            break
        state = apply(state, reports[index])
        if snapshot(state, frame, province) == target:
            end = index + 1
    _count_in(reports[position:end], published_at, snap.version, timeline)
    return end


def _figures(snap: AggregateSnapshot) -> Figures:
    """A snapshot's content, as the fold's `snapshot` gives it."""
    return Figures(snap.regime_version, snap.values, snap.completeness)


def _count_in(
    reports: Sequence[AcceptedReport], published_at: float, version: int, timeline: Timeline
) -> None:
    """These reports reached the province in this snapshot, unless an earlier one had."""
    for report in reports:
        times = timeline.reports.get(report.report_id)
        if times is not None and times.snapshot is None:
            times.snapshot, times.counted_by = published_at, version


def _acknowledge(
    reports: Sequence[AcceptedReport], acks: Sequence[tuple[int, float]], timeline: Timeline
) -> None:
    """A report reaches the hub with the first acknowledgement of a version that counts it."""
    if not acks:
        return
    by_version = sorted(acks)
    versions = [v for v, _ in by_version]
    # The earliest acknowledgement of any version at or above each entry.
    earliest = [t for _, t in by_version]
    for i in range(len(earliest) - 2, -1, -1):
        earliest[i] = min(earliest[i], earliest[i + 1])
    for report in reports:
        times = timeline.reports.get(report.report_id)
        if times is None or times.counted_by is None:
            continue
        index = bisect.bisect_left(versions, times.counted_by)
        if index < len(versions):
            times.hub = earliest[index]
