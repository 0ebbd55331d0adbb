"""`services.aggregation.folds` rolls accepted reports up exactly, whatever order they come in.

Proves, by folding plain lists: each aggregation type (sum, avg, min, max, none) and each
derived indicator of the catalog, at the province's scope and at a district's (zero
denominator → None, `decimals` rounded half up);
sums exact beyond 28 digits and averages rounded once, half up, at 28 digits (a mean of
128 units that ties at the 29th digit), the same in every
order and under any caller's decimal context (checked against fractions); completeness
(expected, reported, on time by the FIRST accepted revision, 2-decimal rates, missing
units sorted); the hierarchy in force for the period (KSTT-TTHC 2025-Q1 and Q2: the
province and the 8 districts, communes rolled up to their district; 2025-Q3 onwards: the
province only, communes straight under it); versions (1 for every scope's first snapshot,
+1 only for a scope whose content changed); and, as hypothesis properties over the catalog
and over every aggregation type, that shuffling, duplicating, interleaving corrections
and folding in two parts give the snapshots of folding only the latest revision per unit,
that a correction replaces and never adds, that explicit zeros stay zero and that an
indicator with no value is present as None.
"""

from __future__ import annotations

import decimal
import itertools
import random
from collections.abc import Mapping, Sequence
from datetime import date
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.aggregation.folds import (
    Figures,
    Frame,
    State,
    Version,
    apply,
    empty,
    fold,
    frame_for,
    snapshot,
    snapshots,
    versions,
)
from shared.catalog import Catalog, Regime, load_catalog
from shared.contracts import AcceptedReport, AggregateSnapshot, Timeliness
from shared.expressions import Expression
from tests import factories

pytestmark = pytest.mark.unit

CATALOG: Catalog = load_catalog(Path(__file__).parents[2] / "catalog")
DISTRICTS = ("TB.DH", "TB.HH", "TB.KX", "TB.QP", "TB.TH", "TB.TPTB", "TB.TT", "TB.VT")
ON_TIME, LATE = Timeliness.ON_TIME, Timeliness.LATE


def frame(regime: str, period: str) -> Frame:
    found = frame_for(CATALOG, regime, period)
    assert found is not None
    return found


KSTT_2025 = frame("KSTT-TTHC", "2025-Q1")
KSTT_2026 = frame("KSTT-TTHC", "2026-Q1")


def report(
    unit: str,
    values: dict[str, Any],
    *,
    revision: int = 1,
    timeliness: Timeliness = ON_TIME,
    regime: str = "KSTT-TTHC",
    period: str = "2025-Q1",
) -> AcceptedReport:
    return factories.accepted(
        report_id=f"{unit}-{revision}",
        regime=regime,
        period=period,
        unit=unit,
        revision=revision,
        values={k: Decimal(v) for k, v in values.items()},
        timeliness=timeliness,
    )


# --- each aggregation type, on a regime built for the purpose -------------------------

TYPES_REGIME = Regime.model_validate(
    {
        "code": "TYPES",
        "version": 3,
        "name_vi": "Thử",
        "name_en": "Test",
        "legal_basis": "test",
        "frequency": "quarterly",
        "period_convention": "nd09",
        "deadlines": {
            "unit_to_province": {"day_of_last_month": 18},
            "province_to_hub": {"day_of_last_month": 25},
        },
        "lock_after_days": 30,
        "reporters": ["district"],
        "effective_from": "2020-01-01",
        "indicators": [
            {
                "code": code,
                "name_vi": code,
                "name_en": code,
                "unit": "x",
                "type": "decimal",
                "aggregation": how,
            }
            for code, how in (
                ("S", "sum"),
                ("A", "avg"),
                ("LO", "min"),
                ("HI", "max"),
                ("N", "none"),
            )
        ]
        + [
            {
                "code": "T",
                "name_vi": "T",
                "name_en": "T",
                "unit": "",
                "type": "text",
                "aggregation": "none",
            }
        ]
        + [
            {
                "code": code,
                "name_vi": code,
                "name_en": code,
                "unit": "x",
                "type": "decimal",
                "derived": formula,
                "decimals": decimals,
            }
            for code, formula, decimals in (
                ("SHARE", "LO / S * 100", 2),
                ("TWICE_N", "N * 2", None),
            )
        ],
    }
)
# "P" reports itself and has three reporters below it; "Q" does not report itself.
TYPES_FRAME = Frame(
    TYPES_REGIME,
    date(2026, 3, 14),
    {"P": ("P", "P.A", "P.B", "P.C"), "Q": ("Q.A", "Q.B")},
    {i.code: Expression(i.derived) for i in TYPES_REGIME.indicators if i.derived},
)


def types_report(unit: str, values: dict[str, str], revision: int = 1) -> AcceptedReport:
    """A TYPES report; every value is a number written as text, except T's, which is text."""
    return factories.accepted(
        report_id=f"{unit}-{revision}",
        regime="TYPES",
        regime_version=3,
        unit=unit,
        revision=revision,
        values={k: v if k == "T" else Decimal(v) for k, v in values.items()},
    )


