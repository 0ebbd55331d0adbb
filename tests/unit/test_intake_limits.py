"""Limits on what one report may hold, beyond the contract: a text value's length and a
number's digits and magnitude (E150 with the field), so abusive input stays cheap. A zero
is not large: however far its exponent, it is read as 0 and validation takes it as 0."""

from __future__ import annotations

from decimal import Decimal

import pytest

from services.submission.intake import Limits, Readable, Unreadable, read
from services.validation.rules import Facts, RuleBook, validate
from shared.catalog import load_catalog
from shared.contracts import Status
from shared.settings import REPO_ROOT
from tests import factories

pytestmark = pytest.mark.unit

LIMITS = Limits(max_text_chars=10, max_number_digits=20, max_number_exponent=20)
BOOK = RuleBook(load_catalog(REPO_ROOT / "catalog"))


def with_online(number: str) -> bytes:
    raw = factories.report_json()
    replaced = raw.replace(b'"RECEIVED_ONLINE":120', b'"RECEIVED_ONLINE":' + number.encode())
    assert replaced != raw
    return replaced


@pytest.mark.parametrize(
    "number",
    [
        "1E+100000",
        "1E+20",
        "-1E+20",
        "1E-21",
        "123456789012345678901",
        "1E+100000000",
        "-1E-100000000",
        "1.00000000000000000000",  # 21 digits, the zeros too
        "-0.000123456789012345678901",
    ],
)
def test_numbers_too_long_or_too_far_from_one_are_refused(number: str) -> None:
    result = read(with_online(number), LIMITS)
    assert isinstance(result, Unreadable)
    (found,) = result.issues
    assert (found.code, found.field, found.indicator) == (
        "E150",
        "values.RECEIVED_ONLINE",
        "RECEIVED_ONLINE",
    )
    assert len(found.message_en) < 400  # the number is shown cut short
    assert result.report_id is not None  # the sender can be answered


@pytest.mark.parametrize(
    "number",
    [
        "12345678901234567890",
        "1E+19",
        "1E-20",
        "0",
        "-0.5",
        "-0.0000012345678901234567",  # written longer than 20 characters, 17 digits
        "1.0000000000000000000",
    ],
)
def test_numbers_within_the_limits_pass(number: str) -> None:
    assert isinstance(read(with_online(number), LIMITS), Readable)


@pytest.mark.parametrize(
    "number", ["0E+100000", "0e1000", "0e-1000", "-0E-21", "0E+20", "0.0E+1000000000"]
)
def test_a_zero_however_far_its_exponent_is_read_as_zero(number: str) -> None:
    result = read(with_online(number), LIMITS)
    assert isinstance(result, Readable)
    value = result.report.values["RECEIVED_ONLINE"]
    assert str(value) == "0"
    # The document a signature covers keeps the number as it was sent.
    assert str(result.document["values"]["RECEIVED_ONLINE"]) == str(Decimal(number))


@pytest.mark.parametrize("number", ["0", "0.00", "0E-20", "0E+19"])
def test_a_zero_within_the_limits_is_read_as_written(number: str) -> None:
    result = read(with_online(number), LIMITS)
    assert isinstance(result, Readable)
    assert str(result.report.values["RECEIVED_ONLINE"]) == str(Decimal(number))


def test_a_zero_written_far_from_one_passes_validation_as_zero() -> None:
    # MAX_OVERDUE_DAYS is an integer, PROCESSING_DAYS_TOTAL a decimal, both with `min: 0`.
    raw = factories.report_json().replace(b'"MAX_OVERDUE_DAYS":4', b'"MAX_OVERDUE_DAYS":0e1000')
    raw = raw.replace(b'"PROCESSING_DAYS_TOTAL":480.5', b'"PROCESSING_DAYS_TOTAL":0e-1000')
    result = read(raw, Limits())
    assert isinstance(result, Readable)
    verdict = validate(result.report, factories.NOW, BOOK, Facts())
    assert verdict.status is Status.ACCEPTED
    assert [i.code for i in verdict.issues if i.field != "values"] == []


def test_a_text_value_over_the_limit_is_refused_with_its_length() -> None:
    raw = factories.report_json(
        regime="NVCP-S",
        period="2026-S1",
        values={**factories.NVCP_VALUES, "ASSESSMENT": "x" * 11},
    )
    result = read(raw, LIMITS)
    assert isinstance(result, Unreadable)
    (found,) = result.issues
    assert (found.code, found.field) == ("E150", "values.ASSESSMENT")
    assert "11" in found.message_en
    assert "10" in found.message_vi


def test_a_readable_report_keeps_the_document_a_signature_covers() -> None:
    result = read(factories.report_json(), Limits())
    assert isinstance(result, Readable)
    assert result.document["report_id"] == result.report.report_id
