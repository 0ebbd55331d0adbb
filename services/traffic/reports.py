"""Sample reports (báo cáo) for the catalog's reporting units: what the generator sends.

Pure: the catalog, a `random.Random` and `now` in; `Report` values out; no I/O, no clock.
`TrafficPlan.next(now)` decides what a province's local systems would send next:

- every reporting unit (*đơn vị báo cáo*) of every period (*kỳ báo cáo*) accepting reports
  at `now` first sends revision 1, with values that satisfy its regime's rules;
- then, mixed in: corrections (a higher revision with changed values), exact duplicates
  (a report sent again with its `report_id`) and deliberately bad reports (a broken rule,
  a required indicator missing, a value of the wrong type, an unknown unit), so that
  operators see every kind of verdict.

Once every unit has reported, ordinary traffic is corrections. `learn(outcome)` reads a
verdict on one of the plan's reports: a valid report refused only as stale (E130, the
system already holds a higher revision from an earlier run) makes the plan resend that
unit's report above the revision the system holds.
"""

from __future__ import annotations

import enum
import re
import uuid
import zlib
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_CEILING, ROUND_DOWN, Decimal
from random import Random
from typing import Final

from shared.catalog import Catalog, Indicator, IndicatorType, Regime, Severity
from shared.contracts import Outcome, Report, Status
from shared.expressions import Expression
from shared.periods import (
    Period,
    current_periods,
    cutoff_window,
    local_date,
    regime_for_period,
)

Values = dict[str, Decimal | str]

# Shares of all traffic; the rest is first reports (then corrections once all are in).
BAD_SHARE: Final = 0.03
DUPLICATE_SHARE: Final = 0.02
CORRECTION_SHARE: Final = 0.05
# How many sent reports are remembered for duplicates and for reading outcomes.
HISTORY: Final = 10_000

# The local systems that send each regime's reports (one-stop-shop software, statistics,
# task tracking); only a label on the report.
SOURCES: Final = {"KSTT-TTHC": "motcua", "KTXH-M": "thongke", "NVCP-S": "theodoi-nhiemvu"}
# How large a unit's figures are, by unit type: a commune handles fewer dossiers than a
# district or the provincial public-service centre.
SCALE: Final = {
    "commune": Decimal(1),
    "district": Decimal(4),
    "department": Decimal(2),
    "service_centre": Decimal(8),
    "province": Decimal(20),
}
_LATEST = re.compile(r"\((\d+)\)")


class Kind(enum.StrEnum):
    FIRST = "first"
    CORRECTION = "correction"
    DUPLICATE = "duplicate"
    BAD_RULE = "bad_rule"
    BAD_MISSING = "bad_missing"
    BAD_TYPE = "bad_type"
    BAD_UNIT = "bad_unit"

    @property
    def bad(self) -> bool:
        return self.value.startswith("bad_")


@dataclass(frozen=True)
class Slot:
    """One report the province expects: a regime version, a period and a reporting unit."""

    regime: Regime
    period: Period
    unit: str
    unit_type: str

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.regime.code, self.period.code, self.unit)


@dataclass(frozen=True)
class Planned:
    """A report to send, and why: `kind` says what verdict it should get."""

    kind: Kind
    report: Report

    @property
    def key(self) -> bytes:
        """Kafka key: the natural key, so one unit's revisions stay in order."""
        return f"{self.report.regime}|{self.report.period}|{self.report.unit}".encode()


def open_slots(catalog: Catalog, now: datetime) -> tuple[Slot, ...]:
    """Every (regime version, period, reporting unit) accepting reports at `now`.

    The periods come from each version's own calendar, so a period still open under a
    version that has just ended (or already open under the next one) is included; each
    period then uses the version in force on its cut-off window's last day, and the units
    in force that day.
    """
    slots: list[Slot] = []
    for code in catalog.regime_codes:
        periods: dict[str, Period] = {}
        for version in catalog.regime_versions(code):
            for period in current_periods(
                version.frequency,
                version.period_convention,
                version.lock_after_days,
                version.deadlines.unit_to_province,
                now,
            ):
                periods.setdefault(period.code, period)
        for period in sorted(periods.values()):
            regime = regime_for_period(catalog, code, period)
            if regime is None:
                continue
            day = cutoff_window(period, regime.period_convention).end
            hierarchy = catalog.hierarchy_on(day)
            for unit in catalog.reporters(regime, day):
                slots.append(Slot(regime, period, unit, hierarchy.unit(unit).type))
    return tuple(slots)


