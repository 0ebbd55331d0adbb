"""Who may call the connector's operator endpoints: the operators named in its settings.

The connector cannot read submission's registry of operators (each service owns its
tables), so it is given, by a Kubernetes Secret, the SHA-256 of each operator's
credential under the operator's name: `python -m services.connector operator-credential
NAME` issues `NAME.<secret>` (256 random bits) and prints its digest. The name before the
dot says which digest to check, and is who the audit log records as having acted; the
digest covers the name too, so a holder cannot act under another's. A SHA-256 of a 256-bit
random value cannot be reversed or guessed any more than an Argon2id hash of it, and costs
microseconds, so a caller with a wrong credential cannot make the connector work for its
refusal. Digests are compared in constant time, and a name nobody holds is checked against
a decoy, so that a refusal's timing does not tell which names exist. Without any operator
configured (the local run) the endpoints are open; with sender authentication on, the
connector does not start that way (see `settings`).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping

from pydantic import SecretStr

from shared.contracts import Issue
from shared.messages import issue

SECRET_BYTES = 32
# The alphabet of submission's operator names, so that one person goes by one name in both.
NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")
# The actor recorded when no operator is configured (the local run): not a usable name,
# so it never reads as one.
UNAUTHENTICATED = "(unauthenticated)"


def digest(credential: str) -> str:
    return hashlib.sha256(credential.encode()).hexdigest()


def issue_credential(name: str) -> tuple[SecretStr, str]:
    """A new credential of operator `name` (shown once) and the digest the connector is given."""
    if not NAME.match(name):
        raise ValueError(
            f"{name!r} is not a usable operator name: 1-64 lowercase letters, digits and"
            " inner hyphens"
        )
    credential = f"{name}.{secrets.token_urlsafe(SECRET_BYTES)}"
    return SecretStr(credential), digest(credential)


class NotAnOperatorError(Exception):
    """A call to an operator endpoint without the operator credential: answered 401."""

    def __init__(self, found: Issue) -> None:
        super().__init__(found.message_en)
        self.issue = found


class Operators:
    """The configured operators (name → digest of their credential)."""

    def __init__(self, digests: Mapping[str, SecretStr]) -> None:
        self._digests = {name: d.get_secret_value() for name, d in digests.items()}
        self._decoy = digest(secrets.token_urlsafe(SECRET_BYTES))

    @property
    def required(self) -> bool:
        return bool(self._digests)

    def check(self, credential: str | None) -> str:
        """The name of the operator whose credential this is (`UNAUTHENTICATED` when no
        operator is configured); raises `NotAnOperatorError` for anything else."""
        if not self._digests:
            return UNAUTHENTICATED
        if credential is None:
            raise NotAnOperatorError(issue("E140", field="(header) Authorization"))
        name = credential.partition(".")[0]
        expected = self._digests.get(name, self._decoy)
        if not hmac.compare_digest(digest(credential), expected) or name not in self._digests:
            raise NotAnOperatorError(issue("E140.bad", field="(header) Authorization"))
        return name
