"""JSON on the wire, with exact decimals both ways.

pydantic parses JSON numbers into `Decimal` through a binary float (1234567890123.4567891234
comes back as ...4568), and writes `Decimal` as a string. Budget figures must add up to the
last digit, so messages are read with the standard library's parser (`parse_float=Decimal`)
and written with orjson, embedding each decimal as a raw JSON number.

JSON that baocao wrote itself (its internal topics, PostgreSQL's jsonb) is read by
`loads_internal`, through msgspec with the same exact decimals, about three times faster:
the hot path of every stage reads such messages.
"""

from __future__ import annotations

import functools
import json
import re
from decimal import Decimal
from typing import Any, Final, TypeVar

import msgspec
import orjson
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


class DuplicateKeyError(ValueError):
    """A JSON object names the same key twice: which value was meant is unknowable."""

    def __init__(self, key: str) -> None:
        super().__init__(f"duplicate key {key!r}")
        self.key = key


# The texts of the refusals below, which shared.messages renders in Vietnamese too.
NOT_A_NUMBER = " is not a number in JSON"  # after NaN, Infinity or -Infinity
NESTED_TOO_DEEPLY = "JSON nested too deeply"
NUL_IN_STRING = "a string holds the NUL character (\\u0000)"
LONE_SURROGATE = "a string holds a lone surrogate escape (\\ud800-\\udfff)"


def _refuse_constant(name: str) -> Any:
    raise ValueError(name + NOT_A_NUMBER)


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)  # built in C; a key named twice leaves fewer entries than pairs
    if len(result) < len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise DuplicateKeyError(key)
            seen.add(key)
    return result


# Escapes that may stand for a string nothing downstream can store (see `loads`).
_UNSTORABLE_ESCAPE = re.compile(r"\\u(?:[dD][89a-fA-F]|0000)")
# Powers of ten between which a decimal is written in fixed-point notation.
FIXED_POINT_SPAN = 100

_decoder = json.JSONDecoder(
    parse_float=Decimal,
    parse_constant=_refuse_constant,
    object_pairs_hook=_unique_pairs,
)


def loads(data: bytes | str) -> Any:
    """Parse JSON; floats become exact `Decimal`; NaN, Infinity and duplicate keys are errors.

    Raises `ValueError` (including `json.JSONDecodeError`, `DuplicateKeyError`,
    `UnicodeDecodeError`) for anything that is not such JSON, nests too deeply for the
    parser, or holds a string that UTF-8 or PostgreSQL cannot carry.
    """
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    try:
        document = _decoder.decode(text)
    except RecursionError:
        # A few kilobytes of "[[[[" exhaust the parser's stack: refuse, never crash.
        raise ValueError(NESTED_TOO_DEEPLY) from None
    if _UNSTORABLE_ESCAPE.search(text):
        problem = _unstorable_string(document)
        if problem is not None:
            raise ValueError(problem)
    return document


# Decimals from the number's text as written: exact, as with the standard library above.
_internal_decoder = msgspec.json.Decoder(float_hook=Decimal)
_UNSTORABLE_ESCAPE_BYTES = re.compile(rb"\\u(?:[dD][89a-fA-F]|0000)")


def loads_internal(data: bytes | str) -> Any:
    """Parse JSON written by baocao itself; floats become exact `Decimal`.

    Refuses with `ValueError` everything `loads` refuses, but for a key named twice: the
    writers (orjson, PostgreSQL's jsonb) never do that, so the check is left out and, in a
    message forged on an internal topic, the last value wins before the contract is checked.
    """
    try:
        document = _internal_decoder.decode(data)
    except RecursionError:
        raise ValueError(NESTED_TOO_DEEPLY) from None
    found = (
        _UNSTORABLE_ESCAPE_BYTES.search(data)
        if isinstance(data, bytes)
        else _UNSTORABLE_ESCAPE.search(data)
    )
    if found:
        problem = _unstorable_string(document)
        if problem is not None:
            raise ValueError(problem)
    return document


