"""The connector's operator endpoints: see the delivery state, release parked snapshots,
reconcile with the hub now. With an operator credential configured, each needs it as
`Authorization: Bearer <credential>` (401 E140 otherwise: see `access`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from shared.contracts import Issue
from shared.db import Pool
from shared.logging import get_logger

from . import store
from .access import NotAnOperatorError, OperatorCredential
from .delivery import Deliverer
from .store import ListedState

log = get_logger(__name__)

bearer = HTTPBearer(
    auto_error=False,
    description="The operator credential, when the connector is given its digest.",
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
    deliverer: Deliverer, pool: Callable[[], Pool], operator: OperatorCredential
) -> APIRouter:
    def operator_only(
        request: Request,
        credential: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> None:
        try:
            operator.check(credential.credentials if credential is not None else None)
        except NotAnOperatorError:
            client = request.client.host if request.client else "unknown"
            log.info("operator_not_authenticated", client=client, path=request.url.path)
            raise

    api = APIRouter(
        prefix="/v1/admin",
        tags=["operators"],
        dependencies=[Depends(operator_only)],
        responses=REFUSED if operator.required else None,
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
    async def retry_parked(regime: str | None = None) -> dict[str, int]:
        """Send again the snapshots the hub refused (after the cause is fixed)."""
        async with pool().acquire() as conn:
            count = await store.unpark(conn, regime)
        log.info("parked_deliveries_released", regime=regime, scopes=count)
        deliverer.notify()
        return {"released": count}

    @api.post("/deliveries/reconcile")
    async def reconcile() -> dict[str, int | bool]:
        """Compare with what the hub holds now and resend what it lacks."""
        result = await deliverer.reconcile()
        return {"checked": result.checked, "rewound": result.rewound, "complete": result.complete}

    return api
