"""What a log line about a report carries: `report_id`, `regime`, `period` and `unit`.

Lines written while one record is processed get the record's coordinates and the report
it carries through `structlog.contextvars` (see `shared.batches`), so every line the
service code writes meanwhile carries them too; a line written about a report object names
it with `report_fields(report)`. Operators then find every line about a report, or a
unit's period, with one query on the JSON logs.
"""

from __future__ import annotations

from typing import Any

from shared import codec

REPORT_FIELDS = ("report_id", "regime", "period", "unit")


def report_fields(report: Any) -> dict[str, str]:
    """The identity of a report, verdict or snapshot object: the fields it has set."""
    found = {name: getattr(report, name, None) for name in REPORT_FIELDS}
    return {name: value for name, value in found.items() if isinstance(value, str)}


def document_fields(document: Any) -> dict[str, str]:
    """The report identity in a decoded message of any contract that carries one (a
    received report nests the sender's report under `report`)."""
    if not isinstance(document, dict):
        return {}
    nested = document.get("report")
    source = nested if isinstance(nested, dict) else document
    return {name: value for name in REPORT_FIELDS if isinstance(value := source.get(name), str)}


def record_fields(record: Any) -> dict[str, Any]:
    """Where a Kafka record comes from and, when it is readable JSON, the report it carries."""
    fields: dict[str, Any] = {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
    }
    try:
        document = codec.loads(record.value or b"")
    except ValueError:
        return fields
    return fields | document_fields(document)
