"""Refusing a credential takes the same work whether or not its name is registered, and
failed checks hold back only the (address, name) pair that failed: never a valid
credential presented from another address, for another name, or verified before."""

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


class _Operators(_NoRows):
    def __init__(self, hashes: dict[str, str]) -> None:
        self.hashes = hashes

    async def fetchval(self, _query: str, name: str) -> str | None:  # type: ignore[override]
        return self.hashes.get(name)


class _OperatorPool:
    def __init__(self, *names: str) -> None:
        issued = {name: credentials.issue(name) for name in names}
        self.credentials = {name: i.credential for name, i in issued.items()}
        self._conn = _Operators({name: i.hash for name, i in issued.items()})

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[_Operators]:
        yield self._conn


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
    refused = await Access(True, "10/second", "20/minute").source(
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
    refused = await Access(True, "10/second", "20/minute").operator(
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


def wrong(name: str) -> SecretStr:
    return SecretStr(f"{name}.not-the-secret-of-{name}")


async def check(access: Access, pool: _OperatorPool, credential: SecretStr, client: str) -> Any:
    return await access.operator(pool, credential, client)  # type: ignore[arg-type]


async def test_a_pair_that_failed_too_often_waits_and_no_one_else_does() -> None:
    pool = _OperatorPool("an", "binh")
    access = Access(True, "10/second", "2/minute")
    for _ in range(2):
        assert isinstance(await check(access, pool, wrong("an"), "192.0.2.7"), Denied)
    held = await check(access, pool, pool.credentials["an"], "192.0.2.7")
    assert isinstance(held, Denied)
    assert held.issue is None
    assert held.claimed == "an"
    assert held.retry_after is not None
    assert 1 <= held.retry_after <= 60
    # The same name from another address, another name from the same address: taken.
    assert await check(access, pool, pool.credentials["an"], "192.0.2.8") == "an"
    assert await check(access, pool, pool.credentials["binh"], "192.0.2.7") == "binh"


async def test_a_credential_verified_before_is_taken_whatever_failed_since() -> None:
    pool = _OperatorPool("an")
    access = Access(True, "10/second", "2/minute")
    assert await check(access, pool, pool.credentials["an"], "192.0.2.7") == "an"
    for _ in range(3):  # one address for all, as behind a proxy without forwarded headers
        await check(access, pool, wrong("an"), "192.0.2.7")
    assert await check(access, pool, pool.credentials["an"], "192.0.2.7") == "an"
    still = await check(access, pool, wrong("an"), "192.0.2.7")
    assert isinstance(still, Denied)
    assert still.issue is None  # the wrong secret is held back without a verification


async def test_a_value_not_shaped_like_a_credential_is_refused_without_a_verification(
    verified_hashes: list[str],
) -> None:
    access = Access(True, "10/second", "1/minute")
    for _ in range(3):
        refused = await access.operator(_Pool(), SecretStr("no-dot-at-all"), "192.0.2.7")  # type: ignore[arg-type]
        assert isinstance(refused, Denied)
        assert refused.issue is not None  # 401 each time: nothing was counted
    assert verified_hashes == []
