"""Who is calling: a source over HTTP (its bearer credential), an operator (theirs).

With sender authentication off (the local run), nobody is asked for a credential, as
before it existed. With it on, `POST /v1/reports` needs a source's credential (E140
without one or with a bad one) and every operator endpoint an operator's. Failed checks
are counted per client address and refused with 429 past a limit: each costs an Argon2id
verification, which must not become a way to load the service.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from pydantic import SecretStr

from shared.contracts import Issue
from shared.db import Pool
from shared.logging import get_logger
from shared.messages import issue

from . import credentials, store
from .rates import RateLimit
from .senders import Source

log = get_logger(__name__)

T = TypeVar("T")

# Failed credential checks one client address may make per minute.
FAILED_CHECKS = "20/minute"


@dataclass(frozen=True, slots=True)
class Denied:
    """A refused caller: the issue to answer with, or the seconds to wait (429)."""

    issue: Issue | None = None
    retry_after: int | None = None


class Access:
    def __init__(self, enabled: bool, rate_limit: str) -> None:
        self.enabled = enabled
        self.reports = RateLimit(rate_limit)
        self._failures = RateLimit(FAILED_CHECKS)
        self._verified = credentials.VerifiedCredentials()
        # Argon2id uses 64 MiB and most of a core: a few at a time, whatever the load.
        self._hashing = asyncio.Semaphore(2)

    async def _verify(self, stored_hash: str, credential: str) -> bool:
        if self._verified.known(stored_hash, credential):
            return True
        async with self._hashing:
            ok = await asyncio.to_thread(credentials.matches, stored_hash, credential)
        if ok:
            self._verified.remember(stored_hash, credential)
        return ok

    async def _decoy(self) -> str:
        """A hash to verify an unknown name's credential against: the answer then takes as
        long as for a known name with a wrong secret, and does not tell which names exist."""
        return await asyncio.to_thread(credentials.decoy_hash)

    async def source(
        self, pool: Pool, credential: SecretStr | None, client: str
    ) -> Source | Denied:
        async def lookup(name: str) -> tuple[str, Source] | None:
            async with pool.acquire() as conn:
                found = (await store.active_sources(conn, [name])).get(name)
            return (found.credential_hash, found) if found is not None else None

        return await self._authenticate(credential, client, lookup, "sender_not_authenticated")

    async def operator(self, pool: Pool, credential: SecretStr | None, client: str) -> str | Denied:
        async def lookup(name: str) -> tuple[str, str] | None:
            async with pool.acquire() as conn:
                stored = await store.operator_hash(conn, name)
            return (stored, name) if stored is not None else None

        return await self._authenticate(credential, client, lookup, "operator_not_authenticated")

    async def _authenticate(
        self,
        credential: SecretStr | None,
        client: str,
        lookup: Callable[[str], Awaitable[tuple[str, T] | None]],
        refused_event: str,
    ) -> T | Denied:
        """The caller `lookup` finds (stored hash, who) for the name the credential claims."""
        if credential is None:
            return Denied(issue("E140", field="(header) Authorization"))
        wait = self._failures.exceeded(client)
        if wait is not None:
            return Denied(retry_after=wait)
        secret = credential.get_secret_value()
        owner = credentials.owner_of(secret)
        found = await lookup(owner) if owner is not None else None
        stored = found[0] if found is not None else await self._decoy()
        verified = await self._verify(stored, secret)
        if found is None or not verified:
            self._failures.take(client)
            log.info(refused_event, claimed=owner, client=client)
            return Denied(issue("E140.bad", field="(header) Authorization"))
        return found[1]
