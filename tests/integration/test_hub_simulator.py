"""The hub simulator keeps DESIGN §5's contract, against real PostgreSQL, on a fixed clock.

Proves: tokens are issued for the right client credentials only and expire (and a lower
lifetime set at run time shortens those already issued); a PUT needs a live token; the
first PUT of a version is stored, the same key and body again is `unchanged`, the same key
with another body and any malformed body or mismatched key is 422 with reasons, a version
not above the stored one is 409 stale with the current version; concurrent PUTs of one
scope in any order never store a lower version after a higher one; GET and the admin
listing give back the stored snapshot with exact decimals, and the audit log the body of
every version stored; every PUT is logged as it arrived, with the version held then and
its answer, so a client replaying a version older than the one held (answered
`unchanged`) is caught; fault knobs set at start (the environment: outage, latency,
failures, throttling, Retry-After, token lifetime, refused units) and at run time (`PUT
/admin/faults` replaces them all, `PATCH` changes those given and leaves an outage in
progress on, and what `GET` reports can be sent back unchanged) answer 503 for an outage
(token endpoint included) until it ends, 503 and 429 with Retry-After at their rates, and
422 naming the knob for every PUT of a refused unit, valid or not, until the knob is
cleared (other units stored meanwhile); what was stored
survives a restart, tokens do not; `/metrics` counts requests by endpoint and status.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from services.connector.hub_client import JsonHub
from services.hub_simulator.app import build_app
from services.hub_simulator.settings import HubSimulatorSettings
from shared import codec
from shared.clock import FixedClock
from shared.contracts import AggregateSnapshot, Completeness, DeliveryOutcome
from tests.harness import running, service_settings
from tests.system.delivery_audit import older_than_held

NOW = datetime.fromisoformat("2025-03-18T09:00:00+07:00")
CREDENTIALS = {
    "grant_type": "client_credentials",
    "client_id": "baocao-tb",
    "client_secret": "local-development-secret",
}
PATH = "/api/v1/aggregates/KSTT-TTHC/2025-Q1/TB"


def snapshot(version: int = 1, unit: str = "TB", online: str = "100") -> AggregateSnapshot:
    return AggregateSnapshot(
        regime="KSTT-TTHC",
        regime_version=1,
        period="2025-Q1",
        unit=unit,
        version=version,
        values={"RECEIVED_ONLINE": Decimal(online), "BUDGET": Decimal("1234567890123.4567891234")},
        completeness=Completeness(
            expected=17,
            reported=16,
            on_time=15,
            rate=Decimal("94.12"),
            on_time_rate=Decimal("88.24"),
            missing=("TB.VT.N02",),
        ),
        computed_at=NOW,
    )


def key(s: AggregateSnapshot) -> str:
    return f"{s.regime}|{s.period}|{s.unit}|{s.version}"


class Client:
    """A hub client for tests: fetches a token, PUTs snapshots with their key."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http
        self.token = ""

    async def login(self) -> str:
        answer = await self.http.post("/oauth/token", data=CREDENTIALS)
        assert answer.status_code == 200, answer.text
        self.token = answer.json()["access_token"]
        return self.token

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def put(
        self, s: AggregateSnapshot, *, body: bytes | None = None, idem: str | None = None
    ) -> httpx.Response:
        path = f"/api/v1/aggregates/{s.regime}/{s.period}/{s.unit}"
        headers = self.auth() | {"Idempotency-Key": idem if idem is not None else key(s)}
        return await self.http.put(path, content=body or codec.dumps(s), headers=headers)

    async def faults(self, **knobs: Any) -> httpx.Response:
        return await self.http.put("/admin/faults", json=knobs)

    async def change_faults(self, **knobs: Any) -> httpx.Response:
        return await self.http.patch("/admin/faults", json=knobs)


@pytest.fixture
def settings(namespace: str, kafka_bootstrap: str, postgres_dsn: str) -> HubSimulatorSettings:
    return service_settings(HubSimulatorSettings, namespace, kafka_bootstrap, postgres_dsn)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
