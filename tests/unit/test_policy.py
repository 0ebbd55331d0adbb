"""`services.connector.policy` decides when to send again and when to leave the hub alone.

Proves: backoff ceilings grow exponentially from `base_s` up to `cap_s`; the delay is full
jitter, spread over 0..ceiling, and never below the hub's Retry-After; each delivery
outcome leads to its step (acked, retry, parked), and only stored and unchanged mean the
hub holds the very version sent; the circuit opens after `threshold` consecutive failures,
lets nothing through while open and one probe after the cool-down (never shorter than the
hub's Retry-After), closes on a successful probe and doubles the cool-down on a failed
one, up to the maximum; `record` reports each opening and closing, once.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.connector.hub_client import HubReply
from services.connector.policy import (
    Backoff,
    Circuit,
    CircuitState,
    Step,
    Transition,
    holds_this_version,
    step_after,
)
from shared.contracts import DeliveryOutcome

pytestmark = pytest.mark.unit

T0 = datetime.fromisoformat("2026-03-18T09:00:00+07:00")
CONCURRENCY = 8


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


class Ceiling(random.Random):
    """A random source that always draws the top of the range: the delay is the ceiling."""

    def uniform(self, a: float, b: float) -> float:
        return b


# --- backoff ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attempt", "ceiling"),
    [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 8.0), (7, 32.0), (8, 60.0), (30, 60.0)],
)
def test_the_backoff_ceiling_doubles_per_attempt_up_to_the_cap(
    attempt: int, ceiling: float
) -> None:
    assert Backoff(base_s=0.5, cap_s=60.0).delay(attempt, None, Ceiling()) == ceiling


@given(
    st.integers(min_value=1, max_value=1000),
    st.integers(min_value=0, max_value=2**32),
    st.floats(min_value=0.01, max_value=10),
    st.floats(min_value=10, max_value=600),
)
def test_a_delay_is_between_zero_and_the_ceiling(
    attempt: int, seed: int, base_s: float, cap_s: float
) -> None:
    backoff = Backoff(base_s=base_s, cap_s=cap_s)
    ceiling = min(cap_s, base_s * 2 ** (attempt - 1))
    assert 0 <= backoff.delay(attempt, None, random.Random(seed)) <= ceiling


@pytest.mark.parametrize("attempt", [1, 3, 10])
def test_the_delay_is_full_jitter_spread_over_the_whole_range(attempt: int) -> None:
    backoff = Backoff(base_s=0.5, cap_s=60.0)
    ceiling = min(60.0, 0.5 * 2 ** (attempt - 1))
    rng = random.Random(20260318)
    delays = [backoff.delay(attempt, None, rng) for _ in range(2000)]
    assert min(delays) < 0.05 * ceiling  # full jitter reaches near zero, not ceiling / 2
    assert max(delays) > 0.95 * ceiling
    assert sum(d < ceiling / 2 for d in delays) > 800  # roughly uniform: about half below


def test_the_same_seed_gives_the_same_delays() -> None:
    backoff = Backoff()
    first = [backoff.delay(n, None, random.Random(7)) for n in range(1, 10)]
    again = [backoff.delay(n, None, random.Random(7)) for n in range(1, 10)]
    assert first == again


@given(
    st.integers(min_value=1, max_value=1000),
    st.integers(min_value=0, max_value=2**32),
    st.floats(min_value=0, max_value=3600),
)
def test_a_delay_is_never_below_retry_after(attempt: int, seed: int, retry_after: float) -> None:
    delay = Backoff().delay(attempt, retry_after, random.Random(seed))
    assert delay >= retry_after


def test_a_retry_after_beyond_the_cap_is_obeyed() -> None:
    assert Backoff(cap_s=60.0).delay(1, 120.0, random.Random(1)) == 120.0


def test_a_scope_failing_for_a_very_long_outage_still_gets_a_capped_delay() -> None:
    # At the 60 s cap, 1025 attempts are 17 hours of outage: a long weekend's.
    assert Backoff(cap_s=60.0).delay(1025, None, Ceiling()) == 60.0


# --- what to do after a reply -------------------------------------------------------------


@pytest.mark.parametrize(
    ("outcome", "step"),
    [
        (DeliveryOutcome.STORED, Step.ACKED),
        (DeliveryOutcome.UNCHANGED, Step.ACKED),
        (DeliveryOutcome.STALE, Step.ACKED),
        (DeliveryOutcome.REFUSED, Step.PARKED),
        (DeliveryOutcome.FAILED, Step.RETRY),
    ],
)
def test_each_delivery_outcome_leads_to_its_step(outcome: DeliveryOutcome, step: Step) -> None:
    assert step_after(HubReply(outcome, 200)) is step
    assert step_after(HubReply(outcome, None)) is step


def test_every_delivery_outcome_has_a_step() -> None:
    assert {step_after(HubReply(o)) for o in DeliveryOutcome} == set(Step)


@pytest.mark.parametrize(
    ("outcome", "holds"),
    [
        (DeliveryOutcome.STORED, True),
        (DeliveryOutcome.UNCHANGED, True),
        (DeliveryOutcome.STALE, False),  # it holds a newer one
        (DeliveryOutcome.REFUSED, False),
        (DeliveryOutcome.FAILED, False),
    ],
)
def test_only_stored_and_unchanged_mean_the_hub_holds_the_version_sent(
    outcome: DeliveryOutcome, holds: bool
) -> None:
    assert holds_this_version(HubReply(outcome)) is holds


# --- the circuit breaker ----------------------------------------------------------------


def failing(circuit: Circuit, times: int, now: datetime) -> Circuit:
    for _ in range(times):
        circuit.record(hub_failed=True, now=now)
    return circuit


def test_a_closed_circuit_lets_every_delivery_through() -> None:
    circuit = Circuit(threshold=5)
    assert circuit.capacity(T0, CONCURRENCY) == CONCURRENCY
    assert not circuit.is_open


def test_the_circuit_stays_closed_below_the_threshold() -> None:
    circuit = failing(Circuit(threshold=5), 4, T0)
    assert circuit.state is CircuitState.CLOSED
    assert circuit.capacity(T0, CONCURRENCY) == CONCURRENCY


def test_a_success_resets_the_count_of_consecutive_failures() -> None:
    circuit = failing(Circuit(threshold=5), 4, T0)
    circuit.record(hub_failed=False, now=T0)
    failing(circuit, 4, T0)
    assert circuit.state is CircuitState.CLOSED


def test_the_circuit_opens_after_threshold_consecutive_failures() -> None:
    circuit = failing(Circuit(threshold=5, cool_down_s=5.0), 5, T0)
    assert circuit.state is CircuitState.OPEN
    assert circuit.is_open
    assert circuit.reopen_at == at(5)


@pytest.mark.parametrize("seconds", [0, 1, 4.999])
def test_an_open_circuit_lets_nothing_through_during_the_cool_down(seconds: float) -> None:
    circuit = failing(Circuit(threshold=5, cool_down_s=5.0), 5, T0)
    assert circuit.capacity(at(seconds), CONCURRENCY) == 0


@pytest.mark.parametrize("seconds", [5, 5.001, 3600])
def test_after_the_cool_down_one_probe_is_let_through(seconds: float) -> None:
    circuit = failing(Circuit(threshold=5, cool_down_s=5.0), 5, T0)
    assert circuit.capacity(at(seconds), CONCURRENCY) == 1
    assert circuit.state is CircuitState.HALF_OPEN


def test_a_successful_probe_closes_the_circuit() -> None:
    circuit = failing(Circuit(threshold=5, cool_down_s=5.0), 5, T0)
    assert circuit.capacity(at(5), CONCURRENCY) == 1
    circuit.record(hub_failed=False, now=at(6))
    assert circuit.state is CircuitState.CLOSED
    assert not circuit.is_open
    assert circuit.capacity(at(6), CONCURRENCY) == CONCURRENCY


def test_a_failed_probe_reopens_the_circuit_for_twice_the_cool_down() -> None:
    circuit = failing(Circuit(threshold=5, cool_down_s=5.0), 5, T0)
    assert circuit.capacity(at(5), CONCURRENCY) == 1
    circuit.record(hub_failed=True, now=at(5))
    assert circuit.state is CircuitState.OPEN
    assert circuit.reopen_at == at(15)
    assert circuit.capacity(at(14.9), CONCURRENCY) == 0
    assert circuit.capacity(at(15), CONCURRENCY) == 1


def test_the_cool_down_doubles_on_each_failed_probe_up_to_the_maximum() -> None:
    circuit = failing(Circuit(threshold=3, cool_down_s=5.0, max_cool_down_s=60.0), 3, T0)
    now, cool_downs = T0, []
    for _ in range(6):
        assert circuit.reopen_at is not None
        cool_downs.append((circuit.reopen_at - now).total_seconds())
        now = circuit.reopen_at
        assert circuit.capacity(now, CONCURRENCY) == 1
        circuit.record(hub_failed=True, now=now)
    assert cool_downs == [5.0, 10.0, 20.0, 40.0, 60.0, 60.0]


def test_after_closing_the_next_opening_starts_from_the_first_cool_down() -> None:
    circuit = failing(Circuit(threshold=2, cool_down_s=5.0), 2, T0)
    circuit.capacity(at(5), CONCURRENCY)
    circuit.record(hub_failed=True, now=at(5))  # cool-down now 10 s
    circuit.capacity(at(15), CONCURRENCY)
    circuit.record(hub_failed=False, now=at(15))
    failing(circuit, 2, at(100))
    assert circuit.reopen_at == at(105)


def test_failures_of_deliveries_in_flight_when_it_opened_do_not_lengthen_the_cool_down() -> None:
    circuit = failing(Circuit(threshold=5, cool_down_s=5.0), CONCURRENCY, T0)
    assert circuit.reopen_at == at(5)


def test_record_says_when_the_circuit_opens_and_when_it_closes_once_each() -> None:
    circuit = Circuit(threshold=2, cool_down_s=5.0)
    assert circuit.record(hub_failed=True, now=T0) is None
    assert circuit.record(hub_failed=True, now=T0) is Transition.OPENED
    assert circuit.record(hub_failed=True, now=T0) is None  # in flight when it opened
    circuit.capacity(at(5), CONCURRENCY)
    assert circuit.record(hub_failed=True, now=at(5)) is Transition.OPENED  # failed probe
    circuit.capacity(at(15), CONCURRENCY)
    assert circuit.record(hub_failed=False, now=at(15)) is Transition.CLOSED
    assert circuit.record(hub_failed=False, now=at(16)) is None


@pytest.mark.parametrize(("retry_after", "reopens"), [(None, 5), (2.0, 5), (30.0, 30)])
def test_the_cool_down_is_never_shorter_than_the_hubs_retry_after(
    retry_after: float | None, reopens: float
) -> None:
    circuit = Circuit(threshold=1, cool_down_s=5.0)
    circuit.record(hub_failed=True, now=T0, retry_after_s=retry_after)
    assert circuit.reopen_at == at(reopens)
