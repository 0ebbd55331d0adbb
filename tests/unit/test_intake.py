"""`read_report` turns bytes into a Report or a precise account of why they are not one.

Proves, with one table of inputs: a valid report is read; what is not JSON, not UTF-8 or
not an object is one E100 at `(body)`; every missing field is an E100 at its own path; an
unknown field and a value of the wrong kind are each exactly one E100 at their path; a
body over the limit is E150, with the identifiers still gleaned when it parses. An
`Unreadable` answers with an outcome only when it carries a usable report_id, and every
issue it holds has a message in both languages: what is not JSON is told what and where in
Vietnamese too (never the parser's English alone), and an error no table foresaw gets a
Vietnamese phrase with the technical detail in parentheses.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any, NamedTuple

import pytest
from pydantic import BaseModel, Field, ValidationError

from services.submission.intake import Unreadable, contract_issues, field_path, read_report
from shared.contracts import Report, Status
from shared.messages import json_reasons
from tests import factories

pytestmark = pytest.mark.unit

LIMIT = 64 * 1024
UNFILLED = re.compile(r"\{[a-z_]+\}")  # a template placeholder left in a message
REPORT_FIELDS = (
    "report_id",
    "regime",
    "period",
    "unit",
    "revision",
    "values",
    "source",
    "prepared_at",
)


def document(**changes: Any) -> dict[str, Any]:
    fields: dict[str, Any] = json.loads(factories.report_json(report_id="r-1"))
    fields.update(changes)
    return fields


def without(*names: str) -> bytes:
    fields = document()
    for name in names:
        del fields[name]
    return json.dumps(fields).encode()


def body(**changes: Any) -> bytes:
    return json.dumps(document(**changes)).encode()


class Case(NamedTuple):
    raw: bytes
    issues: Sequence[tuple[str, str | None]]  # (code, field), in order
    report_id: str | None = None
    limit: int = LIMIT


GLEANED = {"report_id": "r-1", "regime": "KSTT-TTHC", "period": "2026-Q1", "unit": "TB.DH.N01"}

CASES = {
    "not JSON": Case(b"this is not json", [("E100", "(body)")]),
    "empty body": Case(b"", [("E100", "(body)")]),
    "not UTF-8": Case(b'{"report_id": "\xff"}', [("E100", "(body)")]),
    "a duplicate key": Case(b'{"report_id": "a", "report_id": "b"}', [("E100", "(body)")]),
    "NaN": Case(b'{"revision": NaN}', [("E100", "(body)")]),
    "a JSON array": Case(b"[1, 2, 3]", [("E100", "(body)")]),
    "a JSON string": Case(b'"report"', [("E100", "(body)")]),
    "an empty object": Case(b"{}", [("E100", "schema")] + [("E100", f) for f in REPORT_FIELDS]),
    "two missing fields": Case(
        without("regime", "values"), [("E100", "regime"), ("E100", "values")], "r-1"
    ),
    "missing report_id": Case(without("report_id"), [("E100", "report_id")]),
    "an unknown field": Case(body(priority="high"), [("E100", "priority")], "r-1"),
    "a naive prepared_at": Case(
        body(prepared_at="2026-03-16T10:00:00"), [("E100", "prepared_at")], "r-1"
    ),
    "revision 0": Case(body(revision=0), [("E100", "revision")], "r-1"),
    "a bad report_id": Case(body(report_id="?"), [("E100", "report_id")]),
    "a boolean value": Case(
        body(values={"RECEIVED_ONLINE": True}), [("E100", "values.RECEIVED_ONLINE")], "r-1"
    ),
    "a null value": Case(
        body(values={"RECEIVED_ONLINE": None}), [("E100", "values.RECEIVED_ONLINE")], "r-1"
    ),
    "a list value": Case(
        body(values={"RECEIVED_ONLINE": [120]}), [("E100", "values.RECEIVED_ONLINE")], "r-1"
    ),
    "an object value": Case(
        body(values={"RECEIVED_ONLINE": {"n": 1}}), [("E100", "values.RECEIVED_ONLINE")], "r-1"
    ),
    "too large, parseable": Case(body(note="x" * 2000), [("E150", None)], "r-1", limit=1024),
    "too large, not parseable": Case(b"x" * 2000, [("E150", None)], limit=1024),
}


@pytest.mark.parametrize("name", list(CASES))
def test_what_is_not_a_report_is_described_issue_by_issue(name: str) -> None:
    case = CASES[name]
    result = read_report(case.raw, case.limit)
    assert isinstance(result, Unreadable)
    assert [(i.code, i.field) for i in result.issues] == list(case.issues)
    assert result.code == case.issues[0][0]
    assert result.report_id == case.report_id


@pytest.mark.parametrize("name", list(CASES))
def test_every_issue_has_a_message_in_vietnamese_and_in_english(name: str) -> None:
    case = CASES[name]
    result = read_report(case.raw, case.limit)
    assert isinstance(result, Unreadable)
    for issue in result.issues:
        assert issue.message_vi.strip()
        assert issue.message_en.strip()
        assert issue.message_vi != issue.message_en or issue.code == "E120"
        assert not UNFILLED.search(issue.message_vi + issue.message_en)


@pytest.mark.parametrize("name", list(CASES))
def test_an_outcome_is_given_only_when_a_usable_report_id_was_read(name: str) -> None:
    case = CASES[name]
    result = read_report(case.raw, case.limit)
    assert isinstance(result, Unreadable)
    outcome = result.outcome()
    if case.report_id is None:
        assert outcome is None
    else:
        assert outcome is not None
        assert outcome.report_id == case.report_id
        assert outcome.status is Status.REJECTED
        assert outcome.issues == result.issues


def test_a_valid_report_is_read_exactly() -> None:
    expected = factories.report(report_id="r-1")
    result = read_report(factories.report_json(report_id="r-1"), LIMIT)
    assert isinstance(result, Report)
    assert result == expected


def test_a_report_exactly_at_the_limit_is_read() -> None:
    raw = factories.report_json()
    assert isinstance(read_report(raw, len(raw)), Report)
    refused = read_report(raw, len(raw) - 1)
    assert isinstance(refused, Unreadable)
    assert refused.code == "E150"


def test_a_value_of_the_wrong_kind_is_one_issue_saying_what_a_value_may_be() -> None:
    result = read_report(body(values={"RECEIVED_ONLINE": True}), LIMIT)
    assert isinstance(result, Unreadable)
    (issue,) = result.issues
    assert issue.message_en == (
        "The report does not match the contract at values.RECEIVED_ONLINE: "
        "must be a JSON number or a string."
    )
    assert "phải là số hoặc chuỗi ký tự" in issue.message_vi


def test_a_missing_field_says_so_in_vietnamese() -> None:
    result = read_report(without("unit"), LIMIT)
    assert isinstance(result, Unreadable)
    (issue,) = result.issues
    assert "thiếu trường bắt buộc" in issue.message_vi
    assert "unit" in issue.message_vi


def test_the_identifiers_of_a_refused_report_are_gleaned_for_the_answer() -> None:
    result = read_report(body(priority="high"), LIMIT)
    assert isinstance(result, Unreadable)
    assert (result.report_id, result.regime, result.period, result.unit) == tuple(GLEANED.values())
    assert result.revision == 1
    outcome = result.outcome()
    assert outcome is not None
    assert (outcome.regime, outcome.period, outcome.unit, outcome.revision) == (
        "KSTT-TTHC",
        "2026-Q1",
        "TB.DH.N01",
        1,
    )


@pytest.mark.parametrize(
    ("changes", "gleaned"),
    [
        ({"revision": True}, {"revision": None}),
        ({"revision": "2"}, {"revision": None}),
        ({"revision": 10**20}, {"revision": None}),
        ({"unit": "U" * 65}, {"unit": None}),
        ({"regime": ""}, {"regime": None}),
        ({"period": 2026}, {"period": None}),
    ],
)
def test_identifiers_of_the_wrong_shape_are_not_gleaned(
    changes: dict[str, Any], gleaned: dict[str, Any]
) -> None:
    result = read_report(body(priority="high", **changes), LIMIT)
    assert isinstance(result, Unreadable)
    for name, value in gleaned.items():
        assert getattr(result, name) == value


@pytest.mark.parametrize(
    ("loc", "path"),
    [
        ((), "(body)"),
        (("unit",), "unit"),
        (("values", "RECEIVED_ONLINE"), "values.RECEIVED_ONLINE"),
        (("signature", "alg"), "signature.alg"),
        (("list", 0, "x"), "list[0].x"),
    ],
)
def test_a_field_path_is_written_as_a_reader_would(loc: tuple[int | str, ...], path: str) -> None:
    assert field_path(loc) == path


def test_the_english_reason_quotes_the_report_id_pattern_as_it_is() -> None:
    result = read_report(body(report_id="?"), LIMIT)
    assert isinstance(result, Unreadable)
    assert "[A-Za-z0-9]" in result.issues[0].message_en


PREFIX_VI = "Nội dung gửi không phải là JSON hợp lệ mã hóa UTF-8: "


@pytest.mark.parametrize(
    ("raw", "reason_vi"),
    [
        (b"", "thiếu một giá trị (số, chuỗi, đối tượng, mảng, true, false hoặc null) (tại dòng 1,"
              " cột 1)"),
        (b'{"a" 1}', "thiếu dấu hai chấm (:) sau tên trường (tại dòng 1, cột 6)"),
        (b'{\n  "a": 1\n  "b": 2\n}', "thiếu dấu phẩy (,) giữa hai phần tử (tại dòng 3, cột 3)"),
        (b"{'a': 1}", "cần tên trường đặt trong dấu nháy kép (tại dòng 1, cột 2)"),
        (b'{"a": "b', "chuỗi ký tự bắt đầu tại đây không có dấu nháy kép đóng (tại dòng 1,"
                     " cột 7)"),
        (b'{"a": "\x01"}', "chuỗi ký tự chứa ký tự điều khiển không được phép (tại dòng 1, cột 8)"),
        (b'{"a": "\\q"}', "ký tự thoát (\\) không hợp lệ (tại dòng 1, cột 8)"),
        (b'{"a": "\\u12"}', "mã thoát \\uXXXX không hợp lệ (tại dòng 1, cột 9)"),
        (b"{} []", "còn dữ liệu thừa sau giá trị JSON (tại dòng 1, cột 4)"),
        (b'{"unit": "a", "unit": "b"}', "trường 'unit' xuất hiện hai lần trong cùng một đối tượng"),
        (b'{"unit": "\xff"}', "byte tại vị trí 10 không phải mã UTF-8 hợp lệ"),
        (b'{"revision": NaN}', "NaN không phải là số trong JSON"),
        (b'{"revision": -Infinity}', "-Infinity không phải là số trong JSON"),
        (b"[" * 50_000, "JSON lồng nhau quá sâu"),
        (b'{"unit": "\\u0000"}', "một chuỗi ký tự chứa ký tự NUL (\\u0000)"),
        (b'{"unit": "\\ud800"}', "một chuỗi ký tự chứa mã thoát đơn lẻ trong khoảng"
                                 " \\ud800-\\udfff, không tạo thành ký tự nào"),
    ],
)  # fmt: skip
def test_a_body_that_is_not_json_is_told_what_and_where_in_vietnamese(
    raw: bytes, reason_vi: str
) -> None:
    result = read_report(raw, LIMIT)
    assert isinstance(result, Unreadable)
    (issue,) = result.issues
    assert (issue.code, issue.field) == ("E100", "(body)")
    assert issue.message_vi == f"{PREFIX_VI}{reason_vi}."
    assert issue.message_en.startswith("The body is not valid UTF-8 JSON: ")


def test_an_unforeseen_parser_error_is_told_in_vietnamese_with_its_detail() -> None:
    reason_vi, reason_en = json_reasons(ValueError("something new"))
    assert (reason_vi, reason_en) == ("không đọc được nội dung (something new)", "something new")
    error = json.JSONDecodeError("Something new", "{\n x", 3)
    assert json_reasons(error)[0] == (
        "không đọc được nội dung tại dòng 2, cột 2 (Something new: line 2 column 2 (char 3))"
    )


class _Even(BaseModel):
    n: int = Field(multiple_of=2)


def test_an_unlisted_contract_error_is_told_in_vietnamese_with_its_detail() -> None:
    with pytest.raises(ValidationError) as caught:
        _Even.model_validate({"n": 3})
    (issue,) = contract_issues(caught.value)
    assert issue.message_vi == (
        "Báo cáo không đúng hợp đồng dữ liệu tại trường n: giá trị không hợp lệ (Input should"
        " be a multiple of 2)."
    )
