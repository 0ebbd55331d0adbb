"""Operators' command line for sources, operators and the audit log:

    python -m services.submission sources create NAME --unit U [--unit U ...]
                                                 [--signatures-required] [--kafka]
    python -m services.submission sources list | rotate NAME | revoke NAME
    python -m services.submission sources add-key NAME --key-id K --public-key FILE|BASE64
    python -m services.submission sources revoke-key NAME --key-id K
    python -m services.submission sources kafka-access NAME [--principal P] [--remove]
    python -m services.submission operators create NAME | rotate NAME | revoke NAME | list
    python -m services.submission audit list [--target source:NAME] [--limit N]

It works on submission's PostgreSQL schema directly (the `BAOCAO_POSTGRES__*` settings),
so the first operator can be created before anyone can call the operator API: whoever can
run it holds the database's credentials. Every action is written to the audit log with the
login that ran it (`--actor` to name someone else). A new credential is printed once, on
standard output alone, and never again: store it in the local system's secret store.
`--kafka` and `kafka-access` create the source's two topics and its ACLs with the
`BAOCAO_KAFKA__*` login, which must be allowed to (the topic job's admin user), and record
the Kafka user granted (shown by `sources list`, written to the audit log); `revoke`
removes that user's ACLs on the source's topics and groups (the topics stay), and
`kafka-access --remove` does so alone (`--principal` for a grant made outside the
registry).
Exit status: 0 done, 1 refused (the reason is printed), 2 a server could not be reached
(or refused an admin request).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from aiokafka.errors import KafkaError
from pydantic import SecretStr

from shared.audit import login_name
from shared.catalog import load_catalog
from shared.clock import TIMEZONE
from shared.db import Connection, Pool, create_pool, migrate
from shared.source_topics import inbound_topic, outcomes_topic

from . import registry, store
from .kafka_access import group_collision, group_prefix, provision_source, remove_source_access
from .registry import RegistryError
from .settings import SubmissionSettings
from .store import Holder

MIGRATIONS = Path(__file__).parent / "migrations"
COMMANDS = ("sources", "operators", "audit")
# The command that manages each kind of credential holder.
_HOLDERS: dict[str, Holder] = {"sources": "source", "operators": "operator"}


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="python -m services.submission")
    commands = root.add_subparsers(dest="command", required=True)

    sources = commands.add_parser("sources", help="local systems that may send reports")
    actions = sources.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="register a source; prints its credential once")
    create.add_argument("name", help="lowercase letters, digits, hyphens, e.g. motcua-donghung")
    create.add_argument(
        "--unit", action="append", required=True, help="a unit it may report for (repeat)"
    )
    create.add_argument(
        "--signatures-required", action="store_true", help="every report must be signed"
    )
    create.add_argument(
        "--kafka", action="store_true", help="also create its Kafka topics and ACLs"
    )
    create.add_argument("--principal", help="its Kafka user (default: the source's name)")
    actions.add_parser("list", help="every source, its units and keys")
    for verb, text in (("rotate", "issue a new credential (the old one stops at once)"),
                       ("revoke", "stop the source for good")):  # fmt: skip
        actions.add_parser(verb, help=text).add_argument("name")
    add_key = actions.add_parser("add-key", help="register an Ed25519 public key")
    add_key.add_argument("name")
    add_key.add_argument("--key-id", required=True)
    add_key.add_argument(
        "--public-key", required=True, help="a PEM file, or the 32 raw bytes in Base64"
    )
    revoke_key = actions.add_parser("revoke-key", help="stop accepting a key's signatures")
    revoke_key.add_argument("name")
    revoke_key.add_argument("--key-id", required=True)
    kafka = actions.add_parser("kafka-access", help="create its Kafka topics and ACLs")
    kafka.add_argument("name")
    kafka.add_argument(
        "--principal", help="its Kafka user (default: the one recorded, else the source's name)"
    )
    kafka.add_argument(
        "--remove", action="store_true", help="remove its ACLs instead (the topics stay)"
    )

    operators = commands.add_parser("operators", help="who may call the operator API")
    verbs = operators.add_subparsers(dest="action", required=True)
    for verb in ("create", "rotate", "revoke"):
        verbs.add_parser(verb).add_argument("name")
    verbs.add_parser("list")

    audit = commands.add_parser("audit", help="operators' actions: who, when, what")
    audit_actions = audit.add_subparsers(dest="action", required=True)
    listing = audit_actions.add_parser("list")
    listing.add_argument("--target", help="e.g. source:motcua-donghung or operator:an")
    listing.add_argument("--limit", type=int, default=100)

    for command in (sources, operators, audit):
        command.add_argument("--actor", default=login_name(), help="recorded as who acted")
    return root


def _show_credential(name: str, credential: SecretStr, out: TextIO, err: TextIO) -> None:
    print(f"credential of {name} (shown once; store it now):", file=err)
    print(credential.get_secret_value(), file=out)


async def _run(
    args: argparse.Namespace, settings: SubmissionSettings, out: TextIO, err: TextIO
) -> int:
    pool: Pool = await create_pool(
        settings.postgres, settings.postgres.schema_name("submission"), deadline_s=10
    )
    try:
        await migrate(pool, MIGRATIONS)
        async with pool.acquire() as conn:
            return await _act(args, settings, conn, out, err)
    finally:
        await pool.close()


async def _act(
    args: argparse.Namespace,
    settings: SubmissionSettings,
    conn: Connection,
    out: TextIO,
    err: TextIO,
) -> int:
    now = settings.clock().now()
    actor = args.actor
    command, action = args.command, args.action
    if command == "sources" and action == "create":
        if args.kafka:
            _check_groups(settings, args.name)
        catalog = load_catalog(settings.catalog_dir)
        credential = await registry.create_source(
            conn,
            catalog,
            name=args.name,
            units=args.unit,
            signatures_required=args.signatures_required,
            actor=actor,
            at=now,
        )
        _show_credential(args.name, credential, out, err)
        if args.kafka:
            principal = args.principal or args.name
            await _kafka_access(settings, conn, args.name, principal, actor, err)
    elif command == "sources" and action == "list":
        for row in await store.sources(conn):
            state = "revoked" if row.revoked_at else "active"
            signed = " signatures-required" if row.signatures_required else ""
            keys = ",".join(row.keys) or "-"
            kafka = row.kafka_principal or "-"
            print(
                f"{row.name}  {state}{signed}  units={','.join(row.units)}  keys={keys}"
                f"  kafka={kafka}",
                file=out,
            )
    elif action == "rotate":
        holder = _HOLDERS[command]
        credential = await registry.rotate(conn, holder, name=args.name, actor=actor, at=now)
        _show_credential(args.name, credential, out, err)
    elif action == "revoke":
        holder = _HOLDERS[command]
        granted = (
            await registry.kafka_principal(conn, args.name, active=True)
            if holder == "source"
            else None
        )
        await registry.revoke(conn, holder, name=args.name, actor=actor, at=now)
        print(f"{holder} {args.name} revoked", file=out)
        if granted is not None:
            # After the revocation, which already stops what the source sends: a broker
            # out of reach leaves the ACLs, and `kafka-access --remove` takes them later.
            await _remove_kafka_access(settings, conn, args.name, granted, actor, err)
    elif command == "sources" and action == "add-key":
        text = await asyncio.to_thread(_file_or_text, args.public_key)
        await registry.add_key(
            conn, source=args.name, key_id=args.key_id, public_key=text, actor=actor, at=now
        )
        print(f"key {args.key_id} of {args.name} registered", file=out)
    elif command == "sources" and action == "revoke-key":
        await registry.revoke_key(conn, source=args.name, key_id=args.key_id, actor=actor, at=now)
        print(f"key {args.key_id} of {args.name} revoked", file=out)
    elif command == "sources" and action == "kafka-access" and args.remove:
        recorded = await registry.kafka_principal(conn, args.name, active=False)
        principal = args.principal or recorded
        if principal is None:
            raise RegistryError(
                f"no Kafka access of source {args.name} is recorded: name its user (--principal)"
            )
        await _remove_kafka_access(settings, conn, args.name, principal, actor, err)
    elif command == "sources" and action == "kafka-access":
        recorded = await registry.kafka_principal(conn, args.name, active=True)
        principal = args.principal or recorded or args.name
        if recorded is not None and recorded != principal:
            # One Kafka user per source: the one granted before loses its access.
            await _remove_kafka_access(settings, conn, args.name, recorded, actor, err)
        await _kafka_access(settings, conn, args.name, principal, actor, err)
    elif command == "operators" and action == "list":
        for name, created_at, revoked_at in await store.operators(conn):
            state = (
                f"revoked {revoked_at.astimezone(TIMEZONE):%Y-%m-%d}" if revoked_at else "active"
            )
            print(f"{name}  {state}  since {created_at.astimezone(TIMEZONE):%Y-%m-%d}", file=out)
    elif command == "operators" and action == "create":
        credential = await registry.create_operator(conn, name=args.name, actor=actor, at=now)
        _show_credential(args.name, credential, out, err)
    else:
        for entry in await store.audit_entries(conn, args.target, args.limit):
            when = entry.at.astimezone(TIMEZONE).isoformat()
            print(
                f"{when}  {entry.actor}  {entry.action}  {entry.target}  {entry.details}", file=out
            )
    return 0


def _file_or_text(text: str) -> str:
    path = Path(text)
    if len(text) < 1024 and path.is_file():
        return path.read_text(encoding="utf-8")
    return text


def _check_groups(settings: SubmissionSettings, name: str) -> None:
    collision = group_collision(settings.kafka, name)
    if collision is not None:
        raise RegistryError(collision)


async def _kafka_access(
    settings: SubmissionSettings,
    conn: Connection,
    name: str,
    principal: str,
    actor: str,
    err: TextIO,
) -> None:
    _check_groups(settings, name)
    await registry.kafka_principal(conn, name, active=True)
    kafka = settings.kafka
    created, acls = await provision_source(
        kafka, name, principal, settings.submission.source_partitions, settings.topics
    )
    await registry.record_kafka(
        conn,
        source=name,
        granted=principal,
        action="source.kafka_access",
        actor=actor,
        at=settings.clock().now(),
        principal=principal,
        acls=len(acls),
        topics_created=created,
    )
    print(
        f"kafka: {principal} may write {inbound_topic(kafka, name)} and read"
        f" {outcomes_topic(kafka, name)} (groups {group_prefix(kafka, name)}*); {len(acls)} ACLs,"
        f" topics created: {', '.join(created) or 'none (they existed)'}",
        file=err,
    )


async def _remove_kafka_access(
    settings: SubmissionSettings,
    conn: Connection,
    name: str,
    principal: str,
    actor: str,
    err: TextIO,
) -> None:
    removed = await remove_source_access(settings.kafka, name, principal)
    await registry.record_kafka(
        conn,
        source=name,
        granted=None,
        action="source.kafka_remove",
        actor=actor,
        at=settings.clock().now(),
        principal=principal,
        acls_removed=removed,
    )
    print(f"kafka: {removed} ACLs of {principal} on source {name} removed", file=err)


async def run(
    argv: Sequence[str],
    settings: SubmissionSettings,
    *,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    args = parser().parse_args(argv)
    try:
        return await _run(args, settings, out, err)
    except RegistryError as error:
        print(f"refused: {error}", file=err)
        return 1
    except (OSError, KafkaError) as error:
        print(f"cannot reach a server, or it refused: {error}", file=err)
        return 2


def main(argv: Sequence[str], *, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    return asyncio.run(run(argv, SubmissionSettings(), out=out, err=err))