async def hub(settings: HubSimulatorSettings, clock: FixedClock) -> AsyncIterator[Client]:
    async with running(build_app(settings, clock)) as http:
        client = Client(http)
        await client.login()
        yield client


# --- tokens ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("form", "status", "error"),
    [
        (CREDENTIALS | {"grant_type": "password"}, 400, "unsupported_grant_type"),
        (CREDENTIALS | {"client_secret": "guess"}, 401, "invalid_client"),
        (CREDENTIALS | {"client_id": "someone-else"}, 401, "invalid_client"),
        ({"grant_type": "client_credentials"}, 401, "invalid_client"),
    ],
)
async def test_a_token_needs_the_client_credentials(
    hub: Client, form: dict[str, str], status: int, error: str
) -> None:
    answer = await hub.http.post("/oauth/token", data=form)
    assert (answer.status_code, answer.json()) == (status, {"error": error})


async def test_a_token_is_bearer_with_its_lifetime(hub: Client) -> None:
    answer = await hub.http.post("/oauth/token", data=CREDENTIALS)
    body = answer.json()
    assert (body["token_type"], body["expires_in"]) == ("Bearer", 300)
    assert len(body["access_token"]) >= 24


async def test_a_put_needs_a_live_token(hub: Client, clock: FixedClock) -> None:
    bare = await hub.http.put(PATH, content=codec.dumps(snapshot()))
    assert bare.status_code == 401
    assert bare.headers["www-authenticate"] == "Bearer"
    clock.advance(timedelta(seconds=300))
    expired = await hub.put(snapshot())
    assert (expired.status_code, expired.json()) == (401, {"error": "invalid_token"})
    await hub.login()
    assert (await hub.put(snapshot())).json() == {"status": "stored"}


async def test_lowering_the_token_lifetime_shortens_tokens_already_issued(
    hub: Client, clock: FixedClock
) -> None:
    assert (await hub.faults(token_ttl_s=5)).status_code == 200
    clock.advance(timedelta(seconds=4))
    assert (await hub.put(snapshot(1))).status_code == 200
    clock.advance(timedelta(seconds=1))
    assert (await hub.put(snapshot(2))).status_code == 401
    await hub.login()
    assert (await hub.put(snapshot(2))).status_code == 200


# --- PUT and GET ------------------------------------------------------------------------


async def test_put_is_idempotent_by_key_and_refuses_stale_versions(hub: Client) -> None:
    v2 = snapshot(2, online="200")
    assert (await hub.put(v2)).json() == {"status": "stored"}
    assert (await hub.put(v2)).json() == {"status": "unchanged"}
    other = await hub.put(v2, body=codec.dumps(snapshot(2, online="201")))
    assert (other.status_code, other.json()["reasons"]) == (
        422,
        ["same Idempotency-Key, other body"],
    )
    stale = await hub.put(snapshot(1))
    assert (stale.status_code, stale.json()) == (409, {"status": "stale", "current_version": 2})
    assert (await hub.put(snapshot(3))).json() == {"status": "stored"}
    held = await hub.http.get(PATH, headers=hub.auth())
    assert codec.loads(held.content) == codec.loads(codec.dumps(snapshot(3)))
    assert b"1234567890123.4567891234" in held.content