@pytest.mark.parametrize(
    ("indicator", "contributions", "expected"),
    [
        ("S", {"P.A": "1.5", "P.B": "2.25", "P.C": "-0.75"}, Decimal("3.00")),
        ("S", {"P.A": "0", "P.B": "0"}, Decimal(0)),
        (
            "S",
            {"P.A": "1234567890123.4567891234", "P.B": "0.0000000001"},
            Decimal("1234567890123.4567891235"),
        ),
        ("S", {}, None),
        ("A", {"P.A": "1", "P.B": "2", "P.C": "4"}, Decimal("2.333333333333333333333333333")),
        ("A", {"P.A": "10", "P.B": "20"}, Decimal(15)),
        ("A", {"P": "7"}, Decimal(7)),
        ("A", {}, None),
        ("LO", {"P.A": "3", "P.B": "-1.5", "P.C": "0"}, Decimal("-1.5")),
        ("LO", {}, None),
        ("HI", {"P.A": "3", "P.B": "-1.5", "P.C": "3.01"}, Decimal("3.01")),
        ("HI", {"P.A": "0"}, Decimal(0)),
        ("HI", {}, None),
    ],
)
def test_each_aggregation_type_folds_the_reporters_of_the_scope(
    indicator: str, contributions: dict[str, str], expected: Decimal | None
) -> None:
    reports = [types_report(unit, {indicator: value}) for unit, value in contributions.items()]
    # A unit outside the scope never counts.
    reports.append(types_report("Q.A", {indicator: "1000"}))
    values = snapshot(fold(reports), TYPES_FRAME, "P").values
    assert indicator in values
    assert values[indicator] == expected
    if expected is not None:
        assert str(values[indicator]) == str(expected)


def test_a_none_indicator_is_not_rolled_up_from_the_units_below() -> None:
    state = fold([types_report("P.A", {"N": "5", "T": "below"}), types_report("P.B", {"N": "6"})])
    values = snapshot(state, TYPES_FRAME, "P").values
    assert values["N"] is None
    assert values["T"] is None


def test_a_none_indicator_shows_the_scope_units_own_value() -> None:
    state = fold(
        [types_report("P", {"N": "5", "T": "Đánh giá chung"}), types_report("P.A", {"N": "6"})]
    )
    values = snapshot(state, TYPES_FRAME, "P").values
    assert values["N"] == Decimal(5)
    assert values["T"] == "Đánh giá chung"


def test_a_none_indicator_corrected_away_is_sent_as_null_not_dropped() -> None:
    state = fold(
        [types_report("P", {"T": "Đánh giá cũ"}), types_report("P", {"S": "1"}, revision=2)]
    )
    values = snapshot(state, TYPES_FRAME, "P").values
    assert "T" in values
    assert values["T"] is None


def test_a_text_value_in_a_number_indicator_is_not_summed() -> None:
    state = fold(
        [
            types_report("P.A", {"S": "12"}),
            factories.accepted(
                report_id="text", regime="TYPES", regime_version=3, unit="P.B", values={"S": "abc"}
            ),
        ]
    )
    assert snapshot(state, TYPES_FRAME, "P").values["S"] == Decimal(12)


# --- derived indicators of the catalog --------------------------------------------------


