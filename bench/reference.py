"""How fast this machine runs the system's own Python in a run: a fixed piece of work, timed.

On the 2-core virtual machine of the README's figures, the same code took a fifth to a
third more CPU a report from one full run to the next, every process alike, with nothing
stolen by the hypervisor. The bench times part of validation's pure work (parse a report
and judge it) over the same reports in its own process, on the idle machine, before the
services start and after they stop: runs whose reference work differs as much as their
figures ran on cores of different speed, not on different code.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from datetime import datetime

from bench.workload import Payload
from services.validation.rules import Facts, RuleBook, validate
from shared import codec
from shared.catalog import Catalog
from shared.contracts import Report

REPORTS = 2_000
ROUNDS = 5


def reference_work(catalog: Catalog, payloads: Sequence[Payload], received_at: datetime) -> float:
    """CPU µs a report of parsing and judging the first REPORTS readable payloads: the
    best of ROUNDS rounds, on this thread's clock."""
    book = RuleBook(catalog)
    raws = list(itertools.islice((p.value for p in payloads if _readable(p.value)), REPORTS))
    if not raws:
        raise ValueError("no readable report among the payloads")
    best = float("inf")
    for _ in range(ROUNDS):
        started = time.thread_time()
        for raw in raws:
            report = codec.decode(Report, raw)
            validate(report, received_at, book, Facts())
        best = min(best, time.thread_time() - started)
    return best / len(raws) * 1e6


def _readable(raw: bytes) -> bool:
    try:
        codec.decode(Report, raw)
    except ValueError:  # pydantic's ValidationError is one
        return False
    return True
