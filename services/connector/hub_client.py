"""The adapter to the national hub: one interface, one implementation per transport.

The real hub's exchange format (QCVN 125:2021/BTTTT) is not public in detail, so the
connector depends only on `HubAdapter`. `JsonHub` speaks DESIGN §5's JSON over HTTP (the
simulator's contract); a QCVN 125 message format or an LGSP/NDXP transport is another
class with the same methods, passed to `app.build_app`.

Errors never escape `deliver` as exceptions: every attempt ends in a `HubReply`, whose
outcome the delivery policy acts on. `held_version` raises `HubUnavailableError` instead, since
reconciliation must tell "the hub holds nothing" from "the hub could not say".
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

import httpx

from shared import codec
from shared.contracts import AggregateSnapshot, DeliveryOutcome
from shared.settings import HubSettings

# A token is renewed this long before it expires (at most half its lifetime), so that it
# never expires between the check and the hub reading the request.
TOKEN_RENEWAL_MARGIN_S = 10.0


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


class HubUnavailableError(Exception):
    """The hub did not say what it holds (transport error, refusal, unreadable answer)."""


class HubAdapter(Protocol):
    async def deliver(self, snapshot: AggregateSnapshot) -> HubReply:
        """Send one snapshot version; idempotent for the same version; never raises."""
        ...

    async def held_version(self, regime: str, period: str, unit: str) -> int | None:
        """The version the hub holds for a scope (None: nothing); raises `HubUnavailableError`."""
        ...

    async def aclose(self) -> None: ...


def idempotency_key(snapshot: AggregateSnapshot) -> str:
    return f"{snapshot.regime}|{snapshot.period}|{snapshot.unit}|{snapshot.version}"


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds to wait, from `Retry-After` (RFC 9110 §10.2.3): delay-seconds, or an
    HTTP-date read against the response's own `Date`, so clock skew does not matter."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        until = parsedate_to_datetime(value)
        sent = parsedate_to_datetime(response.headers["date"])
    except (KeyError, TypeError, ValueError):
        return None  # unreadable, or no Date to read it against: the backoff decides
    return max(0.0, (until - sent).total_seconds())


def _body(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _seconds(value: Any, default: float) -> float:
    """A lifetime in seconds as the token endpoint gave it (a number, or a number as text)."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return default
    return seconds if 0 < seconds < math.inf else default


class TokenRefusedError(Exception):
    """The token endpoint did not issue a token; carries its answer for the reply."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"token endpoint: HTTP {response.status_code}: {response.text[:200]}")
        self.response = response


class JsonHub:
    """DESIGN §5 over HTTP: OAuth2 client credentials, `PUT` with `Idempotency-Key`.

    One token is shared by every delivery in flight and fetched by one of them at a time,
    so a burst of deliveries after expiry asks the hub for one token, not one each.
    `monotonic` is injectable so tests can expire tokens without waiting.
    """

    def __init__(
        self,
        settings: HubSettings,
        transport: httpx.AsyncBaseTransport | None = None,
        monotonic: Callable[[], float] | None = None,
    ) -> None:
        self._settings = settings
        self._http = httpx.AsyncClient(
            base_url=settings.url, timeout=settings.timeout_s, transport=transport
        )
        self._monotonic = monotonic or time.monotonic
        self._token: str | None = None
        self._renew_at = 0.0
        self._token_lock = asyncio.Lock()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _bearer(self, rejected: str | None = None) -> str:
        """A valid token; `rejected` is one the hub refused (401): replace it, once."""
        async with self._token_lock:
            current = self._token
            if current is not None and current != rejected and self._monotonic() < self._renew_at:
                return current
            response = await self._http.post(
                "/oauth/token",
                data={
                    "grant_type": "client_credentials",
                    "client_id": self._settings.client_id,
                    "client_secret": self._settings.client_secret.get_secret_value(),
                },
            )
            body = _body(response)
            token = body.get("access_token")
            if response.status_code != 200 or not isinstance(token, str) or not token:
                raise TokenRefusedError(response)
            lifetime = _seconds(body.get("expires_in"), default=60.0)
            margin = min(TOKEN_RENEWAL_MARGIN_S, lifetime / 2)
            self._token, self._renew_at = token, self._monotonic() + lifetime - margin
            return token

    async def _send(
        self,
        method: str,
        path: str,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """One request with a valid token; a 401 replaces the token and tries once more."""
        rejected: str | None = None
        for _ in range(2):
            token = await self._bearer(rejected)
            response = await self._http.request(
                method,
                path,
                content=content,
                headers={**(headers or {}), "Authorization": f"Bearer {token}"},
            )
            if response.status_code != 401:
                break
            rejected = token
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
        except TokenRefusedError as refused:
            return HubReply(
                DeliveryOutcome.FAILED,
                refused.response.status_code,
                retry_after_s=_retry_after(refused.response),
                error=str(refused),
            )
        except httpx.HTTPError as error:
            return HubReply(DeliveryOutcome.FAILED, error=f"{type(error).__name__}: {error}")
        return self._reply(response)

    @staticmethod
    def _reply(response: httpx.Response) -> HubReply:
        status = response.status_code
        body = _body(response)
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
        try:
            response = await self._send("GET", f"/api/v1/aggregates/{regime}/{period}/{unit}")
        except (TokenRefusedError, httpx.HTTPError) as error:
            raise HubUnavailableError(f"{type(error).__name__}: {error}") from error
        if response.status_code == 404:
            return None
        version = _body(response).get("version")
        if response.status_code != 200 or not isinstance(version, int):
            raise HubUnavailableError(f"HTTP {response.status_code}: {response.text[:300]}")
        return version