@pytest.mark.parametrize(
    ("body", "idem", "reason"),
    [
        (b"not json", None, "(body): "),
        (b'{"schema": "baocao.aggregate.v1"}', None, "regime: Field required"),
        (
            codec.dumps(snapshot().model_dump(by_alias=True) | {"version": 0}),
            "KSTT-TTHC|2025-Q1|TB|0",
            "version: Input should be greater than or equal to 1",
        ),
        (codec.dumps(snapshot(unit="TB.DH")), "KSTT-TTHC|2025-Q1|TB|1", "differ from the path"),
        (codec.dumps(snapshot()), "KSTT-TTHC|2025-Q1|TB", "Idempotency-Key must be"),
        (codec.dumps(snapshot()), "", "Idempotency-Key must be"),
    ],
)
async def test_a_body_or_key_it_cannot_take_is_422_with_reasons(
    hub: Client, body: bytes, idem: str | None, reason: str
) -> None:
    answer = await hub.http.put(
        PATH,
        content=body,
        headers=hub.auth() | {"Idempotency-Key": idem if idem is not None else key(snapshot())},
    )
    assert answer.status_code == 422
    assert answer.json()["status"] == "refused"
    assert any(reason in r for r in answer.json()["reasons"]), answer.json()
    assert (await hub.http.get("/admin/received")).json() == []


async def test_every_put_is_logged_as_it_arrived_with_what_was_held_and_the_answer(
    hub: Client, clock: FixedClock
) -> None:
    await hub.put(snapshot(1))
    clock.advance(timedelta(seconds=1))
    await hub.put(snapshot(1))
    await hub.put(snapshot(3))
    await hub.put(snapshot(2))
    await hub.put(snapshot(4), body=b"not json")
    await hub.http.put(PATH, content=codec.dumps(snapshot(4)))  # no token
    await hub.faults(outage_seconds=5)
    await hub.put(snapshot(4))
    log = (await hub.http.get("/admin/puts")).json()
    assert [(e["version"], e["held_version"], e["status"], e["outcome"]) for e in log] == [
        (1, None, 200, "stored"),
        (1, 1, 200, "unchanged"),
        (3, 1, 200, "stored"),
        (2, 3, 409, "stale"),
        (None, 3, 422, "refused"),
        (4, 3, 401, "invalid_token"),
        (4, 3, 503, "outage"),
    ]
    assert {(e["regime"], e["period"], e["unit"]) for e in log} == {("KSTT-TTHC", "2025-Q1", "TB")}
    arrived = [datetime.fromisoformat(e["arrived_at"]) for e in log]
    assert arrived[:2] == [NOW, NOW + timedelta(seconds=1)]
    assert all(e["answered_at"] == e["arrived_at"] for e in log)
    page = (await hub.http.get("/admin/puts", params={"after": log[0]["id"], "limit": 2})).json()
    assert page == log[1:3]


async def test_the_put_log_shows_a_client_replaying_an_older_version_the_answers_hide(
    settings: HubSimulatorSettings, clock: FixedClock
) -> None:
    app = build_app(settings, clock)
    async with running(app) as http:
        adapter = JsonHub(settings.hub, transport=httpx.ASGITransport(app=app))
        try:
            # A connector that sends version 1 again after version 2 was stored.
            replies = [await adapter.deliver(snapshot(v)) for v in (1, 1, 2, 1)]
        finally:
            await adapter.aclose()
        log = (await http.get("/admin/puts")).json()
    assert [r.outcome for r in replies] == [
        DeliveryOutcome.STORED,
        DeliveryOutcome.UNCHANGED,
        DeliveryOutcome.STORED,
        DeliveryOutcome.UNCHANGED,  # not stale: a check of hub.sync.v1 would pass
    ]
    assert older_than_held(log) == [log[3]]
    assert older_than_held(log[:3]) == []  # a retry of the version held is no replay


async def test_get_of_a_scope_never_stored_is_404(hub: Client) -> None:
    answer = await hub.http.get(PATH, headers=hub.auth())
    assert answer.status_code == 404


async def test_concurrent_puts_in_any_order_never_store_a_lower_version_after_a_higher(
    hub: Client,
) -> None:
    versions = list(range(1, 31))
    random.Random(9).shuffle(versions)
    answers = await asyncio.gather(*(hub.put(snapshot(v, online=str(v))) for v in versions))
    assert {a.status_code for a in answers} <= {200, 409}
    log = (await hub.http.get("/admin/received")).json()
    stored = [entry["version"] for entry in log]
    assert stored == sorted(stored)
    assert stored[-1] == 30
    held = (await hub.http.get("/admin/aggregates")).json()
    assert [(h["unit"], h["version"]) for h in held] == [("TB", 30)]


