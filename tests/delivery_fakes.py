"""Fakes with real behaviour for the connector's delivery loop: its state and the hub.

`FakeLedger` keeps the delivery state in memory with the same rules as the SQL of
`services.connector.store` (the ledger contract tests run both against the same cases).
`FakeHub` is the national hub of DESIGN §5 in memory, on the test's clock, for
`httpx.MockTransport`: tokens that expire, PUT idempotent by `Idempotency-Key`, 409 stale,
422 refusals, 503 with `Retry-After` while it is down.
"""

from __future__ import annotations

import contextlib
import hashlib
import random
import secrets
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

import httpx

from services.connector.ledger import Claim
from services.connector.policy import Step
from services.connector.store import Attempt, Due, Scope
from shared import codec
from shared.clock import FixedClock
from shared.contracts import AggregateSnapshot
from shared.outbox import OutboxMessage


class Ceiling(random.Random):
    """A random source that always draws the top of the range: a backoff is its ceiling."""

    def uniform(self, a: float, b: float) -> float:
        return b


@dataclass
class Row:
    snapshot: AggregateSnapshot
    newest_receipt: datetime | None = None
    acked_version: int = 0
    attempts: int = 0
    next_attempt_at: datetime | None = None  # None: due now (SQL's -infinity)
    parked_version: int | None = None
    last_outcome: str | None = None
    last_status: int | None = None
    last_error: str | None = None

    @property
    def version(self) -> int:
        return self.snapshot.version

    @property
    def behind(self) -> bool:
        parked = self.parked_version is not None and self.parked_version >= self.version
        return self.acked_version < self.version and not parked

    def due(self, now: datetime) -> bool:
        return self.behind and (self.next_attempt_at is None or self.next_attempt_at <= now)


@dataclass
class _FakeClaim:
    due: Sequence[Due]
    ledger: FakeLedger

    async def record(self, attempts: Sequence[Attempt], messages: Sequence[OutboxMessage]) -> None:
        self.ledger.apply(attempts)
        self.ledger.messages.extend(messages)


@dataclass
class FakeLedger:
    rows: dict[Scope, Row] = field(default_factory=dict)
    claimed: set[Scope] = field(default_factory=set)
    messages: list[OutboxMessage] = field(default_factory=list)
    due_now_calls: int = 0

    def remember(self, snapshot: AggregateSnapshot, newest_receipt: datetime | None = None) -> bool:
        scope = (snapshot.regime, snapshot.period, snapshot.unit)
        row = self.rows.get(scope)
        if row is None:
            self.rows[scope] = Row(snapshot, newest_receipt)
            return True
        if row.version >= snapshot.version:
            return False
        row.snapshot, row.newest_receipt = snapshot, newest_receipt
        row.attempts, row.next_attempt_at = 0, None
        return True

    def unpark(self, regime: str | None = None) -> int:
        released = 0
        for (row_regime, _, _), row in self.rows.items():
            if row.parked_version is not None and regime in (None, row_regime):
                row.parked_version, row.attempts, row.next_attempt_at = None, 0, None
                released += 1
        return released

    @contextlib.asynccontextmanager
    async def claim(self, now: datetime, limit: int) -> AsyncIterator[Claim]:
        def order(item: tuple[Scope, Row]) -> tuple[int, datetime, datetime]:
            row = item[1]
            at = row.next_attempt_at
            return (0 if at is None else 1, at or now, row.snapshot.computed_at)

        free = [(s, r) for s, r in self.rows.items() if s not in self.claimed and r.due(now)]
        taken = sorted(free, key=order)[:limit]
        due = [Due(r.snapshot, r.attempts, r.newest_receipt) for _, r in taken]
        scopes = {s for s, _ in taken}
        self.claimed |= scopes
        try:
            yield _FakeClaim(due, self)
        finally:
            self.claimed -= scopes

    def apply(self, attempts: Sequence[Attempt]) -> None:
        """The same rules as `store.record`."""
        for a in attempts:
            row = self.rows[a.due.scope]
            sent = a.due.snapshot.version
            if a.step is Step.ACKED:
                row.acked_version = max(row.acked_version, sent)
            if a.step is Step.PARKED and row.version == sent:
                row.parked_version = sent
            if row.version == sent:
                row.attempts = row.attempts + 1 if a.step is Step.RETRY else 0
                if a.step is Step.RETRY:
                    row.next_attempt_at = a.next_attempt_at
            row.last_outcome = a.reply.outcome.value
            row.last_status, row.last_error = a.reply.status_code, a.reply.error

    async def due_now(self) -> int:
        self.due_now_calls += 1
        released = 0
        for row in self.rows.values():
            if row.behind and row.next_attempt_at is not None:
                row.next_attempt_at = None
                released += 1
        return released

    async def acknowledged(
        self, after: Scope | None, limit: int
    ) -> list[tuple[str, str, str, int]]:
        return [
            (*scope, row.acked_version)
            for scope, row in sorted(self.rows.items())
            if row.acked_version >= row.version and (after is None or scope > after)
        ][:limit]

    async def rewind(self, regime: str, period: str, unit: str, held: int) -> bool:
        row = self.rows.get((regime, period, unit))
        if row is None or row.acked_version <= held:
            return False
        row.acked_version, row.attempts, row.next_attempt_at = held, 0, None
        return True

    async def backlog(self) -> tuple[int, int]:
        behind = sum(1 for r in self.rows.values() if r.behind)
        parked = sum(1 for r in self.rows.values() if r.parked_version == r.version)
        return behind, parked


