from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.catalog import (
    Aggregation,
    Catalog,
    CatalogError,
    DayOfLastMonth,
    Frequency,
    Indicator,
    IndicatorType,
    PeriodConvention,
    Regime,
    WorkingDaysAfterCutoff,
    expression_names,
    load_catalog,
)
from shared.periods import parse_period, regime_for_period

pytestmark = pytest.mark.unit

CATALOG_DIR = Path(__file__).parents[2] / "catalog"
DISTRICTS = ("TB.DH", "TB.HH", "TB.KX", "TB.QP", "TB.TH", "TB.TPTB", "TB.TT", "TB.VT")
OLD_DISTRICT_END = date(2025, 6, 14)  # window end of 2025-M06: districts still exist
NEW_COMMUNE_START = date(2025, 7, 14)  # window end of 2025-M07: two-level government


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog(CATALOG_DIR)


def in_force(catalog: Catalog, code: str, day: date) -> Regime:
    regime = catalog.regime_in_force(code, day)
    assert regime is not None
    return regime


# --- the shipped catalog -------------------------------------------------------------


def test_the_shipped_catalog_loads(catalog: Catalog) -> None:
    assert catalog.province == "TB"
    assert catalog.regime_codes == ("KSTT-TTHC", "KTXH-M", "NVCP-S")
    assert [r.version for r in catalog.regime_versions("KTXH-M")] == [1, 2]
    assert catalog.regime_versions("NOPE") == ()


def test_ktxh_m_switches_to_version_2_with_the_two_level_government(catalog: Catalog) -> None:
    assert in_force(catalog, "KTXH-M", OLD_DISTRICT_END).version == 1
    assert in_force(catalog, "KTXH-M", NEW_COMMUNE_START).version == 2
    assert catalog.regime_in_force("KTXH-M", date(2020, 12, 14)) is None


def test_the_version_of_a_period_is_chosen_by_its_window_end(catalog: Catalog) -> None:
    version = regime_for_period(catalog, "KTXH-M", parse_period("2025-M06"))
    assert version is not None
    assert version.version == 1
    version = regime_for_period(catalog, "KTXH-M", parse_period("2025-M07"))
    assert version is not None
    assert version.version == 2
    assert regime_for_period(catalog, "NOPE", parse_period("2025-M07")) is None


def test_districts_report_ktxh_m_version_1(catalog: Catalog) -> None:
    regime = in_force(catalog, "KTXH-M", OLD_DISTRICT_END)
    assert catalog.reporters(regime, OLD_DISTRICT_END) == DISTRICTS


def test_the_new_communes_report_ktxh_m_version_2(catalog: Catalog) -> None:
    regime = in_force(catalog, "KTXH-M", NEW_COMMUNE_START)
    reporters = catalog.reporters(regime, NEW_COMMUNE_START)
    assert len(reporters) == 16
    assert all(code.split(".")[-1] in {"N01", "N02"} for code in reporters)
    assert reporters == tuple(sorted(reporters))


def test_kstt_tthc_rolls_up_to_districts_only_while_they_exist(catalog: Catalog) -> None:
    day_2025, day_2026 = date(2025, 3, 14), date(2026, 3, 14)
    assert catalog.scopes(in_force(catalog, "KSTT-TTHC", day_2025), day_2025) == ("TB", *DISTRICTS)
    assert catalog.scopes(in_force(catalog, "KSTT-TTHC", day_2026), day_2026) == ("TB",)


def test_a_regime_reported_by_districts_only_has_the_province_as_scope(catalog: Catalog) -> None:
    regime = in_force(catalog, "KTXH-M", OLD_DISTRICT_END)
    assert catalog.scopes(regime, OLD_DISTRICT_END) == ("TB",)