async def test_the_audit_log_lists_what_was_stored_in_order(hub: Client) -> None:
    for v, unit in [(1, "TB"), (1, "TB.DH"), (2, "TB")]:
        await hub.put(snapshot(v, unit=unit, online=str(100 + v)))
    await hub.put(snapshot(1))  # stale: not stored, not listed
    log = (await hub.http.get("/admin/received")).json()
    assert [(e["unit"], e["version"]) for e in log] == [("TB", 1), ("TB.DH", 1), ("TB", 2)]
    assert log[0]["idempotency_key"] == "KSTT-TTHC|2025-Q1|TB|1"
    assert "body" not in log[0]
    # Every version's body is kept, not only the latest one's, decimals exact.
    full = codec.loads((await hub.http.get("/admin/received", params={"bodies": "true"})).content)
    assert [e["body"] for e in full] == [
        codec.loads(codec.dumps(snapshot(v, unit=unit, online=str(100 + v))))
        for v, unit in [(1, "TB"), (1, "TB.DH"), (2, "TB")]
    ]
    page = (
        await hub.http.get("/admin/received", params={"after": log[0]["id"], "limit": 1})
    ).json()
    assert [(e["unit"], e["version"]) for e in page] == [("TB.DH", 1)]
    held = (await hub.http.get("/admin/aggregates")).content
    assert b'"BUDGET":1234567890123.4567891234' in held


# --- faults ---------------------------------------------------------------------------


async def test_an_outage_refuses_everything_until_it_ends(hub: Client, clock: FixedClock) -> None:
    knobs = (await hub.faults(outage_seconds=60, retry_after_s=7)).json()
    assert knobs["outage_until"] == (NOW + timedelta(seconds=60)).isoformat()
    answers = [
        await hub.put(snapshot()),
        await hub.http.get(PATH, headers=hub.auth()),
        await hub.http.post("/oauth/token", data=CREDENTIALS),
    ]
    assert [(a.status_code, a.headers["retry-after"]) for a in answers] == [(503, "7")] * 3
    clock.advance(timedelta(seconds=60))
    assert (await hub.put(snapshot())).json() == {"status": "stored"}
    assert (await hub.http.get("/admin/faults")).json()["outage_until"] is None


@pytest.mark.parametrize(
    ("knobs", "status"), [({"failure_rate": 1.0}, 503), ({"throttle_rate": 1.0}, 429)]
)
async def test_injected_failures_and_throttling_carry_retry_after(
    hub: Client, knobs: dict[str, float], status: int
) -> None:
    await hub.faults(**knobs, retry_after_s=3)
    answer = await hub.put(snapshot())
    assert (answer.status_code, answer.headers["retry-after"]) == (status, "3")
    assert (await hub.http.post("/oauth/token", data=CREDENTIALS)).status_code == 200
    await hub.faults()  # every knob back to its default
    assert (await hub.put(snapshot())).json() == {"status": "stored"}


async def test_changing_one_knob_keeps_the_others_and_the_outage_in_progress(
    hub: Client, clock: FixedClock
) -> None:
    await hub.faults(outage_seconds=60, retry_after_s=7)
    clock.advance(timedelta(seconds=10))
    knobs = (await hub.change_faults(latency_ms=20)).json()
    assert knobs["outage_until"] == (NOW + timedelta(seconds=60)).isoformat()
    assert (knobs["latency_ms"], knobs["retry_after_s"]) == (20, 7)
    refused = await hub.put(snapshot())
    assert (refused.status_code, refused.headers["retry-after"]) == (503, "7")
    assert (await hub.change_faults(outage_seconds=5)).json()["outage_until"] == (
        NOW + timedelta(seconds=15)
    ).isoformat()
    assert (await hub.change_faults(outage_until=None)).json()["outage_until"] is None
    assert (await hub.put(snapshot())).json() == {"status": "stored"}
    # PUT still replaces every knob: one not given goes back to its default.
    assert (await hub.faults(retry_after_s=7)).json()["latency_ms"] == 0


