"""Every message a reporting unit can read, in Vietnamese and English, in one table.

Reporting units (đơn vị báo cáo) read these in their local systems, and operators in the
answers of the operator API: each says what is wrong, where, and why, in both languages,
so it can be reviewed here in one place.
Templates take named parameters; the codes are the stable contract of DESIGN §3.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from shared import codec
from shared.contracts import Issue, Severity
from shared.periods import FIRST_YEAR, LAST_YEAR

# code → (Vietnamese, English). A variant (`E113.max`) is a wording of its code. `{field}`
# and the other names are filled by `issue()`; every message says what is wrong, where
# (the indicator, period or field), and why (the rule, the limit, the date that decides).
MESSAGES: dict[str, tuple[str, str]] = {
    "E100": (
        "Báo cáo không đúng hợp đồng dữ liệu tại trường {field}: {reason_vi}.",
        "The report does not match the contract at {field}: {reason_en}.",
    ),
    "E100.json": (
        "Nội dung gửi không phải là JSON hợp lệ mã hóa UTF-8: {reason_vi}.",
        "The body is not valid UTF-8 JSON: {reason_en}.",
    ),
    "E100.expiry": (
        "Ngoại lệ khóa sổ phải hết hạn sau thời điểm mở ({opened_at}); expires_at nhận được:"
        " {expires_at}.",
        "A lock exception must expire after it is opened ({opened_at}); expires_at is"
        " {expires_at}.",
    ),
    "E101": (
        "Chế độ báo cáo {regime} không có trong danh mục của tỉnh; các chế độ hiện có: {known}.",
        "Regime {regime} is not in the province's catalog; the regimes are: {known}.",
    ),
    "E102": (
        "Đơn vị báo cáo {unit} không có trong danh mục đơn vị của tỉnh.",
        "Reporting unit {unit} is not in the province's list of units.",
    ),
    "E103.not_in_force": (
        "Đơn vị {unit} không tồn tại vào ngày {day} (ngày cuối thời gian chốt số liệu kỳ"
        " {period}), nên không phải đơn vị báo cáo của kỳ này.",
        "Unit {unit} does not exist on {day}, the last day of period {period}'s cut-off"
        " window, so it does not report for that period.",
    ),
    "E103": (
        "Đơn vị {unit} ({unit_type_vi}) không thuộc đối tượng thực hiện chế độ {regime} kỳ"
        " {period}; đối tượng báo cáo là: {reporters_vi}.",
        "Unit {unit} ({unit_type_en}) does not report regime {regime} for period {period};"
        " its reporters are: {reporters_en}.",
    ),
    "E104": (
        "Mã kỳ báo cáo {period} không hợp lệ: mã kỳ có dạng YYYY-Mmm (tháng, M01..M12),"
        " YYYY-Qn (quý, Q1..Q4), YYYY-Sn (6 tháng, S1 hoặc S2) hoặc YYYY (năm), với năm từ"
        " {first_year} đến {last_year}.",
        "Bad period code {period}: expected YYYY-Mmm (month, M01..M12), YYYY-Qn (quarter,"
        " Q1..Q4), YYYY-Sn (half-year, S1 or S2) or YYYY (year), for a year from"
        " {first_year} to {last_year}.",
    ),
    "E104.frequency": (
        "Kỳ {period} không phù hợp tần suất báo cáo {frequency_vi} của chế độ {regime};"
        " mã kỳ phải có dạng như {example}.",
        "Period {period} does not fit regime {regime}, which is reported {frequency_en};"
        " use a period code like {example}.",
    ),
    "E105": (
        "Kỳ {period} chưa bắt đầu: thời gian chốt số liệu bắt đầu từ ngày {start}, báo cáo"
        " được nhận ngày {received_on}.",
        "Period {period} is not open yet: its cut-off window starts on {start}, and the report"
        " was received on {received_on}.",
    ),
    "E106": (
        "Kỳ {period} đã khóa sổ: hạn gửi báo cáo là ngày {deadline}, báo cáo muộn chỉ được"
        " nhận đến hết ngày {lock_date}, báo cáo này được nhận ngày {received_on}. Liên hệ cơ"
        " quan tổng hợp của tỉnh để được mở ngoại lệ.",
        "Period {period} is locked: the deadline was {deadline} and late reports were accepted"
        " until the end of {lock_date}; this report was received on {received_on}. Ask the"
        " province to open an exception.",
    ),
    "E107": (
        "Chế độ {regime} không có phiên bản nào có hiệu lực cho kỳ {period} (ngày cuối thời"
        " gian chốt số liệu: {day}).",
        "Regime {regime} has no version in force for period {period} (on {day}, the last day"
        " of its cut-off window).",
    ),
    "E110": (
        "Chỉ tiêu {indicator} không thuộc biểu mẫu của chế độ {regime} (phiên bản {version}).",
        "Indicator {indicator} is not part of the data form of regime {regime} (version"
        " {version}).",
    ),
    "E111": (
        "Thiếu chỉ tiêu bắt buộc {indicator} ({name_vi}).",
        "Required indicator {indicator} ({name_en}) is missing.",
    ),
    "E112.text": (
        'Chỉ tiêu {indicator} phải là {expected_vi}, nhưng giá trị gửi là chuỗi ký tự "{value}".',
        'Indicator {indicator} must be {expected_en}, but the value sent is the text "{value}".',
    ),
    "E112.number": (
        "Chỉ tiêu {indicator} phải là chuỗi ký tự, nhưng giá trị gửi là số {value}.",
        "Indicator {indicator} must be text, but the value sent is the number {value}.",
    ),
    "E112.fraction": (
        "Chỉ tiêu {indicator} phải là số nguyên, nhưng giá trị gửi là số {value} có phần thập"
        " phân.",
        "Indicator {indicator} must be an integer, but the value sent is the number {value},"
        " which has a fraction.",
    ),
    "E112.precision": (
        "Chỉ tiêu {indicator} = {value} có nhiều chữ số hơn mức hệ thống lưu giữ chính xác:"
        " tối đa {integer_digits} chữ số phần nguyên và {decimal_places} chữ số phần thập phân.",
        "Indicator {indicator} = {value} has more digits than are kept exactly: at most"
        " {integer_digits} digits before the decimal point and {decimal_places} after it.",
    ),
    "E113.min": (
        "Chỉ tiêu {indicator} = {value} nhỏ hơn giá trị tối thiểu {bound}.",
        "Indicator {indicator} = {value} is below the minimum {bound}.",
    ),
    "E113.max": (
        "Chỉ tiêu {indicator} = {value} lớn hơn giá trị tối đa {bound}.",
        "Indicator {indicator} = {value} is above the maximum {bound}.",
    ),
    "E113.length": (
        "Chỉ tiêu {indicator} dài {length} ký tự, vượt quá {bound} ký tự cho phép.",
        "Indicator {indicator} is {length} characters long, over the limit of {bound}.",
    ),
    "E114": (
        "Chỉ tiêu {indicator} là chỉ tiêu tính toán, hệ thống tự tính theo công thức"
        " {formula}; không gửi giá trị này.",
        "Indicator {indicator} is derived: the system computes it as {formula}; do not send it.",
    ),
    "E120": (
        "Quy tắc {rule} không thỏa mãn: {message_vi} Số liệu đã gửi: {figures}.",
        "Rule {rule} fails: {message_en} Figures sent: {figures}.",
    ),
    "E130": (
        "Lần gửi {revision} không lớn hơn lần gửi đã được chấp nhận ({latest}) của đơn vị"
        " cho chế độ và kỳ này; bản sửa đổi phải có số lần gửi lớn hơn {latest}.",
        "Revision {revision} is not above the latest accepted revision ({latest}) of this"
        " unit for this regime and period; a correction needs a revision above {latest}.",
    ),
    "E140": (
        "Chưa xác thực: yêu cầu không kèm thông tin xác thực; gửi tiêu đề"
        " Authorization: Bearer <mã xác thực> do cơ quan tổng hợp của tỉnh cấp.",
        "Not authenticated: the request carries no credential; send the header"
        " Authorization: Bearer <credential> issued by the province.",
    ),
    "E140.bad": (
        "Chưa xác thực: mã xác thực không đúng, đã được thay bằng mã mới hoặc đã bị thu hồi.",
        "Not authenticated: the credential is wrong, was replaced by a new one, or was revoked.",
    ),
    "E140.source": (
        "Chưa xác thực: hệ thống gửi {sender} chưa được đăng ký hoặc đã bị thu hồi quyền gửi"
        " báo cáo.",
        "Not authenticated: sender {sender} is not registered or its right to send was revoked.",
    ),
    "E141": (
        "Hệ thống gửi {sender} không được phép báo cáo cho đơn vị {unit}; các đơn vị hệ thống"
        " này được báo cáo: {units}.",
        "Sender {sender} may not report for unit {unit}; the units it may report for: {units}.",
    ),
    "E141.source": (
        "Báo cáo ghi nguồn gửi là {claimed} nhưng được gửi bằng thông tin xác thực của hệ"
        " thống {sender}; trường source phải là {sender}.",
        "The report names its source {claimed} but was sent with the credential of sender"
        " {sender}; the source field must be {sender}.",
    ),
    "E141.report_id": (
        "Mã báo cáo {report_id} đã được một hệ thống gửi khác sử dụng; mỗi báo cáo cần một"
        " mã report_id mới, chưa từng dùng.",
        "Report id {report_id} was used by another sender; each report needs a report_id of"
        " its own, never used before.",
    ),
    "E141.operator": (
        "Người vận hành {operator} không thể ghi nhận thao tác dưới tên {claimed}.",
        "Operator {operator} cannot act under the name {claimed}.",
    ),
    "E142": (
        "Thiếu chữ ký số: {required_vi} phải được ký số (Nghị định 09/2019/NĐ-CP, Thông tư"
        " 01/2020/TT-VPCP); thêm trường signature với thuật toán Ed25519.",
        "Signature missing: {required_en} must be signed (Decree 09/2019/ND-CP, Circular"
        " 01/2020/TT-VPCP); add a signature field with algorithm Ed25519.",
    ),
    "E142.key": (
        "Chữ ký số không hợp lệ: khóa {key_id} không phải khóa công khai đang có hiệu lực mà"
        " hệ thống gửi {sender} đã đăng ký.",
        "Bad signature: key {key_id} is not a public key that sender {sender} has registered"
        " and not revoked.",
    ),
    "E142.encoding": (
        "Chữ ký số không hợp lệ: giá trị chữ ký phải là 64 byte mã hóa Base64.",
        "Bad signature: its value must be 64 bytes in Base64.",
    ),
    "E142.value": (
        "Chữ ký số không hợp lệ: chữ ký không khớp với nội dung báo cáo (chữ ký được tính"
        " trên JSON chuẩn hóa của báo cáo, bỏ trường signature), khóa {key_id}.",
        "Bad signature: it does not match the report's content (it is computed over the"
        " canonical JSON of the report without its signature field), key {key_id}.",
    ),
    "E150": (
        "Báo cáo quá lớn: {size} byte, giới hạn {limit} byte.",
        "The report is too large: {size} bytes, the limit is {limit} bytes.",
    ),
    "E150.text": (
        "Chỉ tiêu {indicator} dài {length} ký tự, vượt giới hạn {limit} ký tự mà hệ thống"
        " nhận cho một giá trị.",
        "Indicator {indicator} is {length} characters long, over the limit of {limit}"
        " characters the system takes for one value.",
    ),
    "E150.number": (
        "Chỉ tiêu {indicator} = {value} vượt giới hạn của hệ thống: tối đa {digits} chữ số"
        " có nghĩa, độ lớn từ 1E-{exponent} đến dưới 1E+{exponent}.",
        "Indicator {indicator} = {value} is beyond what the system takes: at most {digits}"
        " significant digits, a magnitude from 1E-{exponent} to below 1E+{exponent}.",
    ),
}

# The answer to a sender over its rate limit (HTTP 429), in Vietnamese and English.
RATE_LIMITED = (
    "Hệ thống gửi {sender} đã vượt giới hạn {limit} báo cáo; gửi lại sau {retry_after} giây.",
    "Sender {sender} is over its limit of {limit} reports; send again in {retry_after} seconds.",
)
# The answer to a client whose credential checks for one name failed too often (HTTP 429).
CHECKS_LIMITED = (
    "Thông tin xác thực mang tên {sender} gửi từ địa chỉ {address} đã không hợp lệ quá nhiều"
    " lần (giới hạn {limit}); thử lại sau {retry_after} giây.",
    "Credentials for {sender} from address {address} failed their checks too often (limit"
    " {limit}); try again in {retry_after} seconds.",
)

# A report's value that is neither a JSON number nor a string (E100's reason).
VALUE_KIND_REASON = ("phải là số hoặc chuỗi ký tự", "must be a JSON number or a string")
# E100's reason in Vietnamese for a pydantic error type not listed below; pydantic's
# English follows it in parentheses.
CONTRACT_REASON_VI = "giá trị không hợp lệ"

# pydantic error types → why, in Vietnamese; English uses pydantic's own message.
CONTRACT_REASONS_VI: dict[str, str] = {
    "missing": "thiếu trường bắt buộc",
    "extra_forbidden": "trường không có trong hợp đồng dữ liệu",
    "string_type": "phải là chuỗi ký tự",
    "int_type": "phải là số nguyên",
    "int_from_float": "phải là số nguyên",
    "int_parsing": "phải là số nguyên",
    "decimal_type": "phải là số",
    "decimal_parsing": "phải là số",
    "finite_number": "phải là số hữu hạn",
    "literal_error": "giá trị không được chấp nhận",
    "string_pattern_mismatch": "sai định dạng mã",
    "string_too_short": "quá ngắn",
    "string_too_long": "quá dài",
    "too_long": "quá nhiều phần tử",
    "greater_than_equal": "nhỏ hơn giá trị tối thiểu",
    "less_than_equal": "lớn hơn giá trị tối đa",
    "timezone_aware": "thời gian phải có múi giờ",
    "datetime_type": "phải là thời gian ISO 8601",
    "datetime_parsing": "phải là thời gian ISO 8601",
    "datetime_from_date_parsing": "phải là thời gian ISO 8601",
    "model_type": "phải là đối tượng JSON",
    "dict_type": "phải là đối tượng JSON",
    "union_tag_invalid": "giá trị không được chấp nhận",
}

# Why a body is not JSON (E100.json), in Vietnamese: by the message of the standard
# library's parser (`JSONDecodeError.msg`) or of shared.codec's own refusals. English uses
# the error's own text, which says where too.
JSON_REASONS_VI: dict[str, str] = {
    "Expecting value": "thiếu một giá trị (số, chuỗi, đối tượng, mảng, true, false hoặc null)",
    "Expecting property name enclosed in double quotes": "cần tên trường đặt trong dấu nháy kép",
    "Expecting ':' delimiter": "thiếu dấu hai chấm (:) sau tên trường",
    "Expecting ',' delimiter": "thiếu dấu phẩy (,) giữa hai phần tử",
    "Unterminated string starting at": "chuỗi ký tự bắt đầu tại đây không có dấu nháy kép đóng",
    "Invalid control character at": "chuỗi ký tự chứa ký tự điều khiển không được phép",
    "Invalid \\escape": "ký tự thoát (\\) không hợp lệ",
    "Invalid \\uXXXX escape": "mã thoát \\uXXXX không hợp lệ",
    "Extra data": "còn dữ liệu thừa sau giá trị JSON",
    codec.NESTED_TOO_DEEPLY: "JSON lồng nhau quá sâu",
    codec.NUL_IN_STRING: "một chuỗi ký tự chứa ký tự NUL (\\u0000)",
    codec.LONE_SURROGATE: "một chuỗi ký tự chứa mã thoát đơn lẻ trong khoảng \\ud800-\\udfff,"
    " không tạo thành ký tự nào",
}
# E100.json's reason in Vietnamese for a parser error not listed above.
JSON_REASON_VI = "không đọc được nội dung"

# frequency → (Vietnamese, English, an example period code).
FREQUENCIES: dict[str, tuple[str, str, str]] = {
    "monthly": ("hằng tháng", "monthly", "2026-M03"),
    "quarterly": ("hằng quý", "quarterly", "2026-Q1"),
    "semiannual": ("6 tháng", "half-yearly", "2026-S1"),
    "annual": ("hằng năm", "yearly", "2026"),
}

# number indicator type → what a value must be (Vietnamese, English).
TYPE_NAMES: dict[str, tuple[str, str]] = {
    "integer": ("số nguyên", "an integer"),
    "decimal": ("số", "a number"),
    "percent": ("số (phần trăm)", "a number (percent)"),
}

# unit type (units.yaml) → its name (Vietnamese, English).
UNIT_TYPES: dict[str, tuple[str, str]] = {
    "province": ("cấp tỉnh", "province"),
    "department": ("sở, ban, ngành", "department"),
    "district": ("cấp huyện", "district"),
    "commune": ("cấp xã", "commune"),
    "service_centre": ("trung tâm phục vụ hành chính công", "public-service centre"),
}


def unit_type_names(unit_type: str) -> tuple[str, str]:
    """A unit type's name in Vietnamese and English; an unlisted type is shown as its code."""
    return UNIT_TYPES.get(unit_type, (unit_type, unit_type))


