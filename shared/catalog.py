"""The catalog: regimes, indicators, rules and reporting units, and its loader.

A regime (*chế độ báo cáo*) is one versioned reporting obligation: who reports, how often,
by when, and the indicators (*chỉ tiêu*) of its data form with the rules that check them.
A reporting unit (*đơn vị báo cáo*) is a node of the province's administrative tree, valid
over a date range, so the tree that applies to a period depends on the day asked about.

Everything here is immutable and pure: `load_catalog` is the only function that reads
files, and it refuses a catalog that is inconsistent rather than letting a service
discover the inconsistency one report at a time.

Exceptions::

    ValueError
     └── CatalogError        the catalog files are unreadable or inconsistent
"""

from __future__ import annotations

import itertools
import keyword
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Final, Self, TypeVar

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

# `error` rejects the report; `warning` accepts it and flags the issue.
from shared.contracts import Severity
from shared.expressions import Expression, ExpressionError

__all__ = [
    "Aggregation",
    "Catalog",
    "CatalogError",
    "DayOfLastMonth",
    "DeadlineRule",
    "Deadlines",
    "Frequency",
    "Hierarchy",
    "Indicator",
    "IndicatorType",
    "PeriodConvention",
    "Regime",
    "Rule",
    "Severity",
    "Unit",
    "WorkingDaysAfterCutoff",
    "expression_names",
    "load_catalog",
]

UNITS_FILE: Final = "units.yaml"
REGIMES_DIR: Final = "regimes"


class CatalogError(ValueError):
    """The catalog cannot be used; `problems` lists every `file: path: why` found."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("invalid catalog:\n  " + "\n  ".join(self.problems))


class _ProblemsError(ValueError):
    """Several independent problems raised from one validator, kept apart for reporting."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(self.problems))


class Frequency(StrEnum):
    """How often a regime's period recurs (Decree 09/2019/NĐ-CP art. 12)."""

    MONTHLY = "monthly"
    QUARTERLY = "quarterly"
    SEMIANNUAL = "semiannual"
    ANNUAL = "annual"


class PeriodConvention(StrEnum):
    """How a period maps to its cut-off window (*thời gian chốt số liệu*).

    `nd09`: Decree 09/2019/NĐ-CP art. 12, from the 15th of the month before the period to the
    14th of its last month; `calendar`: the calendar month, quarter, half-year or year.
    """

    ND09 = "nd09"
    CALENDAR = "calendar"


class IndicatorType(StrEnum):
    INTEGER = "integer"
    DECIMAL = "decimal"
    PERCENT = "percent"
    TEXT = "text"


class Aggregation(StrEnum):
    """How an indicator's values fold across the units of a scope; `none`: kept per unit."""

    SUM = "sum"
    AVG = "avg"
    MIN = "min"
    MAX = "max"
    NONE = "none"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# Day 28 is the last day every month has, February included, so the rule never names a
# day that does not exist; Decree 09 art. 13's own deadlines (the 20th, the 25th) fit.
class DayOfLastMonth(_Frozen):
    """Deadline (*thời hạn gửi báo cáo*) on the Nth day of the period's last month."""

    day_of_last_month: int = Field(ge=1, le=28)


class WorkingDaysAfterCutoff(_Frozen):
    """Deadline on the Nth Vietnamese working day after the cut-off window's last day."""

    working_days_after_cutoff: int = Field(ge=1, le=60)


def _deadline_rule_tag(value: Any) -> str | None:
    if isinstance(value, DayOfLastMonth):
        return "DayOfLastMonth"
    if isinstance(value, WorkingDaysAfterCutoff):
        return "WorkingDaysAfterCutoff"
    if isinstance(value, Mapping):
        if "day_of_last_month" in value:
            return "DayOfLastMonth"
        if "working_days_after_cutoff" in value:
            return "WorkingDaysAfterCutoff"
    return None


_DEADLINE_TAGS: Final = frozenset({"DayOfLastMonth", "WorkingDaysAfterCutoff"})

DeadlineRule = Annotated[
    Annotated[DayOfLastMonth, Tag("DayOfLastMonth")]
    | Annotated[WorkingDaysAfterCutoff, Tag("WorkingDaysAfterCutoff")],
    Discriminator(
        _deadline_rule_tag,
        custom_error_type="deadline_rule",
        custom_error_message="expected {day_of_last_month: N} or {working_days_after_cutoff: N}",
    ),
]


