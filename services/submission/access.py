"""Who is calling: a source over HTTP (its bearer credential), an operator (theirs).

With sender authentication off (the local run), nobody is asked for a credential, as
before it existed. With it on, `POST /v1/reports` needs a source's credential (E140
without one or with a bad one) and every operator endpoint an operator's.

Failed checks are counted per client address *and* name the credential claims, and past
a limit that pair is answered 429 without a verification: each costs an Argon2id
verification, which a caller repeating a wrong secret must not turn into a way to load
the service. Failures from another address or for another name never count against a
valid credential, and one verified once (remembered per process) is taken before any
limit is looked at: someone else's failures can hold a valid credential back only if they
come from the same address, for the same name, before the instance first verified it.
Behind a proxy every caller has the proxy's address unless the service trusts its
forwarded headers (`BAOCAO_FORWARDED_ALLOW_IPS`). Credentials carry 256 random bits, so
the limit is about the cost of checking, not about guessing; a flood of requests with ever
new names is the ingress's to bound.
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


@dataclass(frozen=True, slots=True)
class Denied:
    """A refused caller: the issue to answer with, or the seconds to wait (429), the name
    whose checks from that address failed too often and the limit it went over."""

    issue: Issue | None = None
    retry_after: int | None = None
    claimed: str = "-"
    limit: str = ""


class Access:
    def __init__(self, enabled: bool, rate_limit: str, failed_checks: str) -> None:
        self.enabled = enabled
        self.reports = RateLimit(rate_limit)
        self._failures = RateLimit(failed_checks)
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
        secret = credential.get_secret_value()
        owner = credentials.owner_of(secret)
        if owner is None:
            # Not shaped like any credential: that says nothing about which names exist,
            # so it is refused at once, without a verification to count.
            log.info(refused_event, claimed=None, client=client)
            return Denied(issue("E140.bad", field="(header) Authorization"))
        found = await lookup(owner)
        if found is not None and self._verified.known(found[0], secret):
            return found[1]  # verified before: no limit applies, whoever else failed
        pair = f"{client} {owner}"
        wait = self._failures.exceeded(pair)
        if wait is not None:
            return Denied(retry_after=wait, claimed=owner, limit=self._failures.spec)
        stored = found[0] if found is not None else await self._decoy()
        verified = await self._verify(stored, secret)
        if found is None or not verified:
            self._failures.take(pair)
            log.info(refused_event, claimed=owner, client=client)
            return Denied(issue("E140.bad", field="(header) Authorization"))
        return found[1]
