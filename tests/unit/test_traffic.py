"""The sample-traffic plan: what it sends is what the validation rules say it should be."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import datetime
from random import Random

import pytest

from services.traffic.reports import (
    BAD_SHARE,
    DUPLICATE_SHARE,
    Kind,
    Planned,
    Slot,
    TrafficPlan,
    Values,
    break_a_rule,
    drop_a_required,
    mistype_a_value,
    open_slots,
    valid_values,
)
from services.validation.rules import Facts, RuleBook, Verdict, validate
from shared import codec
from shared.catalog import Catalog, Regime, load_catalog
from shared.contracts import Issue, Outcome, Report, Severity, Status
from shared.messages import issue
from shared.settings import REPO_ROOT

NOWS = (
    datetime.fromisoformat("2026-03-16T10:00:00+07:00"),
    datetime.fromisoformat("2025-06-20T10:00:00+07:00"),
)
STEPS = 2000
EXPECTED_CODE = {
    Kind.BAD_RULE: "E120",
    Kind.BAD_MISSING: "E111",
    Kind.BAD_TYPE: "E112",
    Kind.BAD_UNIT: "E102",
}
NaturalKey = tuple[str, str, str]
Spoiler = Callable[[Regime, Values, Random], Values | None]


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog(REPO_ROOT / "catalog")


@pytest.fixture(scope="module")
def book(catalog: Catalog) -> RuleBook:
    return RuleBook(catalog)


def natural_key(report: Report) -> NaturalKey:
    return (report.regime, report.period, report.unit)


class FakeValidation:
    """Validation's verdicts with its store's memory: the latest accepted revision per key."""

    def __init__(self, book: RuleBook, now: datetime) -> None:
        self.book = book
        self.now = now
        self.latest: dict[NaturalKey, int] = {}

    def judge(self, report: Report) -> Verdict:
        facts = Facts(latest_accepted_revision=self.latest.get(natural_key(report)))
        verdict = validate(report, self.now, self.book, facts)
        if verdict.status is Status.ACCEPTED:
            self.latest[natural_key(report)] = report.revision
        return verdict


def run_plan(catalog: Catalog, now: datetime, steps: int = STEPS, seed: int = 7) -> list[Planned]:
    plan = TrafficPlan(catalog, Random(seed))
    sent: list[Planned] = []
    for _ in range(steps):
        planned = plan.next(now)
        assert planned is not None
        sent.append(planned)
    return sent


def errors(verdict: Verdict) -> set[str]:
    return {i.code for i in verdict.issues if i.severity is Severity.ERROR}


@pytest.mark.parametrize("now", NOWS, ids=str)
def test_every_valid_report_is_accepted_without_any_issue(
    catalog: Catalog, book: RuleBook, now: datetime
) -> None:
    validation = FakeValidation(book, now)

    for planned in run_plan(catalog, now):
        if planned.kind is Kind.DUPLICATE:
            continue
        verdict = validation.judge(planned.report)
        if not planned.kind.bad:
            assert verdict.status is Status.ACCEPTED, (planned, verdict.issues)
            assert verdict.issues == (), planned


@pytest.mark.parametrize("now", NOWS, ids=str)
def test_every_bad_report_is_rejected_for_what_was_spoiled(
    catalog: Catalog, book: RuleBook, now: datetime
) -> None:
    validation = FakeValidation(book, now)
    seen: Counter[Kind] = Counter()

    for planned in run_plan(catalog, now):
        if planned.kind is Kind.DUPLICATE:
            continue
        verdict = validation.judge(planned.report)
        if planned.kind.bad:
            seen[planned.kind] += 1
            assert verdict.status is Status.REJECTED, planned
            assert errors(verdict) == {EXPECTED_CODE[planned.kind]}, (planned, verdict.issues)
    assert set(seen) == set(EXPECTED_CODE)


@pytest.mark.parametrize("now", NOWS, ids=str)
def test_every_open_slot_first_sends_revision_1_once(catalog: Catalog, now: datetime) -> None:
    slots = {slot.key for slot in open_slots(catalog, now)}
    first: dict[NaturalKey, Report] = {}

    for planned in run_plan(catalog, now):
        if planned.kind in (Kind.FIRST, Kind.CORRECTION):
            first.setdefault(natural_key(planned.report), planned.report)

    assert set(first) == slots
    assert {report.revision for report in first.values()} == {1}


@pytest.mark.parametrize("now", NOWS, ids=str)
def test_corrections_have_higher_revisions_and_changed_values(
    catalog: Catalog, now: datetime
) -> None:
    previous: dict[NaturalKey, Report] = {}
    corrections = 0

    for planned in run_plan(catalog, now):
        report = planned.report
        key = natural_key(report)
        if planned.kind is Kind.CORRECTION:
            corrections += 1
            assert report.revision > previous[key].revision
            assert report.values != previous[key].values
        if planned.kind in (Kind.FIRST, Kind.CORRECTION) or (planned.kind.bad and key in previous):
            previous[key] = report
    assert corrections > 0


def test_duplicates_resend_an_earlier_report_exactly(catalog: Catalog) -> None:
    sent: dict[str, bytes] = {}
    duplicates = 0

    for planned in run_plan(catalog, NOWS[0]):
        body = codec.dumps(planned.report)
        if planned.kind is Kind.DUPLICATE:
            duplicates += 1
            assert sent[planned.report.report_id] == body
        else:
            assert planned.report.report_id not in sent
            sent[planned.report.report_id] = body
    assert duplicates > 0


def test_the_mix_has_a_few_percent_of_duplicates_and_bad_reports(catalog: Catalog) -> None:
    kinds = Counter(planned.kind for planned in run_plan(catalog, NOWS[0], steps=5000))

    bad = sum(count for kind, count in kinds.items() if kind.bad)
    assert bad / 5000 == pytest.approx(BAD_SHARE, abs=0.01)
    assert kinds[Kind.DUPLICATE] / 5000 == pytest.approx(DUPLICATE_SHARE, abs=0.01)


def test_the_same_seed_sends_the_same_reports(catalog: Catalog) -> None:
    first = [codec.dumps(p.report) for p in run_plan(catalog, NOWS[0], steps=200, seed=3)]
    again = [codec.dumps(p.report) for p in run_plan(catalog, NOWS[0], steps=200, seed=3)]

    assert first == again


def test_values_are_integers_where_the_indicator_is_and_never_derived(catalog: Catalog) -> None:
    for planned in run_plan(catalog, NOWS[0], steps=500):
        if planned.kind.bad:
            continue
        regime = catalog.regime_in_force(planned.report.regime, NOWS[0].date())
        assert regime is not None
        for code, value in planned.report.values.items():
            indicator = regime.indicator(code)
            assert indicator is not None
            assert not indicator.is_derived
            if indicator.type.value == "integer":
                assert value == int(value)
            if indicator.type.value == "text":
                assert isinstance(value, str)


def test_open_slots_follow_the_version_and_hierarchy_of_each_period(catalog: Catalog) -> None:
    slots = open_slots(catalog, NOWS[1])
    economy = {
        (s.period.code, s.regime.version, s.unit_type) for s in slots if s.regime.code == "KTXH-M"
    }

    # 2025-M06 ends 2025-06-14 (version 1, districts); 2025-M07 ends 2025-07-14 (version 2).
    assert economy == {("2025-M06", 1, "district"), ("2025-M07", 2, "commune")}


def test_nothing_is_planned_when_no_period_accepts_reports() -> None:
    catalog = load_catalog(REPO_ROOT / "catalog")
    before_any_regime = datetime.fromisoformat("2020-06-01T10:00:00+07:00")

    assert TrafficPlan(catalog, Random(1)).next(before_any_regime) is None


@pytest.mark.parametrize("regime", ["KSTT-TTHC", "KTXH-M", "NVCP-S"])
@pytest.mark.parametrize(
    ("spoil", "code"),
    [(break_a_rule, "E120"), (drop_a_required, "E111"), (mistype_a_value, "E112")],
)
def test_each_way_of_spoiling_a_report_gives_its_own_error(
    catalog: Catalog, book: RuleBook, regime: str, spoil: Spoiler, code: str
) -> None:
    now = NOWS[0]
    slot = next(s for s in open_slots(catalog, now) if s.regime.code == regime)
    rng = Random(11)
    for _ in range(20):
        values = spoil(slot.regime, valid_values(slot, rng), rng)
        assert values is not None
        verdict = validate(report_for(slot, values, now), now, book, Facts())
        assert errors(verdict) == {code}, verdict.issues


def report_for(slot: Slot, values: Values, now: datetime) -> Report:
    return Report.model_validate(
        {
            "schema": "baocao.report.v1",
            "report_id": "spoiled-1",
            "regime": slot.regime.code,
            "period": slot.period.code,
            "unit": slot.unit,
            "revision": 1,
            "values": values,
            "source": "test",
            "prepared_at": now,
        }
    )


def stale(report: Report, latest: int) -> Outcome:
    found: Issue = issue("E130", field="revision", revision=report.revision, latest=latest)
    return Outcome(
        report_id=report.report_id,
        regime=report.regime,
        period=report.period,
        unit=report.unit,
        revision=report.revision,
        status=Status.REJECTED,
        issues=(found,),
    )


def test_a_stale_refusal_makes_the_plan_resend_above_the_revision_the_system_holds(
    catalog: Catalog,
) -> None:
    plan = TrafficPlan(catalog, Random(5))
    first = plan.next(NOWS[0])
    assert first is not None
    assert first.kind is Kind.FIRST

    plan.learn(stale(first.report, latest=41))
    resent = next(
        planned
        for planned in (plan.next(NOWS[0]) for _ in range(20))
        if planned is not None
        and not planned.kind.bad
        and natural_key(planned.report) == natural_key(first.report)
    )

    assert resent.report.revision > 41
