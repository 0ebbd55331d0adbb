"""Verdicts stored as jsonb before they were kept as the published bytes read back the same."""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path

from services.submission import store as submission_store
from services.validation.store import decided
from shared import codec
from shared.contracts import Issue, Outcome, Severity, Status
from shared.db import create_pool, migrate
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


async def test_submission_reads_a_verdict_stored_as_jsonb_the_same_after_the_migration(
    namespace: str, postgres_dsn: str, tmp_path: Path
) -> None:
    migration = "007_outcome_bytes.sql"
    settings = PostgresSettings(dsn=postgres_dsn)  # type: ignore[arg-type]
    pool = await create_pool(settings, f"{namespace}submission")
    try:
        await migrate(pool, before("submission", migration, tmp_path))
        await pool.execute(
            "INSERT INTO verdicts (report_id, status, contract_only, outcome)"
            " VALUES ($1, $2, false, $3::text::jsonb)",
            OUTCOME.report_id,
            OUTCOME.status.value,
            codec.dumps(OUTCOME).decode(),
        )
        assert await migrate(pool, SERVICES / "submission" / "migrations") == [migration]
        async with pool.acquire() as conn:
            assert await submission_store.verdicts_of(conn, ["r-1"]) == {"r-1": OUTCOME}
            assert await submission_store.report_state(conn, "r-1") == (None, OUTCOME)
            assert await submission_store.report_unit(conn, "r-1") == "TB.DH.N01"
            # Read again (a replay): the published bytes replace jsonb's own spelling.
            await submission_store.save_verdicts(conn, [OUTCOME])
            stored = await conn.fetchval("SELECT outcome FROM verdicts")
        assert stored == codec.dumps(OUTCOME)
    finally:
        await pool.close()


async def test_validation_keeps_a_verdict_stored_as_jsonb_as_its_json_text(
    namespace: str, postgres_dsn: str, tmp_path: Path
) -> None:
    migration = "003_outcome_bytes.sql"
    settings = PostgresSettings(dsn=postgres_dsn)  # type: ignore[arg-type]
    pool = await create_pool(settings, f"{namespace}validation")
    try:
        await migrate(pool, before("validation", migration, tmp_path))
        await pool.execute(
            "INSERT INTO verdicts (report_id, regime, period, unit, revision, status, outcome,"
            " decided_at) VALUES ('r-1', 'KSTT-TTHC', '2026-Q1', 'TB.DH.N01', 1, 'rejected',"
            " $1::text::jsonb, $2)",
            codec.dumps(OUTCOME).decode(),
            AT,
        )
        assert await migrate(pool, SERVICES / "validation" / "migrations") == [migration]
        async with pool.acquire() as conn:
            stored = await conn.fetchval("SELECT outcome FROM verdicts")
            assert await decided(conn, {"r-1", "r-2"}) == {"r-1"}
        assert codec.decode_internal(Outcome, stored) == OUTCOME
    finally:
        await pool.close()