def test_reporters_under_a_district_include_the_district_itself(catalog: Catalog) -> None:
    day = date(2025, 3, 14)
    regime = in_force(catalog, "KSTT-TTHC", day)
    under = catalog.reporters_under(regime, day, "TB.DH")
    assert under == ("TB.DH", "TB.DH.X01", "TB.DH.X02", "TB.DH.X03")
    # The provincial service centre reports too, directly under the province.
    assert "TB.TTPVHCC" in catalog.reporters_under(regime, day, "TB")
    assert len(catalog.reporters_under(regime, day, "TB")) == 8 + 24 + 1


def test_a_commune_rolls_up_through_its_district_in_2025_and_straight_up_in_2026(
    catalog: Catalog,
) -> None:
    before, after = catalog.hierarchy_on(date(2025, 3, 14)), catalog.hierarchy_on(date(2026, 3, 14))
    assert before.ancestors("TB.DH.X01") == ("TB.DH", "TB")
    assert after.ancestors("TB.DH.N01") == ("TB",)
    assert not after.contains("TB.DH.X01")
    assert not before.contains("TB.DH.N01")
    assert after.parent("TB") is None
    with pytest.raises(KeyError, match="not in force"):
        after.ancestors("TB.DH.X01")


def test_hierarchy_children_and_descendants(catalog: Catalog) -> None:
    hierarchy = catalog.hierarchy_on(date(2025, 3, 14))
    assert hierarchy.children("TB.DH") == ("TB.DH.X01", "TB.DH.X02", "TB.DH.X03")
    assert hierarchy.descendants("TB.DH.X01") == ()
    assert len(hierarchy.descendants("TB")) == len(hierarchy.units) - 1


def test_the_hierarchy_of_a_day_is_computed_once(catalog: Catalog) -> None:
    assert catalog.hierarchy_on(date(2025, 3, 14)) is catalog.hierarchy_on(date(2025, 3, 14))


def test_catalogs_with_the_same_content_are_equal_whatever_they_cached() -> None:
    first, second = load_catalog(CATALOG_DIR), load_catalog(CATALOG_DIR)
    first.hierarchy_on(date(2025, 3, 14))
    assert first == second
    assert hash(first) == hash(second)


def test_a_unit_is_valid_on_both_ends_of_its_range(catalog: Catalog) -> None:
    district = catalog.unit("TB.DH")
    assert district is not None
    assert district.valid_on(date(2025, 6, 30))
    assert not district.valid_on(date(2025, 7, 1))
    new_commune = catalog.unit("TB.DH.N01")
    assert new_commune is not None
    assert new_commune.succeeds == ("TB.DH.X01", "TB.DH.X02")
    assert catalog.unit("TB.NOPE") is None


def test_indicators_keep_their_bounds_as_exact_decimals(catalog: Catalog) -> None:
    regime = in_force(catalog, "KSTT-TTHC", date(2026, 3, 14))
    received = regime.indicator("RECEIVED_ONLINE")
    assert received is not None
    assert type(received.min) is Decimal
    assert received.min == Decimal("0")
    assert received.aggregation is Aggregation.SUM
    rate = regime.indicator("ON_TIME_RATE")
    assert rate is not None
    assert rate.is_derived
    assert rate.formula_names == {"RESOLVED_EARLY", "RESOLVED_ON_TIME", "RESOLVED_TOTAL"}
    assert regime.indicator("NOPE") is None
    assert regime.indicator_codes[0] == "RECEIVED_ONLINE"


def test_regime_fields_are_typed(catalog: Catalog) -> None:
    regime = in_force(catalog, "KTXH-M", NEW_COMMUNE_START)
    assert regime.frequency is Frequency.MONTHLY
    assert regime.period_convention is PeriodConvention.ND09
    assert regime.deadlines.unit_to_province == WorkingDaysAfterCutoff(working_days_after_cutoff=2)
    assert regime.deadlines.province_to_hub == DayOfLastMonth(day_of_last_month=25)
    assert regime.effective_to is None


