"""The adapter to the national hub: one interface, one implementation per transport.

The real hub's exchange format (QCVN 125:2021/BTTTT) is not public in detail, so the
connector depends only on `HubAdapter`. `JsonHub` speaks DESIGN §5's JSON over HTTP (the
simulator's contract); a QCVN 125 message format or an LGSP/NDXP transport is another
class with the same two methods, chosen in `app.py`.

Errors never escape as exceptions: every attempt ends in a `HubReply`, whose outcome
the delivery policy acts on.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

import httpx

from shared import codec
from shared.contracts import AggregateSnapshot, DeliveryOutcome
from shared.settings import HubSettings


@dataclass(frozen=True, slots=True)
class HubReply:
    outcome: DeliveryOutcome
    status_code: int | None = None
    retry_after_s: float | None = None
    current_version: int | None = None
    error: str | None = None

    @property
    def delivered(self) -> bool:
        """stored, unchanged and stale all mean the hub holds this version or a newer one."""
        return self.outcome in (
            DeliveryOutcome.STORED,
            DeliveryOutcome.UNCHANGED,
            DeliveryOutcome.STALE,
        )


class HubAdapter(Protocol):
    async def deliver(self, snapshot: AggregateSnapshot) -> HubReply:
        """Send one snapshot version; idempotent for the same version."""
        ...

    async def held_version(self, regime: str, period: str, unit: str) -> int | None:
        """The version the hub holds for a scope (None: nothing); raises on transport errors."""
        ...

    async def aclose(self) -> None: ...


def idempotency_key(snapshot: AggregateSnapshot) -> str:
    return f"{snapshot.regime}|{snapshot.period}|{snapshot.unit}|{snapshot.version}"


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date: the backoff policy decides instead


class JsonHub:
    """DESIGN §5 over HTTP: OAuth2 client credentials, `PUT` with `Idempotency-Key`."""

    def __init__(self, settings: HubSettings, transport: httpx.AsyncBaseTransport | None = None):
        self._settings = settings
        self._http = httpx.AsyncClient(
            base_url=settings.url, timeout=settings.timeout_s, transport=transport
        )
        self._token: str | None = None
        self._token_expiry = 0.0

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _bearer(self, refresh: bool = False) -> str:
        if refresh or self._token is None or time.monotonic() >= self._token_expiry:
            response = await self._http.post(
                "/oauth/token",
                data={
                    "grant_type": "client_credentials",
                    "client_id": self._settings.client_id,
                    "client_secret": self._settings.client_secret.get_secret_value(),
                },
            )
            response.raise_for_status()
            body = response.json()
            self._token = str(body["access_token"])
            # Renew a little early so a token never expires between check and use.
            lifetime = float(body.get("expires_in", 60))
            self._token_expiry = time.monotonic() + lifetime * 0.9
        return self._token

    async def _send(
        self,
        method: str,
        path: str,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """One request with a valid token; a 401 refreshes the token and tries once more."""
        for refresh in (False, True):
            auth = {"Authorization": f"Bearer {await self._bearer(refresh)}"}
            response = await self._http.request(
                method, path, content=content, headers={**(headers or {}), **auth}
            )
            if response.status_code != 401:
                break
        return response

    async def deliver(self, snapshot: AggregateSnapshot) -> HubReply:
        path = f"/api/v1/aggregates/{snapshot.regime}/{snapshot.period}/{snapshot.unit}"
        try:
            response = await self._send(
                "PUT",
                path,
                content=codec.dumps(snapshot),
                headers={
                    "Content-Type": "application/json",
                    "Idempotency-Key": idempotency_key(snapshot),
                },
            )
        except (httpx.HTTPError, ValueError, KeyError) as error:
            return HubReply(DeliveryOutcome.FAILED, error=f"{type(error).__name__}: {error}")
        return self._reply(response)

    @staticmethod
    def _reply(response: httpx.Response) -> HubReply:
        status = response.status_code
        try:
            body = response.json()
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            body = {}
        if status == 200 and body.get("status") in ("stored", "unchanged"):
            return HubReply(DeliveryOutcome(body["status"]), status)
        if status == 409:
            current = body.get("current_version")
            return HubReply(
                DeliveryOutcome.STALE,
                status,
                current_version=current if isinstance(current, int) else None,
            )
        if status == 422:
            reasons = body.get("reasons") or [response.text[:500]]
            return HubReply(DeliveryOutcome.REFUSED, status, error="; ".join(map(str, reasons)))
        return HubReply(
            DeliveryOutcome.FAILED,
            status,
            retry_after_s=_retry_after(response),
            error=f"HTTP {status}: {response.text[:300]}",
        )

    async def held_version(self, regime: str, period: str, unit: str) -> int | None:
        response = await self._send("GET", f"/api/v1/aggregates/{regime}/{period}/{unit}")
        if response.status_code == 404:
            return None
        response.raise_for_status()
        version = response.json().get("version")
        return version if isinstance(version, int) else None