async def test_what_get_answers_about_the_faults_can_be_sent_back_as_is(
    hub: Client, clock: FixedClock
) -> None:
    await hub.faults(outage_seconds=60, throttle_rate=0.25, token_ttl_s=100, refuse_units=["TB"])
    clock.advance(timedelta(seconds=10))
    reported = (await hub.http.get("/admin/faults")).json()
    assert reported == {
        "failure_rate": 0.0,
        "throttle_rate": 0.25,
        "latency_ms": 0,
        "outage_until": (NOW + timedelta(seconds=60)).isoformat(),
        "retry_after_s": 1,
        "token_ttl_s": 100,
        "refuse_units": ["TB"],
    }
    for send in (hub.http.put, hub.http.patch):
        answer = await send("/admin/faults", json=reported)
        assert (answer.status_code, answer.json()) == (200, reported)  # the outage not restarted


async def test_lowering_the_token_lifetime_by_patch_shortens_tokens_already_issued(
    hub: Client, clock: FixedClock
) -> None:
    assert (await hub.change_faults(token_ttl_s=5)).status_code == 200
    clock.advance(timedelta(seconds=5))
    assert (await hub.put(snapshot())).status_code == 401


async def test_a_refused_unit_is_422_whatever_it_carries_until_the_knob_is_cleared(
    hub: Client,
) -> None:
    knobs = (await hub.change_faults(refuse_units=["TB"])).json()
    assert knobs["refuse_units"] == ["TB"]
    refusal = ["unit TB is refused by the fault knob refuse_units"]
    valid = await hub.put(snapshot(1))
    assert (valid.status_code, valid.json()) == (422, {"status": "refused", "reasons": refusal})
    assert (await hub.put(snapshot(2), body=b"not json")).json()["reasons"] == refusal
    assert (await hub.put(snapshot(1, unit="TB.DH"))).json() == {"status": "stored"}
    assert (await hub.put(snapshot(1))).status_code == 422  # as often as it is sent
    log = (await hub.http.get("/admin/puts")).json()
    assert [(e["unit"], e["status"], e["outcome"]) for e in log] == [
        ("TB", 422, "refused"),
        ("TB", 422, "refused"),
        ("TB.DH", 200, "stored"),
        ("TB", 422, "refused"),
    ]
    assert (await hub.change_faults(refuse_units=[])).json()["refuse_units"] == []
    assert (await hub.put(snapshot(1))).json() == {"status": "stored"}
    received = (await hub.http.get("/admin/received")).json()
    assert [(e["unit"], e["version"]) for e in received] == [("TB.DH", 1), ("TB", 1)]


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
async def test_a_fault_knob_out_of_range_is_refused_with_its_name(hub: Client, method: str) -> None:
    async def send(**knobs: Any) -> httpx.Response:
        return await hub.http.request(method, "/admin/faults", json=knobs)

    answer = await send(failure_rate=1.5)
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["body", "failure_rate"]
    assert (await send(failure_ratio=0.5)).status_code == 422
    both = await send(outage_seconds=5, outage_until=(NOW + timedelta(seconds=5)).isoformat())
    assert both.status_code == 422
    assert (await hub.http.get("/admin/faults")).json()["failure_rate"] == 0.0


@pytest.fixture
def environment(
    namespace: str, kafka_bootstrap: str, postgres_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., HubSimulatorSettings]:
    """Settings read with the given fault knobs in the environment."""

    def read(**knobs: str) -> HubSimulatorSettings:
        for knob, value in knobs.items():
            monkeypatch.setenv(f"BAOCAO_HUB_SIMULATOR__FAULTS__{knob.upper()}", value)
        return service_settings(HubSimulatorSettings, namespace, kafka_bootstrap, postgres_dsn)

    return read