@dataclass
class FakeHub:
    """The national hub in memory; call it with a request (it is an httpx handler).

    `down` answers every request 503 with `retry_after_s`; `refuse` gives the reasons to
    refuse a snapshot (422), if any; `during_put` runs while a PUT is being answered, as
    if the rest of the world moved on meanwhile.
    """

    clock: FixedClock
    client_id: str = "baocao-tb"
    client_secret: str = "s3cret"
    token_ttl_s: int = 300
    down: bool = False
    retry_after_s: int | None = None
    refuse: Callable[[AggregateSnapshot], list[str]] | None = None
    during_put: Callable[[AggregateSnapshot], object] | None = None
    held: dict[Scope, tuple[int, Any]] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    tokens: dict[str, datetime] = field(default_factory=dict)
    tokens_issued: int = 0
    puts: list[tuple[Scope, int]] = field(default_factory=list)
    gets: list[Scope] = field(default_factory=list)
    stored: list[tuple[Scope, int]] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            headers = {} if self.retry_after_s is None else {"Retry-After": str(self.retry_after_s)}
            return httpx.Response(503, json={"error": "down"}, headers=headers)
        if request.url.path == "/oauth/token":
            return self._token(request)
        expiry = self.tokens.get(request.headers.get("authorization", "").removeprefix("Bearer "))
        if expiry is None or self.clock.now() >= expiry:
            return httpx.Response(401, json={"error": "invalid_token"})
        *_, regime, period, unit = request.url.path.split("/")
        scope = (regime, period, unit)
        if request.method == "GET":
            self.gets.append(scope)
            if scope not in self.held:
                return httpx.Response(404, json={"error": "not_found"})
            return httpx.Response(200, content=codec.dumps(self.held[scope][1]))
        return self._put(scope, request)

    def _token(self, request: httpx.Request) -> httpx.Response:
        form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
        if (form.get("client_id"), form.get("client_secret")) != (
            self.client_id,
            self.client_secret,
        ):
            return httpx.Response(401, json={"error": "invalid_client"})
        token = secrets.token_urlsafe(8)
        self.tokens[token] = self.clock.now() + timedelta(seconds=self.token_ttl_s)
        self.tokens_issued += 1
        return httpx.Response(200, json={"access_token": token, "expires_in": self.token_ttl_s})

    def _put(self, scope: Scope, request: httpx.Request) -> httpx.Response:
        snapshot = codec.decode(AggregateSnapshot, request.content)
        self.puts.append((scope, snapshot.version))
        if self.during_put is not None:
            self.during_put(snapshot)
        reasons = self.refuse(snapshot) if self.refuse else []
        if reasons:
            return httpx.Response(422, json={"status": "refused", "reasons": reasons})
        key = request.headers["idempotency-key"]
        digest = hashlib.sha256(codec.canonical(snapshot)).hexdigest()
        if key in self.keys:
            if self.keys[key] == digest:
                return httpx.Response(200, json={"status": "unchanged"})
            return httpx.Response(422, json={"status": "refused", "reasons": ["other body"]})
        current = self.held.get(scope)
        if current is not None and current[0] >= snapshot.version:
            return httpx.Response(409, json={"status": "stale", "current_version": current[0]})
        self.keys[key] = digest
        self.held[scope] = (snapshot.version, codec.loads(request.content))
        self.stored.append((scope, snapshot.version))
        return httpx.Response(200, json={"status": "stored"})

    def restart(self) -> None:
        """What it stored survives; the tokens it issued do not."""
        self.tokens.clear()

    def backup(self) -> tuple[dict[Scope, tuple[int, Any]], dict[str, str]]:
        """What it holds now, for `restore`."""
        return dict(self.held), dict(self.keys)

    def restore(self, backup: tuple[dict[Scope, tuple[int, Any]], dict[str, str]]) -> None:
        """A hub brought back from an old backup: it holds older versions than it acknowledged."""
        self.held, self.keys = dict(backup[0]), dict(backup[1])

    def lose(self, scope: Scope) -> None:
        """A hub that lost a scope (restored from an old backup)."""
        self.held.pop(scope, None)
        self.keys = {k: d for k, d in self.keys.items() if not k.startswith("|".join(scope) + "|")}