# --- values -------------------------------------------------------------------------------


def _unit_factor(slot: Slot) -> Decimal:
    """A stable size per unit (0.6 .. 1.4 times its type's scale): a unit's corrections stay
    close to its first figures, and units differ from each other."""
    spread = zlib.crc32(slot.unit.encode()) % 81
    return SCALE.get(slot.unit_type, Decimal(1)) * (Decimal("0.6") + Decimal(spread) / 100)


def _count(rng: Random, low: int, high: int, factor: Decimal = Decimal(1)) -> int:
    return int((Decimal(rng.randint(low, high)) * factor).to_integral_value())


def _amount(rng: Random, low: int, high: int, factor: Decimal = Decimal(1)) -> Decimal:
    """Billions of VND (tỷ đồng) with 2 or 3 decimals."""
    places = rng.choice((2, 3))
    value = Decimal(rng.uniform(low, high)) * factor
    return value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_DOWN)


def _split(rng: Random, total: int, weights: tuple[float, ...]) -> list[int]:
    """`total` cut into len(weights) non-negative integers, roughly by weight, summing exactly."""
    jittered = [w * rng.uniform(0.7, 1.3) for w in weights]
    scale = sum(jittered)
    parts = [int(total * w / scale) for w in jittered]
    parts[0] += total - sum(parts)
    return parts


def _dossiers(slot: Slot, rng: Random) -> Values:
    """KSTT-TTHC: every total adds up (R01..R04) and overdue dossiers carry their days (R05)."""
    factor = _unit_factor(slot)
    online = _count(rng, 60, 400, factor)
    direct = _count(rng, 20, 250, factor)
    carried = _count(rng, 0, 40, factor)
    received = online + direct + carried
    resolved = int(received * rng.uniform(0.65, 0.95))
    early, on_time, late = _split(rng, resolved, (0.45, 0.5, 0.05))
    within, overdue = _split(rng, received - resolved, (0.9, 0.1))
    values: Values = {
        "RECEIVED_ONLINE": Decimal(online),
        "RECEIVED_DIRECT": Decimal(direct),
        "CARRIED_OVER": Decimal(carried),
        "RECEIVED_TOTAL": Decimal(received),
        "RESOLVED_EARLY": Decimal(early),
        "RESOLVED_ON_TIME": Decimal(on_time),
        "RESOLVED_LATE": Decimal(late),
        "RESOLVED_TOTAL": Decimal(resolved),
        "PENDING_WITHIN": Decimal(within),
        "PENDING_OVERDUE": Decimal(overdue),
        "PENDING_TOTAL": Decimal(within + overdue),
        "PROCESSING_DAYS_TOTAL": (Decimal(resolved) * Decimal(rng.uniform(2, 12))).quantize(
            Decimal("0.1"), rounding=ROUND_DOWN
        ),
    }
    if overdue:
        values["MAX_OVERDUE_DAYS"] = Decimal(rng.randint(1, 45))
    elif rng.random() < 0.5:
        values["MAX_OVERDUE_DAYS"] = Decimal(0)
    return values


def _economy(slot: Slot, rng: Random) -> Values:
    """KTXH-M: amounts in billions of VND; disbursement (year to date) within the plan (R01)."""
    factor = _unit_factor(slot)
    plan = _amount(rng, 50, 600, factor)
    # Disbursement accumulates over the year: roughly the share of the year gone by.
    progress = Decimal(slot.period.index) / 12 * Decimal(rng.uniform(0.6, 1.0))
    values: Values = {
        "BUDGET_REVENUE": _amount(rng, 20, 400, factor),
        "BUDGET_EXPENDITURE": _amount(rng, 15, 300, factor),
        "PUBLIC_INVEST_PLAN": plan,
        "PUBLIC_INVEST_DISBURSED": min(plan, (plan * progress).quantize(Decimal("0.001"))),
    }
    if rng.random() < 0.8:
        values["NEW_ENTERPRISES"] = Decimal(_count(rng, 0, 25, factor))
    if rng.random() < 0.7:
        values["RETAIL_SALES"] = _amount(rng, 100, 1500, factor)
    return values


