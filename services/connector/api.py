"""The connector's operator endpoints: see the delivery state, release parked snapshots,
reconcile with the hub now. With operators configured, each needs one's credential as
`Authorization: Bearer <name>.<secret>` (401 E140 otherwise: see `access`), and each
action (not a listing) is written to the audit log under that operator's name: releasing
parked snapshots in the transaction that releases them; a reconciliation, whose rewinds
are each their own transaction (as on the timer), once it is done, with what it found.
A refused call writes nothing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from shared import audit
from shared.audit import AuditEntry
from shared.clock import Clock
from shared.contracts import Issue
from shared.db import Pool
from shared.logging import get_logger

from . import store
from .access import NotAnOperatorError, Operators
from .delivery import Deliverer
from .store import ListedState

log = get_logger(__name__)

bearer = HTTPBearer(
    auto_error=False,
    description="An operator's credential (`<name>.<secret>`), when the connector is given "
    "operators' digests.",
)


class Refusal(BaseModel):
    status: str = Field(description='"rejected".')
    issues: tuple[Issue, ...]


REFUSED: dict[int | str, dict[str, Any]] = {
    401: {"model": Refusal, "description": "No or a wrong operator credential (E140)."}
}


def answer_refusal(app: FastAPI) -> None:
    async def refused(_: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, NotAnOperatorError)
        body = Refusal(status="rejected", issues=(error.issue,))
        return JSONResponse(
            body.model_dump(mode="json"),
            status_code=401,
            headers={"WWW-Authenticate": 'Bearer realm="baocao"'},
        )

    app.add_exception_handler(NotAnOperatorError, refused)


def build_api(
    deliverer: Deliverer, pool: Callable[[], Pool], operators: Operators, clock: Clock
) -> APIRouter:
    def operator_only(
        request: Request,
        credential: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> str:
        try:
            return operators.check(credential.credentials if credential is not None else None)
        except NotAnOperatorError:
            client = request.client.host if request.client else "unknown"
            log.info("operator_not_authenticated", client=client, path=request.url.path)
            raise

    # FastAPI runs a dependency once per request: the router's check is the one that names
    # the operator to an action. (A default, not `Annotated`: annotations are resolved in
    # the module's namespace, where this closure is not.)
    operator = Depends(operator_only)
    api = APIRouter(
        prefix="/v1/admin",
        tags=["operators"],
        dependencies=[operator],
        responses=REFUSED if operators.required else None,
    )

    @api.get("/deliveries")
    async def deliveries(
        state: ListedState | None = None,
        regime: str | None = None,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    ) -> list[dict[str, Any]]:
        """Each scope's delivery state: latest version known and acknowledged, parked
        version, attempts, next attempt (null: due now) and the last attempt's result."""
        async with pool().acquire() as conn:
            return await store.listing(conn, state, regime, limit)

    @api.post("/deliveries/retry-parked")
    async def retry_parked(regime: str | None = None, who: str = operator) -> dict[str, int]:
        """Send again the snapshots the hub refused (after the cause is fixed)."""
        async with pool().acquire() as conn, conn.transaction():
            released = await store.unpark(conn, regime)
            released_scopes = [
                {"regime": r, "period": p, "unit": u, "version": v} for r, p, u, v in released
            ]
            entry = AuditEntry(
                clock.now(),
                who,
                "deliveries.retry_parked",
                _target(regime),
                {"regime": regime, "released": released_scopes},
            )
            await audit.record(conn, entry)
        log.info("parked_deliveries_released", regime=regime, scopes=len(released), actor=who)
        deliverer.notify()
        return {"released": len(released)}

    @api.post("/deliveries/reconcile")
    async def reconcile(who: str = operator) -> dict[str, int | bool]:
        """Compare with what the hub holds now and resend what it lacks."""
        result = await deliverer.reconcile()
        found = {"checked": result.checked, "rewound": result.rewound, "complete": result.complete}
        async with pool().acquire() as conn:
            entry = AuditEntry(clock.now(), who, "deliveries.reconcile", _target(None), found)
            await audit.record(conn, entry)
        log.info("deliveries_reconciled", actor=who, **found)
        return found

    return api


def _target(regime: str | None) -> str:
    """What an action was on: the deliveries of one regime, or all."""
    return "deliveries" if regime is None else f"deliveries:{regime}"