async def test_fault_knobs_are_read_from_the_environment_at_start(
    environment: Callable[..., HubSimulatorSettings], clock: FixedClock
) -> None:
    settings = environment(throttle_rate="1", retry_after_s="11", token_ttl_s="2")
    async with running(build_app(settings, clock)) as http:
        client = Client(http)
        token = (await http.post("/oauth/token", data=CREDENTIALS)).json()
        client.token = token["access_token"]
        answer = await client.put(snapshot())
    assert token["expires_in"] == 2
    assert (answer.status_code, answer.headers["retry-after"]) == (429, "11")


async def test_an_outage_latency_and_failures_are_read_from_the_environment_at_start(
    environment: Callable[..., HubSimulatorSettings], clock: FixedClock
) -> None:
    settings = environment(outage_seconds="30", latency_ms="250", failure_rate="1")
    delays: list[float] = []

    async def sleep(seconds: float) -> None:
        delays.append(seconds)

    async with running(build_app(settings, clock, sleep)) as http:
        client = Client(http)
        down = await http.post("/oauth/token", data=CREDENTIALS)
        clock.advance(timedelta(seconds=30))
        await client.login()
        failed = await client.put(snapshot())
    assert (down.status_code, down.json()) == (503, {"error": "outage"})
    assert (failed.status_code, failed.json()) == (503, {"error": "injected failure"})
    assert delays == [0.25]  # the PUT's latency; the token endpoint has none


async def test_refused_units_are_read_from_the_environment_at_start(
    environment: Callable[..., HubSimulatorSettings], clock: FixedClock
) -> None:
    settings = environment(refuse_units='["TB", "TB.DH"]')
    async with running(build_app(settings, clock)) as http:
        client = Client(http)
        await client.login()
        refused = await client.put(snapshot(unit="TB.DH"))
        stored = await client.put(snapshot(unit="TB.VT"))
        knobs = (await http.get("/admin/faults")).json()
    assert (refused.status_code, refused.json()["reasons"]) == (
        422,
        ["unit TB.DH is refused by the fault knob refuse_units"],
    )
    assert stored.json() == {"status": "stored"}
    assert knobs["refuse_units"] == ["TB", "TB.DH"]


# --- restarts and metrics ---------------------------------------------------------------


async def test_what_was_stored_survives_a_restart_and_tokens_do_not(
    settings: HubSimulatorSettings, clock: FixedClock
) -> None:
    async with running(build_app(settings, clock)) as http:
        first = Client(http)
        await first.login()
        assert (await first.put(snapshot(4))).json() == {"status": "stored"}
    async with running(build_app(settings, clock)) as http:
        second = Client(http)
        second.token = first.token
        assert (await second.http.get(PATH, headers=second.auth())).status_code == 401
        await second.login()
        assert (await second.put(snapshot(4))).json() == {"status": "unchanged"}
        assert (await second.put(snapshot(3))).status_code == 409
        log = (await http.get("/admin/received")).json()
    assert [e["version"] for e in log] == [4]


async def test_metrics_count_requests_by_endpoint_and_status(hub: Client) -> None:
    await hub.put(snapshot(2))
    await hub.put(snapshot(1))
    text = (await hub.http.get("/metrics")).text
    assert 'baocao_hubsim_requests_total{endpoint="put",status="200"} 1.0' in text
    assert 'baocao_hubsim_requests_total{endpoint="put",status="409"} 1.0' in text
    assert 'baocao_hubsim_requests_total{endpoint="token",status="200"} 1.0' in text
    assert 'baocao_hubsim_snapshots_stored_total{regime="KSTT-TTHC"} 1.0' in text
    assert 'baocao_hubsim_requests_in_progress{endpoint="put"} 0.0' in text
