"""Who may send what: E141 for a unit not the sender's or a forged `source`, E142 for a
signature missing where required, from an unknown key, unreadable or not matching."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from services.submission.senders import Source, admit, admit_as_named
from shared import codec
from shared.contracts import Report
from tests import factories
from tests.signing import private_key, public_key_b64, signed

pytestmark = pytest.mark.unit

KEY = base64.b64decode(public_key_b64(private_key()))
SOURCE = Source("motcua-a", frozenset({"TB.DH.N01"}), "hash", keys={"k1": KEY})


def document(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {"source": "motcua-a", **overrides}
    loaded: dict[str, Any] = codec.loads(factories.report_json(**fields))
    return loaded


def codes(
    source: Source, doc: dict[str, Any], signed_regimes: frozenset[str] = frozenset()
) -> list[str]:
    report = Report.model_validate(doc)
    return [f"{i.code} {i.field}" for i in admit(source, report, doc, signed_regimes)]


def test_a_source_may_send_for_its_own_unit_unsigned_when_nothing_asks_for_a_signature() -> None:
    assert codes(SOURCE, document()) == []


def test_another_unit_is_refused_with_the_units_the_sender_has() -> None:
    report = Report.model_validate(document(unit="TB.DH.N02"))
    (found,) = admit(SOURCE, report, document(unit="TB.DH.N02"), frozenset())
    assert (found.code, found.field) == ("E141", "unit")
    assert "TB.DH.N01" in found.message_en
    assert "TB.DH.N02" in found.message_vi


def test_a_forged_source_field_is_refused_even_for_an_own_unit() -> None:
    assert codes(SOURCE, document(source="motcua-b")) == ["E141 source"]


@pytest.mark.parametrize(
    ("source", "signed_regimes"),
    [
        (Source("motcua-a", frozenset({"TB.DH.N01"}), "h", signatures_required=True), frozenset()),
        (SOURCE, frozenset({"KSTT-TTHC"})),
    ],
    ids=["the source must sign", "the regime must be signed"],
)
def test_a_missing_signature_is_refused_where_required(
    source: Source, signed_regimes: frozenset[str]
) -> None:
    assert codes(source, document(), signed_regimes) == ["E142 signature"]


def test_a_good_signature_from_a_registered_key_passes() -> None:
    required = Source("motcua-a", frozenset({"TB.DH.N01"}), "h", True, {"k1": KEY})
    assert codes(required, signed(document(), private_key(), "k1")) == []


def test_a_signature_is_checked_even_where_none_is_required() -> None:
    doc = signed(document(), private_key(bytes(32)), "k1")  # another key's signature
    assert codes(SOURCE, doc) == ["E142 signature.value"]


def test_a_replayed_signed_report_with_a_changed_value_is_refused() -> None:
    doc = signed(document(), private_key(), "k1")
    doc["values"] = {**doc["values"], "RECEIVED_ONLINE": 999}
    assert codes(SOURCE, doc) == ["E142 signature.value"]


def test_an_unknown_key_and_an_unreadable_value_are_refused() -> None:
    doc = signed(document(), private_key(), "k9")
    assert codes(SOURCE, doc) == ["E142 signature.key_id"]
    doc = signed(document(), private_key(), "k1")
    doc["signature"] = {**doc["signature"], "value": "bm90IDY0IGJ5dGVz"}
    assert codes(SOURCE, doc) == ["E142 signature.value"]


def test_every_issue_is_listed() -> None:
    doc = signed(document(unit="TB.DH.N02", source="motcua-b"), private_key(), "k1")
    doc["revision"] = 2  # changed after signing
    assert codes(SOURCE, doc) == ["E141 source", "E141 unit", "E142 signature.value"]


def as_named(
    named: Source | None, doc: dict[str, Any], signed_regimes: frozenset[str] = frozenset()
) -> list[str]:
    report = Report.model_validate(doc)
    return [f"{i.code} {i.field}" for i in admit_as_named(named, report, doc, signed_regimes)]


@pytest.mark.parametrize("named", [SOURCE, None])
def test_without_authentication_an_unsigned_report_passes_where_no_regime_asks(
    named: Source | None,
) -> None:
    # Not the units nor the `source` field: nobody is known to have sent it.
    assert as_named(named, document(unit="TB.DH.N02")) == []
    strict = Source("motcua-a", frozenset(), "hash", signatures_required=True)
    assert as_named(strict, document()) == []


def test_without_authentication_a_signature_is_checked_against_the_named_source() -> None:
    doc = document()
    assert as_named(SOURCE, signed(doc, private_key(), "k1")) == []
    assert as_named(SOURCE, signed(doc, private_key(bytes(32)), "k1")) == ["E142 signature.value"]
    assert as_named(None, signed(doc, private_key(), "k1")) == ["E142 signature.key_id"]


def test_without_authentication_a_signed_regime_still_needs_a_signature() -> None:
    doc = document()
    assert as_named(SOURCE, doc, frozenset({"KSTT-TTHC"})) == ["E142 signature"]
    assert as_named(None, doc, frozenset({"KSTT-TTHC"})) == ["E142 signature"]
    assert as_named(SOURCE, signed(doc, private_key(), "k1"), frozenset({"KSTT-TTHC"})) == []