_ACHIEVEMENTS: Final = (
    "Hoàn thành cơ bản các nhiệm vụ được giao đúng tiến độ.",
    "Đã tham mưu ban hành kế hoạch triển khai và tổ chức thực hiện nghiêm túc.",
    "Các nhiệm vụ trọng tâm được triển khai đồng bộ, có kiểm tra, đôn đốc thường xuyên.",
    "Chất lượng tham mưu được nâng lên, phối hợp giữa các sở, ngành chặt chẽ hơn.",
)
_DIFFICULTIES: Final = (
    "Còn vướng mắc về bố trí vốn và thủ tục đầu tư.",
    "Một số nhiệm vụ liên quan đến nhiều cơ quan nên việc phối hợp còn chậm.",
    "Nhân lực chuyên môn còn thiếu so với khối lượng công việc.",
    "Hướng dẫn của bộ, ngành trung ương ban hành chậm.",
)
_PROPOSALS: Final = (
    "Kiến nghị Ủy ban nhân dân tỉnh gia hạn thời gian thực hiện đối với các nhiệm vụ quá hạn.",
    "Đề nghị bộ, ngành sớm hướng dẫn để địa phương triển khai.",
    "Đề xuất bổ sung kinh phí để hoàn thành các nhiệm vụ còn lại trong kỳ tới.",
)


def _assessment(rng: Random, done: int, assigned: int, overdue: int) -> str:
    lines = [
        f"Trong kỳ, đơn vị được giao {assigned} nhiệm vụ, đã hoàn thành {done} nhiệm vụ.",
        rng.choice(_ACHIEVEMENTS),
        rng.choice(_DIFFICULTIES),
    ]
    if overdue:
        lines.append(f"Còn {overdue} nhiệm vụ quá hạn chưa hoàn thành.")
    lines.append(rng.choice(_PROPOSALS))
    return " ".join(lines)


def _tasks(slot: Slot, rng: Random) -> Values:
    """NVCP-S: the tasks assigned are exactly those done, in progress or overdue (R01)."""
    assigned = _count(rng, 8, 40, _unit_factor(slot) / 2)
    on_time, late, in_progress, overdue = _split(rng, assigned, (0.55, 0.08, 0.3, 0.07))
    values: Values = {
        "TASKS_ASSIGNED": Decimal(assigned),
        "TASKS_DONE_ON_TIME": Decimal(on_time),
        "TASKS_DONE_LATE": Decimal(late),
        "TASKS_IN_PROGRESS": Decimal(in_progress),
        "TASKS_OVERDUE": Decimal(overdue),
    }
    if rng.random() < 0.9:
        values["ASSESSMENT"] = _assessment(rng, on_time + late, assigned, overdue)
    return values


def _generic_value(indicator: Indicator, rng: Random) -> Decimal | str:
    low = indicator.min if indicator.min is not None else Decimal(0)
    high = indicator.max if indicator.max is not None else low + 1000
    if indicator.type is IndicatorType.TEXT:
        return "Số liệu mẫu do bộ sinh dữ liệu gửi."[: indicator.max_length]
    value = low + (high - low) * Decimal(rng.random())
    if indicator.type is IndicatorType.INTEGER:
        return value.to_integral_value(rounding=ROUND_CEILING).min(high.to_integral_value())
    return value.quantize(Decimal("0.01"), rounding=ROUND_DOWN).max(low)


def _generic(slot: Slot, rng: Random) -> Values:
    """Any other regime: each indicator within its bounds, drawn until the error rules hold."""
    rules = [Expression(r.expr) for r in slot.regime.rules if r.severity is Severity.ERROR]
    reported = [i for i in slot.regime.indicators if not i.is_derived]
    values: Values = {}
    for _ in range(100):
        values = {i.code: _generic_value(i, rng) for i in reported}
        if _holds(rules, values):
            return values
    return values


def _holds(rules: list[Expression], values: Values) -> bool:
    numbers = {k: v for k, v in values.items() if isinstance(v, Decimal)}
    return all(rule.holds(numbers) for rule in rules if rule.names <= numbers.keys())


BUILDERS: Final[Mapping[str, Callable[[Slot, Random], Values]]] = {
    "KSTT-TTHC": _dossiers,
    "KTXH-M": _economy,
    "NVCP-S": _tasks,
}