class _Lenient(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def issue(
    code: str,
    *,
    severity: Severity = Severity.ERROR,
    field: str | None = None,
    indicator: str | None = None,
    rule: str | None = None,
    **params: Any,
) -> Issue:
    """An issue with its bilingual message; `code` may name a variant (`E113.max`)."""
    vi, en = MESSAGES[code]
    values = _Lenient(params, field=field, indicator=indicator, rule=rule)
    return Issue(
        code=code.split(".", 1)[0],
        rule=rule,
        severity=severity,
        indicator=indicator,
        field=field,
        message_vi=vi.format_map(values),
        message_en=en.format_map(values),
    )


# Issues built in more than one place (validation, and the operators' lock exceptions in
# submission) are built here, so that their wording cannot drift apart.


def json_reasons(error: ValueError) -> tuple[str, str]:
    """Why a body is not JSON, in Vietnamese and English, and where when the parser says."""
    english = str(error)
    if isinstance(error, json.JSONDecodeError):
        where = f"dòng {error.lineno}, cột {error.colno}"
        known = JSON_REASONS_VI.get(error.msg)
        if known is not None:
            return f"{known} (tại {where})", english
        return f"{JSON_REASON_VI} tại {where} ({english})", english
    if isinstance(error, codec.DuplicateKeyError):
        return f"trường {error.key!r} xuất hiện hai lần trong cùng một đối tượng", english
    if isinstance(error, UnicodeDecodeError):
        return f"byte tại vị trí {error.start} không phải mã UTF-8 hợp lệ", english
    if english.endswith(codec.NOT_A_NUMBER):
        return f"{english.removesuffix(codec.NOT_A_NUMBER)} không phải là số trong JSON", english
    known = JSON_REASONS_VI.get(english)
    return (known if known is not None else f"{JSON_REASON_VI} ({english})"), english


def not_json(error: ValueError) -> Issue:
    """E100 for a body that is not JSON, on submission's channels and its operator API."""
    reason_vi, reason_en = json_reasons(error)
    return issue("E100.json", field="(body)", reason_vi=reason_vi, reason_en=reason_en)


def bad_period_code(period: str) -> Issue:
    return issue("E104", field="period", period=period, first_year=FIRST_YEAR, last_year=LAST_YEAR)


def wrong_frequency(period: str, regime: str, frequency: str) -> Issue:
    vi, en, example = FREQUENCIES[frequency]
    return issue(
        "E104.frequency",
        field="period",
        period=period,
        regime=regime,
        frequency_vi=vi,
        frequency_en=en,
        example=example,
    )


def not_a_reporter(
    unit: str, unit_type: str, regime: str, period: str, reporters: Sequence[str]
) -> Issue:
    names = [unit_type_names(t) for t in reporters]
    type_vi, type_en = unit_type_names(unit_type)
    return issue(
        "E103",
        field="unit",
        unit=unit,
        unit_type_vi=type_vi,
        unit_type_en=type_en,
        regime=regime,
        period=period,
        reporters_vi=", ".join(vi for vi, _ in names),
        reporters_en=", ".join(en for _, en in names),
    )
