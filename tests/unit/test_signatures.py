"""Signatures over the canonical JSON of a report: the README's worked example holds byte
for byte, a changed value or key breaks it, and public keys are read from Base64 or PEM."""

from __future__ import annotations

import base64
import json
import re

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

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