def test_expression_names_are_the_names_an_expression_uses() -> None:
    assert expression_names("PENDING_OVERDUE == 0 or MAX_OVERDUE_DAYS > 0") == {
        "PENDING_OVERDUE",
        "MAX_OVERDUE_DAYS",
    }
    with pytest.raises(ValueError, match="Call"):
        expression_names("abs(X) > 0")
    with pytest.raises(ValueError, match="Attribute"):
        expression_names("X.__class__")


def test_a_float_bound_becomes_the_decimal_that_was_written() -> None:
    fields = {"code": "X", "name_vi": "x", "name_en": "x", "unit": "", "type": "decimal"}
    indicator = Indicator.model_validate({**fields, "min": 0.1, "aggregation": "sum"})
    assert indicator.type is IndicatorType.DECIMAL
    assert indicator.min == Decimal("0.1")


# --- small catalogs with one thing wrong ---------------------------------------------


def units_file() -> dict[str, Any]:
    return {
        "province": "P",
        "units": [
            {"code": "P", "name": "Province", "type": "province", "valid_from": date(2020, 1, 1)},
            {
                "code": "P.D1",
                "name": "District 1",
                "type": "district",
                "parent": "P",
                "valid_from": date(2020, 1, 1),
            },
            {
                "code": "P.D1.C1",
                "name": "Commune 1",
                "type": "commune",
                "parent": "P.D1",
                "valid_from": date(2020, 1, 1),
            },
        ],
    }


def regime_file(version: int = 1, **changes: Any) -> dict[str, Any]:
    def indicator(code: str, **more: Any) -> dict[str, Any]:
        base = {"code": code, "name_vi": code, "name_en": code, "unit": "", "type": "integer"}
        return {**base, "min": 0, "aggregation": "sum", **more}

    regime = {
        "code": "R",
        "version": version,
        "name_vi": "R",
        "name_en": "R",
        "legal_basis": "test",
        "frequency": "monthly",
        "period_convention": "nd09",
        "deadlines": {
            "unit_to_province": {"working_days_after_cutoff": 2},
            "province_to_hub": {"day_of_last_month": 25},
        },
        "lock_after_days": 10,
        "reporters": ["commune"],
        "effective_from": date(2020, 1, 1),
        "indicators": [
            indicator("A", required=True),
            indicator("B"),
            {
                "code": "RATE",
                "name_vi": "rate",
                "name_en": "rate",
                "unit": "%",
                "type": "percent",
                "derived": "A / B * 100",
                "decimals": 2,
            },
        ],
        "rules": [
            {
                "code": "R01",
                "expr": "A <= B",
                "severity": "error",
                "message_vi": "A không vượt B",
                "message_en": "A must not exceed B",
            }
        ],
    }
    regime.update(changes)
    return regime


def write_catalog(directory: Path, units: dict[str, Any], *regimes: dict[str, Any]) -> Path:
    (directory / "regimes").mkdir(parents=True, exist_ok=True)
    (directory / "units.yaml").write_text(yaml.safe_dump(units, allow_unicode=True), "utf-8")
    for regime in regimes:
        name = f"{regime['code']}.v{regime['version']}.yaml"
        text = yaml.safe_dump(regime, allow_unicode=True, sort_keys=False)
        (directory / "regimes" / name).write_text(text, "utf-8")
    return directory


def catalog_error(directory: Path) -> str:
    with pytest.raises(CatalogError) as caught:
        load_catalog(directory)
    return str(caught.value)


def test_the_small_catalog_is_valid(tmp_path: Path) -> None:
    catalog = load_catalog(write_catalog(tmp_path, units_file(), regime_file()))
    regime = in_force(catalog, "R", date(2026, 1, 14))
    assert catalog.scopes(regime, date(2026, 1, 14)) == ("P", "P.D1")


Mutation = Callable[[dict[str, Any], dict[str, Any]], None]


def set_unit(index: int, key: str, value: Any) -> Mutation:
    def mutate(units: dict[str, Any], regime: dict[str, Any]) -> None:
        units["units"][index][key] = value

    return mutate


