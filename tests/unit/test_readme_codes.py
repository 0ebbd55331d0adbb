"""The README's table of issue codes shows what the system really emits.

Proves: for every code E100..E150, the example issue object in the README (the JSON
block under "Issue codes") is exactly the issue the system gives today for the example
input the table names: E100 and E150 from submission's reading of the bytes, E140 from its
check of the credential, E141 and E142 from its check of the sender (a source registered
for TB.DH.N01; KSTT-TTHC to be signed), the others from validation on the shipped
catalog, with the clock at 2026-03-16 10:00 in Vietnam. A change of wording in
`shared/messages.py` must be carried to the README.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest

from services.submission.access import Access, Denied
from services.submission.intake import Unreadable, read_report
from services.submission.senders import Source, admit
from services.validation.rules import Facts, RuleBook, validate
from shared import codec
from shared.catalog import load_catalog
from shared.contracts import Issue, Report
from shared.settings import REPO_ROOT
from tests import factories

pytestmark = pytest.mark.unit

README = REPO_ROOT / "README.md"
NOW = datetime.fromisoformat("2026-03-16T10:00:00+07:00")
LIMIT = 512 * 1024
BOOK = RuleBook(load_catalog(REPO_ROOT / "catalog"))


def kstt(**changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = dict(factories.KSTT_VALUES)
    for code, value in changes.items():
        if value is None:
            del values[code]
        else:
            values[code] = value
    return values


def judged(facts: Facts | None = None, **overrides: Any) -> Issue:
    verdict = validate(factories.report(**overrides), NOW, BOOK, facts or Facts())
    (found,) = verdict.issues
    return found


def unreadable(raw: bytes) -> Issue:
    result = read_report(raw, LIMIT)
    assert isinstance(result, Unreadable)
    (found,) = result.issues
    return found


def not_authenticated() -> Issue:
    async def check() -> Denied | Source:
        # No credential at all: refused before the database is asked anything.
        return await Access(True, "1/second", "1/second").source(None, None, "127.0.0.1")  # type: ignore[arg-type]

    denied = asyncio.run(check())
    assert isinstance(denied, Denied)
    assert denied.issue is not None
    return denied.issue


def refused_sender(signed_regimes: frozenset[str], **overrides: Any) -> Issue:
    document = codec.loads(factories.report_json(**overrides))
    source = Source("motcua-test", frozenset({"TB.DH.N01"}), "hash")
    (found,) = admit(source, Report.model_validate(document), document, signed_regimes)
    return found


def without_unit() -> bytes:
    document = json.loads(factories.report_json())
    del document["unit"]
    return json.dumps(document).encode()


EXAMPLES: dict[str, Callable[[], Issue]] = {
    "E100": lambda: unreadable(without_unit()),
    "E101": lambda: judged(regime="KSTT-XYZ"),
    "E102": lambda: judged(unit="TB.DH.N99"),
    "E103": lambda: judged(unit="TB.VP"),
    "E104": lambda: judged(period="2026-M03"),
    "E105": lambda: judged(period="2026-Q3"),
    "E106": lambda: judged(period="2025-Q4"),
    "E107": lambda: judged(
        regime="KTXH-M", period="2020-M11", unit="TB.DH", values=factories.KTXH_VALUES
    ),
    "E110": lambda: judged(values=kstt(BUDGET_REVENUE=Decimal("12.5"))),
    "E111": lambda: judged(values=kstt(RECEIVED_DIRECT=None)),
    "E112": lambda: judged(values=kstt(RECEIVED_ONLINE=Decimal("120.5"))),
    "E113": lambda: judged(values=kstt(PROCESSING_DAYS_TOTAL=Decimal("-0.5"))),
    "E114": lambda: judged(values=kstt(ON_TIME_RATE=Decimal("91.67"))),
    "E120": lambda: judged(values=kstt(CARRIED_OVER=Decimal(6))),
    "E130": lambda: judged(Facts(latest_accepted_revision=2), revision=1),
    "E140": not_authenticated,
    "E141": lambda: refused_sender(frozenset(), unit="TB.DH.N02"),
    "E142": lambda: refused_sender(frozenset({"KSTT-TTHC"})),
    "E150": lambda: unreadable(b"x" * 600_000),
}


def readme_examples() -> dict[str, dict[str, Any]]:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("### Issue codes") :]
    block = re.search(r"```json\n(.*?)\n```", section, re.DOTALL)
    assert block is not None, "the Issue codes section has no JSON block of examples"
    found: dict[str, dict[str, Any]] = {}
    for line in block.group(1).splitlines():
        issue = json.loads(line)
        found[issue["code"]] = issue
    return found


def test_the_readme_has_one_example_per_code_the_system_produces() -> None:
    assert list(readme_examples()) == list(EXAMPLES)


@pytest.mark.parametrize("code", list(EXAMPLES))
def test_each_readme_example_is_the_issue_the_system_emits(code: str) -> None:
    emitted = EXAMPLES[code]()
    assert emitted.code == code
    assert readme_examples()[code] == emitted.model_dump(mode="json")
