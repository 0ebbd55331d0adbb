"""Credentials (mã xác thực) of sources and operators: issued once, kept only as a hash.

A credential reads `<owner>.<secret>`: the owner's name says which hash to check, so a
check costs one Argon2id verification, not one per registered owner; the secret is 32
random bytes (256 bits, `secrets`), so it cannot be guessed, and Argon2id (argon2-cffi, the
RFC 9106 parameters) keeps a stolen table of hashes from being reversed. The secret is
shown once, when it is issued or rotated, and never stored.

Verifying Argon2id costs tens of milliseconds of CPU on purpose. `VerifiedCredentials`
remembers, per process, which (credential, stored hash) pairs were verified, under a
SHA-256 of the credential (never the credential itself), so that a sender's every request
does not pay it again; a rotation or revocation changes or removes the stored hash, which
the caller reads from the database at each request, so it takes effect at once.
"""

from __future__ import annotations

import functools
import hashlib
import re
import secrets
from collections import OrderedDict
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from pydantic import SecretStr

# Source and operator names: also Kafka topic suffixes and SCRAM user names, hence the
# narrow alphabet. "dlq" would collide with the inbound topic's dead-letter topic, and
# "baocao" with the system's own consumer groups (`baocao.<service>`, which a source's
# prefix `<source>.` would cover) and its Kafka user.
NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")
RESERVED_NAMES = frozenset({"dlq", "baocao"})
SECRET_BYTES = 32

_hasher = PasswordHasher()


class BadNameError(ValueError):
    """A source or operator name outside the allowed alphabet."""


def check_name(name: str) -> str:
    if not NAME.match(name) or name in RESERVED_NAMES:
        raise BadNameError(
            f"{name!r} is not a usable name: 1-64 lowercase letters, digits and inner"
            f" hyphens, not one of {sorted(RESERVED_NAMES)}"
        )
    return name


@dataclass(frozen=True, slots=True)
class Issued:
    """A new credential (shown once) and the hash to store."""

    credential: SecretStr
    hash: str


def issue(owner: str) -> Issued:
    secret = secrets.token_urlsafe(SECRET_BYTES)
    credential = f"{check_name(owner)}.{secret}"
    return Issued(SecretStr(credential), _hasher.hash(credential))


def owner_of(credential: str) -> str | None:
    """The name a credential claims to belong to, or None if it is not shaped like one."""
    owner, dot, secret = credential.partition(".")
    if not dot or not secret or len(credential) > 256 or not NAME.match(owner):
        return None
    return owner


@functools.cache
def decoy_hash() -> str:
    """The hash of a credential nobody holds. A claimed name that is not registered is
    checked against it, so that it is refused no faster than a wrong secret would be and
    the answer's timing does not tell which names exist."""
    return _hasher.hash(secrets.token_urlsafe(SECRET_BYTES))


def matches(stored_hash: str, credential: str) -> bool:
    try:
        return _hasher.verify(stored_hash, credential)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


class VerifiedCredentials:
    """The (credential digest, stored hash) pairs verified lately, at most `size` of them."""

    def __init__(self, size: int = 1024) -> None:
        self._size = size
        self._seen: OrderedDict[tuple[bytes, str], None] = OrderedDict()

    @staticmethod
    def _key(stored_hash: str, credential: str) -> tuple[bytes, str]:
        return hashlib.sha256(credential.encode()).digest(), stored_hash

    def known(self, stored_hash: str, credential: str) -> bool:
        key = self._key(stored_hash, credential)
        if key in self._seen:
            self._seen.move_to_end(key)
            return True
        return False

    def remember(self, stored_hash: str, credential: str) -> None:
        self._seen[self._key(stored_hash, credential)] = None
        while len(self._seen) > self._size:
            self._seen.popitem(last=False)
