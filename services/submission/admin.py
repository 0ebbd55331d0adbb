"""Submission's operator endpoints: lock exceptions (ngoại lệ khóa sổ).

An operator opens an exception so that one unit may report into a period after its lock,
until the exception expires. It is recorded here (who, when, why, until when) and sent to
validation through the outbox on reports.received.v1, keyed regime|period like the
reports it concerns, so that validation meets it in order with them.

With sender authentication on, every operator endpoint needs an operator's bearer
credential (401 E140 without a good one), and an exception is recorded as opened by that
operator: `opened_by` must name them (403 E141 otherwise). Each exception opened is also
written to the audit log, in the same transaction.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError

from shared import codec, outbox
from shared.audit import AuditEntry
from shared.clock import TIMEZONE
from shared.contracts import RECEIVED, Issue, LockException, regime_period_key
from shared.logging import get_logger
from shared.messages import issue, not_json
from shared.outbox import OutboxMessage
from shared.runtime import Runtime

from . import store
from .access import Access, Denied
from .api import (
    Credential,
    RateLimited,
    TooLarge,
    checks_limited,
    client_address,
    read_capped,
    secret_of,
)
from .intake import contract_issues
from .lock_exceptions import LockExceptionRequest, open_exception

log = get_logger(__name__)

MAX_BODY_BYTES = 16 * 1024
# The filters name codes of the catalog; anything else (a NUL, which PostgreSQL text cannot
# hold, among others) is refused with 422 before it reaches a query.
CODE_PATTERN = r"^[A-Z0-9][A-Z0-9._-]{0,63}$"
PRINTABLE = r"^[A-Za-z0-9._-]+$"


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


def _read(raw: bytes | TooLarge) -> LockExceptionRequest | JSONResponse:
    if isinstance(raw, TooLarge):
        return _refused(413, (issue("E150", size=raw.size, limit=MAX_BODY_BYTES),))
    try:
        document = codec.loads(raw)
    except ValueError as error:
        return _refused(400, (not_json(error),))
    try:
        return LockExceptionRequest.model_validate(document)
    except ValidationError as error:
        return _refused(422, contract_issues(error))


def build_admin_api(runtime: Runtime, access: Access) -> APIRouter:
    api = APIRouter(prefix="/v1/admin", tags=["operators"])

    async def operator(request: Request, credential: Credential) -> str | JSONResponse | None:
        """The operator calling (None when operators are not authenticated), or the refusal."""
        if not access.enabled:
            return None
        client = client_address(request)
        found = await access.operator(runtime.pool, secret_of(credential), client)
        if not isinstance(found, Denied):
            return found
        if found.issue is None:
            return checks_limited(found, client)
        response = _refused(401, (found.issue,))
        response.headers["WWW-Authenticate"] = 'Bearer realm="baocao"'
        return response

    @api.post(
        "/lock-exceptions",
        status_code=201,
        responses={
            201: {"model": RecordedException},
            400: {"model": Refusal, "description": "Not JSON (E100)."},
            401: {"model": Refusal, "description": "No or a bad operator credential (E140)."},
            403: {"model": Refusal, "description": "`opened_by` is not the operator (E141)."},
            429: {"model": RateLimited, "description": "Too many failed credential checks."},
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
    async def open_lock_exception(request: Request, credential: Credential) -> JSONResponse:
        """Let one unit report into a locked period until `expires_at`; recorded with who,
        when and why."""
        who = await operator(request, credential)
        if isinstance(who, JSONResponse):
            return who
        read = _read(await read_capped(request, MAX_BODY_BYTES))
        if isinstance(read, JSONResponse):
            return read
        if who is not None and read.opened_by != who:
            claimed = issue(
                "E141.operator", field="opened_by", operator=who, claimed=read.opened_by
            )
            return _refused(403, (claimed,))
        async with runtime.pool.acquire() as conn, conn.transaction():
            # Opened once no batch from Kafka is deciding how to forward: one that decided
            # before committed before, so only reports received before this exception's
            # opening can reach validation ahead of it (see `ingest`).
            await store.hold_forwarding(conn)
            opened = open_exception(read, runtime.catalog, runtime.clock.now())
            if not isinstance(opened, LockException):
                return _refused(422, opened)
            message = OutboxMessage(
                runtime.topic(RECEIVED),
                regime_period_key(opened.regime, opened.period),
                codec.dumps(opened),
            )
            number = await store.insert_lock_exception(conn, opened)
            await outbox.write(conn, [message])
            await store.audit(
                conn,
                AuditEntry(
                    opened.opened_at,
                    opened.opened_by,
                    "lock_exception.open",
                    f"unit:{opened.unit}",
                    {
                        "id": number,
                        "regime": opened.regime,
                        "period": opened.period,
                        "expires_at": opened.expires_at.isoformat(),
                        "reason": opened.reason,
                    },
                ),
            )
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

    @api.get(
        "/lock-exceptions",
        response_model=list[RecordedException],
        responses={
            401: {"model": Refusal, "description": "No or a bad operator credential (E140)."},
            429: {"model": RateLimited, "description": "Too many failed credential checks."},
        },
    )
    async def list_lock_exceptions(
        request: Request,
        credential: Credential,
        regime: Annotated[str | None, Query(pattern=CODE_PATTERN)] = None,
        period: Annotated[str | None, Query(min_length=1, max_length=16, pattern=PRINTABLE)] = None,
        unit: Annotated[str | None, Query(pattern=CODE_PATTERN)] = None,
    ) -> Any:
        """Every exception opened, oldest first; filtered by regime, period and unit."""
        who = await operator(request, credential)
        if isinstance(who, JSONResponse):
            return who
        async with runtime.pool.acquire() as conn:
            found = await store.lock_exceptions(conn, regime, period, unit)
        return [recorded(number, exception) for number, exception in found]

    return api