class Deadlines(_Frozen):
    """Deadline per hop: reporting units to the province, the province to the national hub."""

    unit_to_province: DeadlineRule
    province_to_hub: DeadlineRule


# Decree 09 reports are tallies and ratios: arithmetic, comparisons and boolean logic are
# all a rule or formula needs, and anything else (calls, attributes, subscripts) is how an
# expression escapes a safe evaluator, so the catalog refuses it up front.
def _parse_expression(expr: str) -> frozenset[str]:
    # The evaluator's own check, so that a catalog that loads is one the services can run.
    try:
        return Expression(expr).names
    except ExpressionError as error:
        raise ValueError(f"not a valid expression: {error}") from None


def expression_names(expr: str) -> frozenset[str]:
    """The indicator codes a rule expression or derived formula refers to.

    Raises ValueError when `expr` is not an expression of the allowed shape.
    """
    return _parse_expression(expr)


def _is_identifier(code: str) -> bool:
    return code.isidentifier() and not keyword.iskeyword(code)


class Indicator(_Frozen):
    """One field of a regime's data form: an indicator (*chỉ tiêu*)."""

    code: str
    name_vi: str
    name_en: str
    unit: str = Field(description="unit of measure")
    type: IndicatorType
    required: bool = False
    min: Decimal | None = None
    max: Decimal | None = None
    max_length: int | None = Field(default=None, ge=1)
    aggregation: Aggregation | None = None
    derived: str | None = None
    decimals: int | None = Field(default=None, ge=0, le=10)

    @field_validator("code")
    @classmethod
    def _code_is_a_name(cls, code: str) -> str:
        # Codes are the variable names of rule expressions and derived formulas.
        if not _is_identifier(code):
            raise ValueError(f"{code!r} is not usable as a name in expressions")
        return code

    @field_validator("min", "max", mode="before")
    @classmethod
    def _exact_number(cls, value: object) -> object:
        # A binary float such as 0.1 is not the number the catalog author wrote; its
        # shortest repr is, and Decimal keeps that exactly.
        if isinstance(value, bool):
            raise ValueError("expected a number, not a boolean")
        if isinstance(value, float):
            return Decimal(repr(value))
        return value

    @field_validator("derived")
    @classmethod
    def _formula_parses(cls, formula: str | None) -> str | None:
        if formula is not None:
            expression_names(formula)
        return formula

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        problems: list[str] = []
        if (self.aggregation is None) == (self.derived is None):
            problems.append("exactly one of aggregation and derived must be set")
        text = self.type is IndicatorType.TEXT
        if text and (self.min is not None or self.max is not None):
            problems.append("min/max apply to numbers, not to a text indicator")
        if not text and self.max_length is not None:
            problems.append("max_length applies to text indicators only")
        if text and self.derived is not None:
            problems.append("a text indicator cannot be derived")
        if text and self.aggregation not in (None, Aggregation.NONE):
            problems.append("a text indicator can only have aggregation: none")
        if self.min is not None and self.max is not None and self.min > self.max:
            problems.append(f"min {self.min} is above max {self.max}")
        if self.derived is not None and self.required:
            # Derived values are computed, and a report that sends one is refused (E114).
            problems.append("a derived indicator cannot be required")
        if problems:
            raise _ProblemsError(problems)
        return self

    @property
    def is_derived(self) -> bool:
        return self.derived is not None

    @property
    def formula_names(self) -> frozenset[str]:
        """Indicator codes the derived formula uses (empty when not derived)."""
        return expression_names(self.derived) if self.derived is not None else frozenset()


class Rule(_Frozen):
    """A validation rule of a regime: a boolean expression over indicator codes."""

    code: str = Field(min_length=1)
    expr: str
    severity: Severity
    message_vi: str
    message_en: str

    @field_validator("expr")
    @classmethod
    def _expression_parses(cls, expr: str) -> str:
        expression_names(expr)
        return expr

    @property
    def indicator_codes(self) -> frozenset[str]:
        return expression_names(self.expr)


