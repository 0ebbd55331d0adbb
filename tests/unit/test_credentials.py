"""Credentials: issued once as `<owner>.<secret>`, kept as an Argon2id hash that a rotated
or another credential does not match; names are checked; the verified-pairs memory keys on
the stored hash, so a rotation is never served from it."""

from __future__ import annotations

import pytest

from services.submission import credentials
from services.submission.rates import RateLimit

pytestmark = pytest.mark.unit


def test_a_credential_matches_its_hash_and_nothing_else_does() -> None:
    issued = credentials.issue("motcua-a")
    secret = issued.credential.get_secret_value()
    assert secret.startswith("motcua-a.")
    assert len(secret) > len("motcua-a.") + 40  # 32 random bytes, URL-safe Base64
    assert issued.hash.startswith("$argon2id$")
    assert secret not in issued.hash
    assert credentials.matches(issued.hash, secret)
    rotated = credentials.issue("motcua-a")
    assert not credentials.matches(issued.hash, rotated.credential.get_secret_value())
    assert not credentials.matches(issued.hash, secret + "x")
    assert not credentials.matches("not a hash", secret)


def test_the_secret_never_shows_in_a_repr() -> None:
    issued = credentials.issue("motcua-a")
    assert issued.credential.get_secret_value() not in repr(issued)
    assert issued.credential.get_secret_value() not in str(issued.credential)


@pytest.mark.parametrize(
    ("credential", "owner"),
    [
        ("motcua-a.s3cret", "motcua-a"),
        ("motcua-a", None),
        ("motcua-a.", None),
        (".secret", None),
        ("Motcua.secret", None),
        ("x" * 300 + ".s", None),
    ],
)
def test_the_owner_is_read_from_a_well_shaped_credential_only(
    credential: str, owner: str | None
) -> None:
    assert credentials.owner_of(credential) == owner


@pytest.mark.parametrize("name", ["dlq", "baocao", "A", "-a", "a-", "a.b", "a_b", "a" * 65, ""])
def test_unusable_names_are_refused(name: str) -> None:
    with pytest.raises(credentials.BadNameError):
        credentials.check_name(name)


def test_verified_pairs_are_remembered_per_stored_hash_and_bounded() -> None:
    seen = credentials.VerifiedCredentials(size=2)
    seen.remember("hash-1", "cred")
    assert seen.known("hash-1", "cred")
    assert not seen.known("hash-2", "cred")  # rotated: the stored hash changed
    seen.remember("hash-2", "other")
    seen.remember("hash-3", "third")
    assert not seen.known("hash-1", "cred")  # the oldest pair was forgotten


def test_a_rate_limit_refuses_past_its_count_with_the_seconds_to_wait() -> None:
    limit = RateLimit("2/minute")
    assert limit.take("a") is None
    assert limit.take("a") is None
    wait = limit.take("a")
    assert wait is not None
    assert 1 <= wait <= 60
    assert limit.take("b") is None  # per key
    assert limit.exceeded("a") is not None