def valid_values(slot: Slot, rng: Random) -> Values:
    """Values for `slot` that its regime accepts: types, bounds and every rule, no derived."""
    return BUILDERS.get(slot.regime.code, _generic)(slot, rng)


# --- what goes wrong ------------------------------------------------------------------


def break_a_rule(regime: Regime, values: Values, rng: Random) -> Values | None:
    """`values` with one number changed, within its bounds, so that an error rule fails."""
    rules = [r for r in regime.rules if r.severity is Severity.ERROR]
    rng.shuffle(rules)
    numbers = {k: v for k, v in values.items() if isinstance(v, Decimal)}
    largest = max(numbers.values(), default=Decimal(0))
    for rule in rules:
        expression = Expression(rule.expr)
        if not expression.names <= numbers.keys():
            continue
        names = sorted(expression.names)
        rng.shuffle(names)
        for name in names:
            indicator = regime.indicator(name)
            if indicator is None:
                continue
            value = numbers[name]
            for candidate in (value + 1, value * 2 + 1, value + largest + 1):
                if indicator.type is IndicatorType.INTEGER:
                    candidate = candidate.to_integral_value(rounding=ROUND_CEILING)
                if indicator.max is not None and candidate > indicator.max:
                    continue
                if not expression.holds({**numbers, name: candidate}):
                    return {**values, name: candidate}
    return None


def drop_a_required(regime: Regime, values: Values, rng: Random) -> Values | None:
    required = [i.code for i in regime.indicators if i.required and i.code in values]
    if not required:
        return None
    missing = rng.choice(required)
    return {k: v for k, v in values.items() if k != missing}


def mistype_a_value(regime: Regime, values: Values, rng: Random) -> Values | None:
    """A number where text is expected, text or a fraction where an integer is expected."""
    codes = sorted(values)
    rng.shuffle(codes)
    for code in codes:
        indicator = regime.indicator(code)
        value = values[code]
        if indicator is None:
            continue
        if indicator.type is IndicatorType.TEXT:
            return {**values, code: Decimal(rng.randint(1, 99))}
        if indicator.type is IndicatorType.INTEGER and isinstance(value, Decimal):
            wrong: Decimal | str = rng.choice((value + Decimal("0.5"), "khoảng " + str(value)))
            return {**values, code: wrong}
        if isinstance(value, Decimal):
            return {**values, code: f"{value} tỷ đồng"}
    return None


# --- the plan -------------------------------------------------------------------------


@dataclass
class _Sent:
    """What the plan has sent for one slot."""

    revision: int
    report: Report