@pytest.mark.parametrize(
    ("regime", "period", "unit", "scope", "values", "indicator", "expected"),
    [
        # 1 / 32 * 100 = 3.125: half up gives 3.13 (half even would give 3.12).
        (
            "KSTT-TTHC",
            "2026-Q1",
            "TB.DH.N01",
            "TB",
            {"RESOLVED_EARLY": 1, "RESOLVED_ON_TIME": 0, "RESOLVED_TOTAL": 32},
            "ON_TIME_RATE",
            Decimal("3.13"),
        ),
        (
            "KSTT-TTHC",
            "2026-Q1",
            "TB.DH.N01",
            "TB",
            {"RESOLVED_EARLY": 50, "RESOLVED_ON_TIME": 60, "RESOLVED_TOTAL": 120},
            "ON_TIME_RATE",
            Decimal("91.67"),
        ),
        (
            "KSTT-TTHC",
            "2026-Q1",
            "TB.DH.N01",
            "TB",
            {"RESOLVED_EARLY": 1, "RESOLVED_ON_TIME": 0, "RESOLVED_TOTAL": 8},
            "ON_TIME_RATE",
            Decimal("12.50"),
        ),
        (
            "KSTT-TTHC",
            "2026-Q1",
            "TB.DH.N01",
            "TB",
            {"RESOLVED_EARLY": 0, "RESOLVED_ON_TIME": 0, "RESOLVED_TOTAL": 0},
            "ON_TIME_RATE",
            None,
        ),
        (
            "KSTT-TTHC",
            "2026-Q1",
            "TB.DH.N01",
            "TB",
            {"RESOLVED_EARLY": 5, "RESOLVED_ON_TIME": 0},
            "ON_TIME_RATE",
            None,
        ),
        (
            "KSTT-TTHC",
            "2026-Q1",
            "TB.DH.N01",
            "TB",
            {"RECEIVED_ONLINE": 2, "RECEIVED_DIRECT": 1},
            "ONLINE_RATE",
            Decimal("66.67"),
        ),
        (
            "KSTT-TTHC",
            "2026-Q1",
            "TB.DH.N01",
            "TB",
            {"RECEIVED_ONLINE": 0, "RECEIVED_DIRECT": 0},
            "ONLINE_RATE",
            None,
        ),
        # 1.25 / 1 with one decimal: half up gives 1.3 (half even would give 1.2).
        (
            "KSTT-TTHC",
            "2026-Q1",
            "TB.DH.N01",
            "TB",
            {"PROCESSING_DAYS_TOTAL": "1.25", "RESOLVED_TOTAL": 1},
            "AVG_PROCESSING_DAYS",
            Decimal("1.3"),
        ),
        (
            "KSTT-TTHC",
            "2026-Q1",
            "TB.DH.N01",
            "TB",
            {"PROCESSING_DAYS_TOTAL": "480.5", "RESOLVED_TOTAL": 0},
            "AVG_PROCESSING_DAYS",
            None,
        ),
        (
            "KTXH-M",
            "2025-M07",
            "TB.DH.N01",
            "TB",
            {"PUBLIC_INVEST_DISBURSED": "123.456", "PUBLIC_INVEST_PLAN": "400"},
            "DISBURSEMENT_RATE",
            Decimal("30.86"),
        ),
        (
            "KTXH-M",
            "2025-M07",
            "TB.DH.N01",
            "TB",
            {"PUBLIC_INVEST_DISBURSED": "0.00125", "PUBLIC_INVEST_PLAN": "1"},
            "DISBURSEMENT_RATE",
            Decimal("0.13"),
        ),
        (
            "KTXH-M",
            "2025-M06",
            "TB.DH",
            "TB",
            {"PUBLIC_INVEST_DISBURSED": "10", "PUBLIC_INVEST_PLAN": "0"},
            "DISBURSEMENT_RATE",
            None,
        ),
        (
            "NVCP-S",
            "2026-S1",
            "TB.STC",
            "TB",
            {"TASKS_DONE_ON_TIME": 1, "TASKS_DONE_LATE": 0, "TASKS_ASSIGNED": 8},
            "COMPLETION_RATE",
            Decimal("12.50"),
        ),
        (
            "NVCP-S",
            "2026-S1",
            "TB.STC",
            "TB",
            {"TASKS_DONE_ON_TIME": 0, "TASKS_DONE_LATE": 0, "TASKS_ASSIGNED": 0},
            "COMPLETION_RATE",
            None,
        ),
        # At a district's scope (2025 quarters have one): a commune's figures, derived
        # there as at the province. 4.9 / 2 = 2.45: half up gives 2.5 (half even 2.4).
        (
            "KSTT-TTHC",
            "2025-Q1",
            "TB.DH.X01",
            "TB.DH",
            {"PROCESSING_DAYS_TOTAL": "4.9", "RESOLVED_TOTAL": 2},
            "AVG_PROCESSING_DAYS",
            Decimal("2.5"),
        ),
        (
            "KSTT-TTHC",
            "2025-Q1",
            "TB.DH.X01",
            "TB.DH",
            {"RESOLVED_EARLY": 3, "RESOLVED_ON_TIME": 1, "RESOLVED_TOTAL": 0},
            "ON_TIME_RATE",
            None,
        ),
    ],
)
def test_derived_indicators_are_computed_and_rounded_half_up(
    regime: str,
    period: str,
    unit: str,
    scope: str,
    values: dict[str, Any],
    indicator: str,
    expected: Decimal | None,
) -> None:
    figures = snapshot(
        fold([report(unit, values, regime=regime, period=period)]), frame(regime, period), scope
    )
    assert indicator in figures.values
    assert figures.values[indicator] == expected
    if expected is not None:
        assert str(figures.values[indicator]) == str(expected)  # exactly `decimals` places


def test_a_derived_rate_is_computed_from_rolled_up_values_never_averaged() -> None:
    state = fold(
        [
            report(
                "TB.DH.N01",
                {"RESOLVED_EARLY": 1, "RESOLVED_ON_TIME": 0, "RESOLVED_TOTAL": 1},
                period="2026-Q1",
            ),
            report(
                "TB.DH.N02",
                {"RESOLVED_EARLY": 0, "RESOLVED_ON_TIME": 0, "RESOLVED_TOTAL": 3},
                period="2026-Q1",
            ),
        ]
    )
    # 1 of 4 dossiers: 25 %, not the mean of 100 % and 0 %.
    assert snapshot(state, KSTT_2026, "TB").values["ON_TIME_RATE"] == Decimal("25.00")


# --- scopes and completeness ------------------------------------------------------------


@pytest.mark.parametrize(
    ("regime", "period", "scopes", "province_expected"),
    [
        ("KSTT-TTHC", "2025-Q1", ("TB", *DISTRICTS), 33),
        ("KSTT-TTHC", "2026-Q1", ("TB",), 17),
        ("KTXH-M", "2025-M06", ("TB",), 8),
        ("KTXH-M", "2025-M07", ("TB",), 16),
        ("NVCP-S", "2026-S1", ("TB",), 6),
    ],
)
def test_the_scopes_of_a_period_are_the_units_with_reporters_below_them(
    regime: str, period: str, scopes: tuple[str, ...], province_expected: int
) -> None:
    found = frame(regime, period)
    assert found.scopes == scopes
    assert len(found.reporters["TB"]) == province_expected


