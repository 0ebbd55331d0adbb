"""`JsonHub` speaks DESIGN §5 to the national hub, and every attempt ends in a `HubReply`.

Proves, against `httpx.MockTransport` playing the hub: a bearer token is fetched with client
credentials, reused, renewed before it expires (even a token living a few seconds) and
refreshed once on a 401; deliveries in flight together share one token fetch, after
expiry and after a 401 alike; a token endpoint that refuses is a failed reply with its
status and Retry-After; each hub answer maps to its outcome (200 stored/unchanged, 409
stale with the current version, 422 refused with reasons, 429/503 failed with
Retry-After, read in seconds or as a date against the answer's Date, anything else
failed) and a connection error is a failed reply, never an exception; the PUT carries
`Idempotency-Key: regime|period|unit|version` and the snapshot with exact decimals;
`held_version` reads 200 and 404, and raises `HubUnavailableError` for anything else.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from pydantic import SecretStr

from services.connector.hub_client import HubUnavailableError, JsonHub, idempotency_key
from shared import codec
from shared.contracts import AggregateSnapshot, Completeness, DeliveryOutcome
from shared.settings import HubSettings

pytestmark = pytest.mark.unit

SETTINGS = HubSettings(
    url="http://hub.test", client_id="baocao-tb", client_secret=SecretStr("s3cret"), timeout_s=5
)
SNAPSHOT = AggregateSnapshot(
    regime="KSTT-TTHC",
    regime_version=1,
    period="2026-Q1",
    unit="TB",
    version=42,
    values={
        "RECEIVED_ONLINE": Decimal(4512),
        "BUDGET": Decimal("1234567890123.4567891234"),
        "ON_TIME_RATE": Decimal("97.30"),
        "AVG_PROCESSING_DAYS": None,
    },
    completeness=Completeness(
        expected=17,
        reported=16,
        on_time=15,
        rate=Decimal("94.12"),
        on_time_rate=Decimal("88.24"),
        missing=("TB.VT.N02",),
    ),
    computed_at=datetime.fromisoformat("2026-03-18T09:00:00+07:00"),
)
PUT_PATH = "/api/v1/aggregates/KSTT-TTHC/2026-Q1/TB"

Respond = Callable[[httpx.Request], httpx.Response]


@dataclass
class Monotonic:
    """A monotonic clock that moves only when told to."""

    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class FakeHub:
    """The hub's token endpoint, and scripted answers for the aggregate endpoint."""

    answers: list[Respond]
    expires_in: int = 3600
    tokens_issued: int = 0
    token_forms: list[dict[str, list[str]]] = field(default_factory=list)
    requests: list[httpx.Request] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth/token":
            self.tokens_issued += 1
            self.token_forms.append(parse_qs(request.content.decode()))
            return httpx.Response(
                200,
                json={
                    "access_token": f"token-{self.tokens_issued}",
                    "token_type": "Bearer",
                    "expires_in": self.expires_in,
                },
            )
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return answer(request)

    @property
    def bearers(self) -> list[str]:
        return [r.headers["authorization"] for r in self.requests]


def reply(status: int, body: Any = None, **headers: str) -> Respond:
    def respond(request: httpx.Request) -> httpx.Response:
        if body is None:
            return httpx.Response(status, headers=headers)
        if isinstance(body, str):
            return httpx.Response(status, text=body, headers=headers)
        return httpx.Response(status, json=body, headers=headers)

    return respond


