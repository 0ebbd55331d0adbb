"""Random inputs for a sender's channels: bytes, JSON documents and reports gone wrong.

Everything comes from one `random.Random`, so a seed names a whole run. Mutated reports
start from a valid report and change one to three things, at the level of the document
(a field dropped, retyped, or out of range) or of its text (cut short, a key repeated,
nested too deep, an invalid byte), the ways a local system's bug would.
"""

from __future__ import annotations

import json
import string
from collections.abc import Callable
from random import Random
from typing import Any

Document = dict[str, Any]

WEIRD_TEXT = (
    "",
    " ",
    "\u0000",
    "Thái Bình",
    "🙂",
    "\ud7ff",
    "\ud800",
    "x" * 300,
    "2026-Q1 ",
    "NaN",
    "null",
    "<script>",
    "' OR 1=1 --",
    "\\",
)
WEIRD_NUMBERS = (
    "0",
    "-0",
    "-1",
    "0.5",
    "1e2",
    "1E+400",
    "1e999999999",
    "-1e-999999999",
    "123456789012345678901234567890",
    "0.0000000000000000000001",
    "9" * 400,
    "1.000000000000000000000000000000001",
)
PERIODS = ("2026-Q1", "2026-M03", "2026-S1", "2026", "2026-Q5", "2026-M13", "1999-Q1", "2101")
TOP_FIELDS = (
    "schema",
    "report_id",
    "regime",
    "period",
    "unit",
    "revision",
    "values",
    "source",
    "prepared_at",
    "note",
    "signature",
)


def random_bytes(rng: Random) -> bytes:
    return rng.randbytes(rng.choice((0, 1, 2, 8, 40, 200, 1000)))


def random_text(rng: Random) -> str:
    if rng.random() < 0.5:
        return rng.choice(WEIRD_TEXT)
    alphabet = string.printable + "ăâđêôơưÁÀẢÃẠ"
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))


def random_json(rng: Random, depth: int = 0) -> Any:
    kinds = ["null", "bool", "int", "number", "text"]
    if depth < 4:
        kinds += ["list", "object"]
    kind = rng.choice(kinds)
    if kind == "null":
        return None
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "int":
        return rng.choice((0, 1, -1, 2**31, 2**63, 10**30, rng.randint(-1000, 1000)))
    if kind == "number":
        return RawNumber(rng.choice(WEIRD_NUMBERS))
    if kind == "text":
        return random_text(rng)
    if kind == "list":
        return [random_json(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {random_text(rng): random_json(rng, depth + 1) for _ in range(rng.randint(0, 4))}


class RawNumber(str):
    """A JSON number written exactly as given (json.dumps would round it through a float)."""


def to_json(value: Any) -> str:
    if isinstance(value, RawNumber):
        return str(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{to_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(to_json(v) for v in value) + "]"
    return json.dumps(value)


# --- mutations of a valid report ---------------------------------------------------------


def _drop_field(rng: Random, doc: Document) -> None:
    doc.pop(rng.choice(TOP_FIELDS), None)


def _retype_field(rng: Random, doc: Document) -> None:
    doc[rng.choice(TOP_FIELDS)] = random_json(rng)


def _add_field(rng: Random, doc: Document) -> None:
    doc[random_text(rng) or "extra"] = random_json(rng)


def _retype_value(rng: Random, doc: Document) -> None:
    values = doc.get("values")
    if isinstance(values, dict) and values:
        values[rng.choice(sorted(values))] = random_json(rng)


def _odd_number(rng: Random, doc: Document) -> None:
    values = doc.get("values")
    if isinstance(values, dict) and values:
        values[rng.choice(sorted(values))] = RawNumber(rng.choice(WEIRD_NUMBERS))


def _unknown_indicator(rng: Random, doc: Document) -> None:
    values = doc.get("values")
    if isinstance(values, dict):
        values[rng.choice(("X", "ON_TIME_RATE", "BUDGET_REVENUE", "", "a b"))] = 1


def _drop_indicator(rng: Random, doc: Document) -> None:
    values = doc.get("values")
    if isinstance(values, dict) and values:
        del values[rng.choice(sorted(values))]


def _odd_revision(rng: Random, doc: Document) -> None:
    doc["revision"] = rng.choice((0, -1, 2**31, 10**30, RawNumber("1.5"), "2", True, None))


def _odd_period(rng: Random, doc: Document) -> None:
    doc["period"] = rng.choice((*PERIODS, random_text(rng)))


def _odd_reference(rng: Random, doc: Document) -> None:
    name = rng.choice(("regime", "unit", "report_id", "source"))
    doc[name] = rng.choice(("KTXH-M", "NVCP-S", "TB", "TB.VP", "TB.DH.X01", random_text(rng)))


def _odd_time(rng: Random, doc: Document) -> None:
    doc["prepared_at"] = rng.choice(
        ("2026-03-16T10:00:00", "2026-02-30T10:00:00+07:00", "yesterday", 1773630000)
    )


DOCUMENT_MUTATIONS: tuple[Callable[[Random, Document], None], ...] = (
    _drop_field,
    _retype_field,
    _add_field,
    _retype_value,
    _odd_number,
    _unknown_indicator,
    _drop_indicator,
    _odd_revision,
    _odd_period,
    _odd_reference,
    _odd_time,
)


def _spoil_text(rng: Random, text: bytes) -> bytes:
    choice = rng.randrange(6)
    if choice == 0:
        return text[: rng.randrange(max(len(text), 1))]
    if choice == 1:
        return text.replace(b'"unit":', b'"unit":"TB.DH.N02","unit":', 1)
    if choice == 2:
        return text.replace(b'"note":null', b'"note":' + b"[" * 5000 + b"]" * 5000, 1)
    if choice == 3:
        at = rng.randrange(max(len(text), 1))
        return text[:at] + rng.choice((b"\xff", b"\xc3", b"\x00", b"NaN")) + text[at:]
    if choice == 4:
        return b"\xef\xbb\xbf" + text
    return text.replace(b"{", b"[", 1)


def mutated_report(rng: Random, base: Document) -> bytes:
    """`base` with one to three things gone wrong, as the bytes a sender would send."""
    doc = json.loads(json.dumps(base))
    doc.setdefault("note", None)
    for _ in range(rng.randint(1, 3)):
        rng.choice(DOCUMENT_MUTATIONS)(rng, doc)
    text = to_json(doc).encode()
    return _spoil_text(rng, text) if rng.random() < 0.25 else text


def any_input(rng: Random, base: Document) -> bytes:
    """Random bytes, a random JSON document, or a mutated report, in about equal shares."""
    kind = rng.randrange(3)
    if kind == 0:
        return random_bytes(rng)
    if kind == 1:
        return to_json(random_json(rng)).encode()
    return mutated_report(rng, base)
