"""Who may call the connector's operator endpoints: whoever holds the operator credential.

The connector cannot read submission's registry of operators (each service owns its
tables), so it is given, by a Kubernetes Secret, the SHA-256 of one operator credential:
`python -m services.connector operator-credential` issues one (256 random bits) and
prints its digest. A SHA-256 of a 256-bit random value cannot be reversed or guessed any
more than an Argon2id hash of it, and costs microseconds, so a caller with a wrong
credential cannot make the connector work for its refusal. The digests are compared in
constant time. Without a digest configured (the local run) the endpoints are open, as
submission's are with sender authentication off.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from pydantic import SecretStr

from shared.contracts import Issue
from shared.messages import issue

SECRET_BYTES = 32


def digest(credential: str) -> str:
    return hashlib.sha256(credential.encode()).hexdigest()


def issue_credential() -> tuple[SecretStr, str]:
    """A new operator credential (shown once) and the digest the connector is given."""
    credential = secrets.token_urlsafe(SECRET_BYTES)
    return SecretStr(credential), digest(credential)


class NotAnOperatorError(Exception):
    """A call to an operator endpoint without the operator credential: answered 401."""

    def __init__(self, found: Issue) -> None:
        super().__init__(found.message_en)
        self.issue = found


class OperatorCredential:
    def __init__(self, expected_sha256: SecretStr | None) -> None:
        self._expected = expected_sha256.get_secret_value() if expected_sha256 else None

    @property
    def required(self) -> bool:
        return self._expected is not None

    def check(self, credential: str | None) -> None:
        """Raises `NotAnOperatorError` unless `credential` is the operator's (or none is
        required)."""
        if self._expected is None:
            return
        if credential is None:
            raise NotAnOperatorError(issue("E140", field="(header) Authorization"))
        if not hmac.compare_digest(digest(credential), self._expected):
            raise NotAnOperatorError(issue("E140.bad", field="(header) Authorization"))
