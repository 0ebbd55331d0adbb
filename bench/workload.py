"""The reports a benchmark sends: the sample-traffic plan's, encoded once before the clock runs.

Pure: the catalog, a seed and the instant the plan reasons at in; payloads out. The plan
(`services.traffic.reports`) covers every open regime, period and reporting unit, with
values that satisfy each regime's rules, then corrections, exact duplicates and reports
that must be refused, in the shares the generator uses. One plan serves a whole run, so
the revisions of a later phase continue those of an earlier one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from random import Random

from services.traffic.reports import Kind, TrafficPlan
from shared import codec
from shared.catalog import Catalog


@dataclass(frozen=True, slots=True)
class Payload:
    """One message for reports.inbound.v1, as a local system would send it."""

    key: bytes
    value: bytes
    kind: Kind
    report_id: str


class Workload:
    """Draws payloads from one traffic plan, phase after phase."""

    def __init__(self, catalog: Catalog, now: datetime, seed: int) -> None:
        self._plan = TrafficPlan(catalog, Random(seed))
        self._now = now
        if not self._plan.slots(now):
            raise ValueError(f"no period of the catalog accepts reports at {now.isoformat()}")

    @property
    def slots(self) -> int:
        return len(self._plan.slots(self._now))

    def take(self, count: int) -> list[Payload]:
        payloads: list[Payload] = []
        for _ in range(count):
            planned = self._plan.next(self._now)
            assert planned is not None  # the constructor checked that slots are open
            report = planned.report
            payloads.append(
                Payload(planned.key, codec.dumps(report), planned.kind, report.report_id)
            )
        return payloads


def kinds(payloads: Sequence[Payload]) -> dict[str, int]:
    """How many payloads of each kind (first, correction, duplicate, bad_*)."""
    return dict(sorted(Counter(p.kind.value for p in payloads).items()))


def values_per_report(payloads: Sequence[Payload]) -> tuple[int, int]:
    """The fewest and the most indicator values one report carries."""
    counts = [len(codec.loads(p.value)["values"]) for p in payloads]
    return (min(counts), max(counts)) if counts else (0, 0)
