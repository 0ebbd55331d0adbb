"""The connector's operator endpoints: see the delivery state, release parked snapshots,
reconcile with the hub now."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Query

from shared.db import Pool
from shared.logging import get_logger

from . import store
from .delivery import Deliverer
from .store import ListedState

log = get_logger(__name__)


def build_api(deliverer: Deliverer, pool: Callable[[], Pool]) -> APIRouter:
    api = APIRouter(prefix="/v1/admin", tags=["operators"])

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