class Regime(_Frozen):
    """One version of a reporting regime (*chế độ báo cáo*)."""

    code: str = Field(min_length=1)
    version: int = Field(ge=1)
    name_vi: str
    name_en: str
    legal_basis: str
    frequency: Frequency
    period_convention: PeriodConvention
    deadlines: Deadlines
    lock_after_days: int = Field(ge=0)
    reporters: tuple[str, ...] = Field(min_length=1)
    effective_from: date
    effective_to: date | None = None
    indicators: tuple[Indicator, ...] = Field(min_length=1)
    rules: tuple[Rule, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        problems = [*self._range_problems(), *self._indicator_problems()]
        problems += self._deadline_problems()
        if problems:
            raise _ProblemsError(problems)
        return self

    def _range_problems(self) -> Iterator[str]:
        if self.effective_to is not None and self.effective_to < self.effective_from:
            yield f"effective_to {self.effective_to} is before effective_from"
        if len(set(self.reporters)) != len(self.reporters):
            yield "reporters: a unit type is listed twice"

    def _indicator_problems(self) -> Iterator[str]:
        by_code: dict[str, Indicator] = {}
        for indicator in self.indicators:
            if indicator.code in by_code:
                yield f"indicators[{indicator.code}]: duplicate indicator code"
            by_code[indicator.code] = indicator
        for indicator in self.indicators:
            for name in sorted(indicator.formula_names):
                used = by_code.get(name)
                where = f"indicators[{indicator.code}].derived"
                if used is None:
                    yield f"{where}: unknown indicator {name}"
                elif used.is_derived:
                    # Derived values are computed from rolled-up base values at every
                    # scope; a formula over another formula would need an evaluation
                    # order (and could loop), so formulas stay one level deep.
                    yield (
                        f"{where}: refers to derived indicator {name}; a formula may only"
                        " use indicators that are reported, not other derived ones"
                    )
        seen_rules: set[str] = set()
        for rule in self.rules:
            if rule.code in seen_rules:
                yield f"rules[{rule.code}]: duplicate rule code"
            seen_rules.add(rule.code)
            for name in sorted(rule.indicator_codes - by_code.keys()):
                yield f"rules[{rule.code}].expr: unknown indicator {name}"

    def _deadline_problems(self) -> Iterator[str]:
        # Decree 09 art. 8.5: a deadline leaves at least a working day after the cut-off.
        for hop in ("unit_to_province", "province_to_hub"):
            rule = getattr(self.deadlines, hop)
            if not isinstance(rule, DayOfLastMonth):
                continue
            if self.period_convention is PeriodConvention.CALENDAR:
                yield (
                    f"deadlines.{hop}: day_of_last_month falls inside a calendar window;"
                    " use working_days_after_cutoff"
                )
            elif rule.day_of_last_month <= 14:
                yield (
                    f"deadlines.{hop}: day {rule.day_of_last_month} is not after the nd09"
                    " cut-off (the 14th)"
                )

    # Lookup tables as cached properties, not private attributes: pydantic reaches a
    # private attribute through `__getattr__` after a failed lookup (3 µs), and these are
    # read for every report and every value.
    @cached_property
    def _by_code(self) -> Mapping[str, Indicator]:
        return MappingProxyType({i.code: i for i in self.indicators})

    def indicator(self, code: str) -> Indicator | None:
        return self._by_code.get(code)

    @property
    def indicator_codes(self) -> tuple[str, ...]:
        return tuple(i.code for i in self.indicators)

    def in_force_on(self, day: date) -> bool:
        """Whether `day` is inside effective_from .. effective_to (both inclusive).

        periods.md: a version applies to a period when the last day of the period's
        cut-off window is a day it is in force.
        """
        return self.effective_from <= day and (
            self.effective_to is None or day <= self.effective_to
        )


class Unit(_Frozen):
    """A reporting unit (*đơn vị báo cáo*), valid from `valid_from` to `valid_to` inclusive."""

    code: str = Field(min_length=1)
    name: str
    type: str = Field(min_length=1)
    parent: str | None = None
    valid_from: date
    valid_to: date | None = None
    succeeds: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _range(self) -> Self:
        if self.valid_to is not None and self.valid_to < self.valid_from:
            raise ValueError(f"valid_to {self.valid_to} is before valid_from {self.valid_from}")
        return self

    def valid_on(self, day: date) -> bool:
        return self.valid_from <= day and (self.valid_to is None or day <= self.valid_to)


@dataclass(frozen=True)
class Hierarchy:
    """The unit tree in force on one day.

    Lookups of a code that is not in force on `day` raise KeyError: asking for the parent of
    a unit that does not exist then is a caller's bug, not an empty answer.
    """

    day: date
    units: tuple[Unit, ...]
    _by_code: Mapping[str, Unit] = field(repr=False, compare=False)
    _children: Mapping[str, tuple[str, ...]] = field(repr=False, compare=False)

    @classmethod
    def of(cls, units: Iterable[Unit], day: date) -> Hierarchy:
        in_force = tuple(sorted((u for u in units if u.valid_on(day)), key=lambda u: u.code))
        children: dict[str, list[str]] = {u.code: [] for u in in_force}
        for unit in in_force:
            if unit.parent is not None:
                children[unit.parent].append(unit.code)
        return cls(
            day=day,
            units=in_force,
            _by_code=MappingProxyType({u.code: u for u in in_force}),
            _children=MappingProxyType({k: tuple(v) for k, v in children.items()}),
        )

    def contains(self, code: str) -> bool:
        return code in self._by_code

    def unit(self, code: str) -> Unit:
        try:
            return self._by_code[code]
        except KeyError:
            raise KeyError(f"unit {code} is not in force on {self.day}") from None

    def parent(self, code: str) -> str | None:
        return self.unit(code).parent

    def children(self, code: str) -> tuple[str, ...]:
        self.unit(code)
        return self._children[code]

    def ancestors(self, code: str) -> tuple[str, ...]:
        """Parent first, the root last."""
        found: list[str] = []
        parent = self.parent(code)
        while parent is not None:
            found.append(parent)
            parent = self.parent(parent)
        return tuple(found)

    def descendants(self, code: str) -> tuple[str, ...]:
        """Every unit strictly below `code`, sorted by code."""
        found: list[str] = []
        pending = list(self.children(code))
        while pending:
            current = pending.pop()
            found.append(current)
            pending.extend(self._children[current])
        return tuple(sorted(found))


class Catalog(_Frozen):
    """The province's units and every version of every regime.

    Methods taking `day` answer for the hierarchy in force that day; for a period that day
    is the last day of its cut-off window (periods.md, "Which version and which hierarchy").
    """

    province: str
    units: tuple[Unit, ...]
    regimes: tuple[Regime, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        problems = _catalog_problems(
            self.province,
            self.units,
            self.regimes,
            units_source="units",
            regime_source=lambda r: f"regime {r.code} v{r.version}",
        )
        if problems:
            raise _ProblemsError(problems)
        return self

    # Cached properties, not private attributes: see `Regime._by_code`.
    @cached_property
    def _units(self) -> Mapping[str, Unit]:
        return MappingProxyType({u.code: u for u in self.units})

    @cached_property
    def _versions(self) -> Mapping[str, tuple[Regime, ...]]:
        versions: dict[str, list[Regime]] = {}
        for regime in self.regimes:
            versions.setdefault(regime.code, []).append(regime)
        return MappingProxyType(
            {code: tuple(sorted(rs, key=lambda r: r.version)) for code, rs in versions.items()}
        )

    # The catalog is immutable, so a hierarchy computed once per day stays right; the
    # distinct days asked about are period ends, a few hundred over a deployment's life.
    @cached_property
    def _hierarchies(self) -> dict[date, Hierarchy]:
        return {}

    # Equal catalogs are equal whatever each has cached (hierarchies asked for, lookups).
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Catalog):
            return NotImplemented
        return (self.province, self.units, self.regimes) == (
            other.province,
            other.units,
            other.regimes,
        )

    def __hash__(self) -> int:
        return hash((self.province, self.units, self.regimes))

    def unit(self, code: str) -> Unit | None:
        return self._units.get(code)

    @property
    def regime_codes(self) -> tuple[str, ...]:
        return tuple(sorted(self._versions))

    def regime_versions(self, code: str) -> tuple[Regime, ...]:
        """Every version of regime `code`, oldest first; empty for an unknown code."""
        return self._versions.get(code, ())

    def regime_in_force(self, code: str, day: date) -> Regime | None:
        # Versions never overlap (checked on load), so at most one matches.
        return next((r for r in self.regime_versions(code) if r.in_force_on(day)), None)

    def hierarchy_on(self, day: date) -> Hierarchy:
        hierarchy = self._hierarchies.get(day)
        if hierarchy is None:
            hierarchy = Hierarchy.of(self.units, day)
            self._hierarchies[day] = hierarchy
        return hierarchy

    def reporters(self, regime: Regime, day: date) -> tuple[str, ...]:
        """Codes of the units in force on `day` whose type must report `regime`, sorted."""
        types = frozenset(regime.reporters)
        return tuple(u.code for u in self.hierarchy_on(day).units if u.type in types)

    def reporters_under(self, regime: Regime, day: date, scope: str) -> tuple[str, ...]:
        """Reporters of `regime` that are `scope` itself or below it on `day`, sorted."""
        hierarchy = self.hierarchy_on(day)
        under = {scope, *hierarchy.descendants(scope)}
        return tuple(code for code in self.reporters(regime, day) if code in under)

    def scopes(self, regime: Regime, day: date) -> tuple[str, ...]:
        """Aggregate scopes of `regime` on `day`: units with a reporter strictly below them.

        DESIGN §3: one snapshot per unit that has reporters under it in that period's
        hierarchy (the province; districts while they exist). A reporter with nothing
        below is its own report, not an aggregate.
        """
        hierarchy = self.hierarchy_on(day)
        found: set[str] = set()
        for code in self.reporters(regime, day):
            found.update(hierarchy.ancestors(code))
        return tuple(sorted(found))


def _catalog_problems(
    province: str,
    units: Sequence[Unit],
    regimes: Sequence[Regime],
    *,
    units_source: str,
    regime_source: Callable[[Regime], str],
) -> list[str]:
    """Cross-file consistency, each problem prefixed with the file (or object) it is in."""
    problems = [f"{units_source}: {why}" for why in _unit_problems(province, units)]
    types = {u.type for u in units}
    for regime in regimes:
        for unit_type in regime.reporters:
            if unit_type not in types:
                problems.append(
                    f"{regime_source(regime)}: reporters: no unit has type {unit_type!r}"
                )
    versions: dict[str, list[Regime]] = {}
    for regime in regimes:
        versions.setdefault(regime.code, []).append(regime)
    for same_code in versions.values():
        ordered = sorted(same_code, key=lambda r: (r.effective_from, r.version))
        for earlier, later in itertools.pairwise(ordered):
            if earlier.version == later.version:
                problems.append(f"{regime_source(later)}: version defined twice")
            elif earlier.effective_to is None or earlier.effective_to >= later.effective_from:
                # periods.md picks the version by the day a period's window ends; two
                # versions in force the same day would make that choice ambiguous.
                problems.append(
                    f"{regime_source(later)}: effective_from {later.effective_from} overlaps"
                    f" {regime_source(earlier)} (effective_to {earlier.effective_to or 'open'})"
                )
    return problems


def _unit_problems(province: str, units: Sequence[Unit]) -> Iterator[str]:
    by_code: dict[str, Unit] = {}
    for unit in units:
        if unit.code in by_code:
            yield f"units[{unit.code}]: duplicate unit code"
        by_code[unit.code] = unit
    root = by_code.get(province)
    if root is None:
        yield f"province: no unit has code {province!r}"
    elif root.parent is not None:
        yield f"units[{province}].parent: the province has no parent"
    for unit in units:
        where = f"units[{unit.code}]"
        for old in unit.succeeds:
            if old not in by_code:
                yield f"{where}.succeeds: unknown unit {old}"
        if unit.parent is None:
            if unit.code != province:
                yield f"{where}.parent: missing; only the province has no parent"
            continue
        parent = by_code.get(unit.parent)
        if parent is None:
            yield f"{where}.parent: unknown unit {unit.parent}"
        elif not _covers(parent, unit):
            # A unit must be able to roll up on every day it exists.
            yield f"{where}.parent: {parent.code} is not in force on every day {unit.code} is"
    yield from _cycles(by_code)


def _covers(outer: Unit, inner: Unit) -> bool:
    if inner.valid_from < outer.valid_from:
        return False
    if outer.valid_to is None:
        return True
    return inner.valid_to is not None and inner.valid_to <= outer.valid_to


def _cycles(by_code: Mapping[str, Unit]) -> Iterator[str]:
    for code in sorted(by_code):
        seen = {code}
        parent = by_code[code].parent
        while parent is not None and parent in by_code:
            if parent in seen:
                yield f"units[{code}].parent: the parent chain loops through {parent}"
                break
            seen.add(parent)
            parent = by_code[parent].parent


# --- loading -------------------------------------------------------------------------


class _UnitsFile(_Frozen):
    province: str = Field(min_length=1)
    units: tuple[Unit, ...] = Field(min_length=1)


class _Loader(yaml.SafeLoader):
    """Safe YAML, with exact decimals for floats and an error for duplicate keys."""


def _construct_decimal(loader: yaml.SafeLoader, node: yaml.Node) -> Decimal:
    text = str(loader.construct_scalar(node))  # type: ignore[arg-type]
    try:
        number = Decimal(text.replace("_", ""))
    except InvalidOperation:
        number = Decimal("NaN")
    if not number.is_finite():
        raise yaml.constructor.ConstructorError(
            None, None, f"{text!r} is not a finite decimal number", node.start_mark
        )
    return number


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    # PyYAML keeps the last of two equal keys silently; in a catalog that hides a typo.
    loader.flatten_mapping(node)
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node)


