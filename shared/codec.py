"""JSON on the wire, with exact decimals both ways.

pydantic parses JSON numbers into `Decimal` through a binary float (1234567890123.4567891234
comes back as ...4568), and writes `Decimal` as a string. Budget figures must add up to the
last digit, so messages are read with the standard library's parser (`parse_float=Decimal`)
and written with orjson, embedding each decimal as a raw JSON number.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from decimal import Decimal
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


class DuplicateKeyError(ValueError):
    """A JSON object names the same key twice: which value was meant is unknowable."""

    def __init__(self, key: str) -> None:
        super().__init__(f"duplicate key {key!r}")
        self.key = key


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number in JSON")


def _unique_pairs(pairs: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise DuplicateKeyError(key)
        result[key] = value
    return result


_decoder = json.JSONDecoder(
    parse_float=Decimal,
    parse_constant=_refuse_constant,
    object_pairs_hook=_unique_pairs,
)


def loads(data: bytes | str) -> Any:
    """Parse JSON; floats become exact `Decimal`; NaN, Infinity and duplicate keys are errors.

    Raises `ValueError` (including `json.JSONDecodeError`, `DuplicateKeyError`,
    `UnicodeDecodeError`) for anything that is not such JSON.
    """
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    return _decoder.decode(text)


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise TypeError(f"{value} cannot be written as a JSON number")
        # Fixed-point text: "1E+3" is valid JSON too, but readers expect 1000.
        return orjson.Fragment(format(value, "f"))
    if isinstance(value, tuple | frozenset | set):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def dumps(value: Any) -> bytes:
    """Write JSON (UTF-8, no spaces); `Decimal` as an exact JSON number."""
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="python", by_alias=True)
    return orjson.dumps(value, default=_default, option=orjson.OPT_NON_STR_KEYS)


def canonical(value: Any) -> bytes:
    """Canonical JSON: sorted keys, no spaces, UTF-8; what signatures and digests cover."""
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="python", by_alias=True, exclude_none=False)
    options = orjson.OPT_NON_STR_KEYS | orjson.OPT_SORT_KEYS
    return orjson.dumps(value, default=_default, option=options)


def decode(model: type[M], data: bytes | str) -> M:
    """Parse and validate one message; raises `ValueError` or `pydantic.ValidationError`."""
    return model.model_validate(loads(data))


__all__ = ["DuplicateKeyError", "ValidationError", "canonical", "decode", "dumps", "loads"]
