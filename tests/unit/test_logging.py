"""The services' log lines: one JSON object a line, the same keys from structlog and from the
libraries' standard logging, filtered by level."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from shared.logging import configure_logging, get_logger


@pytest.fixture
def restored() -> Iterator[None]:
    """The test's logging set-up undone after it."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()


def written(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in capsys.readouterr().err.splitlines()]


@pytest.mark.usefixtures("restored")
def test_own_and_library_lines_carry_the_same_keys(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("validation", "INFO", instance="v-1")
    log = get_logger("services.validation.verdicts")
    with structlog.contextvars.bound_contextvars(report_id="r-1"):
        log.info("report_rejected", codes=["E113.max"], unit="Hà Nội")
    logging.getLogger("aiokafka.consumer").warning("rebalance %s", "started")
    log.debug("not_shown")
    logging.getLogger("aiokafka.consumer").info("not shown either")
    try:
        raise ZeroDivisionError("division by zero")
    except ZeroDivisionError:
        log.exception("batch_failed")
    log.info("huge_number", revision=10**30)  # beyond orjson's 64 bits: still a line

    lines = written(capsys)
    assert [line["event"] for line in lines] == [
        "report_rejected",
        "rebalance started",
        "batch_failed",
        "huge_number",
    ]
    own, library, failed, huge = lines
    for line in lines:
        assert line["service"] == "validation"
        assert line["instance"] == "v-1"
        assert line["timestamp"].endswith("Z")
    assert own["logger"] == "services.validation.verdicts"
    assert own["level"] == "info"
    assert own["report_id"] == "r-1"
    assert own["codes"] == ["E113.max"]
    assert own["unit"] == "Hà Nội"
    assert library["logger"] == "aiokafka.consumer"
    assert library["level"] == "warning"
    assert failed["level"] == "error"
    assert "ZeroDivisionError: division by zero" in failed["exception"]
    assert huge["revision"] == 10**30
