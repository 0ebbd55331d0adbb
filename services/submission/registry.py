"""Operators' actions on sources and operators, each recorded in the audit log (who, when,
what) in the same transaction as the action: an action without its record, or a record
of an action that did not happen, cannot exist.

A new or rotated credential is returned once, to be shown once; only its hash is kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import SecretStr

from shared.audit import AuditEntry
from shared.catalog import Catalog
from shared.db import Connection

from . import credentials, store
from .signatures import read_public_key
from .store import Holder


class RegistryError(Exception):
    """An action that cannot be done; the message says why (to the operator)."""


async def _audited(
    conn: Connection, actor: str, at: datetime, action: str, target: str, **details: Any
) -> None:
    await store.audit(conn, AuditEntry(at, actor, action, target, details))


def _checked_name(name: str) -> str:
    try:
        return credentials.check_name(name)
    except credentials.BadNameError as error:
        raise RegistryError(str(error)) from None


async def create_source(
    conn: Connection,
    catalog: Catalog,
    *,
    name: str,
    units: Sequence[str],
    signatures_required: bool,
    actor: str,
    at: datetime,
) -> SecretStr:
    _checked_name(name)
    unknown = [u for u in units if catalog.unit(u) is None]
    if unknown or not units:
        raise RegistryError(f"units not in the catalog: {', '.join(unknown) or '(none given)'}")
    issued = credentials.issue(name)
    async with conn.transaction():
        if not await store.insert_source(
            conn, name, sorted(set(units)), issued.hash, signatures_required, at
        ):
            raise RegistryError(f"source {name} exists already (names are never reused)")
        await _audited(
            conn,
            actor,
            at,
            "source.create",
            f"source:{name}",
            units=sorted(set(units)),
            signatures_required=signatures_required,
        )
    return issued.credential


async def rotate(
    conn: Connection, holder: Holder, *, name: str, actor: str, at: datetime
) -> SecretStr:
    """A new credential for an active source or operator; the old one stops working."""
    issued = credentials.issue(_checked_name(name))
    async with conn.transaction():
        if not await store.set_credential(conn, holder, name, issued.hash, at):
            raise RegistryError(f"no active {holder} {name}")
        await _audited(conn, actor, at, f"{holder}.rotate", f"{holder}:{name}")
    return issued.credential


async def revoke(conn: Connection, holder: Holder, *, name: str, actor: str, at: datetime) -> None:
    async with conn.transaction():
        if not await store.revoke(conn, holder, name, at):
            raise RegistryError(f"no active {holder} {name}")
        await _audited(conn, actor, at, f"{holder}.revoke", f"{holder}:{name}")


async def add_key(
    conn: Connection, *, source: str, key_id: str, public_key: str, actor: str, at: datetime
) -> None:
    if not 0 < len(key_id) <= 128:
        raise RegistryError("a key id has 1 to 128 characters")
    try:
        raw = read_public_key(public_key)
    except ValueError as error:
        raise RegistryError(f"public key: {error}") from None
    async with conn.transaction():
        if not await store.insert_source_key(conn, source, key_id, raw, at):
            raise RegistryError(f"no active source {source}, or it has a key {key_id} already")
        await _audited(
            conn,
            actor,
            at,
            "source.add_key",
            f"source:{source}",
            key_id=key_id,
            public_key=raw.hex(),
        )


async def revoke_key(
    conn: Connection, *, source: str, key_id: str, actor: str, at: datetime
) -> None:
    async with conn.transaction():
        if not await store.revoke_source_key(conn, source, key_id, at):
            raise RegistryError(f"source {source} has no active key {key_id}")
        await _audited(conn, actor, at, "source.revoke_key", f"source:{source}", key_id=key_id)


async def create_operator(conn: Connection, *, name: str, actor: str, at: datetime) -> SecretStr:
    issued = credentials.issue(_checked_name(name))
    async with conn.transaction():
        if not await store.insert_operator(conn, name, issued.hash, at):
            raise RegistryError(f"operator {name} exists already (names are never reused)")
        await _audited(conn, actor, at, "operator.create", f"operator:{name}")
    return issued.credential


async def kafka_principal(conn: Connection, source: str, *, active: bool) -> str | None:
    """The Kafka user granted `source`'s ACLs through the registry (None: none); refused
    for a source that does not exist or, with `active`, that is revoked."""
    state = await store.source_state(conn, source)
    if state is None or (active and not state[0]):
        raise RegistryError(f"no {'active ' if active else ''}source {source}")
    return state[1]


async def record_kafka(
    conn: Connection,
    *,
    source: str,
    granted: str | None,
    action: str,
    actor: str,
    at: datetime,
    **details: Any,
) -> None:
    """Record a change of `source`'s access on the broker: `granted` is the Kafka user that
    has it now (None: nobody), `action` the audit log's name for the change."""
    async with conn.transaction():
        await store.set_kafka_principal(conn, source, granted)
        await _audited(conn, actor, at, action, f"source:{source}", **details)