def test_kstt_2025_q1_districts_count_themselves_and_their_communes() -> None:
    for district in DISTRICTS:
        assert KSTT_2025.reporters[district] == (
            district,
            f"{district}.X01",
            f"{district}.X02",
            f"{district}.X03",
        )
    assert KSTT_2025.reporters["TB"] == tuple(
        sorted([*DISTRICTS, *(f"{d}.X0{n}" for d in DISTRICTS for n in (1, 2, 3)), "TB.TTPVHCC"])
    )


def test_kstt_2026_q1_has_only_the_new_communes_and_the_service_centre_under_the_province() -> None:
    assert KSTT_2026.reporters["TB"] == tuple(
        sorted([*(f"{d}.N0{n}" for d in DISTRICTS for n in (1, 2)), "TB.TTPVHCC"])
    )


@pytest.mark.parametrize(
    ("regime", "period"), [("NOPE", "2026-Q1"), ("KTXH-M", "2020-M11"), ("KSTT-TTHC", "2020-Q4")]
)
def test_there_is_no_frame_without_a_regime_version_for_the_period(
    regime: str, period: str
) -> None:
    assert frame_for(CATALOG, regime, period) is None


def test_communes_roll_up_to_their_district_and_districts_add_their_own_report() -> None:
    state = fold(
        [
            report("TB.DH", {"RECEIVED_ONLINE": 100}),
            report("TB.DH.X01", {"RECEIVED_ONLINE": 10}),
            report("TB.DH.X02", {"RECEIVED_ONLINE": 20}),
            report("TB.DH.X03", {"RECEIVED_ONLINE": 30}),
            report("TB.HH.X01", {"RECEIVED_ONLINE": 1000}),
            report("TB.TTPVHCC", {"RECEIVED_ONLINE": 5}),
        ]
    )
    figures = snapshots(state, KSTT_2025)
    assert figures["TB.DH"].values["RECEIVED_ONLINE"] == Decimal(160)
    assert figures["TB.HH"].values["RECEIVED_ONLINE"] == Decimal(1000)
    assert figures["TB.KX"].values["RECEIVED_ONLINE"] is None
    assert figures["TB"].values["RECEIVED_ONLINE"] == Decimal(1165)


def test_completeness_counts_on_time_by_the_first_accepted_revision() -> None:
    state = fold(
        [
            report("TB.DH.X01", {}, timeliness=ON_TIME),
            # Late first, then an on-time correction: not on time.
            report("TB.DH.X02", {}, timeliness=LATE),
            report("TB.DH.X02", {}, revision=2, timeliness=ON_TIME),
            # On time first, then a late correction: on time.
            report("TB.DH", {}, timeliness=ON_TIME),
            report("TB.DH", {}, revision=2, timeliness=LATE),
        ]
    )
    district = snapshot(state, KSTT_2025, "TB.DH").completeness
    assert (district.expected, district.reported, district.on_time) == (4, 3, 2)
    assert (district.rate, district.on_time_rate) == (Decimal("75.00"), Decimal("50.00"))
    assert district.missing == ("TB.DH.X03",)
    province = snapshot(state, KSTT_2025, "TB").completeness
    assert (province.expected, province.reported, province.on_time) == (33, 3, 2)
    # 3 / 33 = 9.0909... and 2 / 33 = 6.0606...
    assert (str(province.rate), str(province.on_time_rate)) == ("9.09", "6.06")
    assert len(province.missing) == 30
    assert list(province.missing) == sorted(province.missing)
    assert not {"TB.DH", "TB.DH.X01", "TB.DH.X02"} & set(province.missing)


def test_the_first_revision_decides_timeliness_even_when_it_arrives_after_a_correction() -> None:
    first = report("TB.DH.N01", {}, revision=1, timeliness=LATE, period="2026-Q1")
    correction = report("TB.DH.N01", {}, revision=2, timeliness=ON_TIME, period="2026-Q1")
    completeness = snapshot(fold([correction, first]), KSTT_2026, "TB").completeness
    assert completeness.on_time == 0


@pytest.mark.parametrize(
    ("reported", "rate"),
    [(0, "0.00"), (1, "5.88"), (2, "11.76"), (16, "94.12"), (17, "100.00")],
)
def test_completeness_rates_have_two_decimals(reported: int, rate: str) -> None:
    units = KSTT_2026.reporters["TB"][:reported]
    state = fold(report(u, {}, period="2026-Q1") for u in units)
    completeness = snapshot(state, KSTT_2026, "TB").completeness
    assert str(completeness.rate) == rate
    assert str(completeness.on_time_rate) == rate
    assert completeness.missing == KSTT_2026.reporters["TB"][reported:]


def test_a_unit_that_is_not_a_reporter_of_the_period_is_never_counted() -> None:
    # TB.DH.X01 ended on 2025-06-30: in 2026-Q1 it is nobody's reporter.
    state = fold([report("TB.DH.X01", {"RECEIVED_ONLINE": 99}, period="2026-Q1")])
    figures = snapshot(state, KSTT_2026, "TB")
    assert figures.values["RECEIVED_ONLINE"] is None
    assert figures.completeness.reported == 0


def test_a_snapshot_carries_the_regime_version_in_force() -> None:
    assert snapshot(empty(), frame("KTXH-M", "2025-M06"), "TB").regime_version == 1
    assert snapshot(empty(), frame("KTXH-M", "2025-M07"), "TB").regime_version == 2


# --- explicit zeros and missing values --------------------------------------------------