def set_indicator(index: int, key: str, value: Any) -> Mutation:
    def mutate(units: dict[str, Any], regime: dict[str, Any]) -> None:
        regime["indicators"][index][key] = value

    return mutate


def set_regime(key: str, value: Any) -> Mutation:
    def mutate(units: dict[str, Any], regime: dict[str, Any]) -> None:
        regime[key] = value

    return mutate


def duplicate_unit(units: dict[str, Any], regime: dict[str, Any]) -> None:
    units["units"].append(copy.deepcopy(units["units"][2]))


def duplicate_indicator(units: dict[str, Any], regime: dict[str, Any]) -> None:
    regime["indicators"].append(copy.deepcopy(regime["indicators"][1]))


def derived_of_derived(units: dict[str, Any], regime: dict[str, Any]) -> None:
    twice = {**regime["indicators"][2], "code": "TWICE", "derived": "RATE * 2"}
    regime["indicators"].append(twice)


def unknown_rule_indicator(units: dict[str, Any], regime: dict[str, Any]) -> None:
    regime["rules"][0]["expr"] = "A <= B + GHOST"


def unknown_root_field(units: dict[str, Any], regime: dict[str, Any]) -> None:
    units["country"] = "VN"


@pytest.mark.parametrize(
    ("mutation", "file", "expected"),
    [
        (set_unit(1, "colour", "red"), "units.yaml", "units[P.D1].colour: unknown field"),
        (unknown_root_field, "units.yaml", "country: unknown field"),
        (set_indicator(0, "colour", "red"), "regimes/R.v1.yaml", "indicators[A].colour: unknown"),
        (
            set_regime("deadlines", {"unit_to_province": {"working_days_after_cutoff": 2}}),
            "regimes/R.v1.yaml",
            "deadlines.province_to_hub: Field required",
        ),
        (
            set_regime(
                "deadlines",
                {
                    "unit_to_province": {"working_days_after_cutoff": 2, "day": 1},
                    "province_to_hub": {"day_of_last_month": 25},
                },
            ),
            "regimes/R.v1.yaml",
            "deadlines.unit_to_province.day: unknown field",
        ),
        (set_unit(2, "parent", "P.D9"), "units.yaml", "units[P.D1.C1].parent: unknown unit P.D9"),
        (
            set_unit(2, "valid_to", date(2019, 1, 1)),
            "units.yaml",
            "units[P.D1.C1]: valid_to 2019-01-01 is before valid_from",
        ),
        (
            set_unit(1, "valid_to", date(2024, 12, 31)),
            "units.yaml",
            "units[P.D1.C1].parent: P.D1 is not in force on every day P.D1.C1 is",
        ),
        (duplicate_unit, "units.yaml", "units[P.D1.C1]: duplicate unit code"),
        (duplicate_indicator, "regimes/R.v1.yaml", "indicators[B]: duplicate indicator code"),
        (unknown_rule_indicator, "regimes/R.v1.yaml", "rules[R01].expr: unknown indicator GHOST"),
        (
            set_indicator(2, "derived", "A / GHOST"),
            "regimes/R.v1.yaml",
            "indicators[RATE].derived: unknown indicator GHOST",
        ),
        (
            derived_of_derived,
            "regimes/R.v1.yaml",
            "indicators[TWICE].derived: refers to derived indicator RATE",
        ),
        (
            set_indicator(2, "aggregation", "sum"),
            "regimes/R.v1.yaml",
            "indicators[RATE]: exactly one of aggregation and derived",
        ),
        (
            set_indicator(1, "aggregation", None),
            "regimes/R.v1.yaml",
            "indicators[B]: exactly one of aggregation and derived",
        ),
        (
            set_indicator(2, "derived", "A / (B"),
            "regimes/R.v1.yaml",
            "indicators[RATE].derived: not a valid expression",
        ),
        (
            set_indicator(0, "min", "zero"),
            "regimes/R.v1.yaml",
            "indicators[A].min: Input should be a valid decimal",
        ),
        (
            set_regime("reporters", ["ward"]),
            "regimes/R.v1.yaml",
            "reporters: no unit has type 'ward'",
        ),
        (
            set_regime(
                "deadlines",
                {
                    "unit_to_province": {"day_of_last_month": 10},
                    "province_to_hub": {"day_of_last_month": 25},
                },
            ),
            "regimes/R.v1.yaml",
            "deadlines.unit_to_province: day 10 is not after the nd09 cut-off",
        ),
    ],
)
def test_an_inconsistent_catalog_is_refused_naming_the_file_and_the_problem(
    tmp_path: Path, mutation: Mutation, file: str, expected: str
) -> None:
    units, regime = units_file(), regime_file()
    mutation(units, regime)
    message = catalog_error(write_catalog(tmp_path, units, regime))
    assert f"{file}: {expected}" in message


