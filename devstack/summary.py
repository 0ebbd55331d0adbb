"""The live summary `devstack run` prints: a few numbers from every service's `/metrics`.

One plain line per refresh (no curses), so that it reads the same in a terminal and in a
log. Each counter is summed over every service that exports it: a metric is only ever
moved by the service that owns the step, so the sum is that step's count.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import httpx
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

SCRAPE_TIMEOUT_S = 1.5
HUB_OUTCOMES = ("stored", "unchanged", "stale", "refused", "failed")


@dataclass(frozen=True)
class Endpoint:
    name: str
    url: str


@dataclass(frozen=True)
class Figures:
    """The numbers of one refresh; `silent` names the services that did not answer."""

    received: float = 0
    accepted: float = 0
    rejected: float = 0
    duplicates: float = 0
    dlq: float = 0
    snapshots: float = 0
    hub: Mapping[str, float] = field(default_factory=dict)
    hub_stored: float = 0
    outbox_backlog: float = 0
    hub_backlog: float = 0
    silent: tuple[str, ...] = ()


def parse(text: str) -> list[Sample]:
    return [sample for family in text_string_to_metric_families(text) for sample in family.samples]


def total(samples: Sequence[Sample], name: str, **labels: str) -> float:
    return sum(
        sample.value
        for sample in samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


def by_label(samples: Sequence[Sample], name: str, label: str) -> dict[str, float]:
    found: dict[str, float] = {}
    for sample in samples:
        if sample.name == name and label in sample.labels:
            key = sample.labels[label]
            found[key] = found.get(key, 0) + sample.value
    return found


def figures(texts: Mapping[str, str | None]) -> Figures:
    """The summary's numbers from each service's metrics text (None: it did not answer)."""
    samples = [sample for text in texts.values() if text is not None for sample in parse(text)]
    return Figures(
        received=total(samples, "baocao_reports_received_total"),
        accepted=total(samples, "baocao_report_verdicts_total", status="accepted"),
        rejected=total(samples, "baocao_report_verdicts_total", status="rejected"),
        duplicates=total(samples, "baocao_reports_duplicate_total"),
        dlq=total(samples, "baocao_dlq_messages_total"),
        snapshots=total(samples, "baocao_snapshots_emitted_total"),
        hub=by_label(samples, "baocao_hub_deliveries_total", "outcome"),
        hub_stored=total(samples, "baocao_hubsim_snapshots_stored_total"),
        outbox_backlog=total(samples, "baocao_outbox_backlog"),
        hub_backlog=total(samples, "baocao_hub_delivery_backlog"),
        silent=tuple(name for name, text in texts.items() if text is None),
    )


def _n(value: float) -> str:
    return f"{value:.0f}"


def render(now: Figures, before: Figures | None, seconds: float, clock: str) -> str:
    """One line: totals since the services started, and the receipt rate since `before`."""
    rate = ""
    if before is not None and seconds > 0:
        rate = f" ({max(now.received - before.received, 0) / seconds:.1f}/s)"
    hub = " ".join(f"{outcome} {_n(now.hub.get(outcome, 0))}" for outcome in HUB_OUTCOMES)
    parts = [
        f"[{clock}] received {_n(now.received)}{rate}",
        f"accepted {_n(now.accepted)} rejected {_n(now.rejected)}",
        f"duplicates {_n(now.duplicates)}",
        f"dlq {_n(now.dlq)}",
        f"snapshots {_n(now.snapshots)}",
        f"hub deliveries: {hub}",
        f"hub sim stored {_n(now.hub_stored)}",
        f"backlog: outbox {_n(now.outbox_backlog)} hub {_n(now.hub_backlog)}",
    ]
    if now.silent:
        parts.append("no answer: " + ", ".join(now.silent))
    return " | ".join(parts)


def scrape(client: httpx.Client, endpoints: Sequence[Endpoint]) -> dict[str, str | None]:
    texts: dict[str, str | None] = {}
    for endpoint in endpoints:
        try:
            response = client.get(endpoint.url, timeout=SCRAPE_TIMEOUT_S)
            texts[endpoint.name] = response.text if response.status_code == 200 else None
        except httpx.HTTPError:
            texts[endpoint.name] = None
    return texts


class Summary:
    """Scrapes the endpoints and renders one line, with the rate since the last line."""

    def __init__(self, client: httpx.Client, endpoints: Sequence[Endpoint]) -> None:
        self.client = client
        self.endpoints = endpoints
        self._before: Figures | None = None
        self._at = time.monotonic()

    def line(self) -> str:
        now = figures(scrape(self.client, self.endpoints))
        at = time.monotonic()
        text = render(now, self._before, at - self._at, time.strftime("%H:%M:%S"))
        self._before, self._at = now, at
        return text