def test_explicit_zeros_stay_zero() -> None:
    zeros = dict.fromkeys(factories.KSTT_VALUES, 0)
    figures = snapshot(fold([report("TB.DH.N01", zeros, period="2026-Q1")]), KSTT_2026, "TB")
    for code in factories.KSTT_VALUES:
        assert figures.values[code] == Decimal(0)
        assert figures.values[code] is not None
    # Rates over zero dossiers have no value.
    assert figures.values["ON_TIME_RATE"] is None
    assert figures.values["ONLINE_RATE"] is None
    assert figures.values["AVG_PROCESSING_DAYS"] is None


def test_every_indicator_is_present_and_none_when_nothing_was_reported() -> None:
    figures = snapshot(empty(), KSTT_2026, "TB")
    assert set(figures.values) == set(KSTT_2026.regime.indicator_codes)
    assert all(value is None for value in figures.values.values())
    assert figures.completeness.reported == 0


def test_an_optional_indicator_nobody_sent_is_present_as_none() -> None:
    values = {k: v for k, v in factories.KSTT_VALUES.items() if k != "MAX_OVERDUE_DAYS"}
    figures = snapshot(fold([report("TB.DH.N01", values, period="2026-Q1")]), KSTT_2026, "TB")
    assert "MAX_OVERDUE_DAYS" in figures.values
    assert figures.values["MAX_OVERDUE_DAYS"] is None


# --- the fold itself --------------------------------------------------------------------


def test_applying_what_is_already_counted_returns_the_same_state() -> None:
    first = report("TB.DH.N01", {"RECEIVED_ONLINE": 1}, period="2026-Q1")
    state = apply(empty(), first)
    assert apply(state, first) is state
    assert apply(state, first.model_copy(update={"report_id": "redelivered"})) is state


def test_an_older_revision_after_a_newer_one_changes_no_figure() -> None:
    newer = report("TB.DH.N01", {"RECEIVED_ONLINE": 2}, revision=3, period="2026-Q1")
    older = report("TB.DH.N01", {"RECEIVED_ONLINE": 1}, revision=2, period="2026-Q1")
    state = fold([newer, older])
    assert state["TB.DH.N01"].values["RECEIVED_ONLINE"] == Decimal(2)
    assert state["TB.DH.N01"].revision == 3


# --- properties -------------------------------------------------------------------------

UNITS_2025 = KSTT_2025.reporters["TB"]

figures_values = st.fixed_dictionaries(
    {"RECEIVED_ONLINE": st.integers(0, 10**6), "RESOLVED_TOTAL": st.integers(0, 10**6)},
    optional={
        "RESOLVED_EARLY": st.integers(0, 10**6),
        "PROCESSING_DAYS_TOTAL": st.decimals(0, 10**6, places=1),
        "MAX_OVERDUE_DAYS": st.integers(0, 400),
    },
)


@st.composite
def unit_histories(draw: st.DrawFn) -> list[list[AcceptedReport]]:
    """For some units, revisions 1..k (gaps allowed), each with its own figures and timing."""
    units = draw(st.lists(st.sampled_from(UNITS_2025), min_size=1, max_size=6, unique=True))
    histories = []
    for unit in units:
        revisions = draw(st.lists(st.integers(1, 9), min_size=1, max_size=4, unique=True))
        histories.append(
            [
                report(
                    unit,
                    draw(figures_values),
                    revision=revision,
                    timeliness=draw(st.sampled_from([ON_TIME, LATE])),
                )
                for revision in sorted(revisions)
            ]
        )
    return histories


def latest_only(histories: Sequence[Sequence[AcceptedReport]]) -> list[AcceptedReport]:
    """Each unit's latest revision, timed as its first: what the fold must amount to."""
    return [
        history[-1].model_copy(update={"timeliness": history[0].timeliness})
        for history in histories
    ]


def figures_of(state: State) -> dict[str, Figures]:
    return snapshots(state, KSTT_2025)


@settings(max_examples=60, deadline=None)
@given(unit_histories(), st.randoms(use_true_random=False))
def test_shuffled_input_gives_the_same_snapshots(
    histories: list[list[AcceptedReport]], rng: random.Random
) -> None:
    reports = [r for history in histories for r in history]
    shuffled = list(reports)
    rng.shuffle(shuffled)
    assert figures_of(fold(shuffled)) == figures_of(fold(reports))


