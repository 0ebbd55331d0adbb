"""Verdicts stored as jsonb before they were kept as the published bytes read back the same."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from pathlib import Path

import pytest

from services.submission import store as submission_store
from services.validation.store import decided
from shared import codec
from shared.contracts import Issue, Outcome, Severity, Status
from shared.db import Connection, create_pool, migrate
from shared.settings import PostgresSettings

SERVICES = Path(__file__).parents[2] / "services"
AT = datetime.fromisoformat("2026-03-16T10:00:00+07:00")
OUTCOME = Outcome(
    report_id="r-1",
    regime="KSTT-TTHC",
    period="2026-Q1",
    unit="TB.DH.N01",
    revision=1,
    status=Status.REJECTED,
    received_at=AT,
    issues=(
        Issue(
            code="E110",
            severity=Severity.ERROR,
            indicator="ONLINE",
            field="values.ONLINE",
            message_vi="Giá trị nhỏ hơn mức tối thiểu",
            message_en="The value is below its minimum",
        ),
    ),
)


def before(service: str, migration: str, tmp_path: Path) -> Path:
    """A folder of the service's migrations up to, not including, `migration`."""
    folder = tmp_path / service
    folder.mkdir()
    for path in (SERVICES / service / "migrations").glob("*.sql"):
        if path.name < migration:
            shutil.copy(path, folder)
    return folder


@contextlib.asynccontextmanager
async def stored_before(
    service: str, migration: str, insert: str, dsn: str, namespace: str, tmp_path: Path
) -> AsyncIterator[Connection]:
    """A connection to the service's schema, where OUTCOME was inserted (`insert`, its
    JSON as $1) before `migration`, then migrated to the end."""
    settings = PostgresSettings(dsn=dsn)  # type: ignore[arg-type]
    pool = await create_pool(settings, f"{namespace}{service}")
    try:
        await migrate(pool, before(service, migration, tmp_path))
        await pool.execute(insert, codec.dumps(OUTCOME).decode())
        assert await migrate(pool, SERVICES / service / "migrations") == [migration]
        async with pool.acquire() as conn:
            yield conn
    finally:
        await pool.close()


async def submission_reads_it_back(conn: Connection) -> None:
    assert await submission_store.verdicts_of(conn, ["r-1"]) == {"r-1": OUTCOME}
    assert await submission_store.report_state(conn, "r-1") == (None, OUTCOME)
    assert await submission_store.report_unit(conn, "r-1") == "TB.DH.N01"
    # Read again (a replay): the published bytes replace jsonb's own spelling.
    await submission_store.save_verdicts(conn, [OUTCOME])
    assert await conn.fetchval("SELECT outcome FROM verdicts") == codec.dumps(OUTCOME)


async def validation_reads_it_back(conn: Connection) -> None:
    assert await decided(conn, {"r-1", "r-2"}) == {"r-1"}
    stored = await conn.fetchval("SELECT outcome FROM verdicts")
    assert codec.decode_internal(Outcome, stored) == OUTCOME


@pytest.mark.parametrize(
    ("service", "migration", "insert", "reads_it_back"),
    [
        (
            "submission",
            "007_outcome_bytes.sql",
            "INSERT INTO verdicts (report_id, status, contract_only, outcome)"
            " VALUES ('r-1', 'rejected', false, $1::text::jsonb)",
            submission_reads_it_back,
        ),
        (
            "validation",
            "003_outcome_bytes.sql",
            "INSERT INTO verdicts (report_id, regime, period, unit, revision, status, outcome,"
            " decided_at) VALUES ('r-1', 'KSTT-TTHC', '2026-Q1', 'TB.DH.N01', 1, 'rejected',"
            " $1::text::jsonb, '2026-03-16T10:00:00+07:00')",
            validation_reads_it_back,
        ),
    ],
    ids=["submission", "validation"],
)
async def test_a_verdict_stored_as_jsonb_reads_back_the_same_once_kept_as_bytes(
    service: str,
    migration: str,
    insert: str,
    reads_it_back: Callable[[Connection], Awaitable[None]],
    namespace: str,
    postgres_dsn: str,
    tmp_path: Path,
) -> None:
    async with stored_before(service, migration, insert, postgres_dsn, namespace, tmp_path) as conn:
        await reads_it_back(conn)
