"""A stand-in for the national hub (Hệ thống thông tin báo cáo Chính phủ), per DESIGN §5.

OAuth2 client-credentials tokens that expire; `PUT` idempotent by `Idempotency-Key`
(same key and body: `unchanged`; same key, other body: 422); `409 stale` when a higher
version is stored; 422 with reasons for a body it refuses; 429/503 with `Retry-After`
from fault knobs settable at start and at run time (and 422 for every PUT of a unit a
knob refuses). It keeps every version it stored, body included, in order, in PostgreSQL
(so it survives its own restarts), and a log of every PUT it received with its answer,
for tests and operators to audit.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from fastapi import FastAPI, Query, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import ValidationError

from shared import codec
from shared.clock import Clock
from shared.contracts import AggregateSnapshot
from shared.db import Pool, create_pool, migrate
from shared.logging import configure_logging, get_logger
from shared.observability.metrics import HubSimulatorMetrics
from shared.web import ExactJSONResponse as JSONResponse

from . import store
from .faults import FaultState, Refusal
from .settings import Faults, HubSimulatorSettings
from .tokens import Tokens

log = get_logger(__name__)
MIGRATIONS = Path(__file__).parent / "migrations"


def _reasons(error: ValidationError) -> list[str]:
    return [f"{'.'.join(map(str, e['loc'])) or '(body)'}: {e['msg']}" for e in error.errors()]


def _decoded(raw: bytes) -> AggregateSnapshot | list[str]:
    """The snapshot a PUT's body carries, or the reasons it carries none."""
    try:
        return codec.decode(AggregateSnapshot, raw)
    except ValidationError as error:
        return _reasons(error)
    except ValueError as error:
        return [f"(body): {error}"]


def _outcome(response: JSONResponse) -> str:
    """An answer in a word: its `status` (stored, stale...) or its `error` (outage...)."""
    body = codec.loads(bytes(response.body))
    return str(body.get("status") or body.get("error"))


