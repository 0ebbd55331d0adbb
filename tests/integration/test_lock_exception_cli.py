"""The operators' command line for lock exceptions (`python -m services.submission
lock-exception open|list`) against a running submission service, on real PostgreSQL and
Kafka, with sender authentication on as deployed.

Proves: `open`, with an operator's credential in BAOCAO_OPERATOR_CREDENTIAL and no
`--opened-by`, records the exception in that operator's name, opened at the service's
clock, with its reason and expiry, prints it as recorded, writes one audit row for it and
sends it to validation on reports.received.v1; `list` shows it. An invocation the service
refuses (an expiry already past, a regime the catalog lacks, another operator's name)
exits with status 1, prints every issue in English and Vietnamese, and records, audits and
sends nothing.
"""

from __future__ import annotations

import asyncio
import io
import json
from datetime import datetime
from typing import Any

import asyncpg
import httpx
import pytest

from services.submission import cli
from services.submission.app import build_app
from shared import codec
from shared.contracts import RECEIVED, LockException
from tests import registry
from tests.factories import NOW
from tests.harness import TopicReader, running

OPERATOR = "nguyen-van-a"
REASON = "Đơn vị bị mất điện kéo dài, gửi bù số liệu quý IV"
OPEN = [
    "open",
    "--regime=KSTT-TTHC",
    "--period=2025-Q4",  # locked since 2026-01-17; the service's clock starts at NOW
    "--unit=TB.DH.N01",
    "--expires-at=2026-03-20T17:00:00+07:00",
    f"--reason={REASON}",
]


class InLoop(httpx.BaseTransport):
    """Carries the synchronous requests of the command line, run in a worker thread, to
    the service running in the test's event loop."""

    def __init__(self, service: httpx.AsyncClient, loop: asyncio.AbstractEventLoop) -> None:
        self._service = service
        self._loop = loop

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        forwarded = httpx.Request(
            request.method, request.url, headers=request.headers, content=request.read()
        )
        sent = asyncio.run_coroutine_threadsafe(self._service.send(forwarded), self._loop)
        answer = sent.result(timeout=60)
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)


async def lock_exception(service: httpx.AsyncClient, *argv: str) -> tuple[int, str, str]:
    """Exit status, output and errors of `lock-exception <argv>`."""
    out, err = io.StringIO(), io.StringIO()
    status = await asyncio.to_thread(
        cli.main,
        ["lock-exception", *argv, "--url=http://submission"],
        transport=InLoop(service, asyncio.get_running_loop()),
        out=out,
        err=err,
    )
    return status, out.getvalue(), err.getvalue()


def replaced(argv: list[str], option: str, value: str) -> list[str]:
    return [f"{option}={value}" if a.startswith(f"{option}=") else a for a in argv]


async def recorded_rows(dsn: str, namespace: str) -> tuple[list[Any], list[Any]]:
    """The lock exceptions and the audit log, as submission's database holds them."""
    conn = await asyncpg.connect(dsn)
    try:
        schema = f'"{namespace}submission"'
        exceptions = await conn.fetch(f"SELECT * FROM {schema}.lock_exceptions ORDER BY id")
        audit = await conn.fetch(
            f"SELECT at, actor, action, target, details FROM {schema}.audit_log ORDER BY id"
        )
    finally:
        await conn.close()
    return exceptions, audit


async def test_an_operator_opens_a_lock_exception_from_the_command_line(
    namespace: str, kafka_bootstrap: str, postgres_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = registry.secured(namespace, kafka_bootstrap, postgres_dsn)
    monkeypatch.setenv(
        cli.CREDENTIAL_VARIABLE, await registry.cli(config, "operators", "create", OPERATOR)
    )
    async with running(build_app(config)) as service:
        past = await lock_exception(
            service, *replaced(OPEN, "--expires-at", "2026-03-01T00:00:00+07:00")
        )
        unknown = await lock_exception(service, *replaced(OPEN, "--regime", "KSTT-XYZ"))
        as_other = await lock_exception(service, *OPEN, "--opened-by=someone-else")
        opened = await lock_exception(service, *OPEN)
        assert opened[0] == 0, opened[2]
        listed = await lock_exception(service, "list", "--unit=TB.DH.N01")
        async with TopicReader(kafka_bootstrap, config.kafka.topic(RECEIVED)) as received:
            # One key, one partition: a refused invocation's message would come first.
            sent = (await received.until(1))[0]
    exceptions, audit = await recorded_rows(postgres_dsn, namespace)

    status, out, err = opened
    assert (status, err) == (0, "")
    printed = json.loads(out)
    (row,) = exceptions  # none of the refused invocations
    assert (row["regime"], row["period"], row["unit"]) == ("KSTT-TTHC", "2025-Q4", "TB.DH.N01")
    assert (row["opened_by"], row["reason"]) == (OPERATOR, REASON)
    assert row["expires_at"] == datetime.fromisoformat("2026-03-20T17:00:00+07:00")
    assert NOW <= row["opened_at"] < row["expires_at"]  # when: by the service's clock
    assert printed == {
        "id": row["id"],
        "regime": "KSTT-TTHC",
        "period": "2025-Q4",
        "unit": "TB.DH.N01",
        "expires_at": "2026-03-20T17:00:00+07:00",
        "reason": REASON,
        "opened_by": OPERATOR,
        "opened_at": printed["opened_at"],
    }
    assert datetime.fromisoformat(printed["opened_at"]) == row["opened_at"]

    # The refused invocations audited nothing.
    assert [a["action"] for a in audit] == ["operator.create", "lock_exception.open"]
    entry = audit[1]
    assert (entry["actor"], entry["at"]) == (OPERATOR, row["opened_at"])
    assert entry["target"] == "unit:TB.DH.N01"
    assert json.loads(entry["details"]) == {
        "id": row["id"],
        "regime": "KSTT-TTHC",
        "period": "2025-Q4",
        "expires_at": "2026-03-20T17:00:00+07:00",
        "reason": REASON,
    }
    assert sent.key == b"KSTT-TTHC|2025-Q4"
    assert codec.decode(LockException, sent.value).opened_at == row["opened_at"]

    status, out, _ = listed
    header, line = out.splitlines()
    assert status == 0
    assert header.split() == list(cli.COLUMNS)
    assert line.split()[:6] == [
        str(row["id"]), "KSTT-TTHC", "2025-Q4", "TB.DH.N01", "2026-03-20T17:00:00+07:00", OPERATOR,
    ]  # fmt: skip

    status, out, err = past
    assert (status, out) == (1, "")
    assert "E100 expires_at: A lock exception must expire after it is opened (" in err
    assert "Ngoại lệ khóa sổ phải hết hạn sau thời điểm mở" in err
    status, out, err = unknown
    assert (status, out) == (1, "")
    assert "E101 regime: Regime KSTT-XYZ is not in the province's catalog" in err
    assert "Chế độ báo cáo KSTT-XYZ không có trong danh mục của tỉnh" in err
    status, out, err = as_other
    assert (status, out) == (1, "")
    assert f"E141 opened_by: Operator {OPERATOR} cannot act under the name someone-else." in err
