"""The connector's operator endpoints."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter

from shared.db import Pool
from shared.logging import get_logger

from . import store
from .delivery import Deliverer

log = get_logger(__name__)


def build_api(deliverer: Deliverer, pool: Callable[[], Pool]) -> APIRouter:
    api = APIRouter(prefix="/v1/admin", tags=["operators"])

    @api.post("/deliveries/retry-parked")
    async def retry_parked(regime: str | None = None) -> dict[str, int]:
        """Send again the snapshots the hub refused (after the cause is fixed)."""
        async with pool().acquire() as conn:
            count = await store.unpark(conn, regime)
        log.info("parked_deliveries_released", regime=regime, scopes=count)
        deliverer.notify()
        return {"released": count}

    @api.post("/deliveries/reconcile")
    async def reconcile() -> dict[str, int]:
        """Compare with what the hub holds now and resend what it lacks."""
        return {"rewound": await deliverer.reconcile()}

    return api
