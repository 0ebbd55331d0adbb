"""Opening a lock exception: what a request must name, and the operators' command line.

Proves, on the shipped catalog: a request naming a regime, a period of its frequency with
a version in force, a unit that reports it then, and an expiry after the opening gives
the `LockException` to record, stamped with the time of opening; each way a request can
be wrong gives its code on its field, all of them together; and `python -m
services.submission lock-exception open|list` sends what the operator typed to the
operator API, prints what was recorded or every issue (exit 1), and says so when the
service cannot be reached (exit 2).
"""

from __future__ import annotations

import io
import json
from datetime import datetime
from typing import Any

import httpx
import pytest

from services.submission import cli
from services.submission.lock_exceptions import LockExceptionRequest, open_exception
from shared.catalog import load_catalog
from shared.contracts import LockException
from shared.settings import REPO_ROOT

pytestmark = pytest.mark.unit

CATALOG = load_catalog(REPO_ROOT / "catalog")
NOW = datetime.fromisoformat("2026-05-02T09:00:00+07:00")
REQUEST: dict[str, Any] = {
    "regime": "KSTT-TTHC",
    "period": "2026-Q1",
    "unit": "TB.DH.N01",
    "expires_at": "2026-05-03T17:00:00+07:00",
    "reason": "Đơn vị bị mất điện kéo dài",
    "opened_by": "operator-1",
}


def opened(**changes: Any) -> LockException | tuple[Any, ...]:
    return open_exception(LockExceptionRequest.model_validate({**REQUEST, **changes}), CATALOG, NOW)


def test_a_request_naming_a_real_reporter_and_period_is_recorded_as_opened_now() -> None:
    exception = opened()
    assert isinstance(exception, LockException)
    assert (exception.regime, exception.period, exception.unit) == (
        "KSTT-TTHC",
        "2026-Q1",
        "TB.DH.N01",
    )
    assert exception.opened_at == NOW
    assert exception.opened_by == "operator-1"
    assert exception.reason == REQUEST["reason"]


@pytest.mark.parametrize(
    ("changes", "issues"),
    [
        ({"regime": "KSTT-XYZ"}, [("E101", "regime")]),
        ({"unit": "TB.NOWHERE"}, [("E102", "unit")]),
        ({"period": "2026-Q5"}, [("E104", "period")]),
        ({"period": "2026-M03"}, [("E104", "period")]),
        ({"regime": "KTXH-M", "period": "2020-M11", "unit": "TB.DH"}, [("E107", "period")]),
        ({"unit": "TB.VP"}, [("E103", "unit")]),
        ({"unit": "TB.DH.X01"}, [("E103", "unit")]),  # a commune of before July 2025
        ({"expires_at": "2026-05-02T09:00:00+07:00"}, [("E100", "expires_at")]),
        (
            {"regime": "NOPE", "unit": "TB.NOWHERE", "expires_at": "2026-01-01T00:00:00+07:00"},
            [("E101", "regime"), ("E102", "unit"), ("E100", "expires_at")],
        ),
    ],
)
def test_a_request_that_names_nothing_real_is_refused_with_every_issue(
    changes: dict[str, Any], issues: list[tuple[str, str]]
) -> None:
    refused = opened(**changes)
    assert isinstance(refused, tuple)
    assert [(i.code, i.field) for i in refused] == issues
    for found in refused:
        assert found.message_vi.strip()
        assert found.message_en.strip()


# --- the command line ------------------------------------------------------------------

RECORDED = {
    "id": 7,
    **{k: v for k, v in REQUEST.items() if k != "expires_at"},
    "expires_at": "2026-05-03T17:00:00+07:00",
    "opened_at": "2026-05-02T09:00:00+07:00",
}


class Operators:
    """The operator API as the command line meets it, recording what it was asked."""

    def __init__(self, answer: httpx.Response) -> None:
        self.answer = answer
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.answer


def run(argv: list[str], api: Any) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = cli.main(argv, transport=httpx.MockTransport(api), out=out, err=err)
    return status, out.getvalue(), err.getvalue()


OPEN = [
    "lock-exception",
    "open",
    "--regime=KSTT-TTHC",
    "--period=2026-Q1",
    "--unit=TB.DH.N01",
    "--expires-at=2026-05-03T17:00:00+07:00",
    "--reason=Đơn vị bị mất điện kéo dài",
    "--opened-by=operator-1",
    "--url=http://submission",
]


def test_open_sends_the_request_and_prints_what_was_recorded() -> None:
    api = Operators(httpx.Response(201, json=RECORDED))
    status, out, err = run(OPEN, api)
    (request,) = api.requests
    assert (request.method, str(request.url)) == (
        "POST",
        "http://submission/v1/admin/lock-exceptions",
    )
    assert json.loads(request.content) == REQUEST
    assert (status, err) == (0, "")
    assert json.loads(out) == RECORDED


def test_a_refused_request_prints_every_issue_in_both_languages() -> None:
    issues = [
        {
            "code": "E102",
            "field": "unit",
            "message_en": "Reporting unit TB.X is not in the province's list of units.",
            "message_vi": "Đơn vị báo cáo TB.X không có trong danh mục đơn vị của tỉnh.",
        }
    ]
    status, out, err = run(OPEN, Operators(httpx.Response(422, json={"issues": issues})))
    assert (status, out) == (1, "")
    assert "E102 unit: Reporting unit TB.X is not in the province's list of units." in err
    assert "Đơn vị báo cáo TB.X không có trong danh mục" in err


def test_list_asks_with_the_filters_given_and_prints_a_table() -> None:
    api = Operators(httpx.Response(200, json=[RECORDED]))
    status, out, _ = run(
        ["lock-exception", "list", "--unit=TB.DH.N01", "--url=http://submission"], api
    )
    assert status == 0
    assert api.requests[0].url.params == httpx.QueryParams({"unit": "TB.DH.N01"})
    header, row = out.splitlines()
    assert header.split() == list(cli.COLUMNS)
    assert row.split()[:4] == ["7", "KSTT-TTHC", "2026-Q1", "TB.DH.N01"]


def test_an_unreachable_service_is_exit_status_2() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    status, _, err = run(["lock-exception", "list", "--url=http://submission"], refuse)
    assert status == 2
    assert "cannot reach submission at http://submission" in err