def refuse_connection(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


@pytest.fixture
async def make_hub() -> AsyncIterator[Callable[..., tuple[JsonHub, FakeHub]]]:
    clients: list[JsonHub] = []

    def make(
        *answers: Respond, expires_in: int = 3600, monotonic: Monotonic | None = None
    ) -> tuple[JsonHub, FakeHub]:
        fake = FakeHub(list(answers), expires_in=expires_in)
        client = JsonHub(SETTINGS, transport=httpx.MockTransport(fake), monotonic=monotonic)
        clients.append(client)
        return client, fake

    yield make
    for client in clients:
        await client.aclose()


MakeHub = Callable[..., tuple[JsonHub, FakeHub]]


# --- the token --------------------------------------------------------------------------


async def test_a_token_is_fetched_with_client_credentials(make_hub: MakeHub) -> None:
    hub, fake = make_hub(reply(200, {"status": "stored"}))
    await hub.deliver(SNAPSHOT)
    assert fake.token_forms == [
        {
            "grant_type": ["client_credentials"],
            "client_id": ["baocao-tb"],
            "client_secret": ["s3cret"],
        }
    ]
    assert fake.bearers == ["Bearer token-1"]


async def test_the_token_is_reused_while_it_is_valid(make_hub: MakeHub) -> None:
    hub, fake = make_hub(reply(200, {"status": "stored"}))
    for _ in range(3):
        await hub.deliver(SNAPSHOT)
    assert fake.tokens_issued == 1
    assert fake.bearers == ["Bearer token-1"] * 3


async def test_the_token_is_renewed_before_it_expires(make_hub: MakeHub) -> None:
    clock = Monotonic()
    hub, fake = make_hub(reply(200, {"status": "stored"}), expires_in=100, monotonic=clock)
    await hub.deliver(SNAPSHOT)
    clock.now += 89  # more than 10 s left: still good
    await hub.deliver(SNAPSHOT)
    clock.now += 1  # 10 s left: renewed early, so it never expires between check and use
    await hub.deliver(SNAPSHOT)
    assert fake.bearers == ["Bearer token-1", "Bearer token-1", "Bearer token-2"]


async def test_a_token_living_two_seconds_is_renewed_after_one(make_hub: MakeHub) -> None:
    clock = Monotonic()
    hub, fake = make_hub(reply(200, {"status": "stored"}), expires_in=2, monotonic=clock)
    for _ in range(4):
        await hub.deliver(SNAPSHOT)
        clock.now += 0.5
    assert fake.bearers == ["Bearer token-1"] * 2 + ["Bearer token-2"] * 2


@pytest.mark.parametrize(
    ("expires_in", "renewed_after"),
    [("20", 10.0), (None, 50.0), ("soon", 50.0), (-5, 50.0), ("inf", 50.0)],
)
async def test_a_lifetime_given_as_text_is_read_and_a_missing_one_means_a_minute(
    expires_in: Any, renewed_after: float
) -> None:
    clock = Monotonic()
    bearers: list[str] = []

    def hub(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth/token":
            body = {"access_token": f"token-{clock.now}", "expires_in": expires_in}
            return httpx.Response(200, json=body)
        bearers.append(request.headers["authorization"])
        return httpx.Response(200, json={"status": "stored"})

    client = JsonHub(SETTINGS, transport=httpx.MockTransport(hub), monotonic=clock)
    try:
        for step in (0.0, renewed_after - 0.001, 0.001):
            clock.now += step
            await client.deliver(SNAPSHOT)
    finally:
        await client.aclose()
    assert bearers[0] == bearers[1] != bearers[2]


async def test_deliveries_in_flight_together_share_one_token_fetch(make_hub: MakeHub) -> None:
    clock = Monotonic()
    hub, fake = make_hub(reply(200, {"status": "stored"}), expires_in=60, monotonic=clock)
    await asyncio.gather(*(hub.deliver(SNAPSHOT) for _ in range(8)))
    clock.now += 60  # expired: the next burst fetches one new token, not eight
    await asyncio.gather(*(hub.deliver(SNAPSHOT) for _ in range(8)))
    assert fake.tokens_issued == 2
    assert fake.bearers == ["Bearer token-1"] * 8 + ["Bearer token-2"] * 8


async def test_deliveries_refused_together_with_401_share_one_refresh(make_hub: MakeHub) -> None:
    def revoked_first_token(request: httpx.Request) -> httpx.Response:
        if request.headers["authorization"] == "Bearer token-1":
            return httpx.Response(401, json={"error": "invalid_token"})
        return httpx.Response(200, json={"status": "stored"})

    hub, fake = make_hub(revoked_first_token)
    replies = await asyncio.gather(*(hub.deliver(SNAPSHOT) for _ in range(8)))
    assert all(r.outcome is DeliveryOutcome.STORED for r in replies)
    assert fake.tokens_issued == 2


async def test_a_401_refreshes_the_token_once_and_retries(make_hub: MakeHub) -> None:
    hub, fake = make_hub(reply(401), reply(200, {"status": "stored"}))
    result = await hub.deliver(SNAPSHOT)
    assert result.outcome is DeliveryOutcome.STORED
    assert fake.tokens_issued == 2
    assert fake.bearers == ["Bearer token-1", "Bearer token-2"]


async def test_a_second_401_is_a_failed_reply_not_a_loop(make_hub: MakeHub) -> None:
    hub, fake = make_hub(reply(401, {"error": "invalid_token"}))
    result = await hub.deliver(SNAPSHOT)
    assert result.outcome is DeliveryOutcome.FAILED
    assert result.status_code == 401
    assert fake.tokens_issued == 2
    assert len(fake.requests) == 2


async def test_a_token_endpoint_failure_is_a_failed_reply_with_its_retry_after() -> None:
    def no_tokens(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth/token":
            return httpx.Response(503, json={"error": "outage"}, headers={"Retry-After": "9"})
        return httpx.Response(200, json={"status": "stored"})

    hub = JsonHub(SETTINGS, transport=httpx.MockTransport(no_tokens))
    try:
        result = await hub.deliver(SNAPSHOT)
    finally:
        await hub.aclose()
    assert result.outcome is DeliveryOutcome.FAILED
    assert result.status_code == 503
    assert result.retry_after_s == 9.0
    assert result.error is not None
    assert "token endpoint" in result.error


@pytest.mark.parametrize(
    "answer",
    [
        {"token_type": "Bearer", "expires_in": 60},
        {"access_token": "", "expires_in": 60},
        {"access_token": 42},
        ["not", "an", "object"],
    ],
)
async def test_a_token_answer_without_a_token_is_a_failed_reply(answer: Any) -> None:
    def odd_tokens(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth/token":
            return httpx.Response(200, json=answer)
        return httpx.Response(200, json={"status": "stored"})

    hub = JsonHub(SETTINGS, transport=httpx.MockTransport(odd_tokens))
    try:
        result = await hub.deliver(SNAPSHOT)
    finally:
        await hub.aclose()
    assert result.outcome is DeliveryOutcome.FAILED
    assert result.status_code == 200


# --- what is sent -------------------------------------------------------------------------


async def test_the_snapshot_is_put_with_its_idempotency_key_and_exact_decimals(
    make_hub: MakeHub,
) -> None:
    hub, fake = make_hub(reply(200, {"status": "stored"}))
    await hub.deliver(SNAPSHOT)
    (request,) = fake.requests
    assert request.method == "PUT"
    assert request.url.path == PUT_PATH
    assert request.headers["idempotency-key"] == "KSTT-TTHC|2026-Q1|TB|42"
    assert request.headers["content-type"] == "application/json"
    assert request.content == codec.dumps(SNAPSHOT)
    assert b'"BUDGET":1234567890123.4567891234' in request.content
    assert b'"ON_TIME_RATE":97.30' in request.content
    assert b'"AVG_PROCESSING_DAYS":null' in request.content
    assert codec.decode(AggregateSnapshot, request.content) == SNAPSHOT


def test_the_idempotency_key_names_regime_period_unit_and_version() -> None:
    assert idempotency_key(SNAPSHOT) == "KSTT-TTHC|2026-Q1|TB|42"
    assert idempotency_key(SNAPSHOT.model_copy(update={"version": 43})) == (
        "KSTT-TTHC|2026-Q1|TB|43"
    )


# --- what the hub answers -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "outcome", "status", "delivered"),
    [
        (reply(200, {"status": "stored"}), DeliveryOutcome.STORED, 200, True),
        (reply(200, {"status": "unchanged"}), DeliveryOutcome.UNCHANGED, 200, True),
        (reply(409, {"status": "stale", "current_version": 57}), DeliveryOutcome.STALE, 409, True),
        (reply(422, {"reasons": ["unknown unit"]}), DeliveryOutcome.REFUSED, 422, False),
        (
            reply(429, {"error": "slow down"}, **{"Retry-After": "7"}),
            DeliveryOutcome.FAILED,
            429,
            False,
        ),
        (reply(503, "maintenance", **{"Retry-After": "120"}), DeliveryOutcome.FAILED, 503, False),
        (reply(500, "boom"), DeliveryOutcome.FAILED, 500, False),
        (reply(200, {"status": "weird"}), DeliveryOutcome.FAILED, 200, False),
        (reply(200, "not json"), DeliveryOutcome.FAILED, 200, False),
        (reply(200, [1, 2]), DeliveryOutcome.FAILED, 200, False),
    ],
)
async def test_each_hub_answer_maps_to_its_outcome(
    make_hub: MakeHub, answer: Respond, outcome: DeliveryOutcome, status: int, delivered: bool
) -> None:
    hub, _ = make_hub(answer)
    result = await hub.deliver(SNAPSHOT)
    assert result.outcome is outcome
    assert result.status_code == status
    assert result.delivered is delivered


async def test_a_stale_reply_carries_the_version_the_hub_holds(make_hub: MakeHub) -> None:
    hub, _ = make_hub(reply(409, {"status": "stale", "current_version": 57}))
    assert (await hub.deliver(SNAPSHOT)).current_version == 57


async def test_a_stale_reply_without_a_usable_version_still_counts_as_delivered(
    make_hub: MakeHub,
) -> None:
    hub, _ = make_hub(reply(409, {"status": "stale", "current_version": "57"}))
    result = await hub.deliver(SNAPSHOT)
    assert result.delivered
    assert result.current_version is None


async def test_a_refused_reply_carries_every_reason(make_hub: MakeHub) -> None:
    hub, _ = make_hub(reply(422, {"reasons": ["unknown unit TB.X", "values.X: not a number"]}))
    result = await hub.deliver(SNAPSHOT)
    assert result.error == "unknown unit TB.X; values.X: not a number"


async def test_a_refused_reply_without_reasons_quotes_the_body(make_hub: MakeHub) -> None:
    hub, _ = make_hub(reply(422, "schema mismatch"))
    assert (await hub.deliver(SNAPSHOT)).error == "schema mismatch"


@pytest.mark.parametrize(
    ("status", "retry_after", "date", "seconds"),
    [
        (429, "7", None, 7.0),
        (503, "120", None, 120.0),
        (503, "1.5", None, 1.5),
        (503, "-3", None, 0.0),
        (503, "Wed, 18 Mar 2026 09:00:00 GMT", "Wed, 18 Mar 2026 08:59:30 GMT", 30.0),
        (503, "Wed, 18 Mar 2026 09:00:00 GMT", "Wed, 18 Mar 2026 09:05:00 GMT", 0.0),
        (503, "Wed, 18 Mar 2026 09:00:00 GMT", None, None),
        (503, "soon", "Wed, 18 Mar 2026 08:59:30 GMT", None),
        (503, None, None, None),
    ],
)
async def test_retry_after_is_read_in_seconds_or_as_a_date_against_the_answers_date(
    make_hub: MakeHub,
    status: int,
    retry_after: str | None,
    date: str | None,
    seconds: float | None,
) -> None:
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    headers |= {"Date": date} if date is not None else {}
    hub, _ = make_hub(reply(status, {"error": "busy"}, **headers))
    result = await hub.deliver(SNAPSHOT)
    assert result.outcome is DeliveryOutcome.FAILED
    assert result.retry_after_s == seconds


async def test_a_connection_error_is_a_failed_reply_not_an_exception(make_hub: MakeHub) -> None:
    hub, _ = make_hub(refuse_connection)
    result = await hub.deliver(SNAPSHOT)
    assert result.outcome is DeliveryOutcome.FAILED
    assert result.status_code is None
    assert result.error is not None
    assert "ConnectError" in result.error


async def test_a_hub_that_cannot_be_reached_at_all_is_a_failed_reply() -> None:
    hub = JsonHub(SETTINGS, transport=httpx.MockTransport(refuse_connection))
    try:
        result = await hub.deliver(SNAPSHOT)
    finally:
        await hub.aclose()
    assert result.outcome is DeliveryOutcome.FAILED


async def test_a_timeout_is_a_failed_reply(make_hub: MakeHub) -> None:
    def time_out(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    hub, _ = make_hub(time_out)
    result = await hub.deliver(SNAPSHOT)
    assert result.outcome is DeliveryOutcome.FAILED
    assert result.error is not None
    assert "ReadTimeout" in result.error


# --- what the hub holds -----------------------------------------------------------------


async def test_held_version_reads_the_stored_snapshot(make_hub: MakeHub) -> None:
    stored = json.loads(codec.dumps(SNAPSHOT))
    hub, fake = make_hub(reply(200, stored))
    assert await hub.held_version("KSTT-TTHC", "2026-Q1", "TB") == 42
    (request,) = fake.requests
    assert (request.method, request.url.path) == ("GET", PUT_PATH)
    assert request.headers["authorization"] == "Bearer token-1"


async def test_held_version_is_none_when_the_hub_holds_nothing(make_hub: MakeHub) -> None:
    hub, _ = make_hub(reply(404, {"error": "not found"}))
    assert await hub.held_version("KSTT-TTHC", "2026-Q1", "TB") is None


@pytest.mark.parametrize(
    "answer",
    [
        reply(500, "boom"),
        reply(503, {"error": "outage"}, **{"Retry-After": "5"}),
        reply(200, {"no": "version"}),
        reply(200, "not json"),
        refuse_connection,
    ],
)
async def test_held_version_raises_when_the_hub_cannot_say(
    make_hub: MakeHub, answer: Respond
) -> None:
    hub, _ = make_hub(answer)
    with pytest.raises(HubUnavailableError):
        await hub.held_version("KSTT-TTHC", "2026-Q1", "TB")


async def test_held_version_refreshes_the_token_on_a_401(make_hub: MakeHub) -> None:
    hub, fake = make_hub(reply(401), reply(200, {"version": 3}))
    assert await hub.held_version("KSTT-TTHC", "2026-Q1", "TB") == 3
    assert fake.tokens_issued == 2
