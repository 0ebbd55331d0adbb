"""The hub simulator's pure parts: when it misbehaves, and which tokens it honours.

Proves: an outage refuses every request (token endpoint included) with 503 and the
configured Retry-After until it ends; random failures (503) and throttling (429) concern
API requests only and occur at their configured rates; a token is honoured until the
instant it expires and only as `Bearer <token>`; a shorter lifetime set at run time cuts
tokens already issued, never lengthens one.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import pytest

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