def _unstorable_string(document: Any) -> str | None:
    """Why a string of `document` cannot travel on: "\\ud800" alone is JSON syntax but no
    character (UTF-8 cannot carry it), and PostgreSQL text cannot hold "\\u0000"."""
    pending = [document]
    while pending:
        value = pending.pop()
        if isinstance(value, dict):
            pending += value.keys()
            pending += value.values()
        elif isinstance(value, list):
            pending += value
        elif isinstance(value, str):
            if "\x00" in value:
                return NUL_IN_STRING
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return LONE_SURROGATE
    return None


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise TypeError(f"{value} cannot be written as a JSON number")
        text = str(value)
        if "E" not in text:
            # `str` writes most figures in fixed-point already, the same text as `format`
            # below at a quarter of its cost (no format spec to parse).
            return orjson.Fragment(text)
        # Fixed-point text: "1E+3" is valid JSON too, but readers expect 1000. A number
        # far from 1 keeps its exponent: 1E+100000000 (12 bytes as sent) would otherwise
        # become 100 MB; exact either way.
        if -FIXED_POINT_SPAN < value.adjusted() < FIXED_POINT_SPAN:
            return orjson.Fragment(format(value, "f"))
        return orjson.Fragment(text)
    if isinstance(value, tuple | frozenset | set):
        return list(value)
    if isinstance(value, BaseModel):  # nested in `dumps_fields`
        return value.model_dump(mode="python", by_alias=True)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def dumps(value: Any) -> bytes:
    """Write JSON (UTF-8, no spaces); `Decimal` as an exact JSON number."""
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="python", by_alias=True)
    return orjson.dumps(value, default=_default, option=orjson.OPT_NON_STR_KEYS)


_REQUIRED: Final = object()


@functools.cache
def _wire_fields(model: type[BaseModel]) -> tuple[tuple[str, str, Any], ...]:
    """(name, name on the wire, default or _REQUIRED) of each field, in the model's order."""
    return tuple(
        (
            name,
            info.alias or name,
            _REQUIRED if info.is_required() else info.get_default(call_default_factory=True),
        )
        for name, info in model.model_fields.items()
    )


def dumps_fields(model: type[BaseModel], **fields: Any) -> bytes:
    """What `dumps(model.model_construct(**fields))` writes, without building the model.

    For a message made of values validated already, on a stage's hot path: building a
    pydantic model and dumping it again costs twice what the JSON does. Every field of
    `model` without a default must be given, and no other.
    """
    document: dict[str, Any] = {}
    used = 0
    for name, wire, default in _wire_fields(model):
        value = fields.get(name, _REQUIRED)
        if value is _REQUIRED:
            if default is _REQUIRED:
                raise TypeError(f"{model.__name__}: field {name!r} is required")
            value = default
        else:
            used += 1
        document[wire] = value
    if used < len(fields):
        unknown = fields.keys() - {name for name, _, _ in _wire_fields(model)}
        raise TypeError(f"{model.__name__}: no field {', '.join(sorted(unknown))}")
    return orjson.dumps(document, default=_default, option=orjson.OPT_NON_STR_KEYS)


def canonical(value: Any) -> bytes:
    """Canonical JSON: what signatures and digests cover.

    Keys sorted (by code point) at every level, no spaces, UTF-8 with non-ASCII characters
    as themselves (only `"`, `\\` and control characters escaped, as Python's
    `json.dumps(..., ensure_ascii=False)` does). Numbers are written from their exact
    value, not from the text they were read from: an integer as its digits, however long;
    a decimal in fixed-point notation with the digits of its coefficient (`480.50` stays
    `480.50`, `4.805E+2` becomes `480.5`, `5E-5` becomes `0.00005`, `1.0E+3` becomes
    `1000`), and with an exponent only 100 powers of ten or more from 1 (beyond any
    report's limits).
    """
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="python", by_alias=True, exclude_none=False)
    options = orjson.OPT_NON_STR_KEYS | orjson.OPT_SORT_KEYS
    try:
        return orjson.dumps(value, default=_default, option=options)
    except orjson.JSONEncodeError:
        # orjson refuses integers beyond 64 bits, which a sender may write (and the
        # standard library reads): written again with those as their digits.
        return orjson.dumps(_wide_integers(value), default=_default, option=options)


_INT_RANGE = range(-(2**63), 2**64)


def _wide_integers(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _wide_integers(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_wide_integers(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool) and value not in _INT_RANGE:
        return orjson.Fragment(str(value))
    return value


def decode(model: type[M], data: bytes | str) -> M:
    """Parse and validate one message; raises `ValueError` or `pydantic.ValidationError`."""
    return model.model_validate(loads(data))


def decode_internal(model: type[M], data: bytes | str) -> M:
    """`decode` for a message baocao wrote itself (see `loads_internal`)."""
    return model.model_validate(loads_internal(data))


__all__ = [
    "DuplicateKeyError",
    "ValidationError",
    "canonical",
    "decode",
    "decode_internal",
    "dumps",
    "dumps_fields",
    "loads",
    "loads_internal",
]