@settings(max_examples=60, deadline=None)
@given(unit_histories(), st.randoms(use_true_random=False), st.integers(0, 30))
def test_a_fold_is_each_report_applied_in_turn_however_the_batches_are_cut(
    histories: list[list[AcceptedReport]], rng: random.Random, cut: int
) -> None:
    reports = [r for history in histories for r in history]
    reports += [rng.choice(reports) for _ in range(len(reports) // 2)]
    rng.shuffle(reports)
    one_by_one = empty()
    for accepted in reports:
        one_by_one = apply(one_by_one, accepted)
    assert fold(reports) == one_by_one
    assert fold(reports[cut:], fold(reports[:cut])) == one_by_one


@settings(max_examples=60, deadline=None)
@given(unit_histories(), st.randoms(use_true_random=False))
def test_duplicated_input_gives_the_same_snapshots(
    histories: list[list[AcceptedReport]], rng: random.Random
) -> None:
    reports = [r for history in histories for r in history]
    duplicated = reports + [rng.choice(reports) for _ in range(len(reports))]
    rng.shuffle(duplicated)
    assert figures_of(fold(duplicated)) == figures_of(fold(reports))


@settings(max_examples=60, deadline=None)
@given(unit_histories(), st.randoms(use_true_random=False))
def test_interleaved_corrections_amount_to_the_latest_revision_per_unit(
    histories: list[list[AcceptedReport]], rng: random.Random
) -> None:
    interleaved = [r for history in histories for r in history]
    rng.shuffle(interleaved)
    assert figures_of(fold(interleaved)) == figures_of(fold(latest_only(histories)))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.sampled_from(UNITS_2025), min_size=1, max_size=8, unique=True),
    st.integers(0, 10**9),
    st.integers(0, 10**9),
    st.booleans(),
)
def test_a_correction_replaces_a_units_figure_and_never_adds_to_it(
    units: list[str], first: int, corrected: int, correction_arrives_first: bool
) -> None:
    originals = [report(u, {"RECEIVED_ONLINE": first}) for u in units]
    correction = report(units[0], {"RECEIVED_ONLINE": corrected}, revision=2)
    reports = [correction, *originals] if correction_arrives_first else [*originals, correction]
    province = snapshot(fold(reports), KSTT_2025, "TB")
    assert province.values["RECEIVED_ONLINE"] == first * (len(units) - 1) + corrected
    assert province.completeness.reported == len(units)


# --- exact numbers, whatever the order and the caller's decimal context -------------------

AGGREGATED = ("S", "A", "LO", "HI")
TYPES_UNITS = ("P", "P.A", "P.B", "P.C")


def test_a_sum_beyond_28_significant_digits_is_exact_in_every_order() -> None:
    big, tiny = "123456789012345678901234567890.123456789", "0.000000000000000000001"
    reports = [
        types_report("P.A", {"S": big}),
        types_report("P.B", {"S": tiny}),
        types_report("P.C", {"S": f"-{big}"}),
        types_report("P", {"S": "1"}),
    ]
    totals = {
        str(snapshot(fold(order), TYPES_FRAME, "P").values["S"])
        for order in itertools.permutations(reports)
    }
    assert totals == {"1.000000000000000000001"}


def test_the_roll_up_ignores_the_callers_decimal_context() -> None:
    reports = [types_report(u, dict.fromkeys(AGGREGATED, "1234567.891")) for u in TYPES_UNITS[:3]]
    reports.append(types_report("P.C", dict.fromkeys(AGGREGATED, "0.0000001")))
    expected = snapshot(fold(reports), TYPES_FRAME, "P")
    with decimal.localcontext(decimal.Context(prec=5, rounding=decimal.ROUND_DOWN)):
        assert snapshot(fold(reports), TYPES_FRAME, "P") == expected
    assert expected.values["S"] == Decimal("3703703.6730001")
    assert expected.values["SHARE"] == Decimal("0.00")


def exact_mean(values: Sequence[Decimal]) -> Decimal:
    """The mean computed with fractions, rounded once, half up, to 28 significant digits."""
    total = sum((Fraction(v) for v in values), Fraction(0))
    mean = total / len(values)
    half_up = decimal.Context(prec=28, rounding=decimal.ROUND_HALF_UP)
    return half_up.divide(Decimal(mean.numerator), Decimal(mean.denominator))


MANY = tuple(f"P.{n:03d}" for n in range(128))
MANY_FRAME = Frame(TYPES_REGIME, TYPES_FRAME.day, {"P": MANY}, TYPES_FRAME.derived)


def test_a_mean_that_falls_halfway_at_28_digits_is_rounded_half_up() -> None:
    # 128 units, one with the largest figure validation takes ending in 7, the others 0:
    # 999999999999999.999999997 / 128 = 7812499999999.999999999976562|5 exactly, a tie at
    # the 29th digit (half-even would keep ...562).
    reports = [types_report(u, {"A": "0"}) for u in MANY[1:]]
    reports.append(types_report(MANY[0], {"A": "999999999999999.999999997"}))
    mean = snapshot(fold(reports), MANY_FRAME, "P").values["A"]
    assert str(mean) == "7812499999999.999999999976563"
    # The completeness rate rounds the same way: 1 of 32 units is 3.125 %.
    few = Frame(TYPES_REGIME, TYPES_FRAME.day, {"P": MANY[:32]}, TYPES_FRAME.derived)
    rate = snapshot(fold(reports[-1:]), few, "P").completeness.rate
    assert str(rate) == "3.13"


any_decimal = st.decimals(
    min_value=Decimal("-1e30"), max_value=Decimal("1e30"), allow_nan=False, allow_infinity=False
)


@settings(max_examples=80, deadline=None)
@given(st.lists(any_decimal, min_size=1, max_size=4), st.randoms(use_true_random=False))
def test_sum_avg_min_and_max_are_exact_and_the_same_in_any_order(
    numbers: list[Decimal], rng: random.Random
) -> None:
    reports = [
        types_report(unit, dict.fromkeys(AGGREGATED, str(n)))
        for unit, n in zip(TYPES_UNITS, numbers, strict=False)
    ]
    shuffled = list(reports)
    rng.shuffle(shuffled)
    values = snapshot(fold(reports), TYPES_FRAME, "P").values
    again = snapshot(fold(shuffled), TYPES_FRAME, "P").values
    # The same numbers, written the same way.
    assert {k: str(v) for k, v in values.items()} == {k: str(v) for k, v in again.items()}
    assert Fraction(values["S"]) == sum((Fraction(n) for n in numbers), Fraction(0))  # type: ignore[arg-type]
    assert values["A"] == exact_mean(numbers)
    assert values["LO"] == min(numbers)
    assert values["HI"] == max(numbers)


