"""The hub simulator's pure parts: when it misbehaves, and which tokens it honours.

Proves: an outage refuses every request (token endpoint included) with 503 and the
configured Retry-After until it ends; random failures (503) and throttling (429) concern
API requests only and occur at their configured rates; a token is honoured until the
instant it expires and only as `Bearer <token>`; a shorter lifetime set at run time cuts
tokens already issued, never lengthens one. Changing some knobs keeps the others, and an
outage in progress goes on unless an outage knob is changed; the knobs in force, as
reported, configure the same faults again. A refused unit's PUTs are refused, with the knob
named, and no other unit's; changing the refused units keeps an outage in progress.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import pytest
from pydantic import ValidationError

from services.hub_simulator.faults import FaultState, Refusal
from services.hub_simulator.settings import Faults
from services.hub_simulator.tokens import Tokens

pytestmark = pytest.mark.unit

T0 = datetime.fromisoformat("2025-03-18T09:00:00+07:00")


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def state(**knobs: float) -> FaultState:
    faults = Faults(**knobs)  # type: ignore[arg-type]
    fault_state = FaultState(faults)
    fault_state.configure(faults, T0)
    return fault_state


@pytest.mark.parametrize("api", [True, False])
def test_an_outage_refuses_every_request_until_it_ends(api: bool) -> None:
    outage = state(outage_seconds=60, retry_after_s=5)
    rng = random.Random(1)
    assert outage.refusal(at(0), rng, api=api) == Refusal(503, 5, "outage")
    assert outage.refusal(at(59.999), rng, api=api) == Refusal(503, 5, "outage")
    assert outage.refusal(at(60), rng, api=api) is None


def test_without_knobs_nothing_is_refused() -> None:
    calm, rng = state(), random.Random(1)
    assert all(calm.refusal(at(n), rng) is None for n in range(1000))


@pytest.mark.parametrize(("knob", "status"), [("failure_rate", 503), ("throttle_rate", 429)])
def test_random_refusals_concern_api_requests_only(knob: str, status: int) -> None:
    always = state(**{knob: 1.0})
    rng = random.Random(1)
    assert always.refusal(at(0), rng) is not None
    assert always.refusal(at(0), rng).status == status  # type: ignore[union-attr]
    assert always.refusal(at(0), rng, api=False) is None


def test_random_failures_occur_at_their_rate() -> None:
    flaky, rng = state(failure_rate=0.3), random.Random(20250318)
    refused = sum(flaky.refusal(at(0), rng) is not None for _ in range(4000))
    assert 1080 <= refused <= 1320  # 30 % of 4000, give or take 3 standard deviations


def test_a_token_is_honoured_until_it_expires() -> None:
    tokens = Tokens()
    token = tokens.issue(T0, 2)
    assert tokens.valid(f"Bearer {token}", at(1.999))
    assert not tokens.valid(f"Bearer {token}", at(2))
    assert not tokens.valid(token, at(0))
    assert not tokens.valid(f"Basic {token}", at(0))
    assert not tokens.valid(None, at(0))
    assert not tokens.valid("Bearer not-a-token", at(0))


def test_a_shorter_lifetime_cuts_tokens_already_issued_and_never_lengthens_one() -> None:
    tokens = Tokens()
    long, short = tokens.issue(T0, 300), tokens.issue(T0, 3)
    tokens.shorten(at(1), 5)
    assert tokens.valid(f"Bearer {long}", at(5.9))
    assert not tokens.valid(f"Bearer {long}", at(6))
    assert not tokens.valid(f"Bearer {short}", at(3))


def changes(**knobs: object) -> Faults:
    return Faults.model_validate(knobs)


def test_changing_some_knobs_keeps_the_others_and_the_outage_in_progress() -> None:
    faults = state(outage_seconds=60, retry_after_s=7, latency_ms=300)
    patched = faults.patched(changes(failure_rate=0.5), at(10))
    faults.configure(patched, at(10))
    assert faults.outage_until == at(60)
    assert (faults.faults.failure_rate, faults.faults.retry_after_s) == (0.5, 7)
    assert faults.faults.latency_ms == 300


@pytest.mark.parametrize(
    ("knobs", "until"),
    [
        ({"outage_seconds": 5}, at(15)),
        ({"outage_seconds": 0}, None),
        ({"outage_until": None}, None),
    ],
)
def test_changing_an_outage_knob_replaces_the_outage_in_progress(
    knobs: dict[str, object], until: datetime | None
) -> None:
    faults = state(outage_seconds=60, retry_after_s=7)
    faults.configure(faults.patched(changes(**knobs), at(10)), at(10))
    assert (faults.outage_until, faults.faults.retry_after_s) == (until, 7)


def test_the_knobs_in_force_configure_the_same_faults_again() -> None:
    faults = state(outage_seconds=60, throttle_rate=0.2)
    reported = faults.state(at(10))
    assert reported.outage_until == at(60)
    faults.configure(Faults.model_validate(reported.model_dump(mode="json")), at(10))
    assert (faults.outage_until, faults.faults.throttle_rate) == (at(60), 0.2)
    assert faults.state(at(60)).outage_until is None  # over


def test_an_outage_is_asked_for_one_way_at_a_time() -> None:
    with pytest.raises(ValidationError, match="not both"):
        Faults(outage_seconds=5, outage_until=at(5))


def test_only_the_refused_units_are_refused_and_the_reason_names_the_knob() -> None:
    faults = FaultState(Faults(refuse_units=("TB", "TB.DH")))
    assert faults.refused_unit("TB") == "unit TB is refused by the fault knob refuse_units"
    assert faults.refused_unit("TB.DH") is not None
    assert faults.refused_unit("TB.VT") is None
    assert faults.refused_unit("tb") is None  # unit codes are exact
    assert state().refused_unit("TB") is None


def test_refusing_units_keeps_the_outage_in_progress_and_clearing_them_refuses_none() -> None:
    faults = state(outage_seconds=60, retry_after_s=7)
    faults.configure(faults.patched(changes(refuse_units=["TB"]), at(10)), at(10))
    assert (faults.outage_until, faults.faults.retry_after_s) == (at(60), 7)
    assert faults.state(at(10)).refuse_units == ("TB",)
    faults.configure(faults.patched(changes(refuse_units=[]), at(20)), at(20))
    assert faults.refused_unit("TB") is None
    assert faults.outage_until == at(60)