class TrafficPlan:
    """Decides every next report; remembers what it sent (per slot, and recent reports)."""

    def __init__(self, catalog: Catalog, rng: Random) -> None:
        self.catalog = catalog
        self.rng = rng
        self._slots_day: date | None = None
        self._slots: tuple[Slot, ...] = ()
        self._by_key: dict[tuple[str, str, str], Slot] = {}
        self._sent: dict[tuple[str, str, str], _Sent] = {}
        self._pending: deque[tuple[str, str, str]] = deque()
        self._resend: deque[tuple[str, str, str]] = deque()
        self._history: deque[Report] = deque(maxlen=HISTORY)
        self._valid_ids: OrderedDict[str, tuple[str, str, str]] = OrderedDict()

    def slots(self, now: datetime) -> tuple[Slot, ...]:
        """The open slots at `now`; recomputed when the local day changes."""
        day = local_date(now)
        if day != self._slots_day:
            self._slots_day = day
            self._slots = open_slots(self.catalog, now)
            self._by_key = {slot.key: slot for slot in self._slots}
            waiting = [s.key for s in self._slots if s.key not in self._sent]
            self.rng.shuffle(waiting)
            self._pending = deque(waiting)
        return self._slots

    def next(self, now: datetime) -> Planned | None:
        """The next report to send at `now`; None when no period accepts reports."""
        if not self.slots(now):
            return None
        draw = self.rng.random()
        planned: Planned | None = None
        if draw < BAD_SHARE:
            planned = self._bad(now)
        elif draw < BAD_SHARE + DUPLICATE_SHARE:
            planned = self._duplicate()
        elif draw < BAD_SHARE + DUPLICATE_SHARE + CORRECTION_SHARE:
            planned = self._correction(now)
        return planned or self._ordinary(now)

    def learn(self, outcome: Outcome) -> None:
        """Read a verdict; a valid report of ours refused only as stale (E130) is resent
        above the revision the system holds (the message names it)."""
        key = self._valid_ids.get(outcome.report_id)
        if key is None or outcome.status is not Status.REJECTED:
            return
        errors = [i for i in outcome.issues if i.severity is Severity.ERROR]
        if not errors or any(i.code != "E130" for i in errors):
            return
        sent = self._sent.get(key)
        if sent is None:
            return
        stated = [int(m.group(1)) for i in errors if (m := _LATEST.search(i.message_en))]
        held = max(stated) if stated else 2 * (outcome.revision or sent.revision)
        if held >= sent.revision:
            sent.revision = held
            if key not in self._resend:
                self._resend.append(key)

    # The kinds of report.

    def _ordinary(self, now: datetime) -> Planned:
        while self._resend:
            key = self._resend.popleft()
            if key in self._by_key:
                return self._send(Kind.CORRECTION, self._by_key[key], now)
        while self._pending:
            key = self._pending.popleft()
            if key not in self._sent and key in self._by_key:
                return self._send(Kind.FIRST, self._by_key[key], now)
        planned = self._correction(now)
        assert planned is not None  # every open slot has been sent by now
        return planned

    def _correction(self, now: datetime) -> Planned | None:
        sent = [s for s in self._slots if s.key in self._sent]
        if not sent:
            return None
        return self._send(Kind.CORRECTION, self.rng.choice(sent), now)

    def _duplicate(self) -> Planned | None:
        if not self._history:
            return None
        return Planned(Kind.DUPLICATE, self.rng.choice(self._history))

    def _bad(self, now: datetime) -> Planned | None:
        sent = [s for s in self._slots if s.key in self._sent]
        if not sent:
            return None
        slot = self.rng.choice(sent)
        kinds = [Kind.BAD_RULE, Kind.BAD_MISSING, Kind.BAD_TYPE, Kind.BAD_UNIT]
        self.rng.shuffle(kinds)
        values = valid_values(slot, self.rng)
        for kind in kinds:
            if kind is Kind.BAD_UNIT:
                return Planned(kind, self._report(slot, 1, values, now, unit=self._unknown_unit()))
            spoil = {
                Kind.BAD_RULE: break_a_rule,
                Kind.BAD_MISSING: drop_a_required,
                Kind.BAD_TYPE: mistype_a_value,
            }[kind]
            spoiled = spoil(slot.regime, values, self.rng)
            if spoiled is not None:
                record = self._sent[slot.key]
                # A higher revision, so the refusal is for what is wrong, never staleness.
                record.revision += 1
                return Planned(kind, self._report(slot, record.revision, spoiled, now))
        return None

    def _send(self, kind: Kind, slot: Slot, now: datetime) -> Planned:
        record = self._sent.get(slot.key)
        revision = 1 if record is None else record.revision + 1
        values = valid_values(slot, self.rng)
        if record is not None:
            for _ in range(10):
                if values != record.report.values:
                    break
                values = valid_values(slot, self.rng)
        note = None if revision == 1 else f"Điều chỉnh số liệu (lần gửi thứ {revision})."
        report = self._report(slot, revision, values, now, note=note)
        self._sent[slot.key] = _Sent(revision, report)
        self._history.append(report)
        self._valid_ids[report.report_id] = slot.key
        while len(self._valid_ids) > HISTORY:
            self._valid_ids.popitem(last=False)
        return Planned(kind, report)

    def _report(
        self,
        slot: Slot,
        revision: int,
        values: Values,
        now: datetime,
        *,
        unit: str | None = None,
        note: str | None = None,
    ) -> Report:
        unit = unit or slot.unit
        source = SOURCES.get(slot.regime.code, "traffic")
        return Report.model_validate(
            {
                "schema": "baocao.report.v1",
                "report_id": str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
                "regime": slot.regime.code,
                "period": slot.period.code,
                "unit": unit,
                "revision": revision,
                "values": values,
                "source": f"{source}-{unit.lower()}",
                "prepared_at": now,
                "note": note,
            }
        )

    def _unknown_unit(self) -> str:
        while True:
            code = f"{self.catalog.province}.ZZ.X{self.rng.randint(1, 99):02d}"
            if self.catalog.unit(code) is None:
                return code
