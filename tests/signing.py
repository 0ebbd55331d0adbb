"""Signing reports in tests, as a local system does: Ed25519 over the canonical JSON of the
report without its signature. The key is RFC 8032's first test vector (public, never for
production): the README's worked example uses it too."""

from __future__ import annotations

import base64
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from shared import codec

TEST_SEED = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")


def private_key(seed: bytes = TEST_SEED) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(seed)


def public_key_b64(key: Ed25519PrivateKey) -> str:
    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def signed(document: dict[str, Any], key: Ed25519PrivateKey, key_id: str) -> dict[str, Any]:
    """`document` with a signature over its canonical JSON (any old signature left out)."""
    unsigned = {k: v for k, v in document.items() if k != "signature"}
    value = base64.b64encode(key.sign(codec.canonical(unsigned))).decode()
    return {**unsigned, "signature": {"alg": "Ed25519", "key_id": key_id, "value": value}}
