"""OAuth2 access tokens of the simulated hub (client credentials, RFC 6749 §4.4). Pure: the
time is a parameter. Kept in memory only, like a real authorization server's short-lived
tokens: a restart of the simulator invalidates every token, which clients must survive."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta


class Tokens:
    def __init__(self) -> None:
        self._expiry: dict[str, datetime] = {}

    def issue(self, now: datetime, ttl_s: int) -> str:
        self._expiry = {t: e for t, e in self._expiry.items() if e > now}
        token = secrets.token_urlsafe(24)
        self._expiry[token] = now + timedelta(seconds=ttl_s)
        return token

    def valid(self, authorization: str | None, now: datetime) -> bool:
        """Whether an `Authorization: Bearer <token>` header carries a live token."""
        if not authorization or not authorization.startswith("Bearer "):
            return False
        expiry = self._expiry.get(authorization.removeprefix("Bearer ").strip())
        return expiry is not None and now < expiry

    def shorten(self, now: datetime, ttl_s: int) -> None:
        """A shorter lifetime applies to tokens already issued too, counted from now."""
        latest = now + timedelta(seconds=ttl_s)
        self._expiry = {t: min(e, latest) for t, e in self._expiry.items() if e > now}