# --- derived indicators over every kind of value ------------------------------------------


def test_a_derived_value_uses_the_rolled_up_values_and_is_rounded_half_up() -> None:
    state = fold(
        [
            types_report("P.A", {"S": "3", "LO": "1"}),
            types_report("P.B", {"S": "5", "LO": "0.125"}),
        ]
    )
    # min 0.125 of sum 8: 1.5625 % → 1.56; half up at the third decimal would show on 1.565.
    assert snapshot(state, TYPES_FRAME, "P").values["SHARE"] == Decimal("1.56")
    state = fold([types_report("P.A", {"S": "8", "LO": "0.1252"})])
    assert snapshot(state, TYPES_FRAME, "P").values["SHARE"] == Decimal("1.57")  # 1.565 → 1.57


def test_a_derived_value_over_a_none_indicator_uses_the_scopes_own_value_only() -> None:
    state = fold([types_report("P", {"N": "5"}), types_report("P.A", {"N": "6"})])
    assert snapshot(state, TYPES_FRAME, "P").values["TWICE_N"] == Decimal(10)
    below_only = fold([types_report("P.A", {"N": "6"})])
    assert snapshot(below_only, TYPES_FRAME, "P").values["TWICE_N"] is None


def test_a_zero_sum_gives_a_null_share_and_an_explicit_zero_sum() -> None:
    values = snapshot(fold([types_report("P.A", {"S": "0", "LO": "0"})]), TYPES_FRAME, "P").values
    assert values["S"] == Decimal(0)
    assert values["S"] is not None
    assert values["SHARE"] is None


# --- the hierarchy in force for the period ------------------------------------------------


@pytest.mark.parametrize(
    ("period", "scopes", "province_expected"),
    [
        # Windows ending on or before 2025-06-30 have districts; later ones do not.
        ("2025-Q2", ("TB", *DISTRICTS), 33),
        ("2025-Q3", ("TB",), 17),
        ("2025-Q4", ("TB",), 17),
    ],
)
def test_the_hierarchy_of_a_kstt_quarter_is_the_one_in_force_when_its_window_ends(
    period: str, scopes: tuple[str, ...], province_expected: int
) -> None:
    found = frame("KSTT-TTHC", period)
    assert found.scopes == scopes
    assert len(found.reporters["TB"]) == province_expected


@pytest.mark.parametrize(
    ("regime", "period"),
    [("KSTT-TTHC", "2026-M03"), ("KTXH-M", "2026-Q1"), ("KSTT-TTHC", "2026-Q5"), ("NVCP-S", "x")],
)
def test_there_is_no_frame_for_a_period_code_of_another_frequency_or_none(
    regime: str, period: str
) -> None:
    assert frame_for(CATALOG, regime, period) is None


def test_a_2025_quarter_rolls_communes_to_districts_and_districts_to_the_province() -> None:
    state = fold(
        [
            report("TB.DH", {"RECEIVED_ONLINE": 1}, period="2025-Q2"),
            report("TB.DH.X01", {"RECEIVED_ONLINE": 10}, period="2025-Q2"),
            report("TB.VT.X03", {"RECEIVED_ONLINE": 100}, period="2025-Q2", timeliness=LATE),
            report("TB.TTPVHCC", {"RECEIVED_ONLINE": 1000}, period="2025-Q2"),
        ]
    )
    figures = snapshots(state, frame("KSTT-TTHC", "2025-Q2"))
    online = {scope: f.values["RECEIVED_ONLINE"] for scope, f in figures.items()}
    assert online == {"TB": 1111, "TB.DH": 11, "TB.VT": 100} | {
        d: None for d in DISTRICTS if d not in ("TB.DH", "TB.VT")
    }
    vt = figures["TB.VT"].completeness
    assert (vt.expected, vt.reported, vt.on_time, vt.missing) == (
        4,
        1,
        0,
        ("TB.VT", "TB.VT.X01", "TB.VT.X02"),
    )
    assert figures["TB"].completeness.reported == 4


def test_a_2026_quarter_rolls_communes_straight_to_the_province() -> None:
    state = fold(
        [
            report("TB.DH.N01", {"RECEIVED_ONLINE": 7}, period="2026-Q2"),
            report("TB.VT.N02", {"RECEIVED_ONLINE": 8}, period="2026-Q2"),
        ]
    )
    figures = snapshots(state, frame("KSTT-TTHC", "2026-Q2"))
    assert list(figures) == ["TB"]
    assert figures["TB"].values["RECEIVED_ONLINE"] == 15
    assert figures["TB"].completeness.missing == tuple(
        u for u in KSTT_2026.reporters["TB"] if u not in ("TB.DH.N01", "TB.VT.N02")
    )


# --- versions ----------------------------------------------------------------------------

AT = factories.NOW


