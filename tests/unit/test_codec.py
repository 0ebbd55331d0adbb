"""`shared.codec` reads and writes JSON with exact decimals and refuses what is not such JSON.

Proves: JSON numbers become exact `Decimal` (never through a binary float) and `Decimal`
is written back as a fixed-point JSON number; NaN, Infinity, duplicate keys and invalid
UTF-8 are refused on reading and non-finite decimals on writing; `canonical` sorts keys
without spaces; any dict of finite decimals survives `dumps` then `loads` to the digit.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared import codec
from shared.codec import DuplicateKeyError
from shared.contracts import AcceptedReport, Issue, Outcome, Severity, Signature, Status
from tests import factories

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1234567890123.4567891234", Decimal("1234567890123.4567891234")),
        ("0.1", Decimal("0.1")),
        ("0.10", Decimal("0.10")),
        ("-98.105", Decimal("-98.105")),
        ("1e3", Decimal("1E+3")),
        ("12", 12),
    ],
)
def test_a_json_number_is_read_exactly(text: str, expected: Decimal | int) -> None:
    value = codec.loads(f'{{"v": {text}}}'.encode())["v"]
    assert value == expected
    assert str(value) == str(expected)  # the same digits, not just an equal value
    assert type(value) is type(expected)


def test_a_fraction_is_never_a_binary_float_at_any_depth() -> None:
    document = codec.loads(b'{"a": 0.1, "b": [0.2, {"c": 0.3}]}')
    a, (b, inner) = document["a"], document["b"]
    assert all(isinstance(n, Decimal) for n in (a, b, inner["c"]))
    assert a + b == inner["c"]  # false with binary floats


@pytest.mark.parametrize(
    ("value", "written"),
    [
        (Decimal("1234567890123.4567891234"), b"1234567890123.4567891234"),
        (Decimal("0.1"), b"0.1"),
        (Decimal("98.10"), b"98.10"),
        (Decimal("1E+3"), b"1000"),
        (Decimal("1E+30"), b"1000000000000000000000000000000"),
        (Decimal("1E-7"), b"0.0000001"),
        (Decimal("-0.0"), b"-0.0"),
    ],
)
def test_a_decimal_is_written_as_a_fixed_point_json_number(value: Decimal, written: bytes) -> None:
    assert codec.dumps({"v": value}) == b'{"v":' + written + b"}"


@given(
    st.tuples(
        st.integers(0, 1),
        st.lists(st.integers(0, 9), min_size=1, max_size=40),
        st.integers(-(codec.FIXED_POINT_SPAN - 40), codec.FIXED_POINT_SPAN - 40),
    )
)
def test_every_decimal_near_one_is_written_as_its_fixed_point_text(
    parts: tuple[int, list[int], int],
) -> None:
    sign, digits, exponent = parts
    value = Decimal((sign, tuple(digits), exponent))
    assert codec.dumps([value]) == f"[{value:f}]".encode()


def test_decimals_round_trip_exactly_through_dumps_and_loads() -> None:
    original = {"revenue": Decimal("1234567890123.4567891234"), "rate": Decimal("0.1")}
    assert codec.loads(codec.dumps(original)) == original


@pytest.mark.parametrize("text", ["NaN", "Infinity", "-Infinity", '{"v": NaN}', "[1, Infinity]"])
def test_non_finite_numbers_are_refused_on_reading(text: str) -> None:
    with pytest.raises(ValueError, match="is not a number in JSON"):
        codec.loads(text.encode())


@pytest.mark.parametrize("value", [Decimal("NaN"), Decimal("Infinity"), Decimal("-Infinity")])
def test_non_finite_decimals_are_refused_on_writing(value: Decimal) -> None:
    with pytest.raises(TypeError):
        codec.dumps({"v": value})


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('{"a": 1, "a": 2}', "a"),
        ('{"a": 1, "a": 1}', "a"),
        ('{"outer": {"b": 1, "b": 2}}', "b"),
        ('[{"x": 1}, {"y": 1, "y": 2}]', "y"),
    ],
)
def test_a_duplicate_key_is_refused(text: str, key: str) -> None:
    with pytest.raises(DuplicateKeyError) as caught:
        codec.loads(text.encode())
    assert caught.value.key == key
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize("raw", [b"\xff\xfe{}", b'{"a": "\xc3"}', b'{"a": "\xed\xa0\x80"}'])
def test_invalid_utf8_is_refused(raw: bytes) -> None:
    with pytest.raises(UnicodeDecodeError):
        codec.loads(raw)


def test_text_is_read_and_written_as_utf8() -> None:
    raw = '{"name":"Tỉnh Thái Bình"}'.encode()
    assert codec.loads(raw) == {"name": "Tỉnh Thái Bình"}
    assert codec.dumps({"name": "Tỉnh Thái Bình"}) == raw


def test_dumps_writes_no_spaces_and_keeps_key_order() -> None:
    assert codec.dumps({"b": 1, "a": [1, 2]}) == b'{"b":1,"a":[1,2]}'


def test_canonical_sorts_keys_at_every_level_without_spaces() -> None:
    value = {"b": Decimal("1.50"), "a": {"d": 2, "c": [3, {"f": 1, "e": 0}]}}
    assert codec.canonical(value) == b'{"a":{"c":[3,{"e":0,"f":1}],"d":2},"b":1.50}'


def test_canonical_of_a_model_keeps_null_fields_and_sorts_them() -> None:
    signature = Signature(alg="Ed25519", key_id="k1", value="c2ln")
    assert codec.canonical(signature) == b'{"alg":"Ed25519","key_id":"k1","value":"c2ln"}'
    assert codec.canonical({"z": None, "a": None}) == b'{"a":null,"z":null}'


def test_canonical_does_not_depend_on_insertion_order() -> None:
    assert codec.canonical({"x": 1, "y": 2}) == codec.canonical({"y": 2, "x": 1})


def test_dumps_and_loads_agree_with_the_standard_library_on_structure() -> None:
    value: dict[str, Any] = {"list": [1, "two", None, True], "nested": {"k": False}}
    assert json.loads(codec.dumps(value)) == value
    assert codec.loads(json.dumps(value)) == value


# Finite decimals with a bounded exponent, built from their text so nothing is rounded.
finite_decimals = st.builds(
    lambda digits, exponent: Decimal(f"{digits}E{exponent}"),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.integers(min_value=-30, max_value=30),
)


# NUL is refused on reading (PostgreSQL text cannot hold it), so keys never carry it.
@given(
    st.dictionaries(
        st.text(st.characters(codec="utf-8", exclude_characters="\x00")),
        finite_decimals,
        max_size=20,
    )
)
def test_any_dict_of_finite_decimals_round_trips_unchanged(original: dict[str, Decimal]) -> None:
    loaded = codec.loads(codec.dumps(original))
    assert loaded == original
    for key, value in original.items():
        if value.as_tuple().exponent < 0:  # type: ignore[operator]
            # A fraction comes back as the same Decimal, digit for digit (trailing zeros too).
            assert isinstance(loaded[key], Decimal)
            assert loaded[key].as_tuple() == value.as_tuple()
        else:
            # A whole number is written without exponent and read back as an exact int.
            assert isinstance(loaded[key], int)


@pytest.mark.parametrize(
    ("value", "written"),
    [
        (Decimal("1E+100000000"), b"1E+100000000"),
        (Decimal("-5E-100000000"), b"-5E-100000000"),
        (Decimal("1E+99"), b"1" + b"0" * 99),
    ],
)
def test_a_decimal_far_from_one_keeps_its_exponent_instead_of_growing(
    value: Decimal, written: bytes
) -> None:
    assert codec.dumps({"v": value}) == b'{"v":' + written + b"}"
    assert codec.loads(codec.dumps(value)) == value


@pytest.mark.parametrize("text", [b"[" * 100_000, b'{"a":' * 100_000, b"[" * 5000 + b"]" * 5000])
def test_json_nested_too_deeply_is_refused_not_a_crash(text: bytes) -> None:
    with pytest.raises(ValueError, match="nested too deeply"):
        codec.loads(text)


@pytest.mark.parametrize("text", [b'"\\ud800"', b'{"\\uDFFF": 1}', b'[["a", "\\udbff x"]]'])
def test_a_lone_surrogate_escape_is_refused_on_reading(text: bytes) -> None:
    with pytest.raises(ValueError, match="lone surrogate"):
        codec.loads(text)


def test_an_escaped_surrogate_pair_is_one_character() -> None:
    assert codec.loads(b'"\\ud83d\\ude42"') == "🙂"


@pytest.mark.parametrize("text", [b'"a\\u0000b"', b'{"\\u0000": 1}'])
def test_a_nul_character_is_refused_on_reading(text: bytes) -> None:
    with pytest.raises(ValueError, match="NUL"):
        codec.loads(text)


def test_a_message_written_from_its_fields_is_the_message_the_model_writes() -> None:
    values = {"A": Decimal("1E+3"), "B": "văn bản", "C": Decimal("0.5")}
    accepted = factories.accepted(values=values)
    fields = {name: getattr(accepted, name) for name in AcceptedReport.model_fields}
    del fields["schema_"]  # a default: the writer fills it in as the model does
    assert codec.dumps_fields(AcceptedReport, **fields) == codec.dumps(accepted)

    issue = Issue(code="E120", rule="R1", severity=Severity.WARNING, message_vi="v", message_en="e")
    outcome = Outcome(report_id="r-1", status=Status.ACCEPTED, issues=(issue,))
    written = codec.dumps_fields(Outcome, report_id="r-1", status=Status.ACCEPTED, issues=(issue,))
    assert written == codec.dumps(outcome)


def test_a_message_written_from_its_fields_needs_every_required_field_and_no_other() -> None:
    with pytest.raises(TypeError, match="'status' is required"):
        codec.dumps_fields(Outcome, report_id="r-1")
    with pytest.raises(TypeError, match="no field colour"):
        codec.dumps_fields(Outcome, report_id="r-1", status=Status.ACCEPTED, colour="red")
