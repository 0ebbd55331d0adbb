"""Reading what a local system sent: a report, or a precise account of why it is not one.

Pure: bytes in, a `Report` or an `Unreadable` out. The same function serves the inbound
topic and `POST /v1/reports`, so both channels refuse exactly the same inputs with exactly
the same issues (E100 with the field path, E150 for a body, a text value or a number over
the limits). The limits keep abusive input cheap: a 9-byte `1E+100000` is a valid JSON
number that would cost every later step a 100 kB decimal. A zero is never large: `0E+100000`
and `0E-100000` are read as 0.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, NamedTuple

from pydantic import ValidationError

from shared import codec
from shared.contracts import Issue, Outcome, Report, Status
from shared.messages import (
    CONTRACT_REASON_VI,
    CONTRACT_REASONS_VI,
    VALUE_KIND_REASON,
    issue,
    not_json,
)

_REPORT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")


@dataclass(frozen=True, slots=True)
class Unreadable:
    """Input that is not a report: every issue found, and what could be read of it."""

    issues: tuple[Issue, ...]
    report_id: str | None = None
    regime: str | None = None
    period: str | None = None
    unit: str | None = None
    revision: int | None = None

    @property
    def code(self) -> str:
        return self.issues[0].code

    @classmethod
    def refused(cls, report: Report, issues: tuple[Issue, ...]) -> Unreadable:
        """A report that was read but may not be taken (a sender refused: E140-E142)."""
        return cls(
            issues,
            report_id=report.report_id,
            regime=report.regime,
            period=report.period,
            unit=report.unit,
            revision=report.revision,
        )

    def outcome(self) -> Outcome | None:
        """The E100/E150 verdict, when the input names a usable report id to answer to."""
        if self.report_id is None:
            return None
        return Outcome(
            report_id=self.report_id,
            regime=self.regime,
            period=self.period,
            unit=self.unit,
            revision=self.revision,
            status=Status.REJECTED,
            issues=self.issues,
        )


def field_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path or "(body)"


_VALUE_MEMBERS = ("decimal", "str")  # the members of `Value`, as pydantic names them


def contract_issues(error: ValidationError) -> tuple[Issue, ...]:
    """One E100 per offending field, in the order pydantic found them."""
    found: dict[str, Issue] = {}
    for detail in error.errors(include_url=False):
        loc = detail["loc"]
        if loc and loc[-1] in _VALUE_MEMBERS:
            # A value failed both union members: say what a value may be, once.
            path = field_path(loc[:-1])
            reason_vi, reason_en = VALUE_KIND_REASON
        else:
            path = field_path(loc)
            message = detail["msg"]
            reason_en = message[:1].lower() + message[1:]
            reason_vi = CONTRACT_REASONS_VI.get(detail["type"], f"{CONTRACT_REASON_VI} ({message})")
        found.setdefault(path, issue("E100", field=path, reason_vi=reason_vi, reason_en=reason_en))
    return tuple(found.values())


def _glean(document: Any) -> dict[str, Any]:
    """Identifiers of a document that failed the contract, so the sender can be answered."""
    if not isinstance(document, dict):
        return {}
    found: dict[str, Any] = {}
    report_id = document.get("report_id")
    if isinstance(report_id, str) and _REPORT_ID.match(report_id):
        found["report_id"] = report_id
    for name in ("regime", "period", "unit"):
        value = document.get(name)
        if isinstance(value, str) and 0 < len(value) <= 64:
            found[name] = value
    revision = document.get("revision")
    # Beyond 64 bits a revision cannot be written back in JSON by the outcome's encoder.
    if isinstance(revision, int) and not isinstance(revision, bool) and abs(revision) < 2**63:
        found["revision"] = revision
    return found


@dataclass(frozen=True, slots=True)
class Limits:
    """What one report may hold, beyond the contract's own bounds."""

    max_bytes: int = 512 * 1024
    max_text_chars: int = 4000
    max_number_digits: int = 40
    max_number_exponent: int = 40


