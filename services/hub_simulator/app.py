"""A stand-in for the national hub (Hệ thống thông tin báo cáo Chính phủ), per DESIGN §5.

OAuth2 client-credentials tokens that expire; `PUT` idempotent by `Idempotency-Key`
(same key and body: `unchanged`; same key, other body: 422); `409 stale` when a higher
version is stored; 422 with reasons for a body it refuses; 429/503 with `Retry-After`
from fault knobs settable at start and at run time. It keeps everything it stored, in
order, so tests and operators can audit it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
import secrets
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from fastapi import FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import ValidationError

from shared import codec
from shared.contracts import AggregateSnapshot
from shared.db import Pool, create_pool, migrate
from shared.logging import configure_logging, get_logger
from shared.observability.metrics import HubSimulatorMetrics
from shared.web import ExactJSONResponse as JSONResponse

from . import store
from .faults import FaultState
from .settings import Faults, HubSimulatorSettings

log = get_logger(__name__)
MIGRATIONS = Path(__file__).parent / "migrations"


class Tokens:
    def __init__(self) -> None:
        self._expiry: dict[str, datetime] = {}

    def issue(self, now: datetime, ttl_s: int) -> str:
        token = secrets.token_urlsafe(24)
        self._expiry[token] = now + timedelta(seconds=ttl_s)
        self._expiry = {t: e for t, e in self._expiry.items() if e > now}
        return token

    def valid(self, header: str | None, now: datetime) -> bool:
        if not header or not header.startswith("Bearer "):
            return False
        expiry = self._expiry.get(header.removeprefix("Bearer ").strip())
        return expiry is not None and now < expiry


def _reasons(error: ValidationError) -> list[str]:
    return [f"{'.'.join(map(str, e['loc'])) or '(body)'}: {e['msg']}" for e in error.errors()]


def build_app(settings: HubSimulatorSettings) -> FastAPI:
    section = settings.hub_simulator
    clock = settings.clock()
    registry = CollectorRegistry(auto_describe=True)
    metrics = HubSimulatorMetrics(registry)
    faults = FaultState(section.faults)
    faults.configure(section.faults, clock.now())
    rng = random.Random(section.seed)  # noqa: S311 - fault injection, not security
    tokens = Tokens()
    pools: list[Pool] = []

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        configure_logging(
            "hub_simulator", settings.log_level, settings.log_format, settings.instance
        )
        pool = await create_pool(settings.postgres, settings.postgres.schema_name("hub_simulator"))
        await migrate(pool, MIGRATIONS)
        pools.append(pool)
        log.info("hub_simulator_started", faults=section.faults.model_dump())
        try:
            yield
        finally:
            await pool.close()

    app = FastAPI(title="baocao national hub simulator", lifespan=lifespan)

    def answer(endpoint: str, status: int, body: dict[str, Any], **headers: str) -> JSONResponse:
        metrics.requests.labels(endpoint=endpoint, status=str(status)).inc()
        return JSONResponse(body, status_code=status, headers=headers or None)

    @app.post("/oauth/token")
    async def token(request: Request) -> JSONResponse:
        """OAuth2 client credentials (RFC 6749 §4.4), form-encoded."""
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        if form.get("grant_type") != "client_credentials":
            return answer("token", 400, {"error": "unsupported_grant_type"})
        secret = settings.hub.client_secret.get_secret_value()
        if form.get("client_id") != settings.hub.client_id or not secrets.compare_digest(
            form.get("client_secret", ""), secret
        ):
            return answer("token", 401, {"error": "invalid_client"})
        ttl = faults.faults.token_ttl_s
        issued = tokens.issue(clock.now(), ttl)
        return answer(
            "token", 200, {"access_token": issued, "token_type": "Bearer", "expires_in": ttl}
        )

    @app.put("/api/v1/aggregates/{regime}/{period}/{unit}")
    async def put_aggregate(regime: str, period: str, unit: str, request: Request) -> JSONResponse:
        now = clock.now()
        if not tokens.valid(request.headers.get("authorization"), now):
            return answer("put", 401, {"error": "invalid_token"}, **{"WWW-Authenticate": "Bearer"})
        refusal = faults.refusal(now, rng)
        if faults.faults.latency_ms:
            await asyncio.sleep(faults.faults.latency_ms / 1000)
        if refusal is not None:
            return answer(
                "put",
                refusal.status,
                {"error": refusal.reason},
                **{"Retry-After": str(refusal.retry_after_s)},
            )
        raw = await request.body()
        try:
            snapshot = codec.decode(AggregateSnapshot, raw)
        except ValidationError as error:
            return answer("put", 422, {"status": "refused", "reasons": _reasons(error)})
        except ValueError as error:
            return answer("put", 422, {"status": "refused", "reasons": [f"(body): {error}"]})
        expected_key = f"{regime}|{period}|{unit}|{snapshot.version}"
        key = request.headers.get("idempotency-key")
        reasons = []
        if (snapshot.regime, snapshot.period, snapshot.unit) != (regime, period, unit):
            reasons.append("the body's regime, period and unit differ from the path")
        if key != expected_key:
            reasons.append(f"Idempotency-Key must be {expected_key!r}")
        if reasons:
            return answer("put", 422, {"status": "refused", "reasons": reasons})
        body = codec.loads(codec.dumps(snapshot))
        digest = hashlib.sha256(codec.canonical(body)).hexdigest()
        async with pools[0].acquire() as conn, conn.transaction():
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtext($1))", f"{regime}|{period}|{unit}"
            )
            previous = await store.seen_key(conn, expected_key)
            if previous is not None:
                if previous == digest:
                    return answer("put", 200, {"status": "unchanged"})
                return answer(
                    "put",
                    422,
                    {"status": "refused", "reasons": ["same Idempotency-Key, other body"]},
                )
            held = await store.held(conn, regime, period, unit)
            if held is not None and held.version >= snapshot.version:
                return answer("put", 409, {"status": "stale", "current_version": held.version})
            await store.store(
                conn, regime, period, unit, snapshot.version, body, expected_key, digest, now
            )
        metrics.stored.labels(regime=regime).inc()
        return answer("put", 200, {"status": "stored"})

    @app.get("/api/v1/aggregates/{regime}/{period}/{unit}")
    async def get_aggregate(regime: str, period: str, unit: str, request: Request) -> JSONResponse:
        if not tokens.valid(request.headers.get("authorization"), clock.now()):
            return answer("get", 401, {"error": "invalid_token"}, **{"WWW-Authenticate": "Bearer"})
        async with pools[0].acquire() as conn:
            held = await store.held(conn, regime, period, unit)
        if held is None:
            return answer("get", 404, {"error": "not_found"})
        return answer("get", 200, held.body)

    @app.get("/admin/faults")
    async def get_faults() -> dict[str, Any]:
        outage = faults.outage_until.isoformat() if faults.outage_until else None
        return faults.faults.model_dump() | {"outage_until": outage}

    @app.put("/admin/faults")
    async def put_faults(new: Faults) -> dict[str, Any]:
        faults.configure(new, clock.now())
        log.info("faults_changed", faults=new.model_dump())
        return await get_faults()

    @app.get("/admin/received")
    async def received(after: int = 0, limit: int = 1000) -> list[dict[str, Any]]:
        """Every stored version, in the order the hub stored them."""
        async with pools[0].acquire() as conn:
            return await store.received_log(conn, after, min(limit, 10_000))

    @app.get("/admin/aggregates")
    async def held_all() -> list[dict[str, Any]]:
        async with pools[0].acquire() as conn:
            return await store.all_held(conn)

    @app.get("/metrics", include_in_schema=False)
    async def metrics_endpoint() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": "hub_simulator"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz(response: Response) -> dict[str, str]:
        ready = bool(pools)
        response.status_code = 200 if ready else 503
        return {"status": "ready" if ready else "not_ready", "service": "hub_simulator"}

    return app