def latest_of(
    emitted: Sequence[AggregateSnapshot], before: Mapping[str, Version]
) -> dict[str, Version]:
    """What the store keeps after `emitted`: the latest version of each scope."""
    kept = dict(before)
    for s in emitted:
        kept[s.unit] = Version(s.version, Figures(s.regime_version, s.values, s.completeness))
    return kept


def test_the_first_snapshot_of_every_scope_is_version_one_and_names_the_missing_units() -> None:
    state = fold([report("TB.DH.X01", {"RECEIVED_ONLINE": 3})])
    emitted = versions(KSTT_2025, "2025-Q1", state, {}, AT)
    assert [(s.unit, s.version) for s in emitted] == [(scope, 1) for scope in KSTT_2025.scopes]
    kx = next(s for s in emitted if s.unit == "TB.KX")
    assert kx.completeness.missing == ("TB.KX", "TB.KX.X01", "TB.KX.X02", "TB.KX.X03")
    assert kx.values["RECEIVED_ONLINE"] is None
    assert set(kx.values) == set(KSTT_2025.regime.indicator_codes)
    assert (kx.regime, kx.period, kx.regime_version, kx.computed_at) == (
        "KSTT-TTHC",
        "2025-Q1",
        1,
        AT,
    )


def test_a_new_version_is_numbered_only_for_the_scopes_whose_content_changed() -> None:
    state = fold([report("TB.DH.X01", {"RECEIVED_ONLINE": 3})])
    latest = latest_of(versions(KSTT_2025, "2025-Q1", state, {}, AT), {})
    assert versions(KSTT_2025, "2025-Q1", state, latest, AT) == []
    state = apply(state, report("TB.HH.X02", {"RECEIVED_ONLINE": 4}))
    emitted = versions(KSTT_2025, "2025-Q1", state, latest, AT)
    assert [(s.unit, s.version) for s in emitted] == [("TB", 2), ("TB.HH", 2)]
    latest = latest_of(emitted, latest)
    # A redelivery or an older revision leaves the state, hence the versions, as they are.
    state = apply(state, report("TB.HH.X02", {"RECEIVED_ONLINE": 99}))
    assert versions(KSTT_2025, "2025-Q1", state, latest, AT) == []


def test_a_correction_back_to_an_earlier_content_is_still_a_new_version() -> None:
    history = [
        report("TB.DH.N01", {"RECEIVED_ONLINE": n}, revision=r, period="2026-Q1")
        for r, n in ((1, 5), (2, 6), (3, 5))
    ]
    latest: dict[str, Version] = {}
    numbers = []
    state = empty()
    for revision in history:
        state = apply(state, revision)
        emitted = versions(KSTT_2026, "2026-Q1", state, latest, AT)
        numbers += [(s.version, s.values["RECEIVED_ONLINE"]) for s in emitted]
        latest = latest_of(emitted, latest)
    assert numbers == [(1, Decimal(5)), (2, Decimal(6)), (3, Decimal(5))]


def test_the_same_number_written_differently_is_not_a_change() -> None:
    state = fold([report("TB.DH.N01", {"PROCESSING_DAYS_TOTAL": "3.0"}, period="2026-Q1")])
    latest = latest_of(versions(KSTT_2026, "2026-Q1", state, {}, AT), {})
    state = apply(
        state, report("TB.DH.N01", {"PROCESSING_DAYS_TOTAL": "3.00"}, revision=2, period="2026-Q1")
    )
    assert versions(KSTT_2026, "2026-Q1", state, latest, AT) == []


# --- properties over every aggregation type ----------------------------------------------

types_values = st.fixed_dictionaries(
    {},
    optional={
        **dict.fromkeys(("S", "A", "LO", "HI", "N"), any_decimal.map(str)),
        "T": st.text(max_size=5),
    },
)


@st.composite
def types_histories(draw: st.DrawFn) -> list[list[AcceptedReport]]:
    units = draw(
        st.lists(st.sampled_from((*TYPES_UNITS, "Q.A", "Q.B")), min_size=1, max_size=6, unique=True)
    )
    histories = []
    for unit in units:
        revisions = sorted(draw(st.lists(st.integers(1, 9), min_size=1, max_size=4, unique=True)))
        histories.append(
            [
                types_report(unit, draw(types_values), revision=r).model_copy(
                    update={"timeliness": draw(st.sampled_from([ON_TIME, LATE]))}
                )
                for r in revisions
            ]
        )
    return histories


@settings(max_examples=80, deadline=None)
@given(types_histories(), st.randoms(use_true_random=False))
def test_any_mix_of_duplicates_reorderings_and_corrections_is_the_fold_of_the_latest(
    histories: list[list[AcceptedReport]], rng: random.Random
) -> None:
    reports = [r for history in histories for r in history]
    mixed = reports + [rng.choice(reports) for _ in range(len(reports) // 2 + 1)]
    rng.shuffle(mixed)
    expected = snapshots(fold(latest_only(histories)), TYPES_FRAME)
    assert snapshots(fold(mixed), TYPES_FRAME) == expected
    # Folding in two parts (two batches, or a crash in between) changes nothing either.
    cut = rng.randrange(len(mixed) + 1)
    assert snapshots(fold(mixed[cut:], fold(mixed[:cut])), TYPES_FRAME) == expected