def test_overlapping_versions_of_a_regime_are_refused(tmp_path: Path) -> None:
    first = regime_file(1, effective_to=date(2025, 6, 30))
    second = regime_file(2, effective_from=date(2025, 6, 30))
    message = catalog_error(write_catalog(tmp_path, units_file(), first, second))
    assert "regimes/R.v2.yaml: effective_from 2025-06-30 overlaps regimes/R.v1.yaml" in message


def test_an_open_ended_version_overlaps_any_later_one(tmp_path: Path) -> None:
    second = regime_file(2, effective_from=date(2025, 7, 1))
    message = catalog_error(write_catalog(tmp_path, units_file(), regime_file(1), second))
    assert "overlaps regimes/R.v1.yaml (effective_to open)" in message


def test_consecutive_versions_are_accepted(tmp_path: Path) -> None:
    first = regime_file(1, effective_to=date(2025, 6, 30))
    second = regime_file(2, effective_from=date(2025, 7, 1))
    catalog = load_catalog(write_catalog(tmp_path, units_file(), first, second))
    assert in_force(catalog, "R", date(2025, 6, 30)).version == 1
    assert in_force(catalog, "R", date(2025, 7, 1)).version == 2


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    units, regime = units_file(), regime_file()
    set_unit(1, "colour", "red")(units, regime)
    set_unit(2, "shape", "round")(units, regime)
    set_indicator(0, "colour", "blue")(units, regime)
    with pytest.raises(CatalogError) as caught:
        load_catalog(write_catalog(tmp_path, units, regime))
    assert [problem.split(":")[0] for problem in caught.value.problems] == [
        "units.yaml",
        "units.yaml",
        "regimes/R.v1.yaml",
    ]


def test_a_repeated_yaml_key_is_refused(tmp_path: Path) -> None:
    write_catalog(tmp_path, units_file(), regime_file())
    path = tmp_path / "units.yaml"
    path.write_text(path.read_text("utf-8") + "province: Q\n", "utf-8")
    assert "units.yaml: not valid YAML" in catalog_error(tmp_path)
    assert "duplicate key 'province'" in catalog_error(tmp_path)


def test_a_decimal_bound_in_yaml_is_read_exactly(tmp_path: Path) -> None:
    regime = regime_file()
    regime["indicators"][1].update(type="decimal", min="__MIN__")
    write_catalog(tmp_path, units_file(), regime)
    path = tmp_path / "regimes" / "R.v1.yaml"
    path.write_text(path.read_text("utf-8").replace("__MIN__", "0.10"), "utf-8")
    bound = in_force(load_catalog(tmp_path), "R", date(2026, 1, 14)).indicator("B")
    assert bound is not None
    assert bound.min is not None
    assert str(bound.min) == "0.10"


def test_a_missing_units_file_is_refused(tmp_path: Path) -> None:
    assert "units.yaml: cannot read" in catalog_error(tmp_path)