_Loader.add_constructor("tag:yaml.org,2002:float", _construct_decimal)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _read_yaml(path: Path, root: Path) -> Any:
    name = path.relative_to(root).as_posix()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise CatalogError([f"{name}: cannot read: {error.strerror or error}"]) from error
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    except yaml.YAMLError as error:
        raise CatalogError([f"{name}: not valid YAML: {error}"]) from error


def _format_path(loc: Sequence[int | str], data: Any) -> str:
    """`indicators[ON_TIME_RATE].min`: list items named by their code when they have one."""
    path = ""
    current = data
    for part in loc:
        if part in _DEADLINE_TAGS:
            continue
        if isinstance(part, int):
            item = current[part] if isinstance(current, list) and part < len(current) else None
            code = item.get("code") if isinstance(item, dict) else None
            path += f"[{code}]" if isinstance(code, str) else f"[{part}]"
            current = item
        else:
            path += f".{part}" if path else str(part)
            current = current.get(part) if isinstance(current, dict) else None
    return path


def _validation_problems(name: str, error: ValidationError, data: Any) -> list[str]:
    problems: list[str] = []
    for detail in error.errors():
        path = _format_path(detail["loc"], data)
        prefix = f"{name}: {path}: " if path else f"{name}: "
        cause = detail.get("ctx", {}).get("error")
        if isinstance(cause, _ProblemsError):
            problems += [prefix + why for why in cause.problems]
        elif isinstance(cause, ValueError):
            problems.append(prefix + str(cause))
        elif detail["type"] == "extra_forbidden":
            problems.append(prefix + "unknown field")
        else:
            problems.append(prefix + detail["msg"])
    return problems


