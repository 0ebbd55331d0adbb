from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.system.stack import Stack

NOW = "2026-03-16T10:00:00+07:00"


@pytest.fixture
def stack(
    namespace: str, kafka_bootstrap: str, postgres_dsn: str, tmp_path: Path
) -> Iterator[Stack]:
    """Every service as a process, on fresh topics and schemas, with the clock at NOW."""
    running = Stack(namespace, kafka_bootstrap, postgres_dsn, tmp_path, now=NOW)
    try:
        running.start_all()
        yield running
    finally:
        running.stop_all()
