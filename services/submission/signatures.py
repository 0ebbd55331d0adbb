"""Signed reports (chữ ký số): Decree 09/2019/NĐ-CP and Circular 01/2020/TT-VPCP
ask for reports sent electronically to be digitally signed.

A report may carry `signature: {"alg": "Ed25519", "key_id": ..., "value": ...}`. `value`
is the Base64 Ed25519 signature over the report's canonical JSON without its `signature`
field (`codec.canonical`): the document as parsed, keys sorted, no spaces, UTF-8
(non-ASCII characters as themselves), each number written out from its exact value
(`4.805E+2` as `480.5`, `5E-5` as `0.00005`, `480.50` as `480.50`). The README works an
example through with a fixed key pair and gives a signer that writes the same bytes;
tests check both.
Pure: bytes and keys in, a verdict out.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_public_key,
)

from shared import codec

PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = 64


class BadKeyError(ValueError):
    """A public key that is neither 32 raw bytes in Base64 nor an Ed25519 PEM key."""


def signed_bytes(document: dict[str, Any]) -> bytes:
    """What the signature covers: the canonical JSON of the report without `signature`."""
    return codec.canonical({k: v for k, v in document.items() if k != "signature"})


def decode_signature(value: str) -> bytes | None:
    """The 64 signature bytes, or None when `value` is not their Base64."""
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == SIGNATURE_BYTES else None


def verifies(public_key: bytes, signature: bytes, message: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


def read_public_key(text: str) -> bytes:
    """A registered key as 32 raw bytes, from Base64 of those bytes or from a PEM file."""
    stripped = text.strip()
    if stripped.startswith("-----BEGIN"):
        try:
            key = load_pem_public_key(stripped.encode())
        except ValueError as error:
            raise BadKeyError(f"not a PEM public key: {error}") from None
        if not isinstance(key, Ed25519PublicKey):
            raise BadKeyError("the PEM key is not an Ed25519 key")
        return key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    try:
        raw = base64.b64decode(stripped, validate=True)
    except (binascii.Error, ValueError):
        raise BadKeyError("not Base64 and not PEM") from None
    if len(raw) != PUBLIC_KEY_BYTES:
        raise BadKeyError(f"an Ed25519 public key has 32 bytes, this one {len(raw)}")
    return raw
