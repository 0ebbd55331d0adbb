"""Who may report for which unit, and whether what they sent is signed as it must be.

A source (hệ thống gửi: a department's, a district's or a commune's local system) is
registered with the units it may report for, its credential's hash, the Ed25519 public
keys it signs with, and whether all its reports must be signed. Decree 09/2019/NĐ-CP makes
each reporting unit answerable for its own figures: a sender may report only for its own
units (E141), and a report's `source` field must name the sender that really sent it, so
that the stored audit trail cannot be forged. Signatures (E142) are checked whenever a
report carries one, and required when the source or the report's regime says so; with
sender authentication off, against the source the report names (`admit_as_named`).
Pure: a registered source, a report and its parsed document in; every issue out.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from shared.contracts import Issue, Report
from shared.messages import issue

from .signatures import decode_signature, signed_bytes, verifies


@dataclass(frozen=True, slots=True)
class Source:
    """A registered sender, as the checks need it (revoked sources are never loaded)."""

    name: str
    units: frozenset[str]
    credential_hash: str = field(repr=False)
    signatures_required: bool = False
    keys: Mapping[str, bytes] = field(default_factory=dict, repr=False)


def admit(
    source: Source, report: Report, document: dict[str, Any], signed_regimes: Collection[str]
) -> tuple[Issue, ...]:
    """Every reason `source` may not send `report`; empty when it may."""
    found: list[Issue] = []
    if report.source != source.name:
        found.append(
            issue("E141.source", field="source", claimed=report.source, sender=source.name)
        )
    if report.unit not in source.units:
        found.append(
            issue(
                "E141",
                field="unit",
                sender=source.name,
                unit=report.unit,
                units=", ".join(sorted(source.units)) or "-",
            )
        )
    found += _signature_issues(source, report, document, signed_regimes)
    return tuple(found)


def admit_as_named(
    named: Source | None, report: Report, document: dict[str, Any], signed_regimes: Collection[str]
) -> tuple[Issue, ...]:
    """Sender authentication off: nobody is known to have sent `report`, so neither its
    units nor its `source` field can be held against it, but a signature is a proof of its
    own. One it carries is checked against the keys of the source it names (`named`, None
    when not registered: E142 whatever the key), and a signed regime's report needs one.
    The source's own requirement to sign applies only with authentication on, where the
    source is known without a look-up for every report."""
    source = named or Source(report.source, frozenset(), credential_hash="")
    unrequired = replace(source, signatures_required=False)
    return tuple(_signature_issues(unrequired, report, document, signed_regimes))


def _signature_issues(
    source: Source, report: Report, document: dict[str, Any], signed_regimes: Collection[str]
) -> list[Issue]:
    signature = report.signature
    if signature is None:
        if source.signatures_required:
            return [
                issue(
                    "E142",
                    field="signature",
                    required_vi=f"mọi báo cáo của hệ thống gửi {source.name}",
                    required_en=f"every report of sender {source.name}",
                )
            ]
        if report.regime in signed_regimes:
            return [
                issue(
                    "E142",
                    field="signature",
                    required_vi=f"mọi báo cáo của chế độ {report.regime}",
                    required_en=f"every report of regime {report.regime}",
                )
            ]
        return []
    key = source.keys.get(signature.key_id)
    if key is None:
        return [
            issue("E142.key", field="signature.key_id", key_id=signature.key_id, sender=source.name)
        ]
    raw = decode_signature(signature.value)
    if raw is None:
        return [issue("E142.encoding", field="signature.value")]
    if not verifies(key, raw, signed_bytes(document)):
        return [issue("E142.value", field="signature.value", key_id=signature.key_id)]
    return []