_M = TypeVar("_M", bound=BaseModel)


def _parse(model: type[_M], name: str, data: Any) -> _M:
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise CatalogError(_validation_problems(name, error, data)) from None


def load_catalog(directory: Path) -> Catalog:
    """Read `units.yaml` and `regimes/*.yaml` under `directory` into a checked Catalog.

    Raises CatalogError listing every problem found, each as `file: path: why`.
    """
    problems: list[str] = []
    units_file: _UnitsFile | None = None
    try:
        units_file = _parse(_UnitsFile, UNITS_FILE, _read_yaml(directory / UNITS_FILE, directory))
    except CatalogError as error:
        problems += error.problems
    regimes: list[Regime] = []
    sources: dict[int, str] = {}
    for path in sorted((directory / REGIMES_DIR).glob("*.yaml")):
        name = path.relative_to(directory).as_posix()
        try:
            regime = _parse(Regime, name, _read_yaml(path, directory))
        except CatalogError as error:
            problems += error.problems
            continue
        regimes.append(regime)
        sources[id(regime)] = name
    if problems or units_file is None:
        raise CatalogError(problems)
    problems = _catalog_problems(
        units_file.province,
        units_file.units,
        regimes,
        units_source=UNITS_FILE,
        regime_source=lambda r: sources[id(r)],
    )
    if problems:
        raise CatalogError(problems)
    return Catalog(province=units_file.province, units=units_file.units, regimes=tuple(regimes))
