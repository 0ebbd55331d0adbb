"""`shared.expressions.Expression` evaluates the catalog's formulas exactly and nothing else.

Proves: every rule and derived formula of the shipped catalog parses and evaluates on
exact Decimals (0.1 + 0.2 == 0.3 holds); a derived value has no value (None) on a zero
denominator or a missing input instead of raising; anything but arithmetic, comparisons
and and/or/not over names and number literals is refused when the expression is built,
before any value is seen.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.catalog import Catalog, expression_names, load_catalog
from shared.expressions import Expression, ExpressionError
from tests import factories

pytestmark = pytest.mark.unit

CATALOG = load_catalog(Path(__file__).parents[2] / "catalog")


def numbers(values: dict[str, Decimal | str]) -> dict[str, Decimal]:
    return {k: v for k, v in values.items() if isinstance(v, Decimal)}


def _catalog_expressions(catalog: Catalog) -> list[str]:
    found: list[str] = []
    for code in catalog.regime_codes:
        for regime in catalog.regime_versions(code):
            found += [rule.expr for rule in regime.rules]
            found += [i.derived for i in regime.indicators if i.derived]
    return sorted(set(found))


@pytest.mark.parametrize("source", _catalog_expressions(CATALOG))
def test_every_catalog_expression_is_accepted_with_the_names_it_reads(source: str) -> None:
    expression = Expression(source)
    assert expression.names == expression_names(source)


KSTT = numbers(factories.KSTT_VALUES)
KTXH = numbers(factories.KTXH_VALUES)
NVCP = numbers(factories.NVCP_VALUES)


@pytest.mark.parametrize(
    ("source", "values", "holds"),
    [
        ("RECEIVED_TOTAL == RECEIVED_ONLINE + RECEIVED_DIRECT + CARRIED_OVER", KSTT, True),
        (
            "RECEIVED_TOTAL == RECEIVED_ONLINE + RECEIVED_DIRECT + CARRIED_OVER",
            {**KSTT, "RECEIVED_TOTAL": Decimal(156)},
            False,
        ),
        ("RESOLVED_TOTAL == RESOLVED_EARLY + RESOLVED_ON_TIME + RESOLVED_LATE", KSTT, True),
        ("PENDING_TOTAL == PENDING_WITHIN + PENDING_OVERDUE", KSTT, True),
        ("RECEIVED_TOTAL == RESOLVED_TOTAL + PENDING_TOTAL", KSTT, True),
        (
            "RECEIVED_TOTAL == RESOLVED_TOTAL + PENDING_TOTAL",
            {**KSTT, "PENDING_TOTAL": Decimal(34)},
            False,
        ),
        ("PENDING_OVERDUE == 0 or MAX_OVERDUE_DAYS > 0", KSTT, True),
        (
            "PENDING_OVERDUE == 0 or MAX_OVERDUE_DAYS > 0",
            {**KSTT, "MAX_OVERDUE_DAYS": Decimal(0)},
            False,
        ),
        (
            "PENDING_OVERDUE == 0 or MAX_OVERDUE_DAYS > 0",
            {**KSTT, "PENDING_OVERDUE": Decimal(0), "MAX_OVERDUE_DAYS": Decimal(0)},
            True,
        ),
        ("PUBLIC_INVEST_DISBURSED <= PUBLIC_INVEST_PLAN", KTXH, True),
        (
            "PUBLIC_INVEST_DISBURSED <= PUBLIC_INVEST_PLAN",
            {**KTXH, "PUBLIC_INVEST_DISBURSED": Decimal("400.0000000000000000000001")},
            False,
        ),
        (
            "TASKS_ASSIGNED == TASKS_DONE_ON_TIME + TASKS_DONE_LATE + TASKS_IN_PROGRESS"
            " + TASKS_OVERDUE",
            NVCP,
            True,
        ),
        # Exact decimals: in binary floats 0.1 + 0.2 != 0.3.
        ("A == B + C", {"A": Decimal("0.3"), "B": Decimal("0.1"), "C": Decimal("0.2")}, True),
        ("0.1 + 0.2 == 0.3", {}, True),
        (
            "A == B + C",
            {
                "A": Decimal("1234567890123.4567891235"),
                "B": Decimal("1234567890123.4567891234"),
                "C": Decimal("0.0000000001"),
            },
            True,
        ),
        ("not A > B and (A == B or A < B)", {"A": Decimal(1), "B": Decimal(1)}, True),
        ("-A + +B != 0", {"A": Decimal(2), "B": Decimal(2)}, False),
    ],
)
def test_rule_expressions_hold_exactly_on_decimals(
    source: str, values: dict[str, Decimal], holds: bool
) -> None:
    assert Expression(source).holds(values) is holds


@pytest.mark.parametrize(
    ("source", "values", "expected"),
    [
        (
            "(RESOLVED_EARLY + RESOLVED_ON_TIME) / RESOLVED_TOTAL * 100",
            {**KSTT, "RESOLVED_EARLY": Decimal(50), "RESOLVED_ON_TIME": Decimal(40)},
            Decimal(75),
        ),
        ("RECEIVED_ONLINE / (RECEIVED_ONLINE + RECEIVED_DIRECT) * 100", KSTT, Decimal(80)),
        (
            "PROCESSING_DAYS_TOTAL / RESOLVED_TOTAL",
            {**KSTT, "PROCESSING_DAYS_TOTAL": Decimal("481.2")},
            Decimal("4.01"),
        ),
        ("PUBLIC_INVEST_DISBURSED / PUBLIC_INVEST_PLAN * 100", KTXH, Decimal("30.864")),
        ("(TASKS_DONE_ON_TIME + TASKS_DONE_LATE) / TASKS_ASSIGNED * 100", NVCP, Decimal(70)),
        ("A / B", {"A": Decimal(1), "B": Decimal(3)}, Decimal("0.3333333333333333333333333333")),
        ("A * 1.5", {"A": Decimal("0.1")}, Decimal("0.15")),
    ],
)
def test_derived_formulas_compute_exact_decimals(
    source: str, values: dict[str, Decimal], expected: Decimal
) -> None:
    result = Expression(source).compute(values)
    assert isinstance(result, Decimal)
    assert result == expected


@pytest.mark.parametrize(
    ("source", "values"),
    [
        (
            "(RESOLVED_EARLY + RESOLVED_ON_TIME) / RESOLVED_TOTAL * 100",
            {**KSTT, "RESOLVED_TOTAL": 0},
        ),
        (
            "(RESOLVED_EARLY + RESOLVED_ON_TIME) / RESOLVED_TOTAL * 100",
            {"RESOLVED_EARLY": 0, "RESOLVED_ON_TIME": 0, "RESOLVED_TOTAL": 0},
        ),
        (
            "RECEIVED_ONLINE / (RECEIVED_ONLINE + RECEIVED_DIRECT) * 100",
            {"RECEIVED_ONLINE": 0, "RECEIVED_DIRECT": 0},
        ),
        ("PUBLIC_INVEST_DISBURSED / PUBLIC_INVEST_PLAN * 100", {**KTXH, "PUBLIC_INVEST_PLAN": 0}),
        ("A / (B - B)", {"A": 1, "B": 7}),
    ],
)
def test_a_zero_denominator_gives_no_value(source: str, values: dict[str, int | Decimal]) -> None:
    exact = {name: Decimal(value) for name, value in values.items()}
    assert Expression(source).compute(exact) is None


@pytest.mark.parametrize(
    ("source", "values"),
    [
        ("PROCESSING_DAYS_TOTAL / RESOLVED_TOTAL", {"RESOLVED_TOTAL": Decimal(1)}),
        ("PROCESSING_DAYS_TOTAL / RESOLVED_TOTAL", {}),
        ("A + B", {"A": Decimal(1)}),
    ],
)
def test_a_missing_input_gives_no_value(source: str, values: dict[str, Decimal]) -> None:
    assert Expression(source).compute(values) is None


@pytest.mark.parametrize(
    "source",
    [
        "A.real",
        "A.__class__",
        "abs(A)",
        "__import__('os')",
        "__import__('os').system('true')",
        "A[0]",
        "(lambda: 1)()",
        "lambda: 1",
        "'text'",
        "A == 'text'",
        "b'bytes' == A",
        "A if B else C",
        "[x for x in A]",
        "{x: 1 for x in A}",
        "(x := 1)",
        "A ** 2",
        "A // 2",
        "A % 2",
        "A == True",
        "A == None",
        "[A, B]",
        "(A, B)",
        "f'{A}'",
        "A is B",
        "A in B",
        "A & B",
        "~A",
    ],
)
def test_anything_but_arithmetic_and_comparisons_is_refused_when_built(source: str) -> None:
    with pytest.raises(ExpressionError):
        Expression(source)


@pytest.mark.parametrize("source", ["A +", "A ==", "(A", "A B", "A = 1", "import os"])
def test_an_expression_that_does_not_parse_is_refused(source: str) -> None:
    with pytest.raises(ExpressionError):
        Expression(source)


@pytest.mark.parametrize("source", ["", "   "])
def test_an_empty_expression_is_refused_as_an_expression_error(source: str) -> None:
    with pytest.raises(ExpressionError):
        Expression(source)


def test_an_expression_error_is_a_value_error() -> None:
    assert issubclass(ExpressionError, ValueError)


def test_an_expression_names_what_it_reads() -> None:
    expression = Expression("(RESOLVED_EARLY + RESOLVED_ON_TIME) / RESOLVED_TOTAL * 100")
    assert expression.names == {"RESOLVED_EARLY", "RESOLVED_ON_TIME", "RESOLVED_TOTAL"}


def test_evaluations_do_not_leak_names_into_the_next_one() -> None:
    expression = Expression("A + B")
    assert expression.compute({"A": Decimal(1), "B": Decimal(2)}) == Decimal(3)
    assert expression.compute({"A": Decimal(1)}) is None


@pytest.mark.parametrize("source", ["A // B > 0", "A % B == 0", "A == 'x'", "A == True"])
def test_the_catalog_refuses_exactly_what_the_evaluator_refuses(source: str) -> None:
    with pytest.raises(ValueError, match="not a valid expression"):
        expression_names(source)  # the catalog loader's check
    with pytest.raises(ExpressionError):
        Expression(source)


exact_numbers = st.decimals(
    min_value=-(10**12), max_value=10**12, allow_nan=False, allow_infinity=False, places=4
)


@given(exact_numbers, exact_numbers, exact_numbers)
def test_sums_of_decimals_compare_exactly(a: Decimal, b: Decimal, c: Decimal) -> None:
    # Four decimals and magnitudes under 10**12 fit the 28-digit context: no rounding.
    values = {"A": a, "B": b, "C": c, "TOTAL": a + b + c}
    assert Expression("TOTAL == A + B + C").holds(values)
    assert Expression("TOTAL - A - B - C == 0").holds(values)
    assert Expression("TOTAL - A - B - C").compute(values) == 0


def test_a_name_missing_from_the_values_is_an_error_never_a_python_builtin() -> None:
    # No call can be written, but a bare name could still find a builtin function.
    for name in ("abs", "print", "__import__"):
        with pytest.raises(NameError):
            Expression(f"A > {name}").evaluate({"A": Decimal(1)})


def test_number_literals_are_exact_decimals_not_binary_floats() -> None:
    expression = Expression("A * 0.1 + 0.2 == 0.3 + B")
    assert expression.holds({"A": Decimal(1), "B": Decimal(0)})
    assert Expression("A * 0.1").compute({"A": Decimal(3)}) == Decimal("0.3")
