"""Refusing a credential takes the same work whether or not its name is registered."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from pydantic import SecretStr

from services.submission import credentials
from services.submission.access import Access, Denied


class _NoRows:
    async def fetch(self, *_: Any) -> list[Any]:
        return []

    async def fetchval(self, *_: Any) -> None:
        return None

    async def fetchrow(self, *_: Any) -> None:
        return None


class _Pool:
    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[_NoRows]:
        yield _NoRows()


@pytest.fixture
def verified_hashes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []
    real = credentials.matches

    def spy(stored_hash: str, credential: str) -> bool:
        seen.append(stored_hash)
        return real(stored_hash, credential)

    monkeypatch.setattr(credentials, "matches", spy)
    return seen


async def test_an_unregistered_source_name_costs_a_verification_too(
    verified_hashes: list[str],
) -> None:
    refused = await Access(True, "10/second").source(
        _Pool(),  # type: ignore[arg-type]
        SecretStr("nobody-here.c2VjcmV0LXRoYXQtbm9ib2R5LWhvbGRz"),
        "192.0.2.7",
    )
    assert isinstance(refused, Denied)
    assert refused.issue is not None
    assert refused.issue.code == "E140"
    assert verified_hashes == [credentials.decoy_hash()]


async def test_an_unregistered_operator_name_costs_a_verification_too(
    verified_hashes: list[str],
) -> None:
    refused = await Access(True, "10/second").operator(
        _Pool(),  # type: ignore[arg-type]
        SecretStr("no-operator.c2VjcmV0LXRoYXQtbm9ib2R5LWhvbGRz"),
        "192.0.2.7",
    )
    assert isinstance(refused, Denied)
    assert verified_hashes == [credentials.decoy_hash()]


def test_the_decoy_matches_no_credential_shaped_like_a_real_one() -> None:
    issued = credentials.issue("motcua-test")
    assert not credentials.matches(credentials.decoy_hash(), issued.credential.get_secret_value())
    assert credentials.decoy_hash() == credentials.decoy_hash()  # hashed once per process