class Readable(NamedTuple):
    """A report, and the JSON document it was read from (what a signature covers).
    A named tuple: one is built for each report, at a third of a frozen dataclass's cost."""

    report: Report
    document: dict[str, Any]


def read(raw: bytes, limits: Limits) -> Readable | Unreadable:
    max_bytes = limits.max_bytes
    try:
        document = codec.loads(raw)
    except ValueError as error:  # JSONDecodeError, DuplicateKeyError, UnicodeDecodeError
        if len(raw) > max_bytes:
            return Unreadable((issue("E150", size=len(raw), limit=max_bytes),))
        return Unreadable((not_json(error),))
    if len(raw) > max_bytes:
        return Unreadable((issue("E150", size=len(raw), limit=max_bytes),), **_glean(document))
    try:
        report = Report.model_validate(document)
    except ValidationError as error:
        return Unreadable(contract_issues(error), **_glean(document))
    oversized = value_issues(report, limits)
    if oversized:
        return Unreadable.refused(report, oversized)
    return Readable(_far_zeros_as_zero(report, limits), document)


def read_report(raw: bytes, max_bytes: int, limits: Limits | None = None) -> Report | Unreadable:
    chosen = limits or Limits(max_bytes=max_bytes)
    result = read(raw, chosen)
    return result.report if isinstance(result, Readable) else result


_SHOWN_DIGITS = 24


def value_issues(report: Report, limits: Limits) -> tuple[Issue, ...]:
    """E150 for each value beyond the limits: text too long, a number too long or too far
    from 1 (validation's own bounds then judge the rest)."""
    found: list[Issue] = []
    for code, value in report.values.items():
        if isinstance(value, str):
            if len(value) > limits.max_text_chars:
                found.append(
                    issue(
                        "E150.text",
                        field=f"values.{code}",
                        indicator=code,
                        length=len(value),
                        limit=limits.max_text_chars,
                    )
                )
        elif _too_big(value, limits):
            found.append(
                issue(
                    "E150.number",
                    field=f"values.{code}",
                    indicator=code,
                    value=_shown(value),
                    digits=limits.max_number_digits,
                    exponent=limits.max_number_exponent,
                )
            )
    return tuple(found)


def _far_from_one(value: Decimal, limits: Limits) -> bool:
    return not -limits.max_number_exponent <= value.adjusted() < limits.max_number_exponent


def _too_big(value: Decimal, limits: Limits) -> bool:
    if value.is_zero():
        return False  # 0E+1000 is 0, however it is written: nothing large to carry
    if _far_from_one(value, limits):
        return True
    # The text of a decimal holds every digit of its coefficient: a short text settles it
    # at a quarter of the cost of counting the digits.
    if len(str(value)) <= limits.max_number_digits:
        return False
    return len(value.as_tuple().digits) > limits.max_number_digits


def _far_zeros_as_zero(report: Report, limits: Limits) -> Report:
    """The report with each zero written far from 1 (0E+1000, 0E-1000) read as 0: its
    exponent is notation, and later steps (sums, JSON in fixed point) would carry it."""
    far = [
        code
        for code, value in report.values.items()
        if isinstance(value, Decimal) and value.is_zero() and _far_from_one(value, limits)
    ]
    if not far:
        return report
    zeros = dict.fromkeys(far, Decimal(0))
    return report.model_copy(update={"values": {**report.values, **zeros}})


def _shown(value: Decimal) -> str:
    """The number in scientific notation, its digits cut short: a message stays small."""
    sign, digits, _ = value.as_tuple()
    head = "".join(map(str, digits[:_SHOWN_DIGITS]))
    more = "…" if len(digits) > _SHOWN_DIGITS else ""
    mantissa = head[0] + ("." + head[1:] if len(head) > 1 else "")
    return f"{'-' if sign else ''}{mantissa}{more}E{value.adjusted():+d}"
