"""Every message a reporting unit can read, in Vietnamese and English, in one table.

Reporting units (đơn vị báo cáo) read these in their local systems: each says what is
wrong, where, and why, in both languages, so it can be reviewed here in one place.
Templates take named parameters; the codes are the stable contract of DESIGN §3.
"""

from __future__ import annotations

from typing import Any

from shared.contracts import Issue, Severity

# code → (Vietnamese, English). `{field}` and the other names are filled by `issue()`.
MESSAGES: dict[str, tuple[str, str]] = {
    "E100": (
        "Báo cáo không đúng định dạng tại {field}: {reason_vi}.",
        "The report does not match the contract at {field}: {reason_en}.",
    ),
    "E100.json": (
        "Nội dung không phải JSON hợp lệ (UTF-8): {reason_en}.",
        "The body is not valid JSON (UTF-8): {reason_en}.",
    ),
    "E101": (
        "Chế độ báo cáo {regime} không tồn tại.",
        "Unknown regime {regime}.",
    ),
    "E102": (
        "Đơn vị báo cáo {unit} không tồn tại.",
        "Unknown reporting unit {unit}.",
    ),
    "E103.not_in_force": (
        "Đơn vị {unit} không tồn tại vào ngày {day} (ngày cuối thời gian chốt số liệu kỳ"
        " {period}), nên không phải đơn vị báo cáo của kỳ này.",
        "Unit {unit} does not exist on {day}, the last day of period {period}'s cut-off"
        " window, so it does not report for that period.",
    ),
    "E103": (
        "Đơn vị {unit} ({unit_type}) không thuộc đối tượng báo cáo chế độ {regime} kỳ {period};"
        " đối tượng báo cáo: {reporters}.",
        "Unit {unit} ({unit_type}) does not report regime {regime} for period {period};"
        " reporters are: {reporters}.",
    ),
    "E104": (
        "Mã kỳ báo cáo {period} không hợp lệ: {reason_vi}.",
        "Bad period code {period}: {reason_en}.",
    ),
    "E104.frequency": (
        "Kỳ {period} không phù hợp tần suất của chế độ {regime} ({frequency_vi}).",
        "Period {period} does not fit the {frequency} frequency of regime {regime}.",
    ),
    "E105": (
        "Kỳ {period} chưa bắt đầu: thời gian chốt số liệu bắt đầu từ ngày {start}.",
        "Period {period} is not open yet: its cut-off window starts on {start}.",
    ),
    "E106": (
        "Kỳ {period} đã khóa sổ từ sau ngày {lock_date}; liên hệ cơ quan tổng hợp để được mở"
        " ngoại lệ.",
        "Period {period} is locked since the end of {lock_date}; ask the province to open an"
        " exception.",
    ),
    "E107": (
        "Chế độ {regime} không có phiên bản có hiệu lực cho kỳ {period} (ngày {day}).",
        "Regime {regime} has no version in force for period {period} (on {day}).",
    ),
    "E110": (
        "Chỉ tiêu {indicator} không thuộc biểu mẫu của chế độ {regime}.",
        "Indicator {indicator} is not part of regime {regime}.",
    ),
    "E111": (
        "Thiếu chỉ tiêu bắt buộc {indicator} ({name_vi}).",
        "Required indicator {indicator} ({name_en}) is missing.",
    ),
    "E112": (
        "Chỉ tiêu {indicator} phải là {expected_vi}, nhận được {got}.",
        "Indicator {indicator} must be {expected_en}, got {got}.",
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
        "Chỉ tiêu {indicator} là chỉ tiêu tính toán, hệ thống tự tính; không gửi giá trị này.",
        "Indicator {indicator} is derived and computed by the system; do not send it.",
    ),
    "E120": ("{message_vi}", "{message_en}"),
    "E130": (
        "Lần gửi {revision} không lớn hơn lần gửi đã được chấp nhận ({latest}); bản sửa đổi"
        " phải có số lần gửi lớn hơn.",
        "Revision {revision} is not above the latest accepted revision ({latest}); a correction"
        " needs a higher revision.",
    ),
    "E140": (
        "Chưa xác thực: {reason_vi}.",
        "Not authenticated: {reason_en}.",
    ),
    "E141": (
        "Hệ thống gửi {sender} không được phép báo cáo thay đơn vị {unit}.",
        "Sender {sender} may not report for unit {unit}.",
    ),
    "E142": (
        "Chữ ký số không hợp lệ: {reason_vi}.",
        "Bad signature: {reason_en}.",
    ),
    "E150": (
        "Báo cáo quá lớn: {size} byte, giới hạn {limit} byte.",
        "The report is too large: {size} bytes, the limit is {limit} bytes.",
    ),
}

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

FREQUENCY_VI = {
    "monthly": "hằng tháng",
    "quarterly": "hằng quý",
    "semiannual": "6 tháng",
    "annual": "hằng năm",
}

TYPE_NAMES = {
    "integer": ("số nguyên", "an integer"),
    "decimal": ("số", "a number"),
    "percent": ("số (phần trăm)", "a number (percent)"),
    "text": ("chuỗi ký tự", "text"),
}


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