def build_app(
    settings: HubSimulatorSettings,
    clock: Clock | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> FastAPI:
    """`clock` replaces the settings' clock (tests expire tokens with a fixed clock);
    `sleep` adds the latency knob's delay (tests see it without waiting)."""
    section = settings.hub_simulator
    clock = clock or settings.clock()
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
        log.info("hub_simulator_started", faults=section.faults.model_dump(mode="json"))
        try:
            yield
        finally:
            pools.clear()
            await pool.close()

    app = FastAPI(title="baocao national hub simulator", lifespan=lifespan)

    def answer(endpoint: str, status: int, body: Any, **headers: str) -> JSONResponse:
        metrics.requests.labels(endpoint=endpoint, status=str(status)).inc()
        return JSONResponse(body, status_code=status, headers=headers or None)

    def refused(endpoint: str, refusal: Refusal) -> JSONResponse:
        return answer(
            endpoint,
            refusal.status,
            {"error": refusal.reason},
            **{"Retry-After": str(refusal.retry_after_s)},
        )

    def unauthorized(endpoint: str) -> JSONResponse:
        return answer(endpoint, 401, {"error": "invalid_token"}, **{"WWW-Authenticate": "Bearer"})

    async def misbehaviour(endpoint: str) -> JSONResponse | None:
        """The injected faults of an API request: latency first, then maybe a refusal."""
        refusal = faults.refusal(clock.now(), rng)
        if faults.faults.latency_ms:
            await sleep(faults.faults.latency_ms / 1000)
        return refused(endpoint, refusal) if refusal is not None else None

    @app.post("/oauth/token")
    async def token(request: Request) -> JSONResponse:
        """OAuth2 client credentials (RFC 6749 §4.4), form-encoded."""
        with metrics.in_progress.labels(endpoint="token").track_inprogress():
            refusal = faults.refusal(clock.now(), rng, api=False)
            if refusal is not None:
                return refused("token", refusal)
            form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
            if form.get("grant_type") != "client_credentials":
                return answer("token", 400, {"error": "unsupported_grant_type"})
            secret = settings.hub.client_secret.get_secret_value()
            if form.get("client_id") != settings.hub.client_id or not secrets.compare_digest(
                form.get("client_secret", "").encode(), secret.encode()
            ):
                return answer("token", 401, {"error": "invalid_client"})
            ttl = faults.faults.token_ttl_s
            issued = tokens.issue(clock.now(), ttl)
            return answer(
                "token", 200, {"access_token": issued, "token_type": "Bearer", "expires_in": ttl}
            )

    @app.put("/api/v1/aggregates/{regime}/{period}/{unit}")
    async def put_aggregate(regime: str, period: str, unit: str, request: Request) -> JSONResponse:
        with metrics.in_progress.labels(endpoint="put").track_inprogress():
            # The whole request is read first, as a server does: a client that goes away
            # while the hub works on it does not stop the hub from storing it.
            snapshot = _decoded(await request.body())
            version = snapshot.version if isinstance(snapshot, AggregateSnapshot) else None
            async with pools[0].acquire() as conn:
                put_id = await store.arrived(conn, regime, period, unit, version, clock.now())
            response = await _answer_put(regime, period, unit, request, snapshot)
            async with pools[0].acquire() as conn:
                await store.answered(
                    conn, put_id, response.status_code, _outcome(response), clock.now()
                )
            return response

    async def _answer_put(
        regime: str,
        period: str,
        unit: str,
        request: Request,
        snapshot: AggregateSnapshot | list[str],
    ) -> JSONResponse:
        faulty = await misbehaviour("put")
        if faulty is not None:
            return faulty
        if not tokens.valid(request.headers.get("authorization"), clock.now()):
            return unauthorized("put")
        refused_unit = faults.refused_unit(unit)
        if refused_unit is not None:
            return answer("put", 422, {"status": "refused", "reasons": [refused_unit]})
        if not isinstance(snapshot, AggregateSnapshot):
            return answer("put", 422, {"status": "refused", "reasons": snapshot})
        return await _put(regime, period, unit, request, snapshot)

    async def _put(
        regime: str, period: str, unit: str, request: Request, snapshot: AggregateSnapshot
    ) -> JSONResponse:
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
            # One scope's PUTs one at a time, so "stale" and "stored" are decided in order.
            await store.lock_scope(conn, regime, period, unit)
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
                conn,
                regime,
                period,
                unit,
                snapshot.version,
                body,
                expected_key,
                digest,
                clock.now(),
            )
        metrics.stored.labels(regime=regime).inc()
        return answer("put", 200, {"status": "stored"})

    @app.get("/api/v1/aggregates/{regime}/{period}/{unit}")
    async def get_aggregate(regime: str, period: str, unit: str, request: Request) -> JSONResponse:
        with metrics.in_progress.labels(endpoint="get").track_inprogress():
            faulty = await misbehaviour("get")
            if faulty is not None:
                return faulty
            if not tokens.valid(request.headers.get("authorization"), clock.now()):
                return unauthorized("get")
            async with pools[0].acquire() as conn:
                held = await store.held(conn, regime, period, unit)
            if held is None:
                return answer("get", 404, {"error": "not_found"})
            return answer("get", 200, held.body)

    @app.get("/admin/faults")
    async def get_faults() -> dict[str, Any]:
        """The knobs in force; an outage in progress as `outage_until` (null: none). The
        answer is a valid body for PUT, which then changes nothing."""
        state = faults.state(clock.now())
        return state.model_dump(mode="json", exclude={"outage_seconds"})

    def change_faults(new: Faults) -> None:
        now = clock.now()
        if new.token_ttl_s < faults.faults.token_ttl_s:
            tokens.shorten(now, new.token_ttl_s)
        faults.configure(new, now)
        log.info("faults_changed", faults=faults.state(now).model_dump(mode="json"))

    @app.put("/admin/faults")
    async def put_faults(new: Faults) -> dict[str, Any]:
        """Replace every fault knob (those not given go back to their defaults, which ends
        an outage); `outage_seconds` starts an outage now."""
        change_faults(new)
        return await get_faults()

    @app.patch("/admin/faults")
    async def patch_faults(changes: Faults) -> dict[str, Any]:
        """Change only the knobs given: an outage in progress goes on unless an outage
        knob is given (`outage_seconds` starts a new one now, 0 or a null `outage_until`
        ends it)."""
        change_faults(faults.patched(changes, clock.now()))
        return await get_faults()

    @app.get("/admin/received")
    async def received(
        after: int = 0, limit: int = Query(default=1000, ge=1, le=10_000), bodies: bool = False
    ) -> JSONResponse:
        """Every stored version, in the order the hub stored them (`id` rises); with
        `bodies=true`, each with the snapshot stored, decimals exact."""
        async with pools[0].acquire() as conn:
            return JSONResponse(await store.received_log(conn, after, limit, bodies=bodies))

    @app.get("/admin/puts")
    async def puts(
        after: int = 0, limit: int = Query(default=1000, ge=1, le=10_000)
    ) -> list[dict[str, Any]]:
        """Every PUT received, in the order it arrived (`id` rises), with the version it
        carried, the version held for its scope when it arrived, and the answer."""
        async with pools[0].acquire() as conn:
            return await store.puts_log(conn, after, limit)

    @app.get("/admin/aggregates")
    async def held_all() -> JSONResponse:
        """The latest stored snapshot of every scope."""
        async with pools[0].acquire() as conn:
            return JSONResponse(await store.all_held(conn))

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
