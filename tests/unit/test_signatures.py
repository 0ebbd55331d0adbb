"""Signatures over the canonical JSON of a report: the README's worked example holds byte
for byte, a changed value or key breaks it, and public keys are read from Base64 or PEM."""

from __future__ import annotations

import base64
import json
import re
from decimal import Decimal
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from services.submission import intake
from services.submission.senders import Source, admit
from services.submission.signatures import (
    BadKeyError,
    decode_signature,
    read_public_key,
    signed_bytes,
    verifies,
)
from shared import codec
from shared.settings import REPO_ROOT
from tests import factories
from tests.signing import private_key, public_key_b64, signed

pytestmark = pytest.mark.unit


def readme_example() -> tuple[dict[str, object], str, str, str]:
    """(report, canonical text, signature, public key) as the README shows them."""
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("### Signing a report") :]
    section = section[: section.index("\n### ", 5)]
    report = json.loads(re.findall(r"```json\n(.*?)\n```", section, re.DOTALL)[0])
    canonical, signature = re.findall(r"```text\n(.*?)\n```", section, re.DOTALL)[:2]
    public = re.search(r"public key \(Base64\): `([^`]+)`", section)
    assert public is not None
    return report, canonical, signature, public.group(1)


def test_the_readme_worked_example_is_what_the_system_computes_and_accepts() -> None:
    report, canonical, signature, public = readme_example()
    document = codec.loads(json.dumps(report))

    assert signed_bytes(document) == canonical.encode("utf-8")
    assert public == public_key_b64(private_key())
    # Ed25519 is deterministic: the same key and bytes give the README's signature again.
    assert signed(document, private_key(), "k1")["signature"]["value"] == signature
    raw = decode_signature(signature)
    assert raw is not None
    assert verifies(base64.b64decode(public), raw, signed_bytes(document))


def test_a_changed_value_or_another_key_does_not_verify() -> None:
    document = codec.loads(factories.report_json())
    sig = signed(document, private_key(), "k1")["signature"]["value"]
    raw = decode_signature(sig)
    assert raw is not None
    public = base64.b64decode(public_key_b64(private_key()))
    assert verifies(public, raw, signed_bytes(document))

    changed = {**document, "values": {**document["values"], "RECEIVED_ONLINE": 121}}
    assert not verifies(public, raw, signed_bytes(changed))
    other = base64.b64decode(public_key_b64(private_key(bytes(32))))
    assert not verifies(other, raw, signed_bytes(document))


def test_the_signature_field_itself_is_not_covered() -> None:
    document = codec.loads(factories.report_json())
    with_signature = signed(document, private_key(), "k1")
    assert signed_bytes(with_signature) == signed_bytes(document)


@pytest.mark.parametrize(
    "value", ["", "not base64!", base64.b64encode(b"x" * 63).decode(), "A" * 200]
)
def test_a_signature_value_that_is_not_64_bytes_of_base64_is_unreadable(value: str) -> None:
    assert decode_signature(value) is None


def test_public_keys_are_read_from_base64_or_pem() -> None:
    key = private_key().public_key()
    raw = key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    pem = key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()
    assert read_public_key(base64.b64encode(raw).decode()) == raw
    assert read_public_key(pem) == raw
    with pytest.raises(BadKeyError, match="32 bytes"):
        read_public_key(base64.b64encode(b"short").decode())
    with pytest.raises(BadKeyError, match="not Base64"):
        read_public_key("%%%")


def readme_recipe() -> dict[str, Any]:
    """The README's Python signing recipe, run: its functions by name."""
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("### Signing a report") :]
    (code,) = re.findall(r"```python\n(.*?)\n```", section[: section.index("\n### ", 5)], re.DOTALL)
    namespace: dict[str, Any] = {}
    exec(compile(code, "README.md (Signing a report)", "exec"), namespace)
    return namespace


TRICKY_VALUES: list[dict[str, Any]] = [
    {"PROCESSING_DAYS_TOTAL": Decimal("0.00005")},  # json.dumps writes 5e-05
    {"PROCESSING_DAYS_TOTAL": Decimal("5E-5")},
    {"PROCESSING_DAYS_TOTAL": Decimal("1E-39")},
    {"PROCESSING_DAYS_TOTAL": Decimal("480.50")},  # a trailing zero is kept
    {"PROCESSING_DAYS_TOTAL": Decimal("480.5000000")},
    {"PROCESSING_DAYS_TOTAL": Decimal("4.805E+2")},
    {"PROCESSING_DAYS_TOTAL": Decimal("1.0E+3")},
    {"PROCESSING_DAYS_TOTAL": Decimal("-0"), "CARRIED_OVER": Decimal("-0.0")},
    {"PROCESSING_DAYS_TOTAL": Decimal("0E-7")},
    {"RECEIVED_ONLINE": 10**30, "CARRIED_OVER": -(10**25)},  # beyond 64 bits
    {"RECEIVED_ONLINE": 2**64, "CARRIED_OVER": 2**63 - 1},
    {"PROCESSING_DAYS_TOTAL": Decimal("123456789012345678901234567890.1234567891")},
    {"PROCESSING_DAYS_TOTAL": Decimal("9.99999999999999999999999999999999999999E+39")},
]


@pytest.mark.parametrize("values", TRICKY_VALUES)
@pytest.mark.parametrize("note", ["Số liệu quý I", 'ngoặc "kép" \\ \n\t\x01 \u2028 😀', None])
def test_a_report_signed_by_the_readme_recipe_verifies_on_the_server(
    values: dict[str, Any], note: str | None
) -> None:
    recipe = readme_recipe()
    document = codec.loads(factories.report_json(note=note))
    report = json.loads(json.dumps(document, default=str), parse_float=Decimal)
    report["values"] = {**report["values"], **values}
    key = private_key()
    body = recipe["signed"](report, key, "k1")

    read = intake.read(body, intake.Limits())
    assert isinstance(read, intake.Readable), read
    assert signed_bytes(read.document) == recipe["canonical"](
        {k: v for k, v in report.items() if k != "signature"}
    ).encode("utf-8")
    source = Source(
        name=read.report.source,
        units=frozenset({read.report.unit}),
        credential_hash="",
        keys={"k1": base64.b64decode(public_key_b64(key))},
    )
    assert admit(source, read.report, read.document, ()) == ()


def test_the_readme_recipe_gives_the_worked_examples_signature_and_refuses_floats() -> None:
    recipe = readme_recipe()
    report, canonical, signature, _ = readme_example()
    exact = json.loads(json.dumps(report), parse_float=Decimal)
    assert recipe["canonical"](exact) == canonical
    assert (
        json.loads(recipe["signed"](exact, private_key(), "k1"))["signature"]["value"] == signature
    )
    with pytest.raises(TypeError, match="Decimal"):
        recipe["canonical"](report)  # 480.5 read as a float
