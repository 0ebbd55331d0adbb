"""Submission's operator endpoints: lock exceptions (ngoại lệ khóa sổ).

An operator opens an exception so that one unit may report into a period after its lock,
until the exception expires. It is recorded here (who, when, why, until when) and sent to
validation through the outbox on reports.received.v1, keyed regime|period like the
reports it concerns, so that validation meets it in order with them.

Every operator endpoint depends on `operator_access`: it is the one place where the
operators' credential check belongs.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError

from shared import codec, outbox
from shared.clock import TIMEZONE
from shared.contracts import RECEIVED, Issue, LockException, regime_period_key
from shared.logging import get_logger
from shared.messages import issue
from shared.outbox import OutboxMessage
from shared.runtime import Runtime

from . import store
from .intake import contract_issues
from .lock_exceptions import LockExceptionRequest, open_exception

log = get_logger(__name__)

MAX_BODY_BYTES = 16 * 1024


async def operator_access() -> None:
    """Admits the caller to the operator endpoints.

    Operators are not authenticated yet: the credential check, when it comes, replaces
    this body and every operator endpoint is covered by it.
    """


class RecordedException(BaseModel):
    id: int = Field(description="The exception's number in submission's record.")
    regime: str
    period: str
    unit: str
    expires_at: str = Field(description="ISO 8601, Vietnam time.")
    reason: str
    opened_by: str
    opened_at: str = Field(description="ISO 8601, Vietnam time.")


class Refusal(BaseModel):
    status: str = Field(description='"rejected".')
    issues: tuple[Issue, ...]


def recorded(number: int, exception: LockException) -> dict[str, Any]:
    return {
        "id": number,
        "regime": exception.regime,
        "period": exception.period,
        "unit": exception.unit,
        "expires_at": exception.expires_at.astimezone(TIMEZONE).isoformat(),
        "reason": exception.reason,
        "opened_by": exception.opened_by,
        "opened_at": exception.opened_at.astimezone(TIMEZONE).isoformat(),
    }


def _refused(status: int, issues: tuple[Issue, ...]) -> JSONResponse:
    body = Refusal(status="rejected", issues=issues)
    return JSONResponse(body.model_dump(mode="json"), status_code=status)


def _read(raw: bytes) -> LockExceptionRequest | JSONResponse:
    if len(raw) > MAX_BODY_BYTES:
        return _refused(413, (issue("E150", size=len(raw), limit=MAX_BODY_BYTES),))
    try:
        document = codec.loads(raw)
    except ValueError as error:
        return _refused(400, (issue("E100.json", field="(body)", reason_en=str(error)),))
    try:
        return LockExceptionRequest.model_validate(document)
    except ValidationError as error:
        return _refused(422, contract_issues(error))


def build_admin_api(runtime: Runtime) -> APIRouter:
    api = APIRouter(prefix="/v1/admin", tags=["operators"], dependencies=[Depends(operator_access)])

    @api.post(
        "/lock-exceptions",
        status_code=201,
        responses={
            201: {"model": RecordedException},
            400: {"model": Refusal, "description": "Not JSON (E100)."},
            413: {"model": Refusal, "description": "Too large (E150)."},
            422: {
                "model": Refusal,
                "description": "Not an exception request (E100), or it names no regime,"
                " period or unit of the catalog (E101-E107).",
            },
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": LockExceptionRequest.model_json_schema()}
                },
            }
        },
    )
    async def open_lock_exception(request: Request) -> JSONResponse:
        """Let one unit report into a locked period until `expires_at`; recorded with who,
        when and why."""
        read = _read(await request.body())
        if isinstance(read, JSONResponse):
            return read
        opened = open_exception(read, runtime.catalog, runtime.clock.now())
        if not isinstance(opened, LockException):
            return _refused(422, opened)
        message = OutboxMessage(
            runtime.topic(RECEIVED),
            regime_period_key(opened.regime, opened.period),
            codec.dumps(opened),
        )
        async with runtime.pool.acquire() as conn, conn.transaction():
            number = await store.insert_lock_exception(conn, opened)
            await outbox.write(conn, [message])
        runtime.relay.notify()
        log.info(
            "lock_exception_opened",
            id=number,
            regime=opened.regime,
            period=opened.period,
            unit=opened.unit,
            expires_at=opened.expires_at.isoformat(),
            opened_by=opened.opened_by,
        )
        return JSONResponse(recorded(number, opened), status_code=201)

    @api.get("/lock-exceptions", response_model=list[RecordedException])
    async def list_lock_exceptions(
        regime: str | None = None, period: str | None = None, unit: str | None = None
    ) -> list[dict[str, Any]]:
        """Every exception opened, oldest first; filtered by regime, period and unit."""
        async with runtime.pool.acquire() as conn:
            found = await store.lock_exceptions(conn, regime, period, unit)
        return [recorded(number, exception) for number, exception in found]

    return api
